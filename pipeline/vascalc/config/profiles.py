"""The bundled profiles: the YAML configs of ``configs/`` installed as ``vascalc.profiles``, so a
plain ``pip install`` can run ``--config totalsegmentator`` as the checkout does.

A ``--config`` value is a file when one exists at that path, else the name of a bundled
profile (with or without ``.yaml``); anything else is refused with the names there are.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..errors import ConfigError

#: the package that holds the profiles (configs/ in the checkout)
PROFILE_PACKAGE = "vascalc.profiles"


def _folder() -> Traversable:
    return resources.files(PROFILE_PACKAGE)


def profile_names() -> list[str]:
    """The bundled profiles' names, sorted.

    >>> {"default", "coronary", "totalsegmentator"} <= set(profile_names())
    True
    """
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".yaml"))


def profile_text(name: str) -> str:
    """The YAML text of the bundled profile ``name`` (comments included)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    if stem not in profile_names():
        raise ConfigError(f"no config file and no bundled profile named {name!r}",
                          hint="give a YAML file, or one of: " + ", ".join(profile_names()))
    return (_folder() / f"{stem}.yaml").read_text(encoding="utf-8")


def profile_summary(name: str) -> str:
    """The first sentence of the profile's leading comment, without its 'Profile:' label.

    >>> profile_summary("coronary")
    'coronary artery calcium CT.'
    """
    lines = []
    for line in profile_text(name).splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = re.sub(r"^(Profile|Config)( for)?:?\s*", "", " ".join(lines)).strip()
    first = re.split(r"(?<=[.])\s+(?=[A-Z0-9])", text, maxsplit=1)[0]
    return first if first else "(no description)"


def resolve(spec: str | Path) -> tuple[str, str]:
    """``(source, yaml text)`` of a ``--config`` value: the file at that path when there is
    one, else the bundled profile of that name (source ``profile:NAME``).

    Raises :class:`~vascalc.errors.ConfigError` naming the value and the profiles there are.
    """
    p = Path(spec)
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name
    if not p.is_file() and len(p.parts) == 1 and stem in profile_names():
        return f"profile:{stem}", profile_text(stem)
    try:
        return str(p), p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file: {err.strerror}", path=str(p),
                          hint="give a YAML file, or the name of a bundled profile: "
                          + ", ".join(profile_names())) from None
