"""The bad-input corpus, identity in names, pages and DICOM objects (#35 items 10, 14): one
patient, one folder; bidi and control characters never reorder a page or name a folder; the
patient and study attributes copied into the SR and SEG fit their VR."""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.outputs.patient_report import patient_folder
from vascalc.values import BIDI_CONTROLS, distinct_name, visible_text

from sample_data.dicom_writer import SeriesSpec, write_series
from tests import dciodvfy


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def series(folder: Path, **spec) -> list[Path]:
    hu = np.full((6, 16, 16), 40.0)
    hu[:, 0, :] = -1000
    hu[2:4, 6:10, 6:10] = 350
    base = dict(pixel_spacing_mm=(0.5, 0.5), increment_mm=3.0, z0_mm=0.0, seed=folder.name)
    base.update(spec)
    return write_series(folder, hu, SeriesSpec(**base), shuffle_names=False)


def config(tmp_path: Path) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text("privacy:\n  patient_id: keep\nreport:\n  enabled: true\n  pdf: false\n")
    return p


def run(inp: Path, out: Path, cfg: Path) -> None:
    res = CliRunner().invoke(app, ["run", str(inp), "--out", str(out), "-c", str(cfg), "-j", "1",
                                   "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


# --- one patient, one folder (#35 item 10) --------------------------------------------------

@pytest.mark.parametrize("ids", [("P 01", "P/01", "P_01"), ("P01", "p01"),
                                 ("NUL", "nul", "NUL_"), ("P_01", "P_01-A058BEF8F0"),
                                 ("p-0123456789abcdef", "P-0123456789ABCDEF")])
def test_patient_folders_are_one_per_patient_ignoring_case(ids):
    """Ids a safe name makes alike, or that differ only in case, or one that mimics another's
    hash suffix, get folders that differ even on a case-insensitive file system."""
    folders = [patient_folder(i) for i in ids]
    assert len({f.casefold() for f in folders}) == len(ids), folders
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in folders)
    assert [patient_folder(i) for i in ids] == folders  # stable: no order, no run state
    # the case report links by the id as the table holds it; the patient pages group ids
    # stripped: one folder either way
    assert [patient_folder(f" {i} ") for i in ids] == folders


def test_plain_and_pseudonymous_ids_keep_their_own_name():
    assert patient_folder("PHANTOM-01") == "PHANTOM-01"
    assert patient_folder("p-0123456789abcdef") == "p-0123456789abcdef"  # privacy: hash


def test_three_patients_a_safe_name_made_one_have_three_reports(tmp_path):
    """#35 item 10: 'P 01', 'P/01' and 'P_01' all became patients/P_01, whose report showed
    one patient while the others' case reports linked to it."""
    ids = {"a": "P 01", "b": "P/01", "c": "P_01"}
    for folder, pid in ids.items():
        series(tmp_path / "in" / folder / "ct", patient_id=pid)
    out = tmp_path / "o"
    run(tmp_path / "in", out, config(tmp_path))
    reports = sorted((out / "patients").iterdir())
    assert len(reports) == 3
    for scan in rows(out / "scans.csv"):
        page = (out / "cases" / scan["case_id"] / "report.html").read_text(encoding="utf-8")
        link = re.search(r'href="(\.\./\.\./patients/[^"]+/report\.html)"', page)
        assert link, scan["case_id"]
        target = (out / "cases" / scan["case_id"] / link.group(1)).resolve()
        patient_page = target.read_text(encoding="utf-8")
        # the page it links to is its own patient's, and names no other patient
        assert scan["patient_id"] in patient_page
        others = [p for p in ids.values() if p != scan["patient_id"]]
        assert not any(f">{o}<" in patient_page for o in others), scan["patient_id"]


# --- bidi and control characters (#35 item 14) ----------------------------------------------

def test_visible_text_shows_every_bidi_and_control_character():
    for c in BIDI_CONTROLS | {"\x00", "\x1b", "\x7f", "\x85"}:
        shown = visible_text(f"a{c}b")
        assert c not in shown and f"[U+{ord(c):04X}]" in shown
    assert visible_text("tab\there\nline") == "tab\there\nline"


def test_a_right_to_left_override_never_names_a_folder_or_reorders_a_page(tmp_path):
    """#35 item 14: a patient id with U+202E displayed reversed in the HTML and named a folder
    'gpj.exe'."""
    pid = "\u202egpj.exe"
    series(tmp_path / "in" / "s", patient_id=pid, extra={"SpecificCharacterSet": "ISO_IR 192"})
    out = tmp_path / "o"
    run(tmp_path / "in", out, config(tmp_path))
    (folder,) = (out / "patients").iterdir()
    assert folder.name == distinct_name(pid, "patient") and not folder.name.endswith(".exe")
    pages = [folder / "report.html", out / "index.html",
             *(out / "cases").glob("*/report.html")]
    assert len(pages) == 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not any(c in text for c in BIDI_CONTROLS), page
        assert "[U+202E]gpj.exe" in text, page
    names = [p.name for p in out.rglob("*")]
    assert not any(c in n for n in names for c in BIDI_CONTROLS)


# --- invalid PN/LO copied into the SR and SEG (#35 item 14) ---------------------------------

def _vr_errors(path: Path) -> list[str]:
    """dciodvfy's errors about values invalid for their VR (the shared helper's run)."""
    return [line for line in dciodvfy.problems(path, warnings=False) if "for this VR" in line]


def test_invalid_pn_and_lo_values_are_fitted_to_their_vr_in_the_sr_and_seg(tmp_path):
    """A 601-character name, a 72-character PatientID, NUL bytes and a 40-character SH were
    copied as they were; dciodvfy rejected the SR."""
    paths = series(tmp_path / "in" / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the invalid values it is given
            ds.PatientName = "Smith^" + "J" * 595 + "\x00"
            ds.PatientID = "ID" + "9" * 70 + "\x00"
            ds.StudyID = "S\x001"
            ds.AccessionNumber = "A" * 40
            ds.ReferringPhysicianName = "Doc\x00^Tor"
            ds.PatientAge = "67 years"  # cut to 4 characters it would still not be an AS
        ds.save_as(p)
    out = tmp_path / "o"
    run(tmp_path / "in", out, config(tmp_path))
    (case,) = (out / "cases").iterdir()
    sr = pydicom.dcmread(case / "scores.sr.dcm")
    assert len(str(sr.PatientName)) == 64 and str(sr.PatientName).startswith("Smith^J")
    assert sr.PatientID == "ID" + "9" * 62 and sr.AccessionNumber == "A" * 16
    assert sr.StudyID == "S1" and str(sr.ReferringPhysicianName) == "Doc^Tor"
    assert sr.get("PatientAge", "") == ""
    if dciodvfy.DCIODVFY is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; the values were checked "
                    "above; .ci/run installs it")
    for obj in ("scores.sr.dcm", "calcium.seg.dcm"):
        assert _vr_errors(case / obj) == [], obj
