"""Every scoring rule on phantoms whose answers are computed by hand in the test."""

from __future__ import annotations

import numpy as np
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.core.lesions import find_slice_lesions
from vascalc.core.score import cac_drs, density_weight, risk_category

from tests.conftest import volume

CFG = Config()


def score(hu, spacing=(3.0, 0.5, 0.5), cfg=CFG):
    return analyse(volume(hu, spacing), cfg, case_id="t")


def one_box(value, shape=(1, 8, 8), box=(slice(0, 1), slice(2, 4), slice(2, 4))):
    hu = np.zeros(shape)
    hu[box] = value
    return hu


@pytest.mark.parametrize("hu,weight", [
    (129, 0), (130, 1), (199, 1), (199.9, 1), (200, 2), (299, 2), (300, 3), (399, 3),
    (400, 4), (1500, 4)])
def test_density_band_edges(hu, weight):
    # 2x2 pixels of 0.5 mm = 1 mm^2, one 3 mm slice: Agatston = 1 mm^2 x weight x 3/3
    r = score(one_box(hu))
    assert r.whole.agatston == pytest.approx(1.0 * weight, rel=1e-12)
    assert density_weight(np.array([hu])) == weight


def test_weight_comes_from_the_slice_peak_not_the_lesion_mean():
    hu = one_box(150, shape=(1, 8, 8), box=(slice(0, 1), slice(2, 5), slice(2, 5)))
    hu[0, 3, 3] = 420  # one dense pixel: the whole 9-pixel lesion gets weight 4
    r = score(hu)
    assert r.whole.agatston == pytest.approx(9 * 0.25 * 4)


def test_peak_is_per_slice():
    # the same 3D lesion: slice 0 peak 250 (w2), slice 1 peak 450 (w4)
    hu = np.zeros((2, 8, 8))
    hu[0, 2:4, 2:4] = 250
    hu[1, 2:4, 2:4] = 150
    hu[1, 2, 2] = 450
    r = score(hu)
    assert r.whole.n_lesions == 1
    assert r.whole.agatston == pytest.approx(1.0 * 2 + 1.0 * 4)


@pytest.mark.parametrize("npix,kept", [(3, False), (4, True), (5, True)])
def test_one_mm2_edge(npix, kept):
    hu = np.zeros((1, 8, 8))
    hu[0, 1, 1:1 + npix] = 300  # npix x 0.25 mm^2
    r = score(hu)
    assert r.whole.agatston == pytest.approx(npix * 0.25 * 3 if kept else 0.0)
    assert r.whole.volume_mm3 == pytest.approx(npix * 0.25 * 3 if kept else 0.0)
    assert r.whole.n_lesions == (1 if kept else 0)


def test_area_edge_with_inexact_float_spacing():
    # 0.1 mm x 0.1 mm pixels: 100 pixels are 1 mm^2 even though 0.1*0.1*100 != 1.0 in floats
    hu = np.zeros((1, 20, 20))
    hu[0, 0:10, 0:10] = 300
    r = score(hu, spacing=(3.0, 0.1, 0.1))
    assert r.whole.n_lesions == 1


def test_diagonal_pixels_join_with_8_connectivity_only():
    hu = np.zeros((1, 8, 8))
    hu[0, 1:3, 1:3] = 300  # 2x2 = 1 mm^2
    hu[0, 3, 3] = 300  # touches (2,2) diagonally: one lesion of 5 pixels
    hu[0, 4, 4] = 300
    assert score(hu).whole.n_slice_lesions == 1
    assert score(hu).whole.agatston == pytest.approx(6 * 0.25 * 3)
    four = Config(scoring={"slice_connectivity": 4})
    r4 = score(hu, cfg=four)
    # with 4-connectivity the two single pixels are separate lesions under 1 mm^2
    assert r4.whole.n_slice_lesions == 1
    assert r4.whole.agatston == pytest.approx(4 * 0.25 * 3)


