"""Memory and time of loading many region masks, as ratios within one run.

    .venv/bin/python benchmarks/bench_regions.py [--masks 40] [--slices 120]

Writes a synthetic CT and N binary NIfTI masks on its grid in TotalSegmentator's layout
(x, y, z arrays), then measures, each in a fresh child process (peak RSS = VmHWM):

- full:  every mask resampled to a full boolean array on the CT grid and kept (the baseline
         a straightforward loader pays: one CT-sized array per structure);
- boxed: vascalc.io.masks.load_regions (each mask kept as its bounding box).

Printed as ratios boxed / full, since machines here are noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from vascalc.io.nifti import load_nifti
from vascalc.io import masks as M
from pathlib import Path
vol = load_nifti({ct!r})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if {mode!r} == "full":
    kept = [M.mask_on_ct_grid(vol, str(f)) > 0 for f in sorted(Path({folder!r}).iterdir())]
else:
    kept = M.load_regions(vol, {folder!r})
dt = time.perf_counter() - t
print(json.dumps({{"s": dt, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mib": base / 1024, "n": len(kept)}}))
"""


def make(folder: Path, n_masks: int, n_slices: int) -> Path:
    import nibabel as nib

    shape = (512, 512, n_slices)  # x, y, z
    affine = np.diag([-0.7, -0.7, 1.5, 1.0])
    rng = np.random.default_rng(0)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n_masks):  # organ-sized boxes
        m = np.zeros(shape, np.uint8)
        x, y = rng.integers(40, 400, 2)
        z = rng.integers(0, max(1, n_slices - 40))
        m[x:x + 60, y:y + 60, z:z + 40] = 1
        nib.save(nib.Nifti1Image(m, affine), str(folder / "masks" / f"s{i:03d}.nii.gz"))
    hu = np.full(shape, -1000, np.int16)
    hu[100:300, 100:300, :] = 40
    nib.save(nib.Nifti1Image(hu, affine), str(folder / "ct.nii.gz"))
    return folder


def child(mode: str, folder: Path) -> dict:
    code = CHILD.format(root=str(ROOT), ct=str(folder / "ct.nii.gz"),
                        folder=str(folder / "masks"), mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--masks", type=int, default=40)
    ap.add_argument("--slices", type=int, default=120)
    args = ap.parse_args()
    folder = make(Path(tempfile.mkdtemp(prefix="vascalc-regions-")), args.masks, args.slices)
    t0 = time.perf_counter()
    full, boxed = child("full", folder), child("boxed", folder)
    grow_full = full["peak_mib"] - full["before_mib"]
    grow_boxed = boxed["peak_mib"] - boxed["before_mib"]
    print(json.dumps({
        "grid": f"512x512x{args.slices}", "masks": args.masks,
        "full_load_s": round(full["s"], 2), "boxed_load_s": round(boxed["s"], 2),
        "boxed_over_full_time": round(boxed["s"] / full["s"], 2),
        "full_peak_growth_mib": round(grow_full, 1), "boxed_peak_growth_mib": round(grow_boxed, 1),
        "boxed_over_full_memory": round(grow_boxed / grow_full, 3),
        "bench_s": round(time.perf_counter() - t0, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
