"""kVp threshold tables, density thresholds through a calibration, the interpolated volume,
scoring without Agatston, and every profile on the sample data. Answers by hand."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.load import load_config
from vascalc.config.schema import Config
from vascalc.errors import ConfigError, ContrastError, ThresholdError
from vascalc.records import ScanMeta
from vascalc.results.document import region_rows, scan_row

from tests.conftest import volume

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TABLE = {100.0: (150.0, 230.0, 340.0, 450.0)}  # made-up numbers for the mechanism only


def box(value, shape=(1, 8, 8)):
    hu = np.zeros(shape)
    hu[0, 2:4, 2:4] = value  # 4 px of 0.25 mm2 = 1 mm2
    return hu


def run(hu, cfg, kvp=120.0, spacing=(3.0, 0.5, 0.5)):
    return analyse(volume(hu, spacing, meta=ScanMeta(kvp=kvp)), cfg, case_id="t")


# --- kVp table -------------------------------------------------------------------------
def test_header_kvp_selects_the_table_row():
    cfg = Config(scoring={"kvp_table": TABLE, "kvp_select": "header"})
    assert run(box(140), cfg, kvp=100).whole.n_lesions == 0  # below the row's 150 HU
    r = run(box(210), cfg, kvp=100)
    # 210 HU: weight 1 under the row (2 starts at 230), 1 mm2 x 1 x 3/3
    assert r.whole.agatston == pytest.approx(1.0)
    assert r.settings["threshold_hu"] == 150 and r.settings["threshold_source"] == "kvp_table:100"
    assert "kvp_not_120" not in r.quality_flags
    # the same scan under the Agatston definition: weight 2
    assert run(box(210), Config(), kvp=100).whole.agatston == pytest.approx(2.0)
    assert "kvp_not_120" in run(box(210), Config(), kvp=100).quality_flags


def test_a_scan_at_120_kv_without_a_row_keeps_the_definition():
    cfg = Config(scoring={"kvp_table": TABLE, "kvp_select": "header"})
    r = run(box(140), cfg, kvp=120)
    assert r.whole.n_lesions == 1 and r.settings["threshold_source"] == "config"


def test_a_kvp_without_a_row_is_refused_not_scored_at_130():
    cfg = Config(scoring={"kvp_table": TABLE, "kvp_select": "header"})
    with pytest.raises(ThresholdError, match="no row for 80 kV"):
        run(box(300), cfg, kvp=80)
    with pytest.raises(ThresholdError, match="no KVP"):
        run(box(300), cfg, kvp=None)


def test_a_given_kv_overrides_the_header():
    cfg = Config(scoring={"kvp_table": TABLE, "kvp_select": 100})
    r = run(box(140), cfg, kvp=120)
    assert r.whole.n_lesions == 0 and r.settings["threshold_source"] == "kvp_table:100"


@pytest.mark.parametrize("scoring,match", [
    ({"kvp_select": 100}, "no row in kvp_table"),
    ({"kvp_select": "header"}, "needs a kvp_table"),
    ({"kvp_table": {100: [150, 140, 300, 400]}}, "must increase"),
    ({"kvp_table": TABLE, "kvp_select": "header", "threshold_mg_ha_cm3": 100},
     "either threshold_mg_ha_cm3 or kvp_select"),
    ({"volume_method": "interpolated", "preset": "philips"}, "cannot be combined"),
])
def test_inconsistent_threshold_settings_are_config_errors(scoring, match):
    from vascalc.config.load import config_from_dict

    with pytest.raises(ConfigError, match=match):
        config_from_dict({"scoring": scoring})


# --- density threshold through the calibration -------------------------------------------
def test_density_threshold_and_mass_relative_to_water():
    # c = 1 mg/(cm3 HU), water 10 HU: 100 mg HA/cm3 -> 10 + 100 / 1 = 110 HU
    cfg = Config(scoring={"threshold_mg_ha_cm3": 100, "mass_calibration_mg_per_cm3_per_hu": 1.0,
                          "calibration_water_hu": 10.0})
    assert run(box(109), cfg).whole.n_lesions == 0
    r = run(box(115), cfg)
    assert r.settings["threshold_hu"] == 110 and r.settings["threshold_source"] == \
        "calibration:100mg_ha_cm3"
    assert r.whole.agatston == pytest.approx(1.0)  # band 1 starts at the threshold
    # mass = c * sum(HU - water) * voxel volume = 1 * 4 * 105 * 0.75 mm3 / 1000
    assert r.whole.mass_mg == pytest.approx(4 * 105 * 0.75 / 1000)


def test_density_threshold_needs_a_calibration():
    with pytest.raises(ThresholdError, match="needs a calibration"):
        run(box(300), Config(scoring={"threshold_mg_ha_cm3": 100}))


def test_density_threshold_above_band_2_is_refused_with_agatston_only():
    # c = 0.5, water 0: 100 mg -> 200 HU, where weight 2 starts
    sc = {"threshold_mg_ha_cm3": 100, "mass_calibration_mg_per_cm3_per_hu": 0.5}
    with pytest.raises(ThresholdError, match="weight-2 band"):
        run(box(300), Config(scoring=sc))
    r = run(box(300), Config(scoring={**sc, "agatston": False}))
    assert r.whole.volume_mm3 == pytest.approx(4 * 0.75)


# --- scoring without Agatston ------------------------------------------------------------
def test_without_agatston_the_columns_are_empty_not_zero():
    r = run(box(300), Config(scoring={"agatston": False}))
    row = scan_row(r, settings={})
    assert row["agatston"] is None and row["density_score"] is None
    assert row["risk_category"] == row["cac_drs"] == ""
    assert row["volume_mm3"] == pytest.approx(3.0) and row["n_lesions"] == 1
    assert all(x["agatston"] is None for x in region_rows(r))


# --- interpolated volume ---------------------------------------------------------------
def slab(n_calcium=3, value=300.0, nz=5):
    hu = np.zeros((nz, 8, 8))
    hu[1:1 + n_calcium, 2:4, 2:4] = value
    return hu


def test_interpolated_volume_by_hand():
    """3 mm increment, 0.5 mm pixels: m = 6 planes per interval. Per calcified pixel column:
    3 kept voxels, 2 inner intervals x 5 planes, and at each end of the slab the planes
    where 300 * t >= 130, t in {3, 4, 5}/6: 3 + 10 + 3 + 3 = 19 voxels of 0.25 x 0.5 mm3."""
    cfg = Config(scoring={"volume_method": "interpolated"})
    r = run(slab(), cfg)
    assert r.whole.volume_mm3 == pytest.approx(4 * 19 * 0.25 * 0.5)
    assert run(slab(), Config()).whole.volume_mm3 == pytest.approx(4 * 3 * 0.25 * 3.0)
    assert r.settings["volume_method"] == "interpolated"
    # Agatston and mass do not depend on the volume method
    plain = run(slab(), Config())
    assert r.whole.agatston == plain.whole.agatston and r.whole.mass_mg == plain.whole.mass_mg


def test_interpolated_plane_exactly_at_the_threshold_counts():
    # 260 HU next to 0 HU: the midpoint plane (t = 3/6) reads 130 HU exactly
    cfg = Config(scoring={"volume_method": "interpolated"})
    r = run(slab(n_calcium=1, value=260.0, nz=3), cfg)
    # 1 kept voxel + on each side the planes t = 3/6 (130), 4/6, 5/6 -> 1 + 3 + 3
    assert r.whole.volume_mm3 == pytest.approx(4 * 7 * 0.25 * 0.5)


def test_isotropic_voxels_give_the_plain_count():
    """m = 1 adds no planes: each kept voxel counts itself (analyse skips the pass then)."""
    from vascalc.core.score import interpolated_counts, interpolation_steps

    hu = slab()
    kept = hu >= 130
    counts, unit = interpolated_counts(hu, kept, spacing_mm=(0.6, 0.5, 0.5), threshold_hu=130)
    assert interpolation_steps((0.6, 0.5, 0.5)) == 1 and unit == pytest.approx(0.15)
    assert np.array_equal(counts, kept.astype(counts.dtype))
    assert interpolation_steps((3.0, 0.5, 0.7)) == 6  # the smaller pixel spacing sets m


def test_interpolated_volume_adds_up_over_lesions_and_regions():
    hu = slab()
    hu[2:4, 6:8, 6:8] = 450  # a second lesion
    cfg = Config(scoring={"volume_method": "interpolated"})
    left = np.zeros(hu.shape, dtype=bool)
    left[:, :, :5] = True
    r = analyse(volume(hu, (3.0, 0.5, 0.5)), cfg, case_id="r",
                regions=[("left", left), ("right", ~left)])
    assert sum(le.volume_mm3 for le in r.lesions) == pytest.approx(r.whole.volume_mm3)
    assert sum(x.volume_mm3 for x in r.regions) == pytest.approx(r.whole.volume_mm3)
    by = {x.region: x.volume_mm3 for x in r.regions}
    assert by["left"] == pytest.approx(4 * 19 * 0.25 * 0.5)
    # second lesion: 2 kept slices, 1 inner interval x 5, ends at 450 * t >= 130 -> t >= 2/6
    assert by["right"] == pytest.approx(4 * (2 + 5 + 4 + 4) * 0.25 * 0.5)


# --- calibration writes the water HU ----------------------------------------------------
def test_calibrate_writes_the_water_hu(tmp_path):
    from tests.test_calibrate import phantom

    ph = phantom(tmp_path, water=5.0)
    res = CliRunner().invoke(app, ["calibrate", str(ph / "ct"), "--inserts",
                                   str(ph / "inserts.yaml"), "--out", str(ph / "cal.yaml")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert load_config(ph / "cal.yaml").scoring.calibration_water_hu == pytest.approx(5.0, abs=1.0)


# --- every profile runs on the sample data ----------------------------------------------
def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("profile", ["coronary", "aortic", "microct", "low_kvp", "default"])
def test_every_profile_runs_on_the_sample_data(profile, sample_data, tmp_path):
    manifest = sample_data / "manifest.csv"
    if profile in ("microct", "low_kvp"):  # a density threshold needs each scan's calibration
        rows = _rows(manifest)
        for r in rows:
            r["mass_calibration_mg_per_cm3_per_hu"] = "0.8"
            r["path"] = str(sample_data / r["path"])
            r["regions"] = str(sample_data / r["regions"])
        manifest = tmp_path / "manifest_calibrated.csv"
        with open(manifest, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    res = CliRunner().invoke(app, ["run", str(manifest), "--out", str(tmp_path / "o"),
                                   "--config", str(CONFIGS / f"{profile}.yaml"), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    scans = _rows(tmp_path / "o" / "scans.csv")
    assert scans and all(s["status"] == "ok" for s in scans)
    if profile == "microct":
        from scipy import ndimage
        from vascalc.io.dicom import index_tree, load_series

        for s in scans:
            # 100 mg HA/cm3 at c = 0.8, water 0 -> 125 HU; no Agatston
            assert float(s["threshold_hu"]) == 125.0 and s["agatston"] == ""
            assert s["threshold_source"] == "calibration:100mg_ha_cm3"
            case = next(r for r in _rows(manifest) if r["case_id"] == s["case_id"])
            vol = load_series(index_tree(Path(case["path"]))[0])
            # independent count: 8-connected slice components of >= 3 px at >= 125 HU
            n = 0
            for sl in vol.hu:
                lab, k = ndimage.label(sl >= 125, np.ones((3, 3)))
                sizes = np.bincount(lab.ravel())[1:]
                n += int(sizes[sizes >= 3].sum())
            assert float(s["all_calcium_volume_mm3"]) == pytest.approx(n * vol.voxel_volume_mm3,
                                                                       rel=1e-9)
    else:
        assert all(s["agatston"] != "" for s in scans)
    if profile == "low_kvp":  # 100 mg HA/cm3 at c = 0.8: 125 HU, band 1 from there
        assert all(float(s["threshold_hu"]) == 125.0 for s in scans)
        assert all("kvp_not_120" not in s["quality_flags"] for s in scans)
    if profile == "aortic":
        # aorta split at the T12/L1 plane (midway between slices 19 and 20 of the 40-slice
        # phantoms), vertebrae excluded: the two parts hold exactly the aortic plaques,
        # and phantoms without vertebra masks keep the aorta whole, flagged
        import json

        regions = _rows(tmp_path / "o" / "regions.csv")
        for s in scans:
            t = json.loads((sample_data / s["case_id"] / "truth.json").read_text())["regions"]
            got = {r["region"]: r for r in regions if r["case_id"] == s["case_id"]}
            assert not any(k.startswith("vertebrae") for k in got)
            if "vertebrae_T12" in t:
                parts = [got["aorta_thoracic"], got["aorta_abdominal"]]
                assert float(parts[0]["volume_mm3"]) > 0 and float(parts[1]["volume_mm3"]) > 0
                assert "aorta_not_split" not in s["quality_flags"]
            else:
                parts = [got["aorta"]]
                assert "aorta_not_split" in s["quality_flags"]
            assert sum(float(p["agatston"]) for p in parts) == pytest.approx(
                t["aorta"]["agatston"], rel=1e-9, abs=1e-9)
            assert sum(float(p["volume_mm3"]) for p in parts) == pytest.approx(
                t["aorta"]["volume_mm3"], rel=1e-9, abs=1e-9)


# --- lumen-adaptive threshold on contrast CT ----------------------------------------------
def contrast_phantom():
    """A 'lumen' of 300 +- 30 HU (uniform integer noise), a 2 x 2 px wall calcification at
    600 HU on each of 3 slices just outside it, an aorta mask holding lumen and wall, and the
    contrast agent recorded in the header."""
    rng = np.random.default_rng(3)
    hu = np.zeros((3, 40, 40))
    lumen = np.zeros(hu.shape, dtype=bool)
    lumen[:, 10:30, 10:30] = True
    hu[lumen] = 300 + rng.integers(-30, 31, int(lumen.sum()))
    hu[:, 30:32, 18:20] = 600  # just outside the lumen, in the wall
    aorta = np.zeros(hu.shape, dtype=bool)
    aorta[:, 8:33, 8:32] = True
    meta = ScanMeta(kvp=120.0, contrast_agent="IOPAMIDOL")
    return volume(hu, (3.0, 0.5, 0.5), meta=meta), lumen, aorta


def _region(r, name):
    return next(x for x in r.regions if x.region == name)


def test_lumen_adaptive_threshold_leaves_the_contrast_and_keeps_the_calcium():
    vol, lumen, aorta = contrast_phantom()
    held = analyse(vol, Config(), case_id="f", regions=[("aorta", aorta)])
    assert "contrast_enhanced" in held.quality_flags
    # by default the contrast-filled aorta is withheld with the reason, never its lumen counted
    assert "withhold" in _region(held, "aorta").withheld
    assert held.whole.withheld and _region(held, "outside").withheld
    r = analyse(vol, Config(scoring={"contrast": "lumen_adaptive"}), case_id="a",
                regions=[("aorta", aorta)])
    vals = vol.hu[aorta].astype(float)
    med = np.median(vals)
    expected = med + 3.0 * 1.4826 * np.median(np.abs(vals - med))
    got = _region(r, "aorta")
    assert got.threshold_hu == pytest.approx(expected) and got.threshold_rule == "lumen_adaptive"
    assert vol.hu[lumen].max() < expected < 600  # above every lumen voxel, below the calcium
    assert r.contrast_rule == "lumen_adaptive" and not r.agatston_comparable
    assert "contrast_enhanced" in r.protocol_deviations
    # only the calcium: 4 px x 3 slices, weight 4 (600 HU) on each slice
    assert got.volume_mm3 == pytest.approx(12 * 0.75) and got.n_lesions == 1
    assert got.agatston == pytest.approx(3 * 1.0 * 4)


def test_contrast_scan_without_region_masks_is_withheld_not_scored_at_130():
    """With no mask there is no lumen to set a threshold on: the all-calcium headline would
    count the contrast, so it is withheld with the reason under every rule but refuse."""
    vol, _, _ = contrast_phantom()
    for rule in ("withhold", "lumen_adaptive", "phase_threshold", "lumen_adaptive_comp2comp"):
        r = analyse(vol, Config(scoring={"contrast": rule}), case_id="a")
        assert r.whole.withheld and "contrast-enhanced" in r.whole.withheld, rule
        assert "contrast_enhanced" in r.quality_flags
    with pytest.raises(ContrastError, match="IOPAMIDOL"):
        analyse(vol, Config(scoring={"contrast": "refuse"}), case_id="a")


def test_microct_profile_on_a_micrometre_phantom():
    """20 um voxels, a calibration of c = 0.5 mg/(cm3 unit) with water at -50: the profile's
    100 mg HA/cm3 is -50 + 100 / 0.5 = 150. A 10^3-voxel block of 300 mg HA/cm3 (550) is
    kept; a 2-voxel speck (under the 3-voxel limit) and a 80 mg HA/cm3 block (110) are not."""
    base = load_config(CONFIGS / "microct.yaml").model_dump()
    base["scoring"].update(mass_calibration_mg_per_cm3_per_hu=0.5, calibration_water_hu=-50.0)
    cfg = Config.model_validate(base)
    hu = np.full((14, 40, 40), -50.0)
    hu[2:12, 5:15, 5:15] = 550
    hu[6, 30, 30:32] = 900
    hu[2:12, 25:35, 5:15] = 110
    r = analyse(volume(hu, (0.02, 0.02, 0.02)), cfg, case_id="m")
    assert r.settings["threshold_hu"] == 150 and r.whole.n_lesions == 1
    assert r.whole.volume_mm3 == pytest.approx(1000 * 0.02 ** 3)
    # mass = 300 mg/cm3 x 1000 voxels of 8e-9 cm3
    assert r.whole.mass_mg == pytest.approx(300 * 1000 * 0.02 ** 3 / 1000)
    assert scan_row(r, settings={})["agatston"] is None


def test_microct_nifti_in_scanner_units_runs_through_the_cli(tmp_path):
    """A micro-CT NIfTI whose values are not HU (water reads 1000, nothing below 0): refused
    by default as 'not a CT in HU', scored with the micro-CT profile and its calibration."""
    import nibabel as nib
    import yaml

    data = np.full((40, 40, 14), 1000, np.int16)  # x, y, z
    data[5:15, 5:15, 2:12] = 1600  # 300 mg HA/cm3 at c = 0.5 per unit above water
    nib.save(nib.Nifti1Image(data, np.diag([-0.02, -0.02, 0.02, 1.0])), str(tmp_path / "m.nii.gz"))
    cfg = yaml.safe_load((CONFIGS / "microct.yaml").read_text())
    cfg["scoring"].update(mass_calibration_mg_per_cm3_per_hu=0.5, calibration_water_hu=1000.0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(tmp_path / "m.nii.gz"), "--out", str(tmp_path / "d"),
                              "-j", "1"], catch_exceptions=False)
    assert res.exit_code == 1 and "HU_IMPLAUSIBLE" in res.output  # as a DICOM would be
    res = runner.invoke(app, ["run", str(tmp_path / "m.nii.gz"), "--out", str(tmp_path / "o"),
                              "-c", str(tmp_path / "c.yaml"), "-j", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = _rows(tmp_path / "o" / "scans.csv")[0]
    assert float(row["threshold_hu"]) == 1200.0 and row["agatston"] == ""
    assert float(row["volume_mm3"]) == pytest.approx(1000 * 0.02 ** 3)
    assert float(row["mass_mg"]) == pytest.approx(300 * 1000 * 0.02 ** 3 / 1000)


def test_phase_threshold_is_for_the_aorta_and_an_empty_territory_needs_no_rule():
    """The published phase thresholds were measured on the aorta: another contrast-filled
    territory is withheld under them (with the reason), and a territory whose mask is empty
    (outside the scan) holds nothing, so it is neither withheld nor a rule's."""
    vol, _, aorta = contrast_phantom()
    hu = np.array(vol.hu)
    hu[:, 30:32, 18:20] = 1000  # dense enough for the arterial 900 HU
    vol = volume(hu, (3.0, 0.5, 0.5), meta=vol.meta)
    cfg = Config(scoring={"contrast": "phase_threshold"}, contrast={"phase": "arterial"})
    r = analyse(vol, cfg, case_id="p", regions=[("aorta", aorta), ("carotid_artery", aorta),
                                                ("iliac", np.zeros_like(aorta))])
    got = {x.region: x for x in r.regions}
    assert got["aorta"].threshold_rule == "phase_threshold:arterial_thoracic"
    assert got["aorta"].threshold_hu == 900.0 and got["aorta"].volume_mm3 == 12 * 0.75
    assert got["carotid_artery"].region_class == got["iliac"].region_class == "vascular"
    assert "derived for the aorta only" in got["carotid_artery"].withheld
    assert not got["iliac"].withheld and got["iliac"].volume_mm3 == 0
