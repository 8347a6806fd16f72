"""Micro-CT scoring in slabs: the same numbers as one in-memory pass (an independent reference
with scipy over the whole volume), bounded memory, density threshold, mass and the rod flag."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from vascalc.core.microct import DensityCalibration, score_slabs
from vascalc.io.microct import open_microct

from sample_data.microct import phantom, write_tiff_stack

CAL = DensityCalibration(slope=0.5, intercept=-200.0, source="config",
                         valid_max_mg_ha_cm3=750.0)


def _random_volume(seed: int, shape=(23, 31, 29)) -> np.ndarray:
    """Blobs of random density, many touching across any slab boundary (diagonals too)."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.2)
    vol = (noise / noise.std() * 400 + 400).astype(np.int16)  # stored 0..~1600
    return np.clip(vol, 0, 2000)


def _reference(vol: np.ndarray, thr: float, spacing, cal: DensityCalibration):
    """One pass over the whole volume: 26-connected components, their sizes in raster order
    of the first voxel, the total voxels and mass (sum of density x voxel volume)."""
    mask = vol >= thr
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    vv = float(np.prod(spacing))
    dens = cal.slope * vol[mask].astype(np.float64) + cal.intercept
    return n, sizes.tolist(), int(mask.sum()), float(dens.sum()) * vv / 1000.0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("slab", [1, 2, 3, 5, 8, 23])
