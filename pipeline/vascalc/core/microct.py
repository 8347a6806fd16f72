"""Micro-CT calcification from a stack read in slabs: density threshold, volume, mineral mass,
lesions joined across slab boundaries, per VOI region. Pure: slabs in, numbers out.

Definitions (each a config key, ``microct.*``):

- density: mg HA/cm3 = slope x stored value + intercept, from a named calibration
  (:class:`DensityCalibration`: the scanner header, HA rods, or the config);
- calcified voxel: density >= ``threshold_mg_ha_cm3`` (in the stored units: the smallest
  stored value whose density reaches it, so the test is exact on integer data);
- volume (mm3) = kept voxels x voxel volume; mineral mass (mg) = sum over the kept voxels of
  density x voxel volume, computed as slope x sum(stored) + intercept x n (the sum of integer
  values is exact, so slabs of any size give the same mass);
- lesion: a 3-D 26-connected component of calcified voxels (26 neighbours: as the clinical
  lesions of this package, DESIGN.md 'Measurement conventions'), kept when it has at least
  ``min_lesion_voxels`` voxels. Components are labelled per slab (scipy.ndimage.label) and the
  pieces that touch across a slab boundary under 26-connectivity are joined by union-find
  (Tarjan RE, Efficiency of a good but not linear set union algorithm, J ACM 1975;22:215-225),
  which gives exactly the components of the whole volume; lesions are numbered by their first
  voxel in raster order, as ndimage numbers them in one pass.

Agatston is not defined here: its 1990 definition (3 mm EBCT slices, 1 mm2, 130 HU at 120 kVp)
does not carry over to voxels of micrometres, so micro-CT rows withhold it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .slab_join import PieceTable


@dataclass(frozen=True, kw_only=True)
class DensityCalibration:
    """Stored value -> mg HA/cm3, linear, and where it came from.

    Attributes
    ----------
    slope : float
        mg HA/cm3 per stored unit (> 0).
    intercept : float
        mg HA/cm3 at stored value 0.
    source : str
        ``header:<format>``, ``rods:<file>`` or ``config``.
    valid_min_mg_ha_cm3, valid_max_mg_ha_cm3 : float or None
        The density range the calibration was measured over (the rods); None when the
        source gives none (a header, a config without a range).

    Examples
    --------
    >>> cal = DensityCalibration(slope=355.52 / 4096, intercept=-196.6, source="header:scanco")
    >>> round(float(cal.density(4096)), 2)  # mu = 1/cm: 355.52 - 196.6
    158.92
    """

    slope: float
    intercept: float
    source: str
    valid_min_mg_ha_cm3: float | None = None
    valid_max_mg_ha_cm3: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slope) and self.slope > 0 and math.isfinite(self.intercept)):
            raise ValueError(f"a density calibration needs a finite positive slope and a finite "
                             f"intercept, got slope {self.slope!r}, intercept {self.intercept!r}")

    def density(self, stored):
        """mg HA/cm3 of stored values (float64)."""
        return self.slope * np.asarray(stored, dtype=np.float64) + self.intercept

    def stored_at_least(self, density: float, dtype: np.dtype) -> float:
        """The stored-value threshold equivalent to density >= ``density``: for integer data
        the smallest integer whose density reaches it (checked with the same arithmetic as
        :meth:`density`), for float data the real value."""
        v = (density - self.intercept) / self.slope
        if np.dtype(dtype).kind not in "iu":
            return v
        k = math.ceil(v)
        while float(self.density(k - 1)) >= density:
            k -= 1
        while float(self.density(k)) < density:
            k += 1
        return float(k)


@dataclass(frozen=True, kw_only=True)
class MicroLesion:
    """One 3-D lesion: its voxels, volume, mass (None without a calibration), centroid in mm
    from the first voxel (slice, row, col order), slices spanned and peak stored value."""

    lesion_id: int
    n_voxels: int
    volume_mm3: float
    mass_mg: float | None
    peak_density_mg_ha_cm3: float | None
    centroid_mm: tuple[float, float, float]
    first_slice: int
    last_slice: int
    region: str


@dataclass(frozen=True, kw_only=True)
class MicroScore:
    """The calcification of one stack.

    ``regions`` maps each VOI name (and ``outside``) to (voxels, volume_mm3, mass_mg or
    None, lesion pieces); ``beyond_calibration_voxels`` counts kept voxels denser than the
    densest rod (None when the calibration has no range)."""

    n_voxels: int
    volume_mm3: float
    mass_mg: float | None
    lesions: tuple[MicroLesion, ...]
    regions: dict[str, tuple[int, float, float | None]] = field(default_factory=dict)
    beyond_calibration_voxels: int | None = None
    threshold_stored: float = 0.0
    slabs: int = 0


#: the 3x3 in-plane offsets that link a voxel to the next slice under 26-connectivity
_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]


def _links(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Pairs (piece on the last plane of the previous slab, piece on the first plane of this
    one) that touch under 26-connectivity."""
    rows, cols = prev.shape
    pairs = []
    for dr, dc in _OFFSETS:
        a = prev[max(0, -dr):rows - max(0, dr), max(0, -dc):cols - max(0, dc)]
        b = cur[max(0, dr):rows - max(0, -dr), max(0, dc):cols - max(0, -dc)]
        both = (a > 0) & (b > 0)
        if both.any():
            pairs.append(np.stack([a[both], b[both]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


class _SlabStats:
    """Per-piece sums of one slab, accumulated plane by plane."""

    def __init__(self, n: int) -> None:
        self.count = np.zeros(n + 1, dtype=np.int64)
        self.total = np.zeros(n + 1)
        self.sums = np.zeros((n + 1, 3))
        self.peak = np.full(n + 1, -np.inf)
        self.zmin = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
        self.zmax = np.full(n + 1, -1, dtype=np.int64)
        self.regions: dict[tuple[int, int], list[float]] = {}

    def columns(self) -> dict[str, np.ndarray]:
        """Per piece (labels 1..n), the columns of :class:`PieceTable`."""
        return {"count": self.count[1:], "total": self.total[1:], "s0": self.sums[1:, 0],
                "s1": self.sums[1:, 1], "s2": self.sums[1:, 2], "peak": self.peak[1:],
                "zmin": self.zmin[1:], "zmax": self.zmax[1:]}

    def add_plane(self, z: int, lab, vals, rows, cols, rv) -> None:
        m = len(self.count)
        c = np.bincount(lab, minlength=m)
        self.count += c
        self.total += np.bincount(lab, weights=vals, minlength=m)
        self.sums[:, 0] += c * float(z)
        self.sums[:, 1] += np.bincount(lab, weights=rows.astype(np.float64), minlength=m)
        self.sums[:, 2] += np.bincount(lab, weights=cols.astype(np.float64), minlength=m)
        np.maximum.at(self.peak, lab, vals)
        hit = c > 0
        self.zmin[hit] = np.minimum(self.zmin[hit], z)
        self.zmax[hit] = z
        if rv is not None:
            key = lab.astype(np.int64) * (int(rv.max()) + 1) + rv
            uniq, inv = np.unique(key, return_inverse=True)
            nv = np.bincount(inv.ravel(), minlength=len(uniq))
            sv = np.bincount(inv.ravel(), weights=vals, minlength=len(uniq))
            width = int(rv.max()) + 1
            for u, a, b in zip(uniq.tolist(), nv.tolist(), sv.tolist()):
                acc = self.regions.setdefault((u // width, u % width), [0, 0.0])
                acc[0] += a
                acc[1] += b


def score_slabs(slabs: Iterable[tuple[int, np.ndarray, np.ndarray | None]], *,
                spacing_mm: tuple[float, float, float], threshold_stored: float,
                calibration: DensityCalibration | None, region_names: dict[int, str] | None = None,
                min_lesion_voxels: int = 1,
                progress: Callable[[int], None] | None = None) -> MicroScore:
    """Score a stack given as consecutive slabs ``(first_slice, values, voi_labels or None)``.

    Parameters
    ----------
    slabs : iterable of (int, ndarray, ndarray or None)
        Consecutive slabs (slice, row, col) of stored values, from slice 0 on, each with the
        VOI label slab of the same shape (integers, 0 = outside) or None.
    spacing_mm : (float, float, float)
        Voxel size in mm (slice, row, col).
    threshold_stored : float
        A voxel is calcified when its stored value is >= this
        (:meth:`DensityCalibration.stored_at_least`).
    calibration : DensityCalibration or None
        Without one, mass and densities are None (never guessed).
    region_names : dict, optional
        VOI label value -> region name; a value not named is ``label_<value>``.
    min_lesion_voxels : int
        Lesions with fewer voxels are dropped (with their voxels).
    progress : callable, optional
        Called with the number of slices done after each slab.

    Returns
    -------
    MicroScore

    Examples
    --------
    >>> v = np.zeros((4, 5, 5), dtype=np.int16); v[0:4, 2, 2] = 100   # one rod through 4 slices
    >>> slabs = ((z, v[z:z + 2], None) for z in (0, 2))                  # read in slabs of 2
    >>> s = score_slabs(slabs, spacing_mm=(0.01, 0.01, 0.01), threshold_stored=50,
    ...                 calibration=None)
    >>> s.n_voxels, len(s.lesions), s.mass_mg is None
    (4, 1, True)
    """
    from scipy import ndimage  # lazy: the scoring path of clinical CT does not need it here

    names = dict(region_names or {})
    structure = np.ones((3, 3, 3), dtype=bool)
    table = PieceTable(min_voxels=min_lesion_voxels)
    prev_plane: np.ndarray | None = None  # local piece index + 1 on the last plane read
    expect = beyond = n_slabs = 0
    last_open = 0
    vmax = None if calibration is None else calibration.valid_max_mg_ha_cm3
    for z0, values, voi in slabs:
        if z0 != expect:
            raise ValueError(f"slab starts at slice {z0}, expected {expect}")
        if values.ndim != 3 or not values.shape[0]:
            raise ValueError(f"a slab must be 3-D with a slice, got shape {values.shape}")
        if voi is not None and voi.shape != values.shape:
            raise ValueError(f"the VOI slab's shape {voi.shape} differs from the stack's "
                             f"{values.shape}")
        labels, n = ndimage.label(values >= threshold_stored, structure=structure)
        st = _SlabStats(n)
        for k in range(values.shape[0]):  # plane by plane: scratch memory of one plane
            rows, cols = np.nonzero(labels[k])
            if not rows.size:
                continue
            lab = labels[k][rows, cols].astype(np.intp)
            vals = values[k][rows, cols].astype(np.float64)
            if calibration is not None and vmax is not None:
                beyond += int(np.count_nonzero(calibration.density(vals) > vmax))
            st.add_plane(z0 + k, lab, vals, rows, cols,
                         None if voi is None else voi[k][rows, cols].astype(np.int64))
        regions = None if not st.regions else np.array(
            [(piece - 1, rv, nv, sv) for (piece, rv), (nv, sv) in st.regions.items()],
            dtype=np.float64)
        base = table.add(st.columns(), regions)
        if prev_plane is not None and n:
            first = np.where(labels[0] > 0, labels[0].astype(np.int64) + base, 0)
            for a, b in _links(prev_plane, first):
                table.union(int(a) - 1, int(b) - 1)
        last = labels[-1].astype(np.int64)
        prev_plane = np.where(last > 0, last + base, 0)
        del labels
        open_now = np.unique(prev_plane[prev_plane > 0]) - 1
        if table.n > 2 * last_open + 4096:  # amortised: close what can grow no more
            remap = table.compact(open_now)
            prev_plane = np.where(prev_plane > 0, remap[np.maximum(prev_plane - 1, 0)] + 1, 0)
            last_open = table.n
        expect = z0 + values.shape[0]
        n_slabs += 1
        if progress is not None:
            progress(expect)
    lesions, lesion_regions = table.finish()
    return _assemble(lesions, lesion_regions, names, spacing_mm=spacing_mm,
                     calibration=calibration, threshold_stored=threshold_stored,
                     beyond=beyond if vmax is not None else None, n_slabs=n_slabs)


def _assemble(les: dict[str, np.ndarray], lesion_regions: dict[tuple[int, int], list[float]],
              names: dict[int, str], *, spacing_mm, calibration, threshold_stored, beyond,
              n_slabs) -> MicroScore:
    vv = float(np.prod(spacing_mm))  # mm3

    def mass(n_vox: float, stored_sum: float) -> float | None:
        if calibration is None:
            return None
        return (calibration.slope * stored_sum + calibration.intercept * n_vox) * vv / 1000.0

    def region_name(v: int) -> str:
        return "outside" if v == 0 else names.get(v, f"label_{v}")

    region_vox: dict[int, list[float]] = {}
    home: dict[int, tuple[int, float]] = {}  # lesion gid -> (region value, voxels there)
    for (g, rv), (nv, sv) in sorted(lesion_regions.items()):
        acc = region_vox.setdefault(rv, [0.0, 0.0])
        acc[0] += nv
        acc[1] += sv
        if g not in home or nv > home[g][1]:
            home[g] = (rv, nv)  # the region holding most of the lesion (lowest value on ties)
    lesions = []
    for i in range(len(les["gid"])):
        n = int(les["count"][i])
        lesions.append(MicroLesion(
            lesion_id=i + 1, n_voxels=n, volume_mm3=n * vv,
            mass_mg=mass(n, float(les["total"][i])),
            peak_density_mg_ha_cm3=None if calibration is None
            else float(calibration.density(les["peak"][i])),
            centroid_mm=(float(les["s0"][i] / n * spacing_mm[0]),
                         float(les["s1"][i] / n * spacing_mm[1]),
                         float(les["s2"][i] / n * spacing_mm[2])),
            first_slice=int(les["zmin"][i]), last_slice=int(les["zmax"][i]),
            region=region_name(home.get(int(les["gid"][i]), (0, 0))[0])))
    n_all = int(les["count"].sum())
    regions = {region_name(v): (int(a[0]), a[0] * vv, mass(a[0], a[1]))
               for v, a in sorted(region_vox.items())}
    return MicroScore(n_voxels=n_all, volume_mm3=n_all * vv,
                      mass_mg=mass(n_all, float(les["total"].sum())), lesions=tuple(lesions),
                      regions=regions, beyond_calibration_voxels=beyond,
                      threshold_stored=float(threshold_stored), slabs=n_slabs)
