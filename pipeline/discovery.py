"""Discovery: what to score. Cases from a folder tree (every CT series is a case), a zip of
one, or a manifest CSV, and the discovery list of what was not scored and why.

A manifest has columns case_id and path (a series folder or file, relative to the manifest)
and optionally patient_id, height_cm, weight_kg, mass_calibration_mg_per_cm3_per_hu,
calibration_water_hu and regions; any
other column (age, sex, scan_date, timepoint, clinical covariates) is carried unchanged into
scans.csv. Validation errors name the line, the value and what is allowed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .bsa import check_anthropometry
from .config import Config
from .errors import AnthropometryError, ArchiveError, ManifestError, NoInputError
from .io.archive import extract_zip
from .io.dicom import ct_image_problem, index_tree
from .io.dicom_header import DicomHeader
from .io.nifti import is_nifti, mask_like
from .io.stacks import split_stacks
from .outputs.columns import names as column_names
from .types import Anthropometry

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MANIFEST_KNOWN = ("case_id", "path", "patient_id", "height_cm", "weight_kg",
                  "mass_calibration_mg_per_cm3_per_hu", "calibration_water_hu", "regions")


@dataclass(frozen=True, kw_only=True)
class Case:
    """One series to score. ``headers`` is set when discovery already indexed the files."""

    case_id: str
    path: str  # series folder or file
    display_path: str  # relative to what the user gave, for rows and logs
    headers: tuple[DicomHeader, ...] = ()
    patient_id: str | None = None  # from the manifest; None = take it from DICOM
    anthropometry: Anthropometry | None = None
    calibration: float | None = None  # manifest mass calibration; None = the config's
    water_hu: float | None = None  # manifest calibration water HU; None = the config's
    extra: dict[str, str] = field(default_factory=dict)
    error: tuple[str, str] | None = None  # (code, message) found before scoring, e.g. archives
    regions: str | None = None  # region masks: a folder of NIfTI masks or a label map

    def files(self) -> list[str]:
        """The files of the case (indexed ones, else every file under its path)."""
        if self.headers:
            return sorted(h.path for h in self.headers)
        p = Path(self.path)
        if p.is_file():
            return [str(p)]
        return _files_under(p)

    def fingerprint(self) -> str:
        """sha256 over the case's inputs: each file's relative path, size and mtime (of the
        series and of its region masks), and the manifest values that change the result.
        Equal fingerprints: nothing to redo."""
        h = hashlib.sha256()
        _hash_files(h, self.path, self.files())
        if self.regions:
            h.update(b"regions\n")
            _hash_files(h, self.regions, _files_under(Path(self.regions)))
        a = self.anthropometry
        h.update(repr((self.case_id, self.patient_id, a and (a.height_cm, a.weight_kg),
                       self.calibration, self.water_hu, sorted(self.extra.items()))).encode())
        return h.hexdigest()


def _files_under(p: Path) -> list[str]:
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        return []
    return sorted(str(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))


def _hash_files(h, root: str, files: list[str]) -> None:
    base = root if os.path.isdir(root) else os.path.dirname(root)
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            h.update(f"{f}\0missing\n".encode())
            continue
        h.update(f"{os.path.relpath(f, base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())


def safe_case_id(text: str) -> str:
    """A file-name-safe id from ``text``: [A-Za-z0-9._-], no leading dot, at most 64 chars
    (longer ones keep a hash suffix so they stay unique)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "case"
    if len(s) > 64:
        s = s[:51].rstrip("._-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return s


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        if i in seen:
            seen[i] += 1
            out.append(f"{i}-{seen[i]}")
        else:
            seen[i] = 1
            out.append(i)
    return out


def select_stacks(stacks: list[list], config: Config) -> tuple[list[list], list[tuple[str, str]]]:
    """Apply the config's selection keys; returns kept stacks and notes for the others."""
    sel = config.selection
    kept, notes = [], []
    for st in stacks:
        m = st[0].meta
        why = None
        if sel.series_description_regex and not re.search(sel.series_description_regex,
                                                          m.series_description):
            why = f"SeriesDescription {m.series_description!r} does not match the selection"
        elif sel.kernel_regex and not re.search(sel.kernel_regex, m.kernel):
            why = f"ConvolutionKernel {m.kernel!r} does not match the selection"
        if why:
            notes.extend((h.path, why) for h in st)
        else:
            kept.append(st)
    if sel.one_per_study:
        best: dict[str, list] = {}
        for st in kept:
            study = st[0].study_uid

            def score(s):
                t = s[0].meta.slice_thickness_mm
                return (abs(t - sel.target_thickness_mm) if t else float("inf"), -len(s))

            if study not in best or score(st) < score(best[study]):
                best[study] = st
        chosen = {id(st) for st in best.values()}
        for st in kept:
            if id(st) not in chosen:
                notes.extend((h.path, "another reconstruction of the study is closer to "
                                      f"{sel.target_thickness_mm:g} mm") for h in st)
        kept = [st for st in kept if id(st) in chosen]
    return kept, notes


def cases_from_tree(root: Path, config: Config) -> tuple[list[Case], list[dict[str, str]]]:
    """Every CT stack under ``root`` is a case. Returns the cases and a discovery list of
    what was not scored and why (non-DICOM files, non-CT objects, localizers, outliers,
    stacks the selection left out)."""

    headers, skipped = index_tree(root)
    notes = []
    nifti_cases: list[Case] = []
    for p, r in skipped:
        if is_nifti(p):
            try:
                is_mask = mask_like(p)
            except Exception:  # noqa: BLE001 - unreadable: the case row will say why
                is_mask = False
            if is_mask:
                notes.append({"path": _rel(p, root), "reason": "NIfTI mask or label map "
                              "(8-bit unsigned), not a CT"})
            else:
                rel = _rel(p, root)
                stem = rel[:-7] if rel.lower().endswith(".nii.gz") else rel[:-4]
                nifti_cases.append(Case(case_id=safe_case_id(stem if stem != "." else
                                                             Path(p).name), path=str(p),
                                        display_path=rel))
        else:
            notes.append({"path": _rel(p, root),
                          "reason": r.split(": ", 1)[-1].split(" -> ")[0]})
    cts = []
    for h in headers:
        problem = ct_image_problem(h)
        if problem:
            notes.append({"path": _rel(h.path, root), "reason": problem})
        else:
            cts.append(h)
    stacks, outliers = split_stacks(cts, min_slices=config.selection.min_slices)
    stacks, unselected = select_stacks(stacks, config)
    notes.extend({"path": _rel(p, root), "reason": r} for p, r in outliers + unselected)
    groups = sorted(stacks, key=lambda hs: min(h.path for h in hs))
    folders = [os.path.commonpath([os.path.dirname(h.path) for h in hs]) for hs in groups]
    raw_ids = []
    for hs, folder in zip(groups, folders):
        if config.output.case_id_from == "series_uid":
            raw_ids.append("s-" + hashlib.sha256(hs[0].series_uid.encode()).hexdigest()[:16])
        else:
            rel = _rel(folder, root)
            raw_ids.append(safe_case_id(rel if rel != "." else Path(folder).name))
    ids = _unique(raw_ids + [c.case_id for c in nifti_cases])
    cases = [Case(case_id=cid, path=c.path, display_path=c.display_path)
             for cid, c in zip(ids[len(raw_ids):], nifti_cases)]
    for cid, hs, folder in zip(ids, groups, folders):
        cases.append(Case(case_id=cid, path=folder, display_path=_rel(folder, root),
                          headers=tuple(hs)))
    notes.sort(key=lambda n: n["path"])
    cases.sort(key=lambda c: c.case_id)
    return cases, notes


def _rel(path: str | Path, root: Path) -> str:
    base = root if root.is_dir() else root.parent
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def _float_or_none(value: str, column: str, line: int, manifest: Path) -> float | None:
    value = (value or "").strip()
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ManifestError(f"line {line}: {column}={value!r} is not a number",
                            path=str(manifest)) from None


def cases_from_manifest(manifest: Path) -> list[Case]:
    """Read and validate a manifest CSV (paths relative to the manifest's folder)."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ManifestError(f"cannot read manifest: {err}", path=str(manifest)) from None
    missing = [c for c in ("case_id", "path") if c not in columns]
    if missing:
        raise ManifestError(f"missing column(s) {', '.join(missing)}; found {columns}",
                            path=str(manifest))
    if not rows:
        raise ManifestError("the manifest has no rows", path=str(manifest))
    clash = [c for c in columns if c not in MANIFEST_KNOWN and c in column_names("scans")]
    if clash:
        raise ManifestError(
            f"column(s) {', '.join(clash)} are vascalc output columns of scans.csv; a manifest "
            "column with that name would be lost", path=str(manifest),
            hint="rename them (e.g. manifest_" + clash[0] + ") and join them back after the run")
    cases, seen = [], {}
    for i, row in enumerate(rows, start=2):
        cid = (row.get("case_id") or "").strip()
        if not _SAFE_ID.match(cid):
            raise ManifestError(
                f"line {i}: case_id {cid!r} is not a safe name (letters, digits, '.', '_', '-'; "
                "starting with a letter or digit; at most 64 characters)", path=str(manifest))
        if cid in seen:
            raise ManifestError(f"line {i}: case_id {cid!r} already used on line {seen[cid]}",
                                path=str(manifest))
        seen[cid] = i
        rel = (row.get("path") or "").strip()
        if not rel:
            raise ManifestError(f"line {i}: path is empty", path=str(manifest))
        h = _float_or_none(row.get("height_cm", ""), "height_cm", i, manifest)
        w = _float_or_none(row.get("weight_kg", ""), "weight_kg", i, manifest)
        try:
            if h is not None:
                check_anthropometry(h, w if w is not None else 70.0, source=f"line {i}")
            if w is not None:
                check_anthropometry(h if h is not None else 170.0, w, source=f"line {i}")
        except AnthropometryError as err:
            raise ManifestError(str(err).split(" -> ")[0], path=str(manifest)) from None
        cal = _float_or_none(row.get("mass_calibration_mg_per_cm3_per_hu", ""),
                             "mass_calibration_mg_per_cm3_per_hu", i, manifest)
        if cal is not None and not (0 < cal < 10):
            raise ManifestError(f"line {i}: mass_calibration_mg_per_cm3_per_hu={cal:g} is outside "
                                "(0, 10) mg/(cm3*HU)", path=str(manifest))
        water = _float_or_none(row.get("calibration_water_hu", ""), "calibration_water_hu", i,
                               manifest)
        if water is not None and not -1000 < water < 1000:
            raise ManifestError(f"line {i}: calibration_water_hu={water:g} is outside (-1000, "
                                "1000) HU", path=str(manifest))
        pid = (row.get("patient_id") or "").strip() or None
        extra = {k: (v if v is not None else "") for k, v in row.items()
                 if k is not None and k not in MANIFEST_KNOWN}
        target = Path(rel) if Path(rel).is_absolute() else manifest.parent / rel
        reg = (row.get("regions") or "").strip()
        reg_path = None if not reg else str(Path(reg) if Path(reg).is_absolute()
                                            else manifest.parent / reg)
        cases.append(Case(case_id=cid, path=str(target), display_path=rel, patient_id=pid,
                          anthropometry=Anthropometry(height_cm=h, weight_kg=w),
                          calibration=cal, water_hu=water, extra=extra, regions=reg_path))
    return cases


def collect_cases(inputs: list[Path], config: Config, *, work_dir: Path | None = None,
                  ) -> tuple[list[Case], list[dict[str, str]]]:
    """Cases from each input: a manifest (.csv), a zip archive (extracted safely into
    ``work_dir``), a folder tree, or one DICOM file."""

    cases: list[Case] = []
    notes: list[dict[str, str]] = []
    for inp in inputs:
        if not inp.exists():
            raise NoInputError(f"input {str(inp)!r} does not exist")
        if inp.is_file() and inp.suffix.lower() == ".csv":
            cases.extend(cases_from_manifest(inp))
        elif inp.is_file() and inp.suffix.lower() == ".zip":
            digest = hashlib.sha256(str(inp.resolve()).encode()).hexdigest()[:8]
            dest = (work_dir or Path(".vascalc-work")) / f"{safe_case_id(inp.stem)}-{digest}"
            try:
                extract_zip(inp, dest, max_bytes=config.input.max_archive_bytes,
                            max_files=config.input.max_archive_files)
            except ArchiveError as err:
                cases.append(Case(case_id=safe_case_id(inp.stem), path=str(inp),
                                  display_path=inp.name, error=(err.code, str(err))))
                continue
            c, n = cases_from_tree(dest, config)
            for case in c:
                cid = safe_case_id(f"{inp.stem}_{case.case_id}")
                cases.append(Case(case_id=cid, path=case.path,
                                  display_path=f"{inp.name}!/{case.display_path}",
                                  headers=case.headers))
            notes.extend({"path": f"{inp.name}!/{x['path']}", "reason": x["reason"]} for x in n)
        else:
            c, n = cases_from_tree(inp, config)
            cases.extend(c)
            notes.extend(n)
    if not cases:
        raise NoInputError(f"no CT series found in {', '.join(str(i) for i in inputs)}")
    dup = sorted(i for i, n in Counter(c.case_id for c in cases).items() if n > 1)
    if dup:
        raise NoInputError(f"case ids occur twice across the inputs: {', '.join(dup)}",
                           hint="give each input once, or use a manifest with unique case_id")
    return cases, notes


DISCOVERY_COLUMNS = ["status", "case_id", "images", "path", "reason"]


def discovery_rows(cases: list[Case], notes: list[dict[str, str]]) -> list[dict]:
    """The discovery table: every case and every file not scored, with the reason."""
    rows = [{"status": "case", "case_id": c.case_id, "images": len(c.headers) or "",
             "path": c.display_path, "reason": ""} for c in cases]
    rows += [{"status": "not_scored", "case_id": "", "images": 1, "path": n["path"],
              "reason": n["reason"]} for n in notes]
    return rows
