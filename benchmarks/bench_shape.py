"""The cost of lesion shape (output.lesion_shape), as ratios within one run.

    .venv/bin/python benchmarks/bench_shape.py [--slices 120] [--lesions 300] [--repeat 3]

A synthetic 512 x 512 CT with N plaques (rods, sheets and blocks) is scored in process by
vascalc.analyse three ways, best of --repeat each (skimage and scipy imported beforehand, so
only the work is timed):

- plain:  the default scoring (the C kernel, no label map);
- shape:  output.lesion_shape: the kept-voxel label map and regionprops over every lesion;
- report: the label map alone (keep_voxels, as reports and regions already pay it), to show
          what shape adds on top of a run that writes reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from vascalc import Config, CTVolume, analyse  # noqa: E402


def volume(slices: int, lesions: int, seed: int = 0) -> CTVolume:
    rng = np.random.default_rng(seed)
    hu = rng.normal(40, 15, size=(slices, 512, 512)).astype(np.int16)
    hu[:, :8, :8] = -1000
    for i in range(lesions):
        z, r, c = rng.integers(2, slices - 8), rng.integers(10, 480), rng.integers(10, 480)
        kind = i % 3
        if kind == 0:
            hu[z, r, c:c + rng.integers(5, 30)] = rng.integers(200, 700)          # rod
        elif kind == 1:
            hu[z, r:r + rng.integers(4, 15), c:c + rng.integers(4, 15)] = 300    # sheet
        else:
            hu[z:z + 3, r:r + 6, c:c + 6] = 450                                  # block
    return CTVolume(hu=hu, spacing_mm=(3.0, 0.7, 0.7))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=120)
    ap.add_argument("--lesions", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import scipy.ndimage  # noqa: F401  (imports outside the timing)
    import skimage.measure  # noqa: F401

    vol = volume(args.slices, args.lesions)
    plain, shaped = Config(), Config(output={"lesion_shape": True})
    n = len(analyse(vol, shaped, case_id="b").lesion_shapes)
    t_plain = best(lambda: analyse(vol, plain, case_id="b"), args.repeat)
    t_shape = best(lambda: analyse(vol, shaped, case_id="b"), args.repeat)
    t_label = best(lambda: analyse(vol, plain, case_id="b", keep_voxels=True), args.repeat)
    print(f"512 x 512 x {args.slices}, {n} lesions; best of {args.repeat}")
    print(f"plain scoring            {t_plain:7.3f} s   1.00x")
    print(f"with lesion shape        {t_shape:7.3f} s   {t_shape / t_plain:5.2f}x plain")
    print(f"label map only (reports) {t_label:7.3f} s   {t_label / t_plain:5.2f}x plain; shape "
          f"adds {t_shape / t_label:4.2f}x to it")


if __name__ == "__main__":
    main()
