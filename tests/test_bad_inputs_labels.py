"""The bad-input corpus, label names (#35 item 11): a name a human means as a coronary artery
('LCx', 'LAD ', 'lad') takes the known spelling wherever it comes from (a mask file name, a
label-table entry, a reader's label), and a name close to a known one but not it ('LADD',
'RCA1') is refused with the suggestion; the coronary score never halves silently."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.review import ReviewLabel
from vascalc.config.schema import Config
from vascalc.errors import RegionError
from vascalc.records import CTVolume


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def two_arteries() -> tuple[CTVolume, np.ndarray, np.ndarray]:
    """Two 2x2-pixel plaques of 250 HU on 4 slices (0.5 mm pixels: 1 mm^2 per slice, weight 2,
    3 mm increment: Agatston 4 x 1 x 2 = 8 each), one in each of two artery masks."""
    hu = np.full((4, 24, 24), 40, dtype=np.int16)
    hu[:, 0, :] = -1000
    hu[:, 4:6, 4:6] = 250
    hu[:, 16:18, 16:18] = 250
    a = np.zeros(hu.shape, dtype=bool)
    a[:, 3:7, 3:7] = True
    b = np.zeros(hu.shape, dtype=bool)
    b[:, 15:19, 15:19] = True
    return CTVolume(hu=hu, spacing_mm=(3.0, 0.5, 0.5)), a, b


CORONARY = Config(scoring={"scope": "coronary"})


@pytest.mark.parametrize("spelling", ["LCx", "lcx", "LCX ", " Lcx"])
def test_a_coronary_name_in_another_case_or_with_spaces_counts_as_coronary(spelling):
    vol, a, b = two_arteries()
    r = analyse(vol, CORONARY, case_id="s", regions=[("LAD", a), (spelling, b)])
    assert r.coronary.agatston == pytest.approx(16.0)  # both arteries: 8 + 8, never 8
    assert {x.region for x in r.regions} >= {"LAD", "LCX"}
    assert r.cac_drs_vessels == "N2"


@pytest.mark.parametrize("name, suggestion", [("LADD", "LAD"), ("RCA1", "RCA"),
                                              ("LMCA", "LM"), ("lad_prox", "LAD"),
                                              ("aotra", "aorta")])
def test_a_name_close_to_a_known_one_is_refused_with_the_suggestion(name, suggestion):
    vol, a, b = two_arteries()
    with pytest.raises(RegionError) as exc:
        analyse(vol, CORONARY, case_id="s", regions=[("LAD" if name != "lad_prox" else "RCA", a),
                                                     (name, b)])
    assert f"{name!r}" in str(exc.value) and f"known name {suggestion!r}" in str(exc.value)
    assert exc.value.code == "REGION_INVALID"


@pytest.mark.parametrize("name", ["LV", "RA", "LAA", "heart", "liver", "atrial_appendage_left",
                                  "pulmonary_vein", "kidney_left"])
def test_other_structures_near_a_short_coronary_name_are_not_refused(name):
    vol, a, b = two_arteries()
    r = analyse(vol, CORONARY, case_id="s", regions=[("LAD", a), (name, b)])
    assert r.coronary.agatston == pytest.approx(8.0)
    assert name in {x.region for x in r.regions}


def test_a_pattern_in_the_config_accepts_any_spelling():
    """The config is the way to keep a name the matcher would refuse: a segment named
    'LAD_prox' counts as coronary once a pattern names it (vascular and coronary)."""
    vol, a, b = two_arteries()
    cfg = Config(scoring={"scope": "coronary"},
                 regions={"coronary": ["LM", "LAD", "LCX", "RCA", "LAD_*"],
                          "vascular": ["aorta", "LM", "LAD", "LCX", "RCA", "LAD_*"]})
    r = analyse(vol, cfg, case_id="s", regions=[("RCA", a), ("LAD_prox", b)])
    assert r.coronary.agatston == pytest.approx(16.0)


def test_lad_and_its_lower_case_spelling_together_are_one_name_given_twice():
    vol, a, b = two_arteries()
    with pytest.raises(RegionError, match="two regions are named 'LAD'"):
        analyse(vol, CORONARY, case_id="s", regions=[("LAD", a), ("lad", b)])


# --- through the command: mask file names and label tables ----------------------------------

def _run(tmp_path: Path, series: Path, regions: Path, name: str) -> dict[str, str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  scope: coronary\n")
    res = CliRunner().invoke(app, ["run", str(series), "--regions", str(regions), "--out",
                                   str(tmp_path / name), "-c", str(cfg), "-j", "1", "-q"],
                             catch_exceptions=False)
    assert res.exit_code in (0, 1), res.output
    return rows(tmp_path / name / "scans.csv")[0]


def test_mask_file_names_and_label_tables_take_the_known_spelling(sample_data, tmp_path):
    """#35 item 11: 'lad' or 'LAD ' in a mask file name or a label table gave class other."""
    src = sample_data / "P01_T1"
    truth = _run(tmp_path, src / "dicom", src / "regions", "truth")
    assert truth["status"] == "ok" and float(truth["agatston"]) > 0
    folder = tmp_path / "masks"
    folder.mkdir()
    shutil.copy(src / "regions" / "LAD.nii.gz", folder / "lad.nii.gz")
    shutil.copy(src / "regions" / "aorta.nii.gz", folder / "Aorta.nii.gz")
    by_file = _run(tmp_path, src / "dicom", folder, "by_file")
    lad = nib.load(src / "regions" / "LAD.nii.gz")
    labels = tmp_path / "map" / "labels.nii.gz"
    labels.parent.mkdir()
    nib.save(nib.Nifti1Image(np.asarray(lad.dataobj).astype(np.uint8), lad.affine), labels)
    (labels.parent / "labels.json").write_text(json.dumps({"1": "LAD "}))
    by_table = _run(tmp_path, src / "dicom", labels, "by_table")
    for row in (by_file, by_table):
        assert row["status"] == "ok", row["error"]
        assert (row["scope"], row["scope_regions"]) == ("coronary", "LAD")
        assert float(row["agatston"]) == pytest.approx(float(truth["agatston"]))
        assert row["risk_category"] == truth["risk_category"]


