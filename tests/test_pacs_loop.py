"""The lab's loop end to end, against Debian's Orthanc: a study comes back as a draft, a
reader's labels and done mark through the review API make a final that joins the draft in the
study (a new SOP Instance UID, VERIFIED, the reader named, the draft referenced), a study that
receives late slices gets a new version, a head CT gets nothing back with its reason, and a
caller with the right AE title from the wrong address is refused."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from vascalc.pacs.callers import admitted, callers
from vascalc.pacs.send import parse_destination

from tests.dicom_copy import HEAD_CT, copy_as_new_study
from tests.test_pacs import (  # noqa: F401
    _numbers,
    free_port,
    http,
    needs_orthanc,
    orthanc,
    result_series,
    start_node,
    wait_for,
)
from tests.test_review import call, serving


@pytest.fixture
def loop_config(tmp_path) -> Path:
    p = tmp_path / "node.yaml"
    p.write_text("scoring: {scope: coronary, fov_is_coronary: true}\nlisten: {quiet_s: 1.5}\n")
    return p


def _srs(base: str, study: str) -> list[pydicom.Dataset]:
    got = result_series(base, study)
    return [pydicom.dcmread(BytesIO(http(base, f"/instances/{i}/file"))) for i in got.get("SR", [])]


def _headline(sr) -> float:
    """The SR's first coronary artery calcium score: the headline group's (the per-artery
    groups follow it)."""
    group = next(it for it in sr.ContentSequence if "ContentSequence" in it
                 and it.ConceptNameCodeSequence[0].CodeValue == "126010")  # imaging measurements
    return float(_numbers(group.ContentSequence[:1])["450360000"])


def _upload(base: str, files: list[Path]) -> list[str]:
    """Files into Orthanc; returns their instance ids."""
    return [http(base, "/instances", f.read_bytes(), "POST")["ID"] for f in files]


def _store(base: str, ids: list[str]) -> None:
    job = http(base, "/modalities/vascalc/store", json.dumps(ids).encode(), "POST")
    assert job["FailedInstancesCount"] == 0


def _study_record(node: Path) -> tuple[str, dict]:
    db = sqlite3.connect(node / "node.sqlite")
    try:
        ((state, record),) = db.execute("SELECT state, record FROM studies").fetchall()
    finally:
        db.close()
    return state, json.loads(record)


@needs_orthanc
def test_draft_then_late_slices_then_a_readers_final(orthanc, sample_data, tmp_path,  # noqa: F811
                                                     loop_config):
    base, dicom_port, node_port = orthanc
    files = sorted((sample_data / "P01_T1" / "dicom").iterdir(),
                   key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                       .ImagePositionPatient[2]))
    first = _upload(base, files[:24])
    (study,) = http(base, "/studies")
    node_dir = tmp_path / "node"
    node = start_node(node_dir, node_port, [f"ORTHANC@127.0.0.1:{dicom_port}"], loop_config)
    try:
        # 1. the first 24 slices: a draft
        _store(base, first)
        (draft,) = wait_for(lambda: _srs(base, study) or None, 90, "the draft SR")
        assert (draft.CompletionFlag, draft.VerificationFlag, draft.PreliminaryFlag) == (
            "COMPLETE", "UNVERIFIED", "PRELIMINARY")
        assert draft.SeriesDescription == "vascalc calcium SR draft v1"
        assert "PredecessorDocumentsSequence" not in draft
        # 2. the last 16 slices arrive after the study was scored: a new version, rescored on
        # all 40, which names the draft as its predecessor
        _store(base, _upload(base, files[24:]))
        srs = wait_for(lambda: (lambda s: s if len(s) == 2 else None)(_srs(base, study)), 90,
                       "the rescored version")
        grown = next(s for s in srs if s.SOPInstanceUID != draft.SOPInstanceUID)
        assert grown.SeriesDescription == "vascalc calcium SR draft v2"
        pred = grown.PredecessorDocumentsSequence[0]
        assert pred.ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
            .ReferencedSOPInstanceUID == draft.SOPInstanceUID
        (scans,) = node_dir.glob("studies/*/scans.csv")
        with open(scans, newline="") as fh:
            (row,) = list(csv.DictReader(fh))
        assert row["n_slices"] == "40"
        assert float(_numbers(grown.ContentSequence)["450360000"]) == pytest.approx(
            float(row["agatston"]), rel=1e-9)
        # 3. a reader labels every lesion through the review API and marks the case done:
        # the node rescores the study and sends the final
        out = scans.parent
        (case,) = [p.name for p in (out / "cases").iterdir()]
        with serving(out) as (state, rbase):
            lesions = json.loads(call(rbase, "GET", f"/api/cases/{case}/lesions",
                                      token=state.token)[1])
            assert lesions, "the phantom has calcium"
            for le in lesions:
                assert call(rbase, "PUT", f"/api/cases/{case}/lesions/{le['lesion_id']}",
                            token=state.token, body={"label": "LAD"})[0] == 200
            assert call(rbase, "PUT", f"/api/cases/{case}/done", token=state.token,
                        body={"done": True})[0] == 200
            srs = wait_for(lambda: (lambda s: s if len(s) == 3 else None)(_srs(base, study)),
                           90, "the reader's final")
        final = next(s for s in srs if s.VerificationFlag == "VERIFIED")
        assert final.SOPInstanceUID not in {draft.SOPInstanceUID, grown.SOPInstanceUID}
        assert (final.CompletionFlag, final.PreliminaryFlag) == ("COMPLETE", "FINAL")
        assert str(final.VerifyingObserverSequence[0].VerifyingObserverName) == "r1^"
        assert final.SeriesDescription == "vascalc calcium SR final v3"
        assert final.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0] \
            .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == grown.SOPInstanceUID
        with open(out / "scans.csv", newline="") as fh:
            (row,) = list(csv.DictReader(fh))
        assert row["reader"] == "r1" and row["scope"] == "coronary"
        assert _headline(final) == pytest.approx(
            float(row["agatston"]), rel=1e-9)
        # the final's PDF and summary are in the study beside the draft's, named final
        docs = wait_for(lambda: (lambda d: d if len(d.get("DOC", [])) == 3 and
                                 len(d.get("OT", [])) == 3 else None)(result_series(base, study)),
                        60, "the final's PDF and summary")
        titles = {http(base, f"/instances/{i}/simplified-tags")["SeriesDescription"]
                  for i in docs["DOC"]}
        assert "vascalc report final v3" in titles
        # sent again: nothing new
        time.sleep(3)
        assert len(_srs(base, study)) == 3
        # 4. the reader amends the final (one lesion to another artery, done again): an
        # amendment joins the study, and every version's predecessor is one the PACS holds
        with serving(out) as (state, rbase):
            lid = lesions[-1]["lesion_id"]
            assert call(rbase, "PUT", f"/api/cases/{case}/lesions/{lid}", token=state.token,
                        body={"label": "RCA"})[0] == 200
            assert call(rbase, "PUT", f"/api/cases/{case}/done", token=state.token,
                        body={"done": True})[0] == 200
            srs = wait_for(lambda: (lambda s: s if any("amended" in x.SeriesDescription
                                                       for x in s) else None)(_srs(base, study)),
                           90, "the amendment")
        held = {x.SOPInstanceUID for x in srs}
        for x in srs:
            for ref in x.get("PredecessorDocumentsSequence", []):
                uid = ref.ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
                    .ReferencedSOPInstanceUID
                assert uid in held, (x.SeriesDescription, "names a version the PACS never got")
    finally:
        node.terminate()
        node.wait(20)


@needs_orthanc
def test_a_head_ct_gets_nothing_back_and_its_reason_is_recorded(orthanc, sample_data,  # noqa: F811
                                                               tmp_path, loop_config):
    base, dicom_port, node_port = orthanc
    ids = _upload(base, copy_as_new_study(sample_data / "P01_T1" / "dicom", tmp_path / "head",
                                       **HEAD_CT))
    (study,) = http(base, "/studies")
    node_dir = tmp_path / "node"
    node = start_node(node_dir, node_port, [f"ORTHANC@127.0.0.1:{dicom_port}"], loop_config)
    try:
        _store(base, ids)
        state, record = wait_for(lambda: (lambda r: r if r[0] != "receiving" and r[0] !=
                                          "scoring" else None)(_study_record(node_dir)), 60,
                                 "the study to be ranked")
        assert state == "not_eligible"
        assert "STD BRAIN 5MM" in record["not_eligible"] and "body part" in record["not_eligible"]
        time.sleep(2)
        assert set(result_series(base, study)) == {"CT"}
        assert not list(node_dir.glob("studies/*/cases"))
    finally:
        node.terminate()
        node.wait(20)


def test_a_caller_is_admitted_by_title_and_address_together(tmp_path, loop_config):
    """The PACS's AE title from another address is refused at association; from the PACS's
    own address it is admitted (127.0.0.2 is another loopback address on Linux)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    rules = callers(["CT1@127.0.0.3", "ANY"], [parse_destination("ORTHANC@127.0.0.1:4242")])
    assert admitted(rules, "ORTHANC", "127.0.0.1") and not admitted(rules, "ORTHANC", "127.0.0.2")
    assert admitted(rules, "CT1", "127.0.0.3") and not admitted(rules, "CT1", "127.0.0.1")
    assert admitted(rules, "ANY", "10.1.2.3") and not admitted(rules, "OTHER", "127.0.0.1")
    port = free_port()
    node = start_node(tmp_path / "node", port, ["ORTHANC@127.0.0.1:1"], loop_config)
    try:
        for aet, source, ok in (("ORTHANC", "127.0.0.2", False), ("ORTHANC", "127.0.0.1", True),
                                ("STRANGER", "127.0.0.1", False)):
            ae = AE(ae_title=aet)
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", port, ae_title="VASCALC",
                                 bind_address=(source, 0))
            assert assoc.is_established is ok, (aet, source)
            if ok:
                assoc.release()
        log = (tmp_path / "node" / "vascalc.log").read_text()
        assert "calling AE title ORTHANC from 127.0.0.2 is not allowed" in log
    finally:
        node.terminate()
        node.wait(20)
