"""Cost that grows with the work: resume and table rebuild of a large synthetic cohort.

    .venv/bin/python benchmarks/bench_cohort.py [--sizes 2000 5000 20000]

Scores one sample phantom (P01_T1: 11 lesions, 5 regions) once, then writes N copies of its
result document under new case ids into one output folder, each pointing at a tiny one-file
"series" of its own (so each case has its own input fingerprint, as in a real cohort). For
each N it times, in this process, best of 2:

- resume:  ``run_batch`` over the N cases with every case reused (read result.json, check
           config and fingerprint, derive the rows) and the tables and run.json rebuilt;
- rebuild: the table rebuild alone (``rebuild`` from documents already in memory).

Printed per case (ms) and as the ratio of each N's time per case to the smallest N's: a
ratio near 1 means the cost grows linearly with the number of cases.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(out: Path, inputs: Path, n: int):
    from vascalc.config.schema import Config
    from vascalc.results.document import read_result, result_path, write_result
    from vascalc.run.batch import run_batch
    from vascalc.run.discovery import cases_from_manifest

    from sample_data.generate import generate

    phantoms = inputs / "phantoms"
    if not (phantoms / "manifest.csv").exists():
        generate(phantoms)
    case = next(c for c in cases_from_manifest(phantoms / "manifest.csv") if c.case_id == "P01_T1")
    seed_out = inputs / "seed"
    if not result_path(seed_out, "P01_T1").exists():
        run_batch([case], Config(), seed_out)
    doc = read_result(result_path(seed_out, "P01_T1"))
    cases = []
    for i in range(n):
        cid = f"C{i:06d}"
        src = inputs / "inputs" / cid
        if not src.exists():
            src.mkdir(parents=True)
            (src / "x.dcm").write_bytes(b"")
        c = replace(case, case_id=cid, path=str(src), display_path=cid, headers=())
        d = {**doc, "case_id": cid, "fingerprint": c.fingerprint(),
             "outcome": {**doc["outcome"], "record": {**doc["outcome"]["record"],
                                                      "case_id": cid}}}
        write_result(out, d)
        cases.append(c)
    return cases


def best(f, repeats: int = 2) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 20000])
    args = ap.parse_args(argv)
    from vascalc.config.schema import Config
    from vascalc.results.document import read_result, result_path
    from vascalc.run.batch import run_batch
    from vascalc.run.rebuild import rebuild

    rows = []
    with tempfile.TemporaryDirectory(prefix="vascalc-bench-cohort-") as tmp:
        inputs = Path(tmp) / "in"
        for n in sorted(args.sizes):
            out = Path(tmp) / f"out{n}"
            cases = build(out, inputs, n)
            t_resume = best(lambda c=cases, o=out: run_batch(c, Config(), o))
            docs = {c.case_id: read_result(result_path(out, c.case_id)) for c in cases}
            counts = run_batch(cases, Config(), out).counts
            assert counts["reused"] == n and counts["ok"] == n, counts
            t_rebuild = best(lambda o=out, d=docs: rebuild(o, d, config=Config()))
            rows.append((n, t_resume, t_rebuild))
    n0, r0, b0 = rows[0]
    print(f"{'cases':>7} {'resume s':>9} {'ms/case':>8} {'ratio':>6} {'rebuild s':>10} "
          f"{'ms/case':>8} {'ratio':>6}")
    for n, r, b in rows:
        print(f"{n:>7} {r:>9.2f} {r / n * 1e3:>8.3f} {(r / n) / (r0 / n0):>6.2f} {b:>10.2f} "
              f"{b / n * 1e3:>8.3f} {(b / n) / (b0 / n0):>6.2f}")


if __name__ == "__main__":
    main()
