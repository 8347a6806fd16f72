"""#26: the MESA 10-year CHD risk with CAC (McClelland et al., JACC 2015, Table 2) in scans.csv
when the manifest gives the risk factors; empty, with the reason, outside ages 45-84, for a
scope that is not coronary, without a score by the definition, or with a factor missing."""

from __future__ import annotations

import math

import pytest
from vascalc.core.mesa import BETAS, chd_risk_10y_pct, parse_factor
from vascalc.results.risk import mesa_columns
from vascalc.run.manifest import read_manifest

#: a complete set of risk factors, as manifest cells
FACTORS = {"sex": "male", "age_years": "70", "race": "hispanic", "total_cholesterol_mg_dl": "190",
           "hdl_cholesterol_mg_dl": "50", "systolic_bp_mm_hg": "130", "bp_medication": "1",
           "lipid_medication": "0", "diabetes": "false", "current_smoker": "0",
           "family_history_chd": "0"}


def _scan(**over):
    row = {"status": "ok", "scope": "coronary", "risk_category": "0", "agatston": 0.0,
           "risk_basis": "coronary regions", "patient_age_years": None, "patient_sex": ""}
    return {**row, **over}


def test_the_published_test_case_of_an_open_implementation():
    """CVrisk (vcastro/CVrisk) tests chd_10y_mesa_cac: 70-year-old Hispanic man, SBP 130, HDL
    50, total cholesterol 190, blood-pressure medication, CAC 0 -> 3.06 %."""
    cols = mesa_columns(_scan(), FACTORS)
    assert round(cols["mesa_chd_10y_risk_pct"], 2) == 3.06
    assert cols["mesa_age_sex_source"] == "manifest" and cols["mesa_withheld_reason"] == ""


def test_the_model_by_hand_for_every_term():
    """Each factor enters with its Table 2 coefficient: the linear predictor by hand."""
    x = dict(age=60, male=False, race="african_american", total_cholesterol_mg_dl=220,
             hdl_cholesterol_mg_dl=45, systolic_bp_mm_hg=145, bp_medication=True,
             lipid_medication=True, diabetes=True, current_smoker=True, family_history_chd=True,
             cac_agatston=250.0)
    s = (0.0172 * 60 + 0.0353 + 0.3892 + 0.3717 + 0.0043 * 220 - 0.0114 * 45 + 0.1206
         + 0.0066 * 145 + 0.2278 + 0.3239 + 0.2743 * math.log(251.0))
    assert chd_risk_10y_pct(**x) == pytest.approx(100 * (1 - 0.99833 ** math.exp(s)), abs=1e-9)
    # more calcium, more risk; Chinese ethnicity lowers it, as its negative coefficient says
    assert chd_risk_10y_pct(**{**x, "cac_agatston": 1000.0}) > chd_risk_10y_pct(**x)
    assert BETAS["chinese"] < 0
    assert chd_risk_10y_pct(**{**x, "race": "chinese"}) < chd_risk_10y_pct(**x)


@pytest.mark.parametrize("age, given", [("44", False), ("45", True), ("84", True), ("85", False)])
def test_the_model_gives_nothing_outside_its_ages(age, given):
    cols = mesa_columns(_scan(), {**FACTORS, "age_years": age})
    assert (cols["mesa_chd_10y_risk_pct"] is not None) is given
    assert given or "outside the model's 45 to 84 years" in cols["mesa_withheld_reason"]


def test_withheld_for_another_scope_an_unfinished_read_or_a_missing_factor():
    assert "not coronary" in mesa_columns(_scan(scope="vascular"), FACTORS)["mesa_withheld_reason"]
    unfinished = mesa_columns(_scan(risk_category="", risk_basis="empty: the reader has not "
                                    "marked the case done"), FACTORS)
    assert unfinished["mesa_chd_10y_risk_pct"] is None
    assert "no coronary Agatston score by the definition" in unfinished["mesa_withheld_reason"]
    cols = mesa_columns(_scan(), {**FACTORS, "hdl_cholesterol_mg_dl": ""})
    assert cols["mesa_chd_10y_risk_pct"] is None
    assert cols["mesa_withheld_reason"] == "missing: hdl_cholesterol_mg_dl"
    # no risk-factor column at all: nothing said
    assert mesa_columns(_scan(), {"site": "A"})["mesa_withheld_reason"] == ""


