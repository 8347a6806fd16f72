"""The MESA 10-year coronary heart disease risk with coronary artery calcium.

Definition: McClelland RL, Jorgensen NW, Budoff M, et al. 10-Year Coronary Heart Disease Risk
Prediction Using Coronary Artery Calcium and Traditional Risk Factors: Derivation in the MESA
(Multi-Ethnic Study of Atherosclerosis) With Validation in the HNR (Heinz Nixdorf Recall)
Study and the DHS (Dallas Heart Study). J Am Coll Cardiol 2015;66(15):1643-53,
doi:10.1016/j.jacc.2015.08.035; Table 2, the model with CAC:

    risk = 1 - S0 ** exp(sum of beta_i * x_i),  S0 = 0.99833 (10-year baseline survival)

with the betas of :data:`BETAS` (age in years; male, race, diabetes, current smoker, lipid-
and blood-pressure-lowering medication and family history of heart attack as 0/1; total and
HDL cholesterol in mg/dL; systolic blood pressure in mm Hg; ln(CAC + 1), CAC the Agatston
score). The model was derived in ages 45 to 84 and for four groups (white, Chinese, African
American, Hispanic); outside them it gives nothing. The coefficients agree with the CVrisk R
package's table (vcastro/CVrisk, data-raw/score_coef.R), and its published test case (a
70-year-old Hispanic man, SBP 130, HDL 50, total cholesterol 190, on blood-pressure
medication, CAC 0: 3.06 %) is a doctest below. CVrisk then clips to 1-30 %; the paper's model
does not, and neither does this.

No MESA CAC percentile is given: the 2006 method (McClelland et al., Circulation
2006;113:30-7) publishes no formula or table from which it can be reproduced.

>>> round(chd_risk_10y_pct(age=70, male=True, race="hispanic", total_cholesterol_mg_dl=190,
...       hdl_cholesterol_mg_dl=50, systolic_bp_mm_hg=130, bp_medication=True,
...       lipid_medication=False, diabetes=False, current_smoker=False,
...       family_history_chd=False, cac_agatston=0.0), 2)
3.06
"""

from __future__ import annotations

import math

#: McClelland et al. 2015, Table 2 (model with CAC)
BETAS = {
    "age": 0.0172, "male": 0.4079, "chinese": -0.3475, "african_american": 0.0353,
    "hispanic": -0.0222, "diabetes": 0.3892, "current_smoker": 0.3717,
    "total_cholesterol": 0.0043, "hdl_cholesterol": -0.0114, "lipid_medication": 0.1206,
    "systolic_bp": 0.0066, "bp_medication": 0.2278, "family_history_chd": 0.3239,
    "ln_cac_plus_1": 0.2743,
}
BASELINE_SURVIVAL_10Y = 0.99833
#: the ages the model was derived in (MESA enrolled 45 to 84)
AGE_RANGE_YEARS = (45.0, 84.0)
RACES = ("white", "chinese", "african_american", "hispanic")

#: the manifest columns of the model's risk factors, and their kinds
FACTORS = {
    "sex": "sex", "age_years": "number", "race": "race",
    "total_cholesterol_mg_dl": "number", "hdl_cholesterol_mg_dl": "number",
    "systolic_bp_mm_hg": "number", "bp_medication": "bool", "lipid_medication": "bool",
    "diabetes": "bool", "current_smoker": "bool", "family_history_chd": "bool",
}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")

#: the ranges a risk factor is taken in (inclusive), in the model's units. The model was
#: derived in MESA's 6,726 participants aged 45 to 84 (McClelland et al. 2015), whose total
#: cholesterol, HDL and systolic pressure lie around 195 mg/dL, 50 mg/dL and 125 mm Hg; these
#: bounds are vascalc's choice, wide enough for that population's values and narrow enough that
#: a value in other units falls outside: cholesterol in mmol/L is 38.67 times smaller than in
#: mg/dL (5.0 mmol/L = 193 mg/dL), systolic pressure in kPa 7.5 times smaller than in mm Hg
#: (16 kPa = 120 mm Hg). A value outside is refused, never extrapolated.
RANGES = {"total_cholesterol_mg_dl": (70.0, 500.0), "hdl_cholesterol_mg_dl": (10.0, 200.0),
          "systolic_bp_mm_hg": (60.0, 280.0), "age_years": (1.0, 120.0)}
