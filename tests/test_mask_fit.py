"""#22: a label map covering only part of the CT (another crop's map with the same affine, or
one shifted 60 mm) was accepted without a flag. TotalSegmentator's own map for the Siemens
CT fits; the same map cropped, shifted, or a folder of masks of another crop, are flagged."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.label_tables import LABEL_TABLES
from vascalc.config.schema import Config
from vascalc.io.dicom import index_tree, load_series
from vascalc.io.load import load_region_masks
from vascalc.io.mask_fit import MIN_COVERAGE, bone_share, fit_flags

from tests.conftest import shared_path


@pytest.fixture(scope="module")
def siemens():
    folder = shared_path("totalsegmentator_example", "example_ct_dicom")
    return folder, load_series(index_tree(folder)[0])


def _variant(tmp_path, name: str, *, shift_mm=(0.0, 0.0, 0.0), keep_slices=None):
    src = shared_path("totalsegmentator_example", "example_seg_dicom.nii.gz")
    img = nib.load(str(src))
    data, aff = np.asanyarray(img.dataobj), img.affine.copy()
    aff[:3, 3] += np.asarray(shift_mm)
    if keep_slices is not None:  # the map's third axis is the slice axis (TotalSegmentator)
        data = data[:, :, keep_slices]
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), aff), str(path))
    (tmp_path / f"{name}.json").write_text(json.dumps(
        {str(k): v for k, v in LABEL_TABLES["totalsegmentator_v2"].items()}))
    return path


def _fit(vol, path) -> tuple[tuple[str, ...], float]:
    """The fit flags of a map on the CT, and the least coverage the loader measured."""
    cfg = Config()
    coverage: list[float] = []
    masks, _ = load_region_masks(path, vol, cfg, coverage=coverage)
    return fit_flags(vol, masks, coverage, cfg.regions.bone), min(coverage, default=1.0)


def test_the_segmenters_own_map_fits_and_its_variants_do_not(siemens, tmp_path):
    _, vol = siemens
    own = _variant(tmp_path, "own")
    assert _fit(vol, own) == ((), 1.0)
    # another crop's map on the same affine: the first 10 of 20 slices
    crop = _variant(tmp_path, "crop", keep_slices=slice(0, 10))
    flags, cov = _fit(vol, crop)
    assert cov == 0.5 and flags == ("regions_partial_coverage",)
    # shifted 60 mm sideways: off the CT's edge, and its bones on soft tissue
    shifted = _variant(tmp_path, "shifted", shift_mm=(60.0, 0.0, 0.0))
    flags, cov = _fit(vol, shifted)
    assert set(flags) == {"regions_partial_coverage", "regions_misaligned"}
    assert cov < MIN_COVERAGE


def test_bone_share_separates_an_aligned_map_from_a_shifted_one(siemens, tmp_path):
    _, vol = siemens
    cfg = Config()
    shares = {}
    for mm in (0.0, 20.0):
        path = _variant(tmp_path, f"s{int(mm)}", shift_mm=(0.0, mm, 0.0))
        masks, _ = load_region_masks(path, vol, cfg)
        shares[mm] = bone_share(vol.hu, masks, cfg.regions.bone)
    assert shares[0.0][0] > 0.6 and shares[20.0][0] < 0.2 and shares[0.0][1] > 1000
    assert bone_share(vol.hu, [], cfg.regions.bone) is None


def test_a_run_flags_the_case_in_scans_csv(siemens, tmp_path):
    folder, _ = siemens
    crop = _variant(tmp_path, "crop", keep_slices=slice(0, 10))
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "path", "regions"])
        w.writerow(["S1", str(folder), str(crop)])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(manifest), "--out", str(out), "-q", "--no-report",
                                   "-j", "1"])
    assert res.exit_code == 0, res.output
    with (out / "scans.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    assert row["status"] == "ok" and "regions_partial_coverage" in row["quality_flags"].split(";")


def test_a_map_stored_rows_bottom_up_is_read_on_the_ct_grid_exactly(siemens):
    """TotalSegmentator's map of the Siemens CT stores its row axis the other way round (the
    affine says so): it is the CT's own grid, read by reordering and flipping, voxel for voxel
    what resampling through the affines gives, and without the resampling's cost."""
    import nibabel as nib
    from vascalc.io import masks

    _, vol = siemens
    path = str(shared_path("totalsegmentator_example", "example_seg_dicom.nii.gz"))
    img = nib.load(path)
    grid = masks._same_grid(vol, img)
    assert grid is not None and grid[1]  # the same grid, with a flipped axis
    data = np.asanyarray(img.dataobj)
    coverage: list[float] = []
    assert np.array_equal(masks.mask_on_ct_grid(vol, path, coverage),
                          masks._resampled(vol, img, data, path))
    assert coverage == []  # the CT's own grid: nothing resampled, covered whole
    region = masks.region_on_ct_grid(vol, path)
    assert np.array_equal(region.full(), masks._resampled(vol, img, data, path) > 0)
