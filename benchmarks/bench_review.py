"""The review page's first load on a real CT, against scoring the same case, in one run.

    VASCALC_SHARED_DATA=../shared/data .venv/bin/python benchmarks/bench_review.py

The case is the Siemens example CT (512 x 512, 20 slices) with TotalSegmentator's own
multilabel map (117 classes in its table), scored once by ``vascalc run``. Each repeat starts
``vascalc review`` in a new process and times, from the moment it prints its URL, what the
page asks for on first load: the config, the case list, the case, its lesions, the first
lesion slice's image and lesion map. Printed: seconds (best of 3) for that, for one
``score_case`` of the same case in this process (the baseline: a first load rescores the
case), and their ratio; once with the requests sent the moment the URL is printed (the
worst case), once two seconds later (a person opening the URL), since the server loads the
first case before anyone asks (``ReviewApp.warm_up``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VASCALC_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _get(base: str, path: str, token: str) -> bytes:
    req = urllib.request.Request(base + path, headers={"X-Vascalc-Token": token})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def first_load(out: Path, delay_s: float) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "vascalc.cli", "review", str(out),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for _ in range(20):
            m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([\w-]+)", proc.stdout.readline())
            if m:
                break
        else:
            raise RuntimeError(proc.stderr.read())
        base, tok = m.groups()
        time.sleep(delay_s)  # a person opening the printed URL
        t = time.perf_counter()
        _get(base, "/api/config", tok)
        cases = json.loads(_get(base, "/api/cases", tok))
        cid = cases[0]["case_id"]
        meta = json.loads(_get(base, f"/api/cases/{cid}", tok))
        _get(base, f"/api/cases/{cid}/lesions", tok)
        k = meta["lesion_slices"][0]
        _get(base, f"/api/cases/{cid}/image/{k}", tok)
        _get(base, f"/api/cases/{cid}/lesionmap/{k}", tok)
        return time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    data = SHARED / "totalsegmentator_example"
    if not data.is_dir():
        sys.exit(f"real data not found at {data} (set VASCALC_SHARED_DATA)")
    from vascalc.config.load import load_config
    from vascalc.run.case import score_case
    from vascalc.run.discovery import cases_from_manifest

    work = Path(tempfile.mkdtemp(prefix="vascalc-bench-review-"))
    (work / "m.csv").write_text(f"case_id,path,regions\nsiemens,{data / 'example_ct_dicom'},"
                                f"{data / 'example_seg_dicom.nii.gz'}\n")
    (work / "c.yaml").write_text("regions:\n  label_table: totalsegmentator_v2\nscoring:\n"
                                 "  contrast: phase_threshold\n")
    subprocess.run([sys.executable, "-m", "vascalc.cli", "run", str(work / "m.csv"), "--out",
                    str(work / "out"), "-c", str(work / "c.yaml"), "-q", "--no-report"],
                   check=True)
    cfg = load_config(work / "c.yaml")
    case = cases_from_manifest(work / "m.csv")[0]
    score_case(case, cfg, keep_voxels=True)  # imports
    base = min(_timed(lambda: score_case(case, cfg, keep_voxels=True)) for _ in range(3))
    cold = min(first_load(work / "out", 0.0) for _ in range(3))
    opened = min(first_load(work / "out", 2.0) for _ in range(3))
    print(json.dumps({"score_case_s": round(base, 3),
                      "first_load_requests_at_once_s": round(cold, 3),
                      "first_load_after_2s_s": round(opened, 3),
                      "at_once_over_score": round(cold / base, 2),
                      "after_2s_over_score": round(opened / base, 2)}, indent=2))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
