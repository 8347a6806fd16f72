"""Discovery: what to score. Cases from a folder tree (every CT series is a case), a zip of
one, or a manifest CSV (read by :mod:`vascalc.run.manifest`), and the discovery list of what was
not scored and why. Discovery flags what it sees that the scan alone cannot show: a series
split into stacks, outlier images left out, a DICOM file in the folder that could not be read.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.schema import Config
from ..errors import ArchiveError, NoInputError
from ..io.archive import extract_zip
from ..io.dicom import ct_image_problem, index_tree
from ..io.dicom_header import DicomHeader
from ..io.masks import label_table_file
from ..io.nifti import is_nifti, mask_like, nifti_stem
from ..io.stacks import split_reasons, split_stacks, unreadable_files
from ..records import Anthropometry
from ..values import safe_name as safe_case_id
from .eligibility import facts_of, refusal
from .manifest import read_manifest


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
    #: quality flags discovery found for the case (series split, outliers, unreadable files)
    flags: tuple[str, ...] = ()
    #: why discovery made the case as it is (a split series: what differs), for discovery.csv
    note: str = ""

    def files(self) -> list[str]:
        """The files of the case (indexed ones, else every file under its path)."""
        if self.headers:
            return sorted(h.path for h in self.headers)
        p = Path(self.path)
        if p.is_file():
            return [str(p)]
        return _files_under(p)

    def fingerprint(self) -> str:
        """sha256 over the case's inputs: each file's relative path and content (of the
        series and of its region masks, :func:`_hash_files`), the label table beside a label
        map (its content),
        and the manifest values that change the result (the config's label table, territory
        and class patterns are in the config's sha256, which a rerun compares too).
        Equal fingerprints: nothing to redo."""
        h = hashlib.sha256()
        _hash_files(h, self.path, self.files())
        if self.regions:
            h.update(b"regions\n")
            _hash_files(h, self.regions, _files_under(Path(self.regions)))
            table = label_table_file(Path(self.regions)) if Path(self.regions).is_file() else None
            if table is not None:  # the label table beside a map names its regions
                try:
                    h.update(b"label table\n" + table.read_bytes())
                except OSError:
                    h.update(b"label table unreadable\n")
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
    """Each file's path (relative to ``root``) and the sha256 of its content: a file replaced
    by another of the same size and modification time is told apart (a size and mtime key
    is not: copies with ``cp -p`` or ``rsync -t`` keep both). On a 300-slice 512 x 512
    series (158 MB) this costs 0.11 s warm on an idle 2-core machine (sha256 at about
    1.5 GB/s), 0.34 s under load against 1.08 s for load_ct (benchmarks/
    bench_fingerprint.py)."""
    base = root if os.path.isdir(root) else os.path.dirname(root)
    for f in files:
        try:
            with open(f, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError:
            h.update(f"{f}\0missing\n".encode())
            continue
        h.update(f"{os.path.relpath(f, base)}\0{digest}\n".encode())


def _unique(ids: list[str]) -> list[str]:
    """Ids made unique ignoring case (A and a are one folder on macOS and Windows)."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        key = i.casefold()
        if key in seen:
            seen[key] += 1
            out.append(f"{i}-{seen[key]}")
        else:
            seen[key] = 1
            out.append(i)
    return out


def select_stacks(stacks: list[list], config: Config) -> tuple[list[list], list[tuple[str, str]]]:
    """Apply the config's selection keys; returns kept stacks and notes for the others."""
    sel = config.selection
    kept: list = []
    notes: list = []
    for st in stacks:
        m = st[0].meta
        why = refusal(facts_of(st), sel.rules) if sel.rules is not None else None
        if why:
            pass
        elif sel.series_description_regex and not re.search(sel.series_description_regex,
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


def path_ids(paths: list[tuple[str, ...]], depths: list[int]) -> list[str]:
    """Case ids from paths' own last components: ``depths[i]`` of them joined by '_' (two
    for a series folder, whose name alone is often 'dicom' or 'CT'; one for a NIfTI file),
    more where two cases would share an id and more names can tell them apart, never beyond
    the components given (:func:`_parts`: the input's own name and the path below it). They do
    not depend on the root folder given, so a rerun from another root resumes and joins on the
    same ids (docs, outputs)."""
    depth = list(depths)
    while True:
        ids = ["_".join(p[-d:]) for p, d in zip(paths, depth)]
        count = Counter(ids)
        same = Counter(paths)  # one folder holding two series: more names cannot tell them
        grow = [i for i, x in enumerate(ids)
                if count[x] > 1 and depth[i] < len(paths[i]) and same[paths[i]] < count[x]]
        if not grow:
            return [safe_case_id(x) if x else "" for x in ids]
        for i in grow:
            depth[i] += 1


def _parts(path: str, root: Path, within: Path | None, *, pad: bool = True,
           ) -> tuple[str, ...]:
    """The components of ``path`` an id may use: relative to ``within`` (an extraction
    folder, whose own name is a digest), else the input folder's own name and the path below
    it; with ``pad``, the name of the folder above the input too when that leaves fewer than
    two (a series folder given itself is named by its parent and itself, as from the tree).
    Never more: a split series' id once walked up to the file-system root (#35 item 14)."""
    if within is not None:
        rel = os.path.relpath(path, within)
        return () if rel == "." else Path(rel).parts
    base = Path(os.path.abspath(root if root.is_dir() else root.parent))
    rel = os.path.relpath(path, base)
    inside = tuple(x for x in (base.name, *(() if rel == "." else Path(rel).parts)) if x)
    if pad and len(inside) < 2 and base.parent.name:
        return (base.parent.name, *inside)
    return inside


def cases_from_tree(root: Path, config: Config, *, within: Path | None = None, jobs: int = 1,
                    ) -> tuple[list[Case], list[dict[str, str]]]:
    """Every CT stack under ``root`` is a case. Returns the cases and a discovery list of
    what was not scored and why (non-DICOM files, non-CT objects, localizers, outliers,
    stacks the selection left out). ``jobs`` processes read the headers."""

    headers, skipped = index_tree(root, jobs=jobs)
    notes: list[dict[str, str]] = []
    nifti_cases: list[Case] = []
    # DICOM files that cannot be classified (cut inside the meta or the SOP class, unparsable):
    # unreadable files of the series in their folder, flagged and listed, never 'not a CT'
    headers, unreadable = unreadable_files(headers, skipped)
    notes.extend({"path": _rel(p, root), "reason": r} for p, r in unreadable)
    listed = {p for p, _ in unreadable}
    for p, r in skipped:
        if p in listed:
            continue
        if is_nifti(p):
            try:
                is_mask = mask_like(p)
            except Exception:  # noqa: BLE001 - unreadable: the case row will say why
                is_mask = False
            if is_mask:
                notes.append({"path": _rel(p, root), "reason": "NIfTI mask or label map "
                              "(8-bit unsigned), not a CT"})
            else:
                nifti_cases.append(Case(case_id="", path=str(p), display_path=_rel(p, root)))
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
    reasons = split_reasons(stacks)
    by_path = {h.path: h for h in cts}
    with_outliers = {by_path[p].series_uid for p, _ in outliers}
    split = Counter(st[0].series_uid for st in stacks)
    stacks, unselected = select_stacks(stacks, config)
    notes.extend({"path": _rel(p, root), "reason": r} for p, r in outliers + unselected)
    groups = sorted(stacks, key=lambda hs: min(h.path for h in hs))
    folders = [os.path.commonpath([os.path.dirname(h.path) for h in hs]) for hs in groups]
    parts = [_parts(f, root, within) for f in folders] + [
        (*_parts(os.path.dirname(c.path), root, within, pad=False), nifti_stem(c.path))
        for c in nifti_cases]
    named = path_ids(parts, [2] * len(folders) + [1] * len(nifti_cases))
    raw_ids = named[:len(folders)]
    if config.output.case_id_from == "series_uid":
        raw_ids = ["s-" + hashlib.sha256(hs[0].series_uid.encode()).hexdigest()[:16]
                   for hs in groups]
    ids = _unique(raw_ids + named[len(folders):])
    cases = [Case(case_id=cid, path=c.path, display_path=c.display_path)
             for cid, c in zip(ids[len(raw_ids):], nifti_cases)]
    for cid, hs, folder in zip(ids, groups, folders):
        uid = hs[0].series_uid
        lost = sum(1 for p, _ in unreadable
                   if os.path.dirname(p) in {os.path.dirname(h.path) for h in hs})
        flags = tuple(f for f, on in (
            ("outlier_images_excluded", uid in with_outliers),
            ("series_split", split[uid] > 1),
            ("unreadable_files_in_folder", lost > 0),
        ) if on)
        why = [f"part of a split series: {reasons[id(hs)]}"] if id(hs) in reasons else []
        if lost:
            why.append(f"{lost} unreadable DICOM file(s) in its folder")
        cases.append(Case(case_id=cid, path=folder, display_path=_rel(folder, root),
                          headers=tuple(hs), flags=flags, note="; ".join(why)))
    notes.sort(key=lambda n: n["path"])
    cases.sort(key=lambda c: c.case_id)
    return cases, notes


def _rel(path: str | Path, root: Path) -> str:
    base = root if root.is_dir() else root.parent
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def cases_from_manifest(manifest: Path, *, warnings: list[str] | None = None) -> list[Case]:
    """The cases of a manifest CSV (vascalc.run.manifest reads and validates it)."""
    return [Case(**row) for row in read_manifest(manifest, warnings=warnings)]


def collect_cases(inputs: list[Path], config: Config, *, work_dir: Path | None = None,
                  warnings: list[str] | None = None, jobs: int = 1,
                  ) -> tuple[list[Case], list[dict[str, str]]]:
    """Cases from each input: a manifest (.csv), a zip archive (extracted safely into
    ``work_dir``), a folder tree, or one DICOM file. Manifest warnings go to ``warnings``."""

    cases: list[Case] = []
    notes: list[dict[str, str]] = []
    for inp in inputs:
        if not inp.exists():
            raise NoInputError(f"input {str(inp)!r} does not exist")
        if inp.is_file() and inp.suffix.lower() == ".csv":
            cases.extend(cases_from_manifest(inp, warnings=warnings))
        elif inp.is_file() and inp.suffix.lower() == ".zip":
            # the folder is named by the archive's path, size and time: a changed archive is
            # never read from an extraction a killed run left behind; it is always fresh
            st = inp.stat()
            digest = hashlib.sha256(f"{inp.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()
                                    ).hexdigest()[:8]
            dest = (work_dir or Path(".vascalc-work")) / f"{safe_case_id(inp.stem)}-{digest}"
            shutil.rmtree(dest, ignore_errors=True)
            try:
                extract_zip(inp, dest, max_bytes=config.input.max_archive_bytes,
                            max_files=config.input.max_archive_files)
            except ArchiveError as err:
                shutil.rmtree(dest, ignore_errors=True)  # a bomb's partial output goes at once
                cases.append(Case(case_id=safe_case_id(inp.stem), path=str(inp),
                                  display_path=inp.name, error=(err.code, str(err))))
                continue
            c, n = cases_from_tree(dest, config, within=dest, jobs=jobs)
            if not c:
                shutil.rmtree(dest, ignore_errors=True)  # nothing to score: nothing kept
            for case in c:
                cid = safe_case_id(f"{inp.stem}_{case.case_id}" if case.case_id else inp.stem)
                # everything discovery saw of it (its flags: unreadable files, split series)
                # travels with it, as for a folder: an archive member gets what a file gets
                cases.append(replace(case, case_id=cid,
                                     display_path=f"{inp.name}!/{case.display_path}"))
            notes.extend({"path": f"{inp.name}!/{x['path']}", "reason": x["reason"]} for x in n)
        else:
            c, n = cases_from_tree(inp, config, jobs=jobs)
            cases.extend(c)
            notes.extend(n)
    if not cases:
        from .microct import holds_microct  # lazy: only when nothing was found

        micro = [str(i) for i in inputs if holds_microct(Path(i))]
        raise NoInputError(f"no CT series found in {', '.join(str(i) for i in inputs)}",
                           hint=f"{', '.join(micro)} hold(s) micro-CT stacks: score them with "
                           "vascalc microct (docs: Micro-CT)" if micro else None)
    dup = sorted(i for i, n in Counter(c.case_id.casefold() for c in cases).items() if n > 1)
    if dup:
        raise NoInputError(f"case ids occur twice across the inputs (ignoring case, as macOS "
                           f"and Windows file systems do): {', '.join(dup)}",
                           hint="give each input once, or use a manifest with unique case_id")
    return cases, notes


DISCOVERY_COLUMNS = ["status", "case_id", "images", "path", "reason"]


def run_inputs(inputs: list[Path], regions: Path | None = None) -> dict[str, Any]:
    """What a run scored, as absolute paths, for run.json: review and rescore find the cases
    again from it (the same discovery, the same case ids); each manifest's content sha256
    (``manifests``), so merge refuses shards of a manifest that changed between their jobs."""
    return {"paths": [str(Path(p).resolve()) for p in inputs],
            "regions": None if regions is None else str(Path(regions).resolve()),
            "manifests": {str(Path(p).resolve()): _sha256_of(Path(p)) for p in inputs
                          if Path(p).suffix.lower() == ".csv" and Path(p).is_file()}}


def _sha256_of(path: Path) -> str:
    """The sha256 of a file's content ('' when it cannot be read): a manifest edited between
    shard jobs is told apart by it (merge refuses such shards)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def discovery_rows(cases: list[Case], notes: list[dict[str, str]]) -> list[dict]:
    """The discovery table: every case and every file not scored, with the reason."""
    rows = [{"status": "case", "case_id": c.case_id, "images": len(c.headers) or "",
             "path": c.display_path, "reason": c.note} for c in cases]
    rows += [{"status": "not_scored", "case_id": "", "images": 1, "path": n["path"],
              "reason": n["reason"]} for n in notes]
    return rows