def test_manifest_age_and_sex_win_over_the_header_and_the_row_says_which():
    header = _scan(patient_age_years=50.0, patient_sex="F")
    assert mesa_columns(header, FACTORS)["mesa_age_sex_source"] == "manifest"
    both = mesa_columns(header, {**FACTORS, "age_years": "", "sex": ""})
    assert both["mesa_age_sex_source"] == "dicom_header"
    female_50 = {**FACTORS, "sex": "female", "age_years": "50"}
    assert both["mesa_chd_10y_risk_pct"] == mesa_columns(_scan(), female_50)["mesa_chd_10y_risk_pct"]
    mixed = mesa_columns(header, {**FACTORS, "age_years": ""})
    assert mixed["mesa_age_sex_source"] == "age dicom_header, sex manifest"


@pytest.mark.parametrize("column, bad", [("race", "asian"), ("sex", "x"), ("diabetes", "maybe"),
                                         ("systolic_bp_mm_hg", "-5"), ("age_years", "old")])
def test_a_value_the_model_cannot_take_is_warned_by_line_and_withholds_the_risk(tmp_path, column,
                                                                               bad):
    """sex and age were covariates before MESA: a value the model cannot take costs that case
    its MESA risk, with the reason in the row and a warning naming the line, never the run."""
    with pytest.raises(ValueError):
        parse_factor(column, bad)
    (tmp_path / "s").mkdir()
    m = tmp_path / "m.csv"
    cells = {**FACTORS, column: bad}
    m.write_text("case_id,path," + ",".join(cells) + "\nA,s," + ",".join(cells.values()) + "\n")
    warned: list[str] = []
    rows = read_manifest(m, warnings=warned)
    assert len(rows) == 1 and any(f"line 2: {column}=" in w and "no MESA risk" in w for w in warned)
    cols = mesa_columns(_scan(), rows[0]["extra"])
    assert cols["mesa_chd_10y_risk_pct"] is None and f"{column}=" in cols["mesa_withheld_reason"]


# --- #35 item 17: one definition of the coronary score -------------------------------------

def _scored_doc(config_kw: dict, regions=None, covariates=FACTORS):
    """A scored case's scans row as the tables get it (document -> rows)."""
    import numpy as np
    from vascalc.analyse import analyse
    from vascalc.config.schema import Config
    from vascalc.records import CTVolume, ScanMeta
    from vascalc.results.document import document, scan_of

    hu = np.full((6, 30, 30), 40, dtype=np.int16)
    hu[:, 0, :] = -1000
    hu[2:4, 10:14, 10:14] = 450  # 2 slices x 16 px x 0.36 mm2 x weight 4 = 46.08
    config = Config(**config_kw)
    meta = ScanMeta(manufacturer="SIEMENS", kernel="B35f", kvp=120.0, slice_thickness_mm=3.0)
    r = analyse(CTVolume(hu=hu, spacing_mm=(3.0, 0.6, 0.6), meta=meta), config, case_id="m",
                regions=regions)
    doc = document(r, run_config_sha256="x", fingerprint="f", settings=config, patient_id="P",
                   source_path="s", covariates=dict(covariates), timings={})
    return scan_of(doc)


def test_a_scan_declared_coronary_gets_its_mesa_risk_as_a_masked_one_does():
    """fov_is_coronary without masks and an LAD mask over the same calcium: the same coronary
    score, the same risk category, CAC-DRS and MESA risk (the risk was withheld before)."""
    import numpy as np

    declared = _scored_doc({"scoring": {"fov_is_coronary": True}})
    lad = np.zeros((6, 30, 30), bool)
    lad[:, 8:16, 8:16] = True
    masked = _scored_doc({}, regions=[("LAD", lad)])
    for s in (declared, masked):
        assert s["scope"] == "coronary" and s["agatston"] == pytest.approx(46.08)
        assert s["risk_category"] == "11 to 100" and s["cac_drs"]
        assert s["mesa_withheld_reason"] == "" and s["mesa_chd_10y_risk_pct"] is not None
    assert declared["mesa_chd_10y_risk_pct"] == masked["mesa_chd_10y_risk_pct"]
    want = chd_risk_10y_pct(age=70, male=True, race="hispanic", total_cholesterol_mg_dl=190,
                            hdl_cholesterol_mg_dl=50, systolic_bp_mm_hg=130, bp_medication=True,
                            lipid_medication=False, diabetes=False, current_smoker=False,
                            family_history_chd=False, cac_agatston=46.08)
    assert declared["mesa_chd_10y_risk_pct"] == pytest.approx(want)


