"""Per-case artefacts, written atomically into OUT/cases/<case_id>/: report.html and
report.pdf, key images, calcium.seg.dcm, scores.sr.dcm, calcium_mask.nii.gz and
lesion_labels.nii.gz. A failure here is logged and flagged; it never loses the scores."""

from __future__ import annotations

import logging
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import Config
from ..files import write_atomic
from ..io.dicom import patient_identity, read_datasets
from ..io.masks import nifti_bytes
from ..records import CTVolume, ScanResult
from ..results.document import lesion_rows_of, region_rows_of, scan_of
from . import versions
from .case_report import case_html
from .dicom_out import measurement_report, prepare_sources, segmentation, to_bytes
from .render import html_to_pdf

log = logging.getLogger("vascalc")


#: a coronal MIP of fewer slices is a strip that shows nothing: left out, with no gap
MIP_MIN_SLICES = 16
#: ... and so is one whose height along the body is under this share of its width
MIP_MIN_HEIGHT_RATIO = 0.15


#: every artefact a case folder may hold from an earlier result (the DICOM node's PDF and
#: summary objects included); removed before a result's artefacts are written
ARTEFACTS = ("key_image_*.png", "mip.png", "calcium_mask.nii.gz", "lesion_labels.nii.gz",
             "calcium.seg.dcm", "scores.sr.dcm", "report.html", "report.pdf", "report.pdf.dcm",
             "summary.sc.dcm")


def preload(config: Config) -> None:
    """Import the libraries the configured artefacts use, once, in a process about to fork its
    workers: each worker would otherwise pay about a second of imports on its first case."""
    r = config.report
    if not r.enabled:
        return
    from . import key_images  # noqa: F401  # lazy: Pillow, for key images only
    if r.pdf:
        import weasyprint  # noqa: F401  # lazy: WeasyPrint, for PDF reports only
    if r.dicom_seg or r.dicom_sr:
        import highdicom  # noqa: F401  # lazy: highdicom, for SEG/SR only


def _patient_ijk(volume: CTVolume, xyz) -> tuple[int, float, float]:
    """The slice index (nearest) and the fractional row and column of a patient position."""
    d = np.asarray(volume.direction, dtype=float) * np.asarray(volume.spacing_mm)
    ijk = np.linalg.solve(d, np.asarray(xyz, dtype=float) - np.asarray(volume.origin_mm))
    return int(np.clip(np.rint(ijk[0]), 0, volume.shape[0] - 1)), float(ijk[1]), float(ijk[2])


def write_case_artefacts(case_dir: Path, volume: CTVolume, result: ScanResult, doc: dict,
                         config: Config, *, written: list[str] | None = None) -> list[str]:
    """Write what the config asks for; returns the names written (appended to ``written`` as
    each file lands, so a failure part-way still lists what exists). The masks are the scored
    voxels that :func:`vascalc.analyse.analyse` kept in ``result.voxels`` (the scored HU at
    the scan's own thresholds), so they hold exactly the scored calcium."""
    rc = config.report
    scored = result.voxels
    if scored is None:
        raise ValueError("the result carries no scored voxels (analyse(..., keep_voxels=True))")
    for pattern in ARTEFACTS:  # the folder's artefacts are this result's only: none stale
        for old in case_dir.glob(pattern):
            old.unlink()
    bands = scored.bands
    written = [] if written is None else written
    images, names, mip_note = _key_images(volume, result, rc.key_images)
    for name, image in zip(names, images):
        write_atomic(case_dir / name, image.png)
        written.append(name)
    failures: list[Exception] = []
    if rc.nifti:
        try:
            kept = bands > 0
            write_atomic(case_dir / "calcium_mask.nii.gz",
                         nifti_bytes(kept.astype(np.uint8), volume))
            write_atomic(case_dir / "lesion_labels.nii.gz",
                         nifti_bytes(scored.lesion_labels.astype(np.int32), volume))
            written += ["calcium_mask.nii.gz", "lesion_labels.nii.gz"]
        except Exception as err:  # noqa: BLE001 - the report says so, then it is raised
            failures.append(err)
    # SEG and SR reference single-frame source images; NIfTI and multi-frame input get none
    dicom_ok = bool(volume.source_paths) and "multi_frame" not in volume.quality_flags
    if dicom_ok and (rc.dicom_seg or rc.dicom_sr):
        try:
            _write_dicom(case_dir, volume, result, doc, config, bands, written)
        except Exception as err:  # noqa: BLE001 - the report says so, then it is raised
            failures.append(err)
    # the report last, so that its flag box shows what failed before it
    identity: dict[str, str] = {}
    if rc.identity == "full" and volume.source_paths:
        identity = patient_identity(volume.source_paths[0])
    text = case_html(doc, images, identity=identity, config=config.model_dump(mode="json"),
                     weight_hu=scored.weight_hu, territories=scored.region_labels is not None,
                     extra_flags=("report_failed",) if failures else (), mip_note=mip_note,
                     read_at=result.read_at, ecg_gated=volume.meta.ecg_gated)
    write_atomic(case_dir / "report.html", text)
    written.append("report.html")
    if rc.pdf:
        write_atomic(case_dir / "report.pdf", html_to_pdf(text))
        written.append("report.pdf")
    if failures:
        raise failures[0]
    return written


