"""The bad-input corpus: one generated case per kind of real-world trouble, each with its exact
outcome (an error code, a quality flag, or the corrected numbers)."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.errors import VascalcError
from vascalc.io.dicom import index_tree, load_series

from sample_data.dicom_writer import SeriesSpec, write_series

N = 6


def read_rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(Path(path).read_text().splitlines()))


def hu_volume():
    """Soft tissue with one 4x4-pixel plaque of 350 HU on slices 2-3 (0.5 mm pixels:
    4 mm^2 per slice, weight 3; Agatston = 2 x 4 x 3 x 3/3 = 24; volume = 32 x 0.75 mm3)."""
    hu = np.full((N, 16, 16), 40.0)
    hu[:, 0, :] = -1000  # air along one edge, as in every CT field of view
    hu[2:4, 6:10, 6:10] = 350
    return hu


EXPECTED_AGATSTON, EXPECTED_VOLUME = 24.0, 32 * 0.25 * 3.0


def series(folder: Path, **spec) -> list[Path]:
    base = dict(pixel_spacing_mm=(0.5, 0.5), increment_mm=3.0, z0_mm=0.0, seed=folder.name)
    base.update(spec)
    return write_series(folder, hu_volume(), SeriesSpec(**base), shuffle_names=False)


def edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        if v is None:
            if k in ds:
                delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)


def score(folder: Path, config: Config | None = None):
    cfg = config or Config()
    headers, _ = index_tree(folder)
    g = cfg.geometry
    vol = load_series(headers, gantry_tilt=g.gantry_tilt, max_obliquity_deg=g.max_obliquity_deg)
    return vol, analyse(vol, cfg, case_id="x")


def code_of(folder: Path, config: Config | None = None) -> str:
    with pytest.raises(VascalcError) as exc:
        score(folder, config)
    return exc.value.code


# --- geometry ------------------------------------------------------------------------------

def test_clean_series_scores_the_hand_computed_values(tmp_path):
    series(tmp_path)
    vol, r = score(tmp_path)
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)
    assert r.whole.volume_mm3 == pytest.approx(EXPECTED_VOLUME)
    assert vol.quality_flags == ()


def test_the_same_file_twice_is_dropped_and_flagged(tmp_path):
    paths = series(tmp_path / "s")
    shutil.copy(paths[2], tmp_path / "s" / "copy_of_slice_2.dcm")
    vol, r = score(tmp_path / "s")
    assert "duplicate_files_removed" in vol.quality_flags
    assert vol.shape[0] == N
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_two_different_images_at_one_position_are_refused(tmp_path):
    paths = series(tmp_path)
    edit(paths[3], ImagePositionPatient=[0.0, 0.0, 6.0])  # the position of slice 2
    assert code_of(tmp_path) == "GEOMETRY_DUPLICATE_SLICE"


def test_missing_slice_is_refused(tmp_path):
    paths = series(tmp_path)
    paths[4].unlink()
    assert code_of(tmp_path) == "GEOMETRY_MISSING_SLICE"


def test_uneven_spacing_is_refused(tmp_path):
    paths = series(tmp_path)
    for k, p in enumerate(paths):
        edit(p, ImagePositionPatient=[0.0, 0.0, 3.0 * k + (0.4 if k % 2 else 0.0)])
    assert code_of(tmp_path) == "GEOMETRY_UNEVEN_SPACING"


@pytest.mark.parametrize("shift_mm", [0.5, -1.0])
def test_gantry_tilt_is_scored_slice_by_slice_with_a_flag(tmp_path, shift_mm):
    paths = series(tmp_path)
    for k, p in enumerate(paths):  # positions advance 3 mm along z and shift_mm along y
        edit(p, ImagePositionPatient=[0.0, shift_mm * k, 3.0 * k])
    vol, r = score(tmp_path)
    assert "gantry_tilt" in vol.quality_flags
    # in-plane areas and the distance between planes (3 mm along the normal) are unchanged
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)
    assert r.whole.volume_mm3 == pytest.approx(EXPECTED_VOLUME)
    # the lesion centroid follows the sheared positions: slice 2.5 -> y shifted 2.5 x shift
    le = r.lesions[0]
    assert le.centroid_y_mm == pytest.approx(7.5 * 0.5 + 2.5 * shift_mm)
    assert le.centroid_z_mm == pytest.approx(7.5)
    assert code_of(tmp_path, Config(geometry={"gantry_tilt": "refuse"})) == "GEOMETRY_INVALID"


def test_non_axial_stack_is_refused(tmp_path):
    paths = series(tmp_path)
    for k, p in enumerate(paths):  # coronal: rows along -z, slices along y
        edit(p, ImageOrientationPatient=[1, 0, 0, 0, 0, -1],
             ImagePositionPatient=[0.0, 3.0 * k, 0.0])
    assert code_of(tmp_path) == "GEOMETRY_NOT_AXIAL"


def test_mixed_matrix_sizes_within_a_series_are_refused(tmp_path):
    paths = series(tmp_path)
    ds = pydicom.dcmread(paths[1])
    ds.Rows, ds.Columns = 8, 32
    ds.save_as(paths[1])
    assert code_of(tmp_path) == "GEOMETRY_INCONSISTENT"


def test_inconsistent_pixel_spacing_is_refused(tmp_path):
    paths = series(tmp_path)
    edit(paths[1], PixelSpacing=[0.6, 0.6])
    assert code_of(tmp_path) == "GEOMETRY_INCONSISTENT"


def test_missing_position_is_refused(tmp_path):
    paths = series(tmp_path)
    edit(paths[0], ImagePositionPatient=None)
    assert code_of(tmp_path) == "MISSING_TAG"


def test_single_slice_is_refused(tmp_path):
    paths = series(tmp_path)
    for p in paths[1:]:
        p.unlink()
    assert code_of(tmp_path) == "GEOMETRY_INVALID"


# --- pixel values ----------------------------------------------------------------------------

def test_padding_is_air_never_calcium(tmp_path):
    hu = hu_volume()
    hu[:, :, :3] = 64511  # unsigned stored 65535 with intercept -1024: the padding value
    write_series(tmp_path, hu, SeriesSpec(pixel_spacing_mm=(0.5, 0.5), intercept=-1024.0,
                                          extra={"PixelPaddingValue": 65535}))
    vol, r = score(tmp_path)
    assert "pixel_padding" in vol.quality_flags
    assert vol.hu.dtype == np.int16 and vol.hu[:, :, :3].max() == -1000
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_padding_range_limit(tmp_path):
    hu = hu_volume()
    hu[:, :2, :] = -2000
    hu[:, 2, :] = -1500
    write_series(tmp_path, hu, SeriesSpec(pixel_spacing_mm=(0.5, 0.5), signed=True,
                                          intercept=0.0, extra={"PixelPaddingValue": -2000,
                                                                "PixelPaddingRangeLimit": -1400}))
    vol, r = score(tmp_path)
    assert "pixel_padding" in vol.quality_flags
    assert np.all(vol.hu[:, :3, :] == -1000)
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_monochrome1_gives_the_same_hu_and_a_flag(tmp_path):
    series(tmp_path / "a")
    paths = series(tmp_path / "b")
    for p in paths:
        edit(p, PhotometricInterpretation="MONOCHROME1")
    va, _ = score(tmp_path / "a")
    vb, r = score(tmp_path / "b")
    assert np.array_equal(va.hu, vb.hu) and "monochrome1" in vb.quality_flags
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_rescale_type_other_than_hu_is_flagged(tmp_path):
    paths = series(tmp_path)
    for p in paths:
        edit(p, RescaleType="US")
    vol, _ = score(tmp_path)
    assert "rescale_type_not_hu" in vol.quality_flags


def test_rescale_varying_per_slice_is_applied_per_slice(tmp_path):
    paths = series(tmp_path, intercept=-1024.0)
    ds = pydicom.dcmread(paths[2])  # re-encode slice 2 with intercept -1000
    stored = np.frombuffer(ds.PixelData, dtype=np.uint16).astype(np.int32) - 24
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.RescaleIntercept = "-1000"
    ds.save_as(paths[2])
    vol, r = score(tmp_path)
    assert "rescale_varies" in vol.quality_flags
    assert np.array_equal(vol.hu, hu_volume())
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_missing_rescale_is_refused(tmp_path):
    paths = series(tmp_path)
    edit(paths[1], RescaleSlope=None, RescaleIntercept=None)
    assert code_of(tmp_path) == "MISSING_RESCALE"


# --- files -----------------------------------------------------------------------------------

def test_files_without_preamble_are_read(tmp_path):
    paths = series(tmp_path)
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(p, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert paths[0].read_bytes()[:4] != b"\x00" * 4
    _, r = score(tmp_path)
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_junk_zero_byte_and_truncated_files_never_crash_a_tree(tmp_path):
    series(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.dcm").write_bytes(b"")
    (bad / "junk.dcm").write_bytes(b"\x00" * 50 + b"garbage")
    (bad / "notes.txt").write_text("not an image")
    good0 = sorted((tmp_path / "good").iterdir())[0].read_bytes()
    (bad / "truncated_header.dcm").write_bytes(good0[:300])
    res = CliRunner().invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "o"), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    import json

    notes = {n["path"]: n["reason"] for n in
             json.loads((tmp_path / "o" / "run.json").read_text())["not_scored"]}
    assert set(notes) == {"bad/empty.dcm", "bad/junk.dcm", "bad/notes.txt",
                          "bad/truncated_header.dcm"}


def test_localizer_and_outlier_images_are_excluded_with_the_reason(tmp_path):
    paths = series(tmp_path)
    extra = tmp_path / "scout.dcm"
    shutil.copy(paths[0], extra)
    edit(extra, ImageOrientationPatient=[1, 0, 0, 0, 0, -1], SOPInstanceUID="1.2.3.4.5",
         ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    from vascalc.run.discovery import cases_from_tree

    cases, notes = cases_from_tree(tmp_path, Config())
    assert len(cases) == 1 and len(cases[0].headers) == N
    assert [n["path"] for n in notes] == ["scout.dcm"] and "outlier" in notes[0]["reason"]


def test_two_acquisitions_in_one_series_are_split(tmp_path):
    a = series(tmp_path, extra={"AcquisitionNumber": 1})
    b_dir = tmp_path / "b"
    b = series(b_dir, extra={"AcquisitionNumber": 2})
    for p in b:  # same series UID, same positions, another acquisition
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = pydicom.dcmread(a[0]).SeriesInstanceUID
        ds.save_as(p)
    from vascalc.run.discovery import cases_from_tree

    cases, _ = cases_from_tree(tmp_path, Config())
    assert sorted(len(c.headers) for c in cases) == [N, N]


def test_patient_ids_never_become_paths(tmp_path):
    series(tmp_path / "in", patient_id="../../x", patient_name="Smith/John")
    out = tmp_path / "deep" / "out"
    res = CliRunner().invoke(app, ["run", str(tmp_path / "in"), "--out", str(out), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(p).startswith(("in/", "deep/out/")) for p in written)
    rows = (read_rows(out / "scans.csv"))
    # the id is the series folder's own last two names: never a DICOM string
    assert rows[0]["case_id"] == f"{tmp_path.name}_in"
    assert "Smith" not in (out / "scans.csv").read_text()
    assert "Smith" not in (out / "vascalc.log").read_text()


# --- archives --------------------------------------------------------------------------------

def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_archive_input_is_scored(tmp_path):
    paths = series(tmp_path / "s")
    z = _zip(tmp_path / "study.zip", {f"CT/{p.name}": p.read_bytes() for p in paths})
    res = CliRunner().invoke(app, ["run", str(z), "--out", str(tmp_path / "o"), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = (read_rows(tmp_path / "o" / "scans.csv"))[0]
    assert row["case_id"] == "study_CT" and float(row["agatston"]) == pytest.approx(24.0)
    assert not (tmp_path / "o" / ".work").exists()


def test_zip_path_traversal_is_refused_as_a_failed_row(tmp_path):
    z = _zip(tmp_path / "evil.zip", {"../../escaped.dcm": b"x", "ok.dcm": b"y"})
    series(tmp_path / "good")
    res = CliRunner().invoke(app, ["run", str(z), str(tmp_path / "good"),
                                   "--out", str(tmp_path / "o"), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 1
    rows = {r["case_id"]: r for r in read_rows(tmp_path / "o" / "scans.csv")}
    assert rows["evil"]["error_code"] == "ARCHIVE_INVALID"
    good = f"{tmp_path.name}_good"
    assert "outside" in rows["evil"]["error"] and rows[good]["status"] == "ok"
    assert not list(tmp_path.parent.rglob("escaped.dcm"))


def test_zip_bomb_stops_at_the_cap(tmp_path):
    z = _zip(tmp_path / "bomb.zip", {"a.bin": b"\0" * 5_000_000})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input:\n  max_archive_bytes: 1000000\n")
    res = CliRunner().invoke(app, ["run", str(z), "--out", str(tmp_path / "o"), "-c", str(cfg)],
                             catch_exceptions=False)
    assert res.exit_code == 1
    row = (read_rows(tmp_path / "o" / "scans.csv"))[0]
    assert row["error_code"] == "ARCHIVE_INVALID" and "zip bomb" in row["error"]


def test_manifest_path_may_be_a_zip(tmp_path):
    paths = series(tmp_path / "s")
    _zip(tmp_path / "case.zip", {p.name: p.read_bytes() for p in paths})
    m = tmp_path / "m.csv"
    m.write_text("case_id,path\nZ1,case.zip\n")
    res = CliRunner().invoke(app, ["run", str(m), "--out", str(tmp_path / "o"), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = (read_rows(tmp_path / "o" / "scans.csv"))[0]
    assert float(row["agatston"]) == pytest.approx(24.0)


def test_a_batch_mixing_good_and_bad_cases_writes_every_good_result(tmp_path):
    for i in range(3):
        series(tmp_path / "in" / f"good{i}")
    paths = series(tmp_path / "in" / "bad_rescale")
    edit(paths[0], RescaleIntercept=None)
    paths = series(tmp_path / "in" / "bad_gap")
    paths[3].unlink()
    res = CliRunner().invoke(app, ["run", str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                                   "-j", "2"], catch_exceptions=False)
    assert res.exit_code == 1
    rows = {r["case_id"]: r for r in read_rows(tmp_path / "o" / "scans.csv")}
    rows = {k.removeprefix("in_"): v for k, v in rows.items()}  # ids: the last two names
    assert {k: v["status"] for k, v in rows.items()} == {
        "good0": "ok", "good1": "ok", "good2": "ok", "bad_rescale": "failed",
        "bad_gap": "failed"}
    assert rows["bad_rescale"]["error_code"] == "MISSING_RESCALE"
    assert rows["bad_gap"]["error_code"] == "GEOMETRY_MISSING_SLICE"


@pytest.mark.parametrize("image_type", [["ORIGINAL", "PRIMARY", "LOCALIZER"],
                                        ["DERIVED", "SECONDARY", "PROJECTION IMAGE"],
                                        ["ORIGINAL", "PRIMARY", "TOPOGRAM"]])
def test_localizers_and_projections_are_not_scored(tmp_path, image_type):
    paths = series(tmp_path / "s")
    scout = tmp_path / "scout"
    scout.mkdir()
    shutil.copy(paths[0], scout / "s.dcm")
    edit(scout / "s.dcm", ImageType=image_type, SeriesInstanceUID="1.2.3.9",
         SOPInstanceUID="1.2.3.9.1")
    from vascalc.run.discovery import cases_from_tree

    cases, notes = cases_from_tree(tmp_path, Config())
    assert [c.case_id for c in cases] == [f"{tmp_path.name}_s"]
    assert notes == [{"path": "scout/s.dcm", "reason": notes[0]["reason"]}]
    assert "localizer or projection" in notes[0]["reason"]


@pytest.mark.parametrize("spacing", ["0\\0", "3.04797e-202\\3.04797e-202", "1000\\1000"])
def test_implausible_pixel_spacing_is_refused_by_name(tmp_path, spacing):
    """Found by the header fuzzer: a PixelSpacing of 3e-202 mm made the pixel area 0."""
    import pydicom
    from vascalc.errors import GeometryError
    from vascalc.io.dicom import index_tree, load_series

    from sample_data.dicom_writer import SeriesSpec, write_series

    write_series(tmp_path / "s", np.zeros((3, 8, 8)), SeriesSpec(signed=True, intercept=0.0))
    for f in (tmp_path / "s").iterdir():
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = spacing.split("\\")
        ds.save_as(f)
    with pytest.raises(GeometryError, match="PixelSpacing"):
        load_series(index_tree(tmp_path / "s")[0])


def test_a_manifest_scan_date_that_is_no_date_is_refused_by_line(tmp_path):
    """#22: 2020-02-30 silently fell back to the DICOM date."""
    from vascalc.errors import ManifestError
    from vascalc.run.discovery import cases_from_manifest

    m = tmp_path / "m.csv"
    m.write_text("case_id,path,scan_date\na,x,2020-02-29\nb,y,2020-02-30\n")
    with pytest.raises(ManifestError, match="line 3: scan_date '2020-02-30' is not a date"):
        cases_from_manifest(m)


