"""Batch at scale: workers, resume after SIGKILL, Dask, shards and merge, typed tables."""

from __future__ import annotations

import csv
import json
import os
import random
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

from sample_data.dicom_writer import SeriesSpec, write_series

TABLES = ("scans.csv", "regions.csv", "lesions.csv", "data_dictionary.csv")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def tables(out: Path) -> dict[str, str]:
    return {t: (out / t).read_text() for t in TABLES}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """50 small cases (5 distinct phantoms copied 10 times) and their manifest."""
    root = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(3)
    series = []
    for k in range(5):
        hu = np.where(rng.random((6, 24, 24)) < 0.08, rng.choice([150, 250, 350, 450]), 20.0)
        hu[:, 0, :] = -1000  # air along one edge, as in every CT field of view
        folder = root / "src" / f"s{k}"
        write_series(folder, hu, SeriesSpec(seed=f"s{k}", patient_id=f"P{k}"))
        series.append(folder)
    rows = ["case_id,path,patient_id,height_cm,weight_kg,timepoint,phosphate_mmol_l"]
    for i in range(50):
        dst = root / "cases" / f"c{i:02d}"
        shutil.copytree(series[i % 5], dst)
        rows.append(f"C{i:02d},cases/c{i:02d},P{i % 25:02d},{160 + i % 30},{55 + i % 40},"
                    f"{1 + i // 25},{1.0 + (i % 7) / 10:.1f}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    res = invoke("run", cohort / "manifest.csv", "--out", out, "--jobs", "1", "-q")
    assert res.exit_code == 0, res.output
    return out


def test_reference_tables(reference):
    scans = read(reference / "scans.csv")
    assert len(scans) == 50 and all(r["status"] == "ok" for r in scans)
    assert [r["case_id"] for r in scans] == sorted(r["case_id"] for r in scans)
    assert scans[3]["phosphate_mmol_l"] == "1.3" and scans[30]["timepoint"] == "2"
    regions = read(reference / "regions.csv")
    assert [(r["case_id"], r["region"]) for r in regions] == [(r["case_id"], "whole") for r in scans]
    for s, r in zip(scans, regions):
        assert s["agatston"] == r["agatston"] and s["volume_mm3"] == r["volume_mm3"]


def test_two_workers_give_identical_tables(cohort, reference, tmp_path):
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path, "--jobs", "2", "-q")
    assert res.exit_code == 0, res.output
    assert tables(tmp_path) == tables(reference)


def test_rerun_reuses_and_force_redoes(cohort, reference, tmp_path):
    shutil.copytree(reference, tmp_path / "o")
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path / "o", "-j", "1")
    assert res.exit_code == 0 and "50 reused" in res.output
    assert tables(tmp_path / "o") == tables(reference)
    # a file touched (its content the same) is reused: the fingerprint is by content
    f = sorted((cohort / "cases" / "c07").iterdir())[0]
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path / "o", "-j", "1")
    assert "50 reused" in res.output
    # a changed input file is redone, the others are reused; one byte of another content
    # with the same size and modification time put back is a change (#35.3)
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # one pixel's lowest bit
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path / "o", "-j", "1")
    assert "49 reused" in res.output
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path / "o", "-j", "1", "--force")
    assert "(0 reused)" in res.output
    assert tables(tmp_path / "o") == tables(reference)
    # another config: nothing is reused
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bsa:\n  formula: mosteller\n")
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path / "o", "-j", "1", "-c", cfg)
    assert "(0 reused)" in res.output


def test_sigkill_at_random_moments_then_resume_gives_identical_tables(cohort, reference,
                                                                       tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "vascalc.cli", "run", str(cohort / "manifest.csv"),
           "--out", str(out), "--jobs", "2", "-q"]
    # how long an uninterrupted run of this command takes here, to kill within it
    t0 = time.perf_counter()
    subprocess.run(cmd[:6] + [str(tmp_path / "timing")] + cmd[7:], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    duration = time.perf_counter() - t0
    rng = random.Random(11)
    kills = 0
    finished: list[int] = []
    for attempt in range(4):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        # the first kill early in the run, the others anywhere in what a resumed run takes
        time.sleep((0.35 if attempt == 0 else rng.uniform(0.1, 0.6)) * duration)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, at once
            kills += 1
        proc.wait()
        for f in out.rglob("result.json"):  # no finished file is ever corrupt
            json.loads(f.read_text())
        finished.append(len(list(out.glob("cases/*/result.json"))))
    assert kills >= 1
    assert finished[0] < 50  # the first kill interrupted the scoring itself
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert tables(out) == tables(reference)
    assert not list(out.rglob("*.tmp"))


def test_dask_local_cluster_gives_identical_tables(cohort, reference, tmp_path):
    pytest.importorskip("dask.distributed")
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path, "--dask-local", "2", "-q")
    assert res.exit_code == 0, res.output
    assert tables(tmp_path) == tables(reference)
    assert json.loads((tmp_path / "run.json").read_text())["executor"] == "dask-local:2"


