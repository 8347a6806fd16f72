"""Scopes (README, 'Scopes'): the headline covers exactly what was asked, never bone or
calcium outside the vascular regions; risk categories only for coronary calcium."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.core.regions import RegionMask, merge_territories, region_class, union
from vascalc.core.scopes import resolve_scope
from vascalc.errors import ScopeError
from vascalc.io.masks import label_map_regions
from vascalc.records import CTVolume

from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "configs" / "totalsegmentator.yaml"
RC = Config().regions


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run(*args) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["run", *[str(a) for a in args], "-j", "1", "-q"],
                             catch_exceptions=False)
    return res.exit_code, res.output


@pytest.mark.parametrize("requested, classes, fov, expected", [
    ("auto", {}, False, ("whole_volume", ())),
    ("auto", {}, True, ("coronary", ())),
    ("auto", {"LAD": "coronary", "RCA": "coronary", "spine": "bone"}, False,
     ("coronary", ("LAD", "RCA"))),
    ("auto", {"aorta": "vascular", "LAD": "coronary", "liver": "other"}, False,
     ("vascular", ("aorta", "LAD"))),
    ("auto", {"liver": "other", "vertebrae_L1": "bone"}, False, ("whole_volume", ())),
    ("vascular", {"aorta": "vascular", "LAD": "coronary"}, False, ("vascular", ("aorta", "LAD"))),
    ("coronary", {"aorta": "vascular", "LAD": "coronary"}, False, ("coronary", ("LAD",))),
    ("coronary", {}, True, ("coronary", ())),
    ("whole_volume", {"aorta": "vascular"}, False, ("whole_volume", ())),
    ("bone_excluded", {"aorta": "vascular"}, False, ("bone_excluded", ())),
])
def test_scope_resolution(requested, classes, fov, expected):
    assert resolve_scope(requested, classes, fov_is_coronary=fov,
                         has_regions=bool(classes)) == expected


@pytest.mark.parametrize("requested, classes, why", [
    ("vascular", {}, "the case has no region masks"),
    ("vascular", {"liver": "other", "rib_left_1": "bone"}, "liver, rib_left_1"),
    ("coronary", {"aorta": "vascular"}, "matches regions.coronary"),
])
def test_a_scope_the_case_cannot_give_is_refused_by_name(requested, classes, why):
    with pytest.raises(ScopeError, match=why) as err:
        resolve_scope(requested, classes, fov_is_coronary=False, has_regions=bool(classes))
    assert err.value.code == "SCOPE_UNRESOLVED"


def test_region_classes_of_totalsegmentator_names():
    cls = {n: region_class(n, coronary=RC.coronary, vascular=RC.vascular, bone=RC.bone)
           for n in ("aorta", "aorta_thoracic", "LAD", "iliac_artery_left", "vertebrae_T12",
                     "rib_left_3", "costal_cartilages", "liver", "small_bowel",
                     "brachiocephalic_trunk", "cardiac")}
    assert cls == {"aorta": "vascular", "aorta_thoracic": "vascular", "LAD": "coronary",
                   "iliac_artery_left": "vascular", "vertebrae_T12": "bone",
                   "rib_left_3": "bone", "costal_cartilages": "bone", "liver": "other",
                   "small_bowel": "other", "brachiocephalic_trunk": "vascular",
                   "cardiac": "vascular"}


def _box(shape, sl) -> RegionMask:
    m = np.zeros(shape, bool)
    m[sl] = True
    return RegionMask.from_array(m)


def test_territories_merge_masks_by_first_matching_pattern():
    shape = (4, 10, 10)
    a, b = _box(shape, np.s_[0, 0:2, 0:2]), _box(shape, np.s_[3, 7:9, 6:10])
    c, d = _box(shape, np.s_[1, 5, 5]), _box(shape, np.s_[2, 0:0, 0:0])
    merged = dict(merge_territories(
        [("iliac_artery_left", a), ("iliac_artery_right", b), ("liver", c), ("aorta", d)],
        {"iliac": ["iliac_artery_*"], "other": ["liver", "*"]}))
    assert list(merged) == ["iliac", "other"]  # aorta matched '*' too: it joined 'other'
    np.testing.assert_array_equal(merged["iliac"].full(), a.full() | b.full())
    np.testing.assert_array_equal(merged["other"].full(), c.full() | d.full())
    np.testing.assert_array_equal(union([a, b, c]).full(), a.full() | b.full() | c.full())
    # names no territory matches keep their own name
    assert [n for n, _ in merge_territories([("x", a)], {"iliac": ["iliac_*"]})] == ["x"]


def test_label_map_masks_equal_one_comparison_per_label():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, size=(5, 12, 13)).astype(np.uint8)
    labels[labels == 4] = 0  # a label of the table absent from the map
    table = {1: "a", 2: "b", 3: "c", 4: "absent", 5: "e"}
    got = dict(label_map_regions(labels, table))
    for value, name in table.items():
        np.testing.assert_array_equal(got[name].full(), labels == value)


def test_headline_sums_the_scope_and_risk_needs_coronary_calcium():
    hu = np.full((2, 20, 20), 20, dtype=np.int16)
    hu[:, 1:4, 1:4] = 450  # in the aorta
    hu[:, 10:12, 10:12] = 250  # in the LAD
    hu[:, 15:19, 15:19] = 700  # in a vertebra
    vol = CTVolume(hu=hu, spacing_mm=(3.0, 0.5, 0.5))
    masks = [("aorta", _box(hu.shape, np.s_[:, 0:5, 0:5])),
             ("LAD", _box(hu.shape, np.s_[:, 9:13, 9:13])),
             ("vertebrae_L1", _box(hu.shape, np.s_[:, 14:20, 14:20]))]
    r = analyse(vol, Config(), case_id="s", regions=masks)
    reg = {x.region: x for x in r.regions}
    assert r.scope == "vascular" and set(r.scope_regions) == {"aorta", "LAD"}
    assert r.headline.agatston == pytest.approx(reg["aorta"].agatston + reg["LAD"].agatston)
    assert r.headline.volume_mm3 == pytest.approx(reg["aorta"].volume_mm3 + reg["LAD"].volume_mm3)
    assert r.headline.n_lesions == 2 and r.coronary.agatston == reg["LAD"].agatston
    assert r.whole.agatston == pytest.approx(r.headline.agatston + reg["vertebrae_L1"].agatston)
    assert r.risk_category == r.cac_drs == "" and "coronary calcium only" in r.risk_basis
    c = analyse(vol, Config(scoring={"scope": "coronary"}), case_id="s", regions=masks)
    assert c.headline.agatston == reg["LAD"].agatston == pytest.approx(2 * 4 * 0.25 * 2)
    assert (c.risk_category, c.cac_drs, c.cac_drs_vessels) == ("1 to 10", "A1", "N1")
    assert c.risk_basis == "coronary regions: LAD"
    w = analyse(vol, Config(scoring={"scope": "whole_volume"}), case_id="s", regions=masks)
    assert w.headline.agatston == w.whole.agatston and "bone_dominated" in w.quality_flags


def test_vascular_scope_without_regions_fails_that_case_only(sample_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  scope: vascular\n")
    code, out = run(sample_data / "P04" / "dicom", "--out", tmp_path / "o", "-c", cfg)
    assert code == 1
    row = rows(tmp_path / "o" / "scans.csv")[0]
    assert row["error_code"] == "SCOPE_UNRESOLVED" and row["agatston"] == ""
    assert "the case has no region masks" in row["error"]


def test_coronary_scope_report_and_sr_carry_the_coronary_score(sample_data, tmp_path):
    import highdicom as hd

    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  scope: coronary\nreport:\n  enabled: true\n  pdf: false\n")
    code, out = run(sample_data / "P01_T1" / "dicom", "--regions",
                    sample_data / "P01_T1" / "regions", "--out", tmp_path / "o", "-c", cfg)
    assert code == 0, out
    row = rows(tmp_path / "o" / "scans.csv")[0]
    assert (row["scope"], row["scope_regions"], row["risk_category"], row["cac_drs_vessels"]) == (
        "coronary", "LAD", "11 to 100", "N1")
    case = next((tmp_path / "o" / "cases").iterdir())
    sr = hd.sr.srread(case / "scores.sr.dcm")
    nums = {}

    def walk(items):
        for it in items:
            if it.ValueType == "NUM":
                nums[it.ConceptNameCodeSequence[0].CodeValue] = float(
                    it.MeasuredValueSequence[0].NumericValue)
            walk(it.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert nums["450360000"] == pytest.approx(float(row["agatston"]))
    html = (case / "report.html").read_text()
    assert "Coronary artery calcium: Agatston score" in html and "Risk category 11 to 100" in html


# --- real CT and TotalSegmentator's own outputs (../shared/data) ---------------------------

def scored_with_profile(ct: Path, seg: Path, out: Path, config: Path = PROFILE):
    """Score ``ct`` with the regions ``seg`` through a profile: its scan row and region rows."""
    code, text = run(ct, "--regions", seg, "--out", out, "-c", config)
    assert code == 0, text
    return rows(out / "scans.csv")[0], {r["region"]: r for r in rows(out / "regions.csv")}


@pytest.mark.shared_data
def test_siemens_body_ct_with_totalsegmentator_labels_headlines_no_bone(tmp_path):
    """The profile (phase_threshold) on the contrast CT: the headline sums the vascular
    territories above the venous threshold, never a voxel of bone, organ or lumen; the
    default (withhold) gives no vascular number at all, with the reason."""
    ct = shared_path("totalsegmentator_example", "example_ct_dicom")
    seg = shared_path("totalsegmentator_example", "example_seg_dicom.nii.gz")
    scan, regs = scored_with_profile(ct, seg, tmp_path / "o")
    assert scan["scope"] == "vascular" and scan["region_source"] == "label_map:totalsegmentator_v2"
    summed = scan["scope_regions"].split(";")
    assert summed and all(regs[n]["region_class"] == "vascular" for n in summed)
    vascular = [r for r in regs.values() if r["region_class"] == "vascular"]
    assert float(scan["agatston"]) == pytest.approx(sum(float(r["agatston"]) for r in vascular))
    assert float(scan["volume_mm3"]) == pytest.approx(sum(float(r["volume_mm3"]) for r in vascular))
    # the aorta's lumen is contrast-filled (median above 100 HU) and venous by its HU: its
    # calcium is found at 300 HU, above the lumen median + 3 spreads
    assert float(regs["aorta"]["lumen_median_hu"]) > 100
    assert regs["aorta"]["threshold_rule"] == "phase_threshold:venous"
    assert float(regs["aorta"]["threshold_hu"]) == float(scan["headline_threshold_hu"]) == 300.0
    assert scan["contrast_phase"] == "venous" and scan["contrast_phase_source"] == "lumen_hu"
    # bone keeps its calcium at 130 HU, apart from the headline; organs, 'outside' and the
    # all-calcium total are withheld (at 130 HU they count enhanced tissue)
    bone = [r for r in regs.values() if r["region_class"] == "bone"]
    assert bone and all(float(r["threshold_hu"]) == 130.0 and float(r["volume_mm3"]) > 0
                        for r in bone)
    assert not [r for r in regs.values() if r["region_class"] == "whole"]  # a partition
    for cls in ("other", "outside"):
        held = [r for r in regs.values() if r["region_class"] == cls]
        assert held and all(r["withheld_reason"] and r["agatston"] == "" for r in held), cls
    assert scan["all_calcium_agatston"] == ""
    flags = scan["quality_flags"].split(";")
    assert "contrast_filled:aorta" in flags and "contrast_enhanced" in flags
    assert scan["agatston_comparable"] == "false"
    assert "contrast_enhanced" in scan["protocol_deviations"].split(";")
    assert scan["risk_category"] == scan["cac_drs"] == ""
    # the default config withholds the contrast-filled territories: no number, the reason
    cfg = tmp_path / "withhold.yaml"
    cfg.write_text(PROFILE.read_text().replace("contrast: phase_threshold", "contrast: withhold"))
    held, hregs = scored_with_profile(ct, seg, tmp_path / "w", cfg)
    assert held["agatston"] == held["volume_mm3"] == "" and held["scope"] == "vascular"
    assert "aorta: contrast-filled lumen" in held["withheld_reason"]
    assert hregs["aorta"]["agatston"] == "" and hregs["aorta"]["withheld_reason"]


@pytest.mark.shared_data
def test_bone_heuristic_limits_as_the_readme_states(tmp_path):
    """README, 'Scopes': against TotalSegmentator's bone classes the heuristic leaves 43 % of
    the bone calcium (55,962 of 130,575 mm3) and removes 69 % of the aorta's. Measured at
    130 HU in bone and at the profile's venous 300 HU in the contrast-filled aorta."""
    ct = shared_path("totalsegmentator_example", "example_ct_dicom")
    seg = shared_path("totalsegmentator_example", "example_seg_dicom.nii.gz")
    cfg = tmp_path / "bone.yaml"
    cfg.write_text(PROFILE.read_text().replace("scope: vascular", "scope: bone_excluded"))
    vol = {}
    for name, c in (("all", PROFILE), ("heuristic", cfg)):
        _, regs = scored_with_profile(ct, seg, tmp_path / name, c)
        vol[name] = {k: float(r["volume_mm3"]) for k, r in regs.items() if r["volume_mm3"]}
    assert round(vol["all"]["bone"]) == 130575 and round(vol["heuristic"]["bone"]) == 55962
    removed = 1 - vol["heuristic"]["aorta"] / vol["all"]["aorta"]
    assert removed == pytest.approx(0.69, abs=0.005)
    assert "bone_heuristic" in rows(tmp_path / "heuristic" / "scans.csv")[0]["quality_flags"]


@pytest.mark.shared_data
def test_totalsegmentator_mask_folder_as_it_comes(tmp_path):
    ct = shared_path("totalsegmentator_example", "example_ct_sm.nii.gz")
    seg = shared_path("totalsegmentator_example", "example_seg_fast")
    scan, regs = scored_with_profile(ct, seg, tmp_path / "o")
    assert scan["region_source"] == "nifti_masks"
    assert {"bone", "iliac", "cardiac"} <= set(regs)
    assert regs["bone"]["region_class"] == "bone" and "bone" not in scan["scope_regions"]
    assert float(scan["agatston"]) == pytest.approx(sum(
        float(r["agatston"]) for r in regs.values() if r["region_class"] == "vascular"))
