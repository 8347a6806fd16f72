"""Validation of the rescan model (vascalc.core.rescan) on digital lesions of known truth.

For each lesion and geometry, ``n_scans`` acquisitions with random starts and fresh noise are
rendered (:mod:`sample_data.lesions`) and scored by ``vascalc.analyse`` with the rescan model
on. Per measure:

- coverage: the share of acquisitions whose 95 % interval holds the truth. The truth of the
  integrated mass is the lesion's mass above the background (from its geometry); the truth of
  Agatston, volume and thresholded mass (which have no geometric truth: they depend on the
  threshold and the partial volume) is their mean over ``n_truth`` further acquisitions;
- interscan difference: mean |x_i - x_(i+1)| over consecutive pairs of acquisitions, divided
  by the mean of x (in percent), the variability measure of interscan studies (e.g. Budoff
  et al., CARE-2; van Velzen et al. 2022).

``benchmarks/uncertainty_harness.py`` prints the full table; a coarse version runs in the
test suite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vascalc import Config, CTVolume
from vascalc.analyse import analyse

from .lesions import Geometry, Lesion, render

MEASURES = ("agatston", "volume_mm3", "mass_mg", "integrated_mass_mg")
CALIBRATION = 0.8  # mg/(cm3 HU), as configs/sample_data.yaml


@dataclass(frozen=True)
class Row:
    lesion: Lesion
    geometry: Geometry
    measure: str
    truth: float
    covered: int
    n: int
    interscan_pct: float

    @property
    def coverage(self) -> float:
        return self.covered / self.n


def _config(n_rescans: int, seed: int, enabled: bool = True) -> Config:
    return Config(scoring={"mass_calibration_mg_per_cm3_per_hu": CALIBRATION},
                  uncertainty={"enabled": enabled, "n_rescans": n_rescans, "seed": seed})


def _values(result) -> dict[str, float]:
    w, u = result.whole, result.uncertainty
    return {"agatston": w.agatston, "volume_mm3": w.volume_mm3, "mass_mg": w.mass_mg or 0.0,
            "integrated_mass_mg": (u.integrated_mass_value_mg or 0.0) if u else 0.0}


def evaluate(lesion: Lesion, geometry: Geometry, *, n_scans: int, n_truth: int,
             n_rescans: int, seed: int = 0, noise_hu: float = 20.0) -> list[Row]:
    """The coverage and interscan difference of each measure (module docstring)."""
    rng = np.random.default_rng(seed)
    spacing = (geometry.increment_mm, geometry.pixel_mm, geometry.pixel_mm)
    plain = _config(n_rescans, seed, enabled=False)
    truth_vals = {m: [] for m in MEASURES[:3]}
    for _ in range(n_truth):
        r = analyse(CTVolume(hu=render(lesion, geometry, rng, noise_hu=noise_hu),
                             spacing_mm=spacing), plain, case_id="truth")
        for m, v in _values(r).items():
            if m in truth_vals:
                truth_vals[m].append(v)
    truth = {m: float(np.mean(v)) for m, v in truth_vals.items()}
    truth["integrated_mass_mg"] = lesion.mass_mg(CALIBRATION)
    values: dict[str, list[float]] = {m: [] for m in MEASURES}
    covered = dict.fromkeys(MEASURES, 0)
    for i in range(n_scans):
        cfg = _config(n_rescans, seed * 100003 + i)
        r = analyse(CTVolume(hu=render(lesion, geometry, rng, noise_hu=noise_hu),
                             spacing_mm=spacing), cfg, case_id=f"scan{i}")
        u = r.uncertainty
        for m, v in _values(r).items():
            values[m].append(v)
            ci = getattr(u, m) if u is not None else None
            if ci is not None and ci[0] - 1e-9 <= truth[m] <= ci[1] + 1e-9:
                covered[m] += 1
    rows = []
    for m in MEASURES:
        x = np.asarray(values[m])
        mean = float(x.mean())
        diff = float(np.mean(np.abs(np.diff(x)))) / mean * 100.0 if mean > 0 else float("nan")
        rows.append(Row(lesion, geometry, m, truth[m], covered[m], n_scans, diff))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table."""
    head = (f"{'diameter':>8} {'HU':>5} {'thick/inc/px':>13} {'measure':>19} {'truth':>9} "
            f"{'coverage':>8} {'n':>5} {'interscan %':>11}")
    lines = [head]
    for r in rows:
        g = r.geometry
        lines.append(f"{r.lesion.diameter_mm:>8.1f} {r.lesion.contrast_hu:>5.0f} "
                     f"{g.thickness_mm:>4.1f}/{g.increment_mm:.1f}/{g.pixel_mm:.2f} "
                     f"{r.measure:>19} {r.truth:>9.3f} {r.coverage:>8.3f} {r.n:>5} "
                     f"{r.interscan_pct:>11.1f}")
    return "\n".join(lines)
