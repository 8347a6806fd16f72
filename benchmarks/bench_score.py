"""Speed and memory of reading and scoring a 512 x 512 x N series, as ratios.

    .venv/bin/python benchmarks/bench_score.py [--slices 300] [--keep DIR]

Writes a synthetic uncompressed CT series (body, spine, ribs-like bone, plaques, noise), then
times in this one process, each best of a few repeats:

- raw:     reading every file's bytes (the floor any reader pays);
- load:    vascalc.io.dicom (header pass, sort, bytes into one int16 volume, HU in place);
- sitk:    SimpleITK's ImageSeriesReader on the same files;
- thresh:  one numpy threshold pass over the volume;
- score:   vascalc.analyse (segmentation and scores);
- interp:  ``volume_method: interpolated`` on the volume read as 3 mm slices, against the
           voxel count on the same (an extra labelling pass and the interpolation);
- naive:   the pipeline users would otherwise write: pydicom per file with pixel_array and
           apply_modality_lut, per-slice skimage.measure.label, a Python loop over labels.

Printed as ratios to raw (reading) and to thresh (scoring), since machines here are noisy.
Peak memory of index+load+score is the VmHWM of a fresh child process.
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
sys.path.insert(0, str(ROOT))


def make_series(folder: Path, n: int, seed: int = 0) -> None:
    from sample_data.dicom_writer import SeriesSpec, write_series

    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:512, 0:512]
    body = ((rr - 256) / 200) ** 2 + ((cc - 256) / 230) ** 2 <= 1
    spine = ((rr - 380) / 30) ** 2 + ((cc - 256) / 30) ** 2 <= 1
    ribs = body & ~(((rr - 256) / 185) ** 2 + ((cc - 256) / 215) ** 2 <= 1)
    hu = np.full((n, 512, 512), -1000.0)
    for k in range(n):
        sl = hu[k]
        sl[body] = 40 + np.clip(np.rint(rng.normal(0, 25, body.sum())), -80, 80)
        sl[spine] = 300 + rng.integers(0, 600, spine.sum())
        if k % 10 < 4:
            sl[ribs] = 200 + rng.integers(0, 500, ribs.sum())
        for j in range(6):  # plaques of varying density
            r0, c0 = 200 + 12 * j, 230 + (k % 7) * 3
            sl[r0:r0 + 3, c0:c0 + 4] = 150 + 80 * j
    write_series(folder, hu, SeriesSpec(pixel_spacing_mm=(0.7, 0.7), increment_mm=1.0,
                                        thickness_mm=1.0, signed=False, intercept=-1024.0,
                                        bits_stored=12, seed=str(seed)))


def best(fn, repeats=3):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def naive(files):
    import pydicom
    from pydicom.pixels import apply_modality_lut
    from skimage.measure import label

    slices = []
    for f in files:
        ds = pydicom.dcmread(f)
        slices.append((float(ds.ImagePositionPatient[2]), apply_modality_lut(ds.pixel_array, ds)))
    slices.sort(key=lambda s: s[0])
    ps = [0.7, 0.7]
    total = 0.0
    for _, img in slices:
        lab = label(img >= 130, connectivity=2)
        for i in range(1, lab.max() + 1):
            px = lab == i
            area = px.sum() * ps[0] * ps[1]
            if area >= 1:
                peak = img[px].max()
                w = 1 if peak < 200 else 2 if peak < 300 else 3 if peak < 400 else 4
                total += area * w * 1.0 / 3.0
    return total


def peak_memory(folder: Path) -> float:
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r});"
            "from vascalc.io.dicom import index_tree, load_series;"
            "from vascalc.analyse import analyse; from vascalc.config.schema import Config;"
            f"h,_=index_tree({str(folder)!r}); v=load_series(h);"
            "analyse(v, Config(), case_id='b');"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # VmHWM (KiB) is the peak of this process image; ru_maxrss would include the parent's
    # peak, which Linux carries across fork + exec
    return int(out.stdout.strip()) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--no-naive", action="store_true")
    args = ap.parse_args()

    import SimpleITK as sitk
    from vascalc.analyse import analyse
    from vascalc.config.schema import Config
    from vascalc.io.dicom import index_tree, load_series

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="vascalc-bench-"))
    if not any(tmp.glob("*.dcm")):
        make_series(tmp, args.slices)
    files = sorted(str(p) for p in tmp.glob("*.dcm"))

    def raw():
        return sum(len(Path(f).read_bytes()) for f in files)

    def load():
        h, _ = index_tree(tmp)
        return load_series(h)

    def sitk_load():
        r = sitk.ImageSeriesReader()
        r.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp)))
        return sitk.GetArrayFromImage(r.Execute())

    t_raw, _ = best(raw)
    t_load, vol = best(load)
    t_sitk, _ = best(sitk_load, repeats=1)
    t_thr, _ = best(lambda: np.greater_equal(vol.hu, 130), repeats=5)
    cfg = Config()
    t_score, res = best(lambda: analyse(vol, cfg, case_id="b"))
    # the interpolated volume on the same voxels read as 3 mm slices (m = 4 planes)
    from dataclasses import replace

    vol3 = replace(vol, spacing_mm=(3.0, *vol.spacing_mm[1:]))
    cfg_interp = Config(scoring={"volume_method": "interpolated"})
    t_plain3, res3 = best(lambda: analyse(vol3, cfg, case_id="b"))
    t_interp, res_interp = best(lambda: analyse(vol3, cfg_interp, case_id="b"), repeats=2)

    from vascalc.outputs.tables import to_csv
    from vascalc.run.case import run_case
    from vascalc.run.discovery import Case

    def full():
        h, _ = index_tree(tmp)
        doc = run_case(Case(case_id="b", path=str(tmp), display_path="b", headers=tuple(h)),
                       cfg, fingerprint="")
        return to_csv([doc["scan"]], list(doc["scan"])), to_csv(doc["lesions"], list(doc["lesions"][0]))

    t_full, _ = best(full)
    report = {
        "series": f"512x512x{len(files)} uncompressed, int16",
        "raw_read_s": round(t_raw, 3), "load_s": round(t_load, 3), "sitk_s": round(t_sitk, 3),
        "threshold_s": round(t_thr, 4), "score_s": round(t_score, 3),
        "load_over_raw": round(t_load / t_raw, 2), "sitk_over_load": round(t_sitk / t_load, 2),
        "score_over_threshold": round(t_score / t_thr, 1),
        "interpolated_volume_score_s": round(t_interp, 3),
        "interpolated_over_voxel_count_score": round(t_interp / t_plain3, 1),
        "interpolated_over_voxel_count_volume": round(
            res_interp.whole.volume_mm3 / res3.whole.volume_mm3, 3),
        "load_plus_score_over_load": round((t_load + t_score) / t_load, 2),
        "load_score_tables_s": round(t_full, 3),
        "load_score_tables_over_load": round(t_full / t_load, 2),
        "agatston": round(res.whole.agatston, 3), "n_lesions": res.whole.n_lesions,
    }
    if not args.no_naive:
        t_naive, naive_ag = best(lambda: naive(files), repeats=1)
        report["naive_s"] = round(t_naive, 2)
        report["ours_over_naive"] = round((t_load + t_score) / t_naive, 3)
        report["naive_agatston_agrees"] = bool(np.isclose(naive_ag, res.whole.agatston))
    mem = peak_memory(tmp)
    int16_mib = vol.hu.nbytes / 2**20
    report["peak_rss_mib"] = round(mem, 1)
    report["peak_over_int16_plus_200"] = round(mem / (int16_mib + 200), 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
