"""Simulated patients for the calcium-preserving score: each a few coronary-like lesions
(cylinders of hydroxyapatite in a water-equivalent base, sizes and densities drawn from a
clinical range) in blood, scanned twice from the same physics (sample_data.spectral): a true
non-contrast scan at 120 kVp, and a contrast dual-energy pair (80 kV and Sn150 kV, iodine 5-15
mg/mL in the blood). The true non-contrast CAC-DRS category is vascalc's score of the first.

Draws (seeded): 0 lesions with probability 0.15, else 1-4; diameter 1.5-5 mm, length 2-8 mm,
density 150-900 mg HA/cm3 (uniform; coronary calcification spans roughly this range, e.g.
the QRM/CCI phantom inserts of 200-800 mg HA/cm3). Voxels 0.5 mm, blur FWHM 0.8 mm, noise
10 HU (non-contrast and 80 kV) and 6 HU (Sn150). Limits: no motion, no lumen geometry (the
lesion sits in blood, not in a vessel wall), the same noise model as the phantoms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spectral import Beam, render

SPACING = (0.5, 0.5, 0.5)
SHAPE = (32, 64, 64)
#: in-plane slots (mm) far enough apart for each lesion's surroundings
SLOTS = ((8.0, 8.0), (8.0, 24.0), (24.0, 8.0), (24.0, 24.0))
LOW, HIGH, TNC = Beam("kvp", 80.0), Beam("kvp", 150.0, 0.6), Beam("kvp", 120.0)


@dataclass(frozen=True)
class Patient:
    """One simulated patient: lesions ((centre_mm, diameter_mm, length_mm, density), ...),
    the iodine of the contrast scan, and the three images."""

    lesions: tuple
    iodine_mg_ml: float
    tnc: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _render(beam: Beam, lesions, *, iodine: float, noise: float, seed: int) -> np.ndarray:
    inserts = [(c, d, rho) for c, d, _length, rho in lesions]
    lengths = [length for _c, _d, length, _rho in lesions]
    return render(beam, inserts, shape=SHAPE, spacing_mm=SPACING, medium="blood",
                  iodine_mg_ml=iodine, fwhm_mm=0.8, noise_hu=noise, seed=seed,
                  lengths_mm=lengths)


def simulate(n: int, *, seed: int = 0) -> list[Patient]:
    """``n`` patients drawn with ``seed`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 0 if rng.random() < 0.15 else int(rng.integers(1, 5))
        slots = rng.permutation(len(SLOTS))[:k]
        lesions = tuple(((8.0, *SLOTS[s]), float(rng.uniform(1.5, 5.0)),
                         float(rng.uniform(2.0, 8.0)), float(rng.uniform(150.0, 900.0)))
                        for s in slots)
        iodine = float(rng.uniform(5.0, 15.0))
        base = 1000 * (seed + 1) + 10 * i
        out.append(Patient(
            lesions=lesions, iodine_mg_ml=iodine,
            tnc=_render(TNC, lesions, iodine=0.0, noise=10.0, seed=base),
            low=_render(LOW, lesions, iodine=iodine, noise=10.0, seed=base + 1),
            high=_render(HIGH, lesions, iodine=iodine, noise=6.0, seed=base + 2)))
    return out
