"""Masks as NIfTI: the calcium mask and lesion label map on the CT grid.

The affine is built from the volume's own geometry (LPS direction x spacing, origin) and
converted to NIfTI's RAS+ (diag(-1, -1, 1)), so the mask overlays the CT in any viewer.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..core.regions import RegionMask
from ..errors import RegionError
from ..records import CTVolume
from ..values import safe_yaml
from .nifti import RAS_TO_LPS, nifti_stem

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_ras(volume: CTVolume) -> np.ndarray:
    d = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    aff = np.eye(4)
    aff[:3, :3] = LPS_TO_RAS @ d
    aff[:3, 3] = LPS_TO_RAS @ np.asarray(volume.origin_mm, dtype=float)
    return aff


def nifti_bytes(array: np.ndarray, volume: CTVolume, *, xyz: bool = False) -> bytes:
    """A gzipped NIfTI-1 of ``array`` (slice, row, col) on the grid of ``volume``; with ``xyz``
    stored as (col, row, slice), the axis order DICOM converters and segmenters write."""

    import nibabel as nib  # lazy: nibabel, for NIfTI files only

    aff = affine_ras(volume)
    if xyz:
        array, aff = array.transpose(2, 1, 0), aff[:, [2, 1, 0, 3]]
    img = nib.Nifti1Image(np.ascontiguousarray(array), aff)
    img.header.set_xyzt_units("mm")
    return gzip.compress(img.to_bytes(), mtime=0)


# --- region masks onto the CT grid --------------------------------------------------------

def _resample_nearest(volume: CTVolume, data: np.ndarray, affine: np.ndarray,
                      ) -> tuple[np.ndarray, float]:
    """``data`` (a NIfTI array with its RAS affine) sampled at every CT voxel centre by
    nearest neighbour, outside the mask's grid 0, and the share of the CT's voxel centres the
    mask's grid holds. Works slice by slice (bounded memory)."""
    ras_from_ijk = affine
    ijk_from_ras = np.linalg.inv(ras_from_ijk)
    d = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    origin = np.asarray(volume.origin_mm, dtype=float)
    n, rows, cols = volume.shape
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    out = np.zeros(volume.shape, dtype=data.dtype)
    shape = np.asarray(data.shape[:3])
    covered = 0
    for k in range(n):
        lps = origin + (k * d[:, 0])[None, None, :] + rr[..., None] * d[:, 1] + cc[..., None] * d[:, 2]
        ras = lps * np.array([-1.0, -1.0, 1.0])
        ijk = ras @ ijk_from_ras[:3, :3].T + ijk_from_ras[:3, 3]
        ijk = np.rint(ijk).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk < shape), axis=-1)
        covered += int(np.count_nonzero(ok))
        if ok.any():
            sel = ijk[ok]
            out[k][ok] = data[sel[:, 0], sel[:, 1], sel[:, 2]]
    return out, covered / max(n * rows * cols, 1)


def _same_grid(volume: CTVolume, img) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """How the mask array maps onto the CT array when both share one grid: the axis order,
    and the axes (after reordering) stored the other way round (a converter that writes rows
    bottom-up, as dcm2niix-style NIfTI often is); None for another grid."""

    aff = np.asarray(img.affine, dtype=float)
    ct = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    lps = RAS_TO_LPS @ aff[:3, :3]
    origin = RAS_TO_LPS @ aff[:3, 3]
    shape = np.asarray(img.shape[:3])
    for order in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        if tuple(shape[list(order)]) != volume.shape:
            continue
        cols = lps[:, list(order)]
        signs = [1.0 if np.allclose(cols[:, a], ct[:, a], atol=1e-4) else
                 -1.0 if np.allclose(cols[:, a], -ct[:, a], atol=1e-4) else 0.0 for a in range(3)]
        if 0.0 in signs:
            continue
        flipped = tuple(a for a in range(3) if signs[a] < 0)
        # the CT's first voxel: the mask's last along each flipped axis
        first = origin + sum(cols[:, a] * (volume.shape[a] - 1) for a in flipped)
        if np.allclose(first, volume.origin_mm, atol=1e-3):
            return np.asarray(order), flipped
    return None


