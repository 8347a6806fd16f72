"""The one registry of input kinds: which reader turns a path into a CT volume or region masks.

CT inputs (:data:`CT_INPUTS`, first match wins): a NIfTI file, a zip archive of a DICOM
series, a DICOM series folder or one DICOM file (a multi-frame CT). Region inputs
(:data:`REGION_INPUTS`): a DICOM SEG that references the CT, a folder of binary NIfTI masks
(TotalSegmentator's default output), or a NIfTI label map with its label table. Discovery,
the case path and ``vascalc calibrate`` all load through :func:`load_ct`, so each input kind
is decided here and nowhere else.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..config.label_tables import LABEL_TABLES
from ..config.schema import Config
from ..core.regions import RegionMask
from ..errors import InputError, RegionError
from ..records import CTVolume
from .archive import extract_zip
from .dicom import ct_image_problem, index_tree, load_series
from .dicom_header import DicomHeader, has_dicm_preamble
from .masks import label_table_file, load_regions, load_seg_regions
from .nifti import is_nifti, load_nifti
from .stacks import split_reasons, split_stacks, unreadable_files


@dataclass(frozen=True)
class InputKind:
    """One kind of input: its name, how it is recognised, and its reader."""

    name: str
    description: str
    matches: Callable[[Path], bool]
    load: Callable[..., object]


def _is_zip(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() == ".zip"


def _series(headers: list[DicomHeader], config: Config) -> CTVolume:
    g = config.geometry
    return load_series(headers, abs_tol_mm=g.spacing_tolerance_mm, rel_tol=g.spacing_tolerance_rel,
                       gantry_tilt=g.gantry_tilt, max_obliquity_deg=g.max_obliquity_deg,
                       require_hu=config.input.require_hu)


def _one_stack(root: Path, config: Config, display: str) -> CTVolume:
    """The one CT stack under ``root`` (a folder or one file), loaded. A DICOM file that cannot
    be classified (:func:`~vascalc.io.stacks.unreadable_files`) flags the volume
    ``unreadable_files_in_folder``, as discovery flags a case; several stacks (a series split
    by patient, frame of reference, date, geometry) are refused by name."""
    found, skipped = index_tree(root)
    found, unreadable = unreadable_files(found, skipped)
    cts = [h for h in found if ct_image_problem(h) is None]
    if not cts:
        why = (unreadable[0][1] if unreadable else skipped[0][1] if skipped else
               (ct_image_problem(found[0]) if found else "no files"))
        raise InputError(f"no CT image series in {display!r} ({why})")
    stacks, outliers = split_stacks(cts, min_slices=config.selection.min_slices)
    if len(stacks) > 1:
        reasons = split_reasons(stacks)
        sizes = ", ".join(f"{len(st)} images of series {st[0].series_number}"
                          + (f" ({reasons[id(st)]})" if id(st) in reasons else "")
                          for st in stacks)
        raise InputError(f"{len(stacks)} CT stacks in {display!r} ({sizes}); a manifest row "
                         "needs one", hint="point the path at one series folder")
    vol = _series(stacks[0], config)
    extra = (("outlier_images_excluded",) if outliers else ()) + (
        ("unreadable_files_in_folder",) if unreadable else ())
    if extra:
        vol = replace(vol, quality_flags=vol.quality_flags + extra)
    return vol


def _load_zip(p: Path, config: Config, display: str) -> CTVolume:
    with tempfile.TemporaryDirectory(prefix="vascalc-zip-") as scratch:
        extract_zip(p, scratch, max_bytes=config.input.max_archive_bytes,
                    max_files=config.input.max_archive_files)
        return _one_stack(Path(scratch), config, display)  # in memory: the files can go


#: CT input kinds, tried in order (first match wins)
CT_INPUTS: tuple[InputKind, ...] = (
    InputKind("nifti", "NIfTI volume (.nii, .nii.gz) in HU (or scanner units with "
              "input.require_hu: false)", lambda p: p.is_file() and is_nifti(p),
              lambda p, config, display: load_nifti(p, require_hu=config.input.require_hu)),
    InputKind("zip", "zip archive holding one DICOM CT series", _is_zip, _load_zip),
    InputKind("dicom", "DICOM series folder, or one DICOM file (a multi-frame CT)",
              lambda p: p.is_dir() or p.is_file(), _one_stack),
)

#: region mask kinds, tried in order (first match wins)
REGION_INPUTS: tuple[InputKind, ...] = (
    InputKind("dicom_seg", "DICOM SEG referencing the CT's images",
              lambda p: p.suffix.lower() == ".dcm" or has_dicm_preamble(p),
              lambda p, volume, table, cov: load_seg_regions(str(p), list(volume.source_uids))),
    InputKind("nifti_masks", "folder of binary NIfTI masks, one per structure (TotalSegmentator)",
              Path.is_dir, lambda p, volume, table, cov: load_regions(volume, str(p),
                                                                     coverage=cov)),
    InputKind("label_map", "NIfTI label map with its label table (stem.json or stem.yaml "
              "beside it, or regions.label_table)", lambda p: True,
              lambda p, volume, table, cov: load_regions(volume, str(p), label_table=table,
                                                         coverage=cov)),
)


def _kind(kinds: tuple[InputKind, ...], p: Path) -> InputKind | None:
    return next((k for k in kinds if k.matches(p)), None)


def load_ct(path: str | Path, config: Config, *, display_path: str | None = None,
            headers: tuple[DicomHeader, ...] = ()) -> CTVolume:
    """The CT volume at ``path``, read by the first matching kind of :data:`CT_INPUTS`.
    ``headers``, when discovery already indexed and grouped the series, are loaded as they
    are (nothing is indexed twice). Errors name ``display_path`` (what the user gave)."""
    if headers:
        return _series(list(headers), config)
    p = Path(path)
    display = display_path if display_path is not None else str(path)
    if not p.exists():
        raise InputError(f"input path {display!r} does not exist",
                         hint="fix the path in the manifest (relative to its folder)")
    if not (p.is_dir() or p.is_file()):
        raise InputError(f"input path {display!r} is not a folder or a regular file (a FIFO or "
                         "device is never read)")
    kind = _kind(CT_INPUTS, p)
    assert kind is not None  # 'dicom' matches every folder and file
    return kind.load(p, config, display)  # type: ignore[return-value]


def load_region_masks(path: str | Path, volume: CTVolume, config: Config, *,
                      coverage: list[float] | None = None,
                      ) -> tuple[list[tuple[str, RegionMask]], str]:
    """The region masks at ``path`` on ``volume``'s grid, and the kind that read them (the
    first matching kind of :data:`REGION_INPUTS`; a label map read through the config's
    label table says which). ``coverage`` gets the share of the CT each resampled NIfTI
    mask's grid holds (:mod:`vascalc.io.mask_fit`)."""
    p = Path(path)
    if not (p.is_dir() or p.is_file()):  # a FIFO or device would block the reader forever
        raise RegionError("not a folder or a regular file" if p.exists() else "does not exist",
                          path=str(p), hint="give a folder of NIfTI masks, a label map or a SEG")
    kind = _kind(REGION_INPUTS, p)
    assert kind is not None  # the last kind matches every path
    name = config.regions.label_table
    table = LABEL_TABLES[name] if name else None
    masks = kind.load(p, volume, table, coverage)
    source = kind.name
    if kind.name == "label_map" and name and label_table_file(p) is None:
        source = f"label_map:{name}"
    return masks, _segmenter(p) or source  # type: ignore[return-value]


def _segmenter(p: Path) -> str:
    """'TotalSegmentator 2.x total (fast)' for a map that vascalc segment wrote (its
    provenance.json beside it); '' otherwise."""
    try:
        doc = json.loads((p.parent / "provenance.json").read_text())
        opts = doc["options"]
        return (f"{doc['segmenter']} {doc.get('segmenter_version') or '(version unknown)'} "
                f"task {opts['task']}{' fast' if opts.get('fast') else ''}")
    except (OSError, ValueError, KeyError, TypeError):
        return ""

