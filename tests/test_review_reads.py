"""The reader review path, attacked (#34 items 2 and 7, #35 items 12 and 13): nothing unread
becomes a result, one arithmetic for a reader's scores, reads follow their lesions by
geometry, and a server refuses writes on a run redone under it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.records import LesionLabels
from vascalc.review.scripted import write_reads
from vascalc.review.store import ReadStore

from tests.conftest import volume
from tests.test_reports import ROOT, read, reported  # noqa: F401 - reported: a fixture
from tests.test_review import call, lesion_ids, out, serving  # noqa: F401 - out: a fixture


def _row(out_dir: Path, case_id: str, table: str = "scans.csv") -> dict:
    return next(r for r in read(out_dir / table) if r["case_id"] == case_id)


def _done(base: str, tok: str, case_id: str, **extra):
    status, body = call(base, "PUT", f"/api/cases/{case_id}/done", token=tok,
                        body={"done": True, **extra})
    return status, json.loads(body)


# --- #34.2: nothing unread becomes a result ------------------------------------------------

def test_done_with_unlabelled_calcium_needs_the_readers_confirmation(out):  # noqa: F811 - the fixture imported above
    """The issue's case: 'done' with nothing labelled was accepted and rescore wrote a final
    'Agatston 0', CAC-DRS A0 and the statin statement over calcium nobody labelled. Now done
    is refused (409) with the amount; the explicit confirmation is recorded with the mark and
    its time; the rescored row, result.json and report carry it and the amount."""
    before = _row(out, "P02")
    everything = float(before["all_calcium_agatston"])
    with serving(out) as (state, base):
        status, refused = _done(base, state.token, "P02")
        assert status == 409 and refused["needs_confirmation"] is True
        assert refused["unlabelled_agatston"] == pytest.approx(everything)
        assert f"{refused['unlabelled_parts']} of " in refused["error"]
        assert "rest_not_coronary" in refused["error"]
        assert not ReadStore(out).reads("r1", "P02").done  # nothing was marked
        # a confirmation that is not a boolean is no confirmation
        assert _done(base, state.token, "P02", rest_not_coronary="yes")[0] == 400
        res = CliRunner().invoke(app, ["rescore", str(out), "-q"])
        assert res.exit_code == 2  # no reader has a read: nothing to rescore from
        status, body = _done(base, state.token, "P02", rest_not_coronary=True)
        assert status == 200 and body["rest_confirmed_not_coronary"] is True
        scores = json.loads(call(base, "GET", "/api/cases/P02/scores", token=state.token)[1])
        assert scores["final"] and scores["rest_confirmed_not_coronary"]
        assert scores["risk_category"] == "0" and scores["coronary_agatston"] == 0.0
    reads = ReadStore(out).reads("r1", "P02")
    assert reads.done and reads.rest_confirmed_at == body["at"]
    with sqlite3.connect(out / "reads.sqlite") as db:
        assert db.execute("SELECT done, rest_not_coronary, at FROM marks").fetchall() == [
            (1, 1, body["at"])]
    res = CliRunner().invoke(app, ["rescore", str(out), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = _row(out, "P02")
    assert row["scope"] == "coronary" and float(row["agatston"]) == 0.0
    assert row["review_done"] == "true" and row["rest_confirmed_not_coronary"] == "true"
    assert row["rest_confirmed_at"] == body["at"] and row["risk_category"] == "0"
    assert float(row["unlabelled_agatston"]) == pytest.approx(everything)
    assert float(row["unlabelled_volume_mm3"]) == pytest.approx(
        float(before["all_calcium_volume_mm3"]))
    doc = json.loads((out / "cases" / "P02" / "result.json").read_text())
    rec = doc["reads"]
    assert rec["rest_confirmed_not_coronary"] is True and rec["rest_confirmed_at"] == body["at"]
    assert rec["unlabelled_agatston"] == pytest.approx(everything) and rec["done"] is True
    assert rec["unlabelled_volume_mm3"] == pytest.approx(float(row["unlabelled_volume_mm3"]))
    dictionary = {r["name"]: r for r in read(out / "data_dictionary.csv")}
    assert dictionary["rest_confirmed_not_coronary"]["type"] == "boolean"
    assert "confirmed" in dictionary["rest_confirmed_not_coronary"]["meaning"]
    assert dictionary["unlabelled_volume_mm3"]["unit"] == "mm3"
    report = (out / "cases" / "P02" / "report.html").read_text()
    assert "Unlabelled calcium" in report and f"{float(row['unlabelled_volume_mm3']):,.1f}" in report
    assert f"confirmed by the reader ({body['at']})" in report
    assert "Grundy" in report  # a confirmed zero: the CAC = 0 statement is given


def test_a_label_changed_after_the_confirmation_lets_it_lapse(out):  # noqa: F811 - the fixture imported above
    """The confirmation covers what was unlabelled when the reader gave it: a read changed
    afterwards (a label cleared: more calcium unlabelled) needs a new confirmation."""
    with serving(out) as (state, base):
        first = lesion_ids(out, "P03")[0]
        assert call(base, "PUT", f"/api/cases/P03/lesions/{first}", token=state.token,
                    body={"label": "LAD"})[0] == 200
        status, body = _done(base, state.token, "P03", rest_not_coronary=True)
        assert status == 200
        scores = json.loads(call(base, "GET", "/api/cases/P03/scores", token=state.token)[1])
        assert scores["final"] and scores["risk_category"] != ""
        assert call(base, "PUT", f"/api/cases/P03/lesions/{first}", token=state.token,
                    body={"label": ""})[0] == 200
        scores = json.loads(call(base, "GET", "/api/cases/P03/scores", token=state.token)[1])
        assert scores["done"] and not scores["final"] and scores["risk_category"] == ""
        assert "did not confirm it is not coronary" in scores["risk_basis"]
    res = CliRunner().invoke(app, ["rescore", str(out)])
    assert res.exit_code == 0 and "no confirmation that it is not coronary" in res.output
    assert _row(out, "P03")["region_source"] != "reader"  # the run's result, not a final


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_final_zero_needs_a_confirmation_in_the_case_path(confirmed):
    """The mechanism is the case path's, not the server's: analyse with a done read that
    leaves calcium unlabelled gives no risk category and flags review_incomplete unless the
    reader confirmed the rest is not coronary (a database written by hand cannot make one)."""
    hu = np.zeros((4, 24, 24), dtype=np.int16)
    hu[1, 4:8, 4:8] = 450  # lesion 1
    hu[2, 14:18, 14:18] = 250  # lesion 2
    cfg = Config()
    labs = cfg.review.labels
    reads = LesionLabels(lesion={1: "aorta"}, slices={}, names=tuple(x.name for x in labs),
                         classes=tuple(x.label_class for x in labs), reader="r1", done=True,
                         done_at="2026-12-07T10:00:00+00:00",
                         rest_confirmed_at="2026-12-07T10:00:00+00:00" if confirmed else "")
    r = analyse(volume(hu, spacing=(3.0, 0.5, 0.5)), cfg, case_id="z", reads=reads)
    assert r.scope == "coronary" and r.headline is not None and r.headline.agatston == 0.0
    assert (r.risk_category == "0") is confirmed and (r.cac_drs == "A0") is confirmed
    assert ("review_incomplete" in r.quality_flags) is not confirmed
    if not confirmed:
        assert "unlabelled" in r.risk_basis and "did not confirm" in r.risk_basis


# --- #34.7: one arithmetic for a reader's scores -------------------------------------------

@pytest.mark.parametrize("scoring", [
    {"agatston": False},
    {"volume_method": "interpolated", "reference_increment_mm": 2.5},
], ids=["no_agatston", "interpolated_2_5mm"])
def test_page_agreement_and_rescore_give_one_readers_scores(sample_data, tmp_path, scoring):
    """The page's live scores and agreement computed a reader's scores with their own code
    (Agatston and a risk category under scoring.agatston: false; a voxel-count volume under
    interpolation); now all three are the case path's, equal on one case, and agreement
    leaves out reads rescore would refuse (stale here), saying which and why."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "sample_data.yaml").read_text())
    cfg.setdefault("scoring", {}).update(scoring)
    cfg["report"] = {"enabled": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out_dir = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(sample_data / "manifest.csv"), "--out",
                                   str(out_dir), "-c", str(tmp_path / "c.yaml"), "-j", "1",
                                   "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    plan = {1: "bone", 2: "LAD", 3: "LAD", 4: "RCA", 5: "LCX", 6: "noise", 8: "LM"}
    with serving(out_dir, readers=["r2"]) as (state, base):
        for reader in ("r1", "r2"):
            tok = state.token_of(reader)
            for lid, label in plan.items():
                assert call(base, "PUT", f"/api/cases/P02/lesions/{lid}", token=tok,
                            body={"label": label})[0] == 200
            assert _done(base, tok, "P02", rest_not_coronary=True)[0] == 200
            for lid in lesion_ids(out_dir, "P03"):
                assert call(base, "PUT", f"/api/cases/P03/lesions/{lid}", token=tok,
                            body={"label": "LAD"})[0] == 200
            assert _done(base, tok, "P03")[0] == 200
        page = json.loads(call(base, "GET", "/api/cases/P02/scores", token=state.token)[1])
    # r2's read of P03 made stale: rescore would refuse it, so agreement leaves it out
    first = lesion_ids(out_dir, "P03")[0]
    ReadStore(out_dir).add(reader="r2", case_id="P03", lesion_id=first, slice_index=None,
                           label="RCA", signature="g1:3:450.0:0.0,0.0,0.0")
    res = CliRunner().invoke(app, ["agreement", str(out_dir), "--readers", "r1,r2"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    left = read(out_dir / "agreement" / "agreement_left_out.csv")
    assert [(x["case_id"], x["reader"]) for x in left] == [("P03", "r2")]
    assert "made on other lesions" in left[0]["reason"] and "left out: P03 (r2)" in res.output
    per_case = {r["measure"]: r for r in read(out_dir / "agreement" / "agreement_cases.csv")
                if r["case_id"] == "P02"}
    res = CliRunner().invoke(app, ["rescore", str(out_dir), "--reader", "r1", "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    regions = {r["region"]: r for r in read(out_dir / "regions.csv") if r["case_id"] == "P02"}
    scan = _row(out_dir, "P02")
    ag = scoring.get("agatston", True)
    key, suffix = ("agatston", "") if ag else ("volume_mm3", "_volume_mm3")
    for artery in ("LM", "LAD", "LCX", "RCA"):
        rescored = float(regions[artery][key])
        assert page["labels"][artery][key] == pytest.approx(rescored, rel=1e-9, abs=1e-9)
        assert float(per_case[artery + suffix]["reader_a"]) == pytest.approx(rescored, rel=1e-9)
        assert page["labels"][artery]["volume_mm3"] == pytest.approx(
            float(regions[artery]["volume_mm3"]), rel=1e-9)
    total = "coronary_agatston" if ag else "coronary_volume_mm3"
    assert page[total] == pytest.approx(float(scan[key]), rel=1e-9)
    assert float(per_case["coronary_total" + suffix]["reader_a"]) == pytest.approx(
        float(scan[key]), rel=1e-9)
    assert page["risk_category"] == scan["risk_category"] == per_case["risk_category"]["reader_a"]
    assert page["unlabelled_volume_mm3"] == pytest.approx(float(scan["unlabelled_volume_mm3"]))
    if not ag:  # no Agatston anywhere, and so no risk category
        assert page["labels"]["LAD"]["agatston"] is None and page["coronary_agatston"] is None
        assert regions["LAD"]["agatston"] == "" and scan["risk_category"] == ""


# --- #35.12: reads follow their lesions by geometry ----------------------------------------

def _one_case(sample_data: Path, tmp_path: Path, case: str = "P02") -> tuple[Path, Path]:
    """A copy of one sample case with its own manifest, run (no reports): (series, OUT)."""
    data = tmp_path / "data"
    shutil.copytree(sample_data / case, data / case)
    lines = (sample_data / "manifest.csv").read_text().splitlines()
    (data / "manifest.csv").write_text("\n".join([lines[0]] + [x for x in lines[1:]
                                                                if x.startswith(case + ",")]))
    out_dir = tmp_path / "out"
    _run(data, out_dir)
    return data / case / "dicom", out_dir


def _run(data: Path, out_dir: Path) -> None:
    res = CliRunner().invoke(app, ["run", str(data / "manifest.csv"), "--out", str(out_dir),
                                   "-c", str(ROOT / "configs" / "sample_data.yaml"), "-j", "1",
                                   "-q", "--no-report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def test_reads_on_a_series_reexported_with_its_slices_shifted_are_stale(sample_data, tmp_path):
    """#35.12: the series re-exported one slice shorter at its top (every slice index one
    less) kept the reads' lesion and slice numbers, so a slice read of LM moved to another
    slice. Signatures are geometric (centroid and slice position in patient mm): the reads
    of the lesion that lost voxels and the slice read are stale; a rerun of the same series
    keeps every read valid."""
    series, out_dir = _one_case(sample_data, tmp_path)
    lesions = {le["lesion_id"]: le for le in _lesions(out_dir)}
    k = lesions[3]["slices"][0]
    reads = [("r1", "P02", 2, None, "LAD"), ("r1", "P02", 3, None, "LAD"),
             ("r1", "P02", 3, k, "LM"), ("r1", "P02", 4, None, "RCA")]
    write_reads(out_dir, reads, done=[("r1", "P02")], rest_not_coronary=[("r1", "P02")])
    assert CliRunner().invoke(app, ["rescore", str(out_dir), "-q"]).exit_code == 0
    lm = float(_region(out_dir, "LM")["agatston"])
    assert lm > 0
    # the same series again (run --force): the same geometry, every read holds
    res = CliRunner().invoke(app, ["run", str(series.parents[1] / "manifest.csv"), "--out",
                                   str(out_dir), "-c", str(ROOT / "configs" / "sample_data.yaml"),
                                   "-j", "1", "-q", "--no-report", "--force"])
    assert res.exit_code == 0, res.output
    assert CliRunner().invoke(app, ["rescore", str(out_dir), "-q"]).exit_code == 0
    assert float(_region(out_dir, "LM")["agatston"]) == lm
    # re-exported without its first slice: every index shifts by one
    first = min(series.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    first.unlink()
    _run(series.parents[1], out_dir)
    res = CliRunner().invoke(app, ["rescore", str(out_dir)])
    assert res.exit_code == 2 and "made on other lesions" in res.output
    assert "[3]" in res.output  # the lesion of the slice read
    assert _row(out_dir, "P02")["region_source"] != "reader"  # no read was moved
    with serving(out_dir) as (state, base):
        shown = json.loads(call(base, "GET", "/api/cases/P02/lesions", token=state.token)[1])
        status, body = _done(base, state.token, "P02", rest_not_coronary=True)
    assert {le["lesion_id"] for le in shown if le["read_on_other_lesion"]} == {3}
    assert status == 409 and body["stale"] == [3] and "label them again" in body["error"]


def test_a_read_saved_without_a_signature_is_stale(sample_data, tmp_path):
    """#35.12: reads of a database written before lesions had signatures were applied to
    whatever lesion has their number now (coronary 4.41 against 15.68). A read without a
    signature is stale, never applied; an old marks table is migrated (no confirmation)."""
    _, out_dir = _one_case(sample_data, tmp_path)
    db_path = out_dir / "reads.sqlite"
    with sqlite3.connect(db_path) as db:  # the schema of an earlier vascalc
        db.executescript("""
            CREATE TABLE reads (id INTEGER PRIMARY KEY AUTOINCREMENT, reader TEXT NOT NULL,
                case_id TEXT NOT NULL, lesion_id INTEGER NOT NULL, slice_index INTEGER,
                label TEXT NOT NULL, at TEXT NOT NULL);
            CREATE TABLE marks (id INTEGER PRIMARY KEY AUTOINCREMENT, reader TEXT NOT NULL,
                case_id TEXT NOT NULL, done INTEGER NOT NULL, at TEXT NOT NULL);
            INSERT INTO reads (reader, case_id, lesion_id, slice_index, label, at)
                VALUES ('r1', 'P02', 2, NULL, 'LAD', '2026-01-01T00:00:00+00:00');
            INSERT INTO marks (reader, case_id, done, at)
                VALUES ('r1', 'P02', 1, '2026-01-01T00:00:01+00:00');""")
    reads = ReadStore(out_dir).reads("r1", "P02")
    assert reads.done and reads.rest_confirmed_at == "" and reads.signatures == {2: ""}
    before = _row(out_dir, "P02")
    res = CliRunner().invoke(app, ["rescore", str(out_dir)])
    assert res.exit_code == 2 and "made on other lesions" in res.output and "[2]" in res.output
    assert _row(out_dir, "P02") == before
    with serving(out_dir) as (state, base):
        shown = json.loads(call(base, "GET", "/api/cases/P02/lesions", token=state.token)[1])
    assert [le["lesion_id"] for le in shown if le["read_on_other_lesion"]] == [2]


def _lesions(out_dir: Path) -> list[dict]:
    from vascalc.review.service import ReviewApp

    return ReviewApp(out_dir, reader="r1").lesions("P02", "r1")


def _region(out_dir: Path, region: str) -> dict:
    return next(r for r in read(out_dir / "regions.csv") if r["case_id"] == "P02"
                and r["region"] == region)


# --- #35.13: a run redone under the server -------------------------------------------------

def test_a_run_redone_under_the_server_refuses_writes_until_reloaded(sample_data, tmp_path):
    """#35.13: `vascalc run` into a served OUT went on being served with the old lesion set,
    and labels and done marks were accepted that rescore then refused. Each write checks that
    the case's lesion set is still the one loaded: 409 'redone ... reload', nothing stored;
    the server reopens the run, and after the reload the new lesions are labelled. A rescore
    (the same lesion set rewritten) is no redo."""
    series, out_dir = _one_case(sample_data, tmp_path)
    with serving(out_dir) as (state, base):
        tok = state.token
        assert call(base, "PUT", "/api/cases/P02/lesions/2", token=tok,
                    body={"label": "LAD"})[0] == 200
        assert _done(base, tok, "P02", rest_not_coronary=True)[0] == 200
        res = CliRunner().invoke(app, ["rescore", str(out_dir), "-q"])
        assert res.exit_code == 0  # result.json rewritten, the same lesions
        assert call(base, "PUT", "/api/cases/P02/lesions/3", token=tok,
                    body={"label": "LAD"})[0] == 200
        old = json.loads(call(base, "GET", "/api/cases/P02/lesions", token=tok)[1])
        # the run redone under the server at another threshold: another lesion set
        cfg = tmp_path / "c.yaml"
        cfg.write_text((ROOT / "configs" / "sample_data.yaml").read_text().replace(
            "scoring:\n", "scoring:\n  threshold_hu: 140\n", 1))
        res = CliRunner().invoke(app, ["run", str(series.parents[1] / "manifest.csv"), "--out",
                                       str(out_dir), "-c", str(cfg), "-j", "1", "-q",
                                       "--no-report"])
        assert res.exit_code == 0, res.output
        n_reads = len(ReadStore(out_dir).history("P02"))
        for path, body in (("/api/cases/P02/lesions/4", {"label": "RCA"}),
                           ("/api/cases/P02/done", {"done": True})):
            status, answer = call(base, "PUT", path, token=tok, body=body)
            answer = json.loads(answer)
            if status == 409 and "redone" in answer["error"]:
                assert answer["reload"] is True and "reload" in answer["error"]
                break
        else:
            raise AssertionError("a write on the redone run was accepted")
        assert len(ReadStore(out_dir).history("P02")) == n_reads  # nothing stored
        new = json.loads(call(base, "GET", "/api/cases/P02/lesions", token=tok)[1])
        assert [le["agatston"] for le in new] != [le["agatston"] for le in old]
        lid = new[1]["lesion_id"]
        assert call(base, "PUT", f"/api/cases/P02/lesions/{lid}", token=tok,
                    body={"label": "RCA"})[0] == 200
    reads = ReadStore(out_dir).reads("r1", "P02")
    # the new read is on the new lesion set; the old ones are stale for rescore
    from vascalc.results.document import read_result, result_path
    from vascalc.review.cases import stale_reads

    stale = stale_reads(reads, read_result(result_path(out_dir, "P02")))
    assert lid not in stale and reads.lesion[lid] == "RCA"


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Chromium (Debian chromium) is not installed; .ci/run installs it")
def test_the_page_asks_for_the_confirmation_before_done(out):  # noqa: F811 - the fixture imported above
    """On the page, 'case done' with calcium unlabelled opens a confirmation naming the
    amount; declining leaves the case not done; confirming marks it done with the
    confirmation, which the scores panel then shows."""
    pw = pytest.importorskip("playwright.sync_api")
    from tests.test_reports import BROWSER_ARGS
    from tests.test_review import start_server, stop

    proc, base, tok = start_server(out)
    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            asked: list[str] = []
            answers = iter([False, True])

            def answer(dialog):
                asked.append(dialog.message)
                dialog.accept() if next(answers) else dialog.dismiss()

            page.on("dialog", answer)
            page.goto(f"{base}/?token={tok}")
            page.wait_for_selector("#lesions tbody tr")
            names = page.eval_on_selector_all("#case option", "os => os.map(o => o.textContent)")
            index = next(i for i, n in enumerate(names) if n.startswith("P03 "))
            page.select_option("#case", index=index)
            # P03 loaded (its lesions listed, the 'loading' line cleared), not the first case
            page.wait_for_function(
                f"document.querySelector('#case').selectedIndex === {index} && "
                "document.querySelector('#status').textContent === '' && "
                "document.querySelectorAll('#lesions tbody tr').length === "
                f"{len(lesion_ids(out, 'P03'))}")
            page.click("#done")
            page.wait_for_function("document.querySelector('#status').textContent"
                                   ".includes('not marked done')")
            assert not page.is_checked("#done") and len(asked) == 1
            assert "unlabelled (Agatston" in asked[0] and "none of the unlabelled calcium" in asked[0]
            assert not ReadStore(out).reads("r1", "P03").done
            page.click("#done")
            page.wait_for_selector("#rest-confirmed")
            assert "rest confirmed not coronary" in page.inner_text("#rest-confirmed")
            assert page.is_checked("#done") and len(asked) == 2 and errors == []
            browser.close()
    finally:
        stop(proc)
    reads = ReadStore(out).reads("r1", "P03")
    assert reads.done and reads.rest_confirmed_at
