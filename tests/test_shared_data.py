"""Real scans from real scanners (../shared/data): read, cross-checked, or refused by name.

Skipped with the reason when the shared data is absent.
"""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.io.dicom import index_tree, load_series

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
    res = CliRunner().invoke(app, ["run", str(root), "--out", str(tmp_path), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 1  # the unevenly spaced GE series fails, the rest is written
    with open(tmp_path / "scans.csv", newline="") as fh:
        rows = {r["case_id"]: r for r in csv.DictReader(fh)}
    # ids are each series folder's own last two names, whatever root is given
    assert set(rows) == {"In_GE", "S21570_S2010", "S21610_S2010", "S21610_S3010"}
    assert rows["S21570_S2010"]["status"] == "ok"
    # the head phantom's calcium is its skull: all calcium in the field of view, flagged as
    # bone-dominated, with no risk category
    head = rows["S21570_S2010"]
    assert head["quality_flags"] == "mass_uncalibrated;bone_dominated"
    assert head["scope"] == "whole_volume" and float(head["agatston"]) > 0
    assert head["risk_category"] == "" and "coronary calcium only" in head["risk_basis"]
    # GE head CT: tilted and with slice distances of 1.1 to 7.0 mm: refused by name
    assert rows["In_GE"]["error_code"] == "GEOMETRY_UNEVEN_SPACING"
    assert rows["In_GE"]["agatston"] == ""
    # tilted Philips stacks are scored slice by slice, flagged, increment along the normal
    for cid in ("S21610_S2010", "S21610_S3010"):
        assert rows[cid]["status"] == "ok"
        assert {"gantry_tilt", "bone_dominated"} <= set(rows[cid]["quality_flags"].split(";"))
        assert float(rows[cid]["agatston"]) > 0
    import json

    notes = json.loads((tmp_path / "run.json").read_text())["not_scored"]
    reasons = {n["path"]: n["reason"] for n in notes}
    assert "localizer" in reasons["Philips/S21570/S1000/I10"]
    assert "Secondary Capture" in reasons["Philips/S21570/S4010/I40"]
    assert "DICOMDIR" in reasons["Philips/DICOMDIR"]


def test_philips_tilted_stack_increment_is_measured_along_the_normal():
    folder = shared_path("dcm_qa_ct", "In", "Philips", "S21610", "S2010")
    headers, _ = index_tree(folder)
    vol = load_series([h for h in headers if h.modality == "CT"])
    assert "gantry_tilt" in vol.quality_flags
    # the table moved 2.5 mm along z between images whose planes are tilted by 18.5 degrees:
    # the planes are 2.5 x cos(18.5 deg) apart along their normal
    assert vol.spacing_mm[0] == pytest.approx(2.5 * np.cos(np.radians(18.5)), rel=2e-3)
    d = np.asarray(vol.direction)
    assert np.linalg.norm(d[:, 0]) == pytest.approx(1 / np.cos(np.radians(18.5)), rel=2e-3)
