"""Contrast-enhanced scans (README, 'Contrast'): no number counts the contrast-filled lumen.

On the contrast sample data (sample_data.contrast: lumen touching wall plaques, a partial-volume
rim, an enhanced kidney outside every mask) every contrast rule finds exactly the plaques the
truth lists, or withholds the territory with the reason; the default withholds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from vascalc.cli.app import app

RULES = ("phase_threshold", "lumen_adaptive", "lumen_adaptive_comp2comp")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def scored(contrast_data, tmp_path_factory) -> dict[str, dict]:
    """rule -> {'scans': {case: row}, 'regions': {(case, region): row}, 'lesions': [...]}."""
    out = {}
    for rule in (*RULES, "withhold", "refuse"):
        d = tmp_path_factory.mktemp(rule)
        cfg = d / "c.yaml"
        cfg.write_text(yaml.safe_dump({"scoring": {
            "scope": "vascular", "contrast": rule, "mass_calibration_mg_per_cm3_per_hu": 0.8}}))
        res = CliRunner().invoke(app, ["run", str(contrast_data / "manifest.csv"), "--out",
                                       str(d / "o"), "-c", str(cfg), "-j", "1", "--no-report",
                                       "--quiet"], catch_exceptions=False)
        assert res.exit_code == (1 if rule == "refuse" else 0), res.output
        out[rule] = {
            "scans": {r["case_id"]: r for r in _rows(d / "o" / "scans.csv")},
            "regions": {(r["case_id"], r["region"]): r for r in _rows(d / "o" / "regions.csv")},
            "lesions": _rows(d / "o" / "lesions.csv")}
    return out


@pytest.fixture(scope="module")
def truth(contrast_data) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted(contrast_data.glob("*/truth.json"))}


def _applies(rule: str, case: str) -> bool:
    """C03's lumen (850 HU) is too bright for the fixed 900 HU arterial threshold, and
    Comp2Comp's rule puts its threshold above every voxel there."""
    return not (case == "C03_bright" and rule != "lumen_adaptive")


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_finds_the_plaques_and_no_lumen(rule, scored, truth):
    got = scored[rule]
    for case, t in truth.items():
        if not _applies(rule, case):
            continue
        want = t["regions"]["aorta"]
        aorta, scan = got["regions"][(case, "aorta")], got["scans"][case]
        assert float(aorta["agatston"]) == pytest.approx(want["agatston"]), (rule, case)
        assert float(aorta["volume_mm3"]) == pytest.approx(want["volume_mm3"]), (rule, case)
        assert float(aorta["mass_mg"]) == pytest.approx(want["mass_mg"]), (rule, case)
        assert int(aorta["n_lesions"]) == want["n_lesions"] == 4  # the speck under 1 mm2 goes
        # every kept aortic voxel is plaque: its lesions' mean HU is the plaque HU exactly,
        # so not one voxel of lumen (<= lumen + 36 HU) or rim is in them
        plaque_hu = {le["peak_hu"] for le in want["lesions"]}
        pieces = [le for le in got["lesions"] if le["case_id"] == case
                  and le["region"] == "aorta"]
        assert sum(int(le["n_voxels"]) for le in pieces) == sum(
            le["n_voxels"] for le in want["lesions"])
        assert {float(le["mean_hu"]) for le in pieces} == plaque_hu
        # the headline is the aorta, at the rule's threshold, and says so
        assert float(scan["agatston"]) == pytest.approx(want["agatston"])
        assert scan["headline_threshold_rule"].startswith(rule)
        assert float(scan["headline_threshold_hu"]) == float(aorta["threshold_hu"]) > t["lumen_hu"]
        assert scan["agatston_comparable"] == "false" and scan["contrast_rule"] == rule
        assert "contrast_enhanced" in scan["protocol_deviations"].split(";")
        assert scan["risk_category"] == "" and scan["score_label"].startswith(
            "vascular calcium score at ")


def test_phase_threshold_takes_the_phase_from_the_header_or_the_lumen(scored):
    scans = scored["phase_threshold"]["scans"]
    assert (scans["C01_arterial"]["contrast_phase"],
            scans["C01_arterial"]["contrast_phase_source"]) == ("arterial", "lumen_hu")
    assert float(scans["C01_arterial"]["headline_threshold_hu"]) == 900.0  # thoracic aorta
    assert (scans["C02_venous"]["contrast_phase"],
            scans["C02_venous"]["contrast_phase_source"]) == ("venous", "header")
    assert float(scans["C02_venous"]["headline_threshold_hu"]) == 300.0


