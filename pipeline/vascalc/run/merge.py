"""Merge the outputs of shard runs (``vascalc run --shard I/N``) into one output folder.

Every part must have been run with the same config (same sha256); a case present in two parts
must have identical results. The tables are rebuilt from the per-case results, so a merged
output equals the output of one unsharded run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config.load import config_from_dict
from ..errors import ResultError, UsageError
from ..files import write_all
from ..outputs.tables import json_text
from ..results.casefolder import case_dir, commit, recover, staging_dir
from ..results.document import read_result, result_path, scan_of, version_of
from .lock import output_lock
from .rebuild import read_run, rebuild


def merge_outputs(parts: list[Path], out: Path) -> dict[str, Any]:
    """Merge shard outputs: each part's own cases (run.json's case list, so a stale result
    left in a part folder is never taken), scored with the one config, every shard present;
    the case folders (result, reports, masks, SEG, SR) are copied, the tables rebuilt."""
    runs = []
    for part in parts:
        run_json = part / "run.json"
        runs.append(read_run(run_json))
        if not isinstance(runs[-1].get("case_ids"), list):
            raise UsageError(f"{run_json} lists no case ids (written by an older vascalc)",
                             hint="rerun that shard with this vascalc")
    shas = sorted({str(r.get("config_sha256")) for r in runs})
    if len(shas) != 1:
        raise UsageError(f"the parts were run with different configs (sha256 {', '.join(shas)})",
                         hint="rerun the shards with one config")
    _check_shards([r.get("shard") for r in runs], parts)
    _check_same_run(runs, parts)
    docs: dict[str, dict] = {}
    source: dict[str, Path] = {}
    for part, run in zip(parts, runs):
        for cid in run["case_ids"]:
            res = result_path(part, cid)
            try:
                doc = read_result(res)
            except ResultError as err:
                raise UsageError(str(err).split(" -> ")[0], hint="rerun that shard") from None
            if doc.get("config_sha256") != run.get("config_sha256"):
                raise UsageError(f"{res} was scored with another config than its run",
                                 hint="rerun that shard into an empty folder")
            if version_of(doc) != __version__:
                raise UsageError(f"{res} was scored by vascalc {version_of(doc)}; this is "
                                 f"vascalc {__version__}, and one run's tables come from one "
                                 "version", hint=f"rerun that shard with vascalc {__version__} "
                                 "(its finished cases of this version are kept)")
            if cid in docs and scan_of(docs[cid]) != scan_of(doc):
                raise UsageError(f"case {cid} has different results in two parts ({res})",
                                 hint="give each shard's output once")
            docs[cid], source[cid] = doc, part
    with output_lock(out):
        recover(out)
        for cid, part in source.items():  # reports, masks, SEG and SR with the result
            # into a staging folder committed whole: a case folder already in OUT (another
            # result) never keeps its artefacts beside the merged result
            staging = staging_dir(out, cid)
            shutil.copytree(part / "cases" / cid, staging, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".*.tmp"))
            commit(staging, case_dir(out, cid))
        config = config_from_dict(runs[0]["config"]) if runs[0].get("config") else None
        summary, files = rebuild(out, docs, config=config, argv=None)
        summary["merged_from"] = [str(p) for p in parts]
        summary["case_ids"] = sorted(docs)
        summary["shard"] = None
        given = {json.dumps(r.get("inputs"), sort_keys=True) for r in runs}
        summary["inputs"] = runs[0].get("inputs") if len(given) == 1 else None
        files[out / "run.json"] = json_text(summary)
        write_all(files)
    return summary


def _check_shards(shards: list[str | None], parts: list[Path]) -> None:
    """Parts of a sharded run must be its shards 0..N-1 of one N, each once."""
    given = [s for s in shards if s]
    if not given:
        return
    if len(given) != len(shards):
        raise UsageError("some parts are shards and some are not",
                         hint="merge the shards of one run")
    pairs = [tuple(int(x) for x in s.split("/")) for s in given]
    ns = {n for _, n in pairs}
    if len(ns) != 1:
        raise UsageError(f"the parts are shards of different splits ({', '.join(given)})",
                         hint="merge the shards of one run")
    n = ns.pop()
    missing = sorted(set(range(n)) - {i for i, _ in pairs})
    twice = sorted(i for i in {i for i, _ in pairs} if [j for j, _ in pairs].count(i) > 1)
    if missing or twice:
        what = "; ".join(
            ([f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing"] if missing else [])
            + ([f"shard(s) {', '.join(f'{i}/{n}' for i in twice)} given twice"] if twice else []))
        raise UsageError(f"{what} among {', '.join(str(p) for p in parts)}",
                         hint="give every shard's output folder once")


def _check_same_run(runs: list[dict[str, Any]], parts: list[Path]) -> None:
    """Parts of one run: none was interrupted (its cases are not all scored), and shards were
    run on the same inputs, a manifest with the same content (its sha256 in run.json's
    ``inputs.manifests``), as the config check does for the config."""
    for part, run in zip(parts, runs):
        stop = run.get("interrupted")
        if stop:
            raise UsageError(f"{part} is a run stopped by {stop.get('signal', 'a signal')} "
                             f"before all its cases were scored ({len(stop.get('not_run', []))}"
                             " not run)", hint=f"run that shard again into {part} to finish it")
    if not any(r.get("shard") for r in runs):
        return
    seen: dict[str, tuple[str, Path]] = {}
    for part, run in zip(parts, runs):
        inputs = run.get("inputs") or {}
        manifests = inputs.get("manifests") or {}
        for path, sha in manifests.items():
            if path in seen and seen[path][0] != sha:
                raise UsageError(
                    f"the shards were run on different versions of the manifest {path}: "
                    f"sha256 {seen[path][0][:12]}... in {seen[path][1]}, {str(sha)[:12]}... in "
                    f"{part} (it changed between the shard jobs)",
                    hint="rerun every shard with the one manifest")
            seen.setdefault(path, (sha, part))
    paths = {json.dumps(sorted((r.get("inputs") or {}).get("paths") or [])) for r in runs}
    if len(paths) > 1:
        raise UsageError("the shards were run on different inputs ("
                         + "; ".join(f"{p}: {', '.join((r.get('inputs') or {}).get('paths') or [])}"
                                     for p, r in zip(parts, runs)) + ")",
                         hint="merge the shards of one run: the same inputs and --shard I/N")
