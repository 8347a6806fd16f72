"""Build the optional C kernel (vascalc.core._ckernel). Everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and vascalc uses
its scipy reference engine (same results, slower); ``vascalc run`` records the engine used.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("vascalc.core._ckernel", ["pipeline/vascalc/core/_ckernel.c"], optional=True,
                             extra_compile_args=["-O3"])])