def test_progression_does_not_replace_a_bad_scan_date_by_the_dicom_date():
    from vascalc.cohort.progression import pair_rows

    rows = [{"case_id": "a", "patient_id": "p", "scan_date": "2020-02-30",
             "study_date": "2020-01-01", "status": "ok", "volume_mm3": "1"},
            {"case_id": "b", "patient_id": "p", "study_date": "2021-01-01", "status": "ok",
             "volume_mm3": "2"}]
    pairs, notes = pair_rows(rows)
    assert pairs == [] and any("'2020-02-30' is not a date" in n["reason"] for n in notes)


def test_header_text_a_spreadsheet_would_run_is_written_as_text(tmp_path):
    """#22: '=1+1' in Manufacturer, '@SUM(1,1)' in the model, '+...' in the kernel were
    written raw into scans.csv."""
    import csv as _csv

    import numpy as np

    from sample_data.dicom_writer import SeriesSpec, write_series

    hu = np.full((4, 16, 16), -1000.0)
    hu[1:3, 4:8, 4:8] = 400
    write_series(tmp_path / "s", hu, SeriesSpec(manufacturer="=1+1", kernel="+cmd|x",
                                               extra={"ManufacturerModelName": "@SUM(1,1)"}))
    from vascalc.cli.app import app

    res = CliRunner().invoke(app, ["run", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
                                   "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o" / "scans.csv", newline="") as fh:
        row = next(_csv.DictReader(fh))
    assert (row["manufacturer"], row["model"], row["kernel"]) == ("'=1+1", "'@SUM(1,1)",
                                                                  "'+cmd|x")
    assert float(row["agatston"]) > 0  # numbers are untouched


def test_progression_on_a_scan_rescan_pair_and_a_negative_volume():
    """#22: 1.5 then 12 mm3 a day apart overflowed (12/1.5 to the power 365) and wrote nothing
    for the cohort; a negative volume crashed in sqrt."""
    from vascalc.cohort.progression import pair_rows

    rows = [{"case_id": "a", "patient_id": "p", "study_date": "2024-01-01", "status": "ok",
             "volume_mm3": "1.5", "agatston": "2"},
            {"case_id": "b", "patient_id": "p", "study_date": "2024-01-02", "status": "ok",
             "volume_mm3": "12", "agatston": "15"}]
    (pair,), _ = pair_rows(rows)
    assert pair["interval_flag"] == "short_interval" and pair["interval_days"] == 1
    assert pair["volume_mm3_change"] == 10.5 and pair["volume_mm3_change_per_year"] is None
    assert pair["volume_annual_relative_change"] is None and pair["progression_raggi"] is None
    rows[1]["volume_mm3"] = "-3"
    with pytest.raises(ValueError, match="case b: volume_mm3 -3 is negative"):
        pair_rows(rows)


def test_case_ids_that_collide_on_case_insensitive_file_systems_are_refused(tmp_path):
    """#22: 'A' and 'a' are one folder on macOS and Windows; CON and NUL are no folder."""
    from vascalc.errors import ManifestError
    from vascalc.run.discovery import _unique, cases_from_manifest

    m = tmp_path / "m.csv"
    m.write_text("case_id,path\nA,x\na,y\n")
    with pytest.raises(ManifestError, match="line 3: case_id 'a' already used on line 2"):
        cases_from_manifest(m)
    m.write_text("case_id,path\nCON,x\n")
    with pytest.raises(ManifestError, match="device name"):
        cases_from_manifest(m)
    assert _unique(["A", "a", "b"]) == ["A", "a-2", "b"]  # derived ids are made unique


def test_progression_refuses_a_case_id_given_twice():
    """#22: a duplicated case id was paired with itself as a follow-up."""
    from vascalc.cohort.progression import pair_rows

    row = {"case_id": "a", "patient_id": "p", "status": "ok", "volume_mm3": "1"}
    with pytest.raises(ValueError, match="'a' occur more than once"):
        pair_rows([{**row, "study_date": "2020-01-01"}, {**row, "study_date": "2021-01-01"}])


def test_editing_the_label_table_beside_a_map_redoes_the_case(tmp_path):
    """#22: map.json edited from aorta to LAD, rerun into the same OUT: the case was reused
    with the old region."""
    import os

    from vascalc.run.discovery import Case

    (tmp_path / "ct").mkdir()
    (tmp_path / "ct" / "x.dcm").write_bytes(b"")
    (tmp_path / "map.nii.gz").write_bytes(b"0")
    table = tmp_path / "map.json"
    table.write_text('{"1": "aorta"}')
    case = Case(case_id="c", path=str(tmp_path / "ct"), display_path="c",
                regions=str(tmp_path / "map.nii.gz"))
    before = case.fingerprint()
    st = os.stat(table)
    table.write_text('{"1": "LADxx"}')  # same size, and the same mtime put back
    os.utime(table, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert case.fingerprint() != before


def test_one_series_uid_over_two_visits_is_two_cases(tmp_path):
    """#22: one SeriesInstanceUID shared by a 2020 and a 2022 study (a bad de-identifier) was one
    12-slice case adding both visits. They are two stacks now, never one sum."""
    import numpy as np
    from vascalc.io.dicom import index_tree
    from vascalc.io.stacks import split_stacks

    from sample_data.dicom_writer import SeriesSpec, write_series

    hu = np.full((6, 16, 16), -1000.0)
    hu[2:4, 4:8, 4:8] = 400
    a = write_series(tmp_path / "s", hu, SeriesSpec(study_date="20200101", seed="v1",
                                                    extra={"SeriesInstanceUID": "1.2.3.4"}))
    b = write_series(tmp_path / "t", hu, SeriesSpec(study_date="20220101", seed="v2",
                                                    extra={"SeriesInstanceUID": "1.2.3.4"}))
    headers, _ = index_tree(tmp_path)
    assert len(headers) == len(a) + len(b) == 12
    stacks, notes = split_stacks(headers)
    assert sorted(len(s) for s in stacks) == [6, 6] and notes == []
    assert {s[0].meta.study_date for s in stacks} == {"2020-01-01", "2022-01-01"}


def test_a_slice_cut_inside_its_header_is_flagged_in_a_zip_as_in_a_folder(tmp_path):
    """#22: flagged in a folder, dropped silently from a zip (Agatston 48 became 32)."""
    import zipfile

    paths = series(tmp_path / "s")
    cut = sorted(paths)[-1]  # the top slice: the rest stays a regular stack
    cut.write_bytes(cut.read_bytes()[:300])
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted((tmp_path / "s").iterdir()):
            zf.write(p, f"s/{p.name}")
    flags = {}
    for name, inp in (("folder", tmp_path / "s"), ("zip", z)):
        res = CliRunner().invoke(app, ["run", str(inp), "--out", str(tmp_path / name), "-j",
                                       "1", "-q"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        flags[name] = read_rows(tmp_path / name / "scans.csv")[0]["quality_flags"]
    assert flags["zip"] == flags["folder"] and flags["folder"]


def test_summary_of_values_no_axis_can_hold_writes_its_tables_without_a_traceback(tmp_path):
    """#22: summary crashed on 1e308 (the figures' axis ticks)."""
    import warnings

    from vascalc.cli.app import app

    t = tmp_path / "s.csv"
    t.write_text("case_id,patient_id,status,agatston,volume_mm3,scope\n"
                 "a,p,ok,1e308,1e308,coronary\nb,q,ok,1e308,1e308,coronary\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow in the IQR
        res = CliRunner().invoke(app, ["summary", str(t), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0 and res.exception is None, res.output
    assert (tmp_path / "o" / "summary.csv").is_file()


def test_a_label_map_of_another_crop_is_flagged_and_its_own_map_is_not(tmp_path):
    """#22: a label map covering only part of the CT (another crop's map on the same affine)
    was accepted without a flag: the plaque beyond it silently became 'outside'."""
    from vascalc.io.masks import nifti_bytes

    series(tmp_path / "s1")
    vol = load_series(index_tree(tmp_path / "s1")[0])
    labels = np.zeros(vol.shape, dtype=np.uint8)
    labels[:, 4:12, 4:12] = 1  # an 'aorta' around the plaque
    (tmp_path / "own.nii.gz").write_bytes(nifti_bytes(labels, vol))
    # the map of a crop holding the first 2 of 6 slices, on the CT's own affine
    short = type(vol)(**{**vol.__dict__, "hu": vol.hu[:2]})
    (tmp_path / "crop.nii.gz").write_bytes(nifti_bytes(labels[:2], short))
    for stem in ("own", "crop"):
        (tmp_path / f"{stem}.json").write_text('{"1": "aorta"}')
    manifest = tmp_path / "m.csv"
    manifest.write_text("case_id,path,regions\nown,s1,own.nii.gz\ncrop,s1,crop.nii.gz\n")
    res = CliRunner().invoke(app, ["run", str(manifest), "--out", str(tmp_path / "out"), "-q",
                                   "--no-report", "-j", "1"])
    assert res.exit_code == 0, res.output
    rows = {r["case_id"]: r for r in read_rows(tmp_path / "out" / "scans.csv")}
    assert "regions_partial_coverage" not in rows["own"]["quality_flags"]
    assert "regions_partial_coverage" in rows["crop"]["quality_flags"].split(";")
    regions = {(r["case_id"], r["region"]): r for r in read_rows(tmp_path / "out" / "regions.csv")}
    assert float(regions[("own", "aorta")]["agatston"]) == pytest.approx(EXPECTED_AGATSTON)
    # the plaque on slices 2-3 is beyond the crop's map: outside, and the flag says why
    assert float(regions[("crop", "outside")]["agatston"]) == pytest.approx(EXPECTED_AGATSTON)


def test_a_quoted_crlf_in_a_manifest_cell_is_carried_unchanged(tmp_path):
    """#22: a quoted CRLF inside a manifest cell lost its CR on the way to scans.csv."""
    import pandas as pd
    import vascalc

    series(tmp_path / "s1")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b'case_id,path,note\r\nC1,s1,"line one\r\nline two"\r\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(manifest), "--out", str(out), "-q", "--no-report",
                                   "-j", "1"])
    assert res.exit_code == 0, res.output
    with (out / "scans.csv").open(newline="", encoding="utf-8") as f:
        assert next(csv.DictReader(f))["note"] == "line one\r\nline two"
    assert pd.read_parquet(out / "scans.parquet")["note"].iloc[0] == "line one\r\nline two"
    assert vascalc.read_tables(out)["scans"]["note"].iloc[0] == "line one\r\nline two"


# --- the library and the tables (#35.2, #35.5-7, #34.6) ------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """Two cases (the 24-Agatston plaque) from a manifest with a scan_date, tables in CSV
    and Parquet."""
    root = tmp_path_factory.mktemp("small_run")
    series(root / "s1")
    series(root / "s2", patient_id="P2")
    (root / "m.csv").write_text("case_id,path,scan_date\nA,s1,20240105\nB,s2,2024-02-01\n")
    out = root / "out"
    res = CliRunner().invoke(app, ["run", str(root / "m.csv"), "--out", str(out), "-q",
                                   "--no-report", "-j", "1"])
    assert res.exit_code == 0, res.output
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cases", ".vascalc.lock"))
    return dst


def _edit_csv(path: Path, edit) -> None:
    rows = read_rows(path)
    header = list(rows[0])
    rows, header = edit(rows, header)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, header)
        w.writeheader()
        w.writerows(rows)


def test_scan_date_is_a_datetime_like_study_date(small_run):
    import vascalc

    scans = vascalc.read_tables(small_run)["scans"].set_index("case_id")
    assert str(scans["scan_date"].dtype) == "datetime64[ns]" == str(scans["study_date"].dtype)
    assert str(scans.loc["A", "scan_date"].date()) == "2024-01-05"  # yyyymmdd written ISO


@pytest.mark.parametrize("bad, message", [
    ("missing", r"column\(s\) agatston missing"),
    ("inf", r"line 2 \(case A\), column agatston: 'inf' is not a finite number"),
    ("nan", r"line 3 \(case B\), column volume_mm3: 'nan' is not a number"),
    ("twice", r"line 4 \(case A\): a second row with case_id='A'"),
    ("maybe", r"line 2 \(case A\), column agatston_comparable: 'maybe' is not true or false"),
    ("half", r"line 2 \(case A\), column n_lesions: '1.5' is not an integer"),
    ("date", r"column study_date: 'yesterday' is not a date"),
    ("unknown", r"column\(s\) my_note not in data_dictionary.csv"),
])
def test_read_tables_refuses_what_the_writer_never_writes(small_run, tmp_path, bad, message):
    """#35.7: each by file, line and column, as ResultError; never a KeyError or a NaN."""
    import vascalc
    from vascalc.errors import ResultError

    out = _copy_run(small_run, tmp_path / "o")
    for p in out.glob("*.parquet"):
        p.unlink()

    def edit(rows, header):
        if bad == "missing":
            header.remove("agatston")
            rows = [{k: v for k, v in r.items() if k != "agatston"} for r in rows]
        elif bad == "inf":
            rows[0]["agatston"] = "inf"
        elif bad == "nan":
            rows[1]["volume_mm3"] = "nan"
        elif bad == "twice":
            rows.append(dict(rows[0]))
        elif bad == "maybe":
            rows[0]["agatston_comparable"] = "maybe"
        elif bad == "half":
            rows[0]["n_lesions"] = "1.5"
        elif bad == "date":
            rows[0]["study_date"] = "yesterday"
        elif bad == "unknown":
            header.append("my_note")
            rows[0]["my_note"] = "x"
        return rows, header

    _edit_csv(out / "scans.csv", edit)
    with pytest.raises(ResultError, match=message) as err:
        vascalc.read_tables(out)
    assert str(out / "scans.csv") in str(err.value)


def test_read_tables_refuses_an_unknown_source_and_a_path_that_is_none(small_run):
    import vascalc
    from vascalc.errors import UsageError

    with pytest.raises(UsageError, match="source='xlsx'"):
        vascalc.read_tables(small_run, source="xlsx")
    with pytest.raises(UsageError, match="read_tables.out. is None"):
        vascalc.read_tables(None)


def test_a_rerun_without_parquet_leaves_no_stale_parquet(small_run, tmp_path):
    """#35.2: the earlier run's Parquet is removed (run, merge and rescore write through
    rebuild), run.json lists the tables the run wrote, and a stale one put back is refused."""
    import json

    import vascalc
    from vascalc.errors import ResultError

    root = small_run.parent
    out = tmp_path / "o"
    for cfg_text, parquet in (("", True), ("output:\n  parquet: false\n", False)):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(cfg_text or "{}\n")
        res = CliRunner().invoke(app, ["run", str(root / "m.csv"), "--out", str(out), "-q",
                                       "--no-report", "-j", "1", "-c", str(cfg)])
        assert res.exit_code == 0, res.output
        assert (out / "scans.parquet").exists() == parquet
        listed = json.loads((out / "run.json").read_text())["table_files"]
        assert ("scans.parquet" in listed) == parquet and "scans.csv" in listed
    shutil.copy(small_run / "scans.parquet", out / "scans.parquet")  # a stale one put back
    assert vascalc.read_tables(out)["scans"]["agatston"].notna().all()  # auto: the CSV
    with pytest.raises(ResultError, match="scans.parquet is not a table of the run"):
        vascalc.read_tables(out, source="parquet")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_summary_refuses_a_non_finite_score_by_line_and_column(small_run, tmp_path, value):
    """#35.6: a clear refusal (exit 2), never a ValueError traceback."""
    table = tmp_path / "scans.csv"
    shutil.copy(small_run / "scans.csv", table)

    def edit(rows, header):
        rows[1]["agatston"] = value
        return rows, header

    _edit_csv(table, edit)
    res = CliRunner().invoke(app, ["summary", str(table), "--out", str(tmp_path / "s"),
                                   "--no-figures"])
    assert res.exit_code == 2, res.output
    assert f"line 3 (case B), column agatston: '{value}' is not a finite number" in res.output
    assert not (tmp_path / "s" / "summary.csv").exists()


@pytest.mark.parametrize("args, message", [
    ((None,), r"score_series\(path\) is None"),
    ((123,), r"score_series\(path\) is 123 \(int\)"),
    ((".", {"scoring": {"threshold_hu": 100}}), "config is a dict"),
    ((".", 7), "config is a int"),
])
def test_score_series_refuses_what_is_not_a_path_or_config(args, message):
    """#35.7: a vascalc UsageError naming what was given, never a raw TypeError."""
    import vascalc
    from vascalc.errors import UsageError

    with pytest.raises(UsageError, match=message):
        vascalc.score_series(*args)


def test_load_config_and_analyse_refuse_what_they_cannot_take():
    import vascalc
    from vascalc.errors import ConfigError, UsageError

    with pytest.raises(ConfigError, match="not a dict"):
        vascalc.load_config({"scoring": {}})
    with pytest.raises(UsageError, match="analyse takes a CTVolume and a Config"):
        vascalc.analyse(None, Config(), case_id="x")
    # the neighbour: with the submodule vascalc.analyse imported (any process that scored a
    # case has), vascalc.analyse is still the function, not "'module' object is not callable"
    import sys

    import vascalc.analyse  # noqa: F401 - the submodule, as the case path imports it

    assert vascalc.analyse is sys.modules["vascalc.analyse"].analyse


def test_a_withheld_headline_is_none_in_the_library_record(tmp_path):
    """#34.6: a contrast-enhanced phantom (ContrastBolusAgent in the header, no masks): the
    all-calcium headline is withheld, every number of it None (never 0.0), the reason beside
    it, and the same case's scans.csv row empty."""
    import vascalc

    files = series(tmp_path / "s")
    for f in files:
        edit(f, ContrastBolusAgent="IOMEPROL 350")
    r = vascalc.score_series(tmp_path / "s")
    head = r.headline or r.whole
    assert head.withheld and "contrast" in head.withheld
    assert (head.agatston, head.volume_mm3, head.mass_mg, head.n_lesions, head.density_score) \
        == (None,) * 5
    assert r.whole.agatston is None and r.density_score is None
    assert r.volume_per_bsa_mm3_m2 is None and r.risk_category == ""
    res = CliRunner().invoke(app, ["run", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
                                   "-q", "--no-report", "-j", "1"])
    assert res.exit_code == 0, res.output
    row = read_rows(tmp_path / "o" / "scans.csv")[0]
    assert row["agatston"] == row["volume_mm3"] == "" and row["withheld_reason"] == head.withheld


def test_the_shared_siemens_contrast_ct_is_withheld_as_none():
    """#34.6 on real data: the Siemens contrast CT scored with the coronary profile."""
    import vascalc

    from tests.conftest import shared_path

    path = shared_path("totalsegmentator_example", "example_ct_dicom")
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared data): the phantom test above covers it")
    r = vascalc.score_series(path, "coronary")
    head = r.headline or r.whole
    assert head.withheld
    assert head.agatston is None and head.volume_mm3 is None and head.n_lesions is None


def test_progression_refuses_a_non_finite_score_like_summary(small_run, tmp_path):
    """The neighbour of #35.6: progression read 'inf' as a missing score, silently."""
    table = tmp_path / "scans.csv"
    shutil.copy(small_run / "scans.csv", table)

    def edit(rows, header):
        rows[0]["volume_mm3"] = "-inf"
        return rows, header

    _edit_csv(table, edit)
    res = CliRunner().invoke(app, ["progression", str(table), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2, res.output
    assert "line 2 (case A), column volume_mm3: '-inf' is not a finite number" in res.output


# --- #35 item 21: air far below -1024 HU -------------------------------------------------

def test_a_doubled_rescale_offset_is_refused_with_the_likely_cause(tmp_path):
    """RescaleIntercept -2048 where the pixels need -1024: air reads -2024 HU, the plaque
    falls below 130 HU and the scan would score 0 calcium; refused by name instead."""
    paths = series(tmp_path / "s")
    for p in paths:
        edit(p, RescaleIntercept="-2048")
    with pytest.raises(VascalcError) as exc:
        score(tmp_path / "s")
    err = exc.value
    assert err.code == "HU_IMPLAUSIBLE" and str(tmp_path / "s") in str(err)
    assert "applied twice" in str(err) and "-1000 HU" in (err.hint or "")


def test_a_doubled_offset_in_a_nifti_is_refused_too(tmp_path):
    import nibabel as nib
    from vascalc.io.nifti import load_nifti

    hu = np.transpose(hu_volume(), (2, 1, 0)) - 1024.0  # x, y, z as NIfTI keeps them
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu.astype(np.int16), np.diag([0.5, 0.5, 3.0, 1.0])), path)
    with pytest.raises(VascalcError) as exc:
        load_nifti(path)
    assert exc.value.code == "HU_IMPLAUSIBLE" and "applied twice" in str(exc.value)


def test_corner_padding_outside_the_reconstruction_circle_is_not_air(tmp_path):
    """-2048 HU written outside the reconstruction circle (no PixelPaddingValue) is padding,
    not air on another scale: the scan is scored as before."""
    hu = np.full((N, 32, 32), 40.0)
    hu[:, 2, 8:24] = -1000  # air inside the circle
    rr, cc = np.mgrid[:32, :32]
    hu[:, np.hypot(rr - 15.5, cc - 15.5) > 15.4] = -2048
    hu[2:4, 12:16, 12:16] = 350
    write_series(tmp_path / "p", hu, SeriesSpec(pixel_spacing_mm=(0.5, 0.5), intercept=-3072.0),
                 shuffle_names=False)
    _, r = score(tmp_path / "p")
    assert r.whole.agatston == pytest.approx(EXPECTED_AGATSTON)


def test_read_tables_refuses_a_scans_table_cut_between_or_inside_rows(sample_data, tmp_path):
    """A scans.csv cut short (a full disk, a copy stopped half-way) is refused by name: the
    cases run.json records are not all there, or the last row lost its cells."""
    import vascalc
    from typer.testing import CliRunner
    from vascalc.cli.app import app

    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["run", str(sample_data / "manifest.csv"), "--out", str(out),
                                   "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = (out / "scans.csv").read_text()
    lines = text.splitlines(keepends=True)
    for cut, words in ((lines[0] + lines[1] + lines[2], "records 5; missing"),
                       (text[: len(lines[0]) + len(lines[1]) + 40], "")):
        (out / "scans.csv").write_text(cut)
        with pytest.raises(vascalc.VascalcError) as err:
            vascalc.read_tables(out, source="csv")
        assert "scans.csv" in str(err.value) and "cut or edited" in str(err.value)
        assert words in str(err.value)
