"""Measurement uncertainty (#39): the rescan model, the integrated mass, their columns, and
the per-pair measurement tests of progression.csv."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from vascalc import Config, CTVolume
from vascalc.analyse import analyse
from vascalc.cohort.progression import pair_rows
from vascalc.core.integrated import integrated_mass_mg, integrated_sum_hu
from vascalc.core.rescan import category_probabilities, interval, noise_sd_hu, simulate
from vascalc.results.columns import PROGRESSION, SCANS
from vascalc.results.document import scan_row
from vascalc.results.uncertainty_columns import CAC_DRS_P, INTERVALS, RISK_P

from sample_data.lesions import Geometry, Lesion, render
from sample_data.rescan_harness import evaluate

SPACING = (3.0, 0.5, 0.5)


def _config(enabled=True, seed=0, n=20, **scoring):
    return Config(scoring={"mass_calibration_mg_per_cm3_per_hu": 0.8, **scoring},
                  uncertainty={"enabled": enabled, "n_rescans": n, "seed": seed})


def _lesion_scan(seed=1, lesion=None, noise=20.0):
    hu = render(lesion or Lesion(3.0, 300.0), Geometry(), np.random.default_rng(seed), noise_hu=noise)
    return CTVolume(hu=hu, spacing_mm=SPACING)


def test_off_by_default_changes_no_result_and_no_config_digest():
    assert Config().uncertainty.enabled is False
    vol = _lesion_scan()
    assert analyse(vol, Config(), case_id="a").uncertainty is None
    # the digest every row records is the one of a config without the section
    assert Config(uncertainty={"enabled": False, "n_rescans": 99}).sha256() == Config().sha256()
    assert Config(uncertainty={"enabled": True}).sha256() != Config().sha256()
    row = scan_row(analyse(vol, Config(), case_id="a"), settings={})
    assert all(row[n] is None for n in ("agatston_ci95_low", "integrated_mass_mg",
                                        "uncertainty_n_rescans", "p_risk_0"))


def test_one_seed_one_answer_and_the_seed_is_in_the_row():
    vol = _lesion_scan()
    a = analyse(vol, _config(seed=3), case_id="a").uncertainty
    b = analyse(vol, _config(seed=3), case_id="a").uncertainty
    c = analyse(vol, _config(seed=4), case_id="a").uncertainty
    assert a == b and a != c
    row = scan_row(analyse(vol, _config(seed=3), case_id="a"), settings={})
    assert row["uncertainty_seed"] == 3 and row["uncertainty_n_rescans"] == 20
    lo, hi = row["agatston_ci95_low"], row["agatston_ci95_high"]
    assert lo <= row["agatston"] <= hi and hi > lo


def test_the_scan_is_never_modified():
    vol = _lesion_scan()
    before = vol.hu.copy()
    simulate(vol.hu, lambda v: {"n": float((v > 130).sum())}, noise_hu=20.0, n_rescans=3, seed=0)
    integrated_sum_hu(vol.hu, spacing_mm=SPACING, threshold_hu=130.0)
    analyse(vol, _config(), case_id="a")
    assert np.array_equal(vol.hu, before)


def test_noise_is_measured_from_the_image():
    vol = _lesion_scan(noise=25.0)
    assert noise_sd_hu(vol.hu) == pytest.approx(25.0, rel=0.1)
    air = np.full((3, 40, 40), -1000.0)  # nothing in the window: no noise, said so
    assert noise_sd_hu(air) is None
    r = analyse(CTVolume(hu=air, spacing_mm=SPACING), _config(), case_id="air").uncertainty
    assert r.agatston is None and "noise" in r.reason


def test_interval_is_the_basic_bootstrap_around_the_observed_value():
    draws = np.arange(1.0, 102.0)  # quantiles 3.5, 51, 98.5 at 95 %
    lo, hi = interval(60.0, draws)
    assert (lo, hi) == pytest.approx((60.0 - (98.5 - 51.0), 60.0 + (51.0 - 3.5)))
    assert interval(1.0, draws)[0] == 0.0  # floored at 0: no negative calcium
    assert interval(1.0, np.array([1.0, np.nan])) is None


def test_category_probabilities_follow_the_category_bounds():
    a = np.array([0.0, 10.0, 10.5, 100.0, 400.0, 401.0, 99.0, 300.0])
    risk = category_probabilities(a, upper_bounds=(10.0, 100.0, 400.0))
    assert risk == (1 / 8, 1 / 8, 3 / 8, 2 / 8, 1 / 8)  # 10 is '1 to 10', 400 '101 to 400'
    drs = category_probabilities(a, upper_bounds=(100.0, 300.0), zero_category=False)
    assert drs == (1 / 8, 3 / 8, 1 / 8, 3 / 8)  # 100 is A2, 300 A3 (Hecht 2018)
    assert math.isclose(sum(risk), 1.0) and math.isclose(sum(drs), 1.0)


def test_category_probabilities_only_for_a_coronary_score():
    vol = _lesion_scan(lesion=Lesion(6.0, 500.0))
    whole = scan_row(analyse(vol, _config(), case_id="w"), settings={})
    assert whole["risk_category"] == "" and all(whole[c] is None for c in RISK_P + CAC_DRS_P)
    cor = scan_row(analyse(vol, _config(scope="coronary", fov_is_coronary=True), case_id="c"),
                   settings={})
    assert cor["risk_category"] and math.isclose(sum(cor[c] for c in RISK_P), 1.0)
    assert math.isclose(sum(cor[c] for c in CAC_DRS_P), 1.0)


def test_integrated_mass_counts_the_partial_volume_a_threshold_drops():
    # noise-free: the integrated mass is the lesion's mass; thresholded mass misses its rim
    lesion = Lesion(3.0, 300.0)
    vol = _lesion_scan(lesion=lesion, noise=0.0)
    isum = integrated_sum_hu(vol.hu, spacing_mm=SPACING, threshold_hu=130.0)
    truth = lesion.mass_mg(0.8)
    assert integrated_mass_mg(isum, vol.voxel_volume_mm3, 0.8) == pytest.approx(truth, rel=0.03)
    r = analyse(vol, _config(), case_id="a")
    background_mass = 0.8 * 40.0 * r.whole.volume_mm3 / 1000.0  # mass counts HU above water
    assert r.whole.mass_mg - background_mass < 0.9 * truth
    assert integrated_mass_mg(isum, 1.0, None) is None  # uncalibrated: no mass


def test_threshold_free_interscan_difference_is_at_most_half_agatstons():
    """Small, low-density lesion at 3 mm: the harness's interscan differences."""
    rows = {r.measure: r for r in evaluate(Lesion(2.5, 200.0), Geometry(), n_scans=30,
                                           n_truth=10, n_rescans=20, seed=11)}
    assert rows["agatston"].interscan_pct > 50.0  # Agatston doubles or worse here
    assert rows["integrated_mass_mg"].interscan_pct <= 0.5 * rows["agatston"].interscan_pct
    assert rows["integrated_mass_mg"].coverage >= 0.85


