"""Contrast in the lumen (pure): evidence that a scan is contrast-enhanced, lumen medians per
region, and the lumen-adaptive threshold. 130 HU was defined on unenhanced CT (Agatston
1990); iodinated contrast lifts the lumen of an artery above it, so a 130 HU score of a
contrast-filled artery counts lumen, not calcium."""

from __future__ import annotations

import re

import numpy as np

from ..records import CTVolume
from .regions import as_region_mask

#: a lumen whose median HU is above this is contrast-filled (unenhanced blood reads about 40 HU)
AORTA_CONTRAST_MEDIAN_HU = 100.0
#: lumen medians are measured only in masks of at least this many voxels (a choice: fewer
#: voxels are mostly wall and calcium, and their median says little about the lumen)
MIN_LUMEN_VOXELS = 50


def lumen_median_hu(volume: CTVolume, mask) -> float | None:
    """The median HU inside ``mask`` as given (not grown); None for a mask too small to say."""
    mask = as_region_mask(mask)
    if mask.sum() < MIN_LUMEN_VOXELS:
        return None
    return float(np.median(mask.values(volume.hu)))


def contrast_evidence(volume: CTVolume, lumen_medians: dict[str, float | None]) -> str:
    """Why the scan looks contrast-enhanced ('' when it does not): the header's
    ContrastBolusAgent, or a lumen median (:func:`lumen_median_hu`, measured once per
    vascular region by the caller) above 100 HU.

    >>> from vascalc.records import CTVolume, ScanMeta
    >>> v = CTVolume(hu=np.zeros((2, 2, 2), np.int16), spacing_mm=(3.0, 1.0, 1.0))
    >>> contrast_evidence(v, {"aorta": 151.0, "iliac": None})
    'median 151 HU inside the aorta mask'
    >>> contrast_evidence(v, {"aorta": 40.0})
    ''
    """
    agent = volume.meta.contrast_agent.strip()
    if agent and agent.upper() not in ("NONE", "NO", "N", "0"):
        return f"ContrastBolusAgent is {agent!r}"
    for name, med in sorted(lumen_medians.items()):
        if med is not None and med > AORTA_CONTRAST_MEDIAN_HU:
            return f"median {med:.0f} HU inside the {name} mask"
    return ""


def robust_spread(values: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x median absolute deviation) of lumen HU: the spread equals the SD for
    normal noise and is not inflated by wall calcium inside the mask.

    >>> [round(x, 3) for x in robust_spread(np.array([100.0, 110.0, 120.0, 130.0, 900.0]))]
    [120.0, 14.826]
    """
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    return med, 1.4826 * float(np.median(np.abs(v - med)))


def lumen_adaptive_hu(values: np.ndarray, k: float) -> float:
    """vascalc's lumen-adaptive threshold: lumen median + k x robust spread
    (:func:`robust_spread`), in the spirit of the attenuation-adapted thresholds used for
    calcium on contrast CT (a lumen mean plus a multiple of its SD); k is the config's
    choice, not a published constant."""
    med, spread = robust_spread(values)
    return med + k * spread


def comp2comp_hu(values: np.ndarray) -> float:
    """Comp2Comp's aortic-calcium threshold on contrast CT: median + 3 x (median - 15.87th
    percentile) of the lumen HU (Comp2Comp, StanfordMIMI, aortic calcium inference; the
    15.87th percentile lies one SD below the mean of normal noise, so this is the median
    plus three one-sided SDs)."""
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    return med + 3.0 * (med - float(np.percentile(v, 15.87)))


#: DICOM ContrastBolusAgentPhase (0018,9344; PS3.3 C.8.15.3.4) -> the phase of the published
#: fixed thresholds (arterial or venous); other terms (DYNAMIC, DELAYED, ...) say neither
HEADER_PHASES = {"ARTERIAL": "arterial", "VENOUS": "venous", "PORTAL_VENOUS": "venous"}
_ARTERIAL_WORDS = re.compile(r"arterial|\bcta\b|angio|\bart\b", re.IGNORECASE)
_VENOUS_WORDS = re.compile(r"venous|portal|\bpv\b|\bven\b", re.IGNORECASE)


def header_phase(contrast_phase: str, series_description: str) -> tuple[str, str]:
    """(phase, source) from the header: ContrastBolusAgentPhase where it names arterial or
    venous, else one phase word in the SeriesDescription; ('', '') when it says neither.

    >>> header_phase("PORTAL_VENOUS", ""), header_phase("", "CTA Aorta 1.0 Bv40")
    (('venous', 'header'), ('arterial', 'series_description'))
    >>> header_phase("", "Abdomen arterial/venous")
    ('', '')
    """
    phase = HEADER_PHASES.get(contrast_phase.strip().upper(), "")
    if phase:
        return phase, "header"
    art = bool(_ARTERIAL_WORDS.search(series_description))
    ven = bool(_VENOUS_WORDS.search(series_description))
    if art != ven:
        return ("arterial" if art else "venous"), "series_description"
    return "", ""


def lumen_phase(aorta_median_hu: float | None, arterial_lumen_hu: float) -> str:
    """The phase an aortic lumen median suggests: arterial at or above ``arterial_lumen_hu``,
    venous between the contrast mark (100 HU) and it, '' when unenhanced or unmeasured."""
    if aorta_median_hu is None or aorta_median_hu <= AORTA_CONTRAST_MEDIAN_HU:
        return ""
    return "arterial" if aorta_median_hu >= arterial_lumen_hu else "venous"
