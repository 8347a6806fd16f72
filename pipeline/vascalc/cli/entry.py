"""The ``vascalc`` command's entry point: ``vascalc --version`` answers from the version
alone; every other command loads the command line (:mod:`vascalc.cli.app`)."""

from __future__ import annotations

import sys

from .._version import __version__


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(f"vascalc {__version__}")
        return
    from .app import main as run_app  # lazy: the command line and what its commands import

    run_app()
