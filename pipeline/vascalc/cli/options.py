"""Options shared by the commands: declared once, with one help text."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

#: --config / -c of every command that reads a config
ConfigOption = Annotated[Optional[str], typer.Option(
    "--config", "-c", help="A YAML config file, or the name of a bundled profile (vascalc "
    "config list); default: the built-in defaults (vascalc config show default).")]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as (I, N), None when not given; ValueError says what is allowed.

    >>> parse_shard("1/4"), parse_shard(None)
    ((1, 4), None)
    """
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r} must be I/N, e.g. 0/4 (I from 0 to N-1)") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {text!r}: need N >= 1 and 0 <= I < N")
    return i, n
