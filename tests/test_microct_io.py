"""Micro-CT inputs: every format of the generator gives the truth; the Scanco header gives the
published conversion; HA rods calibrate within 1 %; bad input is refused by name; the CLI
writes micro-CT rows without Agatston or risk, and a bad case loses no other's row."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.core.microct import DensityCalibration
from vascalc.errors import CalibrationError, GeometryError, StackError
from vascalc.io.microct import open_microct
from vascalc.io.scanco import read_scanco_header, to_vax_double, vax_double
from vascalc.run.microct import score_stack

from sample_data import microct as gen

VOXEL_UM = 10.0


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("microct")
    return out, gen.make_samples(out, voxel_um=VOXEL_UM)


def _cfg(slope: float, intercept: float, **extra) -> Config:
    return Config(microct={"calibration_slope": slope, "calibration_intercept": intercept,
                           "slab_slices": 7, **extra})


@pytest.mark.parametrize("name,slope,intercept", [
    ("bruker", gen.BRUKER_SLOPE, gen.BRUKER_INTERCEPT),
    ("stack.tif", gen.SLOPE, gen.INTERCEPT),
    ("stack.nrrd", gen.SLOPE, gen.INTERCEPT)])
def test_each_format_gives_the_truth(samples, name, slope, intercept):
    out, truth = samples
    stack = open_microct(out / name)
    assert stack.voxel_size_um == (VOXEL_UM,) * 3
    score, cal, _ = score_stack(stack, _cfg(slope, intercept))
    assert score.n_voxels == truth["n_voxels"]  # volume exact by voxel count
    assert score.volume_mm3 == pytest.approx(truth["volume_mm3"], rel=1e-12)
    assert score.mass_mg == pytest.approx(truth["mass_mg"], rel=1e-3)
    assert cal is not None and cal.source == "config"


@pytest.mark.parametrize("name", ["stack.isq", "stack.aim"])
def test_scanco_samples_give_their_truth_by_the_header(samples, name):
    out, truth = samples
    stack = open_microct(out / name)
    score, cal, _ = score_stack(stack, Config(microct={"slab_slices": 6}))
    assert cal is not None and cal.source.startswith("header:scanco")
    assert score.n_voxels == truth["scanco"]["n_voxels"]
    assert score.mass_mg == pytest.approx(truth["scanco"]["mass_mg"], rel=1e-3)
    # the same objects as the other formats: the voxel count of the design
    assert score.n_voxels == truth["n_voxels"]


@pytest.mark.parametrize("writer", [gen.write_isq, gen.write_aim])
def test_scanco_files_carry_their_calibration(tmp_path, writer):
    vol = gen.phantom()[0]
    path = writer(tmp_path / ("s.isq" if writer is gen.write_isq else "s.aim"), vol, VOXEL_UM)
    stack = open_microct(path)
    assert stack.format in ("scanco_isq", "scanco_aim") and stack.shape == vol.shape
    assert stack.voxel_size_um == pytest.approx((VOXEL_UM,) * 3, rel=1e-6)
    np.testing.assert_array_equal(stack.read(3, 9), vol[3:9])
    cal = stack.header_calibration
    assert cal is not None and cal.source == f"header:{stack.format}"
    score, used, _ = score_stack(stack, Config(microct={"slab_slices": 5}))
    density = vol.astype(np.float64) * 355.52 / 4096 - 196.6  # independent of the reader
    kept = density >= 100.0
    assert used is cal and score.n_voxels == int(kept.sum())
    vv = (VOXEL_UM / 1000) ** 3
    assert score.mass_mg == pytest.approx(density[kept].sum() * vv / 1000, rel=1e-3)


def test_scanco_header_reproduces_the_published_example(tmp_path):
    """ITKIOScanco's unit-conversion notebook: Density: slope=3.55519989e+02, intercept=
    -1.96600006e+02, HU: mu water=0.51400, Mu_Scaling=4096; Maximum data value=32767 with
    Maximum value=7.99976, Minimum data value=-2891 with Minimum value=-0.70581. The notebook
    converts HU -> mu = (HU + 1000) / (1000 / mu_water) -> density = mu x slope + intercept."""
    vol = np.array([-2891, 0, 2105, 32767] * 8, dtype=np.int16).reshape(2, 4, 4)
    path = gen.write_isq(tmp_path / "c.isq", vol, 10.0, slope=3.55519989e+02,
                         intercept=-1.96600006e+02, mu_water=0.514)
    h = read_scanco_header(path)
    assert (h.mu_scaling, h.mu_water) == (4096.0, pytest.approx(0.514))
    assert round(32767 / h.mu_scaling, 5) == 7.99976 and round(-2891 / h.mu_scaling, 5) == -0.70581
    cal = open_microct(path).header_calibration
    for v in (-2891, 0, 2105, 32767):
        hu = -1000 + v / 4096 * (1000 / 0.514)  # the HU ITK gives
        rho = (hu + 1000) / (1000 / 0.514) * 3.55519989e+02 + -1.96600006e+02  # the notebook
        assert float(cal.density(v)) == pytest.approx(rho, rel=1e-12)
    assert float(cal.density(4096)) == pytest.approx(355.52 - 196.6, abs=1e-3)  # mu = 1 /cm


def test_vax_doubles_round_trip():
    for v in (355.52, -196.6, 0.514, 1e-3, 12345.678):
        assert vax_double(to_vax_double(v)) == v


def test_scanco_without_calibration_is_uncalibrated_and_implausible_is_refused(tmp_path):
    vol = gen.phantom()[0]
    bare = open_microct(gen.write_isq(tmp_path / "bare.isq", vol, VOXEL_UM, slope=None))
    assert bare.header_calibration is None and "no header calibration" in bare.notes[0]
    with pytest.raises(CalibrationError, match="no density calibration"):
        score_stack(bare, Config())
    score, cal, _ = score_stack(bare, Config(microct={"threshold_stored": 600}))
    assert cal is None and score.mass_mg is None and score.n_voxels == int((vol >= 600).sum())
    with pytest.raises(CalibrationError, match="implausible"):
        open_microct(gen.write_isq(tmp_path / "bad.isq", vol, VOXEL_UM, slope=3.5e6))
    with pytest.raises(CalibrationError, match="mu water"):
        open_microct(gen.write_isq(tmp_path / "w.isq", vol, VOXEL_UM, mu_water=51.4))


def test_truncated_scanco_file_is_refused(tmp_path):
    path = gen.write_isq(tmp_path / "t.isq", gen.phantom()[0], VOXEL_UM)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(Exception, match="truncated"):
        open_microct(path)


def test_rods_calibrate_within_one_percent(samples, tmp_path):
    out, truth = samples
    snippet = tmp_path / "cal.yaml"
    r = CliRunner().invoke(app, ["calibrate", str(out / "bruker"), "--inserts",
                                 str(out / "rods.yaml"), "--out", str(snippet)])
    assert r.exit_code == 0, r.output
    m = yaml.safe_load(snippet.read_text(encoding="utf-8"))["microct"]
    assert m["calibration_slope"] == pytest.approx(gen.BRUKER_SLOPE, rel=0.01)
    assert m["calibration_intercept"] == pytest.approx(gen.BRUKER_INTERCEPT, rel=0.01)
    assert (m["calibration_valid_min_mg_ha_cm3"], m["calibration_valid_max_mg_ha_cm3"]) == (250, 750)
    assert m["calibration_source"] == "rods:rods.yaml" and "residual" not in m
    assert "(+0.00)" in snippet.read_text(encoding="utf-8")  # per-rod residuals in the comments
    # the calibrated Bruker stack flags the plaque denser than the densest rod
    score, cal, _ = score_stack(open_microct(out / "bruker"), Config(microct=m))
    assert score.beyond_calibration_voxels == truth["beyond_750_voxels"] > 0
    assert score.mass_mg == pytest.approx(truth["mass_mg"], rel=1e-3)


def test_one_rod_is_refused(samples, tmp_path):
    out, _ = samples
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(yaml.safe_load((out / "rods.yaml").read_text(encoding="utf-8"))[:1]))
    r = CliRunner().invoke(app, ["calibrate", str(out / "bruker"), "--inserts", str(one),
                                 "--out", str(tmp_path / "x.yaml")])
    assert r.exit_code == 2 and "two or more rods" in r.output


def _bruker_copy(samples, tmp_path) -> Path:
    out, _ = samples
    return Path(shutil.copytree(out / "bruker", tmp_path / "b"))


def test_missing_slice_is_named(samples, tmp_path):
    b = _bruker_copy(samples, tmp_path)
    (b / "mouse_rec00000012.bmp").unlink()
    with pytest.raises(StackError, match="missing .*mouse_rec00000012.bmp"):
        open_microct(b)


def test_mixed_bit_depths_are_refused(tmp_path):
    from PIL import Image

    for i in range(3):
        a = np.zeros((8, 8), np.uint8 if i != 1 else np.uint16)
        Image.fromarray(a).save(tmp_path / f"s_{i:04d}.png")
    with pytest.raises(StackError, match="mixed bit depths"):
        open_microct(tmp_path, voxel_size_um=5.0)


def test_log_that_does_not_match_the_slices_is_refused(samples, tmp_path):
    b = _bruker_copy(samples, tmp_path)
    log = b / "mouse_rec.log"
    text = log.read_text(encoding="utf-8")
    log.write_text(text.replace("Result Image Width (pixels)=64", "Result Image Width (pixels)=2000"))
    with pytest.raises(StackError, match="Width .* 2000, the slices have 64"):
        open_microct(b)
    log.write_text(text.replace("Last Section=39", "Last Section=45"))
    with pytest.raises(StackError, match="0-45 .46 slices. do not match"):
        open_microct(b)


def test_voxel_size_from_the_manifest_or_refused(samples, tmp_path):
    vol = gen.phantom()[0].astype(np.uint16)
    bare = gen.write_tiff_stack(tmp_path / "bare.tif", vol, None)
    with pytest.raises(GeometryError, match="voxel_size_um"):
        open_microct(bare)
    assert open_microct(bare, voxel_size_um=9.0).voxel_size_source == "manifest"
    out, _ = samples
    with pytest.raises(GeometryError, match="manifest's voxel_size_um says 20"):
        open_microct(out / "stack.tif", voxel_size_um=20.0)


def test_cli_writes_animal_rows_without_agatston_or_risk(samples, tmp_path):
    out, truth = samples
    manifest = out / "manifest.csv"
    bad = tmp_path / "manifest.csv"
    rows = manifest.read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join([rows[0], *(r.replace("stack.", str(out) + "/stack.")
                                         .replace("voi.tif", str(out / "voi.tif"))
                                         for r in rows[1:]),
                              "M03_w8,missing.tif,,M03,control,standard chow,week 8"]) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text((out / "microct_sample.yaml").read_text(encoding="utf-8") + "  slab_slices: 6\n")
    res = tmp_path / "out"
    r = CliRunner().invoke(app, ["microct", str(bad), "--out", str(res), "--config", str(cfg),
                                 "--quiet"])
    assert r.exit_code == 1, r.output  # one case failed; the others are written
    scans = list(csv.DictReader((res / "microct_scans.csv").read_text(encoding="utf-8").splitlines()))
    assert [s["status"] for s in scans] == ["ok", "ok", "failed"]
    assert scans[2]["error_code"] == "INPUT_INVALID" and "does not exist" in scans[2]["error"]
    for s in scans[:2]:
        assert s["agatston"] == "" and s["risk_category"] == ""
        assert "Agatston" in s["agatston_withheld"]
        assert int(s["n_lesions"]) > 0
        assert float(s["volume_mm3"]) == pytest.approx(truth["volume_mm3"], rel=1e-12)
        assert float(s["mass_mg"]) == pytest.approx(truth["mass_mg"], rel=1e-3)
    assert (scans[0]["group"], scans[0]["time_point"]) == ("adenine", "week 8")
    regions = list(csv.DictReader((res / "microct_regions.csv").read_text(encoding="utf-8").splitlines()))
    assert {r["region"] for r in regions} == {"aorta", "rods"}
    assert sum(int(r["n_voxels"]) for r in regions) == truth["n_voxels"]
    assert (res / "animals" / "M01" / "report.html").read_text(encoding="utf-8").count("mg HA") >= 1
    assert (res / "microct_data_dictionary.csv").is_file()


def test_run_on_a_microct_folder_points_to_vascalc_microct(samples):
    out, _ = samples
    r = CliRunner().invoke(app, ["scan", str(out)])
    assert r.exit_code == 2 and "micro-CT stacks: score them with vascalc microct" in r.output


def test_voi_map_of_other_voxels_is_refused(samples, tmp_path):
    out, _ = samples
    gen.write_tiff_stack(tmp_path / "small.tif", np.zeros((5, 8, 8), np.uint8), VOXEL_UM)
    cfg = _cfg(gen.SLOPE, gen.INTERCEPT)
    with pytest.raises(Exception, match="VOI map has 8 x 8 x 5 voxels"):
        score_stack(open_microct(out / "stack.tif"), cfg, voi=tmp_path / "small.tif")


def test_config_calibration_needs_slope_and_intercept_together():
    with pytest.raises(Exception, match="together"):
        Config(microct={"calibration_slope": 1.0})
    assert DensityCalibration(slope=2.0, intercept=1.0, source="config").density(3) == 7.0
    with pytest.raises(ValueError, match="positive slope"):
        DensityCalibration(slope=-1.0, intercept=0.0, source="config")


def test_a_dicom_folder_with_a_stray_screenshot_is_not_a_microct_stack(tmp_path):
    from PIL import Image
    from vascalc.io.microct import microct_kind

    (tmp_path / "IM0001").write_bytes(b"\0" * 132)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "screenshot1.png")
    assert microct_kind(tmp_path) is None
    (tmp_path / "IM0001").unlink()
    assert microct_kind(tmp_path).name == "tiff_slices"


def test_an_unwritable_out_is_a_usage_error(samples, tmp_path):
    out, _ = samples
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text((out / "microct_sample.yaml").read_text(encoding="utf-8"))
    r = CliRunner().invoke(app, ["microct", str(out / "stack.tif"), "--out", str(blocker / "o"),
                                 "--config", str(cfg), "--quiet"])
    assert r.exit_code == 2 and "OUTPUT_UNWRITABLE" in r.output
