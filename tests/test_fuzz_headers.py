"""Mutated headers of a valid series: every outcome is a score or a named VascalcError,
never an unhandled exception."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import config as dcm_config
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.errors import InternalError, VascalcError
from vascalc.io.dicom import index_tree, load_series

from sample_data.dicom_writer import SeriesSpec, write_series

ANY_NUMBER = st.one_of(st.sampled_from(["0", "-1", "1e9", "1e30", "1e-9", "0.9", "-1020.2",
                                        "abc", "", "nan", "inf", "1\\2"]),
                       st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.6g}"))
MUTATIONS = {
    "PixelSpacing": st.one_of(st.lists(ANY_NUMBER, min_size=0, max_size=3), st.none()),
    "ImageOrientationPatient": st.one_of(
        st.lists(ANY_NUMBER, min_size=0, max_size=7), st.none(),
        st.sampled_from([["1", "0", "0", "0", "0.9995", "0"], ["0.9995", "0", "0", "0", "1", "0"],
                         ["1", "0", "0", "0", "0.97", "0.2"]])),
    "ImagePositionPatient": st.one_of(st.lists(ANY_NUMBER, min_size=0, max_size=4), st.none()),
    "RescaleSlope": st.one_of(ANY_NUMBER, st.none()),
    "RescaleIntercept": st.one_of(ANY_NUMBER, st.none()),
    "Rows": st.one_of(st.integers(0, 40), st.sampled_from([65535]), st.none()),
    "Columns": st.one_of(st.integers(0, 40), st.sampled_from([65535]), st.none()),
    "BitsAllocated": st.sampled_from([0, 1, 8, 12, 16, 32, 64]),
    "BitsStored": st.sampled_from([0, 1, 8, 12, 16, 17, 40]),
    "PixelRepresentation": st.sampled_from([0, 1, 2]),
    "SamplesPerPixel": st.sampled_from([0, 1, 3]),
    "NumberOfFrames": st.one_of(st.sampled_from(["0", "1", "2", "x"]), st.none()),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME2", "MONOCHROME1", "RGB", ""]),
    "Modality": st.sampled_from(["CT", "MR", ""]),
    "PixelData": st.sampled_from([b"", b"\x00" * 10, None,
                                  b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\x00" * 520]),
    "PatientID": st.sampled_from(["A", "B", ""]),
    "SeriesInstanceUID": st.sampled_from(["1.2.3", "1.2.3.4"]),
    "PatientBirthDate": st.sampled_from(["19X01301", "20250231", ""]),
    "RescaleType": st.sampled_from(["HU", "US", ""]),
}


@pytest.fixture(scope="module")
def template():
    folder = Path(tempfile.mkdtemp(prefix="vascalc-fuzz-"))
    hu = np.full((4, 16, 16), 20.0)
    hu[:, 0, :] = -1000  # air, as in every CT field of view
    hu[1:3, 5:9, 5:9] = 400
    write_series(folder, hu, SeriesSpec(pixel_spacing_mm=(0.5, 0.5)), shuffle_names=False)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_headers_never_escape(template, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("m")
    for p in template.iterdir():
        shutil.copy(p, folder / p.name)
    files = sorted(folder.iterdir())
    n_mut = data.draw(st.integers(1, 3))
    saved = (dcm_config.settings.reading_validation_mode,
             dcm_config.settings.writing_validation_mode)
    dcm_config.settings.reading_validation_mode = dcm_config.IGNORE  # make invalid values
    dcm_config.settings.writing_validation_mode = dcm_config.IGNORE
    try:
        for _ in range(n_mut):
            key = data.draw(st.sampled_from(sorted(MUTATIONS)))
            value = data.draw(MUTATIONS[key])
            target = data.draw(st.sampled_from(["one", "all"]))
            for p in files[:1] if target == "one" else files:
                ds = pydicom.dcmread(p)
                if value is None:
                    if key in ds:
                        delattr(ds, key)
                else:
                    try:
                        setattr(ds, key, value)
                    except (ValueError, TypeError, OverflowError):
                        continue  # pydicom itself refuses to hold this value
                try:
                    ds.save_as(p)
                except (ValueError, TypeError, OverflowError, AttributeError):
                    continue  # pydicom refuses to write it: the file stays as it was
    finally:
        (dcm_config.settings.reading_validation_mode,
         dcm_config.settings.writing_validation_mode) = saved
    try:
        headers, _ = index_tree(folder)
        if headers:
            vol = load_series(headers)
            r = analyse(vol, Config(), case_id="f")
            assert np.isfinite(r.whole.agatston) and r.whole.agatston >= 0
    except VascalcError as err:
        assert not isinstance(err, InternalError)
        assert err.code and str(err)