@pytest.mark.parametrize("increment", [0.5, 1.0, 1.5, 2.5, 3.0])
def test_increment_scaling(increment):
    hu = np.zeros((4, 8, 8))
    hu[:, 2:4, 2:4] = 250  # 1 mm^2 per slice, weight 2, 4 slices
    r = score(hu, spacing=(increment, 0.5, 0.5))
    assert r.whole.agatston == pytest.approx(4 * 1.0 * 2 * increment / 3.0, rel=1e-12)
    assert r.whole.volume_mm3 == pytest.approx(4 * 4 * 0.25 * increment, rel=1e-12)


def test_overlapping_reconstruction_counts_by_increment_not_thickness():
    # 3 mm slices every 1.5 mm: the same plaque appears on twice as many slices and the
    # scaling halves each; SliceThickness plays no part
    hu3 = np.zeros((3, 8, 8))
    hu3[1, 2:4, 2:4] = 300
    hu15 = np.zeros((6, 8, 8))
    hu15[2:4, 2:4, 2:4] = 300
    a3 = score(hu3, spacing=(3.0, 0.5, 0.5)).whole.agatston
    a15 = score(hu15, spacing=(1.5, 0.5, 0.5)).whole.agatston
    assert a3 == pytest.approx(3.0)
    assert a15 == pytest.approx(3.0)


def test_anisotropic_pixels():
    hu = np.zeros((1, 8, 8))
    hu[0, 2:4, 2:5] = 350  # 2 rows x 3 cols of 0.4 x 0.9 mm = 2.16 mm^2
    r = score(hu, spacing=(2.0, 0.4, 0.9))
    assert r.whole.agatston == pytest.approx(6 * 0.36 * 3 * 2.0 / 3.0)
    assert r.whole.volume_mm3 == pytest.approx(6 * 0.4 * 0.9 * 2.0)
    # 2 pixels of 0.36 mm^2 = 0.72 < 1: dropped
    hu2 = np.zeros((1, 8, 8))
    hu2[0, 2, 2:4] = 350
    assert score(hu2, spacing=(2.0, 0.4, 0.9)).whole.agatston == 0.0


def test_non_integer_hu_and_mass():
    hu = np.zeros((1, 8, 8))
    hu[0, 2:4, 2:4] = [[199.5, 130.5], [140.0, 160.25]]  # peak 199.5 -> weight 1
    cfg = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.75})
    r = score(hu, cfg=cfg)
    vv = 0.25 * 3.0
    assert r.whole.agatston == pytest.approx(1.0)
    assert r.whole.mass_mg == pytest.approx(0.75 * (199.5 + 130.5 + 140.0 + 160.25) * vv / 1000)


def test_volume_and_mass_count_only_kept_voxels():
    hu = np.zeros((1, 10, 10))
    hu[0, 1:3, 1:3] = 300  # kept, 4 px
    hu[0, 6, 6] = 900  # speck, dropped
    cfg = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 1.0})
    r = score(hu, cfg=cfg)
    assert r.whole.volume_mm3 == pytest.approx(4 * 0.75)
    assert r.whole.mass_mg == pytest.approx(4 * 300 * 0.75 / 1000)


def test_mass_is_empty_without_calibration():
    r = score(one_box(300))
    assert r.whole.mass_mg is None
    assert "mass_uncalibrated" in r.quality_flags
    assert all(le.mass_mg is None for le in r.lesions)


def test_26_connectivity_joins_diagonal_neighbours_across_slices():
    hu = np.zeros((2, 10, 10))
    hu[0, 1:3, 1:3] = 300
    hu[1, 3:5, 3:5] = 300  # touches (2,2) on the slice below only at a corner
    assert score(hu).whole.n_lesions == 1
    assert score(hu, cfg=Config(scoring={"lesion_connectivity": 18})).whole.n_lesions == 2
    hu[1, 3:5, 3:5] = 0
    hu[1, 3:5, 2:4] = 300  # now shares an edge with (2,2) across slices: 18-connected
    assert score(hu, cfg=Config(scoring={"lesion_connectivity": 18})).whole.n_lesions == 1
    six = Config(scoring={"slice_connectivity": 4, "lesion_connectivity": 6})
    assert score(hu, cfg=six).whole.n_lesions == 2


