"""The cost of fingerprinting a case by content (#35.3), as ratios within one run.

    .venv/bin/python benchmarks/bench_fingerprint.py [--slices 300] [--repeat 3]

A synthetic 512 x 512 CT series of --slices DICOM files is written to a temporary folder, then,
best of --repeat each, warm (the files in the page cache, as on a resume right after a run):

- fingerprint: Case.fingerprint(), the sha256 of every file's content (what resume compares);
- stat:        the size-and-mtime key it replaced (cannot tell a file replaced by another of
               the same size and mtime);
- load:        load_ct of the same series, the first step of scoring it.

Measured on the team's 2-core machine (300 slices, 158 MB), 2026-12-07: fingerprint 0.11 s
with the machine idle, 0.34 s under a load average of 8 (load_ct 1.08 s then: a ratio of
0.31); stat 0.001 s. A resume fingerprints the cases on as many threads as jobs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipeline"))
sys.path.insert(0, str(ROOT))

from vascalc.config.schema import Config  # noqa: E402
from vascalc.io.load import load_ct  # noqa: E402
from vascalc.run.discovery import Case  # noqa: E402

from sample_data.dicom_writer import SeriesSpec, write_series  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vascalc-bench-fp-") as tmp:
        folder = Path(tmp) / "series"
        hu = np.full((args.slices, 512, 512), 40.0)
        hu[:, 0, :] = -1000
        write_series(folder, hu, SeriesSpec(), shuffle_names=False)
        files = sorted(str(p) for p in folder.iterdir())
        size = sum(os.path.getsize(f) for f in files) / 1e6
        case = Case(case_id="bench", path=str(folder), display_path="series")
        fp = best(case.fingerprint, args.repeat)
        st = best(lambda: [os.stat(f) for f in files], args.repeat)
        load = best(lambda: load_ct(folder, Config()), args.repeat)
    print(f"{args.slices} slices, {size:.0f} MB")
    print(f"fingerprint (sha256 of content) {fp:8.3f} s")
    print(f"stat (size and mtime)           {st:8.3f} s")
    print(f"load_ct                         {load:8.3f} s")
    print(f"fingerprint / load_ct           {fp / load:8.2f}")


if __name__ == "__main__":
    main()
