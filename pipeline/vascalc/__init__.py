"""vascalc: vascular calcification on CT.

Agatston score, calcium volume and mass, lesion count and Calc/BSA from CT DICOM series (or
NIfTI), per scope and region, as typed records and tidy tables. The distribution, the command
and the import package are all ``vascalc``; the source lives in ``pipeline/vascalc/``.

The public API is what ``__all__`` lists; everything else may move between releases.

Examples
--------
>>> import vascalc
>>> cfg = vascalc.load_config(None)
>>> cfg.scoring.threshold_hu
130.0
"""

import sys as _sys
from importlib import import_module
from types import ModuleType as _ModuleType
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import VascalcError

if TYPE_CHECKING:  # the names below load on first use: ``import vascalc`` stays light
    from .analyse import analyse
    from .config.load import load_config
    from .config.schema import Config
    from .records import (
        Anthropometry,
        BSAResult,
        CaseFailure,
        CTVolume,
        Lesion,
        RegionScore,
        ScanMeta,
        ScanResult,
    )
    from .results.frames import read_tables
    from .run.series import score_series

__all__ = [
    "__version__",
    "analyse",
    "load_config",
    "score_series",
    "read_tables",
    "Config",
    "VascalcError",
    "CTVolume",
    "ScanMeta",
    "ScanResult",
    "CaseFailure",
    "RegionScore",
    "Lesion",
    "BSAResult",
    "Anthropometry",
]


#: where each public name lives; imported on first use (PEP 562), so that ``vascalc --version``
#: and a run that writes no tables load neither the scoring stack nor pandas
_LAZY = {"analyse": ".analyse", "load_config": ".config.load", "Config": ".config.schema",
         "score_series": ".run.series", "read_tables": ".results.frames",
         **dict.fromkeys(("CTVolume", "ScanMeta", "ScanResult", "CaseFailure", "RegionScore",
                          "Lesion", "BSAResult", "Anthropometry"), ".records")}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vascalc' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(_ModuleType):
    """The package's module type: ``vascalc.analyse`` is the function, even after the
    submodule of the same name was imported (the import system then sets the package's
    attribute to the submodule, and ``vascalc.analyse(...)`` failed with "'module' object is
    not callable" in any process that had scored a case); the submodule stays in sys.modules."""

    @property
    def analyse(self):  # noqa: D401 - the public function, loaded on first use
        return import_module(".analyse", __name__).analyse

    @analyse.setter
    def analyse(self, value) -> None:  # the import system's setattr of the submodule
        pass


_sys.modules[__name__].__class__ = _Package