def test_dropped_slice_lesion_does_not_bridge_two_lesions():
    # two kept lesions on slices 0 and 2 joined only through a 1-pixel speck on slice 1
    hu = np.zeros((3, 8, 8))
    hu[0, 2:4, 2:4] = 300
    hu[1, 3, 3] = 300
    hu[2, 2:4, 2:4] = 300
    r = score(hu)
    assert r.whole.n_lesions == 2
    assert r.whole.n_slice_lesions == 2


def test_lesion_rows_sum_to_scan_totals_and_centroids():
    hu = np.zeros((3, 12, 12))
    hu[0:2, 1:3, 1:3] = 250
    hu[2, 8:11, 8:10] = 450
    cfg = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.8})
    r = analyse(volume(hu, (3.0, 0.5, 0.5), origin_mm=(10.0, 20.0, 30.0)), cfg, case_id="t")
    assert len(r.lesions) == 2
    assert sum(le.agatston for le in r.lesions) == pytest.approx(r.whole.agatston)
    assert sum(le.volume_mm3 for le in r.lesions) == pytest.approx(r.whole.volume_mm3)
    assert sum(le.mass_mg for le in r.lesions) == pytest.approx(r.whole.mass_mg)
    first = r.lesions[0]
    # default direction: slice axis -> x, rows -> y, cols -> z of the patient
    assert (first.centroid_x_mm, first.centroid_y_mm, first.centroid_z_mm) == pytest.approx(
        (10.0 + 0.5 * 3.0, 20.0 + 1.5 * 0.5, 30.0 + 1.5 * 0.5))
    assert (first.n_slices, first.peak_hu, first.mean_hu) == (2, 250.0, 250.0)


def test_empty_volume_scores_zero_not_nan():
    r = score(np.zeros((3, 8, 8)), cfg=Config(scoring={"fov_is_coronary": True}))
    assert (r.whole.agatston, r.whole.volume_mm3, r.whole.n_lesions) == (0.0, 0.0, 0)
    assert r.scope == "coronary" and r.risk_category == "0" and r.cac_drs == "A0"
    # the same volume not declared coronary: all calcium in the field of view, no risk
    r = score(np.zeros((3, 8, 8)))
    assert r.scope == "whole_volume" and r.risk_category == r.cac_drs == ""
    assert r.risk_basis.startswith("empty: scope whole_volume")


@pytest.mark.parametrize("ag,cat,drs", [
    (0, "0", "A0"), (0.01, "1 to 10", "A1"), (10, "1 to 10", "A1"), (10.5, "11 to 100", "A1"),
    (99.9, "11 to 100", "A1"), (100, "11 to 100", "A2"), (100.5, "101 to 400", "A2"),
    (299.9, "101 to 400", "A2"), (300, "101 to 400", "A3"), (400, "101 to 400", "A3"),
    (400.1, ">400", "A3")])
def test_risk_categories(ag, cat, drs):
    assert risk_category(ag) == cat
    assert cac_drs(ag) == drs


def test_risk_category_refuses_nan():
    with pytest.raises(ValueError):
        risk_category(float("nan"))


