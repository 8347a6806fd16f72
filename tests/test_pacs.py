"""vascalc listen and send against a real PACS: Debian's Orthanc (with its DICOMweb plugin),
started here on 127.0.0.1 with a fresh database. A phantom study goes into Orthanc by REST,
Orthanc sends it to the node (C-STORE), and the study comes back holding the SR (its score
equal to scans.csv), the SEG (referencing the CT series), the PDF and the summary, once."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
from vascalc.pacs.store import InstanceStore, StoreRefused, valid_uid

ORTHANC = shutil.which("Orthanc")
DICOMWEB = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ROOT = Path(__file__).resolve().parents[1]

needs_orthanc = pytest.mark.skipif(
    ORTHANC is None, reason="Debian's orthanc is not installed (.ci/run installs it as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(base: str, path: str, data: bytes | None = None, method: str | None = None):
    req = urllib.request.Request(base + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body[:1] in (b"{", b"[") else body


def wait_for(check, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def orthanc(tmp_path):
    """A fresh Orthanc: (REST base URL, DICOM port, the port its 'vascalc' modality points at)."""
    if ORTHANC is None:
        pytest.skip("Debian's orthanc is not installed (.ci/run installs it as root)")
    http_port, dicom_port, node_port = free_port(), free_port(), free_port()
    cfg = {"Name": "vascalc-test", "StorageDirectory": str(tmp_path / "orthanc-db"),
           "IndexDirectory": str(tmp_path / "orthanc-db"), "HttpPort": http_port,
           "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
           "AuthenticationEnabled": False,
           "DicomModalities": {"vascalc": ["VASCALC", "127.0.0.1", node_port]},
           "Plugins": [str(DICOMWEB)] if DICOMWEB.exists() else [],
           "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (tmp_path / "orthanc.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([ORTHANC, str(tmp_path / "orthanc.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_for(lambda: _alive(base), 20, "Orthanc to start")
        yield base, dicom_port, node_port
    finally:
        proc.terminate()
        proc.wait(10)


def _alive(base: str) -> bool:
    try:
        return bool(http(base, "/system"))
    except OSError:
        return False


def upload(base: str, series: Path) -> str:
    """The phantom series into Orthanc by REST; returns Orthanc's study id."""
    for f in sorted(series.iterdir()):
        http(base, "/instances", f.read_bytes(), "POST")
    (study,) = http(base, "/studies")
    return study


def start_node(out: Path, node_port: int, dests: list[str], config: Path,
               allow: tuple[str, ...] = ()) -> subprocess.Popen:
    args = [sys.executable, "-m", "vascalc.cli.app", "listen", str(out), "--port", str(node_port),
            "--config", str(config)]
    for a in allow:
        args += ["--allow", a]
    for d in dests:
        args += ["--stow-url", d] if d.startswith("http") else ["--send-to", d]
    log = out.parent / f"{out.name}.stderr"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=fh, cwd=ROOT)
    wait_for(lambda: _listening(node_port) or proc.poll() is not None, 30, "the node to listen")
    assert proc.poll() is None, log.read_text()
    return proc


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def result_series(base: str, study: str) -> dict[str, list[str]]:
    """Modality -> instance ids of the study's series in Orthanc."""
    out: dict[str, list[str]] = {}
    for s in http(base, f"/studies/{study}/series"):
        out.setdefault(s["MainDicomTags"].get("Modality", ""), []).extend(s["Instances"])
    return out


def _results_arrived(base: str, study: str):
    got = result_series(base, study)
    return got if {"SR", "SEG", "DOC", "OT"} <= set(got) else None


@pytest.fixture
def coronary_config(tmp_path) -> Path:
    """The phantom is declared coronary, so the SR carries the coronary Agatston score."""
    p = tmp_path / "node.yaml"
    p.write_text("scoring: {scope: coronary, fov_is_coronary: true}\nlisten: {quiet_s: 1.5}\n")
    return p