#: what a value far below the range most likely is
_UNITS_HINT = {"total_cholesterol_mg_dl": "mmol/L? multiply by 38.67 for mg/dL",
               "hdl_cholesterol_mg_dl": "mmol/L? multiply by 38.67 for mg/dL",
               "systolic_bp_mm_hg": "kPa? multiply by 7.5 for mm Hg"}


def parse_factor(column: str, text: str) -> object:
    """A manifest cell of a MESA risk-factor column as its value; None when empty. Raises
    ValueError, in words, for a value the model cannot take."""
    value = (text or "").strip().lower()
    if value == "":
        return None
    kind = FACTORS[column]
    if kind == "bool":
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise ValueError(f"{column}={text!r}: give true/false or 1/0")
    if kind == "sex":
        if value in ("female", "f", "male", "m"):
            return "male" if value.startswith("m") else "female"
        raise ValueError(f"{column}={text!r}: give female or male")
    if kind == "race":
        if value in RACES:
            return value
        raise ValueError(f"{column}={text!r}: the MESA model knows {', '.join(RACES)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{column}={text!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{column}={text!r} must be a positive number")
    lo, hi = RANGES.get(column, (0.0, math.inf))
    if not lo <= number <= hi:
        hint = f" (in {_UNITS_HINT[column]})" if number < lo and column in _UNITS_HINT else ""
        raise ValueError(f"{column}={text!r} is outside {lo:g} to {hi:g}, the range the MESA "
                         f"risk is taken in{hint}")
    return number


def check_combination(total_cholesterol_mg_dl: float | None,
                      hdl_cholesterol_mg_dl: float | None) -> str:
    """Why two factors cannot both be true ('' when they can): HDL is a part of the total
    cholesterol, so it cannot reach it.

    >>> check_combination(190, 50), check_combination(50, 190) != ""
    ('', True)
    """
    if (total_cholesterol_mg_dl is not None and hdl_cholesterol_mg_dl is not None
            and hdl_cholesterol_mg_dl >= total_cholesterol_mg_dl):
        return (f"hdl_cholesterol_mg_dl {hdl_cholesterol_mg_dl:g} is not below "
                f"total_cholesterol_mg_dl {total_cholesterol_mg_dl:g} (HDL is part of the total)")
    return ""


def chd_risk_10y_pct(*, age: float, male: bool, race: str, total_cholesterol_mg_dl: float,
                     hdl_cholesterol_mg_dl: float, systolic_bp_mm_hg: float,
                     bp_medication: bool, lipid_medication: bool, diabetes: bool,
                     current_smoker: bool, family_history_chd: bool,
                     cac_agatston: float) -> float:
    """The 10-year CHD risk in percent by the MESA model with CAC (module docstring). The
    caller checks the age range and the race (:func:`why_not`)."""
    if race not in RACES:
        raise ValueError(f"race {race!r} is not one of {RACES}")
    if cac_agatston < 0 or not math.isfinite(cac_agatston):
        raise ValueError(f"CAC {cac_agatston!r} is not an Agatston score")
    b = BETAS
    s = (b["age"] * age + b["male"] * male
         + (b[race] if race != "white" else 0.0)
         + b["diabetes"] * diabetes + b["current_smoker"] * current_smoker
         + b["total_cholesterol"] * total_cholesterol_mg_dl
         + b["hdl_cholesterol"] * hdl_cholesterol_mg_dl
         + b["lipid_medication"] * lipid_medication
         + b["systolic_bp"] * systolic_bp_mm_hg + b["bp_medication"] * bp_medication
         + b["family_history_chd"] * family_history_chd
         + b["ln_cac_plus_1"] * math.log1p(cac_agatston))
    return 100.0 * (1.0 - BASELINE_SURVIVAL_10Y ** math.exp(s))


def why_not(age: float | None) -> str:
    """Why the model gives no risk at this age ('' when it does)."""
    lo, hi = AGE_RANGE_YEARS
    if age is None:
        return "missing: age"
    if not lo <= age < hi + 1:  # 84 years and some months is still 84
        return f"age {age:g} is outside the model's {lo:g} to {hi:g} years"
    return ""
