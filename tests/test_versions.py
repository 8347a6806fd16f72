"""Result versions: each version of a case's result is its own set of DICOM instances, stable
per version (a rerun, --force on unchanged files, a resend give the same UIDs), never shared
with another version or another patient's case of the same name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.outputs.versions import ledger
from vascalc.pacs.objects import case_objects

from tests.dicom_copy import copy_as_new_study
from tests.test_reports import reported  # noqa: F401 - a fixture
from tests.test_review import _label_p02, out, serving  # noqa: F401 - out: a fixture


def _run(series: Path, dest: Path, *extra: str) -> None:
    res = CliRunner().invoke(app, ["run", str(series), "--out", str(dest), "--report", "-j", "1",
                                   *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def _sr(case: Path) -> pydicom.Dataset:
    return pydicom.dcmread(case / "scores.sr.dcm", stop_before_pixels=True)


def test_the_same_result_keeps_its_uids_and_a_changed_one_gets_new(sample_data, tmp_path):
    series = tmp_path / "in" / "P03" / "dicom"
    shutil.copytree(sample_data / "P03" / "dicom", series)
    dest = tmp_path / "out"
    _run(series, dest)
    (case,) = (dest / "cases").iterdir()
    first = _sr(case)
    (v1,) = ledger(case)
    assert (v1.number, v1.status, v1.sr_uid) == (1, "draft", first.SOPInstanceUID)
    assert first.SeriesDescription == "vascalc calcium SR draft v1"
    _run(series, dest, "--force")  # the same files scored again: the same version
    assert _sr(case).SOPInstanceUID == first.SOPInstanceUID and len(ledger(case)) == 1
    # a corrected series (one slice's calcium removed): a new version naming the first
    victim = max(series.iterdir(), key=lambda f: pydicom.dcmread(f).pixel_array.max())
    ds = pydicom.dcmread(victim)
    ds.PixelData = (ds.pixel_array * 0 + 1024).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(victim)
    _run(series, dest)
    second = _sr(case)
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert [v.number for v in ledger(case)] == [1, 2]
    assert second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0] \
        .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    items = dict((Path(p).name, uid) for p, uid in case_objects(case)[1])
    assert items["scores.sr.dcm"] == second.SOPInstanceUID
    pdf = pydicom.dcmread(case / "report.pdf.dcm", stop_before_pixels=True)
    assert pdf.SeriesDescription == "vascalc report draft v2"
    assert pdf.SOPInstanceUID == items["report.pdf.dcm"]


def test_two_patients_whose_cases_share_a_name_never_share_a_uid(sample_data, tmp_path):
    """Two studies whose runs both call a case P03 (another patient's series, the same
    pixels): different SOP Instance UIDs."""
    uids = []
    for i in range(2):
        series = tmp_path / f"site{i}" / "P03" / "dicom"
        copy_as_new_study(sample_data / "P03" / "dicom", series, PatientID=f"OTHER-{i}")
        _run(series, tmp_path / f"out{i}")
        (case,) = (tmp_path / f"out{i}" / "cases").iterdir()
        assert case.name == "P03_dicom"
        uids.append({p.name: str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                     for p in case.glob("*.dcm")})
    for name in uids[0]:
        assert uids[0][name] != uids[1][name], name


def test_a_readers_done_read_makes_a_verified_final_that_replaces_the_draft(out):  # noqa: F811
    case = out / "cases" / "P02"
    draft = _sr(case)
    assert (draft.VerificationFlag, draft.PreliminaryFlag) == ("UNVERIFIED", "PRELIMINARY")
    with serving(out) as (state, base):
        _label_p02(base, state.token)
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    final = _sr(case)
    v = ledger(case)[-1]
    assert (v.status, v.reader, v.sr_uid) == ("final", "r1", final.SOPInstanceUID)
    assert final.SOPInstanceUID != draft.SOPInstanceUID
    assert (final.CompletionFlag, final.VerificationFlag, final.PreliminaryFlag) == (
        "COMPLETE", "VERIFIED", "FINAL")
    observer = final.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "r1^"
    assert observer.VerificationDateTime.startswith(v.verified_at[:10].replace("-", ""))
    assert final.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0] \
        .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == draft.SOPInstanceUID
    # rescoring again with the same reads: the same final, no new version
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    assert _sr(case).SOPInstanceUID == final.SOPInstanceUID
    assert [x.status for x in ledger(case)] == ["draft", "final"]
    items = {Path(p).name for p, _ in case_objects(case)[1]}
    assert items == {"scores.sr.dcm", "calcium.seg.dcm", "report.pdf.dcm", "summary.sc.dcm"}
    sc = pydicom.dcmread(case / "summary.sc.dcm")
    assert sc.SeriesDescription == "vascalc summary final v2" and sc.Rows > 400
    assert json.loads((case / "versions.json").read_text())[-1]["predecessor"]["number"] == 1


def _codes(items, found=None) -> dict[str, object]:
    """Concept code -> value (the code of a CODE item, the number of a NUM item) in an SR tree."""
    found = {} if found is None else found
    for it in items:
        name = it.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in it else ""
        if it.ValueType == "CODE":
            found.setdefault(name, it.ConceptCodeSequence[0].CodeValue)
        elif it.ValueType == "NUM" and it.get("MeasuredValueSequence"):
            found.setdefault(name, float(it.MeasuredValueSequence[0].NumericValue))
        _codes(getattr(it, "ContentSequence", []), found)
    return found


def test_a_final_with_calcium_left_unlabelled_says_so_in_its_sr(out):  # noqa: F811
    """The reader labelled one lesion and confirmed the rest is not coronary: the final SR
    carries the confirmation and the unlabelled amount, equal to scans.csv."""
    import csv

    from vascalc.review.scripted import write_reads

    write_reads(out, [("r1", "P02", 2, None, "LAD")], done=[("r1", "P02")],
                rest_not_coronary=[("r1", "P02")])
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    with open(out / "scans.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["case_id"] == "P02")
    assert row["rest_confirmed_not_coronary"] == "true" and float(row["unlabelled_agatston"]) > 0
    sr = _sr(out / "cases" / "P02")
    assert sr.VerificationFlag == "VERIFIED"
    got = _codes(sr.ContentSequence)
    assert got["rest-confirmed"] == "yes" and got["review-done"] == "yes"
    assert got["unlabelled-ag"] == float(row["unlabelled_agatston"])
    assert got["unlabelled-vol"] == float(row["unlabelled_volume_mm3"])


def test_a_lapsed_final_leaves_no_version_behind_and_its_amendment_replaces_it(out):  # noqa: F811
    """A label changed after the reader confirmed the rest: the read is not final any more and
    the case shows the run's draft again (its own UIDs, no new version: the PACS keeps the
    reader's final as the last signed result); the reader's next final is an amendment that
    names that final as its predecessor."""
    from vascalc.review.scripted import write_reads

    case = out / "cases" / "P02"
    write_reads(out, [("r1", "P02", 2, None, "LAD")], done=[("r1", "P02")],
                rest_not_coronary=[("r1", "P02")])
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    draft, final = ledger(case)
    assert (draft.status, final.status) == ("draft", "final")
    write_reads(out, [("r1", "P02", 3, None, "LCX")])  # after the confirmation: it lapses
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    assert [v.number for v in ledger(case)] == [1, 2]  # nothing half-read was recorded
    sr = _sr(case)
    assert sr.SOPInstanceUID == draft.sr_uid and sr.VerificationFlag == "UNVERIFIED"
    write_reads(out, [], done=[("r1", "P02")], rest_not_coronary=[("r1", "P02")])
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    amended = ledger(case)[-1]
    assert (amended.number, amended.status, amended.predecessor["sr_uid"]) == (
        3, "amended", final.sr_uid)
    assert _sr(case).VerificationFlag == "VERIFIED"
