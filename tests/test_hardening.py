"""The outside attack's findings (issue 14), each a case of the bad-input corpus with its
named outcome: no silently wrong number, no batch lost, no identity leaked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.cohort.progression import pair_rows
from vascalc.config.load import config_from_dict, load_config
from vascalc.config.schema import Config
from vascalc.errors import BusyOutputError, ConfigError
from vascalc.io.dicom import index_tree, load_series
from vascalc.results.columns import PROGRESSION
from vascalc.results.document import read_result
from vascalc.run import batch, executors, lock
from vascalc.run.discovery import Case, cases_from_tree, collect_cases
from vascalc.run.options import RunOptions

from sample_data.dicom_writer import SeriesSpec, write_series
from tests.test_bad_inputs import (
    EXPECTED_AGATSTON,
    code_of,
    edit,
    hu_volume,
    read_rows,
    score,
    series,
)

ROOT = Path(__file__).resolve().parents[1]


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, input=input)


def scans(out: Path) -> dict[str, dict[str, str]]:
    return {r["case_id"]: r for r in read_rows(out / "scans.csv")}


# --- silently wrong or stale numbers -------------------------------------------------------

@pytest.mark.parametrize("slope", [-1.0, 1e30, 1e-9])
def test_implausible_rescale_slope_is_refused(tmp_path, slope):
    for p in series(tmp_path):
        edit(p, RescaleSlope=slope)
    assert code_of(tmp_path) == "HU_IMPLAUSIBLE"


def test_signed_data_labelled_unsigned_is_refused(tmp_path):
    for p in write_series(tmp_path, hu_volume(), SeriesSpec(signed=True, intercept=0.0,
                                                            pixel_spacing_mm=(0.5, 0.5)),
                          shuffle_names=False):
        edit(p, PixelRepresentation=0)  # -1000 stored as 0xFC18 now reads 64536
    assert code_of(tmp_path) == "HU_IMPLAUSIBLE"


def test_mr_like_values_labelled_ct_are_refused(tmp_path):
    mr = np.random.default_rng(1).integers(0, 1800, size=(6, 16, 16)).astype(float)
    write_series(tmp_path, mr, SeriesSpec(intercept=0.0), shuffle_names=False)
    with pytest.raises(Exception) as err:
        score(tmp_path)
    assert getattr(err.value, "code", "") == "HU_IMPLAUSIBLE" and "air or fat" in str(err.value)
    # the same values are accepted when the user says they are not HU (micro-CT units)
    vol = load_series(index_tree(tmp_path)[0], require_hu=False)
    assert vol.hu.max() < 1800


def test_decimal_rescale_keeps_the_band_edges_exact(tmp_path):
    """slope 0.9, intercept -1020.2: stored 1278 is 130 HU and 1578 is 400 HU exactly."""
    hu = hu_volume()
    hu[:, 0, :] = -1019.3  # air: stored 1
    hu[2:4, 6:10, 6:10] = 40
    hu[1:3, 2:6, 2:6] = 130.0  # weight 1, kept (130 is a calcium voxel)
    hu[4, 10:14, 10:14] = 400.0  # weight 4, not 3
    write_series(tmp_path, hu, SeriesSpec(slope=0.9, intercept=-1020.2,
                                          pixel_spacing_mm=(0.5, 0.5)), shuffle_names=False)
    vol, r = score(tmp_path)
    assert vol.hu.dtype == np.float64 and float(vol.hu.max()) == 400.0
    assert r.whole.n_slice_lesions == 3
    # 2 slices x 4 mm2 x weight 1, and 4 mm2 x weight 4; increment 3 mm = reference
    assert r.whole.agatston == pytest.approx(2 * 4 * 1 + 4 * 4)


def test_two_patients_under_one_series_uid_are_two_cases(tmp_path):
    a = write_series(tmp_path / "a", hu_volume(), SeriesSpec(patient_id="A", seed="x"),
                     shuffle_names=False)
    b = write_series(tmp_path / "b", hu_volume(), SeriesSpec(patient_id="B", seed="y",
                                                             z0_mm=300.0), shuffle_names=False)
    uid = pydicom.dcmread(a[0]).SeriesInstanceUID
    for p in b:
        edit(p, SeriesInstanceUID=uid)
    res = run("run", tmp_path, "--out", tmp_path / "o", "-j", "1", "-q", "-c",
              _cfg(tmp_path, "privacy:\n  patient_id: keep\n"))
    assert res.exit_code == 0, res.output
    rows = scans(tmp_path / "o")
    assert sorted(r["patient_id"] for r in rows.values()) == ["A", "B"]
    assert all(r["n_slices"] == "6" for r in rows.values())


def _cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_a_series_that_loses_a_truncated_edge_slice_is_flagged(tmp_path):
    paths = series(tmp_path / "s")
    last = paths[-1]
    last.write_bytes(last.read_bytes()[:300])  # the header stops before Modality
    res = run("run", tmp_path / "s", "--out", tmp_path / "o", "-j", "1", "-q")
    assert res.exit_code == 0, res.output
    row = next(iter(scans(tmp_path / "o").values()))
    assert "unreadable_files_in_folder" in row["quality_flags"].split(";")


def test_a_slice_of_another_matrix_inside_a_series_flags_the_case(tmp_path):
    paths = series(tmp_path / "s")
    odd = write_series(tmp_path / "odd", np.full((1, 8, 8), 40.0), SeriesSpec(seed="s"),
                       shuffle_names=False)[0]
    ds = pydicom.dcmread(odd)
    ref = pydicom.dcmread(paths[0])
    ds.SeriesInstanceUID, ds.StudyInstanceUID = ref.SeriesInstanceUID, ref.StudyInstanceUID
    ds.save_as(tmp_path / "s" / "ODD.dcm")
    res = run("run", tmp_path / "s", "--out", tmp_path / "o", "-j", "1", "-q")
    assert res.exit_code == 0
    row = next(iter(scans(tmp_path / "o").values()))
    assert "outlier_images_excluded" in row["quality_flags"].split(";")


def test_encapsulated_pixels_under_an_uncompressed_syntax_are_refused(tmp_path):
    from pydicom.encaps import encapsulate

    for p in series(tmp_path):
        ds = pydicom.dcmread(p)
        ds.PixelData = encapsulate([ds.PixelData])
        ds["PixelData"].is_undefined_length = True
        ds.save_as(p, enforce_file_format=False)
    assert code_of(tmp_path) == "PIXEL_DECODE_FAILED"


def test_orientation_written_with_few_digits_is_normalised(tmp_path):
    for p in series(tmp_path):
        edit(p, ImageOrientationPatient=[1, 0, 0, 0, 0.9995, 0])
    vol, r = score(tmp_path)
    assert r.whole.agatston == EXPECTED_AGATSTON  # not 24 x 0.9995
    assert "gantry_tilt" not in vol.quality_flags and vol.spacing_mm[0] == pytest.approx(3.0)


def test_resume_sees_changed_region_masks(sample_data, tmp_path):
    src = sample_data / "P01_T1"
    regions = tmp_path / "regions"
    shutil.copytree(src / "regions", regions)
    args = ("run", src / "dicom", "--regions", regions, "--out", tmp_path / "o", "-j", "1", "-q")
    assert run(*args).exit_code == 0
    before = {r["region"] for r in read_rows(tmp_path / "o" / "regions.csv")}
    (regions / "LAD.nii.gz").unlink()
    assert run(*args).exit_code == 0
    after = {r["region"] for r in read_rows(tmp_path / "o" / "regions.csv")}
    assert "LAD" in before and "LAD" not in after


def test_a_changed_zip_is_never_read_from_a_stale_extraction(tmp_path):
    paths = series(tmp_path / "s")
    z = tmp_path / "study.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in paths:
            zf.writestr(f"CT/{p.name}", p.read_bytes())
    work = tmp_path / "work"
    first, _ = collect_cases([z], Config(), work_dir=work)  # a run killed after extracting
    stale = {h.path for h in first[0].headers}
    time.sleep(0.01)
    with zipfile.ZipFile(z, "w") as zf:  # the user fixes the archive: one slice fewer
        for p in paths[:-1]:
            zf.writestr(f"CT/{p.name}", p.read_bytes())
    again, _ = collect_cases([z], Config(), work_dir=work)
    assert len(again[0].headers) == len(paths) - 1 == len(stale) - 1  # no stale slice left


def test_a_zip_that_yields_nothing_leaves_nothing_behind(tmp_path):
    z = tmp_path / "empty.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("notes.txt", "no images here " * 1000)
    assert run("run", z, "--out", tmp_path / "o").exit_code == 2
    assert not (tmp_path / "o" / ".work").exists()


# --- batch robustness ---------------------------------------------------------------------

def test_a_dying_worker_fails_only_its_own_case(tmp_path, monkeypatch):
    if threading.active_count() != 1:
        pytest.skip("workers are forked only when the test process has one thread")
    src = tmp_path / "src"
    series(src)
    cases = [Case(case_id=f"c{i:02d}", path=str(src), display_path=f"c{i:02d}")
             for i in range(20)]
    real = executors.run_case

    def dies_on_c07(case, config, **kw):
        if case.case_id == "c07":
            os._exit(9)  # the worker is killed (out of memory, say)
        return real(case, config, **kw)

    monkeypatch.setattr(executors, "run_case", dies_on_c07)
    report = batch.run_batch(cases, Config(), tmp_path / "o", RunOptions(jobs=2))
    summary = report.summary
    assert report.exit_code == 1  # a case failed: its row says why
    rows = scans(tmp_path / "o")
    assert rows["c07"]["error_code"] == "WORKER_DIED"
    assert [c for c, r in rows.items() if r["status"] != "ok"] == ["c07"]
    assert summary["counts"]["ok"] == 19
    # run.json says how the workers were started, and why (forked here: one thread)
    assert summary["executor"] == "process-pool:2"
    assert summary["executor_start"]["method"] == "fork" and summary["executor_start"]["why"]


def test_workers_die_with_a_killed_parent(sample_data, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "vascalc.cli", "run",
                             str(sample_data / "manifest.csv"), "--out", str(tmp_path / "o"),
                             "-j", "2", "-q", "--report"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: set[int] = set()
    deadline = time.time() + 60
    while time.time() < deadline and not children and proc.poll() is None:
        children = {int(p) for p in _children(proc.pid)}
        time.sleep(0.05)
    if not children:
        proc.wait(60)
        pytest.skip("the run finished before its workers could be seen")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not any(_alive(c) for c in children)


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_a_nifti_with_an_infinite_voxel_fails_its_case_only(tmp_path):
    good = tmp_path / "good.nii.gz"
    bad = tmp_path / "bad.nii.gz"
    data = np.full((16, 16, 6), 40.0, dtype=np.float32)
    data[0] = -1000
    data[6:10, 6:10, 2:4] = 350
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 3.0, 1.0])), good)
    data[1, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 3.0, 1.0])), bad)
    res = run("run", good, bad, "--out", tmp_path / "o", "-j", "1", "-q")
    assert res.exit_code == 1
    rows = scans(tmp_path / "o")
    assert rows["good"]["status"] == "ok" and rows["bad"]["error_code"] == "PIXEL_DECODE_FAILED"
    assert "infinite" in rows["bad"]["error"]


def test_a_second_run_into_a_busy_folder_is_refused_by_name(tmp_path):
    series(tmp_path / "s")
    out = tmp_path / "o"
    with lock.output_lock(out):
        with pytest.raises(BusyOutputError):  # another process would see the same
            with _in_child_lock(out):
                pass
        # the CLI in this process shares the lock; a subprocess does not
        proc = subprocess.run([sys.executable, "-m", "vascalc.cli", "run", str(tmp_path / "s"),
                               "--out", str(out), "-q"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 2 and "OUTPUT_BUSY" in proc.stderr
    assert run("run", tmp_path / "s", "--out", out, "-q", "-j", "1").exit_code == 0


class _in_child_lock:
    """The lock as a second process takes it (a fresh open file description)."""

    def __init__(self, out: Path):
        self.out = out

    def __enter__(self):
        held = set(lock._HELD)
        lock._HELD.clear()
        try:
            self.cm = lock.output_lock(self.out)
            return self.cm.__enter__()
        finally:
            lock._HELD.update(held)

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


def test_merge_takes_only_each_parts_own_cases_and_every_shard(sample_data, tmp_path):
    m = sample_data / "manifest.csv"
    cfg = ROOT / "configs" / "sample_data.yaml"
    for i in (0, 1):
        assert run("run", m, "--out", tmp_path / f"p{i}", "--shard", f"{i}/2", "-c", cfg,
                   "-j", "1", "-q").exit_code == 0
    # a stale case from another config left in a part folder is not merged
    stale = tmp_path / "p0" / "cases" / "STALE"
    shutil.copytree(tmp_path / "p1" / "cases" / next(iter(scans(tmp_path / "p1"))), stale)
    doc = json.loads((stale / "result.json").read_text())
    doc["case_id"] = doc["outcome"]["record"]["case_id"] = "STALE"
    (stale / "result.json").write_text(json.dumps(doc))
    assert run("merge", tmp_path / "p0", "--out", tmp_path / "m0").exit_code == 2  # 1/2 missing
    res = run("merge", tmp_path / "p0", tmp_path / "p1", "--out", tmp_path / "m")
    assert res.exit_code == 0, res.output
    merged = scans(tmp_path / "m")
    assert set(merged) == {"P01_T1", "P01_T2", "P02", "P03", "P04"}
    # the reports the index links are there
    for cid in merged:
        assert (tmp_path / "m" / "cases" / cid / "report.html").is_file()


def test_a_full_disk_changes_no_table(sample_data, tmp_path, monkeypatch):
    from vascalc import files

    out = tmp_path / "o"
    assert run("run", sample_data / "P04" / "dicom", "--out", out, "-q", "-j", "1").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    real, calls = files._staged, []

    def full_after_two(path, data):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(28, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(files, "_staged", full_after_two)
    res = run("run", sample_data / "P04" / "dicom", "--out", out, "-q", "-j", "1", "--force")
    assert res.exit_code == 2 and "OUTPUT_UNWRITABLE" in res.output and "No space" in res.output
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    skip = ("vascalc.log", ".vascalc.lock")  # the log and the lock record each attempt
    assert {k: v for k, v in after.items() if k not in skip} == {
        k: v for k, v in before.items() if k not in skip}
    assert not list(out.glob(".*.tmp"))


def test_a_large_manifest_is_discovered_in_linear_time(tmp_path):
    src = tmp_path / "s"
    series(src)
    m = tmp_path / "m.csv"
    m.write_text("case_id,path\n" + "".join(f"c{i},s\n" for i in range(20000)))
    res = run("run", m, "--out", tmp_path / "o", "--dry-run")
    # O(n^2) duplicate checks took minutes at this size; no timing assertion, the suite's own
    # time would show a relapse
    assert res.exit_code == 0 and "20000 case(s) would be scored" in res.output


def test_the_header_pass_in_workers_gives_the_serial_result(tmp_path):
    """index_tree(jobs=2) reads the headers in forked workers (a fresh process, so no thread
    prevents the fork) and returns what the serial pass returns, in the same order."""
    for name in ("a", "b", "c"):
        series(tmp_path / "t" / name)
    (tmp_path / "t" / "b" / "notes.txt").write_text("not DICOM")
    script = f"""