def _key_images(volume: CTVolume, result: ScanResult, n: int):
    """The key images (KeyImage), their file names, and why the MIP is left out ('' when it is
    shown). Each image is the slice where one of the ``n`` largest lesions of the headline's
    scope (its regions' pieces, so a vascular report never opens on a vertebra) has most
    pixels, the circle centred on the lesion's own pixel nearest its centroid there (the
    centroid of a ring lies off the ring)."""
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    from . import key_images  # lazy: Pillow, for key images only

    scored = result.voxels
    assert scored is not None
    scoped = [le for le in result.lesions
              if not result.scope_regions or le.region in result.scope_regions]
    # a lesion crossing regions has a piece in each: one marker per lesion
    largest: list = []
    seen: set[int] = set()
    for le in sorted(scoped, key=lambda le: -le.volume_mm3):
        if le.lesion_id not in seen and len(largest) < n:
            seen.add(le.lesion_id)
            largest.append(le)
    labels = scored.lesion_labels
    boxes = ndimage.find_objects(labels, max_label=max((le.lesion_id for le in largest),
                                                       default=0)) if largest else []
    slices: dict[int, tuple[str, list]] = {}
    for le in largest:
        mark = lesion_marker(volume, labels, le, boxes[le.lesion_id - 1])
        if mark is None:
            continue
        k, r, c, radius = mark
        if k not in slices:
            z = float(volume.index_to_patient(np.array([[k, 0, 0]]))[0, 2])
            inst = volume.source_instances[k] if k < len(volume.source_instances) else None
            where = f"instance {inst}, " if inst is not None else ""
            slices[k] = (f"slice {k + 1} of {volume.shape[0]} ({where}z {z:.1f} mm): lesion "
                         f"{le.lesion_id}, {le.volume_mm3:.0f} mm3", [])
        slices[k][1].append((r, c, radius))
    regions, colouring = scored.region_labels, None
    if regions is not None:  # territory colours, with a legend
        colouring = key_images.territory_colouring(scored.region_names, scored.region_classes)
    images = key_images.key_images(volume.hu, scored.bands,
                                   [(k, t, m) for k, (t, m) in slices.items()],
                                   volume.spacing_mm, regions=regions, colouring=colouring,
                                   direction=volume.direction)
    names = [f"key_image_{i + 1}.png" for i in range(len(images))]
    note = _mip_note(volume, result, largest)
    if largest and not note:
        mip, index = key_images.mip_index(volume.hu, scored.bands, regions)
        scope_ids = [i + 1 for i, name in enumerate(scored.region_names)
                     if name in result.scope_regions]
        if regions is not None and scope_ids and not np.isin(index, scope_ids).any():
            note = ("No projection: along every ray, denser calcium outside the headline's "
                    "scope (bone) hides the scope's calcium.")
        else:
            images.append(key_images.mip_image(mip, index, volume.spacing_mm,
                                               colouring=colouring, direction=volume.direction))
            names.append("mip.png")
    return images, names, note


def lesion_marker(volume: CTVolume, labels: np.ndarray, le, box,
                  ) -> tuple[int, float, float, float] | None:
    """Where a key image marks a lesion: the slice where it has most pixels, and on it the
    lesion's own pixel nearest its centroid (the centroid of a ring, a skull, lies off the
    ring), with a radius that reaches the lesion's pixels there (at most 25 voxels: a
    marker, not an outline). None when the lesion is not in ``labels``."""
    if box is None:
        return None
    mine = labels[box] == le.lesion_id
    k = box[0].start + int(np.argmax(mine.sum(axis=(1, 2))))
    rr, cc = np.nonzero(mine[k - box[0].start])
    rr, cc = rr + box[1].start, cc + box[2].start
    _, r0, c0 = _patient_ijk(volume, (le.centroid_x_mm, le.centroid_y_mm, le.centroid_z_mm))
    at = int(np.argmin((rr - r0) ** 2 + (cc - c0) ** 2))
    r, c = float(rr[at]), float(cc[at])
    radius = min(float(np.sqrt(((rr - r) ** 2 + (cc - c) ** 2).max())), 25.0) + 6.0
    return k, r, c, radius


