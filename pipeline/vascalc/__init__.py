"""vascalc: vascular calcification on CT.

The import package is ``pipeline``; the distribution and command are ``vascalc``.
The stages are documented in DESIGN.md and README.md; the public entry point for library
use is :func:`vascalc.analyse.analyse`.
"""

__version__ = "0.1.0"
