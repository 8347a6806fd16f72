"""vascalc rescore OUT: the run's tables, reports, SEG and SR again, from one reader's reads.

Each case the reader labelled goes back through the case path (:func:`vascalc.run.case.run_case`)
with the reads: the same calcium, split by the reader's labels (region source 'reader'),
the coronary scope from the coronary labels, risk category and CAC-DRS with N from them.
The other cases keep their results. The tables are rebuilt from all results, as a run
rebuilds them; rescoring twice gives identical tables.

Only finished reads become numbers: by default a case is taken only when the reader marked it
done. A case the reader has not finished keeps the run's result (one rescored earlier, then
unmarked, goes back to it); with ``include_unfinished`` it is rescored from the partial labels,
flagged review_incomplete, with no risk category or CAC-DRS. A case marked done with calcium
left unlabelled is a final only when the reader confirmed that the rest is not coronary (the
review page asks for it); without it (a database of an earlier vascalc) the case is
treated as unfinished and listed as ``unconfirmed``: a zero no reader confirmed never becomes
a final.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.schema import Config
from ..errors import ReviewError, UsageError
from ..files import write_all
from ..outputs.tables import json_text
from ..results.document import is_ok, scan_of, write_result
from ..run.case import run_case
from ..run.lock import output_lock
from ..run.rebuild import rebuild
from .cases import lesion_ids, lesion_labels, open_run, stale_reads
from .store import Reads, ReadStore


def pick_reader(store: ReadStore, reader: str | None) -> str:
    """The reader given, or the only one there is."""
    readers = store.readers()
    if reader is not None:
        if reader not in readers:
            raise UsageError(f"reader {reader!r} has no reads here (readers: "
                             f"{', '.join(readers) or 'none'})", hint="check --reader")
        return reader
    if len(readers) != 1:
        raise UsageError(f"{len(readers)} readers have reads here ({', '.join(readers) or 'none'})"
                         , hint="choose one with --reader NAME")
    return readers[0]


def check_reads(reads: Reads, doc: dict[str, Any], config: Config) -> None:
    """Every read names a lesion of the case and a label of the config (the server checks
    this as it stores them; a database edited by hand is refused here)."""
    known = set(lesion_ids(doc))
    names = {lab.name for lab in config.review.labels}
    keys = list(reads.lesion) + [les for les, _ in reads.slices]
    labels = list(reads.lesion.values()) + list(reads.slices.values())
    bad = [k for k in keys if k not in known] + [x for x in labels if x not in names]
    if bad:
        raise ReviewError(f"case {doc['case_id']}: reads name {bad[0]!r}, which is not a lesion "
                          "of the case or a label of the config")
    stale = stale_reads(reads, doc)
    if stale:
        raise ReviewError(f"case {doc['case_id']}: the reads of lesion(s) {stale[:5]} were made "
                          "on other lesions than those the run now numbers so (its config or "
                          "inputs changed since the reads)",
                          hint="review the case again, or rescore the run the reads were made on")


def reads_record(doc: dict[str, Any], reader: str, reads: Reads) -> dict[str, Any]:
    """The ``reads`` record of a rescored result: whose reads, the newest read, whether the
    read is a final (``done``: marked done, and every calcium lesion labelled or the rest
    confirmed not coronary: the case path's review_done), the confirmation and its time, and
    the calcium left unlabelled (the row's 'outside', by the case path's arithmetic)."""
    scan = scan_of(doc)
    final = bool(is_ok(doc) and reads.done and scan.get("review_done"))
    return {"reader": reader, "last_read_id": reads.last_id, "done": final,
            "marked_done": reads.done, "done_at": reads.done_at if reads.done else "",
            "rest_confirmed_not_coronary": bool(reads.rest_confirmed_at),
            "rest_confirmed_at": reads.rest_confirmed_at,
            "unlabelled_agatston": scan.get("unlabelled_agatston"),
            "unlabelled_volume_mm3": scan.get("unlabelled_volume_mm3")}


def rescore(out: Path, *, reader: str | None = None, argv: list[str] | None = None,
            on_case=None, include_unfinished: bool = False) -> dict[str, Any]:
    """Rescore the reader's finished cases (and, with ``include_unfinished``, the others,
    flagged), rebuild the tables; returns the run summary."""
    store = ReadStore(out)
    reader = pick_reader(store, reader)
    with output_lock(out):
        opened = open_run(out)
        run, config, cases, docs = opened.run, opened.config, opened.cases, opened.docs
        todo = [cid for cid in store.cases_read(reader) if cid in docs and cid in cases
                and is_ok(docs[cid])]
        rescored: list[str] = []
        unfinished: list[str] = []
        unconfirmed: list[str] = []
        for cid in todo:
            reads = store.reads(reader, cid)
            check_reads(reads, docs[cid], config)
            case = cases[cid]
            if case.fingerprint() != docs[cid].get("fingerprint"):
                raise ReviewError(f"case {cid}: its files changed since the run")
            if not reads.done:
                unfinished.append(cid)
                if not include_unfinished:
                    if "reads" in docs[cid]:  # rescored before, now unmarked: the run's result
                        doc = run_case(case, config, fingerprint=docs[cid]["fingerprint"],
                                       out=out)
                        write_result(out, doc)
                        docs[cid] = doc
                    continue
            doc = run_case(case, config, fingerprint=docs[cid]["fingerprint"], out=out,
                           reads=lesion_labels(reads, config, reader))
            doc["reads"] = reads_record(doc, reader, reads)
            if reads.done and not doc["reads"]["done"] and not include_unfinished:
                # marked done with calcium left unlabelled and no confirmation that it is not
                # coronary (an earlier vascalc, or a database edited by hand): not a final
                unconfirmed.append(cid)
                if "reads" in docs[cid]:
                    doc = run_case(case, config, fingerprint=docs[cid]["fingerprint"], out=out)
                    write_result(out, doc)
                    docs[cid] = doc
                continue
            if reads.done and not doc["reads"]["done"]:  # --include-unfinished: flagged
                unconfirmed.append(cid)
            write_result(out, doc)
            docs[cid] = doc
            rescored.append(cid)
            if on_case:
                on_case(cid, doc)
        summary, files = rebuild(out, docs, config=config, argv=argv)
        for key in ("inputs", "case_ids", "shard", "executor"):
            summary[key] = run.get(key)
        summary["rescored"] = {"reader": reader, "case_ids": rescored,
                               "unfinished": unfinished, "unconfirmed": unconfirmed,
                               "include_unfinished": include_unfinished}
        files[out / "run.json"] = json_text(summary)
        write_all(files)
    return summary


def rescore_finished(out: Path) -> dict[str, Any] | None:
    """Rescore a folder's finished reads (the DICOM node, when a reader marks a case of one of
    its studies done): by the reader who last marked a case done; None when no reader has
    finished a case."""
    store = ReadStore(out)
    finished = [(store.reads(reader, cid).done_at, reader) for reader in store.readers()
                for cid in store.cases_read(reader) if store.reads(reader, cid).done]
    if not finished:
        return None
    return rescore(out, reader=max(finished)[1])
