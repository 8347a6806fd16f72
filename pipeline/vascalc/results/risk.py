"""The MESA 10-year CHD risk columns of a scans row (:mod:`vascalc.core.mesa`).

The risk factors come from the manifest's columns (:data:`vascalc.core.mesa.FACTORS`); age
and sex from the manifest win over the DICOM header's (which the row holds only when
``privacy.demographics`` is on), and ``mesa_age_sex_source`` says which gave them. The CAC is
the headline's Agatston score when the headline is the coronary score by the one definition
every clinical number uses (:func:`vascalc.core.scopes.risk_basis`: coronary scope, by coronary
masks, a reader's labels or a field of view declared coronary; 130 HU on a non-contrast scan;
a finished read), the same that gives the risk category and CAC-DRS; otherwise, or outside
the model's ages, or with a factor missing, the risk is empty and ``mesa_withheld_reason``
says why.
"""

from __future__ import annotations

from typing import Any

from ..core.mesa import FACTORS, chd_risk_10y_pct, check_combination, parse_factor, why_not
from ..core.scopes import is_coronary_score

MESA_COLUMNS = ("mesa_chd_10y_risk_pct", "mesa_age_sex_source", "mesa_withheld_reason")


def mesa_columns(scan: dict[str, Any], covariates: dict[str, str]) -> dict[str, Any]:
    """The three MESA columns of a scans row with the case's manifest covariates."""
    if not any(c in covariates for c in FACTORS):
        return dict.fromkeys(MESA_COLUMNS, "") | {"mesa_chd_10y_risk_pct": None}
    try:  # a manifest refuses these by line; a document made another way is told here
        given: dict[str, Any] = {c: parse_factor(c, covariates.get(c, "")) for c in FACTORS}
    except ValueError as err:
        return {"mesa_chd_10y_risk_pct": None, "mesa_age_sex_source": "",
                "mesa_withheld_reason": str(err)}
    age, age_from = given["age_years"], "manifest" if given["age_years"] is not None else ""
    if age is None and scan.get("patient_age_years") is not None:
        age, age_from = float(scan["patient_age_years"]), "dicom_header"
    sex, sex_from = given["sex"], "manifest" if given["sex"] is not None else ""
    header_sex = (scan.get("patient_sex") or "").strip().upper()
    if sex is None and header_sex in ("M", "F"):
        sex, sex_from = ("male" if header_sex == "M" else "female"), "dicom_header"
    source = (age_from if age_from == sex_from else
              ", ".join(f"{what} {src}" for what, src in (("age", age_from), ("sex", sex_from))
                        if src))
    reason = _withheld(scan, given, age, sex)
    if reason:
        return {"mesa_chd_10y_risk_pct": None, "mesa_age_sex_source": source,
                "mesa_withheld_reason": reason}
    try:  # the inputs were range-checked: a failure here must still never cost the calcium
        risk = _risk(given, age, sex, float(scan["agatston"]))
    except (ValueError, OverflowError, ArithmeticError) as err:
        return {"mesa_chd_10y_risk_pct": None, "mesa_age_sex_source": source,
                "mesa_withheld_reason": f"the model cannot be evaluated: {err}"}
    return {"mesa_chd_10y_risk_pct": risk, "mesa_age_sex_source": source,
            "mesa_withheld_reason": ""}


def _risk(given: dict[str, Any], age, sex, cac: float) -> float:
    return chd_risk_10y_pct(
        age=age, male=sex == "male", race=given["race"],
        total_cholesterol_mg_dl=given["total_cholesterol_mg_dl"],
        hdl_cholesterol_mg_dl=given["hdl_cholesterol_mg_dl"],
        systolic_bp_mm_hg=given["systolic_bp_mm_hg"], bp_medication=given["bp_medication"],
        lipid_medication=given["lipid_medication"], diabetes=given["diabetes"],
        current_smoker=given["current_smoker"],
        family_history_chd=given["family_history_chd"],
        cac_agatston=cac)  # the headline: the coronary score (see _withheld)


def _withheld(scan: dict[str, Any], given: dict[str, Any], age, sex) -> str:
    if scan.get("status") != "ok":
        return "the case failed: nothing was scored"
    if scan.get("scope") != "coronary":
        return (f"the scope is {scan.get('scope') or 'none'}, not coronary: the model takes a "
                "coronary calcium score")
    if not is_coronary_score(scan.get("risk_basis") or "") or scan.get("agatston") is None:
        return ("no coronary Agatston score by the definition"
                + (f" ({scan['risk_basis']})" if scan.get("risk_basis") else ""))
    clash = check_combination(given["total_cholesterol_mg_dl"], given["hdl_cholesterol_mg_dl"])
    if clash:
        return clash
    missing = [c for c in FACTORS if c not in ("age_years", "sex") and given[c] is None]
    missing = (["age_years"] if age is None else []) + (["sex"] if sex is None else []) + missing
    if missing:
        return "missing: " + ", ".join(missing)
    return why_not(age)
