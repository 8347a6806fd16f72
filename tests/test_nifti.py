"""NIfTI CT: orientation through the affine, scores identical to the same volume from DICOM."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.analyse import analyse
from vascalc.cli.app import app
from vascalc.config.schema import Config
from vascalc.errors import ImplausibleHUError
from vascalc.io.dicom import index_tree, load_series
from vascalc.io.nifti import load_nifti

from sample_data.dicom_writer import SeriesSpec, write_series
from tests.conftest import shared_path


def volume():
    hu = np.full((8, 20, 24), -50.0)
    hu[:, :2, :] = -1000
    hu[2:5, 3:7, 10:14] = 380
    hu[6, 15:18, 2:4] = 250
    return hu


def as_nifti(hu, path: Path, *, flip_x: bool) -> Path:
    """The DICOM writer's geometry (rows +y, cols +x, slices +z from z0 = -10, in LPS, 0.5 x
    0.7 mm pixels, 2 mm apart) as a RAS affine over an (x, y, z) array; ``flip_x`` stores x
    reversed with the affine saying so."""
    data = hu.transpose(2, 1, 0)  # (col, row, slice) = (x, y, z)
    aff = np.array([[-0.7, 0, 0, 0.0], [0, -0.5, 0, 0.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
    if flip_x:
        data = data[::-1]
        aff[:, 3] = aff @ np.array([data.shape[0] - 1, 0, 0, 1])
        aff[0, 0] = 0.7
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data).astype(np.int16), aff), path)
    return path


@pytest.mark.parametrize("flip_x", [False, True])
def test_nifti_scores_equal_dicom_scores(tmp_path, flip_x):
    hu = volume()
    write_series(tmp_path / "dcm", hu, SeriesSpec(pixel_spacing_mm=(0.5, 0.7), increment_mm=2.0,
                                                  z0_mm=-10.0, signed=True, intercept=0.0))
    nii = as_nifti(hu, tmp_path / "ct.nii.gz", flip_x=flip_x)
    cfg = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.8})
    vd = load_series(index_tree(tmp_path / "dcm")[0])
    vn = load_nifti(nii)
    rd = analyse(vd, cfg, case_id="d")
    rn = analyse(vn, cfg, case_id="n")
    assert (rn.whole.agatston, rn.whole.volume_mm3, rn.whole.mass_mg, rn.whole.n_lesions) == \
        pytest.approx((rd.whole.agatston, rd.whole.volume_mm3, rd.whole.mass_mg,
                       rd.whole.n_lesions))
    assert rd.whole.agatston > 0
    cd = sorted((le.centroid_x_mm, le.centroid_y_mm, le.centroid_z_mm) for le in rd.lesions)
    cn = sorted((le.centroid_x_mm, le.centroid_y_mm, le.centroid_z_mm) for le in rn.lesions)
    assert np.allclose(cd, cn)


def test_a_mask_is_not_a_ct(tmp_path):
    p = tmp_path / "aorta.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), p)
    with pytest.raises(ImplausibleHUError, match="a mask"):  # as a DICOM of it would be
        load_nifti(p)


def test_tree_with_nifti_ct_and_masks(tmp_path):
    as_nifti(volume(), tmp_path / "ct.nii.gz", flip_x=False)
    (tmp_path / "seg").mkdir()
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "seg" / "x.nii.gz")
    res = CliRunner().invoke(app, ["run", str(tmp_path), "--out", str(tmp_path / "o"), "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "o" / "scans.csv").read_text().splitlines()))
    assert [r["case_id"] for r in rows] == ["ct"]
    assert "nifti_input" in rows[0]["quality_flags"]


def test_totalsegmentator_nifti_orientation():
    p = shared_path("totalsegmentator_example", "example_ct_sm.nii.gz")
    img = nib.load(p)
    vol = load_nifti(p)
    assert vol.shape == (30, 122, 101) and vol.spacing_mm == (3.0, 3.0, 3.0)
    # voxel (i, j, k) of the file is at affine @ (i, j, k) in RAS; ours gives LPS
    ijk = np.array([7, 50, 12])
    ras = img.affine @ np.r_[ijk, 1]
    lps = vol.index_to_patient(np.array([[ijk[2], ijk[0], ijk[1]]]))[0]
    assert np.allclose(lps, [-ras[0], -ras[1], ras[2]])
    assert vol.hu[ijk[2], ijk[0], ijk[1]] == np.asanyarray(img.dataobj)[tuple(ijk)]


def _scaled(tmp_path, stored, slope, inter, dtype=np.int16, name="s.nii") -> Path:
    """A NIfTI-1 file of ``stored`` values whose header's scl_slope and scl_inter (float32
    at bytes 112 and 116) are set as a converter writes them (nibabel resets them on save)."""
    import struct

    img = nib.Nifti1Image(np.asarray(stored, dtype=dtype), np.diag([-0.5, -0.5, 3.0, 1.0]))
    nib.save(img, tmp_path / name)
    raw = bytearray((tmp_path / name).read_bytes())
    raw[112:120] = struct.pack("<ff", slope, inter)
    (tmp_path / name).write_bytes(bytes(raw))
    return tmp_path / name


def _ct(value, shape=(10, 10, 4)):
    a = np.full(shape, -1000.0)
    a[2:6, 2:6, 1:3] = value
    return a


@pytest.mark.parametrize("slope,inter,stored,match", [
    (1e30, 0.0, _ct(1.0), "scl_slope 1e\\+30 is outside"),
    (-1.0, 0.0, _ct(-500.0), "scl_slope -1 is outside"),
    (1.0, 0.0, _ct(3e5), "outside -10000 to 35000 HU"),
])
def test_nifti_gets_dicoms_hu_plausibility(tmp_path, slope, inter, stored, match):
    """#22: a wild or negative scl_slope and values beyond a CT's range are refused with the
    DICOM reader's rule and code, never scored (mass 3.3e32 mg; air as calcium)."""
    dtype = np.float32 if np.abs(stored).max() > 32767 else np.int16
    with pytest.raises(ImplausibleHUError, match=match) as err:
        load_nifti(_scaled(tmp_path, stored, slope, inter, dtype=dtype))
    assert err.value.code == "HU_IMPLAUSIBLE"