def test_new_columns_are_registered_with_units_and_meanings():
    scans = {c.name: c for c in SCANS}
    for lo, hi in INTERVALS.values():
        assert scans[lo].meaning and scans[hi].meaning and scans[lo].type == "number"
    assert scans["volume_ci95_low_mm3"].unit == "mm3" and scans["mass_ci95_high_mg"].unit == "mg"
    prog = {c.name for c in PROGRESSION}
    assert {"agatston_probability_increase", "mesa_repeatability_limit_agatston",
            "progression_hokanson", "progression_raggi"} <= prog


def _scan(case, date, agatston, volume, ci, height="170", weight="72.25"):
    return {"case_id": case, "patient_id": "P", "study_date": date, "status": "ok",
            "agatston": str(agatston), "volume_mm3": str(volume), "mass_mg": "",
            "height_cm": height, "weight_kg": weight,
            "agatston_ci95_low": str(ci[0]), "agatston_ci95_high": str(ci[1])}


def test_progression_carries_probability_mesa_hokanson_and_raggi_side_by_side():
    rows, _ = pair_rows([_scan("a", "2020-01-01", 100.0, 80.0, (80.0, 120.0)),
                         _scan("b", "2022-01-01", 190.0, 150.0, (160.0, 220.0))])
    (p,) = rows
    s = math.hypot(40.0, 60.0) / (2 * 1.959963984540054)
    assert p["agatston_probability_increase"] == pytest.approx(norm.cdf(90.0 / s))
    assert p["agatston_change_beyond_measurement"] is True  # 90 > 1.96 s = 36.1
    bmi = 72.25 / 1.7 ** 2  # 25
    assert p["bmi_kg_m2"] == pytest.approx(bmi)
    limit = 0.17 * 100 + 4.89 * 10 + 0.44 * bmi - 10.84  # Chung 2008, from the baseline score
    assert p["mesa_repeatability_limit_agatston"] == pytest.approx(limit)
    assert p["mesa_agatston_change"] == "increase"
    assert p["progression_hokanson"] is True and p["progression_raggi"] is True
    assert p["volume_mm3_probability_increase"] is None  # no volume interval: empty


