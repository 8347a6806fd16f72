"""Real scans from real scanners (../shared/data): read, cross-checked, or refused by name.

Skipped with the reason when the shared data is absent.
"""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.io.dicom import index_tree, load_series
from tests.conftest import shared_path

pytestmark = pytest.mark.shared_data


def test_philips_untilted_series_equals_simpleitk_series_reader():
    import SimpleITK as sitk

    folder = shared_path("dcm_qa_ct", "In", "Philips", "S21570", "S2010")
    headers, _ = index_tree(folder)
    cts = [h for h in headers if h.modality == "CT"]
    vol = load_series(cts)
    assert vol.hu.shape == (28, 512, 512) and vol.spacing_mm[0] == pytest.approx(5.0)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([h.path for h in sorted(cts, key=lambda h: h.position[2])])
    ref = sitk.GetArrayFromImage(reader.Execute())
    assert np.array_equal(vol.hu, ref)
    assert vol.meta.manufacturer.startswith("Philips")


def test_siemens_jpeg2000_series_equals_pydicom_decode():
    from pydicom.pixels import apply_modality_lut

    folder = shared_path("totalsegmentator_example", "example_ct_dicom")
    headers, _ = index_tree(folder)
    vol = load_series(headers)
    assert vol.meta.transfer_syntax == "1.2.840.10008.1.2.4.90"
    # 3 mm thick slices every 2 mm: the increment comes from the positions, not the thickness
    assert vol.hu.shape == (20, 512, 512) and vol.spacing_mm[0] == pytest.approx(2.0)
    assert vol.meta.slice_thickness_mm == 3.0
    by_pos = sorted(headers, key=lambda h: h.position[2])
    for k in (0, 10, 19):
        ds = pydicom.dcmread(by_pos[k].path)
        assert np.array_equal(vol.hu[k], apply_modality_lut(ds.pixel_array, ds))
    assert vol.meta.patient_weight_kg is not None


def test_dcm_qa_ct_tree_scores_or_refuses_every_series_by_name(tmp_path):
    root = shared_path("dcm_qa_ct", "In")
    res = CliRunner().invoke(app, ["run", str(root), "--out", str(tmp_path)],
                             catch_exceptions=False)
    assert res.exit_code == 1  # the tilted and unevenly spaced series fail, the rest is written
    with open(tmp_path / "scans.csv", newline="") as fh:
        rows = {r["case_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"GE", "Philips_S21570_S2010", "Philips_S21610_S2010",
                         "Philips_S21610_S3010"}
    assert rows["Philips_S21570_S2010"]["status"] == "ok"
    assert float(rows["Philips_S21570_S2010"]["agatston"]) > 0  # the phantom's skull
    assert rows["GE"]["error_code"] == "GEOMETRY_UNEVEN_SPACING"
    for cid in ("Philips_S21610_S2010", "Philips_S21610_S3010"):
        assert rows[cid]["error_code"] == "GEOMETRY_INVALID" and "tilt" in rows[cid]["error"]
        assert rows[cid]["agatston"] == ""
    import json

    notes = json.loads((tmp_path / "run.json").read_text())["not_scored"]
    reasons = {n["path"]: n["reason"] for n in notes}
    assert "localizer" in reasons["Philips/S21570/S1000/I10"]
    assert "Secondary Capture" in reasons["Philips/S21570/S4010/I40"]
    assert "DICOMDIR" in reasons["Philips/DICOMDIR"]