def test_a_rule_that_cannot_work_withholds_with_the_reason(scored):
    bright = scored["phase_threshold"]["regions"][("C03_bright", "aorta")]
    assert bright["agatston"] == bright["volume_mm3"] == bright["threshold_hu"] == ""
    assert "lumen too bright for phase_threshold:arterial_thoracic at 900 HU" in \
        bright["withheld_reason"]
    blind = scored["lumen_adaptive_comp2comp"]["regions"][("C03_bright", "aorta")]
    assert blind["agatston"] == "" and "above every voxel of the scan" in blind["withheld_reason"]
    scan = scored["phase_threshold"]["scans"]["C03_bright"]
    assert scan["agatston"] == scan["volume_mm3"] == "" and "aorta: lumen too bright" in \
        scan["withheld_reason"] and scan["score_label"] == "vascular score withheld"


def test_the_default_withholds_and_keeps_bone(scored, truth):
    got = scored["withhold"]
    for case, t in truth.items():
        scan = got["scans"][case]
        assert scan["status"] == "ok" and scan["agatston"] == scan["volume_mm3"] == ""
        assert "aorta: contrast-filled lumen; scoring.contrast is withhold" in \
            scan["withheld_reason"]
        assert "contrast_filled:aorta" in scan["quality_flags"].split(";")
        for region in ("aorta", "outside"):
            row = got["regions"][(case, region)]
            assert row["agatston"] == row["volume_mm3"] == "" and row["withheld_reason"], region
        assert (case, "whole") not in got["regions"]  # the rows partition: no total row
        assert scan["all_calcium_agatston"] == scan["all_calcium_volume_mm3"] == ""
        # bone is not contrast-filled: it keeps its calcium at 130 HU
        for v in ("vertebrae_T12", "vertebrae_L1"):
            row = got["regions"][(case, v)]
            assert float(row["volume_mm3"]) == pytest.approx(t["regions"][v]["volume_mm3"])
            assert float(row["threshold_hu"]) == 130.0


def test_the_enhanced_kidney_outside_every_mask_is_never_a_number(scored):
    for rule in (*RULES, "withhold"):
        for (case, region), row in scored[rule]["regions"].items():
            if region in ("outside", "whole"):
                assert row["agatston"] == "" and "contrast-enhanced scan" in \
                    row["withheld_reason"], (rule, case, region)
        assert not [le for le in scored[rule]["lesions"] if le["region"] == "outside"]


def test_refuse_fails_each_case_by_name(scored):
    for case, scan in scored["refuse"]["scans"].items():
        assert scan["status"] == "failed" and scan["error_code"] == "CONTRAST_ENHANCED", case
        assert "contrast" in scan["error"] and scan["agatston"] == ""


def test_report_and_index_say_what_the_number_is(contrast_data, tmp_path):
    """The report never calls a score above a contrast rule 'Agatston', says it is not
    comparable and why, and says why a withheld headline is empty; the index names each
    number and links no report that was not written."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"scoring": {"scope": "vascular",
                                               "contrast": "phase_threshold"},
                                   "report": {"enabled": True, "pdf": False}}))
    res = CliRunner().invoke(app, ["run", str(contrast_data / "manifest.csv"), "--out",
                                   str(tmp_path / "o"), "-c", str(cfg), "-j", "1", "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    c01 = (tmp_path / "o" / "cases" / "C01_arterial" / "report.html").read_text()
    assert ("Vascular calcium, aorta: calcium score at 900 HU (phase_threshold:arterial_thoracic; "
            "not an Agatston score) 129") in c01
    assert "Agatston 129" not in c01 and "Not comparable with the reference" in c01
    assert "900 HU (phase_threshold:arterial_thoracic)" in c01  # the aorta's threshold
    assert "arterial phase (from lumen_hu)" in c01
    c03 = (tmp_path / "o" / "cases" / "C03_bright" / "report.html").read_text()
    assert "Vascular calcium, aorta: withheld (aorta: lumen too bright" in c03
    index = (tmp_path / "o" / "index.html").read_text()
    assert "vascular calcium score at 300 HU (phase_threshold:venous)" in index
    assert "what the score is" in index and "protocol deviations" in index
    from vascalc.outputs.report import index_html

    failed = index_html([{"case_id": "X9", "status": "failed", "error_code": "NOT_DICOM",
                          "error": "x"}])
    assert 'href="cases/X9/report.html"' not in failed and "X9" in failed
