"""Options shared by the commands: declared once, with one help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

#: --config / -c of every command that reads a config
ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", "-c", help="YAML config (every key is commented in configs/default.yaml); "
    "default: the built-in defaults.")]
