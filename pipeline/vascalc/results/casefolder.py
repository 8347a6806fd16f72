"""A case folder (``OUT/cases/<case_id>/``) holds one result and the artefacts made from it,
together or not at all.

A case's artefacts (report, key images, masks, SEG, SR) are written into a staging folder
beside it (:func:`staging_dir`, ``OUT/cases/.<case_id>.<token>.partial``); its result.json is
written into the same folder last, and :func:`commit` then puts the staging folder in the case
folder's place (two renames: the old folder aside, the new one in). So a run stopped at any
instant (a signal, a SIGKILL, a full disk) leaves either the old result with its own artefacts
or the new one with its own, never a result beside another result's report, and never
artefacts without a result. :func:`recover` finishes or undoes, at the next start, a commit
that was cut between its two renames, and removes every staging folder left behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

PARTIAL, OLD = "partial", "old"

#: the files a case folder keeps across its results, copied into each new staging folder: the
#: ledger of the result versions sent to a PACS (each version references the one before it)
KEPT = ("versions.json",)


def case_dir(out: Path, case_id: str) -> Path:
    return out / "cases" / case_id


def staging_dir(out: Path, case_id: str) -> Path:
    """A new staging folder for a case's next result (unique per attempt, so a worker still
    writing after its run was stopped never mixes into another attempt's folder), holding
    only the case folder's :data:`KEPT` files."""
    path = out / "cases" / f".{case_id}.{uuid.uuid4().hex[:12]}.{PARTIAL}"
    path.mkdir(parents=True)
    for name in KEPT:
        if (case_dir(out, case_id) / name).is_file():
            shutil.copy2(case_dir(out, case_id) / name, path / name)
    return path


def commit(staging: Path, target: Path) -> None:
    """Put ``staging`` (holding result.json) in ``target``'s place: the old folder is renamed
    aside, the new one in, then the old one removed."""
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.{OLD}")
        os.replace(target, aside)
    os.replace(staging, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _parts(name: str) -> tuple[str, str] | None:
    """(case_id, kind) of a staging or aside folder's name, None for any other name."""
    if not name.startswith("."):
        return None
    bits = name[1:].rsplit(".", 2)
    if len(bits) != 3 or bits[2] not in (PARTIAL, OLD):
        return None
    return bits[0], bits[2]


def recover(out: Path) -> list[str]:
    """Finish or undo the commits a stopped run cut short, and remove its staging folders;
    returns the case ids whose folders were put back or finished."""
    cases = out / "cases"
    if not cases.is_dir():
        return []
    fixed = []
    found: dict[str, dict[str, list[Path]]] = {}
    for p in cases.iterdir():
        parts = _parts(p.name)
        if parts is not None and p.is_dir():
            found.setdefault(parts[0], {PARTIAL: [], OLD: []})[parts[1]].append(p)
    for cid, kinds in found.items():
        target = cases / cid
        if not target.exists():
            # cut between the two renames: the staged result was complete (it had its
            # result.json); else put the old folder back
            done = [p for p in kinds[PARTIAL] if (p / "result.json").is_file()]
            back = done[:1] or kinds[OLD][:1]
            if back:
                os.replace(back[0], target)
                fixed.append(cid)
        for p in kinds[PARTIAL] + kinds[OLD]:
            if p.exists():
                shutil.rmtree(p, ignore_errors=True)
    return fixed


__all__ = ["case_dir", "commit", "recover", "staging_dir"]