def _read_mask(path: str):
    import nibabel as nib  # lazy: nibabel, for NIfTI files only

    try:
        img: Any = nib.load(path)  # a Nifti1Image (nibabel types its loader as the base)
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # noqa: BLE001
        raise RegionError(f"not a readable NIfTI mask ({err})", path=path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RegionError(f"mask shape {data.shape} is not 3-D", path=path)
    return img, data


def region_on_ct_grid(volume: CTVolume, path: str, coverage: list[float] | None = None,
                      ) -> RegionMask:
    """A binary NIfTI mask (any non-zero voxel) on the CT grid. On the CT's own grid (any
    axis order, as TotalSegmentator writes it) only the mask's bounding box is reordered, so
    a mask costs its box; on another grid it is resampled like :func:`mask_on_ct_grid`."""
    img, data = _read_mask(path)
    grid = _same_grid(volume, img)
    if grid is None:
        return RegionMask.from_array(_resampled(volume, img, data, path, coverage) > 0)
    order, flipped = grid
    if flipped:
        return RegionMask.from_array(np.flip(np.asarray(data).transpose(order) != 0, flipped))
    return RegionMask.from_array(data != 0).transposed(order)


def mask_on_ct_grid(volume: CTVolume, path: str, coverage: list[float] | None = None,
                    ) -> np.ndarray:
    """A NIfTI mask or label map on the CT grid (nearest neighbour through the affines).
    ``coverage``, when given, gets the share of the CT a resampled mask's grid holds (a mask
    on the CT's own grid holds all of it and adds nothing)."""
    img, data = _read_mask(path)
    grid = _same_grid(volume, img)
    if grid is not None:
        order, flipped = grid
        return np.ascontiguousarray(np.flip(data.transpose(order), flipped) if flipped
                                    else data.transpose(order))
    return _resampled(volume, img, data, path, coverage)


def _resampled(volume: CTVolume, img, data: np.ndarray, path: str,
               coverage: list[float] | None = None) -> np.ndarray:
    """``data`` on the CT grid through the affines; refused when it misses the CT. The share
    of the CT the mask's grid holds is appended to ``coverage``."""

    if data.dtype.kind in "iu":
        # the label values as they are: uint16 would wrap 65537 to 1 (LAD read as aorta)
        top = int(data.max()) if data.size else 0
        low = int(data.min()) if data.size else 0
        data = data.astype(np.uint16 if 0 <= low and top <= 65535 else np.int64)
    else:
        data = data.astype(np.float32)
    out, covered = _resample_nearest(volume, data, np.asarray(img.affine, dtype=float))
    if coverage is not None:
        coverage.append(covered)
    if data.any() and not out.any():
        raise RegionError("the mask does not overlap the CT volume (different patient "
                          "position or frame of reference?)", path=path)
    return out


def label_table_file(p: Path) -> Path | None:
    """The label table beside a label map: stem.json, stem.yaml or stem.yml, or None."""
    stem = nifti_stem(p)
    return next((t for t in (p.with_name(stem + e) for e in (".json", ".yaml", ".yml"))
                 if t.is_file()), None)


def load_regions(volume: CTVolume, path: str, *, label_table: dict[int, str] | None = None,
                 coverage: list[float] | None = None) -> list[tuple[str, RegionMask]]:
    """Region masks from a folder of binary NIfTI masks (one per structure, named by file,
    as TotalSegmentator writes them) or from one label map with a label table: a JSON or
    YAML file beside it with the same stem, else ``label_table`` (the config's, e.g.
    TotalSegmentator's v2 classes for its --ml output)."""

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.name.lower().endswith((".nii", ".nii.gz")))
        if not files:
            raise RegionError("no NIfTI masks in the folder", path=str(p))
        return [(nifti_stem(f), region_on_ct_grid(volume, str(f), coverage)) for f in files]
    table = label_table_file(p)
    if table is not None:  # a table beside the map wins over the config's
        try:
            text = table.read_text(encoding="utf-8")
            raw = json.loads(text) if table.suffix == ".json" else safe_yaml(text)
            label_table = {int(k): str(v) for k, v in raw.items()}
        except (OSError, UnicodeDecodeError, AttributeError, TypeError, ValueError):
            raise RegionError("the label table must map label numbers to names",
                              path=str(table)) from None
    elif label_table is None:
        stem = nifti_stem(p)
        raise RegionError("a label map needs a label table (label: name) in a JSON or YAML "
                          f"file named {stem}.json or {stem}.yaml beside it, or "
                          "regions.label_table in the config (e.g. totalsegmentator_v2)",
                          path=str(p))
    check_label_table(label_table, str(table if table is not None else p))
    labels = mask_on_ct_grid(volume, str(p), coverage)
    return label_map_regions(labels, label_table)