def test_no_clinical_number_without_the_coronary_score():
    """Whatever withholds the category withholds MESA too, with the same basis."""
    s = _scored_doc({"scoring": {"fov_is_coronary": True, "agatston": False}})
    assert s["risk_category"] == "" and s["mesa_chd_10y_risk_pct"] is None
    assert "no coronary Agatston score" in s["mesa_withheld_reason"]


# --- #35 item 18: MESA inputs checked ----------------------------------------------------

@pytest.mark.parametrize("column, bad, words", [
    ("total_cholesterol_mg_dl", "5.0", "mmol/L"), ("hdl_cholesterol_mg_dl", "1.3", "mmol/L"),
    ("systolic_bp_mm_hg", "16", "kPa"), ("systolic_bp_mm_hg", "1e6", "outside"),
    ("total_cholesterol_mg_dl", "1e300", "outside"), ("age_years", "1e6", "outside"),
])
def test_a_value_in_other_units_or_absurd_is_refused_by_line_and_column(tmp_path, column, bad,
                                                                         words):
    with pytest.raises(ValueError, match=words):
        parse_factor(column, bad)
    (tmp_path / "s").mkdir()
    m = tmp_path / "m.csv"
    cells = {**FACTORS, column: bad}
    m.write_text("case_id,path," + ",".join(cells) + "\nA,s," + ",".join(cells.values()) + "\n")
    warned: list[str] = []
    rows = read_manifest(m, warnings=warned)
    assert any(f"line 2: {column}=" in w and words in w for w in warned)
    cols = mesa_columns(_scan(), rows[0]["extra"])
    assert cols["mesa_chd_10y_risk_pct"] is None and column in cols["mesa_withheld_reason"]


def test_hdl_above_total_cholesterol_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    m = tmp_path / "m.csv"
    cells = {**FACTORS, "total_cholesterol_mg_dl": "120", "hdl_cholesterol_mg_dl": "150"}
    m.write_text("case_id,path," + ",".join(cells) + "\nA,s," + ",".join(cells.values()) + "\n")
    warned: list[str] = []
    rows = read_manifest(m, warnings=warned)
    assert any("line 2" in w and "hdl_cholesterol_mg_dl" in w and "total" in w for w in warned)
    cols = mesa_columns(_scan(), rows[0]["extra"])
    assert cols["mesa_chd_10y_risk_pct"] is None
    assert "not below total_cholesterol_mg_dl" in cols["mesa_withheld_reason"]


@pytest.mark.parametrize("column, bad", [("systolic_bp_mm_hg", "1e6"),
                                         ("total_cholesterol_mg_dl", "1e300")])
def test_an_absurd_covariate_never_costs_the_calcium_numbers(column, bad):
    """Before, SBP 1e6 or cholesterol 1e300 overflowed the model and failed the case as
    INTERNAL; now the row keeps its scores and says why the risk is empty."""
    s = _scored_doc({"scoring": {"fov_is_coronary": True}}, covariates={**FACTORS, column: bad})
    assert s["status"] == "ok" and s["agatston"] == pytest.approx(46.08) and s["risk_category"]
    assert s["mesa_chd_10y_risk_pct"] is None and column in s["mesa_withheld_reason"]


def test_the_model_itself_refuses_overflow_in_words():
    with pytest.raises(OverflowError):
        chd_risk_10y_pct(age=70, male=True, race="white", total_cholesterol_mg_dl=1e300,
                         hdl_cholesterol_mg_dl=50, systolic_bp_mm_hg=130, bp_medication=False,
                         lipid_medication=False, diabetes=False, current_smoker=False,
                         family_history_chd=False, cac_agatston=0.0)
    assert mesa_columns(_scan(), {**FACTORS, "systolic_bp_mm_hg": "1e6"})[
        "mesa_chd_10y_risk_pct"] is None


def test_the_report_follows_the_same_definition_for_a_kvp_adapted_coronary_score():
    """Neighbour of item 17: a coronary score found at a kvp_table threshold gets its risk
    category from analyse; the impression said 'No risk category or CAC-DRS: coronary regions'
    beside it (its own test asked for 130 HU). It now follows the one definition."""
    import numpy as np
    from vascalc.outputs.clinical import impression

    lad = np.zeros((6, 30, 30), bool)
    lad[:, 8:16, 8:16] = True
    s = _scored_doc({"scoring": {"kvp_table": {120.0: (147.0, 228.0, 342.0, 456.0)},
                                 "kvp_select": "header"}}, regions=[("LAD", lad)])
    assert s["headline_threshold_hu"] == 147.0 and s["risk_category"] == "11 to 100"
    text = " ".join(impression(s, []))
    assert "Risk category 11 to 100" in text and "No risk category" not in text
