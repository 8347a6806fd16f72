"""Is a pair's change beyond measurement? The per-pair columns of progression.csv that weigh a
change against the two scans' measurement error, beside Hokanson's and Raggi's criteria
(:mod:`vascalc.cohort.progression`):

- from the two scans' rescan models (scans.csv's 95 % intervals, :mod:`vascalc.core.rescan`):
  each scan's measurement sd s = interval width / (2 x 1.959964) (a normal approximation),
  the probability that the true value rose = Phi(change / sqrt(s1^2 + s2^2)), and whether
  |change| > 1.959964 sqrt(s1^2 + s2^2);
- the MESA 95 % repeatability limits of a second score (Chung H, McClelland RL, Katz R, Carr
  JJ, Budoff MJ. Repeatability limits for measurement of coronary artery calcified plaque with
  cardiac CT in the Multi-Ethnic Study of Atherosclerosis. AJR 2008;190:W87-W92, PMID
  18212206): Agatston 0.17 AS + 4.89 sqrt(AS) + 0.44 BMI - 10.84 and volume 0.16 V + 4.30
  sqrt(V) + 0.23 BMI - 5.00, with AS and V the baseline (earlier) score, derived by quantile
  regression in participants with baseline CAC; a follow-up change is detectable when it
  increases or decreases beyond the baseline limit. Empty when the earlier score is 0 (no
  limit was derived there) or BMI is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..core.rescan import INTERVAL_COLUMNS as INTERVALS

Z95 = 1.959963984540054
#: Chung et al. 2008: (a x score + b x sqrt(score) + c x BMI + d)
MESA_LIMITS = {"agatston": (0.17, 4.89, 0.44, -10.84), "volume_mm3": (0.16, 4.30, 0.23, -5.00)}


def _num(t: pd.DataFrame, col: str) -> pd.Series:
    s = t[col] if col in t else pd.Series(np.nan, index=t.index)
    return pd.to_numeric(s, errors="coerce").where(lambda v: np.isfinite(v))


def mesa_limit(score: pd.Series, bmi: pd.Series, measure: str) -> pd.Series:
    """The MESA upper 95 % repeatability limit of a second score (module docstring), from the
    baseline ``score`` and ``bmi``; empty where the score is 0 or missing or BMI missing.

    >>> round(float(mesa_limit(pd.Series([100.0]), pd.Series([25.0]), "agatston")[0]), 2)
    66.06
    """
    a, b, c, d = MESA_LIMITS[measure]
    ok = score.notna() & (score > 0) & bmi.notna()
    return (a * score + b * np.sqrt(score.clip(lower=0)) + c * bmi + d).where(ok)


def _detectable(change: pd.Series, limit: pd.Series) -> pd.Series:
    word = np.where(change > limit, "increase", np.where(change < -limit, "decrease", "none"))
    return pd.Series(word, index=change.index, dtype=object).where(limit.notna() & change.notna())


def measurement_columns(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`vascalc.results.uncertainty_columns.PROGRESSION` for the pairs
    (earlier rows ``a``, later rows ``b``, aligned)."""
    out = pd.DataFrame(index=a.index)
    x, y = _num(a, "integrated_mass_mg"), _num(b, "integrated_mass_mg")
    out["integrated_mass_mg_1"], out["integrated_mass_mg_2"] = x, y
    out["integrated_mass_mg_change"] = y - x
    for m in INTERVALS:
        lo, hi = INTERVALS[m]
        s1 = (_num(a, hi) - _num(a, lo)) / (2 * Z95)
        s2 = (_num(b, hi) - _num(b, lo)) / (2 * Z95)
        sd = np.sqrt(s1 ** 2 + s2 ** 2)
        change = _num(b, m) - _num(a, m)
        ok = change.notna() & sd.notna() & (sd > 0)
        out[f"{m}_probability_increase"] = pd.Series(
            norm.cdf(change / sd.where(ok)), index=a.index).where(ok)
        out[f"{m}_change_beyond_measurement"] = (change.abs() > Z95 * sd).astype(object).where(ok)
    height, weight = _num(a, "height_cm"), _num(a, "weight_kg")
    bmi = weight / (height / 100.0) ** 2
    out["bmi_kg_m2"] = bmi
    for m, name in (("agatston", "agatston"), ("volume_mm3", "volume")):
        limit = mesa_limit(_num(a, m), bmi, m)
        out[f"mesa_repeatability_limit_{m}"] = limit
        out[f"mesa_{name}_change"] = _detectable(_num(b, m) - _num(a, m), limit)
    return out
