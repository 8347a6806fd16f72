"""Calibration on a digital phantom with known inserts recovers c within 1 %."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.load import load_config

from sample_data.dicom_writer import SeriesSpec, write_series


def phantom(tmp_path, c_true=0.8, water=5.0):
    """Water background at ``water`` HU with noise; HA inserts at water + density / c."""
    rng = np.random.default_rng(9)
    hu = water + np.clip(np.rint(rng.normal(0, 8, (12, 64, 64))), -30, 30)
    rr, cc = np.mgrid[0:64, 0:64]
    inserts = []
    for name, dens, (r0, c0) in (("HA100", 100, (16, 16)), ("HA200", 200, (16, 48)),
                                 ("HA400", 400, (48, 32))):
        disc = (rr - r0) ** 2 + (cc - c0) ** 2 <= 8 ** 2
        hu[:, disc] = np.rint(water + dens / c_true) + np.clip(
            np.rint(rng.normal(0, 8, (12, int(disc.sum())))), -30, 30)
        # patient position of the disc centre: x = col * 0.5, y = row * 0.5, z = slice 6 * 2 mm
        inserts.append({"name": name, "density_mg_per_cm3": dens,
                        "center_mm": [c0 * 0.5, r0 * 0.5, 12.0], "radius_mm": 3.0})
    inserts.append({"name": "water", "density_mg_per_cm3": 0,
                    "center_mm": [32 * 0.5, 32 * 0.5, 12.0], "radius_mm": 3.0})
    write_series(tmp_path / "ct", hu, SeriesSpec(pixel_spacing_mm=(0.5, 0.5), increment_mm=2.0,
                                                 z0_mm=0.0, signed=True, intercept=0.0))
    (tmp_path / "inserts.yaml").write_text(yaml.safe_dump(inserts))
    return tmp_path


def test_calibrate_recovers_c_within_one_percent(tmp_path):
    ph = phantom(tmp_path)
    res = CliRunner().invoke(app, ["calibrate", str(ph / "ct"), "--inserts",
                                   str(ph / "inserts.yaml"), "--out", str(ph / "cal.yaml")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cfg = load_config(ph / "cal.yaml")  # the snippet is a valid config
    assert cfg.scoring.mass_calibration_mg_per_cm3_per_hu == pytest.approx(0.8, rel=0.01)


def test_an_insert_below_water_is_a_usage_error(tmp_path):
    ph = phantom(tmp_path)
    items = yaml.safe_load((ph / "inserts.yaml").read_text())
    items[0]["center_mm"] = [2.0, 2.0, 12.0]  # in the water background, not on the insert
    items[0]["density_mg_per_cm3"] = 100
    (ph / "inserts.yaml").write_text(yaml.safe_dump(items))
    res = CliRunner().invoke(app, ["calibrate", str(ph / "ct"), "--inserts",
                                   str(ph / "inserts.yaml"), "--out", str(ph / "cal.yaml")])
    assert res.exit_code == 2 and "not above water" in res.output


def test_calibrate_reads_a_nifti_phantom(tmp_path):
    """Micro-CT phantoms often come as NIfTI: the same phantom through its affine."""
    import nibabel as nib
    from vascalc.io.dicom import index_tree, load_series
    from vascalc.io.masks import affine_ras

    ph = phantom(tmp_path)
    vol = load_series(index_tree(ph / "ct")[0], require_hu=False)  # a water phantom: no air
    hu = vol.hu.copy()
    hu[:, :3, :3] = -1000  # air in a corner, far from the inserts, as around a real phantom
    nib.save(nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)),
                             affine_ras(vol) @ np.eye(4)[[2, 1, 0, 3]].T), str(ph / "ct.nii.gz"))
    res = CliRunner().invoke(app, ["calibrate", str(ph / "ct.nii.gz"), "--inserts",
                                   str(ph / "inserts.yaml"), "--out", str(ph / "cal.yaml")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert load_config(ph / "cal.yaml").scoring.mass_calibration_mg_per_cm3_per_hu == \
        pytest.approx(0.8, rel=0.01)
