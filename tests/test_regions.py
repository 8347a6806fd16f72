"""Regions: masks onto the CT grid through their affines, growth, overlap, exclusion, and
per-region scores split by voxel (hand-computed)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.errors import RegionError
from vascalc.io.masks import affine_ras, load_regions
from vascalc.records import CTVolume

from tests.conftest import shared_path

SPACING = (3.0, 0.5, 0.5)


def ct():
    """One 2x8-pixel lesion of 300 HU on slice 1, columns 4-11: its left half (cols 4-7) lies
    in region A, its right half in region B. Pixel 0.25 mm2, weight 3, increment 3 mm."""
    hu = np.full((3, 16, 16), 20, dtype=np.int16)
    hu[1, 6:8, 4:12] = 300
    hu[1, 12:14, 12:14] = 450  # a second lesion, in no region: 'outside'
    return CTVolume(hu=hu, spacing_mm=SPACING)


def boxes():
    a = np.zeros((3, 16, 16), bool)
    a[:, 5:9, 2:8] = True
    b = np.zeros((3, 16, 16), bool)
    b[:, 5:9, 8:14] = True
    return [("A", a), ("B", b)]


def regions_of(r):
    return {reg.region: reg for reg in r.regions}


def test_a_lesion_crossing_regions_is_split_by_voxel():
    r = analyse(ct(), Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 1.0}),
                case_id="t", regions=boxes())
    reg = regions_of(r)
    # 8 voxels in each of A and B: 8 x 0.25 mm2 x 3 = 6 Agatston; 8 x 0.75 mm3 = 6 mm3
    assert reg["A"].agatston == pytest.approx(6.0) and reg["B"].agatston == pytest.approx(6.0)
    assert reg["A"].volume_mm3 == pytest.approx(6.0)
    assert reg["A"].mass_mg == pytest.approx(8 * 300 * 0.75 / 1000)
    assert (reg["A"].n_lesions, reg["B"].n_lesions) == (1, 1)
    assert reg["outside"].agatston == pytest.approx(4 * 0.25 * 4)
    assert sum(x.agatston for x in r.regions) == pytest.approx(r.whole.agatston)
    pieces = {(le.lesion_id, le.region): le for le in r.lesions}
    assert set(pieces) == {(1, "A"), (1, "B"), (2, "outside")}
    assert pieces[(1, "A")].centroid_z_mm == pytest.approx(0.5 * 5.5)  # cols 4-7 -> 5.5
    # density score per region: the mean weight of its voxels (3 in A and B, 4 outside),
    # and over the scan (16 x 3 + 4 x 4) / 20
    assert (reg["A"].density_score, reg["B"].density_score) == (3.0, 3.0)
    assert reg["outside"].density_score == 4.0
    assert r.whole.density_score == r.density_score == pytest.approx(3.2)


def test_overlap_first_in_order_wins_and_exclusion_removes():
    a, b = boxes()
    b[1][:, :, 2:8] = True  # B now covers A's voxels too
    r = analyse(ct(), Config(regions={"order": ["B", "A"]}), case_id="t", regions=[a, b])
    assert regions_of(r)["B"].agatston == pytest.approx(12.0)
    assert regions_of(r)["A"].agatston == 0.0
    r2 = analyse(ct(), Config(), case_id="t", regions=[a, b])  # given order: A first
    assert regions_of(r2)["A"].agatston == pytest.approx(6.0)
    ex = np.zeros((3, 16, 16), bool)
    ex[:, 6:8, 10:12] = True  # 4 voxels of the lesion's B half
    r3 = analyse(ct(), Config(regions={"exclude": ["spine"]}), case_id="t",
                 regions=[*boxes(), ("spine", ex)])
    assert regions_of(r3)["B"].agatston == pytest.approx(3.0)
    assert "spine" not in regions_of(r3)


def test_margin_grows_a_lumen_mask_onto_its_wall():
    lumen = np.zeros((3, 16, 16), bool)
    lumen[:, 8:11, 4:12] = True  # just below the lesion rows 6-7
    r0 = analyse(ct(), Config(), case_id="t", regions=[("aorta", lumen)])
    assert regions_of(r0)["aorta"].agatston == 0.0
    r1 = analyse(ct(), Config(regions={"margin_mm": {"aorta": 1.0}}), case_id="t",
                 regions=[("aorta", lumen)])
    assert regions_of(r1)["aorta"].agatston == pytest.approx(12.0)  # both rows within 1 mm


def _save(mask, affine, path):
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), path)
    return path


def test_masks_on_other_grids_land_on_the_same_voxels(tmp_path):
    vol = ct()
    a = boxes()[0][1]
    aff = affine_ras(vol)
    # the same grid, axes stored as (col, row, slice)
    (tmp_path / "m1").mkdir()
    perm = np.eye(4)[[2, 1, 0, 3]]
    _save(a.transpose(2, 1, 0), aff @ perm.T, tmp_path / "m1" / "A.nii.gz")
    # flipped column axis with the affine saying so
    (tmp_path / "m2").mkdir()
    flip = np.diag([1.0, 1.0, -1.0, 1.0])
    flip[2, 3] = a.shape[2] - 1
    _save(a[:, :, ::-1], aff @ flip, tmp_path / "m2" / "A.nii.gz")
    # twice the in-plane spacing (half the matrix), nearest neighbour back onto the CT grid
    (tmp_path / "m3").mkdir()
    even = np.zeros_like(a)
    even[:, 4:8, 2:8] = True  # edges on even pixels, so 2x2 blocks hold it exactly
    coarse = even[:, ::2, ::2]
    scale = np.diag([1.0, 2.0, 2.0, 1.0])
    shift = np.eye(4)
    shift[1:3, 3] = 0.25  # centre of a 2x2 block
    _save(coarse, aff @ shift @ scale, tmp_path / "m3" / "A.nii.gz")
    for sub in ("m1", "m2"):
        (name, m), = load_regions(vol, str(tmp_path / sub))
        assert name == "A" and np.array_equal(m, a), sub
    (_, m3), = load_regions(vol, str(tmp_path / "m3"))
    assert np.array_equal(m3, even)


def test_partial_and_no_overlap(tmp_path):
    vol = ct()
    aff = affine_ras(vol)
    shifted = aff.copy()
    shifted[:3, 3] += aff[:3, :3] @ np.array([0, 0, 12])  # 12 columns to the side
    a = boxes()[0][1]
    (tmp_path / "p").mkdir()
    _save(a, shifted, tmp_path / "p" / "A.nii.gz")
    (_, m), = load_regions(vol, str(tmp_path / "p"))
    assert 0 < m.sum() < a.sum()
    far = aff.copy()
    far[:3, 3] += [0, 0, 500.0]
    (tmp_path / "n").mkdir()
    _save(a, far, tmp_path / "n" / "A.nii.gz")
    with pytest.raises(RegionError, match="does not overlap"):
        load_regions(vol, str(tmp_path / "n"))


def test_label_map_with_a_label_table(tmp_path):
    vol = ct()
    lab = np.zeros((3, 16, 16), np.uint8)
    for v, (_, m) in enumerate(boxes(), start=1):
        lab[m] = v
    p = _save(lab, affine_ras(vol), tmp_path / "labels.nii.gz")
    with pytest.raises(RegionError, match="label table"):
        load_regions(vol, str(p))
    (tmp_path / "labels.json").write_text(json.dumps({"1": "A", "2": "B"}))
    masks = load_regions(vol, str(p))
    assert [n for n, _ in masks] == ["A", "B"]
    assert all(np.array_equal(m, b) for (_, m), (_, b) in zip(masks, boxes()))


def test_totalsegmentator_masks_match_scoring_each_mask_by_hand():
    from skimage.measure import label
    from vascalc.core.score import density_weight
    from vascalc.io.nifti import load_nifti

    ct_path = shared_path("totalsegmentator_example", "example_ct_sm.nii.gz")
    seg = shared_path("totalsegmentator_example", "example_seg_fast")
    vol = load_nifti(ct_path)
    masks = load_regions(vol, str(seg))
    r = analyse(vol, Config(), case_id="ts", regions=masks)
    reg = regions_of(r)
    # by hand: the density weight of every kept voxel, then summed inside each mask
    hu = vol.hu
    weights = np.zeros(hu.shape)
    px = vol.spacing_mm[1] * vol.spacing_mm[2]
    for k in range(hu.shape[0]):
        lab = label(hu[k] >= 130, connectivity=2)
        for i in range(1, lab.max() + 1):
            sel = lab == i
            if sel.sum() * px >= 1.0:
                weights[k][sel] = density_weight([hu[k][sel].max()])[0]
    scale = vol.spacing_mm[0] / 3.0
    assigned = np.zeros(hu.shape, bool)
    for name, m in masks:  # no margins, no overlaps in these masks
        expected = (weights * m).sum() * px * scale
        assert reg[name].agatston == pytest.approx(expected), name
        assert reg[name].volume_mm3 == pytest.approx(((weights > 0) & m).sum()
                                                     * vol.voxel_volume_mm3)
        assigned |= m
    assert reg["outside"].agatston == pytest.approx((weights * ~assigned).sum() * px * scale)
    assert reg["aorta"].agatston > 0 and reg["vertebrae_L1"].agatston > reg["aorta"].agatston


def test_contrast_in_the_aorta_is_flagged_or_refused():
    from vascalc.errors import ContrastError

    hu = np.full((3, 16, 16), 20, dtype=np.int16)
    hu[:, 4:10, 4:10] = 180  # enhanced lumen
    aorta = np.zeros(hu.shape, bool)
    aorta[:, 3:11, 3:11] = True
    vol = CTVolume(hu=hu, spacing_mm=SPACING)
    r = analyse(vol, Config(), case_id="c", regions=[("aorta", aorta)])
    assert "contrast_enhanced" in r.quality_flags
    plain = CTVolume(hu=np.full((3, 16, 16), 40, dtype=np.int16), spacing_mm=SPACING)
    assert "contrast_enhanced" not in analyse(plain, Config(), case_id="p",
                                              regions=[("aorta", aorta)]).quality_flags
    with pytest.raises(ContrastError):
        analyse(vol, Config(scoring={"contrast": "refuse"}), case_id="c",
                regions=[("aorta", aorta)])


def test_the_siemens_contrast_example_is_flagged():
    from vascalc.io.dicom import index_tree, load_series

    folder = shared_path("totalsegmentator_example", "example_ct_dicom")
    vol = load_series(index_tree(folder)[0])
    r = analyse(vol, Config(), case_id="siemens")
    assert "contrast_enhanced" in r.quality_flags


def test_the_unenhanced_totalsegmentator_nifti_is_not_flagged():
    from vascalc.core.contrast import contrast_evidence, lumen_median_hu
    from vascalc.io.nifti import load_nifti

    # this NIfTI example's aortic lumen reads about 40 HU: blood without contrast
    vol = load_nifti(shared_path("totalsegmentator_example", "example_ct_sm.nii.gz"))
    masks = load_regions(vol, str(shared_path("totalsegmentator_example", "example_seg_fast")))
    aorta = dict(masks)["aorta"]
    assert 20 < float(np.median(vol.hu[aorta])) < 60
    assert contrast_evidence(vol, {"aorta": lumen_median_hu(vol, aorta)}) == ""
    # the whole scan through analyse: no contrast evidence, no contrast flag
    from vascalc.analyse import analyse
    from vascalc.config.schema import Config

    r = analyse(vol, Config(), case_id="t", regions=masks)
    assert "contrast_enhanced" not in r.quality_flags and r.contrast_rule == ""


def _aorta_ct():
    """Plaques of 300 HU, 2x2 px, inside an aorta box on slices 0, 1 and 2 (z 0, 3, 6 mm)."""
    hu = np.full((3, 16, 16), 20, dtype=np.int16)
    for k in range(3):
        hu[k, 6:8, 6:8] = 300
    aorta = np.zeros(hu.shape, bool)
    aorta[:, 4:10, 4:10] = True
    return CTVolume(hu=hu, spacing_mm=SPACING, direction=((0, 0, 1), (0, 1, 0), (1, 0, 0))), aorta


def test_aorta_split_at_a_plane_and_at_t12_l1():
    vol, aorta = _aorta_ct()  # slice axis along patient z: z = 0, 3, 6 mm
    per_slice = 4 * 0.25 * 3  # 1 mm2 x weight 3 x 3/3
    r = analyse(vol, Config(regions={"split_aorta": "plane", "split_aorta_z_mm": 2.0}),
                case_id="a", regions=[("aorta", aorta)])
    reg = regions_of(r)
    assert reg["aorta_thoracic"].agatston == pytest.approx(2 * per_slice)  # z 3 and 6
    assert reg["aorta_abdominal"].agatston == pytest.approx(per_slice)
    t12 = np.zeros_like(aorta)
    t12[2, 12:15, 12:15] = True  # z 6
    l1 = np.zeros_like(aorta)
    l1[0, 12:15, 12:15] = True  # z 0: the disc at z 3 -> slices 1 and 2 are thoracic
    cfg = Config(regions={"split_aorta": "vertebrae", "exclude": ["vertebrae_*"]})
    r2 = analyse(vol, cfg, case_id="b", regions=[("aorta", aorta), ("vertebrae_T12", t12),
                                                 ("vertebrae_L1", l1)])
    reg2 = regions_of(r2)
    assert reg2["aorta_thoracic"].agatston == pytest.approx(2 * per_slice)
    assert "vertebrae_T12" not in reg2


def test_cac_drs_vessel_count():
    hu = np.full((1, 16, 16), 20, dtype=np.int16)
    hu[0, 1:3, 1:3] = 300
    hu[0, 10:12, 10:12] = 300
    masks = {}
    for name, (r0, c0) in {"LAD": (0, 0), "RCA": (9, 9), "LCX": (0, 9), "LM": (9, 0)}.items():
        m = np.zeros(hu.shape, bool)
        m[0, r0:r0 + 5, c0:c0 + 5] = True
        masks[name] = m
    r = analyse(CTVolume(hu=hu, spacing_mm=SPACING), Config(), case_id="c",
                regions=list(masks.items()))
    assert r.cac_drs_vessels == "N2" and r.cac_drs == "A1"
    assert analyse(CTVolume(hu=hu, spacing_mm=SPACING), Config(), case_id="d").cac_drs_vessels == ""


def test_aortic_profile_on_the_totalsegmentator_example():
    from vascalc.config.load import load_config
    from vascalc.io.nifti import load_nifti

    vol = load_nifti(shared_path("totalsegmentator_example", "example_ct_sm.nii.gz"))
    masks = load_regions(vol, str(shared_path("totalsegmentator_example", "example_seg_fast")))
    cfg = load_config(__import__("pathlib").Path(__file__).parents[1] / "configs" / "aortic.yaml")
    r = analyse(vol, cfg, case_id="ts", regions=masks)
    reg = regions_of(r)
    assert {"aorta_thoracic", "aorta_abdominal"} <= set(reg)
    assert not any(n.startswith("vertebrae_") for n in reg)
    assert sum(x.agatston for x in r.regions) == pytest.approx(r.whole.agatston)


def test_a_dicom_seg_is_a_region_input(sample_data, tmp_path):
    """The calcium SEG vascalc writes, given back as regions: each density-weight segment
    becomes a region holding exactly that weight's calcium."""
    import csv

    from typer.testing import CliRunner
    from vascalc.cli.app import app

    runner = CliRunner()
    series = sample_data / "P03" / "dicom"
    res = runner.invoke(app, ["run", str(series), "--out", str(tmp_path / "a"), "--report",
                              "-j", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    seg = tmp_path / "a" / "cases" / "P03_dicom" / "calcium.seg.dcm"
    res = runner.invoke(app, ["run", str(series), "--out", str(tmp_path / "b"), "--regions",
                              str(seg), "-j", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = {r["region"]: r for r in csv.DictReader(
        (tmp_path / "b" / "regions.csv").read_text().splitlines())}
    assert float(rows["outside"]["agatston"]) == 0.0  # every kept voxel is in its segment
    total = sum(float(rows[k]["agatston"]) for k in rows if k.startswith("calcium"))
    (scan,) = csv.DictReader((tmp_path / "b" / "scans.csv").read_text().splitlines())
    assert "whole" not in rows and total == pytest.approx(float(scan["all_calcium_agatston"]))
    assert float(rows["calcium >= 400 HU peak"]["agatston"]) > 0


def test_bone_heuristic_leaves_the_vascular_truth(sample_data, sample_truth):
    """The phantom's spine (a 10 cm3 block of 700 HU) is bone; its plaques are not: with the
    heuristic, the scan scores equal the hand-computed vascular-only truth."""
    from vascalc.io.dicom import index_tree, load_series

    cfg = Config(scoring={"scope": "bone_excluded", "mass_calibration_mg_per_cm3_per_hu": 0.8})
    for case in ("P01_T1", "P02"):
        vol = load_series(index_tree(sample_data / case / "dicom")[0])
        before = vol.hu.copy()
        r = analyse(vol, cfg, case_id=case)
        truth = sample_truth[case]["vascular_only"]
        assert r.whole.agatston == pytest.approx(truth["agatston"], rel=1e-9)
        assert r.whole.volume_mm3 == pytest.approx(truth["volume_mm3"], rel=1e-9)
        assert r.whole.mass_mg == pytest.approx(truth["mass_mg"], rel=1e-9)
        assert r.whole.n_lesions == truth["n_lesions"]
        assert r.settings["scope"] == "bone_excluded"
        assert np.array_equal(vol.hu, before)


def test_region_masks_are_kept_as_their_bounding_box():
    """A small structure in a large scan costs its box, not the scan; growing and combining
    on boxes equals doing it on full arrays."""
    from vascalc.core.regions import RegionMask, combine, grow, grow_region

    rng = np.random.default_rng(0)
    shape = (30, 200, 200)
    full = np.zeros(shape, bool)
    full[10:14, 50:60, 120:126] = rng.random((4, 10, 6)) > 0.3
    r = RegionMask.from_array(full)
    assert r.crop.nbytes == 4 * 10 * 6 and np.array_equal(r.full(), full)
    assert r.sum() == full.sum() and np.array_equal(np.asarray(r), full)
    hu = rng.integers(-100, 500, shape)
    assert np.array_equal(r.values(hu), hu[full])
    spacing = (3.0, 0.7, 0.7)
    for margin in (0.0, 1.0, 2.5, 4.0):
        assert np.array_equal(grow_region(r, spacing, margin).full(), grow(full, spacing, margin))
    other = np.zeros(shape, bool)
    other[12:20, 55:90, 100:124] = True
    kw = dict(spacing_mm=spacing, order=["b"], margins_mm={"a": 2.0}, exclude=["x"])
    masks = [("a", full), ("b", other), ("x", np.roll(other, 5, axis=2))]
    labels, names = combine([(n, RegionMask.from_array(m)) for n, m in masks], **kw)
    # the rule on full arrays: b first (order), a grown by 2 mm, x removes its voxels
    expected = np.zeros(shape, np.uint16)
    expected[other] = 1
    expected[grow(full, spacing, 2.0) & (expected == 0)] = 2
    expected[masks[2][1]] = 0
    assert names == ["b", "a"] and np.array_equal(labels, expected)
    empty = RegionMask.from_array(np.zeros(shape, bool))
    assert not empty.any() and empty.values(hu).size == 0


def _map(tmp_path, labels, table, name="map"):
    import json

    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(labels), np.diag([-0.5, -0.5, 3.0, 1.0]))
    nib.save(img, tmp_path / f"{name}.nii.gz")
    (tmp_path / f"{name}.json").write_text(json.dumps(table))
    return tmp_path / f"{name}.nii.gz"


def test_label_tables_hardened(tmp_path):
    """#22: two labels of one name are one region; 'whole'/'outside' are refused by name;
    label values above 65535 survive resampling (65537 was read as 1)."""
    from vascalc.errors import RegionError
    from vascalc.io.masks import load_regions

    vol = CTVolume(hu=np.zeros((4, 8, 8), np.int16), spacing_mm=(3.0, 0.5, 0.5))
    lab = np.zeros((8, 8, 4), np.int32)  # x, y, z
    lab[0:2, :, :] = 3
    lab[6:8, :, :] = 7
    regs = dict(load_regions(vol, str(_map(tmp_path, lab, {"3": "iliac", "7": "iliac"}))))
    assert list(regs) == ["iliac"] and regs["iliac"].sum() == 2 * 2 * 8 * 4
    for reserved in ("whole", "outside"):
        with pytest.raises(RegionError, match="reserved"):
            load_regions(vol, str(_map(tmp_path, lab, {"3": reserved}, name=reserved)))
    big = np.zeros((8, 8, 4), np.int32)
    big[0:4] = 65537  # no voxel has label 1: wrapped, 65537 would read as 1 (aorta)
    off = tmp_path / "off"
    off.mkdir()
    import nibabel as nib

    # on another grid (shifted by half a voxel): resampled, the values kept as they are
    nib.save(nib.Nifti1Image(big, np.array([[-0.5, 0, 0, 0.01], [0, -0.5, 0, 0],
                                            [0, 0, 3.0, 0], [0, 0, 0, 1]])), off / "m.nii.gz")
    (off / "m.json").write_text('{"1": "aorta", "65537": "LAD"}')
    regs = dict(load_regions(vol, str(off / "m.nii.gz")))
    assert regs["LAD"].sum() > 0 and regs["aorta"].sum() == 0


def test_a_region_name_given_twice_or_reserved_is_refused_in_analyse():
    from vascalc.errors import RegionError

    vol = CTVolume(hu=np.zeros((2, 4, 4), np.int16), spacing_mm=(3.0, 0.5, 0.5))
    m = np.ones((2, 4, 4), bool)
    with pytest.raises(RegionError, match="two regions are named 'LAD'"):
        analyse(vol, Config(), case_id="x", regions=[("LAD", m), ("LAD", m)])
    with pytest.raises(RegionError, match="reserves"):
        analyse(vol, Config(), case_id="x", regions=[("outside", m)])


def test_a_huge_label_value_costs_no_memory_beyond_the_table():
    """#22: a label map whose largest value is 3e7 cost 1.7 GB (boxes up to the largest
    value); boxes now follow the table, and values beyond 65535 are boxed one by one."""
    from vascalc.io.masks import label_map_regions

    lab = np.zeros((4, 8, 8), np.int32)
    lab[0, 0:2, 0:2] = 30_000_000
    lab[2, 4:6, 4:6] = 1
    regs = dict(label_map_regions(lab, {1: "aorta"}))
    assert regs["aorta"].sum() == 4
    regs = dict(label_map_regions(lab, {1: "aorta", 30_000_000: "LAD"}))
    assert regs["LAD"].sum() == 4 and regs["aorta"].sum() == 4
