"""vascalc review / rescore / agreement: the reader app's API, its reads store, and the
tables, SEG and SR rebuilt from the reads."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.review import ReviewConfig
from vascalc.outputs.arteries import whole
from vascalc.review.agreement import cohen_kappa, icc_2_1, icc_2_1_ci, kappa_ci
from vascalc.review.server import ReviewApp, make_server
from vascalc.review.store import ReadStore

from tests import dciodvfy
from tests.dciodvfy import needs_dciodvfy
from tests.test_reports import artery_cells, read, reported  # noqa: F401 - reported: a fixture

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def out(reported, tmp_path):  # noqa: F811 - the fixture imported above
    """A copy of the sample phantoms' run with reports (SEG, SR) for each test to read into."""
    dest = tmp_path / "out"
    shutil.copytree(reported, dest)
    return dest


@contextmanager
def serving(out: Path, reader: str = "r1", *, readers=(), adjudicator=None):
    state = ReviewApp(out, reader=reader, readers=readers, adjudicator=adjudicator)
    server = make_server(state, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def call(base: str, method: str, path: str, *, token: str | None = None, body=None,
         host: str | None = None, raw: bytes | None = None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, method=method, data=data)
    if token is not None:
        req.add_header("X-Vascalc-Token", token)
    if host is not None:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def lesion_ids(out: Path, case_id: str) -> list[int]:
    return sorted({int(r["lesion_id"]) for r in read(out / "lesions.csv") if r["case_id"] == case_id})


def test_api_answers_with_the_documented_status_codes(out):
    with serving(out) as (state, base):
        tok = state.token
        port = base.rsplit(":", 1)[1]
        assert call(base, "GET", "/api/cases")[0] == 403  # no token
        assert call(base, "GET", "/api/cases", token="x" * 32)[0] == 403  # wrong token
        assert call(base, "GET", "/api/cases", token=tok, host=f"evil.example:{port}")[0] == 403
        assert call(base, "PUT", "/api/cases/P02/lesions/2", body={"label": "LAD"})[0] == 403
        status, body = call(base, "GET", "/api/cases", token=tok)
        cases = json.loads(body)
        assert status == 200 and [c["case_id"] for c in cases] == sorted(
            r["case_id"] for r in read(out / "scans.csv"))
        assert {"case_id", "status", "progress"} <= set(cases[0])
        status, body = call(base, "GET", "/api/cases/P02/lesions", token=tok)
        lesions = json.loads(body)
        assert status == 200 and [le["lesion_id"] for le in lesions] == lesion_ids(out, "P02")
        assert all({"slices", "agatston", "volume_mm3", "label"} <= set(le) for le in lesions)
        # the lesions' Agatston scores are the run's (lesions.csv sums the region pieces)
        by_id: dict[int, float] = {}
        for r in read(out / "lesions.csv"):
            if r["case_id"] == "P02":
                by_id[int(r["lesion_id"])] = by_id.get(int(r["lesion_id"]), 0.0) + float(r["agatston"])
        for le in lesions:
            assert le["agatston"] == pytest.approx(by_id[le["lesion_id"]], rel=1e-9)
        assert call(base, "GET", "/api/cases/NOPE/lesions", token=tok)[0] == 404
        assert call(base, "PUT", "/api/cases/NOPE/lesions/1", token=tok, body={"label": "LAD"})[0] == 404
        assert call(base, "PUT", "/api/cases/P02/lesions/999", token=tok, body={"label": "LAD"})[0] == 404
        assert call(base, "PUT", "/api/cases/P02/lesions/x1", token=tok, body={"label": "LAD"})[0] == 404
        off = next(k for k in range(1000) if k not in lesions[1]["slices"])
        assert call(base, "PUT", f"/api/cases/P02/lesions/{lesions[1]['lesion_id']}/slices/{off}",
                    token=tok, body={"label": "LAD"})[0] == 404
        assert call(base, "GET", "/api/cases/P02/image/100000", token=tok)[0] == 404
        status, body = call(base, "PUT", "/api/cases/P02/lesions/2", token=tok,
                            body={"label": "LADX", "reader": "r1"})
        err = json.loads(body)
        assert status == 400 and "LADX" in err["error"] and err["allowed"][:4] == [
            "LM", "LAD", "LCX", "RCA"]
        assert call(base, "PUT", "/api/cases/P02/lesions/2", token=tok, raw=b"{nope")[0] == 400
        assert call(base, "PUT", "/api/cases/P02/lesions/2", token=tok, body={"label": 3})[0] == 400
        # a label's title or another spelling of it names it too
        for given, name in (("aortic valve", "aortic_valve"), ("noise/artefact", "noise"),
                            ("lad", "LAD")):
            assert call(base, "PUT", "/api/cases/P02/lesions/5", token=tok,
                        body={"label": given})[0] == 200
            assert state.store.reads("r1", "P02").lesion[5] == name
        # the token is r1's: a body naming anyone else is refused (#22)
        assert call(base, "PUT", "/api/cases/P02/lesions/2", token=tok,
                    body={"label": "LAD", "reader": "bad name!"})[0] == 403
        assert call(base, "POST", "/api/cases", token=tok)[0] == 405
        for header in (f"token {tok}", f"Bearer {tok}"):  # other ways to carry the token
            req = urllib.request.Request(base + "/api/cases", headers={"Authorization": header})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
        assert call(base, "GET", f"/api/cases?token={tok}")[0] == 200
        assert call(base, "GET", "/api/cases?token=wrong")[0] == 403
        with urllib.request.urlopen(f"{base}/?token={tok}", timeout=30) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
        req = urllib.request.Request(base + "/api/cases", headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        status, body = call(base, "PUT", "/api/cases/P02/lesions/2", token=tok,
                            body={"label": "LAD", "reader": "r1"})
        assert status == 200 and json.loads(body)["scores"]["labels"]["LAD"]["agatston"] > 0
        status, body = call(base, "GET", "/api/cases/P02/image/9", token=tok)
        shape = json.loads(call(base, "GET", "/api/cases/P02", token=tok)[1])["shape"]
        assert status == 200 and len(body) == 2 * shape[1] * shape[2]
        ids = np.frombuffer(call(base, "GET", "/api/cases/P02/lesionmap/9", token=tok)[1], "<i4")
        assert set(np.unique(ids)) - {0} <= set(lesion_ids(out, "P02")) and ids.any()
        assert call(base, "GET", "/", host=f"localhost:{port}")[0] == 200  # the page itself
        # a failed case has nothing to review: 409 with its error, never an empty list
        state.docs["P04"]["scan"].update(status="failed", error_code="NOT_DICOM", error="x.dcm")
        status, body = call(base, "GET", "/api/cases/P04/lesions", token=tok)
        assert status == 409 and "NOT_DICOM" in json.loads(body)["error"]


def test_two_readers_write_at_once_and_every_change_is_kept(out):
    ids = lesion_ids(out, "P02")
    labels = ["LM", "LAD", "LCX", "RCA", "bone"]
    with serving(out, readers=["r2"]) as (state, base):
        errors = []

        def reader(name: str, offset: int) -> None:
            for i in range(30):
                lid = ids[i % len(ids)]
                status, _ = call(base, "PUT", f"/api/cases/P02/lesions/{lid}",
                                 token=state.token_of(name),
                                 body={"label": labels[(i + offset) % 5], "reader": name})
                if status != 200:
                    errors.append((name, i, status))

        threads = [threading.Thread(target=reader, args=(n, k)) for n, k in (("r1", 0), ("r2", 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
    store = ReadStore(out)
    assert len(store.history("P02")) == 60
    for name, offset in (("r1", 0), ("r2", 2)):
        last = {}
        for i in range(30):
            last[ids[i % len(ids)]] = labels[(i + offset) % 5]
        assert store.reads(name, "P02").lesion == last
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE reads SET label = 'RCA'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM reads")
    db.close()


def test_a_killed_server_keeps_every_acknowledged_read(out):
    ids = lesion_ids(out, "P03")

    proc, base, tok = start_server(out)
    acked = {}
    try:
        for i, lid in enumerate(ids):
            label = ["LAD", "RCA", "LCX"][i % 3]
            status, _ = call(base, "PUT", f"/api/cases/P03/lesions/{lid}", token=tok,
                             body={"label": label, "reader": "r1"})
            assert status == 200
            acked[lid] = label
    finally:
        stop(proc, kill=True)
    assert acked and ReadStore(out).reads("r1", "P03").lesion == acked
    proc, base, tok = start_server(out)  # a new server, a new token; the reads are there
    try:
        lesions = json.loads(call(base, "GET", "/api/cases/P03/lesions?reader=r1", token=tok)[1])
        assert {le["lesion_id"]: le["label"] for le in lesions} == acked
    finally:
        stop(proc)


def start_server(out: Path, reader: str = "r1"):
    """`vascalc review` in its own process: (process, base URL, token)."""
    proc = subprocess.Popen([sys.executable, "-m", "vascalc.cli", "review", str(out),
                             "--port", "0", "--reader", reader], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(20):
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([\w-]+)", line)
        if m:
            return proc, m.group(1), m.group(2)
    proc.kill()
    raise AssertionError(proc.stderr.read())


def stop(proc, kill: bool = False) -> None:
    if kill:
        os.kill(proc.pid, signal.SIGKILL)
    else:
        proc.terminate()
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()


def _label_p02(base: str, tok: str, reader: str = "r1", *, done: bool = True) -> dict:
    """LAD, LM (with a slice of one LAD lesion as LM), RCA, LCX, bone and noise on P02, the
    case marked done (unless ``done`` is false); the scores the page then shows."""
    lesions = json.loads(call(base, "GET", f"/api/cases/P02/lesions?reader={reader}", token=tok)[1])
    by = {le["lesion_id"]: le for le in lesions}
    plan = {1: "bone", 2: "LAD", 3: "LAD", 4: "RCA", 5: "LCX", 6: "noise", 8: "LM"}
    for lid, label in plan.items():
        assert call(base, "PUT", f"/api/cases/P02/lesions/{lid}", token=tok,
                    body={"label": label, "reader": reader})[0] == 200
    split = by[3]["slices"][0]
    status, body = call(base, "PUT", f"/api/cases/P02/lesions/3/slices/{split}", token=tok,
                        body={"label": "LM", "reader": reader})
    assert status == 200
    scores = json.loads(body)["scores"]
    assert scores["pending"] and scores["risk_category"] == scores["cac_drs"] == ""
    if not done:
        return scores
    # lesion 7 stays unlabelled: done is refused until the reader confirms it is not coronary
    status, body = call(base, "PUT", "/api/cases/P02/done", token=tok,
                        body={"done": True, "reader": reader})
    refused = json.loads(body)
    assert status == 409 and refused["needs_confirmation"] is True, refused
    assert refused["unlabelled_volume_mm3"] > 0 and "confirm" in refused["error"]
    status, body = call(base, "PUT", "/api/cases/P02/done", token=tok,
                        body={"done": True, "reader": reader, "rest_not_coronary": True})
    assert status == 200 and json.loads(body)["rest_confirmed_not_coronary"] is True
    status, body = call(base, "GET", f"/api/cases/P02/scores?reader={reader}", token=tok)
    assert status == 200
    return json.loads(body)


def test_only_finished_reads_become_numbers(out):
    """A read not marked done: rescore keeps the run's result (and says so); with
    --include-unfinished the partial labels are scored, flagged review_incomplete, with no
    risk category or CAC-DRS; marking the case done gives the category; unmarking it again
    puts the run's result back. The unlabelled calcium is in the row."""
    before = next(r for r in read(out / "scans.csv") if r["case_id"] == "P02")
    with serving(out) as (state, base):
        shown = _label_p02(base, state.token, done=False)
    assert shown["pending"] and shown["risk_category"] == ""
    res = CliRunner().invoke(app, ["rescore", str(out)], catch_exceptions=False)
    assert res.exit_code == 0 and "not marked done kept the run's result: P02" in res.output
    kept = next(r for r in read(out / "scans.csv") if r["case_id"] == "P02")
    assert kept == before and kept["region_source"] != "reader"
    res = CliRunner().invoke(app, ["rescore", str(out), "--include-unfinished"],
                             catch_exceptions=False)
    assert res.exit_code == 0 and "review incomplete" in res.output
    partial = next(r for r in read(out / "scans.csv") if r["case_id"] == "P02")
    assert partial["region_source"] == "reader" and partial["scope"] == "coronary"
    assert float(partial["agatston"]) > 0 and partial["review_done"] == "false"
    assert "review_incomplete" in partial["quality_flags"].split(";")
    assert partial["risk_category"] == partial["cac_drs"] == partial["cac_drs_vessels"] == ""
    assert "not marked the case done" in partial["risk_basis"]
    # lesion 7 was left unlabelled: its calcium is in the row, and in 'outside'
    outside = next(r for r in read(out / "regions.csv") if r["case_id"] == "P02"
                   and r["region"] == "outside")
    assert float(partial["unlabelled_agatston"]) == pytest.approx(float(outside["agatston"]))
    assert float(partial["unlabelled_agatston"]) == pytest.approx(shown["unlabelled_agatston"])
    assert int(partial["unlabelled_n_lesions"]) >= 1 and float(partial["unlabelled_volume_mm3"]) > 0
    store = ReadStore(out)
    # done without the confirmation (a database written by hand, or an earlier vascalc):
    # calcium stays unlabelled, so it is no final; the run's result is kept, and said
    store.mark(reader="r1", case_id="P02", done=True)
    res = CliRunner().invoke(app, ["rescore", str(out)])
    assert res.exit_code == 0 and "no confirmation that it is not coronary" in res.output
    assert next(r for r in read(out / "scans.csv") if r["case_id"] == "P02") == before
    store.mark(reader="r1", case_id="P02", done=True, rest_not_coronary=True)
    assert CliRunner().invoke(app, ["rescore", str(out)]).exit_code == 0
    final = next(r for r in read(out / "scans.csv") if r["case_id"] == "P02")
    assert final["review_done"] == "true" and final["risk_category"] != ""
    assert final["rest_confirmed_not_coronary"] == "true" and final["rest_confirmed_at"]
    assert "review_incomplete" not in final["quality_flags"] and final["cac_drs"] != ""
    store.mark(reader="r1", case_id="P02", done=False)
    assert CliRunner().invoke(app, ["rescore", str(out)]).exit_code == 0
    assert next(r for r in read(out / "scans.csv") if r["case_id"] == "P02") == before


def test_rescore_sums_are_exact_bone_and_noise_stay_out_and_reruns_are_identical(out):
    with serving(out) as (state, base):
        shown = _label_p02(base, state.token)
    res = CliRunner().invoke(app, ["rescore", str(out), "--reader", "r1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    regions = {r["region"]: r for r in read(out / "regions.csv") if r["case_id"] == "P02"}
    pieces = [r for r in read(out / "lesions.csv") if r["case_id"] == "P02"]
    scan = next(r for r in read(out / "scans.csv") if r["case_id"] == "P02")
    arteries = ["LM", "LAD", "LCX", "RCA"]
    for name in arteries + ["bone", "noise"]:
        assert regions[name]["region_source"] == "reader"
        own = [float(p["agatston"]) for p in pieces if p["region"] == name]
        assert float(regions[name]["agatston"]) == pytest.approx(math.fsum(own), rel=1e-9, abs=1e-9)
        # the app showed the same number while the reader labelled
        assert float(regions[name]["agatston"]) == pytest.approx(
            shown["labels"][name]["agatston"], rel=1e-9, abs=1e-9)
    # lesion 3 is split: one slice LM, the rest LAD
    assert sorted(p["region"] for p in pieces if p["lesion_id"] == "3") == ["LAD", "LM"]
    total = math.fsum(float(regions[a]["agatston"]) for a in arteries)
    assert scan["scope"] == "coronary" and scan["region_source"] == "reader"
    assert float(scan["agatston"]) == pytest.approx(total, rel=1e-12)
    assert float(scan["agatston"]) == pytest.approx(shown["coronary_agatston"], rel=1e-9)
    not_coronary = math.fsum(float(p["agatston"]) for p in pieces if p["region"] in ("bone", "noise"))
    assert not_coronary > 0 and float(scan["coronary_agatston"]) == pytest.approx(total, rel=1e-12)
    bounds = [10.0, 100.0, 400.0]
    expected = "0" if total == 0 else next(
        (lab for b, lab in zip(bounds, ["1 to 10", "11 to 100", "101 to 400"]) if total <= b), ">400")
    assert scan["risk_category"] == expected == shown["risk_category"]
    n = sum(1 for a in arteries if float(regions[a]["agatston"]) > 0)
    assert scan["cac_drs_vessels"] == f"N{n}" == shown["cac_drs_vessels"] and n == 4
    # the masks' partition is not lost: regions_masks.csv holds it, and each of the two
    # tables sums to the scan's all-calcium total on its own
    masks = {r["region"]: r for r in read(out / "regions_masks.csv") if r["case_id"] == "P02"}
    assert {"aorta", "outside"} <= set(masks) and "LAD" not in masks
    assert {r["region_source"] for r in masks.values()} == {"nifti_masks"}
    for table in (regions, masks):
        assert math.fsum(float(r["agatston"]) for r in table.values()) == pytest.approx(
            float(scan["all_calcium_agatston"]), rel=1e-9)
    assert not [r for r in read(out / "regions_masks.csv") if r["case_id"] == "P01_T1"]
    report = (out / "cases" / "P02" / "report.html").read_text()  # the per-artery table
    table = artery_cells(report)
    for a in arteries:
        assert table[a][0] == whole(regions[a]["agatston"]), a
    assert "Left main: involved" in report
    before = {t: (out / f"{t}.csv").read_bytes() for t in ("scans", "regions", "lesions",
                                                          "regions_masks")}
    res = CliRunner().invoke(app, ["rescore", str(out)], catch_exceptions=False)  # one reader
    assert res.exit_code == 0, res.output
    assert {t: (out / f"{t}.csv").read_bytes() for t in before} == before
    # the cases nobody read keep their run's results
    other = next(r for r in read(out / "scans.csv") if r["case_id"] == "P01_T1")
    assert other["region_source"] != "reader"


def test_rescore_writes_seg_and_sr_per_artery(out):
    with serving(out) as (state, base):
        _label_p02(base, state.token)
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    case = out / "cases" / "P02"
    report = (case / "report.html").read_text()
    assert set(artery_cells(report)) == {"LM", "LAD", "LCX", "RCA"}
    assert "final</span>" in report and "read by r1, marked done" in report
    seg = pydicom.dcmread(case / "calcium.seg.dcm")
    segments = {s.SegmentLabel: s for s in seg.SegmentSequence}
    assert {"LM", "LAD", "LCX", "RCA", "bone", "noise"} <= set(segments)
    assert segments["LAD"].AnatomicRegionSequence[0].CodeValue == "59438005"
    assert segments["RCA"].AnatomicRegionSequence[0].CodeValue == "13647002"
    sr = pydicom.dcmread(case / "scores.sr.dcm")
    sites = {}

    def walk(items, group=None):
        for it in items:
            name = it.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in it else ""
            if name == "125007":  # measurement group
                group = {}
                sites[id(it)] = group
            if group is not None and name == "363698007":  # finding site
                group["site"] = it.ConceptCodeSequence[0].CodeValue
            if group is not None and name == "450360000":
                group["agatston"] = float(it.MeasuredValueSequence[0].NumericValue)
            walk(getattr(it, "ContentSequence", []), group)

    walk(sr.ContentSequence)
    got = {g["site"]: g["agatston"] for g in sites.values() if "site" in g}
    regions = {r["region"]: float(r["agatston"]) for r in read(out / "regions.csv")
               if r["case_id"] == "P02"}
    codes = {"LM": "3227004", "LAD": "59438005", "LCX": "57396003", "RCA": "13647002"}
    assert got == pytest.approx({codes[a]: regions[a] for a in codes}, rel=1e-9)


@needs_dciodvfy
def test_a_readers_final_seg_and_sr_pass_dciodvfy(out):
    with serving(out) as (state, base):
        _label_p02(base, state.token)
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    for name in ("calcium.seg.dcm", "scores.sr.dcm"):
        assert dciodvfy.problems(out / "cases" / "P02" / name) == [], name


def test_rescore_refuses_an_unknown_reader_and_a_choice_among_several(out):
    store = ReadStore(out)
    res = CliRunner().invoke(app, ["rescore", str(out)])
    assert res.exit_code == 2 and "0 readers" in res.output
    store.add(reader="r1", case_id="P02", lesion_id=2, slice_index=None, label="LAD")
    store.add(reader="r2", case_id="P02", lesion_id=2, slice_index=None, label="RCA")
    res = CliRunner().invoke(app, ["rescore", str(out)])
    assert res.exit_code == 2 and "--reader" in res.output
    res = CliRunner().invoke(app, ["rescore", str(out), "--reader", "r9"])
    assert res.exit_code == 2 and "r9" in res.output


def test_icc_and_kappa_against_published_and_hand_values():
    # Shrout and Fleiss 1979, Table 2: 6 targets x 4 judges; ICC(2,1) = 0.29
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
                  [6, 2, 4, 7]], dtype=float)
    assert icc_2_1(x)[0] == pytest.approx(0.2898, abs=5e-4)
    assert icc_2_1(x[:1])[0] is None
    assert icc_2_1(np.ones((3, 2)))[0] is None  # no variance: undefined, not NaN
    # p_o = 3/4, p_e = 1/2 * 1/4 + 1/2 * 3/4 = 1/2: kappa = 0.5
    assert cohen_kappa(list("AABB"), list("ABBB"))[0] == pytest.approx(0.5)
    value, why = cohen_kappa(list("AAA"), list("AAA"))
    assert value is None and "p_e = 1" in why


def test_confidence_intervals_of_icc_and_kappa():
    # Shrout and Fleiss 1979, Table 2; R psych::ICC prints ICC2 0.29, lower 0.019, upper 0.76
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
                  [6, 2, 4, 7]], dtype=float)
    low, high = icc_2_1_ci(x)
    assert low == pytest.approx(0.019, abs=5e-4) and high == pytest.approx(0.761, abs=5e-4)
    assert icc_2_1_ci(np.ones((3, 2))) is None
    lo80, hi80 = icc_2_1_ci(x, level=0.80)
    assert low < lo80 < icc_2_1(x)[0] < hi80 < high
    # kappa: statsmodels' interval equals kappa +- 1.96 SE with Fleiss, Cohen and Everitt's
    # (1969) standard error, computed here by hand from the table of proportions
    a = list("AAAAABBBBBCCCAAB" * 3)
    b = list("AABAABBBCBCCAACB" * 3)
    cats = sorted(set(a) | set(b))
    n = len(a)
    p = np.array([[sum(1 for u, v in zip(a, b) if (u, v) == (ci, cj)) / n for cj in cats]
                  for ci in cats])
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    kappa = cohen_kappa(a, b)[0]
    pe = float(rows @ cols)
    diag = sum(p[i, i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2 for i in range(len(cats)))
    off = (1 - kappa) ** 2 * sum(p[i, j] * (cols[i] + rows[j]) ** 2 for i in range(len(cats))
                                 for j in range(len(cats)) if i != j)
    se = math.sqrt((diag + off - (kappa - pe * (1 - kappa)) ** 2) / (n * (1 - pe) ** 2))
    low, high = kappa_ci(a, b)
    assert low == pytest.approx(kappa - 1.959964 * se, abs=1e-6)
    assert high == pytest.approx(kappa + 1.959964 * se, abs=1e-6)
    assert kappa_ci(list("AAA"), list("AAA")) is None


def test_agreement_of_two_readers(out):
    with serving(out, readers=["r2"]) as (state, base):
        _label_p02(base, state.token_of("r1"), "r1")
        _label_p02(base, state.token_of("r2"), "r2")
        # P03: the readers differ on one lesion
        ids = lesion_ids(out, "P03")
        for reader in ("r1", "r2"):
            for lid in ids:
                label = "RCA" if (reader == "r2" and lid == ids[0]) else "LAD"
                assert call(base, "PUT", f"/api/cases/P03/lesions/{lid}",
                            token=state.token_of(reader),
                            body={"label": label, "reader": reader})[0] == 200
        # P01_T1: labelled by both, finished by r1 only: not a pair of readings to compare
        first = lesion_ids(out, "P01_T1")[0]
        for reader in ("r1", "r2"):
            assert call(base, "PUT", f"/api/cases/P01_T1/lesions/{first}",
                        token=state.token_of(reader),
                        body={"label": "LAD", "reader": reader})[0] == 200
    store = ReadStore(out)
    store.mark(reader="r1", case_id="P01_T1", done=True)
    for reader in ("r1", "r2"):
        store.mark(reader=reader, case_id="P03", done=True)
    res = CliRunner().invoke(app, ["agreement", str(out), "--readers", "r1,r2"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "left out: P01_T1 (r2): not marked done" in res.output
    left = read(out / "agreement" / "agreement_left_out.csv")
    assert [(r["case_id"], r["reader"], r["reason"]) for r in left] == [
        ("P01_T1", "r2", "not marked done")]
    rows = {r["measure"]: r for r in read(out / "agreement" / "agreement.csv")}
    per_case = read(out / "agreement" / "agreement_cases.csv")
    assert rows["coronary_total_agatston"]["n"] == "2"
    # the coronary totals agree on P02 and P03 (LAD and RCA are both coronary)
    totals = [(float(r["reader_a"]), float(r["reader_b"])) for r in per_case
              if r["measure"] == "coronary_total"]
    assert all(a == b for a, b in totals)
    assert float(rows["coronary_total_agatston"]["value"]) == pytest.approx(1.0)
    lad = np.array([(float(r["reader_a"]), float(r["reader_b"])) for r in per_case
                    if r["measure"] == "LAD"])
    assert float(rows["LAD_agatston"]["value"]) == pytest.approx(icc_2_1(lad)[0])
    assert float(rows["LAD_agatston"]["value"]) < 1.0
    assert 0 < float(rows["lesion_label"]["value"]) < 1.0
    assert (out / "agreement" / "agreement.html").read_text().count("<tr>") >= len(rows)
    res = CliRunner().invoke(app, ["agreement", str(out), "--readers", "r1"])
    assert res.exit_code == 2
    for case in ("P02", "P03"):
        store.mark(reader="r2", case_id=case, done=False)
    res = CliRunner().invoke(app, ["agreement", str(out), "--readers", "r1,r2"])
    assert res.exit_code == 2 and "no case that both finished" in res.output
    assert "P02 (r2): not marked done" in res.output


def test_readers_are_isolated_and_blinded_and_only_the_adjudicator_sees_all(out):
    """#22: one token served every reader, GET .../lesions returned every reader's labels,
    ?reader=r2 showed r2's work and a PUT with "reader": "r2" wrote as r2. Now a token per
    reader fixes who reads and writes; the adjudicator's token alone shows the others."""
    lid = lesion_ids(out, "P02")[0]
    path = f"/api/cases/P02/lesions/{lid}"
    with serving(out, readers=["r2"], adjudicator="chief") as (state, base):
        t1, t2, tc = (state.token_of(r) for r in ("r1", "r2", "chief"))
        assert len({t1, t2, tc}) == 3
        assert call(base, "PUT", path, token=t1, body={"label": "LAD"})[0] == 200
        assert call(base, "PUT", path, token=t2, body={"label": "RCA"})[0] == 200
        # a reader cannot write as, or look at, another reader
        status, body = call(base, "PUT", path, token=t1, body={"label": "LCX", "reader": "r2"})
        assert status == 403 and b"cannot write as" in body
        assert call(base, "PUT", "/api/cases/P02/done", token=t1,
                    body={"done": True, "reader": "r2"})[0] == 403
        assert call(base, "GET", "/api/cases/P02/lesions?reader=r2", token=t1)[0] == 403
        assert call(base, "GET", "/api/cases/P02/scores?reader=r2", token=t1)[0] == 403
        # blinded: r1 sees only r1's label, and no list of the other readers
        mine = {le["lesion_id"]: le for le in json.loads(call(base, "GET", "/api/cases/P02/lesions",
                                                              token=t1)[1])}
        assert mine[lid]["label"] == "LAD" and "labels" not in mine[lid]
        assert b"r2" not in call(base, "GET", "/api/cases/P02/lesions", token=t1)[1]
        cfg = json.loads(call(base, "GET", "/api/config", token=t1)[1])
        assert cfg["me"] == "r1" and cfg["readers"] == ["r1"] and not cfg["adjudicator"]
        # the adjudicator sees both readers' labels and can open either reader's work
        seen = {le["lesion_id"]: le for le in json.loads(call(base, "GET", "/api/cases/P02/lesions",
                                                              token=tc)[1])}
        assert seen[lid]["labels"] == {"r1": "LAD", "r2": "RCA"} and seen[lid]["label"] == ""
        of_r2 = json.loads(call(base, "GET", "/api/cases/P02/lesions?reader=r2", token=tc)[1])
        assert {le["lesion_id"]: le["label"] for le in of_r2}[lid] == "RCA"
        # ... but writes as itself only
        assert call(base, "PUT", path, token=tc, body={"label": "LM", "reader": "r1"})[0] == 403
        assert call(base, "PUT", path, token=tc, body={"label": "LM"})[0] == 200
    store = ReadStore(out)
    assert {r: store.reads(r, "P02").lesion[lid] for r in ("r1", "r2", "chief")} == {
        "r1": "LAD", "r2": "RCA", "chief": "LM"}
    with pytest.raises(ValueError, match="of their own"):
        ReviewApp(out, readers=["r1", "r1"])
    # the CLI prints one URL per reader, each with its own token
    from vascalc.review import server as srv

    state = ReviewApp(out, readers=["a", "b"], adjudicator="c")
    server = srv.make_server(state, port=0)
    try:
        urls = dict((who.reader, url) for who, url in srv.urls_of(server, state))
    finally:
        server.server_close()
    assert {r: url.rsplit("token=", 1)[1] for r, url in urls.items()} == {
        r: state.token_of(r) for r in "abc"}


def test_review_labels_config_is_checked():
    with pytest.raises(ValueError, match="key '1' is given twice"):
        ReviewConfig.model_validate({"labels": [
            {"name": "LM", "class": "coronary", "key": "1", "colour": "#ff0000"},
            {"name": "LAD", "class": "coronary", "key": "1", "colour": "#00ff00"}]})
    with pytest.raises(ValueError, match="colour"):
        ReviewConfig.model_validate({"labels": [
            {"name": "LM", "class": "coronary", "key": "1", "colour": "red"}]})
    with pytest.raises(ValueError, match="reserved"):
        ReviewConfig.model_validate({"labels": [
            {"name": "outside", "class": "other", "key": "o", "colour": "#ff0000"}]})
    assert ReviewConfig().coronary() == ["LM", "LAD", "LCX", "RCA"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTEFACTS = ROOT / "results" / "test-artefacts"


@pytest.mark.skipif(CHROMIUM is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_reader_labels_lesions_in_a_real_browser(out):
    """Click and key presses label lesions (whole, and one slice); a reload keeps them; the
    per-artery numbers the page shows are the ones rescore writes."""
    pw = pytest.importorskip("playwright.sync_api")
    from tests.test_reports import BROWSER_ARGS

    proc, base, tok = start_server(out)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            console = []
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
            n_lesions = len(lesion_ids(out, "P02"))

            def open_p02():
                page.goto(f"{base}/?token={tok}")
                page.wait_for_selector("#lesions tbody tr")
                assert "token" not in page.url  # #22: it left the address bar
                names = page.eval_on_selector_all("#case option", "os => os.map(o => o.textContent)")
                page.select_option("#case", index=next(i for i, n in enumerate(names)
                                                       if n.startswith("P02 ")))
                page.wait_for_function(f"document.querySelectorAll('#lesions tbody tr').length "
                                       f"=== {n_lesions} && document.querySelector("
                                       "'#lesions tbody tr td').textContent === '1'")
                page.wait_for_selector("#score-LAD")

            def label_cell(lid):
                return page.inner_text(f"#lesions tbody tr[data-lesion='{lid}'] td.label").strip()

            open_p02()
            page.click("#lesions tbody tr[data-lesion='2']")
            page.keyboard.press("2")  # LAD
            page.wait_for_function("document.querySelector(\"#lesions tbody tr[data-lesion='2'] "
                                   "td.label\").textContent.includes('LAD')")
            page.click("#lesions tbody tr[data-lesion='1']")
            page.keyboard.press("b")  # bone
            page.wait_for_function("document.querySelector(\"#lesions tbody tr[data-lesion='1'] "
                                   "td.label\").textContent.includes('bone')")
            # lesion 4 by a click on the image, at one of its voxels on the slice shown
            lesions = json.loads(call(base, "GET", "/api/cases/P02/lesions", token=tok)[1])
            target = next(le for le in lesions if le["lesion_id"] == 4)["slices"][0]
            k = int(page.inner_text("#slice-info").split()[1]) - 1
            for _ in range(abs(target - k)):  # scroll there with the arrow keys
                page.keyboard.press("ArrowDown" if target > k else "ArrowUp")
            page.wait_for_function(f"document.querySelector('#slice-info').textContent"
                                   f".startsWith('slice {target + 1} of')")
            k = target
            shape = json.loads(call(base, "GET", "/api/cases/P02", token=tok)[1])["shape"]
            ids = np.frombuffer(call(base, "GET", f"/api/cases/P02/lesionmap/{k}", token=tok)[1],
                                "<i4").reshape(shape[1:])
            rows, cols = np.nonzero(ids == 4)
            assert rows.size, "lesion 4 is not on the slice the page shows"
            r, c = int(np.median(rows)), int(np.median(cols))
            box = page.locator("#img").bounding_box()
            page.mouse.click(box["x"] + (c + 0.5) / shape[2] * box["width"],
                             box["y"] + (r + 0.5) / shape[1] * box["height"])
            page.wait_for_function("document.querySelector('#slice-info').textContent"
                                   ".includes('lesion 4 selected')")
            page.keyboard.press("4")  # RCA
            page.wait_for_function("document.querySelector(\"#lesions tbody tr[data-lesion='4'] "
                                   "td.label\").textContent.includes('RCA')")
            # one slice of lesion 3 as LM (shift: this slice only), the lesion as LAD
            page.click("#lesions tbody tr[data-lesion='3']")
            page.keyboard.press("2")
            page.wait_for_function("document.querySelector(\"#lesions tbody tr[data-lesion='3'] "
                                   "td.label\").textContent.includes('LAD')")
            page.keyboard.press("Shift+Digit1")
            page.wait_for_function("document.querySelector(\"#lesions tbody tr[data-lesion='3'] "
                                   "td.label\").textContent.includes('LM@')")
            # the run's masks suggest aorta for the rest: one click confirms them all
            page.click("#accept")
            page.wait_for_function("document.querySelector(\"#lesions tbody tr[data-lesion='11'] "
                                   "td.label\").textContent.includes('aorta')")
            shown_before = page.inner_text("#scores")
            page.reload()
            open_p02()
            assert label_cell(2) == "LAD" and label_cell(1) == "bone" and label_cell(4) == "RCA"
            assert label_cell(3).startswith("LAD") and "LM@" in label_cell(3)
            assert label_cell(5) == "aorta"
            assert page.inner_text("#scores") == shown_before
            # no category until the reader marks the case done
            assert page.inner_text("#risk") == page.inner_text("#cacdrs") == "pending"
            page.check("#done")
            page.wait_for_function("document.querySelector('#risk').textContent !== 'pending'")
            page.click("#lesions tbody tr[data-lesion='3']")
            page.screenshot(path=str(ARTEFACTS / "review.png"))
            shown = {a: page.inner_text(f"#score-{a}") for a in ("LM", "LAD", "LCX", "RCA",
                                                                 "coronary")}
            shown["risk"] = page.inner_text("#risk")
            assert [c for c in console if c[0] in ("error", "pageerror")] == []
            browser.close()
    finally:
        stop(proc)
    res = CliRunner().invoke(app, ["rescore", str(out), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    regions = {r["region"]: r for r in read(out / "regions.csv") if r["case_id"] == "P02"}
    scan = next(r for r in read(out / "scans.csv") if r["case_id"] == "P02")
    for a in ("LM", "LAD", "LCX", "RCA"):
        assert shown[a] == f"{float(regions[a]['agatston']):.2f}", a
    assert shown["coronary"] == f"{float(scan['agatston']):.2f}"
    assert shown["risk"] == scan["risk_category"]
    assert float(regions["LM"]["agatston"]) > 0 and float(regions["bone"]["agatston"]) > 0
    assert float(regions["aorta"]["agatston"]) > 0 and float(regions["outside"]["agatston"]) == 0


def test_the_review_server_refuses_hostile_requests_with_400(out):
    """#22: an unhashable label or JSON nested 30,000 deep answered 500; Content-Length -1 read
    to the end of the stream; no frame protection; a half-sent request held a thread."""
    import socket

    from vascalc.review import server as srv

    with serving(out) as (state, base):
        tok = state.token
        lid = lesion_ids(out, "P02")[0]
        path = f"/api/cases/P02/lesions/{lid}"
        status, body = call(base, "PUT", path, token=tok, body={"label": ["LAD"], "reader": "r1"})
        assert status == 400 and b"must be a string" in body
        deep = b'{"label": ' + b"[" * 30000 + b"]" * 30000 + b"}"
        status, body = call(base, "PUT", path, token=tok, raw=deep)
        assert status == 400 and b"nested deeper" in body
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Vascalc-Token: {tok}\r\n"
                      "Content-Length: -1\r\n\r\n".encode())
            assert s.recv(4096).split(b"\r\n")[0].split()[1] == b"400"
        req = urllib.request.Request(base + "/api/cases", headers={"X-Vascalc-Token": tok})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    # a silent connection is closed after the timeout, not held for ever
    server = srv.make_server(srv.ReviewApp(out, reader="r1"), port=0)
    try:
        assert server.RequestHandlerClass.timeout == srv.REQUEST_TIMEOUT_S <= 60
    finally:
        server.server_close()


def test_reads_made_on_another_lesion_set_are_refused(out, sample_data, tmp_path):
    """#22: the run's threshold changed from 130 to 140 HU, which renumbers the lesions, and
    rescore put the LAD read on an aortic speck without a word. Every read stores what
    identifies its lesion; rescore refuses reads whose lesion is another now, and the page's
    lesion list flags them."""
    with serving(out) as (state, base):
        _label_p02(base, state.token)
    assert CliRunner().invoke(app, ["rescore", str(out), "-q"]).exit_code == 0
    store = ReadStore(out)
    assert store.reads("r1", "P02").signatures  # stored with every read
    cfg = tmp_path / "c.yaml"
    cfg.write_text((ROOT / "configs" / "sample_data.yaml").read_text().replace(
        "scoring:\n", "scoring:\n  threshold_hu: 140\n", 1))
    res = CliRunner().invoke(app, ["run", str(sample_data / "manifest.csv"), "--out", str(out),
                                   "-c", str(cfg), "-j", "1", "-q", "--no-report"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["rescore", str(out)])
    assert res.exit_code == 2 and "were made on other lesions" in res.output
    with serving(out) as (state, base):
        status, body = call(base, "GET", "/api/cases/P02/lesions?reader=r1", token=state.token)
    assert status == 200 and any(le["read_on_other_lesion"] for le in json.loads(body))


def test_a_lan_bind_answers_to_the_machines_names(out):
    """#22: `vascalc review --host` with a LAN name answered 403 to the browser (the allow-list
    held only host:port as given). A wildcard bind answers to the machine's names and
    addresses and to loopback; a loopback bind only to loopback; another name stays 403."""
    import socket

    from vascalc.review.hosts import host_names

    assert host_names("127.0.0.1") == {"127.0.0.1", "localhost"}
    wide = host_names("0.0.0.0")
    assert {socket.gethostname(), "127.0.0.1", "localhost"} <= wide and "0.0.0.0" not in wide
    with serving(out) as (state, base):
        port = base.rsplit(":", 1)[1]
        assert call(base, "GET", "/api/cases", token=state.token,
                    host=f"evil.example:{port}")[0] == 403
