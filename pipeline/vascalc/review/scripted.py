"""Reads written by a script, signed as the review server signs them.

A read names a lesion by its number, and it holds only while that number is the same lesion:
the server stores with each read the signature of the lesion (or lesion part) it was made on
(:func:`vascalc.review.cases.lesion_signature`, :func:`~vascalc.review.cases.part_signature`),
and rescore refuses a read whose signature is missing or another now. A script (the golden
tables, the sample data's reads, a migration) writes its reads through :func:`write_reads`,
which signs them from the case's result the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import ReviewError
from ..results.document import read_result, result_path
from .cases import lesion_signature, part_signature
from .store import ReadStore


def write_reads(out: Path, reads: Iterable[tuple[str, str, int, int | None, str]], *,
                done: Iterable[tuple[str, str]] = (),
                rest_not_coronary: Iterable[tuple[str, str]] = ()) -> None:
    """Append ``reads`` ((reader, case, lesion, slice or None, label), in order) to
    OUT/reads.sqlite, each signed from the case's result.json, then mark each (reader, case)
    of ``done`` done; those also in ``rest_not_coronary`` with the reader's confirmation
    that the calcium left unlabelled is not coronary. Raises ReviewError for a lesion (or
    slice) the case's result does not have."""
    out = Path(out)
    store = ReadStore(out)
    docs: dict[str, dict] = {}
    for reader, case_id, lesion_id, k, label in reads:
        if case_id not in docs:
            docs[case_id] = read_result(result_path(out, case_id))
        doc = docs[case_id]
        signature = (lesion_signature(doc, lesion_id) if k is None
                     else part_signature(doc, lesion_id, k))
        if not signature:
            where = f"lesion {lesion_id}" + ("" if k is None else f" on slice {k}")
            raise ReviewError(f"case {case_id}: no {where} in its result to read")
        store.add(reader=reader, case_id=case_id, lesion_id=lesion_id, slice_index=k,
                  label=label, signature=signature)
    confirmed = set(rest_not_coronary)
    for reader, case_id in done:
        store.mark(reader=reader, case_id=case_id, done=True,
                   rest_not_coronary=(reader, case_id) in confirmed)
