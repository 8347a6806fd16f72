"""#35 items 15-16: contrast found from the image when the header is silent (de-identified),
never claimed where there is none, and the header and the image disagreeing said aloud.

Phantoms: a body of soft tissue (40 HU, noise), fat, air, a spine of cortical bone around
heterogeneous marrow, and an aorta of 12 mm radius over 60 mm (27 cm3) whose lumen is
unenhanced (40 HU), late-phase (100 HU) or arterial (400 HU), with three wall plaques of
600 HU (weight 4) of 6 x 6 pixels on three slices each."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.core.blood_pool import find_blood_pool
from vascalc.core.contrast import agent_route
from vascalc.records import CTVolume, ScanMeta

from tests.conftest import shared_path

N, SIZE, PX, INC = 20, 170, 0.7, 3.0
CY, CX = 100, 70          # the aorta's centre
R_PX = 17                 # 12 mm
META = ScanMeta(manufacturer="SIEMENS", kernel="B35f", kvp=120.0, slice_thickness_mm=3.0)
#: plaques in the aortic wall, just outside the lumen: (slices, rows, cols)
PLAQUES = [(slice(2, 5), slice(CY - R_PX - 7, CY - R_PX - 1), slice(CX - 3, CX + 3)),
           (slice(8, 11), slice(CY + R_PX + 1, CY + R_PX + 7), slice(CX - 3, CX + 3)),
           (slice(14, 17), slice(CY - 3, CY + 3), slice(CX + R_PX + 1, CX + R_PX + 7))]
#: each plaque: 3 slices x 36 px x 0.49 mm2 x weight 4 x (3 mm / 3 mm)
PLAQUE_AGATSTON = 3 * 36 * PX * PX * 4.0


def body(lumen_hu: float, *, noise: float = 12.0, seed: int = 0, r_px: int = R_PX) -> np.ndarray:
    """The phantom's HU (int16)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:SIZE, :SIZE]
    hu = np.full((N, SIZE, SIZE), -1000.0)
    outer = ((rr - 85) / 80.0) ** 2 + ((cc - 85) / 82.0) ** 2 <= 1
    inner = ((rr - 85) / 72.0) ** 2 + ((cc - 85) / 74.0) ** 2 <= 1
    hu[:, outer] = -100.0
    hu[:, inner] = 40.0
    d_spine = np.hypot(rr - 130, cc - 95)
    marrow = rng.normal(220.0, 70.0, hu.shape)
    hu[:, d_spine <= 14] = marrow[:, d_spine <= 14]
    hu[:, (d_spine > 11) & (d_spine <= 14)] = 1000.0
    lumen = np.hypot(rr - CY, cc - CX) <= r_px
    hu[:, lumen] = lumen_hu
    hu[:, inner] += rng.normal(0.0, noise, (N, int(inner.sum())))
    for s, r, c in PLAQUES:
        hu[s, r, c] = 600.0
    return np.rint(hu).astype(np.int16)


def scan(lumen_hu: float, meta: ScanMeta = META, **kw) -> CTVolume:
    return CTVolume(hu=body(lumen_hu, **kw), spacing_mm=(INC, PX, PX), meta=meta)


def hugging_mask() -> np.ndarray:
    """An artery mask that hugs the plaques: each plaque grown by one pixel in plane."""
    m = np.zeros((N, SIZE, SIZE), dtype=bool)
    for s, r, c in PLAQUES:
        m[s, r.start - 1:r.stop + 1, c.start - 1:c.stop + 1] = True
    return m


def aorta_mask() -> np.ndarray:
    """A tight aorta mask as a segmenter draws it: the lumen, a one-pixel wall and the wall's
    plaques."""
    rr, cc = np.mgrid[:SIZE, :SIZE]
    m = np.zeros((N, SIZE, SIZE), dtype=bool)
    m[:, np.hypot(rr - CY, cc - CX) <= R_PX + 1] = True
    return m | hugging_mask()


BONE_EXCLUDED = Config(scoring={"scope": "bone_excluded"})


# --- 15: contrast found from the image ---------------------------------------------------

@pytest.mark.parametrize("lumen_hu, phase, r_px", [
    (400.0, "enhanced", R_PX), (100.0, "late", R_PX), (94.0, "late", R_PX),
    (100.0, "late", 10), (110.0, "late", 10), (400.0, "enhanced", 10)])