def test_against_independent_labelling_oracle():
    """scikit-image labels each slice independently; the kept-voxel volume and the 3-D
    component count must match ours on random volumes."""
    from scipy import ndimage
    from skimage.measure import label

    rng = np.random.default_rng(7)
    for _ in range(5):
        hu = rng.choice([0, 150, 250, 350, 450], size=(6, 20, 20),
                        p=[0.8, 0.05, 0.05, 0.05, 0.05]).astype(np.int16)
        kept = np.zeros(hu.shape, bool)
        agatston = 0.0
        for k in range(hu.shape[0]):
            lab = label(hu[k] >= 130, connectivity=2)
            for i in range(1, lab.max() + 1):
                px = lab == i
                if px.sum() * 0.25 >= 1.0:
                    kept[k] |= px
                    agatston += px.sum() * 0.25 * density_weight([hu[k][px].max()])[0]
        n3 = ndimage.label(kept, np.ones((3, 3, 3)))[1]
        sl = find_slice_lesions(hu, pixel_area_mm2=0.25, threshold_hu=130,
                                min_lesion_area_mm2=1.0)
        r = score(hu)
        assert r.whole.agatston == pytest.approx(agatston)
        assert r.whole.volume_mm3 == pytest.approx(kept.sum() * 0.75)
        assert sl.n_lesions == n3 == r.whole.n_lesions


def test_density_score_is_the_area_weighted_mean_weight():
    hu = np.zeros((2, 10, 10))
    hu[0, 1:3, 1:3] = 150  # 1 mm2 at weight 1
    hu[1, 5:9, 5:9] = 450  # 4 mm2 at weight 4
    r = score(hu, spacing=(1.5, 0.5, 0.5))
    assert r.density_score == pytest.approx((1 * 1 + 4 * 4) / 5)
    assert score(np.zeros((1, 4, 4))).density_score is None


def test_kvp_other_than_120_is_flagged():
    from vascalc.records import ScanMeta

    vol = volume(one_box(300))
    r120 = analyse(vol, CFG, case_id="a")
    r100 = analyse(volume(one_box(300), meta=ScanMeta(kvp=100.0)), CFG, case_id="b")
    assert "kvp_not_120" not in r120.quality_flags and "kvp_not_120" in r100.quality_flags


@pytest.mark.parametrize("preset,kept_px", [("literature", 4), ("ge", 4), ("terarecon", 4),
                                            ("siemens", 1), ("philips", 2), ("canon", 3)])
def test_presets_minimum_area(preset, kept_px):
    """0.5 mm pixels (0.25 mm2): 1 mm2 = 4 px, 0.5 mm2 = 2 px, Canon 3 px, Siemens any."""
    cfg = Config(scoring={"preset": preset})
    for npix in range(1, 6):
        hu = np.zeros((1, 8, 8))
        hu[0, 1, 1:1 + npix] = 300
        r = analyse(volume(hu, (3.0, 0.5, 0.5)), cfg, case_id="p")
        assert (r.whole.n_lesions == 1) == (npix >= kept_px), (preset, npix)
    assert r.settings["min_lesion_area_mm2"] == pytest.approx(kept_px * 0.25 if preset != "siemens"
                                                              else 0.0)


def test_philips_volume_and_mass_at_112_5_hu():
    hu = np.zeros((1, 8, 8))
    hu[0, 2:4, 2:4] = 300  # 4 px at 300 HU: scored
    hu[0, 2:4, 4:6] = 120  # 4 px at 120 HU: in the volume at 112.5, not in Agatston at 130
    cfg = Config(scoring={"preset": "philips", "mass_calibration_mg_per_cm3_per_hu": 1.0})
    r = analyse(volume(hu, (3.0, 0.5, 0.5)), cfg, case_id="p")
    assert r.whole.agatston == pytest.approx(4 * 0.25 * 3)
    assert r.whole.volume_mm3 == pytest.approx(8 * 0.75)
    assert r.whole.mass_mg == pytest.approx((4 * 300 + 4 * 120) * 0.75 / 1000)


def test_explicit_keys_override_the_preset():
    cfg = Config(scoring={"preset": "philips", "min_lesion_area_mm2": 2.0})
    assert cfg.scoring.min_lesion_area_mm2 == 2.0 and cfg.scoring.volume_threshold_hu == 112.5
