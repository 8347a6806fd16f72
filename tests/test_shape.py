"""Lesion shape (output.lesion_shape): lengths in mm and Westin's linear / planar / spherical
measures of each whole 3-D lesion, on shapes whose answers are known by construction."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc import Config, CTVolume, analyse
from vascalc.cli.app import app
from vascalc.measure.shape import lesion_shapes
from vascalc.records import SHAPE_COLUMNS
from vascalc.results.document import lesion_rows


def _volume() -> CTVolume:
    hu = np.full((20, 64, 64), -50, dtype=np.int16)
    hu[0, 0, 0] = -1000
    hu[5, 10, 5:45] = 400            # a rod along the columns: 40 px x 0.5 mm = 20 mm
    hu[18, 40:60, 5:25] = 250        # a sheet on one slice: 10 x 10 mm, one 2 mm slice thick
    hu[8:13, 30:50, 30:50] = 300     # a cube: 5 slices x 2 mm, 20 px x 0.5 mm: 10 mm each way
    return CTVolume(hu=hu, spacing_mm=(2.0, 0.5, 0.5))


def test_lengths_and_classes_of_a_rod_a_sheet_and_a_cube():
    r = analyse(_volume(), Config(output={"lesion_shape": True}), case_id="shapes")
    by_class = {s.shape_class: s for s in r.lesion_shapes}
    rod, sheet, cube = by_class["linear"], by_class["planar"], by_class["spherical"]
    # a uniform solid of side L has variance L^2 / 12: the sides come back exactly
    assert (rod.length_mm, rod.width_mm, rod.thickness_mm) == pytest.approx((20.0, 2.0, 0.5))
    assert (sheet.length_mm, sheet.width_mm, sheet.thickness_mm) == pytest.approx((10, 10, 2))
    assert (cube.length_mm, cube.width_mm, cube.thickness_mm) == pytest.approx((10, 10, 10))
    assert cube.sphericity == pytest.approx(1.0) and sheet.planarity > 0.9 and rod.linearity > 0.9
    for s in r.lesion_shapes:
        assert s.linearity + s.planarity + s.sphericity == pytest.approx(1.0)
        assert s.extent == pytest.approx(1.0)  # boxes fill their bounding boxes


def test_an_l_shaped_lesion_does_not_fill_its_box():
    labels = np.zeros((1, 10, 10), dtype=np.int32)
    labels[0, 0, :] = 1
    labels[0, :, 0] = 1
    (s,) = lesion_shapes(labels, (3.0, 1.0, 1.0))
    assert s.extent == pytest.approx(19 / 100)


def test_shape_is_off_by_default_and_every_piece_carries_its_lesions_shape(tmp_path):
    vol = _volume()
    assert all(row[c] is None for row in lesion_rows(analyse(vol, Config(), case_id="a"))
               for c in SHAPE_COLUMNS)
    rows = lesion_rows(analyse(vol, Config(output={"lesion_shape": True}), case_id="a"))
    assert all(isinstance(row["length_mm"], float) for row in rows)


def test_the_cli_writes_shape_columns_when_asked(sample_data, tmp_path):
    cfg = tmp_path / "shape.yaml"
    cfg.write_text("output: {lesion_shape: true}\nscoring: {scope: whole_volume}\n")
    res = CliRunner().invoke(app, ["run", str(sample_data / "P03" / "dicom"), "--out",
                                   str(tmp_path / "o"), "--config", str(cfg), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o" / "lesions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["shape_class"] in ("linear", "planar", "spherical") for r in rows)
    assert all(float(r["length_mm"]) >= float(r["width_mm"]) >= float(r["thickness_mm"]) > 0
               for r in rows)
