"""Micro-CT larger than memory: peak RSS and time of scoring a 16-bit stack streamed in slabs,
against reading the same file alone; and the streamed numbers against one in-memory pass on a
crop that fits.

    .venv/bin/python benchmarks/bench_microct.py --gb 12 --dir /big/tmp [--keep]

Makes, on demand, a Scanco ISQ of about ``--gb`` GB (2000 x 2000 px slices of int16, the size
of a mouse aorta at 5-10 um: 1,500 slices are 12 GB) written slab by slab (never held in
memory): a vessel with medial rings and intimal plaques every few slices, over tissue below
the threshold, with the Scanco header calibration. Then, each in a fresh child process (so
each peak is its own, VmHWM):

- read:   every slab read from disk (the floor any scorer pays);
- score:  vascalc's streaming scorer (run.microct.score_stack) with the default
          microct.memory_budget_mb;
- crop:   the first ``--crop`` slices scored streamed and in one in-memory pass (scipy's label
          over the whole crop): the numbers must be equal.

Printed as a JSON line and as ratios to read. The test suite never writes such a stack: it
checks slab-vs-in-memory equality and bounded memory on small stacks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "pipeline"))

SIDE = 2000


def make_stack(path: Path, gb: float, *, chunk: int = 16) -> int:
    """Write the ISQ slab by slab; returns the number of slices."""
    from sample_data.microct import write_isq

    nz = max(chunk, int(gb * 1e9 / (SIDE * SIDE * 2)) // chunk * chunk)
    if path.exists() and path.stat().st_size >= nz * SIDE * SIDE * 2:
        return nz
    head = path.with_suffix(".head")
    write_isq(head, np.zeros((nz, 1, 1), np.int16), 8.0)  # header of the right calibration
    raw = bytearray(head.read_bytes())
    head.unlink()
    import struct

    struct.pack_into("<6i", raw, 44, SIDE, SIDE, nz, SIDE * 8, SIDE * 8, nz * 8)
    offset = (struct.unpack_from("<i", raw, 508)[0] + 1) * 512
    y, x = np.ogrid[:SIDE, :SIDE]
    rad = np.hypot(y - SIDE / 2, x - SIDE / 2)
    ang = np.arctan2(y - SIDE / 2, x - SIDE / 2)
    tissue = np.full((SIDE, SIDE), 2000, np.int16)  # ~ -22 mg HA/cm3
    tissue[(rad > 300) & (rad < 340)] = 2600  # vessel wall, below 100 mg HA/cm3
    with open(path, "wb") as f:
        f.write(bytes(raw[:offset]))
        for z0 in range(0, nz, chunk):
            block = np.repeat(tissue[None], chunk, axis=0)
            for k in range(chunk):
                z = z0 + k
                if (z // 40) % 2 == 0:  # medial ring segments, 20 to 39 slices long
                    sel = (rad > 305) & (rad < 335) & (np.abs(ang - (z // 80) % 6) < 0.4)
                    block[k][sel] = 9000 + 50 * (z % 7)  # ~ 585-615 mg HA/cm3
                cy, cx = SIDE / 2 + 250 * np.sin(z / 50), SIDE / 2 + 250 * np.cos(z / 50)
                r2 = 400 - ((z % 60) - 30) ** 2  # intimal plaque balls, radius up to 20 px
                if r2 > 0:
                    block[k][(y - cy) ** 2 + (x - cx) ** 2 <= r2] = 12000  # ~ 845 mg HA/cm3
            f.write(block.astype("<i2").tobytes())
    return nz


def child(mode: str, path: str, crop: int) -> None:
    import resource

    from vascalc.config.schema import Config
    from vascalc.io.microct import open_microct
    from vascalc.run.microct import score_stack

    stack = open_microct(path)
    crop = min(crop, stack.shape[0])
    cfg = Config()
    t0 = time.perf_counter()
    out: dict = {"mode": mode}
    if mode == "read":
        n = cfg.microct.slab_for(stack.shape[1] * stack.shape[2])
        total = 0
        for _, a in stack.slabs(n):
            total += int(a[0, 0, 0])
    elif mode == "score":
        s, cal, n = score_stack(stack, cfg)
        out.update(volume_mm3=s.volume_mm3, mass_mg=s.mass_mg, lesions=len(s.lesions),
                   slab_slices=n)
    else:  # crop: streamed against one in-memory pass
        from scipy import ndimage
        from vascalc.core.microct import score_slabs

        cal = stack.header_calibration
        assert cal is not None
        thr = cal.stored_at_least(cfg.microct.threshold_mg_ha_cm3, stack.dtype)
        s = score_slabs(((z, stack.read(z, min(z + 8, crop)), None) for z in range(0, crop, 8)),
                        spacing_mm=stack.spacing_mm, threshold_stored=thr, calibration=cal)
        vol = stack.read(0, crop)
        mask = vol >= thr
        labels, n_ref = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel())[1:].tolist()
        vv = float(np.prod(stack.spacing_mm))
        mass = float(cal.density(vol[mask]).sum()) * vv / 1000
        out.update(equal_lesions=[le.n_voxels for le in s.lesions] == sizes,
                   lesions=n_ref, equal_voxels=s.n_voxels == int(mask.sum()),
                   mass_rel_diff=abs(s.mass_mg - mass) / mass if mass else 0.0)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=12.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=3)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]))
        return
    path = a.dir / f"vascalc_bench_{a.gb:g}gb.isq"
    t0 = time.perf_counter()
    nz = make_stack(path, a.gb)
    print(f"stack {path}: {SIDE} x {SIDE} x {nz} int16, {path.stat().st_size / 1e9:.2f} GB "
          f"(made in {time.perf_counter() - t0:.0f} s)")
    res = {}
    try:
        for mode in ("read", "score", "crop"):
            p = subprocess.run([sys.executable, __file__, "--child", mode, str(path),
                                str(a.crop)], capture_output=True, text=True, check=True)
            res[mode] = json.loads(p.stdout.strip().splitlines()[-1])
            print(json.dumps(res[mode]))
    finally:
        if not a.keep:
            path.unlink(missing_ok=True)
    print(f"score/read time {res['score']['seconds'] / res['read']['seconds']:.2f}x; peak RSS "
          f"score {res['score']['peak_rss_mb']:.0f} MB (read {res['read']['peak_rss_mb']:.0f} "
          f"MB) for a {nz * SIDE * SIDE * 2 / 1e9:.1f} GB stack")


if __name__ == "__main__":
    main()
