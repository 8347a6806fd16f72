"""Dual-energy pairs (issue #37): per-lesion hydroxyapatite mass from a three-material
decomposition, and the calcium-preserving non-contrast score, on generated phantoms and
simulated patients whose truth is known (sample_data.spectral, sample_data.spectral_patients).
Noise: 10 HU (80 kV) and 6 HU (Sn150) per 0.5 mm voxel, blur FWHM 0.8 mm."""

from __future__ import annotations

import numpy as np
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.core.spectral_decomposition import (
    METHOD,
    PairBeam,
    calcium_preserving_image,
    decompose_lesions,
    find_lesions,
)
from vascalc.records import CTVolume

from sample_data.spectral import Beam, render
from sample_data.spectral_patients import SPACING as PATIENT_SPACING
from sample_data.spectral_patients import simulate

SP = (0.5, 0.5, 0.5)
LOW, HIGH = PairBeam("kvp", 80.0), PairBeam("kvp", 150.0, 0.6)


def _pair(diameter, density, *, medium="blood", iodine=10.0, seed=0):
    ins = [((6.0, 12.0, 12.0), diameter, density)]
    kw = dict(shape=(24, 48, 48), spacing_mm=SP, medium=medium, iodine_mg_ml=iodine,
              fwhm_mm=0.8)
    lo = render(Beam("kvp", 80.0), ins, noise_hu=10.0, seed=seed, **kw)
    hi = render(Beam("kvp", 150.0, 0.6), ins, noise_hu=6.0, seed=seed + 100, **kw)
    return lo, hi


@pytest.mark.parametrize("diameter", [3.0, 5.0])
@pytest.mark.parametrize("density", [200.0, 400.0, 800.0])
@pytest.mark.parametrize("iodine", [5.0, 10.0, 15.0])
def test_ha_mass_within_10_percent_in_iodinated_blood(diameter, density, iodine):
    truth = density * np.pi * (diameter / 2) ** 2 * diameter / 1000.0  # mg (QRM: length = d)
    for seed in range(3):
        lo, hi = _pair(diameter, density, iodine=iodine, seed=seed)
        labels = find_lesions(0.5 * lo + 0.5 * hi, SP)  # found on the mixed image
        (les,) = decompose_lesions(lo, hi, labels, SP, low=LOW, high=HIGH)
        assert les.form == "three_material" and les.method == METHOD
        assert les.background_iodine_mg_ml == pytest.approx(iodine, abs=1.0)
        assert abs(les.ha_mass_mg / truth - 1.0) <= 0.10, (seed, les.ha_mass_mg, truth)


def test_in_water_the_two_material_form_is_solved():
    lo, hi = _pair(5.0, 400.0, medium="water", iodine=0.0)
    (les,) = decompose_lesions(lo, hi, find_lesions(0.5 * lo + 0.5 * hi, SP), SP,
                               low=LOW, high=HIGH)
    truth = 400.0 * np.pi * 2.5 ** 2 * 5.0 / 1000.0
    assert les.form == "two_material" and abs(les.ha_mass_mg / truth - 1.0) <= 0.10


def test_decomposition_is_pure_and_refuses_a_mismatched_pair():
    lo, hi = _pair(5.0, 400.0)
    labels = find_lesions(0.5 * lo + 0.5 * hi, SP)
    copies = (lo.copy(), hi.copy(), labels.copy())
    decompose_lesions(lo, hi, labels, SP, low=LOW, high=HIGH)
    calcium_preserving_image(lo, hi, labels, SP, low=LOW, high=HIGH)
    assert all(np.array_equal(a, b) for a, b in zip((lo, hi, labels), copies))
    with pytest.raises(ValueError, match="differ in shape"):
        decompose_lesions(lo, hi[:-1], labels, SP, low=LOW, high=HIGH)


def _category(hu: np.ndarray, cfg: Config) -> str:
    a = np.rint(hu).astype(np.int16)
    a[:, [0, -1], :] = a[:, :, [0, -1]] = -1000  # air around the field of view
    return analyse(CTVolume(hu=a, spacing_mm=PATIENT_SPACING), cfg, case_id="p").cac_drs


def test_calcium_preserving_score_gives_the_true_non_contrast_category():
    cfg = Config.model_validate({"scoring": {"fov_is_coronary": True, "scope": "coronary"}})
    patients = simulate(40, seed=1)
    agree = 0
    categories = set()
    for p in patients:
        true = _category(p.tnc, cfg)
        labels = find_lesions(0.5 * p.low + 0.5 * p.high, PATIENT_SPACING)
        img = calcium_preserving_image(p.low, p.high, labels, PATIENT_SPACING, low=LOW,
                                       high=HIGH)
        agree += _category(img, cfg) == true
        categories.add(true)
    assert categories >= {"A0", "A1", "A2", "A3"}  # the draw spans every category
    assert agree / len(patients) >= 0.95, agree


def test_a_pair_of_dicom_series_is_scored_end_to_end(tmp_path):
    """The pair written with Siemens headers (A_80kV, B_Sn150kV), read by io, scored by
    score_pair: each insert's mass, and a calcium-preserving row that names itself."""
    from vascalc.errors import InputError
    from vascalc.io.load import load_ct
    from vascalc.results.document import scan_row
    from vascalc.spectral_pair import score_pair

    from sample_data.spectral import write

    ins = [((6.0, 12.0, 12.0), 5.0, 400.0), ((6.0, 12.0, 22.0), 3.0, 800.0)]
    kw = dict(shape=(12, 48, 64), spacing_mm=(1.0, 0.5, 0.5), medium="blood",
              iodine_mg_ml=12.0, fwhm_mm=0.8)
    cfg = Config.model_validate({"scoring": {"fov_is_coronary": True, "scope": "coronary"}})
    vols = {}
    for conv, b, noise in (("siemens_low", Beam("kvp", 80.0), 10.0),
                           ("siemens_high", Beam("kvp", 150.0, 0.6), 6.0)):
        write(tmp_path / conv, render(b, ins, noise_hu=noise, seed=int(noise), **kw),
              convention=conv, beam=b, spacing_mm=kw["spacing_mm"])
        vols[conv] = load_ct(tmp_path / conv, cfg)
    low, high = vols["siemens_low"], vols["siemens_high"]
    assert (low.meta.series_kind, high.meta.series_kind) == ("low_kv", "high_kv")
    pr = score_pair(low, high, cfg, case_id="pair")
    masses = sorted(le.ha_mass_mg for le in pr.lesions)
    truths = sorted([400.0 * np.pi * 2.5 ** 2 * 5.0 / 1000, 800.0 * np.pi * 1.5 ** 2 * 3.0 / 1000])
    assert len(masses) == 2 and all(abs(m / t - 1) <= 0.10 for m, t in zip(masses, truths))
    row = scan_row(pr.result, settings={})
    assert row["series_kind"] == "calcium_preserving" and row["energy_label"] == "120 kV"
    assert "spectral_calcium_preserving" in row["quality_flags"] and row["agatston"] > 0
    assert not row["agatston_comparable"]
    with pytest.raises(InputError, match="not below"):
        score_pair(high, low, cfg, case_id="swapped")
