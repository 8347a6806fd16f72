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

from ._version import __version__
from .analyse import analyse
from .config.load import load_config
from .config.schema import Config
from .errors import VascalcError
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


def __getattr__(name: str):
    # read_tables needs pandas, which the command line and the scoring path never import
    if name == "read_tables":
        from .results.frames import read_tables  # lazy: pandas, for reading tables only

        return read_tables
    raise AttributeError(f"module 'vascalc' has no attribute {name!r}")