def test_an_arterial_or_late_phantom_without_header_or_masks_is_found(lumen_hu, phase, r_px):
    """Aortas of 12 mm (27 cm3) and 7 mm radius (9 cm3, the sample phantoms' size)."""
    v = scan(lumen_hu, noise=15.0, r_px=r_px)
    pool = find_blood_pool(v.hu, v.spacing_mm)
    assert pool.phase == phase and pool.median_hu == pytest.approx(lumen_hu, abs=5)
    r = analyse(v, BONE_EXCLUDED, case_id="c")
    assert "contrast_enhanced" in r.quality_flags and "contrast_from_image" in r.quality_flags
    # no number at 130 HU counts the lumen: the headline and the all-calcium total are withheld
    assert r.headline.withheld and r.whole.withheld and "contrast" in r.headline.withheld


def test_the_late_lumen_reaches_130_hu_so_the_finding_matters():
    """In the late phantom the lumen's own voxels reach 130 HU: a 130 HU score of it would
    count blood (the header-only code did), which is why it must be found."""
    v = scan(100.0, noise=15.0)
    rr, cc = np.mgrid[:SIZE, :SIZE]
    lumen = np.broadcast_to(np.hypot(rr - CY, cc - CX) <= R_PX, v.hu.shape)
    assert int(np.count_nonzero(v.hu[lumen] >= 130)) > 10


@pytest.mark.parametrize("lumen_hu", [400.0, 100.0])
def test_with_masks_the_image_still_finds_the_contrast(lumen_hu):
    aorta = aorta_mask()
    r = analyse(scan(lumen_hu, noise=15.0), Config(), case_id="c", regions=[("aorta", aorta)])
    assert "contrast_enhanced" in r.quality_flags
    aorta_row = next(x for x in r.regions if x.region == "aorta")
    assert aorta_row.withheld  # default rule: withhold, never the lumen at 130 HU


@pytest.mark.parametrize("lumen_hu", [40.0, 55.0])
def test_an_unenhanced_phantom_is_not_flagged_and_keeps_its_score(lumen_hu):
    v = scan(lumen_hu)
    assert not find_blood_pool(v.hu, v.spacing_mm).found
    r = analyse(v, Config(), case_id="c")
    assert "contrast_enhanced" not in r.quality_flags and not r.headline.withheld


@pytest.mark.shared_data
def test_the_siemens_contrast_ct_with_its_agent_blanked_is_withheld(tmp_path):
    """The shared Siemens body CT (venous, aorta 151 HU) with ContrastBolusAgent blanked as
    de-identification does (PS3.15): no bone_excluded number at 130 HU, contrast flagged."""
    import pydicom
    from vascalc.io.load import load_ct

    src = shared_path("totalsegmentator_example", "example_ct_dicom")
    dst = tmp_path / "deid"
    dst.mkdir()
    for f in sorted(p for p in src.iterdir() if p.is_file()):
        ds = pydicom.dcmread(f)
        assert "ContrastBolusAgent" in ds
        ds.ContrastBolusAgent = ""
        ds.save_as(dst / f.name)
    v = load_ct(dst, BONE_EXCLUDED)
    assert v.meta.contrast_agent == ""
    r = analyse(v, BONE_EXCLUDED, case_id="siemens")
    assert "contrast_enhanced" in r.quality_flags and "contrast_from_image" in r.quality_flags
    assert r.headline.withheld and r.whole.withheld
    pool = find_blood_pool(v.hu, v.spacing_mm)
    assert pool.phase == "enhanced" and 140 <= pool.median_hu <= 170  # the venous aorta


@pytest.mark.shared_data
@pytest.mark.parametrize("parts", [
    ("dcm_qa_ct", "In", "Philips", "S21570", "S2010"),
    ("dcm_qa_ct", "In", "Philips", "S21610", "S2010"),
    ("dcm_qa_ct", "In", "Philips", "S21610", "S3010"),
    ("totalsegmentator_example", "example_ct.nii.gz"),
    ("totalsegmentator_example", "example_ct_sm.nii.gz"),
])
def test_the_real_unenhanced_scans_are_not_flagged(parts):
    """The head phantom (its brain material reads 95 HU, its skull 150-780 HU) and the
    unenhanced body CT (aorta 42 HU, vertebrae and costal cartilage 100-250 HU)."""
    from vascalc.io.load import load_ct

    v = load_ct(shared_path(*parts), Config())
    assert not find_blood_pool(v.hu, v.spacing_mm).found
    r = analyse(v, BONE_EXCLUDED, case_id="real")
    assert "contrast_enhanced" not in r.quality_flags and not r.headline.withheld


