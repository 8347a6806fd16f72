"""Regions on the CT grid and per-region scores (pure).

Rules (docs, conventions):
- a region is a boolean mask on the CT grid, optionally grown by a margin in mm (calcium sits
  in the vessel wall, at the edge of a lumen mask), measured with a Euclidean distance
  transform in physical spacing;
- where regions overlap after growing, the first in the configured order wins (then the
  order the masks were given); exclusion masks remove their voxels from every region;
- scores are split by voxel: a lesion crossing regions contributes to each the voxels it
  has there. Each voxel carries the Agatston density weight of the slice lesion it belongs
  to, so a region's Agatston score is sum(pixel area x weight x increment / 3 mm) over its
  kept voxels; its volume and mass count the same voxels; its lesion count is the number of
  3-D lesions with at least one voxel in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

OUTSIDE = "outside"  # kept calcium in no region


@dataclass(frozen=True, eq=False)
class RegionMask:
    """A region mask on the CT grid kept as its bounding box: ``crop`` is the mask inside
    ``box``, False elsewhere. Memory follows the structure, not the scan, so the hundred-odd
    masks of a TotalSegmentator run fit beside the CT (full 512 x 512 x 300 boolean masks
    would take 79 MB each). Behaves as the full boolean array where numpy asks for one."""

    shape: tuple[int, int, int]
    box: tuple[slice, slice, slice]
    crop: np.ndarray

    @classmethod
    def from_array(cls, mask: np.ndarray) -> "RegionMask":
        m = np.asarray(mask, dtype=bool)
        if not m.any():
            return cls(m.shape, (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool))
        box = []
        for axis in range(3):
            hit = np.flatnonzero(m.any(axis=tuple(a for a in range(3) if a != axis)))
            box.append(slice(int(hit[0]), int(hit[-1]) + 1))
        return cls(m.shape, tuple(box), np.ascontiguousarray(m[tuple(box)]))  # type: ignore[arg-type]

    def transposed(self, order) -> "RegionMask":
        """The same mask with its axes reordered (axis i of the result is axis order[i])."""
        return RegionMask(tuple(self.shape[a] for a in order),  # type: ignore[arg-type]
                          tuple(self.box[a] for a in order),  # type: ignore[arg-type]
                          np.ascontiguousarray(self.crop.transpose(order)))

    def any(self) -> bool:
        return bool(self.crop.any())

    def sum(self) -> int:
        return int(self.crop.sum())

    def full(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        out[self.box] = self.crop
        return out

    def values(self, array: np.ndarray) -> np.ndarray:
        """``array[mask]`` for an array of the CT's shape (or broadcastable to it)."""
        return np.broadcast_to(array, self.shape)[self.box][self.crop]

    def __array__(self, dtype=None, copy=None):
        full = self.full()
        return full if dtype is None else full.astype(dtype)


def as_region_mask(mask) -> RegionMask:
    return mask if isinstance(mask, RegionMask) else RegionMask.from_array(mask)


def union(masks: list[RegionMask]) -> RegionMask:
    """The voxels of any of ``masks`` (all on one grid), kept as one box."""
    full = [m for m in masks if m.any()]
    if not full:
        return masks[0]
    lo = [min(m.box[a].start for m in full) for a in range(3)]
    hi = [max(m.box[a].stop for m in full) for a in range(3)]
    crop = np.zeros([b - a for a, b in zip(lo, hi)], dtype=bool)
    for m in full:
        crop[tuple(slice(b.start - a, b.stop - a) for b, a in zip(m.box, lo))] |= m.crop
    return RegionMask(full[0].shape, tuple(slice(a, b) for a, b in zip(lo, hi)),  # type: ignore[arg-type]
                      crop)


def matches(name: str, patterns) -> bool:
    """Whether the region ``name`` matches one of the shell ``patterns`` (case-sensitive)."""
    return any(fnmatchcase(name, pat) for pat in patterns)


