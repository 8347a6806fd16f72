"""Contrast-enhanced sample data: two phantoms whose aortic lumen is filled with contrast.

    python -m sample_data.contrast --out sample_data/contrast_phantoms

Seeded and deterministic, kept apart from the main sample data (its folder tree and manifest
are unchanged). Cases, on the reference protocol otherwise (Siemens, B35f, 120 kVp, 3 mm):

- ``C01_arterial``: lumen 400 HU (noise SD 12 HU), no contrast in the header: the scan is
  known to be enhanced only from the lumen inside the aorta mask, and its phase from the lumen
  HU (arterial).
- ``C02_venous``: lumen 220 HU, ContrastBolusAgent and ContrastBolusAgentPhase VENOUS in the
  header.
- ``C03_bright``: an arterial lumen of 850 HU (phase ARTERIAL in the header), too bright for
  the published 900 HU arterial threshold (it is within 3 spreads of the lumen median): a
  rule that fixes the threshold must withhold it; an adaptive rule finds its plaques (2,000 HU).

Both have a lumen of radius 14 px inside an aorta mask of radius 17 px; wall plaques of dense
calcium (1,700 / 1,200 / 2,000 HU) in the ring between, touching the lumen; a one-pixel partial-volume
rim between lumen and wall at the mean of the two; a 2-pixel speck under the 1 mm^2 limit; an
enhanced kidney (200 HU) outside every mask; a spine cut into two vertebra masks. The truth of
the aorta is the plaques alone, which every contrast rule must find whole and without a voxel
of lumen or rim; at 130 HU the lumen, the rim and the plaques are one lesion.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .dicom_writer import SeriesSpec, write_series
from .generate import CALIBRATION_MG_PER_CM3_PER_HU, write_csv, write_mask
from .phantom import Box, Phantom, aorta_region, check_separated, render, spine, truth, vertebrae

ROWS = COLS = 128
N_SLICES = 20
LUMEN_RADIUS_PX = 14
MASK_RADIUS_PX = 17


def _centre() -> tuple[float, float]:
    return ROWS * 0.62, COLS * 0.45  # the lumen centre of :func:`sample_data.phantom.render`


def wall_plaques(hu: float) -> tuple[Box, ...]:
    """Plaques in the wall ring (14 px < distance from the lumen centre < 17 px), on four
    sides and at different levels, and a speck of 2 pixels (0.98 mm^2: under the limit)."""
    return (
        Box("wall_top", "plaque", 3, 6, 63, 65, 56, 59, hu),
        Box("wall_bottom", "plaque", 8, 10, 94, 96, 56, 59, hu),
        Box("wall_right", "plaque", 12, 16, 78, 81, 72, 74, hu),
        Box("wall_left", "plaque", 5, 7, 78, 81, 42, 44, hu),
        Box("wall_speck", "speck", 16, 17, 94, 95, 56, 58, hu),
    )


def kidney() -> Box:
    """Enhanced renal cortex outside every mask: above 130 HU, not calcium."""
    return Box("kidney", "enhanced", 3, 17, 40, 50, 85, 100, 200)


def render_contrast(ph: Phantom, lumen_hu: float, seed: int) -> np.ndarray:
    """The phantom with a contrast-filled lumen (noise SD 12 HU, clipped to +-36) and a rim
    of partial volume between lumen and wall, neither painted over a plaque."""
    vol = render(ph)
    rng = np.random.default_rng(seed)
    cy, cx = _centre()
    rr, cc = np.mgrid[0:ROWS, 0:COLS]
    d = np.hypot(rr - cy, cc - cx)
    objects = np.zeros(ph.shape, dtype=bool)
    for b in ph.objects:
        objects[b.s0:b.s1, b.r0:b.r1, b.c0:b.c1] = True
    lumen = np.broadcast_to(d <= LUMEN_RADIUS_PX, ph.shape) & ~objects
    rim = np.broadcast_to((d > LUMEN_RADIUS_PX) & (d <= LUMEN_RADIUS_PX + 1), ph.shape) & ~objects
    noise = np.clip(np.rint(rng.normal(0.0, 12.0, ph.shape)), -36, 36)
    vol[lumen] = lumen_hu + noise[lumen]
    vol[rim] = np.rint((lumen_hu + 40.0) / 2) + noise[rim]
    return vol


def cases() -> list[tuple[str, Phantom, float, SeriesSpec, dict]]:
    common = dict(bits_stored=12, intercept=-1024.0, signed=False, manufacturer="SIEMENS",
                  kernel="B35f", kvp=120.0, thickness_mm=3.0)
    out = []
    for name, lumen_hu, plaque_hu, seed, extra, desc in (
            ("C01_arterial", 400.0, 1700.0, 11, {}, "Thorax-abdomen"),
            ("C02_venous", 220.0, 1200.0, 12,
             {"ContrastBolusAgent": "IOHEXOL", "ContrastBolusAgentPhase": "VENOUS"},
             "Abdomen"),
            ("C03_bright", 850.0, 2000.0, 13,
             {"ContrastBolusAgent": "IOPAMIDOL", "ContrastBolusAgentPhase": "ARTERIAL"},
             "CTA Aorta")):
        objs = wall_plaques(plaque_hu) + (kidney(), spine(ROWS, COLS, N_SLICES))
        ph = Phantom(name, (N_SLICES, ROWS, COLS), (0.7, 0.7), 3.0, objs, seed=seed)
        pid = f"PHANTOM-{name[:3]}"
        spec = SeriesSpec(**common, patient_id=pid, study_date="20240601", seed=name,
                          patient_size_m=1.70, patient_weight_kg=70.0,
                          series_description=desc, extra=extra)
        out.append((name, ph, lumen_hu, spec,
                    {"patient_id": pid, "timepoint": 1, "height_cm": 170, "weight_kg": 70}))
    return out


def generate(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    cal = CALIBRATION_MG_PER_CM3_PER_HU
    for name, ph, lumen_hu, spec, row in cases():
        check_separated(ph)
        write_series(out / name / "dicom", render_contrast(ph, lumen_hu, ph.seed), spec)
        mask = aorta_region(ph, radius_px=MASK_RADIUS_PX)  # checks the plaques are inside
        regions = {"aorta": mask}
        doc = {"case_id": name, "lumen_hu": lumen_hu,
               "mass_calibration_mg_per_cm3_per_hu": cal,
               "regions": {"aorta": truth(ph, calibration=cal, kinds=("plaque",))}}
        for vname, part in vertebrae(ph):
            regions[vname] = np.zeros(ph.shape, dtype=bool)
            regions[vname][part.s0:part.s1, part.r0:part.r1, part.c0:part.c1] = True
            doc["regions"][vname] = truth(replace(ph, objects=(part,)), calibration=cal)
        for rname, m in regions.items():
            write_mask(out / name / "regions" / f"{rname}.nii.gz", m, ph, spec)
        (out / name / "truth.json").write_text(json.dumps(doc, indent=2) + "\n")
        rows.append({"case_id": name, "path": f"{name}/dicom", **row,
                     "regions": f"{name}/regions"})
    return write_csv(out / "manifest.csv", rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "contrast_phantoms")
    args = ap.parse_args(argv)
    print(f"wrote contrast sample data and {generate(args.out)}")


if __name__ == "__main__":
    main()