def test_mesa_limit_is_empty_without_baseline_calcium_or_bmi():
    rows, _ = pair_rows([_scan("a", "2020-01-01", 0.0, 0.0, (0.0, 0.0)),
                         _scan("b", "2022-01-01", 5.0, 4.0, (1.0, 9.0), height="")])
    (p,) = rows
    assert p["mesa_repeatability_limit_agatston"] is None and p["mesa_agatston_change"] is None
    assert p["bmi_kg_m2"] is not None  # the earlier scan's BMI; the limit needs calcium


def test_patient_report_shows_each_interval_and_which_changes_are_beyond_measurement():
    from vascalc.outputs.patient_report import patient_html

    rows = [_scan("a", "2020-01-01", 100.0, 80.0, (80.0, 120.0)),
            _scan("b", "2022-01-01", 190.0, 150.0, (160.0, 220.0))]
    html = patient_html("P", rows)
    assert "100.0 (95 % 80.0 to 120.0)" in html and "190.0 (95 % 160.0 to 220.0)" in html
    assert "score: yes (P(rise) 1.00)" in html and "MESA limit 66.1: increase" in html
    plain = patient_html("P", [{k: v for k, v in r.items() if "ci95" not in k} for r in rows])
    assert " (95 % 8" not in plain and "P(rise)" not in plain  # no intervals: no such claim
    assert "MESA limit 66.1: increase" in plain  # the MESA limit needs only scores and BMI


def test_progression_takes_the_typed_tables_read_tables_gives(tmp_path):
    """Neighbour found by notebook 02: a typed scans table (dates as Timestamps, NaT when
    missing) crashed progression_frame with AttributeError ('Timestamp' has no strip)."""
    import pandas as pd
    from vascalc.cohort.progression import progression_frame

    rows = [_scan("a", "2020-01-01", 100.0, 80.0, (80.0, 120.0)),
            _scan("b", "2022-01-01", 190.0, 150.0, (160.0, 220.0)),
            _scan("c", "", 5.0, 4.0, (1.0, 9.0))]
    typed = pd.DataFrame(rows).assign(study_date=lambda f: pd.to_datetime(f["study_date"]))
    assert typed["study_date"].isna().sum() == 1  # 'c' has NaT
    pairs, notes = progression_frame(typed)
    assert list(pairs["case_id_2"]) == ["b"] and pairs["interval_days"][0] == 731
    assert notes.to_dict("records") == [{"case_id": "c", "reason": "no study_date or scan_date"}]


def test_a_box_too_large_or_no_memory_leaves_the_scores_and_says_why(monkeypatch):
    import vascalc.measure.uncertainty as mu

    vol = _lesion_scan()
    plain = analyse(vol, _config(enabled=False), case_id="a")
    monkeypatch.setattr(mu, "MAX_BOX_VOXELS", 10)
    r = analyse(vol, _config(), case_id="a")
    assert r.whole == plain.whole and r.uncertainty.agatston is None
    assert "box of" in r.uncertainty.reason and "narrower scope" in r.uncertainty.reason
    monkeypatch.setattr(mu, "MAX_BOX_VOXELS", 10**9)

    def no_memory(*a, **k):
        raise MemoryError

    import sys

    monkeypatch.setattr(sys.modules["vascalc.analyse"], "headline_uncertainty", no_memory)
    r = analyse(vol, _config(), case_id="a")
    assert r.whole == plain.whole and r.uncertainty.reason == "not enough memory for the rescan model"
