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
    unfinished = mesa_columns(_scan(risk_category="", risk_basis="empty: the reader has not marked the case done"), FACTORS)
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
