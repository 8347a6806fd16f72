"""A batch stopped when asked loses nothing (#35.1): SIGINT (Ctrl-C) and SIGTERM (what Slurm sends
at a time limit) sent to a real ``vascalc run --report`` mid-batch, at several moments, on the
serial path, the process pool and a local Dask cluster. Each run records every finished case
(its artefacts and result.json together), writes the tables of what is done, says so and exits
with 130 or 143; a second signal stops at once without the tables; the rerun scores only what
was not recorded and gives the tables of an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.records import RegionScore
from vascalc.results.casefolder import commit, recover, staging_dir
from vascalc.results.document import read_result
from vascalc.run.interrupt import Abort, Stop

from sample_data.dicom_writer import SeriesSpec, write_series

ROOT = Path(__file__).resolve().parents[1]
N_CASES = 10
TABLES = ("scans.csv", "regions.csv", "lesions.csv")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Ten phantoms of 20 slices 160 x 160 with one plaque each, of different sizes."""
    root = tmp_path_factory.mktemp("stop_cohort")
    rows = ["case_id,path"]
    for i in range(N_CASES):
        hu = np.full((20, 160, 160), 30.0)
        hu[:, 0, :] = -1000
        hu[4:8, 40:44 + i, 50:56] = 300 + 20 * i
        write_series(root / "cases" / f"c{i}", hu, SeriesSpec(seed=f"c{i}", patient_id=f"P{i}"))
        rows.append(f"S{i:02d},cases/c{i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stop_reference")
    res = CliRunner().invoke(app, ["run", str(cohort / "manifest.csv"), "--out", str(out), "-j",
                                   "1", "--report", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _results(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "cases").glob("*/result.json")}


def _stopped_run(cohort: Path, out: Path, sig: int, *, after: int, jobs: str = "2",
                 group: bool = True, second: bool = False, extra: tuple[str, ...] = ()):
    """Start ``vascalc run --report`` in its own process group, send ``sig`` once ``after``
    results are recorded (to the whole group, as a terminal's Ctrl-C or Slurm's time limit
    reach every process, or to the run alone), maybe a second one; returns (exit code,
    stderr, seconds from the last signal to the exit)."""
    cmd = [sys.executable, "-m", "vascalc.cli", "run", str(cohort / "manifest.csv"), "--out",
           str(out), "-j", jobs, "--report", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "vascalc.log").exists() and len(_results(out)) >= after:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before the signal: {proc.communicate()}"
    send = (lambda s: os.killpg(proc.pid, s)) if group else (lambda s: os.kill(proc.pid, s))
    send(sig)
    if second:
        time.sleep(0.15)  # a person's second Ctrl-C (one within 0.1 s is a duplicate)
        send(sig)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, time.monotonic() - t0


def _check_recorded(out: Path, code: int, err: str, sig_name: str, *, tables: bool,
                    dask: bool = False) -> set[str]:
    """What a stopped run must leave: the message, every case folder a whole result with its
    artefacts, no staging folder, and (when written) tables of exactly the recorded cases.
    No traceback; with Dask, none of vascalc's or of a KeyboardInterrupt (a Dask worker may
    log its scheduler's closing as an error with its own trace while the cluster shuts down)."""
    recorded = _results(out)
    assert code == {"SIGINT": 130, "SIGTERM": 143}[sig_name], err
    assert f"interrupted ({sig_name}): {len(recorded)} recorded" in err, err
    assert "run again to resume" in err, err
    if dask:
        assert "KeyboardInterrupt" not in err and "vascalc/" not in err, err
    else:
        assert "Traceback" not in err, err
    folders = {p.name for p in (out / "cases").iterdir()} if (out / "cases").exists() else set()
    assert folders == recorded  # no staging folder, no artefacts without a result
    for cid in recorded:
        doc = read_result(out / "cases" / cid / "result.json")
        assert doc["scan"]["status"] == "ok"
        for name in doc["artefacts"]:  # the artefacts made with this result, all there
            assert (out / "cases" / cid / name).is_file(), (cid, name)
        assert "report.html" in doc["artefacts"]
    if tables:
        assert "tables written for them" in err
        run = json.loads((out / "run.json").read_text())
        assert run["interrupted"]["signal"] == sig_name
        assert sorted(run["case_ids"]) == sorted(recorded)
        assert set(run["interrupted"]["not_run"]) == {f"S{i:02d}" for i in range(N_CASES)} - recorded
        with open(out / "scans.csv", newline="") as fh:
            assert {r["case_id"] for r in csv.DictReader(fh)} == recorded
    else:
        assert "tables not written" in err
    return recorded


def _rerun_scores_only_the_rest(cohort: Path, out: Path, recorded: set[str], reference: Path,
                                monkeypatch) -> None:
    """The rerun reuses every recorded case (it scores only the others) and its tables equal
    an uninterrupted run's."""
    import vascalc.run.executors as ex

    scored: list[str] = []
    real = ex.run_case

    def counting(case, *a, **k):
        scored.append(case.case_id)
        return real(case, *a, **k)

    monkeypatch.setattr(ex, "run_case", counting)
    res = CliRunner().invoke(app, ["run", str(cohort / "manifest.csv"), "--out", str(out), "-j",
                                   "1", "--report", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"({len(recorded)} reused)" in res.output
    assert set(scored) == {f"S{i:02d}" for i in range(N_CASES)} - recorded
    for t in TABLES:
        assert (out / t).read_text() == (reference / t).read_text(), t


@pytest.mark.parametrize("after", [1, 4])
def test_sigint_to_the_group_mid_pool_records_every_finished_case(cohort, reference, tmp_path,
                                                                   monkeypatch, after):
    out = tmp_path / "o"
    code, err, seconds = _stopped_run(cohort, out, signal.SIGINT, after=after)
    recorded = _check_recorded(out, code, err, "SIGINT", tables=True)
    assert len(recorded) >= after and seconds < 15
    _rerun_scores_only_the_rest(cohort, out, recorded, reference, monkeypatch)


@pytest.mark.parametrize("group", [True, False], ids=["group", "run-only"])
def test_sigterm_abandons_running_cases_and_exits_143(cohort, reference, tmp_path, monkeypatch,
                                                       group):
    out = tmp_path / "o"
    code, err, seconds = _stopped_run(cohort, out, signal.SIGTERM, after=2, group=group)
    recorded = _check_recorded(out, code, err, "SIGTERM", tables=True)
    assert seconds < 10  # abandoned at once: well inside Slurm's 30 s before SIGKILL
    _rerun_scores_only_the_rest(cohort, out, recorded, reference, monkeypatch)


def test_sigint_on_the_serial_path(cohort, reference, tmp_path, monkeypatch):
    out = tmp_path / "o"
    code, err, _ = _stopped_run(cohort, out, signal.SIGINT, after=2, jobs="1")
    recorded = _check_recorded(out, code, err, "SIGINT", tables=True)
    _rerun_scores_only_the_rest(cohort, out, recorded, reference, monkeypatch)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_second_sigint_stops_at_once_without_corrupting_anything(cohort, reference, tmp_path,
                                                                   monkeypatch, jobs):
    out = tmp_path / "o"
    code, err, seconds = _stopped_run(cohort, out, signal.SIGINT, after=1, jobs=jobs,
                                      second=True)
    recorded = _check_recorded(out, code, err, "SIGINT", tables=False)
    assert seconds < 10 and not (out / "run.json").exists()  # no tables of a run never made
    _rerun_scores_only_the_rest(cohort, out, recorded, reference, monkeypatch)


def test_a_signal_during_discovery_records_nothing_and_says_so(cohort, tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "vascalc.cli", "run", str(cohort / "manifest.csv"), "--out",
           str(out), "-j", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT)
    while not (out / ".vascalc.lock").exists() and proc.poll() is None:
        time.sleep(0.005)  # the lock is taken just before the handlers and discovery
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 143 and "before any case ran" in err:
        assert not (out / "cases").exists()
    else:  # discovery had already ended: a run stopped with what it had
        assert proc.returncode == 143 and "interrupted (SIGTERM)" in err, err
    assert "Traceback" not in err


def test_dask_local_cluster_stops_on_sigint(cohort, reference, tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason="the Dask extra is not installed")
    out = tmp_path / "o"
    code, err, seconds = _stopped_run(cohort, out, signal.SIGINT, after=2, jobs="1",
                                      extra=("--dask-local", "2"))
    recorded = _check_recorded(out, code, err, "SIGINT", tables=True, dask=True)
    assert seconds < 30
    _rerun_scores_only_the_rest(cohort, out, recorded, reference, monkeypatch)


# --- the mechanisms, one by one -----------------------------------------------------------

def test_stop_policy_first_sigint_waits_sigterm_abandons_second_is_hard():
    s = Stop()
    s.request("SIGINT")
    assert s.requested and not s.abandon and not s.hard and s.exit_code == 130
    s.request("SIGINT")
    assert s.abandon and s.hard
    t = Stop()
    t.request("SIGTERM")
    assert t.abandon and not t.hard and t.exit_code == 143


def test_one_signal_delivered_twice_is_one_request(capfd):
    """A wrapper that forwards the signal its process group also got (``timeout``, ``srun``)
    delivers it twice within microseconds: one request, the tables still written; the same
    signal a person sends again later is the second request."""
    s = Stop()
    with s.signals():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert (s.count, s.hard) == (1, False)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)
        assert (s.count, s.hard) == (2, True)
    err = capfd.readouterr().err
    assert "send it again to stop at once" in err and "Ctrl-C" not in err


def test_a_case_scored_in_process_is_abandoned_by_sigterm_but_finishes_on_sigint():
    s = Stop()
    with s.running("case"):
        s.request("SIGINT")  # no raise: the running case finishes
        with pytest.raises(Abort):
            s.request("SIGINT")
    t = Stop()
    with pytest.raises(Abort), t.running("case"):
        t.request("SIGTERM")


def test_an_abort_due_inside_a_critical_block_waits_for_its_end():
    s = Stop()
    done = []
    with pytest.raises(Abort), s.running("any"):
        with s.critical():
            s.request("SIGINT")  # deferred: a result being renamed into place
            done.append("renamed")
    assert done == ["renamed"]


def test_a_case_folder_is_its_result_and_its_artefacts_whole(tmp_path):
    out = tmp_path
    old = out / "cases" / "A"
    old.mkdir(parents=True)
    (old / "result.json").write_text("old")
    (old / "report.html").write_text("old report")
    new = staging_dir(out, "A")
    (new / "key_image_1.png").write_text("new image")
    (new / "result.json").write_text("new")
    commit(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["key_image_1.png", "result.json"]
    # the ledger of result versions sent to a PACS is the case's, not a result's: kept
    (old / "versions.json").write_text("[1]")
    again = staging_dir(out, "A")
    assert [p.name for p in again.iterdir()] == ["versions.json"]
    (again / "result.json").write_text("newer")
    commit(again, old)
    assert sorted(p.name for p in old.iterdir()) == ["result.json", "versions.json"]
    assert [p.name for p in (out / "cases").iterdir()] == ["A"]  # nothing aside, no staging


def test_recover_finishes_a_commit_cut_between_its_renames_and_drops_orphans(tmp_path):
    out = tmp_path
    cases = out / "cases"
    # B: the old folder was moved aside, the staged one (whole, with result.json) not yet in
    (cases / ".B.aaaa.old").mkdir(parents=True)
    (cases / ".B.aaaa.old" / "result.json").write_text("old")
    (cases / ".B.bbbb.partial").mkdir()
    (cases / ".B.bbbb.partial" / "result.json").write_text("new")
    # C: moved aside, nothing staged whole: the old one comes back
    (cases / ".C.cccc.old").mkdir()
    (cases / ".C.cccc.old" / "result.json").write_text("old C")
    (cases / ".C.dddd.partial").mkdir()
    (cases / ".C.dddd.partial" / "report.html").write_text("orphan")
    # D: an abandoned case's artefacts without a result, beside D's own finished folder
    (cases / "D").mkdir()
    (cases / "D" / "result.json").write_text("D")
    (cases / ".D.eeee.partial").mkdir()
    (cases / ".D.eeee.partial" / "report.html").write_text("orphan")
    assert sorted(recover(out)) == ["B", "C"]
    assert sorted(p.name for p in cases.iterdir()) == ["B", "C", "D"]
    assert (cases / "B" / "result.json").read_text() == "new"
    assert (cases / "C" / "result.json").read_text() == "old C"
    assert [p.name for p in (cases / "D").iterdir()] == ["result.json"]


def test_a_result_redone_as_failed_takes_the_old_report_away(cohort, reference, tmp_path):
    """A case folder never holds one result beside another's artefacts: a case scored with a
    report, then redone and failed, keeps no report, key image or SR of the old score."""
    from vascalc.config.schema import Config
    from vascalc.results.document import write_result
    from vascalc.run.case import failed_document
    from vascalc.run.discovery import Case

    out = tmp_path / "o"
    shutil.copytree(reference / "cases" / "S00", out / "cases" / "S00")
    assert (out / "cases" / "S00" / "report.html").is_file()
    kept = sorted({"versions.json"} & {p.name for p in (out / "cases" / "S00").iterdir()})
    case = Case(case_id="S00", path=str(cohort / "cases" / "c0"), display_path="cases/c0")
    doc = failed_document(case, Config(), "fp", "NOT_DICOM", "cases/c0: not DICOM")
    write_result(out, doc)
    # only the result, and the case's ledger of versions sent to a PACS (not a result's)
    assert sorted(p.name for p in (out / "cases" / "S00").iterdir()) == ["result.json", *kept]
    assert read_result(out / "cases" / "S00" / "result.json")["scan"]["status"] == "failed"
    assert [p.name for p in (out / "cases").iterdir()] == ["S00"]


def test_withheld_region_score_has_no_numbers():
    r = RegionScore(region="LAD", agatston=12.0, volume_mm3=3.0, mass_mg=1.0, n_lesions=1,
                    n_slice_lesions=2, density_score=2.0, threshold_hu=130.0,
                    withheld="contrast-filled lumen")
    assert (r.agatston, r.volume_mm3, r.mass_mg, r.n_lesions, r.n_slice_lesions,
            r.density_score, r.threshold_hu) == (None,) * 7
    with pytest.raises(ValueError, match="only when the score is withheld"):
        RegionScore(region="LAD", agatston=None, volume_mm3=3.0, mass_mg=None, n_lesions=1,
                    n_slice_lesions=None)
