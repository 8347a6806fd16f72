"""The bad-input corpus, series and identity (#35 items 8, 9, 14): one series is one patient,
one frame of reference, one date; a file cut inside its header is an unreadable file of its
series; case ids never reach above the input. Each case has its exact outcome."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner
from vascalc import score_series
from vascalc.cli.app import app
from vascalc.errors import UsageError
from vascalc.io.dicom import index_tree
from vascalc.io.dicom_header import read_header
from vascalc.io.stacks import split_stacks

from sample_data.dicom_writer import SeriesSpec, write_series

N = 8
LOW = 5  # slices 0-4 keep the series' identity; slices 5-7 get another one


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def hu_volume() -> np.ndarray:
    """Soft tissue, air along one edge, one 4x4-pixel plaque of 350 HU on slices 1-2 (0.5 mm
    pixels: 4 mm^2 per slice, weight 3, 3 mm increment: Agatston 2 x 4 x 3 = 24), all of it
    in the lower part."""
    hu = np.full((N, 16, 16), 40.0)
    hu[:, 0, :] = -1000
    hu[1:3, 6:10, 6:10] = 350
    return hu


def series(folder: Path, **spec) -> list[Path]:
    base = dict(pixel_spacing_mm=(0.5, 0.5), increment_mm=3.0, z0_mm=0.0, seed="s")
    base.update(spec)
    return write_series(folder, hu_volume(), SeriesSpec(**base), shuffle_names=False)


#: what the upper three slices are given, and the words discovery.csv says for it
VARIANTS = {
    "frame_of_reference": ({"FrameOfReferenceUID": "1.2.826.0.1.3680043.10.1347.99"},
                           "FrameOfReferenceUID differs"),
    "acquisition_date": ({"AcquisitionDate": "20240102"}, "SeriesDate/AcquisitionDate differs"),
    "series_date": ({"SeriesDate": "20240102"}, "SeriesDate/AcquisitionDate differs"),
    "no_patient_id": ({"PatientID": None}, "PatientID missing"),  # "on 3 of 8 images"
}


def mixed_series(folder: Path, variant: str) -> list[Path]:
    paths = series(folder)
    changes, _ = VARIANTS[variant]
    for p in paths[LOW:]:
        ds = pydicom.dcmread(p)
        for k, v in changes.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)
        ds.save_as(p)
    return paths


def zipped(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder)}")
    return dest


def run(inp: Path, out: Path) -> None:
    res = CliRunner().invoke(app, ["run", str(inp), "--out", str(out), "-j", "1", "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_one_series_uid_over_two_identities_is_split_in_a_folder_and_a_zip(tmp_path, variant):
    """#35 item 8: slices of another frame of reference, date or without a PatientID were
    merged into the series' stack; each is its own stack, named in discovery.csv with why."""
    mixed_series(tmp_path / "in" / "s", variant)
    z = zipped(tmp_path / "in" / "s", tmp_path / "s.zip")
    _, words = VARIANTS[variant]
    for name, inp in (("folder", tmp_path / "in"), ("zip", z)):
        out = tmp_path / name
        run(inp, out)
        scans = rows(out / "scans.csv")
        assert sorted(int(r["n_slices"]) for r in scans) == [N - LOW, LOW], name
        assert all("series_split" in r["quality_flags"].split(";") for r in scans), name
        by_slices = {int(r["n_slices"]): r for r in scans}
        assert float(by_slices[LOW]["agatston"]) == pytest.approx(24.0)
        assert float(by_slices[N - LOW]["agatston"]) == 0.0
        cases = [r for r in rows(out / "discovery.csv") if r["status"] == "case"]
        assert len(cases) == 2 and all(words in r["reason"] for r in cases), (name, cases)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_score_series_refuses_a_mixed_series_by_name_and_scores_each_part(tmp_path, variant):
    mixed_series(tmp_path / "s", variant)
    with pytest.raises(UsageError, match="holds 2 series"):
        score_series(tmp_path / "s")
    headers, _ = index_tree(tmp_path / "s")
    stacks, notes = split_stacks(headers)
    assert sorted(len(s) for s in stacks) == [N - LOW, LOW] and notes == []


def test_a_manifest_row_on_a_mixed_series_is_refused_with_what_differs(tmp_path):
    mixed_series(tmp_path / "s", "frame_of_reference")
    (tmp_path / "m.csv").write_text("case_id,path\nc1,s\n")
    run_res = CliRunner().invoke(app, ["run", str(tmp_path / "m.csv"), "--out",
                                       str(tmp_path / "o"), "-j", "1", "-q"],
                                 catch_exceptions=False)
    assert run_res.exit_code == 1
    row = rows(tmp_path / "o" / "scans.csv")[0]
    assert row["status"] == "failed" and "2 CT stacks" in row["error"]
    assert "FrameOfReferenceUID differs" in row["error"]