def test_the_input_is_not_modified():
    v = scan(400.0)
    before = v.hu.copy()
    find_blood_pool(v.hu, v.spacing_mm)
    analyse(v, BONE_EXCLUDED, case_id="c")
    assert np.array_equal(v.hu, before)


# --- 16: no contrast claimed where there is none; disagreements said -----------------------

def test_a_mask_hugging_calcium_on_an_unenhanced_scan_is_not_contrast():
    v = scan(40.0)
    mask = hugging_mask()
    assert np.median(v.hu[mask]) > 100  # all of it would say 'contrast': most of it is plaque
    r = analyse(scan(40.0), Config(), case_id="c", regions=[("LAD", hugging_mask())])
    assert "contrast_enhanced" not in r.quality_flags
    assert r.scope == "coronary" and not r.headline.withheld
    assert r.headline.agatston == pytest.approx(3 * PLAQUE_AGATSTON)
    assert r.risk_category  # the coronary score is given, with its category


@pytest.mark.parametrize("agent", ["No contrast", "NONE GIVEN", "nil", "-", "N/A",
                                   "without contrast", "ORAL", "none", "Oral contrast only"])
def test_agent_words_for_no_intravascular_contrast_keep_the_coronary_score(agent):
    assert agent_route(agent) in ("none", "oral")
    meta = replace(META, contrast_agent=agent)
    r = analyse(scan(40.0, meta), Config(), case_id="c", regions=[("LAD", hugging_mask())])
    assert "contrast_enhanced" not in r.quality_flags and not r.headline.withheld
    assert r.headline.agatston == pytest.approx(3 * PLAQUE_AGATSTON) and r.risk_category


@pytest.mark.parametrize("agent", ["IOHEXOL", "Omnipaque 350", "APPLIED", "ORAL + IV"])
def test_an_intravascular_agent_is_still_contrast(agent):
    r = analyse(scan(40.0, replace(META, contrast_agent=agent)), Config(), case_id="c",
                regions=[("LAD", hugging_mask())])
    assert "contrast_enhanced" in r.quality_flags and r.headline.withheld


@pytest.mark.parametrize("description", ["CTA Angio Aorta", "Thorax ART 1.0"])
def test_an_arterial_description_on_a_venous_lumen_is_overruled_and_flagged(description):
    """Lumen 151 HU measured: venous. The header's 'Angio'/'ART' would pick the arterial 900 HU
    rule; the image's measurement decides (300 HU) and the flag says they disagree."""
    aorta = aorta_mask()
    meta = replace(META, series_description=description)
    config = Config(scoring={"contrast": "phase_threshold"})
    r = analyse(scan(151.0, meta), config, case_id="c", regions=[("aorta", aorta)])
    assert r.contrast_phase == "venous" and r.contrast_phase_source == "lumen_hu"
    assert "contrast_phase_disagrees" in r.quality_flags
    aorta_row = next(x for x in r.regions if x.region == "aorta")
    assert aorta_row.threshold_rule.startswith("phase_threshold:venous")
    assert aorta_row.agatston == pytest.approx(3 * PLAQUE_AGATSTON)  # the plaques, no lumen


def test_an_agreeing_header_is_not_flagged():
    aorta = aorta_mask()
    meta = replace(META, series_description="Abdomen venous", contrast_agent="IOHEXOL")
    r = analyse(scan(151.0, meta), Config(scoring={"contrast": "phase_threshold"}),
                case_id="c", regions=[("aorta", aorta)])
    assert r.contrast_phase == "venous" and "contrast_phase_disagrees" not in r.quality_flags
    assert "contrast_from_image" not in r.quality_flags  # the header said it


def test_a_field_of_view_too_small_for_a_blood_pool_lets_the_mask_decide():
    """A blood pool can only be missed where it could have been seen: in a few millimetres of
    scan the mask's lumen (180 HU) decides as measured, and a mask that hugs a plaque in a
    body-sized scan is judged by the image (the test above)."""
    hu = np.full((3, 16, 16), 20, dtype=np.int16)
    hu[:, 4:10, 4:10] = 180
    tiny = CTVolume(hu=hu, spacing_mm=(3.0, 0.5, 0.5))
    assert not find_blood_pool(tiny.hu, tiny.spacing_mm).judged
    assert find_blood_pool(scan(40.0).hu, (INC, PX, PX)).judged
    aorta = np.zeros(hu.shape, bool)
    aorta[:, 3:11, 3:11] = True
    r = analyse(tiny, Config(), case_id="t", regions=[("aorta", aorta)])
    assert "contrast_enhanced" in r.quality_flags
