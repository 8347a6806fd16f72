"""Merge the outputs of shard runs (``vascalc run --shard I/N``) into one output folder.

Every part must have been run with the same config (same sha256); a case present in two parts
must have identical results. The tables are rebuilt from the per-case results, so a merged
output equals the output of one unsharded run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .batch import rebuild
from .config import config_from_dict
from .errors import ResultError, UsageError
from .outputs.tables import write_json
from .result import read_result, write_result


def merge_outputs(parts: list[Path], out: Path) -> dict[str, Any]:
    runs = []
    for part in parts:
        run_json = part / "run.json"
        try:
            runs.append(json.loads(run_json.read_text()))
        except (OSError, ValueError):
            raise UsageError(f"{run_json} is missing or unreadable",
                             hint=f"check that {part} is a vascalc output folder whose run "
                                  "finished") from None
    shas = sorted({str(r.get("config_sha256")) for r in runs})
    if len(shas) != 1:
        raise UsageError(f"the parts were run with different configs (sha256 {', '.join(shas)})",
                         hint="rerun the shards with one config")
    docs: dict[str, dict] = {}
    for part in parts:
        for res in sorted((part / "cases").glob("*/result.json")):
            try:
                doc = read_result(res)
            except ResultError as err:
                raise UsageError(str(err).split(" -> ")[0], hint="rerun that shard") from None
            cid = doc["case_id"]
            if cid in docs and docs[cid]["scan"] != doc["scan"]:
                raise UsageError(f"case {cid} has different results in two parts ({res})",
                                 hint="give each shard's output once")
            docs[cid] = doc
    configs = [r.get("config") for r in runs]
    for doc in docs.values():
        write_result(out, doc)
    config = config_from_dict(configs[0]) if configs[0] else None
    summary = rebuild(out, sorted(docs), config=config, argv=None)
    summary["merged_from"] = [str(p) for p in parts]
    write_json(out / "run.json", summary)
    return summary
