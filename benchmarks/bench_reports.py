"""Report artefacts per case, as a ratio against scoring the same case, measured in one run.

    .venv/bin/python benchmarks/bench_reports.py

Generates the sample phantoms, warms both paths once (imports), then times,
best of 3 in this process, each phantom scored without reports and with them (HTML, PDF,
key images, MIP, NIfTI, SEG, SR), and prints seconds and the ratio report / scoring.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from vascalc.config.load import load_config
    from vascalc.run.case import run_case
    from vascalc.run.discovery import cases_from_manifest

    from sample_data.generate import generate

    work = Path(tempfile.mkdtemp(prefix="vascalc-bench-reports-"))
    generate(work / "phantoms")
    cfg = load_config(ROOT / "configs" / "sample_data.yaml")
    plain = cfg.model_copy(update={"report": cfg.report.model_copy(update={"enabled": False})})
    cases = cases_from_manifest(work / "phantoms" / "manifest.csv")
    run_case(cases[0], cfg, fingerprint="warm", out=work / "out")  # imports and caches
    rows = {}
    for case in cases:
        best = {"score": float("inf"), "report": float("inf")}
        for _ in range(3):
            t = time.perf_counter()
            run_case(case, plain, fingerprint="b", out=work / "out")
            best["score"] = min(best["score"], time.perf_counter() - t)
            doc = run_case(case, cfg, fingerprint="b", out=work / "out")
            best["report"] = min(best["report"], doc["timings_s"]["report"])
        rows[case.case_id] = {"score_s": round(best["score"], 3),
                              "report_s": round(best["report"], 3),
                              "report_over_score": round(best["report"] / best["score"], 1)}
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
