"""Invariants checked with hypothesis over random volumes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from vascalc.analyse import analyse
from vascalc.config.schema import Config

from tests.conftest import volume

CFG = Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.8})
VALUES = st.sampled_from([-1000, 0, 100, 129, 130, 180, 200, 260, 300, 350, 400, 900])
VOLS = arrays(np.int16, st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
              elements=VALUES)
SPACING = st.tuples(st.sampled_from([0.5, 1.0, 1.5, 2.5, 3.0]),
                    st.sampled_from([0.4, 0.5, 0.7]), st.sampled_from([0.4, 0.5, 0.9]))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def totals(hu, spacing):
    w = analyse(volume(hu, spacing), CFG, case_id="p").whole
    return w.agatston, w.volume_mm3, w.mass_mg, w.n_lesions


@SETTINGS
@given(VOLS, SPACING)
def test_scores_are_finite_and_never_negative(hu, spacing):
    ag, vol, mass, n = totals(hu, spacing)
    assert np.isfinite([ag, vol, mass]).all()
    assert ag >= 0 and vol >= 0 and mass >= 0 and n >= 0


@SETTINGS
@given(VOLS, SPACING)
def test_flips_and_transposes_do_not_change_scores(hu, spacing):
    base = totals(hu, spacing)
    for flipped in (hu[:, ::-1, :], hu[:, :, ::-1], hu[::-1]):
        assert np.allclose(totals(np.ascontiguousarray(flipped), spacing), base)
    tr = np.ascontiguousarray(hu.transpose(0, 2, 1))
    assert np.allclose(totals(tr, (spacing[0], spacing[2], spacing[1])), base)


@SETTINGS
@given(VOLS, SPACING, st.data())
def test_adding_a_lesion_never_lowers_scores(hu, spacing, data):
    base = totals(hu, spacing)
    k = data.draw(st.integers(0, hu.shape[0] - 1))
    r = data.draw(st.integers(0, hu.shape[1] - 1))
    c = data.draw(st.integers(0, hu.shape[2] - 1))
    v = data.draw(st.sampled_from([130, 250, 350, 800]))
    more = hu.copy()
    more[k, r:r + 3, c:c + 3] = np.maximum(more[k, r:r + 3, c:c + 3], v)
    grown = totals(more, spacing)
    assert grown[0] >= base[0] - 1e-9 and grown[1] >= base[1] - 1e-9
    assert grown[2] >= base[2] - 1e-9


@SETTINGS
@given(VOLS, SPACING)
def test_lesion_rows_sum_to_scan_total(hu, spacing):
    r = analyse(volume(hu, spacing), CFG, case_id="p")
    assert np.isclose(sum(le.agatston for le in r.lesions), r.whole.agatston)
    assert np.isclose(sum(le.volume_mm3 for le in r.lesions), r.whole.volume_mm3)
    assert np.isclose(sum(le.mass_mg for le in r.lesions), r.whole.mass_mg)
    assert len(r.lesions) == r.whole.n_lesions


@SETTINGS
@given(VOLS, SPACING)
def test_inputs_are_never_modified(hu, spacing):
    writable = hu.copy()
    before = writable.copy()
    vol = volume(writable, spacing)
    analyse(vol, CFG, case_id="p")
    assert np.array_equal(vol.hu, before)
    assert vol.spacing_mm == spacing


@SETTINGS
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 14), st.integers(1, 14)),
              elements=st.sampled_from([-5.0, 129.5, 130.0, 199.5, 250.0, 310.0, 480.0])),
       st.sampled_from([4, 8]), st.sampled_from([6, 18, 26]),
       st.sampled_from([0.0, 0.5, 1.0, 2.0]),
       st.sampled_from(["float32", "float64", "int16", "int32", "uint16", "int8"]),
       st.sampled_from([130.0, 129.5, 200.25, 40000.0, -40000.0]))
def test_streaming_kernel_equals_scipy_reference(hu, conn, link, min_area, dtype, threshold):
    from vascalc.core.lesions import find_slice_lesions

    if dtype[0] in "iu":  # integer HU: floored and clipped into the type's range
        info = np.iinfo(dtype)
        hu = np.clip(np.floor(hu), info.min, info.max).astype(dtype)
    else:
        hu = hu.astype(dtype)
    kw = dict(pixel_area_mm2=0.25, threshold_hu=threshold, min_lesion_area_mm2=min_area,
              slice_connectivity=conn, lesion_connectivity=link)
    a = find_slice_lesions(hu, engine="c", **kw)
    b = find_slice_lesions(hu, engine="scipy", **kw)
    for name in ("slice_index", "area_px", "peak_hu", "sum_hu", "sum_row", "sum_col", "kept",
                 "lesion"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.n_lesions == b.n_lesions


@SETTINGS
@given(arrays(np.int16, st.tuples(st.integers(1, 5), st.integers(2, 12), st.integers(2, 12)),
              elements=st.sampled_from([-50, 129, 130, 250, 450])),
       st.sampled_from([4, 8]), st.sampled_from([6, 18, 26]), st.sampled_from([0.0, 1.0, 2.0]),
       st.booleans(), st.integers(0, 2 ** 16))
def test_lesions_are_the_3d_components_of_the_kept_voxels(hu, conn, link, min_area, regions,
                                                           seed):
    """For all six connectivity pairs, with and without a region mask: the lesions are exactly
    the components of scipy.ndimage.label (of the given 3-D connectivity) over the kept voxels
    (kept: in a slice lesion of the given in-plane connectivity reaching the area limit), with
    the same voxel counts; the per-region pieces add up to them; Agatston is unchanged by
    the 3-D connectivity (it is defined per slice lesion)."""
    from scipy import ndimage

    spacing = (3.0, 1.0, 1.0)
    kept = np.zeros(hu.shape, bool)
    for k in range(hu.shape[0]):
        lab, n = ndimage.label(hu[k] >= 130, ndimage.generate_binary_structure(2, conn // 4))
        good = np.bincount(lab.ravel(), minlength=n + 1) >= min_area * (1 - 1e-9)
        good[0] = False
        kept[k] = good[lab]
    lab3, n3 = ndimage.label(kept, ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[link]))
    want = sorted(np.bincount(lab3.ravel(), minlength=n3 + 1)[1:].tolist())
    cfg = Config(scoring={"slice_connectivity": conn, "lesion_connectivity": link,
                          "min_lesion_area_mm2": min_area, "scope": "whole_volume"})
    masks = None
    if regions:
        m = np.random.default_rng(seed).random(hu.shape) < 0.5
        masks = [("part_a", m), ("part_b", ~m)]  # not vascular: no lumen to read as contrast
    r = analyse(volume(hu, spacing), cfg, case_id="p", regions=masks)
    assert r.whole.n_lesions == n3
    if masks is None:
        assert sorted(le.n_voxels for le in r.lesions) == want
    else:
        per = {}
        for piece in r.lesions:
            per[piece.lesion_id] = per.get(piece.lesion_id, 0) + piece.n_voxels
        assert sorted(per.values()) == want
        assert sum(x.n_lesions for x in r.regions if x.region != "whole") >= n3
    base = analyse(volume(hu, spacing), Config(scoring={
        "slice_connectivity": conn, "min_lesion_area_mm2": min_area}), case_id="p").whole
    assert r.whole.agatston == base.agatston and r.whole.volume_mm3 == base.volume_mm3


def test_c_kernel_is_built_where_a_compiler_is():
    """The C kernel is the default engine; an installation with a compiler must have it (the
    scipy fallback gives the same numbers, only slower)."""
    import shutil

    import pytest
    from vascalc.core import lesions as segment

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: the scipy engine serves")
    assert segment.AUTO_ENGINE == "c" and segment._ckernel is not None
