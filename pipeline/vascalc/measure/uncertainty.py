"""The headline's measurement uncertainty: the rescan model of :mod:`vascalc.core.rescan`
applied to a prepared scan with the case's own conventions, and the threshold-free integrated
mass of :mod:`vascalc.core.integrated`.

Each simulated rescan is scored by :func:`vascalc.measure.calcium.find_calcium` with the
case's config and thresholds, so the intervals describe exactly the numbers in the row. The
rescans cover a box around the headline's calcium candidates (voxels at or above the threshold
in the scope), padded so that the shift and the integrated mass's background shell stay inside.
Within a scope of regions, voxels outside the scope's masks are set to -1000 HU before scoring
(the masks stay fixed in patient space while the calcium moves under them).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..config.schema import Config
from ..core.integrated import MARGIN_MM, SHELL_MM, integrated_mass_mg, integrated_sum_hu
from ..core.rescan import category_probabilities, interval, noise_sd_hu, simulate
from ..core.thresholds import Thresholds
from ..records import CTVolume, RegionScore, Uncertainty
from .calcium import find_calcium

#: slices of padding above and below the candidates
PAD_SLICES = 2
#: the largest box the model simulates (float64 HU and its interpolation coefficients take
#: about 6 x 8 bytes a voxel): a larger one is refused with the reason, the case still scored
MAX_BOX_VOXELS = 8_000_000


def _box(candidates: np.ndarray, spacing_mm, shape) -> tuple[slice, slice, slice]:
    idx = np.nonzero(candidates)
    _, drow, dcol = spacing_mm
    reach = MARGIN_MM + SHELL_MM + 1.0
    pads = (PAD_SLICES, int(np.ceil(reach / drow)) + 2, int(np.ceil(reach / dcol)) + 2)
    return tuple(slice(max(0, int(i.min()) - p), min(n, int(i.max()) + p + 1))  # type: ignore[return-value]
                 for i, p, n in zip(idx, pads, shape))


def headline_uncertainty(volume: CTVolume, config: Config, th: Thresholds, *,
                         observed: RegionScore, scope_mask: np.ndarray | None,
                         coronary_risk: bool) -> Uncertainty:
    """The rescan model of the headline ``observed`` on the prepared ``volume`` (its HU as
    scored), within ``scope_mask`` (None: the whole field of view). ``coronary_risk``: the
    headline carries risk categories, so their probabilities are given too."""
    uc, sc, rk = config.uncertainty, config.scoring, config.risk
    n, seed = uc.n_rescans, uc.seed
    empty = partial(Uncertainty, n_rescans=n, seed=seed)
    if observed.withheld or observed.threshold_rule:
        return empty(reason="not modelled: the headline is withheld or found by "
                           "a contrast rule")
    noise = noise_sd_hu(volume.hu)
    if noise is None:
        return empty(reason="no noise measurable: too few voxels between -200 "
                           "and 200 HU")
    candidates = volume.hu >= th.threshold_hu
    if scope_mask is not None:
        candidates &= scope_mask
    if not candidates.any():
        return empty(noise_hu=noise, reason="no voxel at or above the threshold "
                           "in the scope: no rescan simulated")
    box = _box(candidates, volume.spacing_mm, volume.shape)
    n_box = int(np.prod([b.stop - b.start for b in box]))
    if n_box > MAX_BOX_VOXELS:
        return empty(noise_hu=noise, reason=f"the calcium spans a box of {n_box} voxels, more "
                     f"than the model's {MAX_BOX_VOXELS} (uncertainty.MAX_BOX_VOXELS): choose a "
                     "narrower scope (regions) for intervals")
    roi = np.asarray(volume.hu[box], dtype=np.float64)
    mask = None if scope_mask is None else scope_mask[box]
    spacing = tuple(float(s) for s in volume.spacing_mm)
    c = sc.mass_calibration_mg_per_cm3_per_hu

    def score(hu: np.ndarray) -> dict[str, float | None]:
        scored = hu if mask is None else np.where(mask, hu, -1000.0)
        calc = find_calcium(CTVolume(hu=scored, spacing_mm=spacing), config, th,  # type: ignore[arg-type]
                            need_voxels=False)
        isum = integrated_sum_hu(hu, spacing_mm=spacing, threshold_hu=th.threshold_hu,  # type: ignore[arg-type]
                                 within=mask)
        w = calc.whole
        return {"agatston": w.agatston, "volume_mm3": w.volume_mm3, "mass_mg": w.mass_mg,
                "integrated_mass_mg": integrated_mass_mg(isum, volume.voxel_volume_mm3, c)}

    here = score(roi)["integrated_mass_mg"]
    draws = simulate(roi, score, noise_hu=noise, n_rescans=uc.n_rescans, seed=uc.seed).draws
    obs = {"agatston": observed.agatston if sc.agatston else None,
           "volume_mm3": observed.volume_mm3, "mass_mg": observed.mass_mg,
           "integrated_mass_mg": here}
    ci = {k: None if v is None else interval(v, draws[k]) for k, v in obs.items()}
    risky = coronary_risk and sc.agatston
    return Uncertainty(
        n_rescans=n, seed=seed, noise_hu=noise, agatston=ci["agatston"], volume_mm3=ci["volume_mm3"],
        mass_mg=ci["mass_mg"], integrated_mass_value_mg=here,
        integrated_mass_mg=ci["integrated_mass_mg"],
        risk_probabilities=category_probabilities(
            draws["agatston"], upper_bounds=tuple(rk.agatston_upper_bounds)) if risky else (),
        cac_drs_probabilities=category_probabilities(
            draws["agatston"], upper_bounds=tuple(rk.cac_drs_lower_bounds),
            zero_category=False) if risky else ())
