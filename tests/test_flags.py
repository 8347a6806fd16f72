"""The quality-flag registry is the whole vocabulary of the quality_flags column."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from vascalc.flags import QUALITY_FLAGS, check, describe, lookup
from vascalc.outputs.report import flag_text

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pipeline" / "vascalc"


def test_every_flag_in_the_golden_tables_is_registered():
    seen = set()
    for table in (ROOT / "tests" / "golden").glob("*/scans.csv"):
        with open(table, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                seen.update(f for f in row["quality_flags"].split(";") if f)
    assert seen, "the golden tables carry no flag: the check would hold vacuously"
    assert [f for f in sorted(seen) if lookup(f) is None] == []


def test_every_registered_flag_is_emitted_where_the_registry_says():
    for flag in QUALITY_FLAGS.values():
        sources = [PKG.joinpath(*m.strip().split(".")).with_suffix(".py")
                   for m in flag.emitted_by.split(",")]
        quoted = (f'"{flag.code}"', f'"{flag.code}:')
        assert any(q in s.read_text() for s in sources for q in quoted), flag.code


def test_unregistered_flags_are_refused_and_the_report_reads_the_registry():
    with pytest.raises(ValueError, match="'made_up' is not registered"):
        check(("gantry_tilt", "made_up"))
    with pytest.raises(ValueError, match="not registered"):
        check(("contrast_filled",))  # a family needs its region
    assert flag_text("contrast_filled:aorta") == describe("contrast_filled:aorta")
    assert "aorta" in flag_text("contrast_filled:aorta")
    assert flag_text("gantry_tilt") == QUALITY_FLAGS["gantry_tilt"].meaning


def test_console_warns_beside_a_bone_or_contrast_headline():
    from vascalc.results.wording import headline_warning

    assert headline_warning("") == "" and headline_warning("gantry_tilt;mass_uncalibrated") == ""
    assert describe("bone_dominated") in headline_warning("gantry_tilt;bone_dominated")
    text = headline_warning("contrast_enhanced;contrast_filled:aorta;contrast_filled:iliac")
    assert "lumen of aorta" in text and "lumen of iliac" in text
    assert describe("contrast_enhanced") in text
    assert {f.code for f in QUALITY_FLAGS.values() if f.warns_headline} == {
        "bone_dominated", "contrast_filled", "contrast_enhanced", "fov_cuts",
        "slice_thickness_off_protocol", "slice_increment_off_protocol", "review_incomplete",
        "regions_partial_coverage", "regions_misaligned", "contrast_phase_disagrees"}


def test_console_line_names_what_the_number_is():
    from vascalc.results.wording import headline_text

    row = {"score_label": "whole_volume Agatston at 130 HU", "agatston": 48.0,
           "volume_mm3": 30.0, "mass_mg": None, "n_lesions": 3, "withheld_reason": "",
           "agatston_comparable": False, "quality_flags": "",
           "protocol_deviations": "kvp_not_120;slice_thickness_off_protocol"}
    text = headline_text(row)
    assert text.startswith("whole_volume Agatston at 130 HU 48.0")
    assert "not comparable" in text and "kvp_not_120, slice_thickness_off_protocol" in text
    withheld = headline_text({**row, "agatston": None, "withheld_reason": "x",
                              "score_label": "vascular score withheld"})
    assert withheld.startswith("vascular score withheld (x)") and "48" not in withheld