def test_shards_merge_to_the_full_run(cohort, reference, tmp_path):
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}"
        res = invoke("run", cohort / "manifest.csv", "--out", part, "--shard", f"{i}/3", "-j", "1")
        assert res.exit_code == 0, res.output
        assert 16 <= len(read(part / "scans.csv")) <= 17
        parts.append(part)
    res = invoke("merge", *parts, "--out", tmp_path / "merged")
    assert res.exit_code == 0, res.output
    assert tables(tmp_path / "merged") == tables(reference)


@pytest.mark.parametrize("shard", ["3/3", "a/b", "1/0"])
def test_bad_shard_is_a_usage_error(cohort, tmp_path, shard):
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path, "--shard", shard)
    assert res.exit_code == 2


def test_merge_refuses_mixed_configs(cohort, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("case_id,path\nA,%s\n" % (cohort / "cases" / "c00"))
    invoke("run", m, "--out", tmp_path / "a", "-j", "1")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  threshold_hu: 131\n")
    invoke("run", m, "--out", tmp_path / "b", "-j", "1", "-c", cfg)
    res = invoke("merge", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "different configs" in res.output


def test_parquet_is_typed_and_equals_csv(reference):
    import pyarrow.parquet as pq

    t = pq.read_table(reference / "scans.parquet")
    assert str(t.schema.field("agatston").type) == "double"
    assert str(t.schema.field("n_lesions").type) == "int64"
    assert str(t.schema.field("study_date").type) == "date32[day]"
    csv_rows = read(reference / "scans.csv")
    assert t.column("case_id").to_pylist() == [r["case_id"] for r in csv_rows]
    np.testing.assert_allclose(t.column("agatston").to_pylist(),
                               [float(r["agatston"]) for r in csv_rows], rtol=1e-11)
    lt = pq.read_table(reference / "lesions.parquet")
    assert lt.num_rows == len(read(reference / "lesions.csv"))


def test_dictionary_and_datapackage_describe_every_written_column(reference):
    dd = read(reference / "data_dictionary.csv")
    pkg = json.loads((reference / "datapackage.json").read_text())
    res = {r["name"]: r for r in pkg["resources"]}
    for table in ("scans", "regions", "lesions"):
        written = list(read(reference / f"{table}.csv")[0])
        assert written == [r["name"] for r in dd if r["table"] == table]
        assert written == [f["name"] for f in res[table]["schema"]["fields"]]
    assert res["scans"]["schema"]["primaryKey"] == ["case_id"]
    assert res["lesions"]["schema"]["primaryKey"] == ["case_id", "lesion_id", "region"]
    assert res["regions"]["schema"]["foreignKeys"][0]["reference"] == {
        "resource": "scans", "fields": ["case_id"]}


def test_manifest_calibration_and_weight_checks(cohort, tmp_path):
    m = tmp_path / "m.csv"
    src = cohort / "cases" / "c00"
    m.write_text("case_id,path,mass_calibration_mg_per_cm3_per_hu,calibration_water_hu\n"
                 f"A,{src},0.75,\nB,{src},,\nC,{src},0.75,4\n")
    res = invoke("run", m, "--out", tmp_path / "o", "-j", "1")
    assert res.exit_code == 0, res.output
    rows = {r["case_id"]: r for r in read(tmp_path / "o" / "scans.csv")}
    assert rows["A"]["mass_calibration_mg_per_cm3_per_hu"] == "0.75"
    assert rows["A"]["mass_status"] == "calibrated" and rows["B"]["mass_mg"] == ""
    # C: mass = c * sum(HU - 4) * voxel volume = A's mass - c * 4 * volume
    assert rows["C"]["calibration_water_hu"] == "4.0" and rows["A"]["calibration_water_hu"] == "0.0"
    a_mass, vol = float(rows["A"]["mass_mg"]), float(rows["A"]["volume_mm3"])
    assert vol > 0
    assert float(rows["C"]["mass_mg"]) == pytest.approx(a_mass - 0.75 * 4 * vol / 1000)
    m.write_text(f"case_id,path,weight_kg\nA,{src},420\n")
    res = invoke("run", m, "--out", tmp_path / "o2")
    assert res.exit_code == 2 and "pounds" in res.output


def test_dry_run_scores_nothing(cohort, tmp_path):
    res = invoke("run", cohort / "manifest.csv", "--out", tmp_path / "o", "--dry-run")
    assert res.exit_code == 0 and "50 case(s) would be scored" in res.output
    assert not (tmp_path / "o").exists()


def test_calibration_table_matches_the_scanner_and_the_manifest_wins(cohort, tmp_path):
    src = cohort / "cases" / "c00"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "scoring:\n  mass_calibration_mg_per_cm3_per_hu: 0.9\n  calibration_table:\n"
        "    - {model: other scanner, c_mg_per_cm3_per_hu: 0.5}\n"
        "    - {manufacturer: VASCALC, kvp: 100, c_mg_per_cm3_per_hu: 0.4}\n"
        "    - {manufacturer: vascalc phantom, kvp: 120, c_mg_per_cm3_per_hu: 0.6, water_hu: 2}\n")
    m = tmp_path / "m.csv"
    m.write_text("case_id,path,mass_calibration_mg_per_cm3_per_hu,calibration_water_hu\n"
                 f"A,{src},,\nB,{src},0.75,\nC,{src},,-3\n")
    res = invoke("run", m, "--out", tmp_path / "o", "-c", cfg, "-j", "1")
    assert res.exit_code == 0, res.output
    rows = {r["case_id"]: r for r in read(tmp_path / "o" / "scans.csv")}
    assert rows["A"]["manufacturer"].casefold().startswith("vascalc phantom")
    assert (rows["A"]["mass_calibration_mg_per_cm3_per_hu"], rows["A"]["calibration_water_hu"]) \
        == ("0.6", "2.0")
    assert rows["B"]["mass_calibration_mg_per_cm3_per_hu"] == "0.75"
    # each manifest value wins over the table's on its own: C keeps the table's c
    assert (rows["C"]["mass_calibration_mg_per_cm3_per_hu"], rows["C"]["calibration_water_hu"]) \
        == ("0.6", "-3.0")


def test_run_json_carries_its_schema_and_another_is_refused_by_name(tmp_path):
    import pytest
    from vascalc.errors import UsageError
    from vascalc.run.rebuild import RUN_SCHEMA, read_run, rebuild

    summary, _ = rebuild(tmp_path, {}, config=None)
    assert summary["schema"] == RUN_SCHEMA
    p = tmp_path / "run.json"
    p.write_text(json.dumps({**summary, "schema": RUN_SCHEMA + 1}))
    with pytest.raises(UsageError, match=f"run schema version {RUN_SCHEMA + 1}.*reads version "
                                         f"{RUN_SCHEMA}") as err:
        read_run(p)
    assert str(p) in str(err.value)
    p.write_text(json.dumps({k: v for k, v in summary.items() if k != "schema"}))
    with pytest.raises(UsageError, match="run schema version None"):
        read_run(p)
    p.write_text(json.dumps(summary))
    assert read_run(p) == summary


def test_merge_refuses_shards_of_a_manifest_changed_between_jobs(cohort, tmp_path):
    """#35.4: shard 0 run on the manifest, a row removed, shard 1 run on the edited one: the
    merge is refused by the manifest's name (it kept 2 of 5 cases before, one removed)."""
    m = tmp_path / "m.csv"
    lines = (cohort / "manifest.csv").read_text().splitlines()
    text = "\n".join(lines[0:1] + [ln.replace("cases/", f"{cohort}/cases/") for ln in lines[1:6]])
    m.write_text(text + "\n")
    res = invoke("run", m, "--out", tmp_path / "p0", "--shard", "0/2", "-j", "1")
    assert res.exit_code == 0, res.output
    m.write_text("\n".join(text.splitlines()[:-1]) + "\n")  # the last row removed
    res = invoke("run", m, "--out", tmp_path / "p1", "--shard", "1/2", "-j", "1")
    assert res.exit_code == 0, res.output
    res = invoke("merge", tmp_path / "p0", tmp_path / "p1", "--out", tmp_path / "merged")
    assert res.exit_code == 2 and "different versions of the manifest" in res.output
    assert str(m.resolve()) in res.output and not (tmp_path / "merged" / "scans.csv").exists()


def _set_version(out: Path, case_id: str, version: str) -> None:
    p = out / "cases" / case_id / "result.json"
    doc = json.loads(p.read_text())
    doc["vascalc_version"] = version
    p.write_text(json.dumps(doc))


def test_resume_redoes_another_versions_results_and_merge_refuses_them(cohort, tmp_path):
    """#35.5: every result records the vascalc that scored it; a rerun redoes what another
    version scored (run.json then says only this version scored its cases), and merge refuses
    a part scored by another version, by name."""
    from vascalc import __version__

    m = tmp_path / "m.csv"
    m.write_text("case_id,path\nA,%s\nB,%s\n" % (cohort / "cases" / "c00", cohort / "cases" / "c01"))
    out = tmp_path / "o"
    assert invoke("run", m, "--out", out, "-j", "1").exit_code == 0
    assert json.loads((out / "cases" / "A" / "result.json").read_text())["vascalc_version"] \
        == __version__
    _set_version(out, "A", "0.1.0")
    res = invoke("run", m, "--out", out, "-j", "1")
    assert res.exit_code == 0 and "(1 reused)" in res.output
    run = json.loads((out / "run.json").read_text())
    assert run["redone"] == {"version": 1} and run["scored_by_versions"] == [__version__]
    assert {r["pipeline_version"] for r in read(out / "scans.csv")} == {__version__}
    _set_version(out, "B", "0.1.0")  # the row says what scored it, not who read it
    res = invoke("merge", out, "--out", tmp_path / "merged")
    assert res.exit_code == 2 and "scored by vascalc 0.1.0" in res.output
    assert "B" in res.output


def test_a_mask_replaced_by_another_of_the_same_size_and_mtime_is_redone(tmp_path):
    """#35.3: the region mask of a case replaced by another (same size, same mtime put back):
    the fingerprint is by content, so the rerun scores it again."""
    import nibabel as nib

    hu = np.full((6, 24, 24), 20.0)
    hu[:, 0, :] = -1000
    hu[2:4, 6:10, 6:10] = 350
    write_series(tmp_path / "s", hu, SeriesSpec(seed="m", patient_id="PM"))
    masks = tmp_path / "masks"
    masks.mkdir()
    affine = np.diag([-0.7, -0.7, 3.0, 1.0])
    affine[2, 3] = -100.0
    on = np.zeros((24, 24, 6), dtype=np.uint8)
    on[6:10, 6:10, 2:4] = 1  # (col, row, slice) of the plaque
    off = np.zeros_like(on)
    off[14:18, 14:18, 2:4] = 1  # the same size, elsewhere
    nib.save(nib.Nifti1Image(on, affine), masks / "LAD.nii")
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,path,regions\nA,{tmp_path / 's'},{masks}\n")
    out = tmp_path / "o"
    res = invoke("run", m, "--out", out, "-j", "1")
    assert res.exit_code == 0, res.output
    first = read(out / "regions.csv")
    f = masks / "LAD.nii"
    st = f.stat()
    nib.save(nib.Nifti1Image(off, affine), f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    res = invoke("run", m, "--out", out, "-j", "1")
    assert res.exit_code == 0 and "(0 reused)" in res.output
    lad = {r["region"]: r for r in read(out / "regions.csv")}["LAD"]
    assert {r["region"]: r for r in first}["LAD"]["volume_mm3"] != lad["volume_mm3"]


def test_merge_replaces_a_case_folder_whole(cohort, tmp_path):
    """The neighbour of #35.1 in merge: a case folder already in the merged OUT (an older
    result's report) is replaced whole, never merged file by file into the new result."""
    m = tmp_path / "m.csv"
    m.write_text("case_id,path\nA,%s\n" % (cohort / "cases" / "c00"))
    assert invoke("run", m, "--out", tmp_path / "a", "-j", "1").exit_code == 0
    stale = tmp_path / "merged" / "cases" / "A"
    stale.mkdir(parents=True)
    (stale / "report.html").write_text("an older result's report")
    res = invoke("merge", tmp_path / "a", "--out", tmp_path / "merged")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in stale.iterdir()) == sorted(
        p.name for p in (tmp_path / "a" / "cases" / "A").iterdir())
    assert not (stale / "report.html").exists()  # the part was run without reports


def test_run_json_records_the_executor_that_ran(sample_data, tmp_path):
    """One decision (run.executors.decide), recorded as it ran: --jobs 2 on one case runs
    serially and says so; on two cases, a pool of two."""
    import json

    from typer.testing import CliRunner
    from vascalc.cli.app import app

    for inputs, want in (([sample_data / "P03" / "dicom"], "serial"),
                         ([sample_data / "P03" / "dicom", sample_data / "P04" / "dicom"],
                          "process-pool:2")):
        out = tmp_path / want.replace(":", "_")
        res = CliRunner().invoke(app, ["run", *map(str, inputs), "--out", str(out), "-j", "2",
                                       "-q"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert json.loads((out / "run.json").read_text())["executor"] == want