def test_slabs_give_the_in_memory_numbers(seed, slab):
    vol = _random_volume(seed)
    spacing = (0.01, 0.008, 0.008)
    thr = CAL.stored_at_least(100.0, vol.dtype)
    n, sizes, nvox, mass = _reference(vol, thr, spacing, CAL)
    assert n > 3  # the phantom has several lesions to join
    s = score_slabs(((z, vol[z:z + slab], None) for z in range(0, vol.shape[0], slab)),
                    spacing_mm=spacing, threshold_stored=thr, calibration=CAL)
    assert [le.n_voxels for le in s.lesions] == sizes
    assert s.n_voxels == nvox
    assert s.volume_mm3 == pytest.approx(nvox * np.prod(spacing), rel=1e-12)
    assert s.mass_mg == pytest.approx(mass, rel=1e-12)
    assert s.slabs == -(-vol.shape[0] // slab)


def test_a_lesion_touching_only_diagonally_across_the_boundary_is_one():
    vol = np.zeros((4, 5, 5), dtype=np.int16)
    vol[1, 1, 1] = vol[2, 2, 2] = 1000  # corner neighbours across slab 0-1 | 2-3
    s = score_slabs(((z, vol[z:z + 2], None) for z in (0, 2)), spacing_mm=(1, 1, 1),
                    threshold_stored=500, calibration=None)
    assert [le.n_voxels for le in s.lesions] == [2]
    assert s.mass_mg is None and s.lesions[0].mass_mg is None  # uncalibrated: never guessed


def test_threshold_is_exact_at_the_density():
    cal = DensityCalibration(slope=0.5, intercept=-200.0, source="config")
    t = cal.stored_at_least(100.0, np.dtype(np.int16))
    assert t == 600 and cal.density(t) == 100.0 and cal.density(t - 1) < 100.0
    odd = DensityCalibration(slope=0.3, intercept=-7.0, source="config")
    k = odd.stored_at_least(100.0, np.dtype(np.uint16))
    assert odd.density(k) >= 100.0 > odd.density(k - 1)


def test_voxels_denser_than_the_densest_rod_are_counted():
    vol = np.full((3, 4, 4), 600, dtype=np.int16)  # 100 mg HA/cm3
    vol[1, 1, 1] = 2000  # 800 > 750
    s = score_slabs([(0, vol, None)], spacing_mm=(1, 1, 1), threshold_stored=600,
                    calibration=CAL)
    assert s.beyond_calibration_voxels == 1


def test_regions_partition_the_calcified_voxels():
    vol = _random_volume(3)
    voi = np.zeros(vol.shape, dtype=np.uint8)
    voi[:, :15] = 1
    voi[5:9, 15:, :10] = 4
    thr = CAL.stored_at_least(100.0, vol.dtype)
    s = score_slabs(((z, vol[z:z + 4], voi[z:z + 4]) for z in range(0, vol.shape[0], 4)),
                    spacing_mm=(1, 1, 1), threshold_stored=thr, calibration=CAL,
                    region_names={1: "aorta"})
    mask = vol >= thr
    assert s.regions["aorta"][0] == int((mask & (voi == 1)).sum())
    assert s.regions["label_4"][0] == int((mask & (voi == 4)).sum())
    assert s.regions["outside"][0] == int((mask & (voi == 0)).sum())
    assert sum(v[0] for v in s.regions.values()) == s.n_voxels
    assert sum(v[2] for v in s.regions.values()) == pytest.approx(s.mass_mg, rel=1e-12)


def test_min_lesion_voxels_drops_specks_with_their_voxels():
    vol = np.zeros((3, 6, 6), dtype=np.int16)
    vol[1, 1, 1] = 1000
    vol[0:3, 4, 4] = 1000
    s = score_slabs([(0, vol, None)], spacing_mm=(1, 1, 1), threshold_stored=500,
                    calibration=None, min_lesion_voxels=2)
    assert [le.n_voxels for le in s.lesions] == [3] and s.n_voxels == 3


def test_streaming_a_stack_from_disk_holds_one_slab(tmp_path):
    """An 8 MB stack (the vessel phantom) read in slabs of 4 slices: the same numbers as in
    memory, and the peak of Python-allocated memory (numpy's buffers included) a small part of
    the stack. The state kept between slabs grows with the number of lesion pieces (about
    100 bytes each), not with the stack."""
    vol = phantom(shape=(64, 256, 256), plaques=12)[0].astype(np.uint16)
    write_tiff_stack(tmp_path / "big.tif", vol, 8.0)
    thr = CAL.stored_at_least(100.0, vol.dtype)
    n, sizes, nvox, mass = _reference(vol.astype(np.int64), thr, (0.008,) * 3, CAL)
    stack = open_microct(tmp_path / "big.tif")
    del vol
    # warm up: the lazy imports and first-call set-up are one-off, not held per slab
    score_slabs([(0, np.zeros((1, 4, 4), np.uint16), None)], spacing_mm=(1, 1, 1),
                threshold_stored=1, calibration=CAL)
    stack.read(0, 1)
    tracemalloc.start()
    try:
        s = score_slabs(((z, a, None) for z, a in stack.slabs(4)), spacing_mm=stack.spacing_mm,
                        threshold_stored=thr, calibration=CAL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [le.n_voxels for le in s.lesions] == sizes and s.n_voxels == nvox
    assert s.mass_mg == pytest.approx(mass, rel=1e-12)
    slab_voxels = 4 * 256 * 256
    # the budget model of microct.slab_for (16 bytes per slab voxel) plus 2 MiB of fixed cost,
    # and less than the stack itself (a whole-stack read would exceed it)
    assert peak < 2 * 2**20 + 16 * slab_voxels, f"peak {peak / 2**20:.1f} MiB"
    assert peak < stack.nbytes * 0.75, f"peak {peak / 2**20:.1f} MiB, stack {stack.nbytes} B"


def test_progress_is_reported_by_slices():
    vol = np.zeros((10, 4, 4), dtype=np.int16)
    seen: list[int] = []
    score_slabs(((z, vol[z:z + 3], None) for z in range(0, 10, 3)), spacing_mm=(1, 1, 1),
                threshold_stored=1, calibration=None, progress=seen.append)
    assert seen == [3, 6, 9, 10]


def test_slabs_out_of_order_are_refused():
    vol = np.zeros((4, 4, 4), dtype=np.int16)
    with pytest.raises(ValueError, match="expected 2"):
        score_slabs([(0, vol[:2], None), (3, vol[3:], None)], spacing_mm=(1, 1, 1),
                    threshold_stored=1, calibration=None)


@pytest.mark.parametrize("min_voxels", [1, 3])
def test_closing_lesions_between_slabs_keeps_the_numbers(monkeypatch, min_voxels):
    """Thousands of specks and some blobs: lesions that can grow no more are closed between
    slabs (held as compact records, specks below min_lesion_voxels dropped) and the numbers
    stay those of one in-memory pass, regions included."""
    from vascalc.core import slab_join

    calls = []
    real = slab_join.PieceTable.compact
    monkeypatch.setattr(slab_join.PieceTable, "compact",
                        lambda self, o: calls.append(self.n) or real(self, o))
    rng = np.random.default_rng(11)
    vol = np.where(rng.random((36, 96, 96)) < 0.03, 1500, 300).astype(np.int16)
    vol[np.clip(ndimage.gaussian_filter(rng.normal(size=vol.shape), 2) * 9, 0, 1) > 0.5] = 1200
    voi = np.zeros(vol.shape, dtype=np.uint8)
    voi[:, 40:] = 2
    thr = CAL.stored_at_least(100.0, vol.dtype)
    mask = vol >= thr
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    kept_ids = np.flatnonzero(sizes >= min_voxels) + 1
    kept = np.isin(labels, kept_ids)
    s = score_slabs(((z, vol[z:z + 3], voi[z:z + 3]) for z in range(0, vol.shape[0], 3)),
                    spacing_mm=(1, 1, 1), threshold_stored=thr, calibration=CAL,
                    min_lesion_voxels=min_voxels, region_names={2: "right"})
    assert len(calls) > 1  # closed between slabs, not only at the end
    assert [le.n_voxels for le in s.lesions] == sizes[sizes >= min_voxels].tolist()
    assert s.n_voxels == int(kept.sum())
    dens = CAL.density(vol[kept]).sum() / 1000.0
    assert s.mass_mg == pytest.approx(dens, rel=1e-12)
    assert s.regions["right"][0] == int((kept & (voi == 2)).sum())
    assert s.regions["outside"][0] == int((kept & (voi == 0)).sum())
    first = [int(np.flatnonzero(labels.ravel() == i)[0]) for i in kept_ids[:50]]
    zyx = np.array(np.unravel_index(first, vol.shape)).T
    assert [le.first_slice for le in s.lesions[:50]] == zyx[:, 0].tolist()


def test_any_slab_split_gives_the_components_of_the_whole():
    """Property: for random binary volumes and random slab boundaries, the streamed lesions
    are exactly scipy's 26-connected components of the whole volume (sizes in raster order
    of the first voxel), with VOI regions partitioning them."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 10**6), density=st.floats(0.05, 0.6),
           cuts=st.lists(st.integers(1, 11), min_size=0, max_size=5, unique=True),
           shape=st.tuples(st.integers(1, 12), st.integers(1, 9), st.integers(1, 9)),
           min_voxels=st.integers(1, 3))
    def check(seed, density, cuts, shape, min_voxels):
        rng = np.random.default_rng(seed)
        vol = (rng.random(shape) < density).astype(np.uint8) * 200
        voi = rng.integers(0, 3, shape).astype(np.uint8)
        bounds = sorted({0, *(c for c in cuts if c < shape[0]), shape[0]})
        slabs = [(a, vol[a:b], voi[a:b]) for a, b in zip(bounds, bounds[1:])]
        s = score_slabs(slabs, spacing_mm=(1, 1, 1), threshold_stored=100, calibration=None,
                        min_lesion_voxels=min_voxels)
        labels, n = ndimage.label(vol > 0, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        assert [le.n_voxels for le in s.lesions] == sizes[sizes >= min_voxels].tolist()
        kept = np.isin(labels, np.flatnonzero(sizes >= min_voxels) + 1)
        got = {k: v[0] for k, v in s.regions.items()}
        want = {("outside" if r == 0 else f"label_{r}"): int((kept & (voi == r)).sum())
                for r in range(3) if (kept & (voi == r)).any()}
        assert got == want

    check()
