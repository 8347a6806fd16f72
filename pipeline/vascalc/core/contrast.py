"""Contrast in the lumen (pure): evidence that a scan is contrast-enhanced, lumen medians per
region, and the lumen-adaptive threshold. 130 HU was defined on unenhanced CT (Agatston
1990); iodinated contrast lifts the lumen of an artery above it, so a 130 HU score of a
contrast-filled artery counts lumen, not calcium."""

from __future__ import annotations

import numpy as np

from ..errors import ThresholdError
from ..records import CTVolume
from .regions import as_region_mask
from .thresholds import Thresholds

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


def contrast_evidence(volume: CTVolume, regions) -> str:
    """Why the scan looks contrast-enhanced ('' when it does not): the header's
    ContrastBolusAgent, or a lumen median (:func:`lumen_median_hu`) above 100 HU inside a
    region named 'aorta'."""
    agent = volume.meta.contrast_agent.strip()
    if agent and agent.upper() not in ("NONE", "NO", "N", "0"):
        return f"ContrastBolusAgent is {agent!r}"
    aorta = dict(regions or []).get("aorta")
    med = None if aorta is None else lumen_median_hu(volume, aorta)
    if med is not None and med > AORTA_CONTRAST_MEDIAN_HU:
        return f"median {med:.0f} HU inside the aorta mask"
    return ""


def lumen_threshold(volume: CTVolume, regions, sc, th: Thresholds) -> Thresholds:
    """The threshold raised above contrast in the lumen: max(threshold, median + k x spread)
    of the HU inside the region ``sc.lumen_region`` as given (not grown), spread = 1.4826 x
    median absolute deviation (equal to the SD for normal noise, and not inflated by wall
    calcium inside the mask). A threshold set from the lumen, in the spirit of the
    attenuation-adapted thresholds used for calcium on contrast CT (e.g. mean lumen HU plus
    a multiple of its SD); k is the config's choice. Density weights keep their HU meaning:
    a band starting below the threshold starts at it."""

    mask = dict(regions or []).get(sc.lumen_region)
    mask = None if mask is None else as_region_mask(mask)
    if mask is None or not mask.any():
        raise ThresholdError(
            f"scoring.contrast is lumen_adaptive but there is no region {sc.lumen_region!r} "
            "to measure the lumen in", hint="give the region mask with --regions (or the "
            "manifest's regions column), or set scoring.contrast: flag")
    vals = mask.values(volume.hu).astype(np.float64)
    med = float(np.median(vals))
    spread = 1.4826 * float(np.median(np.abs(vals - med)))
    thr = max(th.threshold_hu, med + sc.lumen_k * spread)
    return Thresholds(thr, tuple(max(b, thr) for b in th.weight_hu),  # type: ignore[arg-type]
                      f"lumen_adaptive:{sc.lumen_region}")
