"""Packages and the optional C kernel. Everything else is in pyproject.toml.

The wheel holds three source folders: ``pipeline/vascalc`` (the library), ``configs/`` as
``vascalc.profiles`` (the bundled profiles, chosen by ``--config NAME``) and ``sample_data/`` as
``vascalc.sample_data`` (the phantom generator behind ``vascalc demo``). They stay at the top
of the checkout, where the project's layout puts them, and install as parts of one package.

The extension is optional: without a C compiler the install still succeeds and vascalc uses
its scipy reference engine (same results, slower); ``vascalc run`` records the engine used.
"""

from setuptools import Extension, find_packages, setup

PACKAGES = find_packages("pipeline", include=["vascalc", "vascalc.*"])

setup(
    packages=[*PACKAGES, "vascalc.profiles", "vascalc.sample_data"],
    package_dir={"": "pipeline", "vascalc.profiles": "configs", "vascalc.sample_data": "sample_data"},
    package_data={"vascalc": ["review/page.html", "core/_ckernel.c", "py.typed",
                             "outputs/templates/*.html", "outputs/templates/*.css"],
                  "vascalc.profiles": ["*.yaml"]},
    exclude_package_data={"vascalc.sample_data": ["phantoms/*", "contrast_phantoms/*"]},
    ext_modules=[Extension("vascalc.core._ckernel", ["pipeline/vascalc/core/_ckernel.c"],
                           optional=True, extra_compile_args=["-O3"])],
)
