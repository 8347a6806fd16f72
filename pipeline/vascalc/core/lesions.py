"""Calcium segmentation: voxels at or above the threshold, 2-D slice lesions, 3-D lesions.

Pure functions over numpy arrays; the input is never modified. Definitions:

- calcium voxel: HU >= ``threshold_hu`` (130 HU: Agatston AS et al., Quantification of
  coronary artery calcium using ultrafast computed tomography, J Am Coll Cardiol
  1990;15:827-832);
- slice lesion: a connected component of calcium voxels on one axial slice, 8-connected by
  default (Agatston 1990 scored each lesion per slice);
- kept slice lesion: area >= ``min_lesion_area_mm2`` (1 mm^2 in Agatston 1990 and in the
  GE/TeraRecon convention, van Praagh et al., Med Phys 2021);
- lesion (3-D): a connected component, 26-connected by default, of the voxels of kept slice
  lesions. It is built by linking slice lesions whose voxels touch under the chosen
  connectivity (on neighbouring slices, and on one slice where the 3-D neighbourhood has
  in-plane neighbours the slice connectivity lacks), which gives exactly the components of the
  kept-voxel mask. With slice connectivity 8 and 3-D connectivity 6 a slice lesion can belong
  to several 3-D lesions (its diagonal neighbours are not 6-connected): it is then cut into its
  4-connected pieces, each carrying the slice lesion's kept status and density weight, so the
  slice lesion is still kept and weighted once (Agatston) and the 3-D lesions are still the
  components of the kept voxels.

Two implementations give identical results: the streaming C kernel of
``pipeline/vascalc/core/_ckernel.c`` (the default; compiled at install, nothing to load at start-up) and a
scipy reference, slice by slice (one 2-D label image
in memory at a time) with statistics over the foreground voxels only. Neither allocates a
label volume of the whole scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    from . import _ckernel  # type: ignore[attr-defined]  # the compiled extension
except ImportError:  # built without a C compiler: the scipy reference engine serves
    _ckernel = None

#: the engine ``auto`` uses in this installation (recorded in run.json)
AUTO_ENGINE = "c" if _ckernel is not None else "scipy"

#: in-plane offsets linking a voxel to the previous slice, per 3-D connectivity
_LINK_OFFSETS = {
    6: [(0, 0)],
    18: [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)],
    26: [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)],
}

#: relative slack on the area limit, so that an area of exactly 1 mm^2 made of float pixel
#: spacings (e.g. 4 x 0.25 mm^2 computed as 0.9999999999) counts as 1 mm^2
AREA_RTOL = 1e-9


@dataclass(frozen=True, eq=False)
class SliceLesions:
    """Per slice lesion (one entry each, kept or not), as parallel arrays.

    ``lesion`` is the 0-based index of the 3-D lesion a kept slice lesion belongs to, -1 for
    dropped ones. ``sum_row``/``sum_col`` are sums of voxel indices, for centroids.

    With slice connectivity 8 and 3-D connectivity 6 the entries are the 4-connected pieces of
    the slice lesions: ``parent`` is then the index of each piece's slice lesion (counted once
    in ``n_slice_lesions``) and ``weight_peak_hu`` its slice lesion's peak, which sets the
    density weight; both are None when the entries are the slice lesions themselves.
    """

    slice_index: np.ndarray  # int64
    area_px: np.ndarray  # int64
    peak_hu: np.ndarray  # float64
    sum_hu: np.ndarray  # float64
    sum_row: np.ndarray  # float64
    sum_col: np.ndarray  # float64
    kept: np.ndarray  # bool
    lesion: np.ndarray  # int64
    n_lesions: int
    parent: np.ndarray | None = None  # int64
    weight_peak_hu: np.ndarray | None = None  # float64

    @property
    def n(self) -> int:
        return int(self.slice_index.size)

    @property
    def weight_peak(self) -> np.ndarray:
        """The peak HU that sets each entry's density weight: its slice lesion's."""
        return self.peak_hu if self.weight_peak_hu is None else self.weight_peak_hu

    @property
    def n_kept_slice_lesions(self) -> int:
        if self.parent is None:
            return int(self.kept.sum())
        return int(np.unique(self.parent[self.kept]).size)


def _needs_in_plane_links(slice_connectivity: int, lesion_connectivity: int) -> bool:
    """True when 3-D lesions join slice lesions of one slice: 4-connected slice lesions touching
    diagonally are one 18- or 26-connected lesion. The C kernel links slice lesions across
    slices only, so these settings (Comp2Comp's and CACSLabeler's slice connectivity 4) use the
    scipy engine, which adds the in-plane links."""
    return slice_connectivity == 4 and lesion_connectivity in (18, 26)


def _splits_slice_lesions(slice_connectivity: int, lesion_connectivity: int) -> bool:
    """True when a slice lesion can belong to several 3-D lesions (8-connected in plane, only
    6-connected in 3-D): the scipy engine cuts it into its 4-connected pieces."""
    return slice_connectivity == 8 and lesion_connectivity == 6


def _needs_scipy(slice_connectivity: int, lesion_connectivity: int) -> bool:
    return (_needs_in_plane_links(slice_connectivity, lesion_connectivity)
            or _splits_slice_lesions(slice_connectivity, lesion_connectivity))


def engine_for(slice_connectivity: int, lesion_connectivity: int) -> str:
    """The engine ``auto`` uses for these settings here: 'c', or 'scipy' where the kernel was
    not built or the pair needs links the kernel does not make (run.json records it)."""
    return "scipy" if _needs_scipy(slice_connectivity, lesion_connectivity) else AUTO_ENGINE


def _structure_2d(connectivity: int) -> np.ndarray:
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    if connectivity == 8:
        return np.ones((3, 3), dtype=bool)
    if connectivity == 4:
        return ndimage.generate_binary_structure(2, 1)
    raise ValueError(f"slice connectivity must be 4 or 8, got {connectivity!r}")


def find_slice_lesions(
    hu: np.ndarray,
    *,
    pixel_area_mm2: float,
    threshold_hu: float,
    min_lesion_area_mm2: float,
    slice_connectivity: int = 8,
    lesion_connectivity: int = 26,
    engine: str = "auto",
) -> SliceLesions:
    """Label slice lesions and group the kept ones into 3-D lesions.

    ``hu`` is (slice, row, col); ``pixel_area_mm2`` is row spacing x column spacing.
    ``engine``: 'c' (the streaming kernel, ``pipeline/vascalc/core/_ckernel.c``), 'scipy' (per-slice
    scipy.ndimage.label, the reference) or 'auto' (the C kernel when it was built).
    """
    if hu.ndim != 3:
        raise ValueError(f"hu must be 3-D (slice, row, col), got shape {hu.shape}")
    if hu.dtype.kind not in "iuf" or (hu.dtype.kind == "f" and hu.dtype.itemsize > 8):
        raise ValueError(f"hu must hold real numbers of at most 64 bits, got {hu.dtype} (cast "
                         "it to float64 yourself if that is exact)")
    if slice_connectivity not in (4, 8):
        raise ValueError(f"slice connectivity must be 4 or 8, got {slice_connectivity!r}")
    if lesion_connectivity not in _LINK_OFFSETS:
        raise ValueError(f"lesion connectivity must be 6, 18 or 26, got {lesion_connectivity!r}")
    if engine not in ("auto", "c", "scipy"):
        raise ValueError(f"engine must be 'auto', 'c' or 'scipy', got {engine!r}")
    if engine != "scipy" and not _needs_scipy(slice_connectivity, lesion_connectivity):
        if _ckernel is None:
            if engine == "c":
                raise ImportError("the C kernel vascalc.core._ckernel is not built; reinstall vascalc "
                                  "with a C compiler present (pip install -e .)")
        else:
            return _scan_c(hu, pixel_area_mm2, threshold_hu, min_lesion_area_mm2,
                           slice_connectivity, lesion_connectivity)
    return find_slice_lesions_scipy(
        hu, pixel_area_mm2=pixel_area_mm2, threshold_hu=threshold_hu,
        min_lesion_area_mm2=min_lesion_area_mm2, slice_connectivity=slice_connectivity,
        lesion_connectivity=lesion_connectivity)


def _scan_c(hu: np.ndarray, pixel_area_mm2: float, threshold_hu: float,
            min_lesion_area_mm2: float, slice_connectivity: int,
            lesion_connectivity: int) -> SliceLesions:
    min_px = min_lesion_area_mm2 / pixel_area_mm2 * (1.0 - AREA_RTOL)
    if hu.dtype in (np.int16, np.int32, np.float32, np.float64):
        data = hu
    elif hu.dtype.kind in "iu" and hu.dtype.itemsize < 4:
        data = hu.astype(np.int32)  # int8, uint8, uint16: exact
    else:
        # float16, and integers wider than int32 (int64, uint32, uint64): float64 keeps their
        # order against the threshold, where an int32 cast would wrap (3e9 HU is not -1.3e9)
        data = hu.astype(np.float64)
    data = np.ascontiguousarray(data)
    fmt = {np.dtype(np.int16): "h", np.dtype(np.int32): "i", np.dtype(np.float32): "f",
           np.dtype(np.float64): "d"}[data.dtype]
    n_sl, n_r, n_c = data.shape
    # the kernel compares every value with the threshold in double precision, exactly
    (_, n_les, sl_idx, area, peak, sums, srow, scol, kept, lesion) = _ckernel.scan(
        data, n_sl, n_r, n_c, fmt, float(threshold_hu), float(min_px), slice_connectivity == 8,
        int(lesion_connectivity))
    i8, f8 = np.int64, np.float64
    return SliceLesions(np.frombuffer(sl_idx, i8), np.frombuffer(area, i8), np.frombuffer(peak, f8),
                        np.frombuffer(sums, f8), np.frombuffer(srow, f8), np.frombuffer(scol, f8),
                        np.frombuffer(kept, np.bool_), np.frombuffer(lesion, i8), int(n_les))


def _add_edges(edges_a: list, edges_b: list, here: np.ndarray, other: np.ndarray,
               touch: np.ndarray, base_next: int) -> None:
    """Edges between the slice lesions (global id + 1 in ``here`` and ``other``) of the touching
    voxel pairs: one edge per pair of slice lesions, not per touching voxel."""
    pair = np.unique((here[touch] - 1) * base_next + (other[touch] - 1))
    edges_a.append(pair // base_next)
    edges_b.append(pair % base_next)


def find_slice_lesions_scipy(
    hu: np.ndarray,
    *,
    pixel_area_mm2: float,
    threshold_hu: float,
    min_lesion_area_mm2: float,
    slice_connectivity: int = 8,
    lesion_connectivity: int = 26,
) -> SliceLesions:
    """Reference implementation: scipy.ndimage.label slice by slice, statistics over the
    foreground voxels, slice lesions linked through their touching voxels."""
    from scipy import ndimage  # lazy: scipy, only for the passes that need it
    from scipy.sparse import coo_matrix  # lazy: scipy, only for the passes that need it
    from scipy.sparse.csgraph import connected_components  # lazy: scipy, only for the passes that need it

    structure = _structure_2d(slice_connectivity)
    offsets = _LINK_OFFSETS[lesion_connectivity]
    in_plane_links = _needs_in_plane_links(slice_connectivity, lesion_connectivity)
    split = _splits_slice_lesions(slice_connectivity, lesion_connectivity)
    structure_4 = _structure_2d(4)
    n_rows, n_cols = hu.shape[1:]
    min_px = min_lesion_area_mm2 / pixel_area_mm2 * (1.0 - AREA_RTOL)

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("slice", "area", "peak", "sum", "row",
                                                          "col", "kept", "parent", "wpeak")}
    edges_a: list[np.ndarray] = []
    edges_b: list[np.ndarray] = []
    prev_kept_labels: np.ndarray | None = None  # global ids + 1 of kept lesions, 0 elsewhere
    base = 0  # global id of the first entry (slice lesion or piece) of the current slice
    n_parents = 0  # slice lesions before this slice (pieces name theirs)
    label_img = np.empty((n_rows, n_cols), dtype=np.int32)
    piece_img = np.empty((n_rows, n_cols), dtype=np.int32)

    for k in range(hu.shape[0]):
        plane = hu[k]
        mask = plane >= threshold_hu
        n_sl = ndimage.label(mask, structure, output=label_img)
        if n_sl == 0:
            prev_kept_labels = None
            continue
        flat = np.flatnonzero(mask)
        sl_lab = label_img.ravel()[flat]
        vals = plane.ravel()[flat]
        sl_kept = np.bincount(sl_lab, minlength=n_sl + 1)[1:] >= min_px
        sl_peak = np.full(n_sl + 1, -np.inf)
        np.maximum.at(sl_peak, sl_lab, vals.astype(np.float64))
        if split:
            # entries: the 4-connected pieces, each with its slice lesion's status and weight
            n = ndimage.label(mask, structure_4, output=piece_img)
            lab = piece_img.ravel()[flat]
            parent = np.zeros(n + 1, dtype=np.int64)
            parent[lab] = sl_lab
            parent = parent[1:]
            kept = sl_kept[parent - 1]
            parts["parent"].append(parent - 1 + n_parents)
            parts["wpeak"].append(sl_peak[1:][parent - 1])
        else:
            n, lab, kept = n_sl, sl_lab, sl_kept
        n_parents += n_sl
        area = np.bincount(lab, minlength=n + 1)[1:]
        sums = np.bincount(lab, weights=vals, minlength=n + 1)[1:]
        rows, cols = np.divmod(flat, n_cols)
        srow = np.bincount(lab, weights=rows, minlength=n + 1)[1:]
        scol = np.bincount(lab, weights=cols, minlength=n + 1)[1:]
        if split:
            peak = np.full(n + 1, -np.inf)
            np.maximum.at(peak, lab, vals.astype(np.float64))
        else:
            peak = sl_peak

        parts["slice"].append(np.full(n, k, dtype=np.int64))
        parts["area"].append(area)
        parts["peak"].append(peak[1:])
        parts["sum"].append(sums)
        parts["row"].append(srow)
        parts["col"].append(scol)
        parts["kept"].append(kept)

        # global id + 1 of each kept voxel's slice lesion on this slice
        keep_vox = kept[lab - 1]
        cur = np.zeros((n_rows, n_cols), dtype=np.int64)
        kflat = flat[keep_vox]
        base_next = base + n + 1
        cur.ravel()[kflat] = lab[keep_vox] + base
        if prev_kept_labels is not None and kflat.size:
            kr, kc = rows[keep_vox], cols[keep_vox]
            here = cur.ravel()[kflat]
            for dr, dc in offsets:
                r2, c2 = kr + dr, kc + dc
                ok = (r2 >= 0) & (r2 < n_rows) & (c2 >= 0) & (c2 < n_cols)
                other = prev_kept_labels[r2[ok], c2[ok]]
                _add_edges(edges_a, edges_b, here[ok], other, other > 0, base_next)
        if in_plane_links and kflat.size:
            # 4-connected slice lesions that touch diagonally are one 18/26-connected lesion
            kr, kc = rows[keep_vox], cols[keep_vox]
            here = cur.ravel()[kflat]
            for dr, dc in ((1, 1), (1, -1)):
                r2, c2 = kr + dr, kc + dc
                ok = (r2 < n_rows) & (c2 >= 0) & (c2 < n_cols)
                other = cur[r2[ok], c2[ok]]
                _add_edges(edges_a, edges_b, here[ok], other, (other > 0) & (other != here[ok]),
                           base_next)
        prev_kept_labels = cur if kflat.size else None
        base += n

    if base == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0, dtype=np.float64)
        return SliceLesions(empty_i, empty_i, empty_f, empty_f, empty_f, empty_f,
                            np.zeros(0, dtype=bool), empty_i, 0)

    cat = {k: np.concatenate(v) for k, v in parts.items() if v}
    kept_all = cat["kept"]
    lesion = np.full(base, -1, dtype=np.int64)
    kept_ids = np.flatnonzero(kept_all)
    if kept_ids.size:
        # connected components over the kept slice lesions only, renumbered 0..m-1
        pos = np.full(base, -1, dtype=np.int64)
        pos[kept_ids] = np.arange(kept_ids.size)
        a = pos[np.concatenate(edges_a)] if edges_a else np.zeros(0, dtype=np.int64)
        b = pos[np.concatenate(edges_b)] if edges_b else np.zeros(0, dtype=np.int64)
        graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)),
                           shape=(kept_ids.size, kept_ids.size))
        n_lesions, comp = connected_components(graph, directed=False)
        # number lesions in order of their first slice lesion (raster order): stable ids
        first = np.full(n_lesions, np.iinfo(np.int64).max)
        np.minimum.at(first, comp, np.arange(kept_ids.size))
        rank = np.empty(n_lesions, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(n_lesions)
        lesion[kept_ids] = rank[comp]
    else:
        n_lesions = 0
    return SliceLesions(
        slice_index=cat["slice"], area_px=cat["area"].astype(np.int64), peak_hu=cat["peak"],
        sum_hu=cat["sum"], sum_row=cat["row"], sum_col=cat["col"], kept=kept_all,
        lesion=lesion, n_lesions=int(n_lesions),
        parent=cat["parent"].astype(np.int64) if split else None,
        weight_peak_hu=cat["wpeak"] if split else None,
    )


def density_band_mask(hu: np.ndarray, *, pixel_area_mm2: float, threshold_hu: float,
                      min_lesion_area_mm2: float, weight_hu=(130.0, 200.0, 300.0, 400.0),
                      slice_connectivity: int = 8) -> np.ndarray:
    """uint8 volume: 0 outside the kept lesions, else the density weight (1-4) of the slice
    lesion each voxel belongs to. The same lesion set as :func:`find_slice_lesions` (same
    definitions, scipy labelling), for images, masks and DICOM SEG."""
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    structure = _structure_2d(slice_connectivity)
    min_px = min_lesion_area_mm2 / pixel_area_mm2 * (1.0 - AREA_RTOL)
    bands = np.asarray(weight_hu, dtype=float)
    out = np.zeros(hu.shape, dtype=np.uint8)
    for k in range(hu.shape[0]):
        mask = hu[k] >= threshold_hu
        labels, n = ndimage.label(mask, structure)
        if n == 0:
            continue
        flat = np.flatnonzero(mask)
        lab = labels.ravel()[flat]
        area = np.bincount(lab, minlength=n + 1)
        peak = np.full(n + 1, -np.inf)
        np.maximum.at(peak, lab, hu[k].ravel()[flat].astype(np.float64))
        weight = np.searchsorted(bands, peak, side="right").astype(np.uint8)
        weight[area < min_px] = 0
        weight[0] = 0
        out[k].ravel()[flat] = weight[lab]
    return out
