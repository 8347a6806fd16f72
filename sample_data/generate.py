"""Generate the bundled sample data: digital phantoms as DICOM series, truth and a manifest.

    python -m sample_data.generate --out sample_data/phantoms

Seeded and deterministic: the same command writes the same bytes. Cases:

- ``P01_T1`` / ``P01_T2``: one phantom at two timepoints a year apart; at T2 every plaque has
  grown by one column and one slice. 0.7 mm pixels, 3 mm increment, unsigned 12-bit stored
  values with intercept -1024.
- ``P02``: an overlapping reconstruction (3 mm thick slices every 1.5 mm), 0.6 mm pixels,
  signed stored values, intercept 0; height and weight only in the DICOM header.
- ``P03``: RescaleSlope 0.5, so HU are not integers (one plaque at 250.5 HU).
- ``P04``: no calcium at all (no spine, no plaques) and no height or weight anywhere.

Each case has region masks in ``<case>/regions/`` as TotalSegmentator writes them (one
binary NIfTI per structure, x/y/z array order, RAS affine): ``aorta.nii.gz`` (lumen and wall,
holding every aortic plaque), where the phantom has them ``LAD.nii.gz`` around the coronary
plaque and ``vertebrae_T12.nii.gz`` / ``vertebrae_L1.nii.gz`` (the spine cut at its middle
slice); the manifest's ``regions`` column points at them. The truth per region (``regions``
in truth.json) is the truth of the objects inside: aorta = plaques, LAD = coronary,
vertebrae = their half of the spine, outside = nothing.

The mass calibration of the simulated scanner is c = 0.8 mg/(cm^3 HU): a 200 mg/cm^3
hydroxyapatite insert reading 250 HU above water (200 / 250); configs/sample_data.yaml
carries it. Truth per case is written to ``<case>/truth.json`` from :mod:`sample_data.phantom`;
``covariates.csv`` holds made-up clinical covariates per patient (phosphate, calcium, PTH,
eGFR, dialysis, ACEI/ARB use) for the cohort notebook, and the MESA risk factors (race,
cholesterol, blood pressure, medication, diabetes, smoking, family history).
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .dicom_writer import SeriesSpec, write_series
from .phantom import (
    Phantom,
    aorta_plaques,
    aorta_region,
    box_region,
    check_separated,
    coronary,
    render,
    spine,
    truth,
    vertebrae,
)

CALIBRATION_MG_PER_CM3_PER_HU = 0.8

COVARIATES = [  # made-up clinical covariates, one row per phantom patient (the CKD literature's,
    # and the MESA risk factors: vascalc.core.mesa.FACTORS)
    {"patient_id": "PHANTOM-01",
     "race": "white", "total_cholesterol_mg_dl": 212, "hdl_cholesterol_mg_dl": 38,
     "systolic_bp_mm_hg": 148, "bp_medication": 1, "lipid_medication": 1, "diabetes": 1,
     "current_smoker": 0, "family_history_chd": 0,
     "phosphate_mmol_l": 1.9, "calcium_mmol_l": 2.41,
     "pth_pmol_l": 48.0, "egfr_ml_min_1_73m2": 9, "dialysis": 1, "acei_arb": 1,
     "phosphate_binder": "calcium_based"},
    {"patient_id": "PHANTOM-02",
     "race": "african_american", "total_cholesterol_mg_dl": 195, "hdl_cholesterol_mg_dl": 47,
     "systolic_bp_mm_hg": 138, "bp_medication": 1, "lipid_medication": 0, "diabetes": 0,
     "current_smoker": 1, "family_history_chd": 1,
     "phosphate_mmol_l": 1.5, "calcium_mmol_l": 2.30,
     "pth_pmol_l": 21.0, "egfr_ml_min_1_73m2": 28, "dialysis": 0, "acei_arb": 1,
     "phosphate_binder": "non_calcium_based"},
    {"patient_id": "PHANTOM-03",
     "race": "hispanic", "total_cholesterol_mg_dl": 180, "hdl_cholesterol_mg_dl": 55,
     "systolic_bp_mm_hg": 126, "bp_medication": 0, "lipid_medication": 0, "diabetes": 0,
     "current_smoker": 0, "family_history_chd": 0,
     "phosphate_mmol_l": 1.1, "calcium_mmol_l": 2.25,
     "pth_pmol_l": 7.5, "egfr_ml_min_1_73m2": 64, "dialysis": 0, "acei_arb": 0,
     "phosphate_binder": "none"},
    {"patient_id": "PHANTOM-04",
     "race": "chinese", "total_cholesterol_mg_dl": 170, "hdl_cholesterol_mg_dl": 62,
     "systolic_bp_mm_hg": 118, "bp_medication": 0, "lipid_medication": 0, "diabetes": 0,
     "current_smoker": 0, "family_history_chd": 0,
     "phosphate_mmol_l": 1.0, "calcium_mmol_l": 2.35,
     "pth_pmol_l": 5.0, "egfr_ml_min_1_73m2": 92, "dialysis": 0, "acei_arb": 0,
     "phosphate_binder": "none"},
]



def cases() -> list[tuple[str, Phantom, SeriesSpec, dict]]:
    rows = cols = 128
    n = 40
    base = tuple(aorta_plaques(rows, cols, n)) + (spine(rows, cols, n), coronary(rows, cols, n))
    grown = tuple(b.grown() if b.kind in ("plaque", "coronary") else b for b in base)
    p1 = Phantom("P01_T1", (n, rows, cols), (0.7, 0.7), 3.0, base, seed=1)
    p1b = Phantom("P01_T2", (n, rows, cols), (0.7, 0.7), 3.0, grown, seed=2)
    p2 = Phantom("P02", (2 * n, rows, cols), (0.6, 0.6), 1.5,
                 tuple(aorta_plaques(rows, cols, 2 * n)) + (spine(rows, cols, 2 * n),), seed=3)
    p3_objs = tuple(replace(b, hu=250.5) if b.name == "band2_250" else b
                    for b in aorta_plaques(rows, cols, n))
    p3 = Phantom("P03", (n, rows, cols), (0.7, 0.7), 3.0, p3_objs, seed=4)
    p4 = Phantom("P04", (20, rows, cols), (0.7, 0.7), 3.0, (), seed=5)
    common = dict(bits_stored=12, intercept=-1024.0, signed=False)
    return [
        (p1.name, p1, SeriesSpec(**common, patient_id="PHANTOM-01", study_date="20240115",
                                 patient_age="067Y", patient_sex="M",
                                 patient_size_m=1.72, patient_weight_kg=81.0, seed="P01T1"),
         {"patient_id": "PHANTOM-01", "timepoint": 1, "height_cm": 172, "weight_kg": 81}),
        (p1b.name, p1b, SeriesSpec(**common, patient_id="PHANTOM-01", study_date="20250120",
                                   patient_age="068Y", patient_sex="M",
                                   patient_size_m=1.72, patient_weight_kg=79.0, seed="P01T2"),
         {"patient_id": "PHANTOM-01", "timepoint": 2, "height_cm": 172, "weight_kg": 79}),
        (p2.name, p2, SeriesSpec(pixel_spacing_mm=(0.6, 0.6), increment_mm=1.5, thickness_mm=3.0,
                                 intercept=0.0, signed=True, patient_id="PHANTOM-02",
                                 patient_age="054Y", patient_sex="F",
                                 study_date="20240301", patient_size_m=1.65,
                                 patient_weight_kg=60.0, seed="P02"),
         {"patient_id": "PHANTOM-02", "timepoint": 1, "height_cm": "", "weight_kg": ""}),
        (p3.name, p3, SeriesSpec(slope=0.5, intercept=-1024.0, patient_id="PHANTOM-03",
                                 study_date="20240410", seed="P03"),
         {"patient_id": "PHANTOM-03", "timepoint": 1, "height_cm": 158, "weight_kg": 52.5}),
        (p4.name, p4, SeriesSpec(**common, patient_id="PHANTOM-04", study_date="20240505",
                                 seed="P04"),
         {"patient_id": "PHANTOM-04", "timepoint": 1, "height_cm": "", "weight_kg": ""}),
    ]


def write_mask(path: Path, mask, ph: Phantom, spec: SeriesSpec) -> None:
    """A binary NIfTI mask in TotalSegmentator's layout: array (x, y, z) = (column, row,
    slice); the series has columns along patient +x (LPS), rows along +y and slice k at
    z0 + k x increment, so in RAS (-x, -y, z) the affine is diag(-dc, -dr, increment) moved
    to (0, 0, z0)."""
    import gzip

    import nibabel as nib
    import numpy as np

    dr, dc = ph.pixel_spacing_mm
    affine = np.diag([-dc, -dr, ph.increment_mm, 1.0])
    affine[2, 3] = spec.z0_mm
    img = nib.Nifti1Image(np.ascontiguousarray(mask.transpose(2, 1, 0), dtype=np.uint8), affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(img.to_bytes(), mtime=0))


def generate(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    manifest_rows = []
    for name, ph, spec, row in cases():
        check_separated(ph)
        spec = replace(spec, increment_mm=ph.increment_mm, pixel_spacing_mm=ph.pixel_spacing_mm)
        write_series(out / name / "dicom", render(ph), spec)
        t = truth(ph, calibration=CALIBRATION_MG_PER_CM3_PER_HU)
        t_vasc = truth(ph, calibration=CALIBRATION_MG_PER_CM3_PER_HU,
                       kinds=("plaque", "coronary"))
        doc = {"case_id": name, "pixel_spacing_mm": list(ph.pixel_spacing_mm),
               "increment_mm": ph.increment_mm, "shape": list(ph.shape),
               "mass_calibration_mg_per_cm3_per_hu": CALIBRATION_MG_PER_CM3_PER_HU,
               "whole_volume": t, "vascular_only": t_vasc}
        cal = CALIBRATION_MG_PER_CM3_PER_HU
        regions = {"aorta": aorta_region(ph)}
        doc["regions"] = {"aorta": truth(ph, calibration=cal, kinds=("plaque",))}
        lad = box_region(ph, "coronary")
        if lad is not None:
            regions["LAD"] = lad
            doc["regions"]["LAD"] = truth(ph, calibration=cal, kinds=("coronary",))
        for vname, part in vertebrae(ph):
            regions[vname] = np.zeros(ph.shape, dtype=bool)
            regions[vname][part.s0:part.s1, part.r0:part.r1, part.c0:part.c1] = True
            doc["regions"][vname] = truth(replace(ph, objects=(part,)), calibration=cal)
        # every calcium object lies in one of the masks: nothing is left outside
        doc["regions"]["outside"] = truth(replace(ph, objects=()), calibration=cal)
        for rname, mask in regions.items():
            write_mask(out / name / "regions" / f"{rname}.nii.gz", mask, ph, spec)
        (out / name / "truth.json").write_text(json.dumps(doc, indent=2) + "\n")
        cov = next(c for c in COVARIATES if c["patient_id"] == row["patient_id"])
        manifest_rows.append({"case_id": name, "path": f"{name}/dicom", **row,
                              "regions": f"{name}/regions",
                              **{k: v for k, v in cov.items() if k != "patient_id"}})
    write_csv(out / "covariates.csv", COVARIATES)
    write_csv(out / SAMPLE_READS, sample_reads())
    return write_csv(out / "manifest.csv", manifest_rows)


#: the sample reads: a made-up reader's labels of one case's lesions, so that the demo shows
#: the final coronary report a reader's review gives (``vascalc demo`` applies them through
#: the review API and rescores; they are marked as sample reads wherever they show)
SAMPLE_READS = "sample_reads.csv"
SAMPLE_READ_CASE = "P02"
#: the arteries the sample reader gives the plaques, in the order of the phantom's plaques
SAMPLE_ARTERIES = ("LAD", "LAD", "LM", "RCA", "LCX", "RCA", "LAD", "LCX", "RCA", "LAD")


def sample_reads() -> list[dict]:
    """One row per calcium object of the sample-read case: its label and its centre in
    patient coordinates (x = column x pixel spacing, y = row x pixel spacing, z = first slice
    position + slice x increment, as the series is written), for the demo to find its lesion."""
    name, ph, spec, _ = next(c for c in cases() if c[0] == SAMPLE_READ_CASE)
    spec = replace(spec, increment_mm=ph.increment_mm, pixel_spacing_mm=ph.pixel_spacing_mm)
    dr, dc = ph.pixel_spacing_mm
    rows, arteries = [], iter(SAMPLE_ARTERIES)
    for b in ph.objects:
        label = "bone" if b.kind == "spine" else next(arteries, "LAD")
        rows.append({"case_id": name, "label": label, "object": b.name,
                     "x_mm": round((b.c0 + b.c1 - 1) / 2 * dc, 3),
                     "y_mm": round((b.r0 + b.r1 - 1) / 2 * dr, 3),
                     "z_mm": round(spec.z0_mm + (b.s0 + b.s1 - 1) / 2 * ph.increment_mm, 3)})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a CSV with the first row's keys as header; returns ``path``."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "phantoms")
    args = ap.parse_args(argv)
    path = generate(args.out)
    print(f"wrote sample data and {path}")


if __name__ == "__main__":
    main()