def test_float64_beyond_float32_is_refused_by_name(tmp_path):
    a = _ct(200.0)
    a[0, 0, 0] = 1e38
    img = nib.Nifti1Image(a.astype(np.float64), np.diag([-0.5, -0.5, 3.0, 1.0]))
    nib.save(img, tmp_path / "f.nii.gz")
    with pytest.raises(ImplausibleHUError, match="outside -10000 to 35000 HU"):
        load_nifti(tmp_path / "f.nii.gz")


def test_a_decimal_nifti_rescale_gives_the_decimal_hu_dicom_gives(tmp_path):
    """dcm2niix writes DICOM's 0.7 / -1020.9 into float32 scl_slope / scl_inter: stored 1887
    is 300 HU exactly (weight 3), as the DICOM of the same scan scores it, not 299.99995."""
    stored = np.full((10, 10, 4), 0)  # 0 x 0.7 - 1020.9 = -1020.9 HU: air
    stored[2:6, 2:6, 1:3] = 1887  # 300 HU
    vol = load_nifti(_scaled(tmp_path, stored, 0.7, -1020.9))
    assert float(vol.hu.max()) == 300.0 and float(vol.hu.min()) == -1020.9
    r = analyse(vol, Config(), case_id="n")
    assert r.whole.agatston == pytest.approx(2 * 16 * 0.25 * 3)  # 2 slices x 4 mm2 x weight 3
    hu = np.where(np.transpose(stored, (2, 1, 0)) == 1887, 300.0, -1020.9)  # slice, row, col
    d = tmp_path / "dcm"
    write_series(d, hu[:, ::-1, ::-1].copy(), SeriesSpec(
        pixel_spacing_mm=(0.5, 0.5), increment_mm=3.0, slope=0.7, intercept=-1020.9,
        signed=True))
    same = analyse(load_series(index_tree(d)[0]), Config(), case_id="d")
    assert same.whole.agatston == r.whole.agatston


def test_a_single_slice_nifti_is_refused_as_a_single_slice_dicom_is(tmp_path):
    """#22: a 2-D export scored with pixdim[3]'s default 1 mm scaled Agatston by 1/3."""
    from vascalc.errors import GeometryError

    a = np.full((10, 10, 1), -1000, np.int16)
    a[2:6, 2:6, 0] = 400
    nib.save(nib.Nifti1Image(a, np.diag([-0.5, -0.5, 1.0, 1.0])), tmp_path / "one.nii.gz")
    with pytest.raises(GeometryError, match="single slice"):
        load_nifti(tmp_path / "one.nii.gz")