def test_a_split_part_too_small_for_a_series_is_named_by_what_differs(tmp_path):
    paths = series(tmp_path / "s")
    for p in paths[-2:]:  # two slices of another frame of reference: an outlier, named
        ds = pydicom.dcmread(p)
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.1347.98"
        ds.save_as(p)
    headers, _ = index_tree(tmp_path / "s")
    stacks, notes = split_stacks(headers)
    assert [len(s) for s in stacks] == [N - 2]
    assert len(notes) == 2 and all("FrameOfReferenceUID differs" in r for _, r in notes)


# --- a slice cut inside its header (#35 item 9) ---------------------------------------------

def _cut_points(raw: bytes) -> dict[str, int]:
    """Where to cut a file: inside the file meta, inside the SOP Class UID's value (the data
    set's copy), and just before Pixel Data (the header whole, no pixels)."""
    sop = raw.index(b"1.2.840.10008.5.1.4.1.1.2\x00", 200)  # the data set's SOP Class UID
    return {"empty": 0, "preamble": 100, "dicm_marker": 130, "file_meta": 150,
            "sop_class_uid": sop + 10, "before_pixel_data": raw.index(b"\xe0\x7f\x10\x00")}


@pytest.mark.parametrize("where", ["file_meta", "sop_class_uid", "before_pixel_data"])
def test_a_header_cut_is_marked_truncated_by_both_parsers(tmp_path, where):
    paths = series(tmp_path / "s")
    raw = paths[-1].read_bytes()
    paths[-1].write_bytes(raw[:_cut_points(raw)[where]])
    for fast in (True, False):
        try:
            h = read_header(paths[-1], fast=fast)
        except Exception as err:  # noqa: BLE001 - pydicom refusing it whole is the other outcome
            assert type(err).__name__ == "NotDicomError", (fast, err)
            continue
        if fast:  # the fast parser knows the cut; pydicom alone does not see one
            assert h.truncated, where


@pytest.mark.parametrize("where", ["empty", "preamble", "dicm_marker", "file_meta",
                                   "sop_class_uid", "before_pixel_data"])
def test_slices_cut_inside_their_header_are_flagged_and_counted_in_a_folder_and_a_zip(
        tmp_path, where):
    """#35 item 9: a slice cut inside its SOP Class UID or its file meta was dropped as 'not a
    CT image' (no flag). It is an unreadable file of the series: flagged, counted, listed."""
    paths = series(tmp_path / "in" / "s")
    for p in paths[-2:]:  # the top two slices: the rest stays a regular stack of six
        raw = p.read_bytes()
        p.write_bytes(raw[:_cut_points(raw)[where]])
    z = zipped(tmp_path / "in" / "s", tmp_path / "s.zip")
    for name, inp in (("folder", tmp_path / "in"), ("zip", z)):
        out = tmp_path / name
        run(inp, out)
        scan = rows(out / "scans.csv")
        assert len(scan) == 1 and scan[0]["status"] == "ok"
        assert int(scan[0]["n_slices"]) == N - 2
        assert "unreadable_files_in_folder" in scan[0]["quality_flags"].split(";"), name
        disc = rows(out / "discovery.csv")
        case = next(r for r in disc if r["status"] == "case")
        assert "2 unreadable DICOM file(s) in its folder" in case["reason"]
        lost = [r for r in disc if r["status"] == "not_scored"]
        assert len(lost) == 2 and all(r["reason"].startswith("unreadable DICOM file")
                                      for r in lost), lost
        assert not any("not a CT image" in r["reason"] for r in disc)


def test_a_manifest_path_with_a_cut_slice_is_flagged_too(tmp_path):
    paths = series(tmp_path / "s")
    raw = paths[-1].read_bytes()
    paths[-1].write_bytes(raw[:_cut_points(raw)["sop_class_uid"]])
    (tmp_path / "m.csv").write_text("case_id,path\nc1,s\n")
    run(tmp_path / "m.csv", tmp_path / "o")
    row = rows(tmp_path / "o" / "scans.csv")[0]
    assert int(row["n_slices"]) == N - 1
    assert "unreadable_files_in_folder" in row["quality_flags"].split(";")