import json, os
import vascalc.io.dicom as d
real = d._read_headers
def tagged(files):  # the worker's pid rides along with the skipped list
    h, s = real(files)
    return h, s + [("pid", str(os.getpid()))]
d._read_headers = tagged
d.PARALLEL_INDEX_MIN_FILES = 1
h2, s2 = d.index_tree({str(tmp_path / "t")!r}, jobs=2)
h1, s1 = d.index_tree({str(tmp_path / "t")!r}, jobs=1)
print(json.dumps({{"pids": sorted({{p for k, p in s2 if k == "pid"}}), "me": str(os.getpid()),
                  "same_headers": h1 == h2,
                  "paths": [h.path for h in h2],
                  "skipped": [x for x in s2 if x[0] != "pid"] == [x for x in s1 if x[0] != "pid"],
                  "n": len(h1)}}))
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["me"] not in got["pids"] and len(got["pids"]) >= 1  # workers did the reading
    assert got["same_headers"] and got["skipped"] and got["n"] == len(got["paths"]) > 3
    assert got["paths"] == sorted(got["paths"])


def test_a_fifo_as_regions_is_refused_not_waited_on(tmp_path):
    series(tmp_path / "s")
    fifo = tmp_path / "regions.nii.gz"
    os.mkfifo(fifo)
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,path,regions\nA,{tmp_path / 's'},{fifo}\n")
    res = run("run", m, "--out", tmp_path / "o", "-q", "-j", "1")
    assert res.exit_code == 1
    assert scans(tmp_path / "o")["A"]["error_code"] == "REGION_INVALID"