def check_results(base: str, study: str, out: Path) -> None:
    got = wait_for(lambda: _results_arrived(base, study), 90, "the results in Orthanc")
    assert {k: len(v) for k, v in got.items() if k != "CT"} == {"SR": 1, "SEG": 1, "DOC": 1,
                                                                 "OT": 1}
    (scans,) = out.glob("studies/*/scans.csv")
    with open(scans, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    sr = pydicom.dcmread(_file(base, got["SR"][0]))
    values = _numbers(sr.ContentSequence)
    assert float(values["450360000"]) == pytest.approx(float(row["agatston"]), rel=1e-9)
    seg = pydicom.dcmread(_file(base, got["SEG"][0]), stop_before_pixels=True)
    ct_series = http(base, f"/instances/{got['CT'][0]}/simplified-tags")["SeriesInstanceUID"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_series
    pdf = pydicom.dcmread(_file(base, got["DOC"][0]))
    assert pdf.EncapsulatedDocument.startswith(b"%PDF")
    for inst in got["SR"] + got["SEG"] + got["DOC"] + got["OT"]:
        assert http(base, f"/instances/{inst}/simplified-tags")["StudyInstanceUID"] == \
            sr.StudyInstanceUID
    if shutil.which("dciodvfy"):
        for path in sorted(out.glob("studies/*/cases/*/*.dcm")):
            proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            errors = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                      if ln.startswith("Error")]
            assert not errors, (path.name, errors)


def _file(base: str, instance: str):
    from io import BytesIO

    return BytesIO(http(base, f"/instances/{instance}/file"))


def _numbers(items, found=None) -> dict[str, str]:
    """Concept code -> numeric value of every NUM item of an SR content tree."""
    found = {} if found is None else found
    for it in items:
        if it.ValueType == "NUM" and it.get("MeasuredValueSequence"):
            found[it.ConceptNameCodeSequence[0].CodeValue] = it.MeasuredValueSequence[0].NumericValue
        if "ContentSequence" in it:
            _numbers(it.ContentSequence, found)
    return found


@needs_orthanc
def test_a_study_from_orthanc_comes_back_scored_once(orthanc, sample_data, tmp_path,
                                                     coronary_config):
    base, dicom_port, node_port = orthanc
    study = upload(base, sample_data / "P01_T1" / "dicom")
    node = start_node(tmp_path / "node", node_port, [f"ORTHANC@127.0.0.1:{dicom_port}"],
                      coronary_config)
    try:
        job = http(base, "/modalities/vascalc/store", json.dumps(study).encode(), "POST")
        assert job["FailedInstancesCount"] == 0 and job["InstancesCount"] == 40
        check_results(base, study, tmp_path / "node")
        # sent again by Orthanc (now with the results in it): every instance stored once, the
        # CT chosen again, the results not sent a second time
        http(base, "/modalities/vascalc/store", json.dumps(study).encode(), "POST")
        time.sleep(5)
        assert {k: len(v) for k, v in result_series(base, study).items()} == {
            "CT": 40, "SR": 1, "SEG": 1, "DOC": 1, "OT": 1}
        assert len(list((tmp_path / "node" / "incoming").rglob("*.dcm"))) == 44
        db = sqlite3.connect(tmp_path / "node" / "node.sqlite")
        ((state, record),) = db.execute("SELECT state, record FROM studies").fetchall()
        db.close()
        series = json.loads(record)["series"]
        assert state == "scored" and [s["chosen"] for s in series].count(True) == 1
        chosen = next(s for s in series if s["chosen"])
        assert chosen["n_images"] == 40 and all(s["reason"] for s in series)
        with open(tmp_path / "node" / "studies.csv", newline="") as fh:
            (status,) = list(csv.DictReader(fh))
        assert (status["state"], status["sent"], status["pending"], status["failed"]) == (
            "scored", "4", "0", "0") and "PHANTOM" not in json.dumps(status)
    finally:
        node.terminate()
        node.wait(20)


@needs_orthanc
@pytest.mark.skipif(not DICOMWEB.exists(), reason="Debian's orthanc-dicomweb is not installed")
def test_results_over_stow_rs(orthanc, sample_data, tmp_path, coronary_config):
    base, _, node_port = orthanc
    study = upload(base, sample_data / "P01_T1" / "dicom")
    node = start_node(tmp_path / "node", node_port, [base + "/dicom-web"], coronary_config,
                      allow=("ORTHANC@127.0.0.1",))
    try:
        http(base, "/modalities/vascalc/store", json.dumps(study).encode(), "POST")
        check_results(base, study, tmp_path / "node")
    finally:
        node.terminate()
        node.wait(20)


@needs_orthanc
def test_a_node_killed_after_receiving_delivers_after_a_restart_once(
        orthanc, sample_data, tmp_path):
    base, dicom_port, node_port = orthanc
    cfg = tmp_path / "slow.yaml"
    cfg.write_text("scoring: {scope: coronary, fov_is_coronary: true}\nlisten: {quiet_s: 6}\n")
    study = upload(base, sample_data / "P01_T1" / "dicom")
    dest = [f"ORTHANC@127.0.0.1:{dicom_port}"]
    node = start_node(tmp_path / "node", node_port, dest, cfg)
    http(base, "/modalities/vascalc/store", json.dumps(study).encode(), "POST")
    os.kill(node.pid, signal.SIGKILL)  # every instance acknowledged, nothing scored yet
    node.wait(10)
    assert len(list((tmp_path / "node" / "incoming").rglob("*.dcm"))) == 40
    assert set(result_series(base, study)) == {"CT"}
    node = start_node(tmp_path / "node", node_port, dest, cfg)
    try:
        check_results(base, study, tmp_path / "node")
    finally:
        node.terminate()
        node.wait(20)


@needs_orthanc
def test_an_unknown_caller_is_refused_at_association(tmp_path, coronary_config):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    port = free_port()
    node = start_node(tmp_path / "node", port, ["ORTHANC@127.0.0.1:1"], coronary_config)
    try:
        for aet, ok in (("STRANGER", False), ("ORTHANC", True)):
            ae = AE(ae_title=aet)
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", port, ae_title="VASCALC")
            assert assoc.is_established is ok, aet
            if ok:
                assoc.release()
    finally:
        node.terminate()
        node.wait(20)


def test_uids_are_checked_and_storage_is_bounded(tmp_path):
    store = InstanceStore(tmp_path / "in", max_bytes=100)
    assert not valid_uid("1.2.3/../../etc") and not valid_uid("1." + "2" * 70)
    with pytest.raises(StoreRefused) as err:
        store.put("1.2", "1.2.3", "../x", b"x")
    assert err.value.status == 0xA900
    path, new = store.put("1.2", "1.2.3", "1.2.3.4", b"a" * 60)
    assert new and path.read_bytes() == b"a" * 60
    assert store.put("1.2", "1.2.3", "1.2.3.4", b"a" * 60) == (path, False)  # once
    with pytest.raises(StoreRefused) as err:
        store.put("1.2", "1.2.3", "1.2.3.5", b"b" * 60)
    assert err.value.status == 0xA700 and "listen.max_bytes" in str(err.value)
    assert not list((tmp_path / "in").rglob("*.tmp*"))


@needs_orthanc
def test_send_delivers_a_finished_run_into_its_study_once(orthanc, sample_data, tmp_path):
    from typer.testing import CliRunner
    from vascalc.cli.app import app

    base, dicom_port, _ = orthanc
    series = sample_data / "P03" / "dicom"
    study = upload(base, series)
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(series), "--out", str(out), "--report", "-j", "1"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    dest = f"ORTHANC@127.0.0.1:{dicom_port}"
    res = runner.invoke(app, ["send", str(out), "--to", dest], catch_exceptions=False)
    assert res.exit_code == 0 and "4 object(s) sent, 0 not sent" in res.output, res.output
    counts = {k: len(v) for k, v in result_series(base, study).items()}
    assert counts == {"CT": len(list(series.iterdir())), "SR": 1, "SEG": 1, "DOC": 1, "OT": 1}
    res = runner.invoke(app, ["send", str(out), "--to", dest], catch_exceptions=False)
    assert res.exit_code == 0 and {k: len(v) for k, v in result_series(base, study).items()} \
        == counts
    assert "0 object(s) sent, 0 not sent, 4 sent by an earlier send (not again)" in res.output
    # a destination that refuses (nothing listens there) is reported, exit 1, never a crash
    res = runner.invoke(app, ["send", str(out), "--to", f"NOBODY@127.0.0.1:{free_port()}",
                              "--attempts", "1"], catch_exceptions=False)
    assert res.exit_code == 1 and "0 object(s) sent, 4 not sent" in res.output
    assert "association" in res.output


def test_a_resend_in_another_transfer_syntax_is_the_same_instance(sample_data, tmp_path):
    """The same instance sent explicit VR, then implicit VR: stored once, not refused; other
    content under the same UID is still refused (0xA900)."""
    from io import BytesIO

    from pydicom.uid import ImplicitVRLittleEndian

    f = sorted((sample_data / "P03" / "dicom").iterdir())[0]
    ds = pydicom.dcmread(f)
    explicit = f.read_bytes()
    buf = BytesIO()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(buf, implicit_vr=True, little_endian=True)
    implicit = buf.getvalue()
    assert implicit != explicit
    store = InstanceStore(tmp_path / "in", max_bytes=10**9)
    uids = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    path, new = store.put(*uids, explicit)
    assert new and store.put(*uids, implicit) == (path, False)
    ds.PatientID = "SOMEONE-ELSE"
    buf = BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True)
    with pytest.raises(StoreRefused) as err:
        store.put(*uids, buf.getvalue())
    assert err.value.status == 0xA900


