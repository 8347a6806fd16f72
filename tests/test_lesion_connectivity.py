"""n_lesions equals an independent 3-D labelling of the kept voxels for every allowed pair of
slice and lesion connectivity (issue: slice 4 with 3-D 18/26 used to over-count)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from vascalc.config.load import config_from_dict
from vascalc.core.lesions import find_slice_lesions
from vascalc.errors import ConfigError

STRUCT_3D = {6: ndimage.generate_binary_structure(3, 1), 18: ndimage.generate_binary_structure(3, 2),
             26: ndimage.generate_binary_structure(3, 3)}
STRUCT_2D = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def _independent(hu, slice_conn, lesion_conn, min_px):
    kept = np.zeros(hu.shape, bool)
    for k in range(hu.shape[0]):
        lab, n = ndimage.label(hu[k] >= 130, STRUCT_2D[slice_conn])
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        good = sizes >= min_px
        good[0] = False
        kept[k] = good[lab]
    return ndimage.label(kept, STRUCT_3D[lesion_conn])[1]


@pytest.mark.parametrize("slice_conn,lesion_conn", [(4, 6), (4, 18), (4, 26), (8, 18), (8, 26)])
@pytest.mark.parametrize("engine", ["auto", "scipy"])
def test_n_lesions_equals_independent_labelling(slice_conn, lesion_conn, engine):
    rng = np.random.default_rng(slice_conn * 100 + lesion_conn)
    for _ in range(6):
        hu = np.where(rng.random((7, 24, 24)) < 0.18, 400, -50).astype(np.int16)
        got = find_slice_lesions(hu, pixel_area_mm2=1.0, threshold_hu=130, min_lesion_area_mm2=2.0,
                                 slice_connectivity=slice_conn, lesion_connectivity=lesion_conn,
                                 engine=engine)
        want = _independent(hu, slice_conn, lesion_conn, 2)
        assert want >= 3  # several lesions, so a wrong merge or split shows
        assert got.n_lesions == want
        # every kept slice lesion belongs to one lesion, every lesion has one
        assert set(got.lesion[got.kept].tolist()) == set(range(want))


def test_slice_8_with_lesion_6_is_refused_by_name():
    with pytest.raises(ConfigError, match="lesion_connectivity 18 or 26"):
        config_from_dict({"scoring": {"slice_connectivity": 8, "lesion_connectivity": 6}})
    with pytest.raises(ValueError, match="would split"):
        find_slice_lesions(np.zeros((2, 4, 4)), pixel_area_mm2=1.0, threshold_hu=130,
                           min_lesion_area_mm2=1.0, slice_connectivity=8, lesion_connectivity=6)
