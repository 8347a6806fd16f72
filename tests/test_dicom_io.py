"""The DICOM reader on series written by the tests: order, HU, geometry, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from vascalc.errors import (
    DecodeError,
    DuplicateSliceError,
    MissingRescaleError,
    MissingSliceError,
    NotDicomError,
)
from vascalc.io.dicom import index_tree, load_series

from sample_data.dicom_writer import SeriesSpec, write_series


def phantom_hu(n=5, rows=16, cols=12, seed=0):
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 1500, size=(n, rows, cols)).astype(np.float64)
    hu[:, 0, 0] = np.arange(n) * 10  # a marker of the true slice order
    return hu


def load(folder):
    headers, _ = index_tree(folder)
    return load_series(headers)


@pytest.mark.parametrize("spec", [
    SeriesSpec(bits_stored=12, intercept=-1024.0, signed=False),
    SeriesSpec(bits_stored=16, intercept=0.0, signed=True),
    SeriesSpec(bits_stored=16, intercept=-1024.0, signed=False),
], ids=["u12", "s16", "u16"])
def test_round_trip_integral_hu(tmp_path, spec):
    hu = phantom_hu()
    write_series(tmp_path, hu, spec)  # file names shuffled
    vol = load(tmp_path)
    assert vol.hu.dtype == np.int16
    assert np.array_equal(vol.hu, hu)
    assert vol.spacing_mm == (3.0, 0.7, 0.7)
    assert not vol.hu.flags.writeable


def test_non_integer_rescale_gives_float_hu(tmp_path):
    hu = phantom_hu()
    hu[:, 3, 3] = 250.5
    write_series(tmp_path, hu, SeriesSpec(slope=0.5, intercept=-1024.0))
    vol = load(tmp_path)
    assert vol.hu.dtype == np.float64
    assert np.array_equal(vol.hu, hu)


def test_increment_from_positions_not_thickness_and_descending_positions(tmp_path):
    hu = phantom_hu()
    write_series(tmp_path, hu, SeriesSpec(increment_mm=-2.5, thickness_mm=5.0, z0_mm=50.0))
    vol = load(tmp_path)
    assert vol.spacing_mm[0] == pytest.approx(2.5)
    # sorted along the normal (+z): the last written slice comes first
    assert np.array_equal(vol.hu, hu[::-1])
    assert vol.origin_mm[2] == pytest.approx(50.0 - 4 * 2.5)
    assert vol.meta.slice_thickness_mm == 5.0


def _rewrite(path: Path, **changes):
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)


def test_high_bits_beyond_bits_stored_are_masked(tmp_path):
    hu = phantom_hu(n=3)
    paths = write_series(tmp_path, hu, SeriesSpec(bits_stored=12, intercept=-1024.0),
                         shuffle_names=False)
    ds = pydicom.dcmread(paths[1])
    raw = np.frombuffer(ds.PixelData, dtype=np.uint16) | np.uint16(0xF000)  # overlay garbage
    ds.PixelData = raw.tobytes()
    ds.save_as(paths[1])
    assert np.array_equal(load(tmp_path).hu, hu)


def test_signed_12_bit_values_are_sign_extended(tmp_path):
    hu = np.full((2, 4, 4), -5.0)
    hu[:, 0, 0] = -1000  # air
    hu[:, 1, 1] = 1000
    paths = write_series(tmp_path, hu, SeriesSpec(bits_stored=12, signed=True, intercept=0.0),
                         shuffle_names=False)
    for p in paths:  # store two's complement in 12 bits with the top 4 bits clear
        ds = pydicom.dcmread(p)
        raw = np.frombuffer(ds.PixelData, dtype=np.uint16) & np.uint16(0x0FFF)
        ds.PixelData = raw.tobytes()
        ds.save_as(p)
    assert np.array_equal(load(tmp_path).hu, hu)


@pytest.mark.parametrize("tag", ["RescaleSlope", "RescaleIntercept"])
def test_missing_rescale_is_refused_by_name(tmp_path, tag):
    paths = write_series(tmp_path, phantom_hu(n=3), SeriesSpec())
    _rewrite(paths[0], **{tag: None})
    with pytest.raises(MissingRescaleError) as exc:
        load(tmp_path)
    assert exc.value.code == "MISSING_RESCALE"
    assert tag in str(exc.value) and str(paths[0]) in str(exc.value)


def test_duplicate_slice_is_refused(tmp_path):
    paths = write_series(tmp_path, phantom_hu(n=4), SeriesSpec(), shuffle_names=False)
    _rewrite(paths[2], ImagePositionPatient=[0.0, 0.0, -100.0 + 3.0])
    with pytest.raises(DuplicateSliceError):
        load(tmp_path)


def test_missing_slice_is_refused(tmp_path):
    paths = write_series(tmp_path, phantom_hu(n=5), SeriesSpec(), shuffle_names=False)
    paths[2].unlink()
    with pytest.raises(MissingSliceError) as exc:
        load(tmp_path)
    assert exc.value.code == "GEOMETRY_MISSING_SLICE"


def test_truncated_pixel_data_names_the_file(tmp_path):
    paths = write_series(tmp_path, phantom_hu(n=3), SeriesSpec(), shuffle_names=False)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-50])
    with pytest.raises(DecodeError) as exc:
        load(tmp_path)
    assert str(paths[1]) in str(exc.value) and exc.value.code == "PIXEL_DECODE_FAILED"


def test_non_dicom_files_are_listed_not_read(tmp_path):
    write_series(tmp_path, phantom_hu(n=3), SeriesSpec())
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.dcm").write_bytes(b"")
    headers, skipped = index_tree(tmp_path)
    assert len(headers) == 3
    assert sorted(Path(p).name for p, _ in skipped) == ["empty.dcm", "notes.txt"]


def test_compressed_series_decodes_to_the_same_hu(tmp_path):
    from pydicom.uid import RLELossless

    hu = phantom_hu(n=3)
    plain = write_series(tmp_path / "plain", hu, SeriesSpec(), shuffle_names=False)
    (tmp_path / "rle").mkdir()
    for p in plain:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        ds.save_as(tmp_path / "rle" / p.name)
    vol = load(tmp_path / "rle")
    assert vol.meta.transfer_syntax == RLELossless
    assert np.array_equal(vol.hu, hu)


def test_fast_path_equals_pydicom_modality_lut(tmp_path):
    from pydicom.pixels import apply_modality_lut

    hu = phantom_hu(n=4)
    paths = write_series(tmp_path, hu, SeriesSpec(bits_stored=12, intercept=-1024.0),
                         shuffle_names=False)
    vol = load(tmp_path)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        assert np.array_equal(vol.hu[k], apply_modality_lut(ds.pixel_array, ds))


def test_metadata_is_kept(tmp_path):
    write_series(tmp_path, phantom_hu(n=3), SeriesSpec(
        patient_size_m=1.8, patient_weight_kg=75.5, patient_age="061Y", patient_sex="F",
        kvp=100, kernel="B35f", study_date="20240229"))
    m = load(tmp_path).meta
    assert (m.patient_size_m, m.patient_weight_kg, m.patient_age, m.patient_sex) == (
        1.8, 75.5, "061Y", "F")
    assert (m.kvp, m.kernel, m.study_date, m.n_files) == (100.0, "B35f", "2024-02-29", 3)


def _with_sequences(path: Path, *, implicit: bool, undefined: bool) -> None:
    """Add a nested sequence (holding decoy Rows/Columns) and re-encode the file."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    inner = Dataset()
    inner.Rows = 3
    inner.CodeMeaning = "decoy"
    inner.ContentSequence = Sequence([Dataset()])
    inner.ContentSequence[0].Columns = 5
    ds.ReferencedImageSequence = Sequence([inner, Dataset()])
    ds.add_new(0x00091010, "LO", "private")
    if undefined:
        ds.ReferencedImageSequence.is_undefined_length = True
        for item in ds.ReferencedImageSequence:
            item.is_undefined_length_sequence_item = True
        inner.ContentSequence.is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
def test_fast_header_parser_equals_pydicom(tmp_path, implicit, undefined):
    from vascalc.io.dicom_header import read_header

    hu = phantom_hu(n=3)
    paths = write_series(tmp_path, hu, SeriesSpec(patient_size_m=1.7, patient_weight_kg=70,
                                                  patient_age="050Y", patient_sex="M"),
                         shuffle_names=False)
    for p in paths:
        _with_sequences(p, implicit=implicit, undefined=undefined)
    for p in paths:
        fast, slow = read_header(p), read_header(p, fast=False)
        assert fast == slow
        assert fast.pixel_offset > 0 and (fast.rows, fast.cols) == (16, 12)
    assert np.array_equal(load(tmp_path).hu, hu)


def test_fast_header_parser_equals_pydicom_on_real_files():
    from vascalc.io.dicom_header import read_header

    from tests.conftest import shared_path

    root = shared_path()
    n = 0
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix in (".gz", ".md") or p.name == "LICENSE":
            continue
        try:
            slow = read_header(p, fast=False)
        except NotDicomError:  # both paths must refuse non-DICOM files the same way
            with pytest.raises(NotDicomError):
                read_header(p)
            continue
        assert read_header(p) == slow, p
        n += 1
    assert n > 100