@pytest.mark.parametrize("where", ["file", "table"])
def test_a_near_miss_in_a_mask_file_or_label_table_fails_the_case_by_name(sample_data, tmp_path,
                                                                         where):
    src = sample_data / "P01_T1"
    if where == "file":
        regions = tmp_path / "masks"
        regions.mkdir()
        shutil.copy(src / "regions" / "LAD.nii.gz", regions / "LADD.nii.gz")
    else:
        lad = nib.load(src / "regions" / "LAD.nii.gz")
        regions = tmp_path / "map" / "labels.nii.gz"
        regions.parent.mkdir()
        nib.save(nib.Nifti1Image(np.asarray(lad.dataobj).astype(np.uint8), lad.affine), regions)
        (regions.parent / "labels.json").write_text(json.dumps({"1": "LADD"}))
    row = _run(tmp_path, src / "dicom", regions, "o")
    assert (row["status"], row["error_code"], row["agatston"]) == ("failed", "REGION_INVALID", "")
    assert "'LADD' is close to the known name 'LAD'" in row["error"]


# --- a reader's labels ----------------------------------------------------------------------

def _label(name: str, cls: str) -> ReviewLabel:
    return ReviewLabel.model_validate({"name": name, "class": cls, "key": "x",
                                       "colour": "#000000"})


@pytest.mark.parametrize("spelling", ["lad", "Lad", "LAD"])
def test_a_reader_label_takes_the_vessel_spelling(spelling):
    assert _label(spelling, "coronary").name == "LAD"


@pytest.mark.parametrize("name", ["LADD", "RCA1", "lcx2"])
def test_a_reader_label_close_to_a_vessel_but_not_coronary_is_refused(name):
    with pytest.raises(ValueError, match="close to the coronary vessel"):
        _label(name, "other")
    assert _label(name, "coronary").name == name  # a coronary segment the config names


def test_the_configs_own_spelling_wins():
    """A config that spells its coronary names in lower case: 'LAD' takes the config's 'lad'
    (the spelling its patterns match), not the default vessel spelling."""
    vol, a, b = two_arteries()
    cfg = Config(scoring={"scope": "coronary"},
                 regions={"coronary": ["lad", "lcx"], "vascular": ["aorta", "lad", "lcx"]})
    r = analyse(vol, cfg, case_id="s", regions=[("LAD", a), ("Lcx", b)])
    assert r.coronary.agatston == pytest.approx(16.0)
    assert {x.region for x in r.regions} >= {"lad", "lcx"}
