"""Score a dual-energy pair: the low- and high-energy series of one acquisition, loaded as two
CT volumes on one grid, become each lesion's hydroxyapatite mass and a calcium-preserving
non-contrast score (docs, 'Spectral CT'). Pure: nothing is read or written.

The lesions are found on ``detect`` (the mixed image or a VMI of the same acquisition) or,
without it, on the mean of the pair; each is decomposed (:mod:`vascalc.core.spectral_decomposition`);
the calcium-preserving image at 120 kVp is scored by :func:`vascalc.analyse.analyse` at the
config's threshold, as a series of kind ``calcium_preserving`` flagged
``spectral_calcium_preserving``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .analyse import analyse
from .config.energy import beam, refuse_unscorable
from .config.schema import Config
from .core.spectral import beam_values, energy_label
from .core.spectral_decomposition import (
    LesionCalcium,
    PairBeam,
    calcium_preserving_image,
    decompose_lesions,
    find_lesions,
)
from .errors import InputError
from .records import CTVolume, ScanResult


@dataclass(frozen=True)
class PairResult:
    """The calcium-preserving score (a ScanResult at 120 kVp) and each lesion's decomposition
    (lesion ids as in ``labels``, the lesions found on the detection image)."""

    result: ScanResult
    lesions: tuple[LesionCalcium, ...]
    labels: np.ndarray


def _pair_beam(volume: CTVolume, which: str) -> PairBeam:
    kind, energy, tin = beam(volume.meta)
    if energy is None:
        raise InputError(f"the {which}-energy series of the pair has no energy in its header "
                         f"(KVP or keV)", hint="give the series with their DICOM headers")
    return PairBeam(kind, float(energy), tin)


def score_pair(low: CTVolume, high: CTVolume, config: Config, *, case_id: str,
               detect: CTVolume | None = None) -> PairResult:
    """Score the pair ``low``/``high`` (see the module docstring).

    Raises
    ------
    InputError
        The two volumes (and ``detect``) are not on one grid, or the low series is not the
        lower energy, or a header gives no energy.
    SpectralMapError
        One of them is a map that is not HU.
    """
    for v in (low, high, detect):
        if v is not None:
            refuse_unscorable(v.meta, vnc="score")
    grids = [(v.shape, tuple(v.spacing_mm), tuple(v.origin_mm)) for v in (low, high, detect)
             if v is not None]
    if any(g != grids[0] for g in grids):
        raise InputError(f"the pair's series are not on one grid: {grids}",
                         hint="give the low- and high-energy series of one acquisition")
    lo, hi = _pair_beam(low, "low"), _pair_beam(high, "high")
    # the lower effective energy is the one where hydroxyapatite reads brighter
    if beam_values(lo.kind, lo.energy, tin_mm=lo.tin_mm)[0] <= beam_values(
            hi.kind, hi.energy, tin_mm=hi.tin_mm)[0]:
        raise InputError(f"the low-energy series ({energy_label(lo.kind, lo.energy, tin_mm=lo.tin_mm)}) "
                         f"is not below the high one ({energy_label(hi.kind, hi.energy, tin_mm=hi.tin_mm)})",
                         hint="swap the two series")
    low_hu = np.asarray(low.hu, dtype=float)
    high_hu = np.asarray(high.hu, dtype=float)
    shown = np.asarray(detect.hu, dtype=float) if detect is not None else 0.5 * (low_hu + high_hu)
    labels = find_lesions(shown, low.spacing_mm)
    lesions = decompose_lesions(low_hu, high_hu, labels, low.spacing_mm, low=lo, high=hi)
    img = calcium_preserving_image(low_hu, high_hu, labels, low.spacing_mm, low=lo, high=hi)
    img[low_hu < -500] = -1000.0  # the air outside the body stays air
    hu = np.rint(img).astype(np.int16)
    hu.flags.writeable = False
    meta = replace(low.meta, series_kind="calcium_preserving", series_kind_source="pair",
                   kvp=120.0, energy_kev=None, tin_filter_mm=0.0,
                   series_description=f"calcium-preserving non-contrast ({lo.energy:g}/"
                   f"{'Sn' if hi.tin_mm else ''}{hi.energy:g})")
    volume = replace(low, hu=hu, meta=meta,
                     quality_flags=(*low.quality_flags, "spectral_calcium_preserving"))
    return PairResult(result=analyse(volume, config, case_id=case_id), lesions=tuple(lesions),
                      labels=labels)
