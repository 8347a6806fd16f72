"""Micro-CT cases, one straight path each: discover -> open (io registry) -> calibration ->
score in slabs (:func:`vascalc.core.microct.score_slabs`) -> rows. A case never raises: bad
input becomes a failed row with its code and message, and the other cases are scored.

Calibration precedence per stack: the config's slope and intercept (HA rods measured by
``vascalc calibrate``, or given) win over the file header's (Scanco); with neither, density
and mass are empty with the reason, and volume and lesions need ``microct.threshold_stored``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__
from ..config.schema import Config
from ..core.microct import DensityCalibration, MicroScore, score_slabs
from ..errors import CalibrationError, InternalError, ManifestError, NoInputError, VascalcError
from ..flags import check as check_flags
from ..io.microct import MicroCTStack, microct_kind, open_microct
from ..io.voi import open_voi
from .manifest import read_csv_rows

log = logging.getLogger("vascalc")

ANIMAL_COLUMNS = ("animal_id", "group", "treatment", "time_point")
MANIFEST_COLUMNS = ("case_id", "path", "voxel_size_um", "voi", *ANIMAL_COLUMNS)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
AGATSTON_WITHHELD = ("micro-CT: the Agatston score is defined for clinical CT (3 mm slices, "
                     "1 mm2, 130 HU at 120 kVp) and is not given; volume and mineral mass are "
                     "the measures")


@dataclass(frozen=True)
class MicroCase:
    """One stack to score: its id, path, the manifest's voxel size and VOI, and the animal."""

    case_id: str
    path: Path
    display: str
    voxel_size_um: float | None = None
    voi: Path | None = None
    animal: dict[str, str] = field(default_factory=dict)


def read_microct_manifest(manifest: Path) -> list[MicroCase]:
    """The rows of a micro-CT manifest CSV (columns :data:`MANIFEST_COLUMNS`; case_id and path
    required; paths relative to the manifest's folder)."""
    cols, rows = read_csv_rows(manifest)
    missing = [c for c in ("case_id", "path") if c not in cols]
    if missing:
        raise ManifestError(f"missing column(s) {', '.join(missing)}; found {cols}",
                            path=str(manifest), hint="columns: " + ", ".join(MANIFEST_COLUMNS))
    out, seen = [], set()
    for i, row in enumerate(rows, start=2):
        cid = (row.get("case_id") or "").strip()
        if not _SAFE_ID.match(cid) or cid in seen:
            raise ManifestError(f"line {i}: case_id {cid!r} is empty, unsafe or repeated "
                                "(letters, digits, '.', '_', '-'; unique)", path=str(manifest))
        seen.add(cid)
        vs = (row.get("voxel_size_um") or "").strip()
        try:
            um = float(vs) if vs else None
        except ValueError:
            raise ManifestError(f"line {i}: voxel_size_um {vs!r} is not a number",
                                path=str(manifest)) from None
        if um is not None and not 0.05 <= um <= 1000:
            raise ManifestError(f"line {i}: voxel_size_um {um:g} is outside 0.05-1000 "
                                "(micrometres)", path=str(manifest))
        rel = (row.get("path") or "").strip()
        voi = (row.get("voi") or "").strip()
        out.append(MicroCase(case_id=cid, path=manifest.parent / rel, display=rel,
                             voxel_size_um=um, voi=manifest.parent / voi if voi else None,
                             animal={c: (row.get(c) or "").strip() for c in ANIMAL_COLUMNS}))
    if not out:
        raise ManifestError("the manifest has no rows", path=str(manifest))
    return out


def discover_microct(inputs: list[Path]) -> list[MicroCase]:
    """Cases from manifests (.csv) and from folder trees: every folder or file a micro-CT
    kind recognises is one case (a recognised folder is not searched further)."""
    cases: list[MicroCase] = []

    def walk(p: Path) -> None:
        if microct_kind(p) is not None:
            cid = re.sub(r"[^A-Za-z0-9._-]", "_", p.name)[:64] or "stack"
            cases.append(MicroCase(case_id=cid, path=p, display=str(p)))
        elif p.is_dir():
            for c in sorted(p.iterdir()):
                if not c.name.startswith("."):
                    walk(c)

    for p in inputs:
        if p.is_file() and p.suffix.lower() == ".csv":
            cases.extend(read_microct_manifest(p))
        elif not p.exists():
            raise NoInputError(f"input {str(p)!r} does not exist")
        else:
            walk(p)
    ids = [c.case_id for c in cases]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ManifestError(f"case id(s) {', '.join(twice)} found twice",
                            hint="give a manifest with unique case_id values")
    return cases


def holds_microct(path: Path, *, depth: int = 3) -> bool:
    """Whether ``path`` is, or holds within ``depth`` folder levels, a micro-CT stack (for the
    hint of a run that found no CT series)."""
    try:
        if microct_kind(path) is not None:
            return True
        if depth and path.is_dir():
            return any(holds_microct(c, depth=depth - 1) for c in sorted(path.iterdir())[:200]
                       if c.is_dir() or c.suffix.lower() in (".isq", ".aim", ".tif", ".tiff",
                                                              ".nrrd", ".mha"))
    except (OSError, VascalcError):
        return False
    return False


def resolve_calibration(stack: MicroCTStack, config: Config) -> DensityCalibration | None:
    """The config's slope and intercept, else the header's, else None."""
    m = config.microct
    if m.calibration_slope is not None and m.calibration_intercept is not None:
        return DensityCalibration(slope=m.calibration_slope, intercept=m.calibration_intercept,
                                  source=m.calibration_source,
                                  valid_min_mg_ha_cm3=m.calibration_valid_min_mg_ha_cm3,
                                  valid_max_mg_ha_cm3=m.calibration_valid_max_mg_ha_cm3)
    return stack.header_calibration


