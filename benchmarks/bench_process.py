"""Whole-process and batch timings, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_process.py [--workdir DIR]

Writes (once, into --workdir) a 512x512x300 series, a 512x512x64 series, a JPEG-lossless copy
of the 64-slice series (transcoded with SimpleITK) and 8 distinct 300-slice series; then
times, best of 3 wall-clock runs of fresh processes:

- decode-only: a Python process that only reads the series with pipeline.io.dicom;
- vascalc run: the whole command (imports, numba cache load, scoring, tables, run.json);
- naive: plain pydicom per file + per-slice skimage.measure.label + a loop over labels;
- sitk decode-only: a process that only reads the JPEG-lossless series with SimpleITK;
- batch: `vascalc run` over the 8 series with --jobs 1 and --jobs 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable
VASCALC = str(Path(PY).parent / "vascalc")


def wall(cmd: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def decode_only(folder: Path) -> list[str]:
    return [PY, "-c", "import sys; sys.path.insert(0, %r); from pipeline.io.dicom import "
            "index_tree, load_series; load_series(index_tree(%r)[0])" % (str(ROOT), str(folder))]


def run(folder: Path, out: Path, jobs: int = 1) -> list[str]:
    return [VASCALC, "run", str(folder), "--out", str(out), "-q", "--force", "-j", str(jobs)]


def transcode_jpeg_lossless(src: Path, dst: Path) -> None:
    import SimpleITK as sitk

    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.dcm")):
        r = sitk.ImageFileReader()
        r.SetFileName(str(f))
        r.LoadPrivateTagsOn()
        img = r.Execute()
        w = sitk.ImageFileWriter()
        w.SetFileName(str(dst / f.name))
        w.SetUseCompression(True)
        w.SetCompressor("JPEG")
        w.KeepOriginalImageUIDOn()
        w.Execute(img)


def main() -> None:
    from bench_score import make_series

    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vascalc-bench-"))
    s300, s64, jl, batch = work / "s300", work / "s64", work / "s64_jpegls", work / "batch"
    if not s300.exists():
        make_series(s300, 300)
    if not s64.exists():
        make_series(s64, 64)
    if not jl.exists():
        transcode_jpeg_lossless(s64, jl)
    if not batch.exists():
        for i in range(8):  # distinct series (own UIDs), as in a real cohort
            make_series(batch / f"case{i}", 300, seed=100 + i)
    out = work / "out"
    naive = [PY, "-c", "import sys, glob; sys.path.insert(0, %r); from bench_score import naive; "
             "naive(sorted(glob.glob(%r)))" % (str(ROOT / "benchmarks"), str(s300 / "*.dcm"))]
    sitk_only = [PY, "-c", "import SimpleITK as s; r = s.ImageSeriesReader(); "
                 "r.SetFileNames(s.ImageSeriesReader.GetGDCMSeriesFileNames(%r)); "
                 "s.GetArrayFromImage(r.Execute())" % str(jl)]
    subprocess.run(run(s300, out), check=False, capture_output=True)  # warm the file cache
    t = {
        "decode_only_300": wall(decode_only(s300)),
        "run_300": wall(run(s300, out)),
        "naive_300": wall(naive, repeats=1),
        "decode_only_64": wall(decode_only(s64)),
        "run_64": wall(run(s64, out)),
        "sitk_decode_only_jpeg_lossless_64": wall(sitk_only),
        "run_jpeg_lossless_64": wall(run(jl, out)),
        "batch_8x300_jobs1": wall(run(batch, out, 1), repeats=2),
        "batch_8x300_jobs2": wall(run(batch, out, 2), repeats=2),
    }
    ratios = {
        "run_300_over_decode_only": t["run_300"] / t["decode_only_300"],
        "run_300_over_naive": t["run_300"] / t["naive_300"],
        "run_64_over_decode_only": t["run_64"] / t["decode_only_64"],
        "run_jpeg_lossless_over_sitk_decode_only":
            t["run_jpeg_lossless_64"] / t["sitk_decode_only_jpeg_lossless_64"],
        "batch_jobs2_over_jobs1": t["batch_8x300_jobs2"] / t["batch_8x300_jobs1"],
    }
    print(json.dumps({"seconds": {k: round(v, 3) for k, v in t.items()},
                      "ratios": {k: round(v, 2) for k, v in ratios.items()}}, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