def test_symlinked_series_folders_are_followed(tmp_path):
    series(tmp_path / "real" / "s")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "linked").symlink_to(tmp_path / "real" / "s", target_is_directory=True)
    (tmp_path / "tree" / "loop").symlink_to(tmp_path / "tree", target_is_directory=True)
    os.mkfifo(tmp_path / "tree" / "pipe")
    cases, notes = cases_from_tree(tmp_path / "tree", Config())
    assert [c.case_id for c in cases] == ["tree_linked"] and len(cases[0].headers) == 6
    assert any("not a regular file" in n["reason"] for n in notes)


def test_output_files_follow_the_umask(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    series(tmp_path / "s")
    assert run("run", tmp_path / "s", "--out", tmp_path / "o", "-q", "-j", "1").exit_code == 0
    mode = stat.S_IMODE((tmp_path / "o" / "scans.csv").stat().st_mode)
    assert mode == 0o666 & ~umask and mode & 0o044  # group and others may read, as open()
    result = tmp_path / "o" / "cases" / f"{tmp_path.name}_s" / "result.json"
    assert stat.S_IMODE(result.stat().st_mode) == mode


def test_out_that_is_a_file_is_a_usage_error(tmp_path):
    series(tmp_path / "s")
    (tmp_path / "f").write_text("x")
    res = run("run", tmp_path / "s", "--out", tmp_path / "f")
    assert res.exit_code == 2 and "OUTPUT_UNWRITABLE" in res.output


# --- config, identity, errors ---------------------------------------------------------------

def test_billion_laughs_yaml_is_refused_at_once(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        lines.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [" + ",".join([f"*{prev}"] * 9)
                     + "]")
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="anchors and aliases"):  # before any expansion
        load_config(p)


@pytest.mark.parametrize("data, where", [
    ({"scoring": {"threshold_hu": float("nan")}}, "threshold_hu"),
    ({"scoring": {"reference_increment_mm": float("inf")}}, "reference_increment_mm"),
    ({"scoring": {"density_weight_hu": [130, 200, float("nan"), 400]}}, "density_weight_hu"),
    ({"scoring": {"kvp_table": {100: [130, 200, 300, float("inf")]}}}, "kvp_table"),
    ({"scoring": {"mass_calibration_mg_per_cm3_per_hu": float("nan")}}, "mass_calibration"),
    ({"regions": {"margin_mm": {"aorta": float("nan")}}}, "margin_mm"),
    ({"risk": {"agatston_upper_bounds": [100, 10, 400]}}, "ascending"),
])
def test_nan_inf_and_unsorted_bounds_are_refused(data, where):
    with pytest.raises(ConfigError, match=where):
        config_from_dict(data)


def test_seg_and_sr_are_written_from_anonymised_sources(tmp_path):
    paths = series(tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        for key in ("PatientBirthDate", "PatientSex", "StudyTime", "StudyID", "AccessionNumber"):
            if key in ds:
                delattr(ds, key)
        with warnings.catch_warnings():  # pydicom warns about the invalid DA it is given
            warnings.simplefilter("ignore")
            ds.PatientBirthDate = "19X01301"  # not a valid DA: PHI-like text in a bad value
        del ds.SOPClassUID  # only in the file meta, as the real Siemens example
        ds.save_as(p, enforce_file_format=False)
    cfg = _cfg(tmp_path, "report:\n  enabled: true\n  pdf: false\n")
    res = run("run", tmp_path / "s", "--out", tmp_path / "o", "-c", cfg, "-q", "-j", "1")
    assert res.exit_code == 0, res.output
    doc = read_result(tmp_path / "o" / "cases" / f"{tmp_path.name}_s" / "result.json")
    assert {"calcium.seg.dcm", "scores.sr.dcm"} <= set(doc["artefacts"])
    assert "artefact_error" not in doc
    sr = pydicom.dcmread(tmp_path / "o" / "cases" / f"{tmp_path.name}_s" / "scores.sr.dcm")
    assert sr.PatientBirthDate == "" and "19X01301" not in (tmp_path / "o" / "vascalc.log"
                                                            ).read_text()


def test_artefact_errors_carry_no_identity(tmp_path, monkeypatch):
    from vascalc.outputs import artefacts

    series(tmp_path / "s")
    name = str(pydicom.dcmread(next((tmp_path / "s").iterdir())).PatientName)

    def leaks(*a, **k):
        raise ValueError(f"cannot encode {name} born 19500101")

    monkeypatch.setattr(artefacts, "measurement_report", leaks)
    cfg = _cfg(tmp_path, "report:\n  enabled: true\n  pdf: false\n")
    assert run("run", tmp_path / "s", "--out", tmp_path / "o", "-c", cfg, "-q", "-j", "1"
               ).exit_code == 0
    doc = read_result(tmp_path / "o" / "cases" / f"{tmp_path.name}_s" / "result.json")
    assert "report_failed" in doc["scan"]["quality_flags"]
    assert "calcium.seg.dcm" in doc["artefacts"]  # what was written before the failure
    for text in (doc["artefact_error"], (tmp_path / "o" / "vascalc.log").read_text()):
        assert name not in text and name.split("^")[0] not in text


def test_truncated_nifti_and_malformed_label_table_are_named(tmp_path, sample_data):
    data = np.full((16, 16, 6), 40, dtype=np.int16)
    data[0] = -1000
    p = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), p)
    p.write_bytes(p.read_bytes()[:-40])
    res = run("run", p, "--out", tmp_path / "o", "-q", "-j", "1")
    assert scans(tmp_path / "o")["ct"]["error_code"] == "PIXEL_DECODE_FAILED", res.output
    labels = tmp_path / "labels.nii.gz"
    shutil.copy(sample_data / "P02" / "regions" / "aorta.nii.gz", labels)
    (tmp_path / "labels.yaml").write_text("1: [unclosed\n")
    res = run("run", sample_data / "P02" / "dicom", "--regions", labels, "--out",
              tmp_path / "o2", "-q", "-j", "1")
    assert next(iter(scans(tmp_path / "o2").values()))["error_code"] == "REGION_INVALID"