def merge_territories(masks: list[tuple[str, RegionMask]], territories: dict[str, list[str]],
                      ) -> list[tuple[str, RegionMask]]:
    """Masks grouped into territories: each mask joins the first territory with a pattern it
    matches (a territory is the union of its masks, in the order of ``territories``); a mask no
    pattern matches keeps its own name, after the territories, in the order given."""
    if not territories:
        return masks
    groups: dict[str, list[RegionMask]] = {t: [] for t in territories}
    own: list[tuple[str, RegionMask]] = []
    for name, m in masks:
        target = next((t for t, pats in territories.items() if matches(name, pats)), None)
        if target is None:
            own.append((name, m))
        else:
            groups[target].append(m)
    return [(t, union(ms)) for t, ms in groups.items() if ms] + own


def region_class(name: str, *, coronary, vascular, bone) -> str:
    """'coronary', 'vascular', 'bone' or 'other' for a region name (docs, conventions: 'Scopes'): a name
    is coronary when it matches a coronary and a vascular pattern, vascular when it matches a
    vascular pattern, bone when it matches a bone pattern (and no vascular one)."""
    if matches(name, vascular):
        return "coronary" if matches(name, coronary) else "vascular"
    if matches(name, bone):
        return "bone"
    return "other"


def grow_region(region: RegionMask, spacing_mm, margin_mm: float) -> RegionMask:
    """``region`` grown by ``margin_mm`` (Euclidean, in physical spacing), kept as a box."""
    if margin_mm <= 0 or not region.any():
        return region
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing_mm]
    lo = [max(b.start - p, 0) for b, p in zip(region.box, pad)]
    hi = [min(b.stop + p, n) for b, p, n in zip(region.box, pad, region.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    padded = np.zeros([b - a for a, b in zip(lo, hi)], dtype=bool)
    padded[tuple(slice(b.start - a, b.stop - a) for b, a in zip(region.box, lo))] = region.crop
    dist = ndimage.distance_transform_edt(~padded, sampling=spacing_mm)
    return RegionMask(region.shape, box, dist <= margin_mm)  # type: ignore[arg-type]


def grow(mask: np.ndarray, spacing_mm, margin_mm: float) -> np.ndarray:
    """``mask`` grown by ``margin_mm`` (Euclidean, in physical spacing)."""
    if margin_mm <= 0 or not mask.any():
        return mask.copy()
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing_mm]
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dist = ndimage.distance_transform_edt(~mask[box], sampling=spacing_mm)
    out = np.zeros_like(mask)
    out[box] = dist <= margin_mm
    return out


def combine(masks: Sequence[tuple[str, RegionMask | np.ndarray]], *, spacing_mm, order: list[str],
            margins_mm: dict[str, float], default_margin_mm: float = 0.0,
            exclude: list[str]) -> tuple[np.ndarray, list[str]]:
    """One label volume (0 = no region, i = names[i - 1]) from the region masks."""

    def excluded(name: str) -> bool:
        return matches(name, exclude)

    given = [(n, as_region_mask(m)) for n, m in masks]
    regions = [(n, m) for n, m in given if not excluded(n)]
    rank = {n: i for i, n in enumerate(order)}
    regions.sort(key=lambda nm: (rank.get(nm[0], len(rank)), [n for n, _ in given].index(nm[0])))
    if len(regions) > 65534:
        raise ValueError("too many regions")
    labels = np.zeros(given[0][1].shape if given else (0, 0, 0), dtype=np.uint16)
    names = []
    for i, (name, m) in enumerate(regions, start=1):
        g = grow_region(m, spacing_mm, margins_mm.get(name, default_margin_mm))
        sub = labels[g.box]
        sub[g.crop & (sub == 0)] = i
        names.append(name)
    for name, m in given:
        if excluded(name):
            g = grow_region(m, spacing_mm, margins_mm.get(name, default_margin_mm))
            labels[g.box][g.crop] = 0
    return labels, names


@dataclass(frozen=True, eq=False)
class RegionSplit:
    """Per region (index 0 = outside, i = names[i - 1]) and per (lesion, region) piece."""

    names: list[str]
    agatston: np.ndarray
    n_voxels: np.ndarray
    volume_units: np.ndarray  # n_voxels, or the interpolated counts (vascalc.core.score)
    sum_hu: np.ndarray
    n_lesions: np.ndarray
    piece_lesion: np.ndarray  # lesion label (1..)
    piece_region: np.ndarray  # region index
    piece_agatston: np.ndarray
    piece_voxels: np.ndarray
    piece_volume_units: np.ndarray
    piece_sum_hu: np.ndarray
    piece_peak: np.ndarray
    piece_centroid_index: np.ndarray  # (n, 3)
    piece_slices: np.ndarray  # slices each piece spans (its own, not its whole lesion's)


def split_by_region(hu: np.ndarray, bands: np.ndarray, lesion_labels: np.ndarray,
                    region_labels: np.ndarray, names: list[str], *, pixel_area_mm2: float,
                    scale: float, volume_counts: np.ndarray | None = None) -> RegionSplit:
    """Scores of the kept voxels (``bands`` > 0) split by region and by lesion piece; volume
    in voxels, or in the interpolated counts of each kept voxel when given."""
    idx = np.flatnonzero(bands)
    reg = region_labels.ravel()[idx].astype(np.int64)
    les = lesion_labels.ravel()[idx].astype(np.int64)
    w = bands.ravel()[idx].astype(np.float64)
    h = hu.ravel()[idx].astype(np.float64)
    nreg = len(names) + 1
    agat = np.bincount(reg, weights=w, minlength=nreg) * pixel_area_mm2 * scale
    nvox = np.bincount(reg, minlength=nreg)
    units = None if volume_counts is None else volume_counts.ravel()[idx].astype(np.float64)
    vol_units = nvox if units is None else np.bincount(reg, weights=units, minlength=nreg)
    shu = np.bincount(reg, weights=h, minlength=nreg)
    key = les * nreg + reg
    pieces, inv = np.unique(key, return_inverse=True)
    nles = np.bincount(pieces % nreg, minlength=nreg)
    p_ag = np.bincount(inv, weights=w, minlength=pieces.size) * pixel_area_mm2 * scale
    p_vox = np.bincount(inv, minlength=pieces.size)
    p_units = p_vox if units is None else np.bincount(inv, weights=units, minlength=pieces.size)
    p_hu = np.bincount(inv, weights=h, minlength=pieces.size)
    p_peak = np.full(pieces.size, -np.inf)
    np.maximum.at(p_peak, inv, h)
    k, r, c = np.unravel_index(idx, hu.shape)
    on_slice = np.unique(inv.astype(np.int64) * hu.shape[0] + k)  # (piece, slice) pairs
    p_slices = np.bincount(on_slice // hu.shape[0], minlength=pieces.size)
    cen = np.stack([np.bincount(inv, weights=a, minlength=pieces.size) for a in (k, r, c)],
                   axis=1) / np.maximum(p_vox, 1)[:, None]
    return RegionSplit(names=names, agatston=agat, n_voxels=nvox, volume_units=vol_units,
                       sum_hu=shu, n_lesions=nles, piece_lesion=pieces // nreg,
                       piece_region=pieces % nreg, piece_agatston=p_ag, piece_voxels=p_vox,
                       piece_volume_units=p_units, piece_sum_hu=p_hu,
                       piece_peak=p_peak, piece_centroid_index=cen, piece_slices=p_slices)


def label_regions(lesion_labels: np.ndarray, labels) -> list[tuple[str, RegionMask]]:
    """A reader's labels (:class:`vascalc.records.LesionLabels`) as one region per label name:
    the voxels of the lesions labelled so, and of the single slices labelled so (a slice
    label wins over its lesion's label on that slice). Every name gets a region, empty or not,
    so a label nobody used still has its row (an artery with no calcium scores 0)."""
    index = {n: i for i, n in enumerate(labels.names, start=1)}
    shape = lesion_labels.shape
    # only the lesions' voxels are labelled: work on them, not on the whole scan (the review
    # page scores a reader's labels after every change)
    flat = np.flatnonzero(lesion_labels)
    les = lesion_labels.ravel()[flat]
    n_les = int(les.max()) if les.size else 0
    lut = np.zeros(n_les + 1, dtype=np.uint16)
    for lesion_id, name in labels.lesion.items():
        if 1 <= lesion_id <= n_les:
            lut[lesion_id] = index[name]
    lab = lut[les]
    if labels.slices:
        k_of = flat // (shape[1] * shape[2])
        for (lesion_id, k), name in labels.slices.items():
            lab[(les == lesion_id) & (k_of == k)] = index[name]
    return [(n, _from_flat(shape, flat[lab == i])) for n, i in index.items()]


def _from_flat(shape: tuple[int, ...], flat: np.ndarray) -> RegionMask:
    """The region of the voxels at flat indices ``flat`` of an array of ``shape``."""
    if flat.size == 0:
        return RegionMask(shape, (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool))  # type: ignore[arg-type]
    ijk = np.unravel_index(flat, shape)
    lo = [int(a.min()) for a in ijk]
    hi = [int(a.max()) + 1 for a in ijk]
    crop = np.zeros([b - a for a, b in zip(lo, hi)], dtype=bool)
    crop[tuple(x - a for x, a in zip(ijk, lo))] = True
    return RegionMask(shape, tuple(slice(a, b) for a, b in zip(lo, hi)), crop)  # type: ignore[arg-type]


def voxel_z_mm(shape, origin_mm, direction, spacing_mm) -> np.ndarray:
    """Patient z (mm) of every voxel centre, broadcastable to ``shape``."""
    d = np.asarray(direction, dtype=float) * np.asarray(spacing_mm)
    k, r, c = (np.arange(n).reshape([-1 if a == i else 1 for a in range(3)])
               for i, n in enumerate(shape))
    return origin_mm[2] + k * d[2, 0] + r * d[2, 1] + c * d[2, 2]


def split_aorta(masks: list[tuple[str, RegionMask]], z_mm: np.ndarray, *, mode: str,
                plane_z_mm: float | None) -> tuple[list[tuple[str, RegionMask]], bool]:
    """Replace 'aorta' by aorta_thoracic (cranial to the plane) and aorta_abdominal, and say
    whether it was split. With mode 'vertebrae' the plane is midway between the lowest voxel
    of vertebrae_T12 and the highest of vertebrae_L1 (the T12/L1 disc); without both (a chest
    CT that stops above L1, say) the aorta stays whole."""
    masks = [(n, as_region_mask(m)) for n, m in masks]
    named = dict(masks)
    if "aorta" not in named or mode == "none":
        return masks, False
    if mode == "vertebrae":
        t12 = named["vertebrae_T12"].values(z_mm) if "vertebrae_T12" in named else np.empty(0)
        l1 = named["vertebrae_L1"].values(z_mm) if "vertebrae_L1" in named else np.empty(0)
        if t12.size == 0 or l1.size == 0:
            return masks, False
        plane_z_mm = (float(t12.min()) + float(l1.max())) / 2.0
    aorta = named["aorta"]
    zz = np.broadcast_to(z_mm, aorta.shape)[aorta.box]
    thoracic = RegionMask(aorta.shape, aorta.box, aorta.crop & (zz >= plane_z_mm))
    abdominal = RegionMask(aorta.shape, aorta.box, aorta.crop & (zz < plane_z_mm))
    out = []
    for n, m in masks:
        if n == "aorta":
            out += [("aorta_thoracic", thoracic), ("aorta_abdominal", abdominal)]
        else:
            out.append((n, m))
    return out, True