def test_a_file_cut_inside_its_meta_does_not_stop_the_index(tmp_path):
    """A file cut 141 bytes in (inside the meta's group length) raised pydicom's
    BytesLengthException out of the whole tree's index."""
    paths = series(tmp_path / "s")
    paths[-1].write_bytes(paths[-1].read_bytes()[:141])
    headers, skipped = index_tree(tmp_path / "s")
    assert len(headers) == N - 1 and [p for p, _ in skipped] == [str(paths[-1])]


def test_junk_beside_a_series_is_not_an_unreadable_slice(tmp_path):
    """A text file or a non-zero blob beside the slices is listed, not counted as a slice."""
    series(tmp_path / "in" / "s")
    (tmp_path / "in" / "s" / "README.txt").write_text("exported by the PACS\n")
    (tmp_path / "in" / "s" / "blob.bin").write_bytes(b"\x01" * 50)
    run(tmp_path / "in", tmp_path / "o")
    scan = rows(tmp_path / "o" / "scans.csv")[0]
    assert int(scan["n_slices"]) == N
    assert "unreadable_files_in_folder" not in scan["quality_flags"].split(";")
    reasons = {r["path"]: r["reason"] for r in rows(tmp_path / "o" / "discovery.csv")
               if r["status"] == "not_scored"}
    assert set(reasons) == {"s/README.txt", "s/blob.bin"}
    assert not any(r.startswith("unreadable DICOM") for r in reasons.values())


def test_a_whole_non_image_object_without_pixels_is_not_truncated(tmp_path):
    """The cut rule must not call every object without Pixel Data cut: a whole header of a
    non-image class (here a Raw Data object) that ends cleanly is whole."""
    paths = series(tmp_path / "s")
    ds = pydicom.dcmread(paths[0])
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66"
    ds.save_as(tmp_path / "raw.dcm")
    assert not read_header(tmp_path / "raw.dcm").truncated
    assert read_header(paths[1]).truncated is False


# --- case ids stay inside the input (#35 item 14) -------------------------------------------

def test_the_id_of_a_split_series_never_reaches_above_the_input(tmp_path):
    """Two stacks in one folder share every name: their ids grew up to the file-system root
    (a home folder's name in the tables). They stop at the input's own name."""
    top = tmp_path / "home" / "alice" / "data"
    mixed_series(top / "study" / "CT", "frame_of_reference")
    run(top, tmp_path / "o")
    ids = sorted(r["case_id"] for r in rows(tmp_path / "o" / "scans.csv"))
    assert ids == ["study_CT", "study_CT-2"]
    text = (tmp_path / "o" / "scans.csv").read_text() + (tmp_path / "o" / "discovery.csv"
                                                         ).read_text()
    assert "alice" not in text and "home" not in text


@pytest.mark.parametrize("cut_at", ["element_header", "sop_class_uid"])
def test_a_file_without_preamble_cut_before_its_sop_class_is_unreadable(tmp_path, cut_at):
    """The same rule for a data set written without the Part 10 preamble (pydicom reads it;
    it stops silently at the cut): a value shorter than its length, or no SOP Class UID at all,
    is an unreadable file of the folder, never 'not a CT image'."""
    paths = series(tmp_path / "in" / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(p, implicit_vr=True, little_endian=True, enforce_file_format=False)
    raw = paths[-1].read_bytes()
    sop = raw.index(b"1.2.840.10008.5.1.4.1.1.2\x00")
    paths[-1].write_bytes(raw[:sop - 4 if cut_at == "element_header" else sop + 12])
    run(tmp_path / "in", tmp_path / "o")
    scan = rows(tmp_path / "o" / "scans.csv")
    assert len(scan) == 1 and int(scan[0]["n_slices"]) == N - 1
    assert "unreadable_files_in_folder" in scan[0]["quality_flags"].split(";")
    lost = [r for r in rows(tmp_path / "o" / "discovery.csv") if r["status"] == "not_scored"]
    assert [r["reason"].split(" (")[0] for r in lost] == ["unreadable DICOM file"]


def test_a_cut_slice_inside_the_stack_fails_the_case_saying_why(tmp_path):
    """A cut slice in the middle leaves a gap: the case is refused (never scored without that
    slice's calcium), and its row says discovery found the unreadable file."""
    paths = series(tmp_path / "in" / "s")
    raw = paths[4].read_bytes()
    paths[4].write_bytes(raw[:_cut_points(raw)["sop_class_uid"]])
    res = CliRunner().invoke(app, ["run", str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                                   "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code == 1
    row = rows(tmp_path / "o" / "scans.csv")[0]
    assert (row["status"], row["error_code"], row["agatston"]) == (
        "failed", "GEOMETRY_MISSING_SLICE", "")
    assert "(discovery: 1 unreadable DICOM file(s) in its folder)" in row["error"]
