"""Start-up: what a command costs before it does any work, as ratios against an empty Python
process measured in the same run (these machines are noisy).

    .venv/bin/python benchmarks/bench_start.py [--repeat N]

Best of N wall-clock runs of fresh processes:

- python: ``python -c pass`` (the floor every command pays);
- vascalc --version: the entry point's answer from the version alone;
- import vascalc: the package face (its names load on first use);
- import vascalc.cli.app: the whole command line, as ``vascalc --help`` and every command load
  it;
- the run path: ``vascalc.run.batch`` and what it imports (scoring without reports).

Prints each in seconds and as a multiple of the floor, and the modules each loads of the heavy
report and cohort stacks (none is expected before a report or cohort command asks for it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
VASCALC = str(Path(PY).parent / "vascalc")
HEAVY = ("pandas", "statsmodels", "matplotlib", "jinja2", "weasyprint", "highdicom",
         "pynetdicom", "pyarrow")


def best(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def heavy_loaded(module: str) -> list[str]:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([PY, "-c", code], check=True, capture_output=True,
                          text=True).stdout.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    floor = best([PY, "-c", "pass"], args.repeat)
    rows = [("python -c pass", floor, [])]
    rows.append(("vascalc --version", best([VASCALC, "--version"], args.repeat), []))
    for module in ("vascalc", "vascalc.cli.app", "vascalc.run.batch"):
        rows.append((f"import {module}", best([PY, "-c", f"import {module}"], args.repeat),
                     heavy_loaded(module)))
    print(f"{'what':28} {'seconds':>8} {'x floor':>8}  heavy modules loaded")
    for name, t, heavy in rows:
        print(f"{name:28} {t:8.3f} {t / floor:8.2f}  {', '.join(heavy) or '-'}")


if __name__ == "__main__":
    main()
