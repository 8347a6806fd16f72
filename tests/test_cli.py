"""DICOM files on disk, through the CLI, to the tables, against the phantom truth."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.results.columns import names
from vascalc.results.document import read_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CFG = ROOT / "configs" / "sample_data.yaml"
REQUIRED_SCANS = """case_id patient_id study_date series_instance_uid status error_code error
agatston volume_mm3 mass_mg n_lesions risk_category cac_drs height_cm weight_kg bsa_m2
bsa_formula bsa_source volume_per_bsa_mm3_m2 threshold_hu min_lesion_area_mm2
slice_thickness_mm slice_increment_mm pixel_spacing_mm kvp n_slices
mass_calibration_mg_per_cm3_per_hu pipeline_version config_sha256""".split()
REQUIRED_LESIONS = """case_id lesion_id n_slices volume_mm3 mass_mg agatston peak_hu mean_hu
centroid_x_mm centroid_y_mm centroid_z_mm""".split()


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def demo(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = invoke("run", sample_data / "manifest.csv", "--out", out, "--config", SAMPLE_CFG)
    return res, out


def test_demo_matches_phantom_truth(demo, sample_truth):
    res, out = demo
    assert res.exit_code == 0, res.output
    rows = {r["case_id"]: r for r in read_csv(out / "scans.csv")}
    assert set(rows) == set(sample_truth) == {"P01_T1", "P01_T2", "P02", "P03", "P04"}
    for cid, t in sample_truth.items():
        # the headline is the vascular scope (aorta and LAD masks): the vascular truth; all
        # calcium in the field of view (spine included) is beside it
        r, v, w = rows[cid], t["vascular_only"], t["whole_volume"]
        assert r["status"] == "ok" and r["scope"] == "vascular"
        assert float(r["agatston"]) == pytest.approx(v["agatston"], rel=1e-6, abs=1e-9)
        assert float(r["volume_mm3"]) == pytest.approx(v["volume_mm3"], rel=1e-6, abs=1e-9)
        assert float(r["mass_mg"]) == pytest.approx(v["mass_mg"], rel=1e-6, abs=1e-9)
        assert int(r["n_lesions"]) == v["n_lesions"]
        assert float(r["vascular_agatston"]) == float(r["agatston"])
        assert float(r["all_calcium_agatston"]) == pytest.approx(w["agatston"], rel=1e-6)
        assert float(r["all_calcium_volume_mm3"]) == pytest.approx(w["volume_mm3"], rel=1e-6)
        assert float(r["all_calcium_mass_mg"]) == pytest.approx(w["mass_mg"], rel=1e-6)
        assert r["risk_category"] == r["cac_drs"] == r["cac_drs_vessels"] == ""
        assert float(r["slice_increment_mm"]) == t["increment_mm"]
        assert float(r["mass_calibration_mg_per_cm3_per_hu"]) == 0.8


def test_demo_lesions_match_truth_per_lesion(demo, sample_truth):
    _, out = demo
    ag: dict[str, float] = {}
    vol: dict[str, float] = {}
    for r in read_csv(out / "lesions.csv"):  # a lesion crossing regions has one row per piece
        if r["case_id"] == "P01_T1":
            ag[r["lesion_id"]] = ag.get(r["lesion_id"], 0.0) + float(r["agatston"])
            vol[r["lesion_id"]] = vol.get(r["lesion_id"], 0.0) + float(r["volume_mm3"])
    want = sample_truth["P01_T1"]["whole_volume"]["lesions"]
    assert sorted(round(a, 6) for a in ag.values()) == sorted(round(le["agatston"], 6)
                                                             for le in want)
    assert sorted(round(v, 6) for v in vol.values()) == sorted(round(le["volume_mm3"], 6)
                                                              for le in want)


def test_demo_regions_match_phantom_truth(demo, sample_truth):
    """The manifest's regions column: per-region scores equal the truth of the objects in
    each mask (aorta = plaques, LAD = coronary, vertebrae = their half of the spine)."""
    _, out = demo
    rows = read_csv(out / "regions.csv")
    scans = {r["case_id"]: r for r in read_csv(out / "scans.csv")}
    for cid, t in sample_truth.items():
        got = {r["region"]: r for r in rows if r["case_id"] == cid}
        assert set(got) == set(t["regions"]), cid
        for m in ("agatston", "volume_mm3", "mass_mg"):  # the rows partition the kept calcium
            assert sum(float(g[m]) for g in got.values()) == pytest.approx(
                float(scans[cid][f"all_calcium_{m}"]), rel=1e-9, abs=1e-9), (cid, m)
        for name, want in t["regions"].items():
            g = got[name]
            assert float(g["agatston"]) == pytest.approx(want["agatston"], rel=1e-9, abs=1e-9)
            assert float(g["volume_mm3"]) == pytest.approx(want["volume_mm3"], rel=1e-9, abs=1e-9)
            assert float(g["mass_mg"]) == pytest.approx(want["mass_mg"], rel=1e-9, abs=1e-9)
            assert int(g["n_lesions"]) == want["n_lesions"], (cid, name)
        assert scans[cid]["coronary_agatston"] == ("" if "LAD" not in t["regions"] else
                                                   f"{t['regions']['LAD']['agatston']:.12g}")
    lesions = [r for r in read_csv(out / "lesions.csv") if r["case_id"] == "P01_T1"]
    by_region = {}
    for r in lesions:
        by_region.setdefault(r["region"], []).append(r)
    assert {k: len(v) for k, v in by_region.items()} == {
        "aorta": 10, "LAD": 1, "vertebrae_T12": 1, "vertebrae_L1": 1}


def test_demo_bsa_sources(demo):
    _, out = demo
    rows = {r["case_id"]: r for r in read_csv(out / "scans.csv")}
    # manifest first
    assert rows["P01_T1"]["bsa_source"] == "manifest"
    h, w = 172.0, 81.0
    assert float(rows["P01_T1"]["bsa_m2"]) == pytest.approx(0.007184 * w**0.425 * h**0.725)
    assert float(rows["P01_T1"]["volume_per_bsa_mm3_m2"]) == pytest.approx(
        float(rows["P01_T1"]["volume_mm3"]) / float(rows["P01_T1"]["bsa_m2"]))
    # DICOM second (PatientSize in metres)
    assert rows["P02"]["bsa_source"] == "dicom" and float(rows["P02"]["height_cm"]) == 165.0
    # missing: empty, with the reason, and the case still succeeds
    assert rows["P04"]["status"] == "ok" and rows["P04"]["bsa_m2"] == ""
    assert rows["P04"]["volume_per_bsa_mm3_m2"] == ""
    assert rows["P04"]["bsa_source"].startswith("missing")
    assert rows["P04"]["risk_category"] == rows["P04"]["cac_drs"] == ""  # scope vascular
    # demographics only because the sample config asks for them
    assert (rows["P02"]["patient_age"], rows["P02"]["patient_sex"]) == ("054Y", "F")


def test_columns_are_the_public_interface(demo):
    _, out = demo
    scans = read_csv(out / "scans.csv")
    assert list(scans[0])[:len(names("scans"))] == names("scans")
    assert set(REQUIRED_SCANS) <= set(scans[0])
    assert "timepoint" in scans[0]  # manifest covariates carried unchanged
    assert set(REQUIRED_LESIONS) <= set(read_csv(out / "lesions.csv")[0])


def test_data_dictionary_covers_every_written_column(demo):
    _, out = demo
    dd = read_csv(out / "data_dictionary.csv")
    for table in ("scans", "lesions"):
        written = list(read_csv(out / f"{table}.csv")[0])
        described = [r["name"] for r in dd if r["table"] == table]
        assert sorted(written) == sorted(described)
    assert all(r["type"] and r["meaning"] for r in dd)


def test_run_json_and_case_results(demo):
    _, out = demo
    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == {"cases": 5, "ok": 5, "failed": 0, "lesions": run["counts"]["lesions"],
                             "not_scored": 0, "reused": 0}
    assert len(run["config_sha256"]) == 64
    assert run["config"]["scoring"]["mass_calibration_mg_per_cm3_per_hu"] == 0.8
    assert {"python", "numpy", "pydicom", "SimpleITK", "vascalc"} <= set(run["versions"])
    stored = json.loads((out / "cases" / "P03" / "result.json").read_text())
    # the measured record is stored, the rows are derived from it
    assert stored["outcome"]["kind"] == "scored" and "scan" not in stored
    assert stored["outcome"]["record"]["meta"]["patient_id"] == ""  # no identity kept
    res = read_result(out / "cases" / "P03" / "result.json")
    assert res["scan"]["case_id"] == "P03" and res["lesions"]


def test_folder_input_derives_safe_case_ids_and_hashes_patient_ids(sample_data, tmp_path,
                                                                   monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("privacy:\n  patient_id: hash\n")
    res = invoke("run", sample_data, "--out", tmp_path / "o", "-c", cfg)
    assert res.exit_code == 2 and "secret key" in res.output  # never a public salt
    monkeypatch.setenv("VASCALC_HASH_SALT", "a-study-secret-of-32-characters!")
    res = invoke("run", sample_data, "--out", tmp_path / "o", "-c", cfg)
    assert res.exit_code == 0, res.output
    assert "a-study-secret" not in (tmp_path / "o" / "run.json").read_text()
    rows = read_csv(tmp_path / "o" / "scans.csv")
    assert sorted(r["case_id"] for r in rows) == [
        "P01_T1_dicom", "P01_T2_dicom", "P02_dicom", "P03_dicom", "P04_dicom"]
    ids = {r["case_id"]: r["patient_id"] for r in rows}
    assert ids["P01_T1_dicom"] == ids["P01_T2_dicom"] != ids["P02_dicom"]  # joinable
    for r in rows:
        assert r["patient_id"].startswith("p-") and "PHANTOM" not in r["patient_id"]
        assert r["mass_mg"] == "" and r["mass_status"] == "uncalibrated"
        assert "mass_uncalibrated" in r["quality_flags"]
        assert r["patient_age"] == "" and r["patient_sex"] == ""  # not asked for
    assert "PHANTOM" not in (tmp_path / "o" / "vascalc.log").read_text()


def test_a_failed_case_is_a_row_and_the_others_are_written(sample_data, tmp_path):
    tree = tmp_path / "in"
    shutil.copytree(sample_data / "P03" / "dicom", tree / "good")
    shutil.copytree(sample_data / "P04" / "dicom", tree / "bad")
    import pydicom

    victim = sorted((tree / "bad").iterdir())[0]
    ds = pydicom.dcmread(victim)
    del ds.RescaleIntercept
    ds.save_as(victim)
    res = invoke("run", tree, "--out", tmp_path / "o")
    assert res.exit_code == 1
    rows = {r["case_id"]: r for r in read_csv(tmp_path / "o" / "scans.csv")}
    assert rows["in_good"]["status"] == "ok"
    bad = rows["in_bad"]
    assert bad["status"] == "failed" and bad["error_code"] == "MISSING_RESCALE"
    assert victim.name in bad["error"] and "RescaleIntercept" in bad["error"]
    for col in ("agatston", "volume_mm3", "mass_mg", "n_lesions", "bsa_m2", "risk_category"):
        assert bad[col] == "", col
    assert bad["config_sha256"] and bad["threshold_hu"] == "130.0"


def test_usage_errors_exit_2(tmp_path):
    assert invoke("run", tmp_path / "nowhere", "--out", tmp_path / "o").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("run", empty, "--out", tmp_path / "o").exit_code == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  threshold: 100\n")
    res = invoke("run", empty, "--out", tmp_path / "o", "--config", cfg)
    assert res.exit_code == 2 and "threshold_hu" in res.output
    assert not (tmp_path / "o" / "scans.csv").exists()


@pytest.mark.parametrize("content,match", [
    ("case_id,path,height_cm\nA,x,1.72\n", "metres"),
    ("case_id,path\nA,x\nA,y\n", "already used"),
    ("case_id,path\n../../x,x\n", "safe name"),
    ("case_id,path,weight_kg\nA,x,0\n", "weight_kg=0"),
    ("id,where\nA,x\n", "missing column"),
])
def test_manifest_validation(tmp_path, content, match):
    m = tmp_path / "m.csv"
    m.write_text(content)
    res = invoke("run", m, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert match in res.output


def test_manifest_missing_path_is_a_failed_row(sample_data, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,path\nA,{sample_data / 'P04' / 'dicom'}\nB,does/not/exist\n")
    res = invoke("run", m, "--out", tmp_path / "o")
    assert res.exit_code == 1
    rows = {r["case_id"]: r for r in read_csv(tmp_path / "o" / "scans.csv")}
    assert rows["A"]["status"] == "ok"
    assert rows["B"]["error_code"] == "INPUT_INVALID" and "does/not/exist" in rows["B"]["error"]


def test_version():
    res = invoke("--version")
    assert res.exit_code == 0 and res.output.startswith("vascalc ")