def config_digest(config: Config) -> str:
    """sha256 of the whole resolved config, micro-CT section included."""
    text = json.dumps(config.model_dump(mode="json", exclude={"review", "listen"}),
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def score_stack(stack: MicroCTStack, config: Config, *, voi: Path | None = None,
                progress: Callable[[int], None] | None = None,
                ) -> tuple[MicroScore, DensityCalibration | None, int]:
    """Score ``stack`` in slabs: (score, calibration used, slices per slab)."""
    m = config.microct
    cal = resolve_calibration(stack, config)
    if cal is not None:
        thr = cal.stored_at_least(m.threshold_mg_ha_cm3, stack.dtype)
    elif m.threshold_stored is not None:
        thr = m.threshold_stored
    else:
        raise CalibrationError(
            "no density calibration (the file's header carries none and the config gives no "
            "calibration_slope/intercept), and no microct.threshold_stored: nothing can be "
            "thresholded", path=stack.path)
    n = m.slab_for(stack.shape[1] * stack.shape[2])
    read_voi, names = (None, {}) if voi is None else open_voi(voi, stack, names=m.voi_labels)

    def slabs():
        for z, values in stack.slabs(n):
            yield z, values, None if read_voi is None else read_voi(z, z + values.shape[0])

    score = score_slabs(slabs(), spacing_mm=stack.spacing_mm, threshold_stored=thr,
                        calibration=cal, region_names=names,
                        min_lesion_voxels=m.min_lesion_voxels, progress=progress)
    return score, cal, n


def score_case(case: MicroCase, config: Config, *,
               progress: Callable[[int, int], None] | None = None) -> dict[str, list[dict]]:
    """The rows of one case: {'microct_scans': [row], 'microct_regions': [...],
    'microct_lesions': [...]}; never raises (a failure is a failed row)."""
    m = config.microct
    ids = {"case_id": case.case_id, **{c: case.animal.get(c, "") for c in ANIMAL_COLUMNS}}
    base = {**ids, "path": case.display, "agatston": None, "agatston_withheld": AGATSTON_WITHHELD,
            "risk_category": None, "config_sha256": config_digest(config),
            "vascalc_version": __version__}
    try:
        stack = open_microct(case.path, voxel_size_um=case.voxel_size_um,
                             display_path=case.display)
        total = stack.shape[0]
        score, cal, n = score_stack(
            stack, config, voi=case.voi,
            progress=None if progress is None else (lambda done: progress(done, total)))
    except Exception as exc:  # noqa: BLE001 - a case never loses another's result
        if isinstance(exc, VascalcError):
            code, text = exc.code, str(exc)
        elif isinstance(exc, MemoryError):
            code, text = "OUT_OF_MEMORY", f"{case.display}: not enough memory for one slab"
        else:
            log.exception("micro-CT case %s: internal error", case.case_id)
            code, text = InternalError.code, f"{case.display}: {type(exc).__name__}: {exc}"
        log.warning("micro-CT case %s failed: %s", case.case_id, code)
        return {"microct_scans": [{**base, "status": "failed", "error_code": code,
                                   "error": text}], "microct_regions": [], "microct_lesions": []}
    flags = []
    if cal is None:
        flags.append("microct_uncalibrated")
    if score.beyond_calibration_voxels:
        flags.append("density_beyond_calibration")
    sl, row_um, col_um = stack.voxel_size_um
    scan = {**base, "status": "ok", "error_code": "", "error": "", "format": stack.format,
            "slices": stack.shape[0], "rows": stack.shape[1], "cols": stack.shape[2],
            "voxel_size_um": col_um, "slice_spacing_um": sl,
            "voxel_size_source": stack.voxel_size_source,
            "calibration_source": "" if cal is None else cal.source,
            "calibration_slope": None if cal is None else cal.slope,
            "calibration_intercept": None if cal is None else cal.intercept,
            "calibration_valid_max_mg_ha_cm3": None if cal is None else cal.valid_max_mg_ha_cm3,
            "threshold_mg_ha_cm3": None if cal is None else m.threshold_mg_ha_cm3,
            "threshold_source": m.threshold_source if cal is not None else
            "microct.threshold_stored (stored values; no calibration)",
            "threshold_stored": score.threshold_stored, "volume_mm3": score.volume_mm3,
            "mass_mg": score.mass_mg,
            "mass_status": "calibrated" if cal is not None else
            "empty: no density calibration (header, HA rods or config)",
            "n_lesions": len(score.lesions),
            "largest_lesion_mm3": max((le.volume_mm3 for le in score.lesions), default=None),
            "beyond_calibration_voxels": score.beyond_calibration_voxels,
            "quality_flags": ";".join(check_flags(tuple(flags))),
            "notes": "; ".join(stack.notes), "slab_slices": n}
    regions = [{**ids, "region": name, "n_voxels": nv, "volume_mm3": vol, "mass_mg": mass}
               for name, (nv, vol, mass) in score.regions.items()] if case.voi else []
    lesions = [{**ids, "lesion_id": le.lesion_id, "region": le.region, "n_voxels": le.n_voxels,
                "volume_mm3": le.volume_mm3, "mass_mg": le.mass_mg,
                "peak_density_mg_ha_cm3": le.peak_density_mg_ha_cm3,
                "centroid_x_mm": le.centroid_mm[2], "centroid_y_mm": le.centroid_mm[1],
                "centroid_z_mm": le.centroid_mm[0], "first_slice": le.first_slice,
                "last_slice": le.last_slice} for le in score.lesions]
    return {"microct_scans": [scan], "microct_regions": regions, "microct_lesions": lesions}
