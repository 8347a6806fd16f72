"""One set of series rules for the DICOM node and vascalc run: a head CT, a thin slab, a
contrast series, another body part are refused by name, a calcium-scoring chest CT is not."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.listen import SeriesRules
from vascalc.run.eligibility import SeriesFacts, contrast_recorded, refusal

from tests.dicom_copy import HEAD_CT, copy_as_new_study

CASCORE = SeriesFacts(
    series_uid="1.2.3", description="CaScore 3.0 Qr36", study_description="CT CARDIAC",
    protocol_name="", body_part="", sop_class="1.2.840.10008.5.1.4.1.1.2", n_images=48,
    coverage_mm=141.0, thickness_mm=3.0, contrast_agent="", kernel="Qr36",
    manufacturer="SIEMENS", kvp=120.0, axial=True, problem="")


@pytest.mark.parametrize("change, words", [
    ({}, ""),
    ({"body_part": "CHEST"}, ""),
    ({"description": "STD BRAIN 5MM", "study_description": "TRAUMA/PLAIN HEAD"}, "body part"),
    ({"description": "Axial 3mm", "study_description": "CT C-SPINE"}, "body part"),
    ({"body_part": "HEAD", "description": "Axial 3mm", "study_description": ""}, "HEAD"),
    ({"body_part": "", "description": "Axial 3mm", "study_description": ""}, "no BodyPartExamined"),
    ({"n_images": 6}, "fewer than 10"),
    ({"coverage_mm": 12.0}, "covers 12 mm"),
    ({"coverage_mm": None}, "covers unknown"),
    ({"contrast_agent": "Omnipaque 350"}, "contrast agent"),
    ({"sop_class": "1.2.840.10008.5.1.4.1.1.7"}, "SOP class"),
    ({"axial": False}, "not axial"),
])
def test_the_default_rules_score_only_calcium_scoring_chest_ct(change, words):
    why = refusal(replace(CASCORE, **change), SeriesRules())
    assert (why == "") if not words else (words in why), why


@pytest.mark.parametrize("agent, given", [
    ("", False), ("NONE", False), ("NONE GIVEN", False), ("No contrast", False), ("nil", False),
    ("-", False), ("N/A", False), ("without contrast", False), ("Omnipaque 350", True),
    ("IOPAMIDOL", True), ("Visipaque", True), ("ORAL", False)])
def test_contrast_agent_spellings(agent, given):
    assert contrast_recorded(agent) is given


def test_vascalc_run_applies_the_same_rules_when_asked(sample_data, tmp_path):
    """selection.rules: a folder holding the phantom twice, once as a head CT: the head CT is
    listed in discovery.csv with the node's reason, the other is scored."""
    copy_as_new_study(sample_data / "P03" / "dicom", tmp_path / "tree" / "HEAD" / "dicom",
                      **HEAD_CT)
    chest = tmp_path / "tree" / "CHEST" / "dicom"
    chest.parent.mkdir(parents=True)
    Path(chest).symlink_to(sample_data / "P03" / "dicom")
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("selection: {rules: {}}\n")
    res = CliRunner().invoke(app, ["run", str(tmp_path / "tree"), "--out", str(tmp_path / "o"),
                                   "-c", str(cfg), "-j", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o" / "scans.csv", newline="") as fh:
        assert [r["case_id"] for r in csv.DictReader(fh)] == ["CHEST_dicom"]
    with open(tmp_path / "o" / "discovery.csv", newline="") as fh:
        notes = [r for r in csv.DictReader(fh) if "HEAD" in r["path"]]
    assert notes and all("STD BRAIN 5MM" in r["reason"] for r in notes)
