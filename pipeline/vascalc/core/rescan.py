"""The rescan model: what other acquisitions of the same calcium would have measured.

Pure functions over numpy arrays; the input is never modified. A scan is one sample of its
calcium: where the first slice happened to start, where the pixel grid fell in plane, and the
noise of that acquisition all change Agatston, volume and mass (Rutten A et al., Impact of
slice start on coronary calcium scoring, shifting the start by 1.5 mm reclassified 21 of 228
patients, Radiology 2008; interscan variability 61 % for scores 1-30, Budoff MJ et al.,
CARE-2). The model, from the scan's own voxels:

- geometry: each simulated rescan starts its slices at a random offset, uniform within one
  slice increment, and its pixel grid at a random sub-pixel offset in plane. Along z each
  slice is the integral of the object over its slab, so the running sum of the slices gives
  the object's cumulative integral at the slab boundaries exactly (slices taken as contiguous
  slabs of one increment); a shifted slice is the difference of that cumulative integral,
  interpolated monotonically (PCHIP: Fritsch FN, Carlson RE, SIAM J Numer Anal 1980;17:238),
  at its shifted boundaries: the histopolation of the slice profile's partial volume, which
  keeps the calcium's integral and its sharpness along z better than interpolating the slices
  themselves. In plane the slices are shifted by cubic B-spline interpolation
  (scipy.ndimage.shift, order 3; Unser M, IEEE Signal Process Mag 1999;16:22-38). The scan's
  voxels already carry the scanner's slice profile and in-plane blur, so no nominal profile is
  assumed. On the harness of sample_data.rescan_harness the simulated spread of Agatston is
  still narrower than the true interscan spread (about 0.6 to 0.85 of it): sub-slice detail a
  thick slice never recorded cannot be resimulated;
- noise: the scan's own noise, measured from the image (:func:`noise_sd_hu`), added as fresh
  Gaussian noise to each rescan (the scan's own noise stays in it, so the simulated spread is,
  if anything, wide);
- each rescan is scored by the caller's scorer, exactly as the scan was;
- a 95 % interval of the truth (the measure's mean over acquisitions) is the basic (pivot)
  bootstrap interval centred on the median of the rescans (Davison AC, Hinkley DV, Bootstrap
  Methods and their Application, Cambridge 1997, eq. 5.6):
  [obs - (q97.5 - median), obs + (median - q2.5)], floored at 0; the rescans' own shift from
  the observed value (the resampling's extra smoothing) is not taken for a bias of the scan.

Deterministic for a given seed (numpy's PCG64 generator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

#: the HU window of the voxels whose neighbour differences measure the noise (soft tissue,
#: blood, water: no calcium, no air edge)
NOISE_WINDOW_HU = (-200.0, 200.0)
#: at least this many voxel pairs for a noise estimate
MIN_NOISE_PAIRS = 200
#: the measures with an interval, and the (low, high) columns of each in scans.csv
INTERVAL_COLUMNS = {
    "agatston": ("agatston_ci95_low", "agatston_ci95_high"),
    "volume_mm3": ("volume_ci95_low_mm3", "volume_ci95_high_mm3"),
    "mass_mg": ("mass_ci95_low_mg", "mass_ci95_high_mg"),
    "integrated_mass_mg": ("integrated_mass_ci95_low_mg", "integrated_mass_ci95_high_mg")}


def noise_sd_hu(hu: np.ndarray, *, window_hu: tuple[float, float] = NOISE_WINDOW_HU,
                max_slices: int = 16) -> float | None:
    """Image noise (HU): 1.4826 x the median absolute deviation of the differences between
    horizontally adjacent voxels both within ``window_hu``, divided by sqrt(2) (the
    difference of two independent voxels has twice the variance; the MAD makes edges and
    anatomy count little: Rousseeuw PJ, Croux C, JASA 1993;88:1273). At most ``max_slices``
    evenly spaced slices are read. None when fewer than :data:`MIN_NOISE_PAIRS` pairs lie in
    the window. Correlated noise (sharp or smooth kernels) is measured as its voxel-pair
    difference, which understates a smooth kernel's noise.

    >>> rng = np.random.default_rng(0)
    >>> round(noise_sd_hu(rng.normal(40, 20, (4, 64, 64))), 0)
    20.0
    """
    if hu.ndim != 3:
        raise ValueError(f"hu must be 3-D (slice, row, col), got shape {hu.shape}")
    step = max(1, hu.shape[0] // max_slices)
    sub = np.asarray(hu[::step], dtype=np.float64)
    a, b = sub[:, :, :-1], sub[:, :, 1:]
    lo, hi = window_hu
    ok = (a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)
    d = (a - b)[ok]
    if d.size < MIN_NOISE_PAIRS:
        return None
    mad = float(np.median(np.abs(d - np.median(d))))
    return float(1.4826 * mad / np.sqrt(2.0))


@dataclass(frozen=True, eq=False)
class Rescans:
    """The measures of each simulated rescan: ``draws[name]`` one value per rescan (NaN where
    the scorer gave none), and the shifts used (rescans x 3, in voxels: slice, row, col)."""

    draws: Mapping[str, np.ndarray]
    shifts_vox: np.ndarray


def simulate(hu: np.ndarray, score: Callable[[np.ndarray], Mapping[str, float | None]], *,
             noise_hu: float, n_rescans: int, seed: int) -> Rescans:
    """Score ``n_rescans`` simulated rescans of ``hu`` (module docstring): each shifted by a
    uniform random offset in [-0.5, 0.5) voxel along every axis (one slice increment along z,
    by histopolation; one pixel in plane, by cubic B-spline), plus Gaussian noise of sd
    ``noise_hu``, then scored by ``score`` (HU array -> measures).

    >>> hu = np.zeros((5, 12, 12)); hu[2, 4:8, 4:8] = 400.0
    >>> peak = lambda v: {"peak": float(v.max())}
    >>> a = simulate(hu, peak, noise_hu=5.0, n_rescans=3, seed=1)
    >>> b = simulate(hu, peak, noise_hu=5.0, n_rescans=3, seed=1)
    >>> a.draws["peak"].shape, bool((a.draws["peak"] == b.draws["peak"]).all())  # one seed, one answer
    ((3,), True)
    """
    from scipy import ndimage  # lazy: only an uncertainty run needs it
    from scipy.interpolate import PchipInterpolator  # lazy: as ndimage

    if n_rescans < 2:
        raise ValueError(f"n_rescans must be at least 2, got {n_rescans!r}")
    if not np.isfinite(noise_hu) or noise_hu < 0:
        raise ValueError(f"noise_hu must be finite and >= 0, got {noise_hu!r}")
    rng = np.random.default_rng(seed)
    values_hu = np.asarray(hu, dtype=np.float64)
    nz = values_hu.shape[0]
    bounds = np.arange(nz + 1, dtype=np.float64)  # slab boundaries, in increments
    running = np.concatenate([np.zeros((1, *values_hu.shape[1:])), np.cumsum(values_hu, axis=0)])
    cumulative = PchipInterpolator(bounds, running, axis=0, extrapolate=True)
    shifts = rng.uniform(-0.5, 0.5, size=(n_rescans, 3))
    values: dict[str, list[float]] = {}
    for i in range(n_rescans):
        at = np.clip(bounds + shifts[i, 0], 0.0, float(nz))
        width = np.maximum(np.diff(at), 1e-9)[:, None, None]  # the end slabs are cut at the edge
        moved = np.diff(cumulative(at), axis=0) / width
        for k in range(nz):  # in plane, slice by slice: a 2-D spline (16 taps, not 64)
            moved[k] = ndimage.shift(moved[k], (shifts[i, 1], shifts[i, 2]), order=3, mode="mirror")
        if noise_hu > 0:
            moved += rng.normal(0.0, noise_hu, size=moved.shape)
        for name, v in score(moved).items():
            values.setdefault(name, []).append(np.nan if v is None else float(v))
    return Rescans({k: np.asarray(v, dtype=np.float64) for k, v in values.items()}, shifts)


def interval(observed: float, draws: np.ndarray, *, level: float = 0.95,
             ) -> tuple[float, float] | None:
    """The basic bootstrap interval of the truth around ``observed`` from the rescans'
    ``draws`` (module docstring), floored at 0; None when a draw is missing.

    >>> interval(10.0, np.array([8.0, 9.0, 10.0, 11.0, 12.0]), level=0.5)
    (9.0, 11.0)
    """
    d = np.asarray(draws, dtype=np.float64)
    if d.size == 0 or not np.isfinite(d).all() or not np.isfinite(observed):
        return None
    alpha = (1.0 - level) / 2.0
    lo_q, med, hi_q = np.quantile(d, [alpha, 0.5, 1.0 - alpha])
    return (max(0.0, float(observed - (hi_q - med))), max(0.0, float(observed + (med - lo_q))))


def category_probabilities(agatston_draws: np.ndarray, *, upper_bounds: tuple[float, ...],
                           zero_category: bool = True) -> tuple[float, ...]:
    """The share of rescans in each category. With ``zero_category`` (risk categories,
    Rumberger et al. 1999, bounds inclusive above) the categories are 0, (0, b1], (b1, b2],
    ..., > b_last; without it (CAC-DRS, Hecht et al. 2018, given its lower bounds 100, 300)
    they are 0, (0, b1), [b1, b2), ..., >= b_last.

    >>> category_probabilities(np.array([0.0, 5.0, 50.0, 50.0]), upper_bounds=(10.0, 100.0, 400.0))
    (0.25, 0.25, 0.5, 0.0, 0.0)
    """
    a = np.asarray(agatston_draws, dtype=np.float64)
    if a.size == 0 or not np.isfinite(a).all():
        raise ValueError("category probabilities need every rescan's Agatston score")
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    cat = np.where(a == 0, 0, 1 + (np.searchsorted(bounds, a, side="left") if zero_category
                                   else np.searchsorted(bounds, a, side="right")))
    counts = np.bincount(cat, minlength=len(bounds) + 2)
    return tuple(float(c) / a.size for c in counts)