def test_a_declared_huge_matrix_is_refused_by_name(tmp_path):
    paths = series(tmp_path)
    edit(paths[0], Rows=65535, Columns=65535)
    with pytest.raises(Exception) as err:
        score(tmp_path)
    assert getattr(err.value, "code", "") == "PIXEL_DECODE_FAILED"
    assert paths[0].name in str(err.value)


# --- statisticians --------------------------------------------------------------------------

def test_manifest_typos_warn_and_bad_headers_are_refused(tmp_path):
    series(tmp_path / "s")
    m = tmp_path / "m.csv"
    m.write_text("case_id,path,hieght_cm,weight\nA,s,172,80\n")
    res = CliRunner().invoke(app, ["run", str(m), "--out", str(tmp_path / "o"), "-q", "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0
    assert "did you mean 'height_cm'" in res.output and "did you mean 'weight_kg'" in res.output
    for text, why in (("case_id,path,height_cm,height_cm\nA,s,1,2\n", "more than once"),
                      ("case_id,path\nA,s,extra\n", "more fields than the header"),
                      ("case_id,path,status\nA,s,x\n", "output columns")):
        m.write_text(text)
        res = run("run", m, "--out", tmp_path / "o2")
        assert res.exit_code == 2 and why in res.output and "MANIFEST_INVALID" in res.output


def test_covariates_have_the_same_types_in_csv_and_parquet(tmp_path):
    import pyarrow.parquet as pq

    series(tmp_path / "s")
    m = tmp_path / "m.csv"
    m.write_text("case_id,path,phosphate,dialysis,site\nA,s,1.5,1,north\nB,s,,0,south\n")
    assert run("run", m, "--out", tmp_path / "o", "-q", "-j", "1").exit_code == 0
    t = pq.read_table(tmp_path / "o" / "scans.parquet")
    assert str(t.schema.field("phosphate").type) == "double"
    assert str(t.schema.field("dialysis").type) == "int64"
    assert str(t.schema.field("site").type) == "string"
    dd = {r["name"]: r["type"] for r in read_rows(tmp_path / "o" / "data_dictionary.csv")
          if r["table"] == "scans"}
    assert (dd["phosphate"], dd["dialysis"], dd["site"]) == ("number", "integer", "string")


def test_lesion_pieces_count_their_own_slices(sample_data, tmp_path):
    """A plaque on slices 1-4 split by a region boundary after slice 2: each piece spans 2."""
    from vascalc.analyse import analyse
    from vascalc.records import CTVolume

    hu = np.full((5, 10, 10), -50, dtype=np.int16)
    hu[1:5, 3:6, 3:6] = 300
    top = np.zeros(hu.shape, bool)
    top[:3] = True
    r = analyse(CTVolume(hu=hu, spacing_mm=(3.0, 0.5, 0.5)), Config(), case_id="p",
                regions=[("a", top), ("b", ~top)])
    assert sorted((le.region, le.n_slices) for le in r.lesions) == [("a", 2), ("b", 2)]


def test_progression_prefers_the_manifest_scan_date_and_flags_same_dates():
    rows = [{"case_id": "a", "patient_id": "P", "status": "ok", "study_date": "2020-01-01",
             "scan_date": "2021-01-01", "volume_mm3": "100"},
            {"case_id": "b", "patient_id": "P", "status": "ok", "study_date": "2020-01-01",
             "scan_date": "2022-01-01", "volume_mm3": "200"},
            {"case_id": "c", "patient_id": "Q", "status": "ok", "study_date": "2020-01-01",
             "volume_mm3": "1"},
            {"case_id": "d", "patient_id": "Q", "status": "ok", "study_date": "2020-01-01",
             "volume_mm3": "2"}]
    pairs = {p["patient_id"]: p for p in pair_rows(rows)[0]}
    assert pairs["P"]["interval_days"] == 365 and pairs["P"]["date_source"] == "scan_date"
    assert pairs["P"]["interval_flag"] == ""
    assert pairs["Q"]["interval_flag"] == "same_date"
    assert pairs["Q"]["volume_mm3_change_per_year"] is None
    assert {"date_source", "interval_flag"} <= {c.name for c in PROGRESSION}


def test_run_json_timings_are_this_runs_own(sample_data, tmp_path):
    args = ("run", sample_data / "P04" / "dicom", "--out", tmp_path / "o", "-q", "-j", "1")
    assert run(*args).exit_code == 0
    assert run(*args).exit_code == 0  # everything reused
    timings = json.loads((tmp_path / "o" / "run.json").read_text())["timings_s"]
    assert set(timings) == {"total"}  # no stage of an earlier run summed in



def test_case_ids_do_not_depend_on_the_root_given(sample_data, tmp_path):
    """The same series gets the same id from its own folder, its parent or the whole tree
    (resume and joins hold across runs), and a lone series folder is not just 'dicom'."""
    ids = {}
    for name, root in (("tree", sample_data), ("parent", sample_data / "P02"),
                       ("folder", sample_data / "P02" / "dicom")):
        cases, _ = cases_from_tree(root, Config())
        ids[name] = {c.case_id for c in cases}
    assert "P02_dicom" in ids["tree"] and ids["parent"] == ids["folder"] == {"P02_dicom"}
    # two series whose last two names agree take one more name each
    for top in ("a", "b"):
        series(tmp_path / top / "study" / "CT", seed=top)  # two distinct series
    cases, _ = cases_from_tree(tmp_path, Config())
    assert sorted(c.case_id for c in cases) == ["a_study_CT", "b_study_CT"]


@pytest.mark.parametrize("age, years", [("067Y", 67.0), ("006M", 0.5), ("026W", 26 / 52.1775),
                                        ("010D", 10 / 365.25), ("67", None), ("", None)])
def test_patient_age_in_years(age, years):
    from vascalc.values import age_years

    assert age_years(age) == (None if years is None else pytest.approx(years))


def test_reports_print_no_library_warnings_on_the_console(sample_data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vascalc.cli", "run",
                           str(sample_data / "P01_T1" / "dicom"), "--out", str(tmp_path / "o"),
                           "-q", "-j", "1", "--report"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr.lower()
    row = scans(tmp_path / "o")["P01_T1_dicom"]
    assert row["patient_age_years"] == ""  # demographics are off by default


def test_the_start_method_and_its_reason(monkeypatch):
    """run.json's executor_start: fork while one thread runs, forkserver when others do."""
    monkeypatch.setattr(executors, "can_fork", lambda: True)
    assert executors.start_method()[0] == "fork"
    monkeypatch.setattr(executors, "can_fork", lambda: False)
    method, why = executors.start_method()
    assert method == "forkserver" and "threads" in why
