"""Every transfer syntax, with files the tests create, decodes to the same HU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.io.dicom import index_tree, load_series

from sample_data.dicom_writer import SeriesSpec, write_series


def base_hu(n=3):
    rng = np.random.default_rng(5)
    hu = rng.integers(-200, 120, size=(n, 32, 32)).astype(np.float64)
    hu[:, 10:16, 10:16] = 420
    hu[:, 20:23, 4:9] = 210
    return hu


def plain(folder: Path, **spec) -> list[Path]:
    return write_series(folder, base_hu(), SeriesSpec(pixel_spacing_mm=(0.5, 0.5), **spec),
                        shuffle_names=False)


def load(folder: Path):
    headers, skipped = index_tree(folder)
    assert not skipped
    return load_series(headers)


def assert_same_as_pydicom(vol, folder: Path, *, levels: int) -> None:
    """Our decode equals pydicom's (its own plugins) x rescale, within ``levels`` stored
    levels, slice by slice in position order."""
    from pydicom.pixels import apply_modality_lut

    files = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(
        p, stop_before_pixels=True).ImagePositionPatient[2]))
    for k, p in enumerate(files):
        ds = pydicom.dcmread(p)
        ref = apply_modality_lut(ds.pixel_array, ds).astype(float)
        step = float(ds.RescaleSlope)
        assert np.abs(vol.hu[k].astype(float) - ref).max() <= levels * step + 1e-6, p


def transcode_pydicom(src: list[Path], dst: Path, syntax, **kw) -> None:
    dst.mkdir()
    for p in src:
        ds = pydicom.dcmread(p)
        ds.compress(syntax, **kw)
        ds.save_as(dst / p.name)


def transcode_sitk(src: list[Path], dst: Path, compressor: str) -> None:
    import SimpleITK as sitk

    dst.mkdir()
    for p in src:
        r = sitk.ImageFileReader()
        r.SetFileName(str(p))
        img = r.Execute()
        w = sitk.ImageFileWriter()
        w.SetFileName(str(dst / p.name))
        w.SetUseCompression(True)
        w.SetCompressor(compressor)
        w.KeepOriginalImageUIDOn()
        w.Execute(img)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless],
                         ids=["rle", "jpeg-ls", "jpeg2000-lossless"])
def test_lossless_pydicom_encoded(tmp_path, syntax):
    src = plain(tmp_path / "plain")
    transcode_pydicom(src, tmp_path / "c", syntax)
    vol = load(tmp_path / "c")
    assert vol.meta.transfer_syntax == syntax
    assert np.array_equal(vol.hu, base_hu())
    assert "lossy_compression" not in vol.quality_flags


@pytest.mark.parametrize("compressor,syntax", [("JPEG", JPEGLosslessSV1),
                                               ("JPEG2000", JPEG2000Lossless)])
def test_lossless_simpleitk_encoded(tmp_path, compressor, syntax):
    src = plain(tmp_path / "plain", signed=True, intercept=0.0)
    transcode_sitk(src, tmp_path / "c", compressor)
    vol = load(tmp_path / "c")
    assert vol.meta.transfer_syntax == syntax
    assert np.array_equal(vol.hu, base_hu())


def test_deflated_and_big_endian(tmp_path):
    src = plain(tmp_path / "plain", signed=True, intercept=0.0)
    for name, kw in (("deflated", dict(syntax=DeflatedExplicitVRLittleEndian)),
                     ("big", dict(syntax=ExplicitVRBigEndian))):
        (tmp_path / name).mkdir()
        for p in src:
            ds = pydicom.dcmread(p)
            ds.file_meta.TransferSyntaxUID = kw["syntax"]
            if kw["syntax"] == ExplicitVRBigEndian:
                arr = np.frombuffer(ds.PixelData, dtype="<i2").astype(">i2")
                ds.PixelData = arr.tobytes()
                pydicom.dcmwrite(tmp_path / name / p.name, ds, little_endian=False,
                                 implicit_vr=False, force_encoding=True)
            else:
                ds.save_as(tmp_path / name / p.name, enforce_file_format=True)
        vol = load(tmp_path / name)
        assert vol.meta.transfer_syntax == kw["syntax"]
        assert np.array_equal(vol.hu, base_hu()), name


def test_jpeg2000_lossy_is_close_and_flagged(tmp_path):
    src = plain(tmp_path / "plain")
    transcode_pydicom(src, tmp_path / "c", JPEG2000, j2k_psnr=[60])
    vol = load(tmp_path / "c")
    assert "lossy_compression" in vol.quality_flags
    assert_same_as_pydicom(vol, tmp_path / "c", levels=1)


def test_jpeg_baseline_8_bit(tmp_path):
    """8-bit baseline JPEG (Pillow-encoded, encapsulated): HU = stored x 4 - 500."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate

    hu = base_hu()
    stored = np.clip(np.rint((hu + 500) / 4), 0, 255).astype(np.uint8)
    src = plain(tmp_path / "plain")
    (tmp_path / "c").mkdir()
    for k, p in enumerate(src):
        ds = pydicom.dcmread(p)
        buf = io.BytesIO()
        Image.fromarray(stored[k]).save(buf, format="JPEG", quality=95)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.RescaleSlope, ds.RescaleIntercept = "4", "-500"
        ds.LossyImageCompression = "01"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.save_as(tmp_path / "c" / p.name)
    vol = load(tmp_path / "c")
    assert "lossy_compression" in vol.quality_flags
    assert_same_as_pydicom(vol, tmp_path / "c", levels=1)  # decoders may round differently
    expected = stored.astype(float) * 4 - 500
    assert np.abs(vol.hu.astype(float) - expected).mean() < 4 * 2


def test_compressed_and_plain_score_identically(tmp_path):
    src = plain(tmp_path / "plain")
    transcode_pydicom(src, tmp_path / "c", RLELossless)
    cfg = Config()
    a = analyse(load(tmp_path / "plain"), cfg, case_id="a").whole
    b = analyse(load(tmp_path / "c"), cfg, case_id="b").whole
    assert (a.agatston, a.volume_mm3, a.n_lesions) == (b.agatston, b.volume_mm3, b.n_lesions)
    assert a.agatston > 0
