"""TotalSegmentator as the region source: run it per case, cache its label map, resume.

TotalSegmentator (Wasserthal et al., Radiology: Artificial Intelligence 2023;
github.com/wasserth/TotalSegmentator) is an optional extra (``pip install 'vascalc[segment]'``):
it brings torch and downloads its model weights on first use. Each case's CT is loaded through
vascalc's own readers and handed to TotalSegmentator as a NIfTI on the CT's grid (so every
input kind works and the label map needs no resampling); TotalSegmentator's Python API
(``totalsegmentator.python_api.totalsegmentator``) runs task ``total`` with ``ml=True`` (one
multilabel map, v2 class ids), only for the classes the profile uses (``roi_subset``), on the
CPU and with ``fast`` (3 mm model) unless told otherwise. The map and a provenance record
(TotalSegmentator's version, task, options, the input fingerprint) are cached in
``OUT/<case_id>/<key>/`` (key: a hash of the input fingerprint and the options); a rerun with
the same input and options reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

from ..config.label_tables import LABEL_TABLES
from ..config.schema import Config
from ..core.regions import matches
from ..errors import UsageError
from ..io.load import load_ct
from ..io.masks import nifti_bytes
from ..run.discovery import Case

TASK = "total"
LABEL_TABLE = "totalsegmentator_v2"
SEGMENTATION = "segmentation.nii.gz"
PROVENANCE = "provenance.json"
#: classes split_aorta: vertebrae needs, whatever the territories
SPLIT_CLASSES = ("vertebrae_T12", "vertebrae_L1")


def roi_subset(config: Config) -> list[str]:
    """The TotalSegmentator v2 classes the config uses: those a territory names (a catch-all
    '*' territory names none), those classed vascular, coronary or bone, and the vertebrae the
    aorta split needs."""
    rc = config.regions
    named = [p for pats in rc.territories.values() for p in pats if p != "*"]
    wanted = [*named, *rc.vascular, *rc.bone, *(SPLIT_CLASSES if rc.split_aorta == "vertebrae"
                                                else ())]
    return [c for c in LABEL_TABLES[LABEL_TABLE].values() if matches(c, wanted)]


@dataclass(frozen=True)
class Segmentation:
    """A case's cached label map and whether this call computed it."""

    case_id: str
    path: Path
    provenance: dict[str, Any]
    reused: bool


def api() -> Callable[..., Any]:
    """TotalSegmentator's Python entry point, or a usage error that says how to install it."""
    try:
        from totalsegmentator.python_api import totalsegmentator  # optional extra (torch)
    except ImportError:
        raise UsageError(
            "TotalSegmentator is not installed",
            hint="pip install 'vascalc[segment]' (it brings torch; its model weights download on "
                 "first use), or run TotalSegmentator yourself and give its output with --regions "
                 "and the totalsegmentator profile (vascalc config show totalsegmentator)") from None
    return totalsegmentator


def installed_version() -> str:
    try:
        return version("TotalSegmentator")
    except PackageNotFoundError:
        return ""


def segment_case(case: Case, config: Config, out: Path, *, fast: bool = True,
                 device: str = "cpu", run: Callable[..., Any] | None = None) -> Segmentation:
    """The case's TotalSegmentator label map under ``out``: reused when the cache holds one for
    the same input fingerprint and options, else computed (``run``: the API, for tests)."""
    fingerprint = case.fingerprint()
    options = {"task": TASK, "ml": True, "fast": fast, "device": device,
               "roi_subset": roi_subset(config)}
    key = hashlib.sha256(json.dumps([fingerprint, options], sort_keys=True).encode()).hexdigest()
    folder = out / case.case_id / key[:16]  # one folder per input and options
    cached = _read_provenance(folder)
    if (cached is not None and cached.get("fingerprint") == fingerprint
            and cached.get("options") == options and (folder / SEGMENTATION).is_file()):
        return Segmentation(case.case_id, folder / SEGMENTATION, cached, reused=True)
    run = run if run is not None else api()
    volume = load_ct(case.path, config, display_path=case.display_path, headers=case.headers)
    t0 = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".segment-", dir=folder.parent) as tmp:
        ct = Path(tmp) / "ct.nii.gz"  # the CT on its own grid, in HU; removed afterwards
        ct.write_bytes(nifti_bytes(volume.hu, volume, xyz=True))
        work = Path(tmp) / "result"
        work.mkdir()
        run(ct, work / SEGMENTATION, quiet=True, **options)
        if not (work / SEGMENTATION).is_file():
            raise UsageError(f"TotalSegmentator wrote no {SEGMENTATION} for case {case.case_id}",
                             hint="run it alone on the case to see why")
        provenance = {"case_id": case.case_id, "fingerprint": fingerprint, "options": options,
                      "segmenter": "TotalSegmentator", "segmenter_version": installed_version(),
                      "label_table": LABEL_TABLE, "seconds": round(time.perf_counter() - t0, 3)}
        (work / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)  # a stale or partial cache of this fingerprint
        os.replace(work, folder)  # whole or not at all: a killed run leaves no half cache
    return Segmentation(case.case_id, folder / SEGMENTATION, provenance, reused=False)


def _read_provenance(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _manifest_values(case: Case) -> dict[str, Any]:
    """The case's own manifest values, carried into the segmented manifest."""
    a = case.anthropometry
    values = {"patient_id": case.patient_id,
              "height_cm": a.height_cm if a else None, "weight_kg": a.weight_kg if a else None,
              "mass_calibration_mg_per_cm3_per_hu": case.calibration,
              "calibration_water_hu": case.water_hu}
    return {k: v for k, v in values.items() if v is not None}


def segment_cases(cases: list[Case], config: Config, out: Path, *, fast: bool = True,
                  device: str = "cpu", run: Callable[..., Any] | None = None,
                  on_case: Callable[[Case, Segmentation | None, str], None] | None = None,
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Segment every case (reusing cached maps); returns the manifest rows for ``vascalc run``
    (each case with its label map in ``regions``, empty where segmentation failed) and one
    status row per case. A case that fails never stops the others."""
    if run is None:
        run = api()
    manifest, status = [], []
    for case in cases:
        if case.error is not None:
            seg, error = None, f"[{case.error[0]}] {case.error[1]}"
        else:
            try:
                seg, error = segment_case(case, config, out, fast=fast, device=device, run=run), ""
            except Exception as exc:  # noqa: BLE001 - a case's failure is its row
                seg, error = None, f"{type(exc).__name__}: {exc}"
        if on_case is not None:
            on_case(case, seg, error)
        manifest.append({"case_id": case.case_id, "path": str(Path(case.path).resolve()),
                         "regions": str(seg.path.resolve()) if seg else "",
                         **_manifest_values(case), **case.extra})
        status.append({"case_id": case.case_id, "status": "ok" if seg else "failed",
                       "reused": bool(seg and seg.reused), "error": error,
                       "regions": str(seg.path) if seg else "",
                       "seconds": seg.provenance.get("seconds", "") if seg else ""})
    return manifest, status
