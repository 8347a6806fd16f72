"""Legacy-converted and enhanced multi-frame CT read to the same volume and HU as the
single-frame series they were made from (highdicom makes them)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.io.dicom import index_tree, load_series

from sample_data.dicom_writer import SeriesSpec, write_series

hd = pytest.importorskip("highdicom")


def source(tmp_path, **spec):
    rng = np.random.default_rng(2)
    hu = rng.integers(-300, 100, size=(5, 12, 14)).astype(float)
    hu[1:4, 4:8, 4:9] = 333
    paths = write_series(tmp_path / "single", hu, SeriesSpec(pixel_spacing_mm=(0.6, 0.6),
                                                             **spec))
    return hu, paths


def convert(paths, out, *, sop_class=None):
    dss = [pydicom.dcmread(p) for p in paths]
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(dss, hd.UID(), 7, hd.UID(), 1)
    if sop_class:
        mf.SOPClassUID = sop_class
        mf.file_meta.MediaStorageSOPClassUID = sop_class
    out.mkdir()
    mf.save_as(out / "mf.dcm")
    return out / "mf.dcm"


@pytest.mark.parametrize("sop_class", [None, "1.2.840.10008.5.1.4.1.1.2.1"],
                         ids=["legacy-converted", "enhanced"])
def test_multiframe_equals_single_frame(tmp_path, sop_class):
    hu, paths = source(tmp_path)
    convert(paths, tmp_path / "mf", sop_class=sop_class)
    single = load_series(index_tree(tmp_path / "single")[0])
    multi = load_series(index_tree(tmp_path / "mf")[0])
    assert np.array_equal(multi.hu, single.hu) and np.array_equal(multi.hu, hu)
    assert multi.spacing_mm == pytest.approx(single.spacing_mm)
    assert multi.origin_mm == pytest.approx(single.origin_mm)
    assert "multi_frame" in multi.quality_flags
    cfg = Config()
    a = analyse(single, cfg, case_id="s").whole
    b = analyse(multi, cfg, case_id="m").whole
    assert (a.agatston, a.volume_mm3, a.n_lesions) == (b.agatston, b.volume_mm3, b.n_lesions)


def test_per_frame_rescale_overrides_the_shared_one(tmp_path):
    hu, paths = source(tmp_path, intercept=-1024.0)
    p = convert(paths, tmp_path / "mf")
    ds = pydicom.dcmread(p)
    frames = ds.pixel_array.astype(np.int32)
    # frame 0 re-encoded with its own intercept in its per-frame group
    frames[0] -= 24
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    pvt = Dataset()
    pvt.RescaleIntercept, pvt.RescaleSlope, pvt.RescaleType = "-1000", "1", "HU"
    ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence = Sequence([pvt])
    ds.PixelData = frames.astype(np.uint16).tobytes()
    ds.save_as(p)
    vol = load_series(index_tree(tmp_path / "mf")[0])
    assert np.array_equal(vol.hu, hu) and "rescale_varies" in vol.quality_flags