def _mip_note(volume: CTVolume, result: ScanResult, largest) -> str:
    """Why the coronal projection is left out ('' when it is drawn)."""
    if not largest:
        return ""  # no calcium: the report says so, and there is nothing to project
    if volume.shape[0] < MIP_MIN_SLICES:
        return (f"No projection: the series has {volume.shape[0]} slices (fewer than "
                f"{MIP_MIN_SLICES}), and a coronal projection of it would be a thin strip.")
    tall = volume.shape[0] * float(volume.spacing_mm[0])
    wide = volume.shape[2] * float(volume.spacing_mm[2])
    if tall < MIP_MIN_HEIGHT_RATIO * wide:
        return (f"No projection: the series covers {tall:.0f} mm along the body over a "
                f"{wide:.0f} mm field of view, and a coronal projection of it would be a strip.")
    if "bone_dominated" in result.quality_flags:
        return ("No projection: most of this calcium is bone, and a projection would show "
                "the bone, not vessels.")
    return ""


def _write_dicom(case_dir: Path, volume: CTVolume, result: ScanResult, doc: dict,
                 config: Config, bands: np.ndarray, written: list[str]) -> None:
    rc = config.report
    sources = prepare_sources(read_datasets(list(volume.source_paths)))
    seg = None
    with warnings.catch_warnings(record=True) as caught:  # to the log, not the console
        warnings.simplefilter("always")
        vox = result.voxels
        reader = None
        if result.region_source == "reader" and vox is not None and vox.region_labels is not None:
            reader = (vox.region_labels, vox.region_names)
        version = result_version(case_dir, result, doc, config, sources[0])
        if rc.dicom_seg:
            seg = segmentation(sources, bands, version=version, reader_regions=reader)
            if seg is not None:
                write_atomic(case_dir / "calcium.seg.dcm", to_bytes(seg))
                written.append("calcium.seg.dcm")
        if rc.dicom_sr:
            vessels = [r for r in region_rows_of(doc) if r.get("region_class") == "coronary"] \
                if reader is not None else None
            sr = measurement_report(sources, scan_of(doc), seg=seg, case_id=result.case_id,
                                    version=version, flags=result.quality_flags,
                                    vessels=vessels, organization=config.review.organization)
            write_atomic(case_dir / "scores.sr.dcm", to_bytes(sr))
            written.append("scores.sr.dcm")
        versions.record(case_dir, version)
    for w in {str(w.message) for w in caught}:
        log.debug("case %s: SEG/SR: %s", result.case_id, w)


def result_version(case_dir: Path, result: ScanResult, doc: dict, config: Config,
                   source) -> versions.ResultVersion:
    """The version this result is in the case's ledger (:mod:`.versions`): a reader's final
    (marked done with every calcium lesion labelled or the rest confirmed not coronary: no
    ``review_incomplete`` flag) makes a final, anything else a draft."""
    def steady(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "source_path"} for r in rows]

    key = versions.version_key(
        study_uid=str(source.get("StudyInstanceUID", "")),
        series_uid=str(source.get("SeriesInstanceUID", "")), config_sha=config.sha256(),
        reader=result.reader, read_at=result.read_at, scan=scan_of(doc),
        regions=steady(region_rows_of(doc)), lesions=steady(lesion_rows_of(doc)))
    final = bool(result.reader and result.read_at) \
        and "review_incomplete" not in result.quality_flags
    return versions.next_version(case_dir, key, reader=result.reader,
                                 verified_at=result.read_at if final else "",
                                 study_uid=str(source.get("StudyInstanceUID", "")))


def try_write_case_artefacts(case_dir: Path, volume: CTVolume, *args: Any,
                             ) -> tuple[list[str], str]:
    """The artefacts, never raising: a failure is logged and returned as a message with the
    patient's identity taken out (names, ids and dates never reach a log or a table)."""
    written: list[str] = []
    try:
        return write_case_artefacts(case_dir, volume, *args, written=written), ""
    except Exception as err:  # noqa: BLE001 - the scores stand; the row says what failed
        secrets = _identity_values(volume)
        message = _scrub(f"{type(err).__name__}: {err}", secrets)
        log.error("case %s: report artefacts failed: %s", case_dir.name, message)
        log.debug("%s", _scrub("".join(traceback.format_exc()), secrets))
        return written, message


def _identity_values(volume: CTVolume) -> list[str]:
    if not volume.source_paths:
        return []
    try:
        return [v for v in patient_identity(volume.source_paths[0]).values() if len(v) >= 2]
    except Exception:  # noqa: BLE001 - unreadable now: nothing to take out
        return []


def _scrub(text: str, secrets: list[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "<identity removed>")
        for part in value.replace("^", " ").split():
            if len(part) >= 3:
                text = text.replace(part, "<identity removed>")
    return text
