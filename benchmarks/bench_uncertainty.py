"""The cost of the rescan model (uncertainty.enabled), as ratios within one run.

    .venv/bin/python benchmarks/bench_uncertainty.py [--rescans 50] [--slices 300] [--repeat 1]

Two inputs, each scored in process by vascalc.analyse with the model off and on:

- the sample phantoms (sample_data.generate.cases(), whole-volume scope: their spine is
  calcium too, so the rescans cover most of each volume);
- a synthetic 512 x 512 x --slices series (3 mm, 0.7 mm pixels, noise 15 HU) with 40 plaques
  in a 120 mm x 120 mm x 40-slice 'heart' box, as a coronary calcium scan.

The cost per case is printed in seconds and as a multiple of plain scoring.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipeline"))
sys.path.insert(0, str(ROOT))

from vascalc import Config, CTVolume, analyse  # noqa: E402

from sample_data.generate import cases  # noqa: E402
from sample_data.phantom import render  # noqa: E402


def series(slices: int, seed: int = 0) -> CTVolume:
    rng = np.random.default_rng(seed)
    hu = rng.normal(40, 15, size=(slices, 512, 512)).astype(np.int16)
    z0 = slices // 2 - 20
    for _ in range(40):
        z, r, c = rng.integers(z0, z0 + 37), rng.integers(200, 360), rng.integers(200, 360)
        hu[z:z + rng.integers(1, 3), r:r + rng.integers(2, 6), c:c + rng.integers(2, 8)] = \
            rng.integers(180, 700)
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
    ap.add_argument("--rescans", type=int, default=50)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    import scipy.interpolate  # noqa: F401  (imports outside the timing)
    import scipy.ndimage  # noqa: F401

    off = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.8})
    on = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.8},
                uncertainty={"enabled": True, "n_rescans": args.rescans})
    print(f"rescans per case: {args.rescans}; best of {args.repeat}")
    print(f"{'case':>24} {'shape':>16} {'off s':>7} {'on s':>8} {'on/off':>7}")
    inputs = [(name, CTVolume(hu=render(ph), spacing_mm=(ph.increment_mm, *ph.pixel_spacing_mm)))
              for name, ph, _, _ in cases()]
    inputs.append((f"synthetic {args.slices} slices", series(args.slices)))
    for name, vol in inputs:
        t_off = best(lambda v=vol: analyse(v, off, case_id="b"), args.repeat)
        t_on = best(lambda v=vol: analyse(v, on, case_id="b"), args.repeat)
        shape = "x".join(str(n) for n in vol.shape)
        print(f"{name:>24} {shape:>16} {t_off:7.3f} {t_on:8.3f} {t_on / t_off:7.1f}")


if __name__ == "__main__":
    main()