#: region names vascalc writes itself: a label table may not use them
RESERVED_REGION_NAMES = ("whole", "outside")


def check_label_table(table: dict[int, str], path: str) -> None:
    """Refuse a table that names a label 'whole' or 'outside' (they would collide with the
    built-in rows), an empty name or label values a map cannot hold (0 is background)."""
    reserved = sorted({n for n in table.values() if n.strip().lower() in RESERVED_REGION_NAMES})
    if reserved:
        raise RegionError(f"the label table names {', '.join(map(repr, reserved))}: reserved "
                          "for vascalc's own rows (all calcium, and calcium in no region)",
                          path=path, hint="rename those labels")
    bad = sorted(v for v, n in table.items() if v <= 0 or not n.strip())
    if bad:
        raise RegionError(f"label value(s) {bad[:5]} are 0 or below, or have an empty name "
                          "(0 is the background of a label map)", path=path)


def label_map_regions(labels: np.ndarray, label_table: dict[int, str],
                      ) -> list[tuple[str, RegionMask]]:
    """One mask per entry of ``label_table`` (label value -> name) from a label volume, each
    cut from its own bounding box (one pass over the volume, not one per label)."""
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    values = labels if labels.dtype.kind in "iu" else np.rint(labels).astype(np.int32)
    top = int(values.max()) if values.size else 0
    # boxes of the table's labels only, so memory follows the table, not the largest value in
    # the map (a stray label of 3e7 cost 1.7 GB); labels beyond 65535 are boxed one by one
    small = [v for v in label_table if 0 < v <= min(top, 65535)]
    found = ndimage.find_objects(values, max_label=max(small)) if small else []
    box_of: dict[int, tuple[slice, slice, slice]] = {
        v: found[v - 1] for v in small if found[v - 1] is not None}
    for v in (v for v in label_table if 65535 < v <= top):
        hit = np.nonzero(values == v)
        if hit[0].size:
            b0, b1, b2 = (slice(int(ax.min()), int(ax.max()) + 1) for ax in hit)
            box_of[v] = (b0, b1, b2)
    empty = RegionMask(labels.shape, (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool))
    by_name: dict[str, list[int]] = {}
    for value, name in sorted(label_table.items()):
        by_name.setdefault(name, []).append(value)  # labels that share a name: one region
    out = []
    for name, vals in by_name.items():
        boxes = [box_of[v] for v in vals if v in box_of]
        if not boxes:
            out.append((name, empty))
            continue
        s0, s1, s2 = (slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
                      for a in range(3))
        box = (s0, s1, s2)
        mask = np.isin(values[box], vals) if len(vals) > 1 else values[box] == vals[0]
        out.append((name, RegionMask(labels.shape, box, np.ascontiguousarray(mask))))
    return out


def load_seg_regions(path: str, sop_instance_uids: list[str]) -> list[tuple[str, RegionMask]]:
    """Region masks from a DICOM SEG that references the CT's images: one mask per segment
    (named by its label), aligned to ``sop_instance_uids`` (the CT's slices in volume order).
    A SEG that references none of them belongs to another series: refused."""

    import highdicom as hd  # lazy: highdicom, for SEG/SR only

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.segread(path)
    except Exception as err:  # noqa: BLE001
        raise RegionError(f"not a readable DICOM SEG ({err})", path=path) from None
    referenced = {
        inst.ReferencedSOPInstanceUID
        for s in seg.get("ReferencedSeriesSequence", [])
        for inst in s.get("ReferencedInstanceSequence", [])}
    if not referenced & set(sop_instance_uids):
        raise RegionError("the SEG references none of this CT's images (another series or "
                          "frame of reference)", path=path)
    out = []
    for item in seg.SegmentSequence:
        number, label = int(item.SegmentNumber), str(item.SegmentLabel)
        try:
            arr = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[u for u in sop_instance_uids if u in referenced],
                segment_numbers=[number], assert_missing_frames_are_empty=True)
        except Exception as err:  # noqa: BLE001
            raise RegionError(f"segment {label!r} cannot be placed on the CT ({err})",
                              path=path) from None
        full = np.zeros((len(sop_instance_uids), *arr.shape[1:3]), dtype=bool)
        index = {u: i for i, u in enumerate(sop_instance_uids)}
        for j, u in enumerate(u for u in sop_instance_uids if u in referenced):
            full[index[u]] = arr[j, ..., 0] > 0
        out.append((label, RegionMask.from_array(full)))
    return out
