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


def lumen_median_hu(volume: CTVolume, mask, *, threshold_hu: float | None = None,
                    blood_pool: np.ndarray | None = None) -> float | None:
    """The median HU of the lumen inside ``mask`` (not grown); None for a mask too small to say.

    With ``threshold_hu`` the calcium and its partial-volume rim are left out: the voxels at or
    above the threshold that are not enhanced blood (not in ``blood_pool``, the image's blood
    pool of :mod:`vascalc.core.blood_pool`), grown by one voxel in plane. A mask that hugs a
    plaque then measures the blood and wall beside it, not the plaque."""
    mask = as_region_mask(mask)
    if mask.sum() < MIN_LUMEN_VOXELS:
        return None
    if threshold_hu is None or not mask.any():
        return float(np.median(mask.values(volume.hu)))
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n))
                for b, n in zip(mask.box, mask.shape))
    hu = np.broadcast_to(volume.hu, mask.shape)[box]
    inside = np.zeros(hu.shape, dtype=bool)
    inside[tuple(slice(b.start - a.start, b.stop - a.start)
                 for b, a in zip(mask.box, box))] = mask.crop
    calcium = hu >= threshold_hu
    if blood_pool is not None:
        calcium &= ~blood_pool[box]
    ring = np.zeros((3, 3, 3), dtype=bool)
    ring[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    rim = ndimage.binary_dilation(calcium, ring) if calcium.any() else calcium
    values = hu[inside & ~rim]
    if values.size < MIN_LUMEN_VOXELS:
        return None
    return float(np.median(values))


#: ContrastBolusAgent (0018,0010) values that say no contrast was given (matched on the value's
#: words, case and punctuation aside): exports and people write these for "none"
_NO_AGENT = re.compile(r"^\W*$|^(none|no|n|0|nil|null|na|n/?a|not applicable|unenhanced|"
                       r"plain|native)\W*$|\b(no|none|without|non|not)\b|^non-?contrast",
                       re.IGNORECASE)
#: a route that is not intravascular: oral or rectal contrast fills the bowel, not the blood
_NOT_INTRAVASCULAR = re.compile(r"\b(oral|po|per os|rectal|enteral)\b", re.IGNORECASE)
_INTRAVASCULAR = re.compile(r"\b(iv|i\.v\.|intravenous|intra-venous|intravascular|"
                            r"intra-arterial|ia)\b", re.IGNORECASE)


def agent_route(agent: str) -> str:
    """What a ContrastBolusAgent value says: 'intravascular', 'none' (no contrast given, or
    empty) or 'oral' (oral or rectal only: not in the blood). An agent named without a route
    (IOHEXOL, OMNIPAQUE 350, APPLIED) is taken as intravascular, the use of CT contrast.

    >>> [agent_route(a) for a in ("No contrast", "NONE GIVEN", "nil", "-", "N/A",
    ...                            "without contrast", "ORAL", "")]
    ['none', 'none', 'none', 'none', 'none', 'none', 'oral', 'none']
    >>> agent_route("IOHEXOL"), agent_route("ORAL + IV"), agent_route("APPLIED")
    ('intravascular', 'intravascular', 'intravascular')
    """
    text = agent.strip()
    if _NO_AGENT.search(text):
        return "none"
    if _NOT_INTRAVASCULAR.search(text) and not _INTRAVASCULAR.search(text):
        return "oral"
    return "intravascular"


def contrast_evidence(volume: CTVolume, lumen_medians: dict[str, float | None],
                      blood_pool: str = "") -> str:
    """Why the scan looks contrast-enhanced ('' when it does not): the header's
    ContrastBolusAgent when it names intravascular contrast (:func:`agent_route`), or a lumen
    median (:func:`lumen_median_hu`, measured once per vascular region by the caller) above
    100 HU, or the image's blood pool (``blood_pool``: the evidence in words of
    :func:`vascalc.core.blood_pool.find_blood_pool`).

    >>> from vascalc.records import CTVolume, ScanMeta
    >>> v = CTVolume(hu=np.zeros((2, 2, 2), np.int16), spacing_mm=(3.0, 1.0, 1.0))
    >>> contrast_evidence(v, {"aorta": 151.0, "iliac": None})
    'median 151 HU inside the aorta mask'
    >>> contrast_evidence(v, {"aorta": 40.0})
    ''
    """
    agent = volume.meta.contrast_agent.strip()
    if agent_route(agent) == "intravascular":
        return f"ContrastBolusAgent is {agent!r}"
    for name, med in sorted(lumen_medians.items()):
        if med is not None and med > AORTA_CONTRAST_MEDIAN_HU:
            return f"median {med:.0f} HU inside the {name} mask"
    return blood_pool


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
