"""``python -m vascalc`` runs the command line, as ``vascalc`` does."""

from .cli.app import main

main()