def test_space_freed_after_the_budget_admits_new_instances(tmp_path, monkeypatch):
    import vascalc.pacs.store as store_module

    monkeypatch.setattr(store_module, "RECOUNT_S", 0.0)  # the recount's pause, not tested here
    store = InstanceStore(tmp_path / "in", max_bytes=100)
    first, _ = store.put("1.2", "1.2.3", "1.2.3.4", b"a" * 60)
    with pytest.raises(StoreRefused):
        store.put("1.2", "1.2.3", "1.2.3.5", b"b" * 60)
    first.unlink()  # an operator frees OUT/incoming; no restart
    path, new = store.put("1.2", "1.2.3", "1.2.3.5", b"b" * 60)
    assert new and path.read_bytes() == b"b" * 60


def test_a_study_holding_two_patients_is_not_scored(sample_data, tmp_path):
    from vascalc.config.load import load_config
    from vascalc.pacs.ranker import rank_series

    study = tmp_path / "study"
    for i, case in enumerate(("P01_T1", "P03")):
        dest = study / f"series{i}"
        shutil.copytree(sample_data / case / "dicom", dest)
    ranked = rank_series(study, load_config(None))
    assert ranked and not any(r.chosen or r.eligible for r in ranked)
    assert all("2 different PatientIDs" in r.reason for r in ranked)
