"""Progression and cohort summary: hand-computed values, on the sample phantoms too."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.cohort.progression import pair_rows
from vascalc.cohort.summary import baseline, scans_frame, summary_json, summary_table

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def read(path):
    return list(csv.DictReader(Path(path).read_text().splitlines()))


def row(cid, pid, date, volume, agatston=None, **kw):
    r = {"case_id": cid, "patient_id": pid, "study_date": date, "status": "ok",
         "volume_mm3": str(volume), "agatston": str(agatston if agatston is not None else volume),
         "mass_mg": "", "volume_per_bsa_mm3_m2": "", "kvp": "120", "kernel": "B30f",
         "slice_thickness_mm": "3", "slice_increment_mm": "3", "threshold_hu": "130",
         "min_lesion_area_mm2": "1", "config_sha256": "x"}
    r.update(kw)
    return r


def test_pairs_in_date_order_with_hand_values():
    rows = [row("c", "P", "2022-01-01", 200.0), row("a", "P", "2020-01-01", 100.0),
            row("b", "P", "2021-01-01", 100.0)]
    pairs, notes = pair_rows(rows)
    assert notes == [] and [(p["case_id_1"], p["case_id_2"]) for p in pairs] == [("a", "b"),
                                                                               ("b", "c")]
    p = pairs[1]
    years = 365 / 365.25
    assert p["interval_days"] == 365 and p["interval_years"] == pytest.approx(years)
    assert p["volume_mm3_change"] == 100.0
    assert p["volume_mm3_change_per_year"] == pytest.approx(100.0 / years)
    assert p["volume_mm3_relative_change"] == pytest.approx(1.0)
    assert p["sqrt_volume_difference"] == pytest.approx(math.sqrt(200) - 10)
    assert p["progression_hokanson"] is True  # 4.14 >= 2.5
    assert p["volume_annual_relative_change"] == pytest.approx(2 ** (1 / years) - 1)
    assert p["progression_raggi"] is True
    assert pairs[0]["progression_hokanson"] is False and pairs[0]["progression_raggi"] is False


@pytest.mark.parametrize("v2,hokanson", [(12.5 ** 2 - 1e-6, False), (12.5 ** 2, True)])
def test_hokanson_threshold_edge(v2, hokanson):
    pairs, _ = pair_rows([row("a", "P", "2020-01-01", 100.0), row("b", "P", "2021-01-01", v2)])
    assert pairs[0]["progression_hokanson"] is hokanson  # sqrt(v2) - 10 vs 2.5


def test_zero_baseline_has_no_relative_change():
    pairs, _ = pair_rows([row("a", "P", "2020-01-01", 0.0), row("b", "P", "2021-01-01", 9.0)])
    p = pairs[0]
    assert p["volume_mm3_relative_change"] is None and p["progression_raggi"] is None
    assert p["sqrt_volume_difference"] == pytest.approx(3.0) and p["progression_hokanson"]


def test_failed_undated_and_single_scans_are_noted_and_parameters_compared():
    rows = [row("a", "P", "2020-01-01", 10.0),
            row("b", "P", "2020-06-01", 12.0, kvp="100", kernel="B45f",
                volume_method="interpolated"),
            dict(row("c", "P", "2021-01-01", 1.0), status="failed"),
            row("d", "Q", "", 5.0), row("e", "R", "2020-01-01", 5.0)]
    pairs, notes = pair_rows(rows)
    assert len(pairs) == 1 and pairs[0]["parameters_differ"] == "kvp;kernel;volume_method"
    assert {n["case_id"]: n["reason"] for n in notes} == {
        "c": "scan failed", "d": "no study_date or scan_date"}


def test_summary_hand_values():
    rows = [row(str(i), f"P{i}", "2020-01-01", v, agatston=a,
                risk_category=rc, cac_drs=d)
            for i, (v, a, rc, d) in enumerate([(0, 0, "0", "A0"), (10, 5, "1 to 10", "A1"),
                                                (20, 50, "11 to 100", "A1"),
                                                (40, 500, ">400", "A3")])]
    rows.append({"case_id": "x", "status": "failed", "agatston": "", "volume_mm3": ""})
    for r in rows[:4]:
        r["scope"] = "coronary"
    rows.append(dict(row("y", "P0", "2021-06-01", 999.0, agatston=7777.0), scope="whole_volume"))
    s = summary_json(summary_table(scans_frame(rows)))["all"]
    assert s["n_scans"] == 6 and s["status"] == {"failed": 1, "ok": 5} and s["n_patients"] == 4
    # scores are never pooled across scopes: the whole-volume scan is a block of its own
    assert set(s["scopes"]) == {"coronary", "whole_volume"}
    c = s["scopes"]["coronary"]
    v = c["scores"]["volume_mm3"]
    assert (v["median"], v["q1"], v["q3"]) == (15.0, 7.5, 25.0)  # type 7 quantiles
    assert c["zero_calcium"] == {"n": 1, "share": 0.25}
    assert c["risk_category"] == {"0": 1, "1 to 10": 1, "11 to 100": 1, "101 to 400": 0, ">400": 1}
    assert c["cac_drs"] == {"A0": 1, "A1": 2, "A2": 0, "A3": 1}
    assert s["scopes"]["whole_volume"]["scores"]["agatston"]["median"] == 7777.0
    g = summary_json(summary_table(scans_frame(rows), "patient_id"))
    assert g["patient_id=P3"]["scopes"]["coronary"]["scores"]["agatston"]["median"] == 500.0
    # baseline only: P0's first scan (2020) stays, its 2021 scan goes
    b = baseline(scans_frame(rows))
    assert sorted(b["case_id"]) == ["0", "1", "2", "3"]
    assert summary_json(summary_table(scans_frame(rows), baseline_only=True))["all"][
        "n_patients"] == 4


@pytest.fixture(scope="module")
def demo_scans(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = invoke("run", sample_data / "manifest.csv", "--out", out, "-c",
                 ROOT / "configs" / "sample_data.yaml", "-j", "1", "-q")
    assert res.exit_code == 0, res.output
    return out / "scans.csv"


def test_progression_on_the_two_timepoint_phantom(demo_scans, sample_truth, tmp_path):
    res = invoke("progression", demo_scans, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    pairs = read(tmp_path / "progression.csv")
    assert len(pairs) == 1
    p = pairs[0]
    # scans.csv headlines the vascular scope (aorta + LAD): the spine is not in it
    v1 = sample_truth["P01_T1"]["vascular_only"]["volume_mm3"]
    v2 = sample_truth["P01_T2"]["vascular_only"]["volume_mm3"]
    days = (dt.date(2025, 1, 20) - dt.date(2024, 1, 15)).days
    assert (p["case_id_1"], p["case_id_2"], int(p["interval_days"])) == ("P01_T1", "P01_T2", days)
    assert float(p["volume_mm3_change"]) == pytest.approx(v2 - v1, rel=1e-9)
    assert float(p["volume_mm3_change_per_year"]) == pytest.approx((v2 - v1) / (days / 365.25))
    assert float(p["sqrt_volume_difference"]) == pytest.approx(math.sqrt(v2) - math.sqrt(v1))
    assert p["progression_hokanson"] == "true"  # sqrt(720.3) - sqrt(402.8) = 6.8 >= 2.5
    annual = (v2 / v1) ** (365.25 / days) - 1
    assert float(p["volume_annual_relative_change"]) == pytest.approx(annual)
    assert p["progression_raggi"] == "true" and p["parameters_differ"] == ""  # 78 % a year
    a1 = sample_truth["P01_T1"]["vascular_only"]["agatston"]
    a2 = sample_truth["P01_T2"]["vascular_only"]["agatston"]
    assert float(p["agatston_relative_change"]) == pytest.approx((a2 - a1) / a1)
    dd = read(tmp_path / "progression_dictionary.csv")
    assert [r["name"] for r in dd] == list(pairs[0])


def test_summary_on_the_phantoms(demo_scans, sample_truth, tmp_path):
    res = invoke("summary", demo_scans, "--out", tmp_path, "--group", "timepoint")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    ag = sorted(t["vascular_only"]["agatston"] for t in sample_truth.values())
    vascular = s["all"]["scopes"]["vascular"]  # the sample headline: aorta + LAD
    assert list(s["all"]["scopes"]) == ["vascular"]
    assert vascular["scores"]["agatston"]["median"] == pytest.approx(ag[2])
    assert vascular["zero_calcium"] == {"n": 1, "share": 0.2}  # P04
    assert s["all"]["n_patients"] == 4 and s["timepoint=2"]["n_scans"] == 1
    assert "vascular: 5 scan(s)" in res.output
    for png in ("agatston_log_distribution.png", "calc_bsa_by_group.png",
                "progression_per_patient.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read(tmp_path / "summary.csv")[0].keys() == {"group", "scope", "measure", "statistic",
                                                         "value"}
    res = invoke("summary", demo_scans, "--out", tmp_path / "b", "--baseline-only", "--no-figures")
    assert res.exit_code == 0 and "4 scan(s) of 4 patient(s) (baseline only)" in res.output


def test_tables_without_the_needed_columns_are_usage_errors(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("case_id,agatston\nA,1\n")
    assert invoke("progression", t, "--out", tmp_path / "o").exit_code == 2
    assert invoke("summary", t, "--out", tmp_path / "o").exit_code == 2
    assert invoke("summary", tmp_path / "missing.csv", "--out", tmp_path / "o").exit_code == 2


def test_progression_per_region_on_the_two_timepoint_phantom(demo_scans, sample_truth, tmp_path):
    """Without the spine, the aorta's plaques grow clearly: per-region pairing shows it."""
    res = invoke("progression", demo_scans, "--out", tmp_path, "--regions",
                 demo_scans.parent / "regions.csv")
    assert res.exit_code == 0, res.output
    pairs = {p["region"]: p for p in read(tmp_path / "progression_regions.csv")}
    assert {"aorta", "LAD", "vertebrae_T12", "vertebrae_L1", "outside"} == set(pairs)
    for name in ("aorta", "LAD", "vertebrae_T12"):
        v1 = sample_truth["P01_T1"]["regions"][name]["volume_mm3"]
        v2 = sample_truth["P01_T2"]["regions"][name]["volume_mm3"]
        p = pairs[name]
        assert (p["case_id_1"], p["case_id_2"]) == ("P01_T1", "P01_T2")
        assert float(p["volume_mm3_change"]) == pytest.approx(v2 - v1, rel=1e-9, abs=1e-9)
        assert float(p["sqrt_volume_difference"]) == pytest.approx(math.sqrt(v2) - math.sqrt(v1))
    assert pairs["vertebrae_T12"]["progression_hokanson"] == "false"  # the spine does not grow
    assert pairs["aorta"]["progression_hokanson"] == "true"  # sqrt(693.8) - sqrt(391.0) = 6.6
    dd = read(tmp_path / "progression_dictionary.csv")
    assert [r["name"] for r in dd] == list(pairs["aorta"])
