"""The measurement-uncertainty columns: scans.csv's intervals and probabilities (from the
rescan model, :mod:`vascalc.core.rescan`) and progression.csv's per-pair measurement tests.
Plain (name, type, unit, meaning) tuples, made into registry columns by
:mod:`vascalc.results.columns`; every one is empty unless ``uncertainty.enabled`` (the MESA
limits need only BMI and the scores)."""

from __future__ import annotations

from typing import Any

from ..core.rescan import INTERVAL_COLUMNS
from ..core.score import CAC_DRS_LABELS, RISK_LABELS
from ..records import CaseFailure, ScanResult

_RM = "(vascalc.core.rescan: random slice start and in-plane shift, the scan's own partial " \
      "volume and measured noise; empty unless uncertainty.enabled, or uncertainty_reason)"
#: measure -> (low column, high column) of its 95 % interval in scans.csv
INTERVALS = INTERVAL_COLUMNS
_UNITS = {"agatston": "", "volume_mm3": "mm3", "mass_mg": "mg", "integrated_mass_mg": "mg"}
RISK_P = ("p_risk_0", "p_risk_1_10", "p_risk_11_100", "p_risk_101_400", "p_risk_over_400")
CAC_DRS_P = tuple(f"p_cac_drs_{x.lower()}" for x in CAC_DRS_LABELS)

SCANS: tuple[tuple[str, str, str, str], ...] = (
    ("uncertainty_n_rescans", "integer", "", "rescans simulated for the intervals " + _RM),
    ("uncertainty_seed", "integer", "", "seed of the simulated rescans (one seed, one answer)"),
    ("noise_sd_hu", "number", "HU", "image noise measured from the scan: 1.4826 MAD of "
     "adjacent-voxel differences in -200..200 HU / sqrt(2)"),
    ("uncertainty_reason", "string", "", "why the intervals are empty when the model was on"),
    ("integrated_mass_mg", "number", "mg", "threshold-free integrated calcium mass of the "
     "headline's calcium: c x sum(HU - local background) x voxel volume over the calcium's "
     "neighbourhood (Black et al., Med Phys 2023; CalciumScoring.jl Integrated); empty "
     "unless uncertainty.enabled and the mass is calibrated"),
    *((col, "number", _UNITS[m], f"{'lower' if i == 0 else 'upper'} bound of the 95 % "
       f"interval of the headline's {m} (basic bootstrap over simulated rescans) {_RM}")
      for m, cols in INTERVALS.items() for i, col in enumerate(cols)),
    *((col, "number", "", f"share of simulated rescans in risk category {label!r}; coronary "
       "scope only") for col, label in zip(RISK_P, RISK_LABELS)),
    *((col, "number", "", f"share of simulated rescans in CAC-DRS class {label}; coronary "
       "scope only") for col, label in zip(CAC_DRS_P, CAC_DRS_LABELS)),
)

#: progression measures with a per-pair measurement test
PAIR_MEASURES = tuple(INTERVAL_COLUMNS)

PROGRESSION: tuple[tuple[str, str, str, str], ...] = (
    ("integrated_mass_mg_1", "number", "mg", "integrated_mass_mg of the earlier scan"),
    ("integrated_mass_mg_2", "number", "mg", "integrated_mass_mg of the later scan"),
    ("integrated_mass_mg_change", "number", "mg", "later - earlier"),
    *((f"{m}_probability_increase", "number", "", f"probability that the true {m} rose: "
       "Phi(change / sqrt(s1^2 + s2^2)), s = 95 % interval width / 3.92 of each scan's "
       "rescan model (normal approximation); empty without both intervals or when both "
       "are 0 wide") for m in PAIR_MEASURES),
    *((f"{m}_change_beyond_measurement", "boolean", "", f"|{m} change| > 1.96 sqrt(s1^2 + "
       "s2^2): the change exceeds what the two scans' measurement explains") for m in PAIR_MEASURES),
    ("bmi_kg_m2", "number", "kg/m2", "body mass index of the earlier scan: weight_kg / "
     "(height_cm / 100)^2, for the MESA repeatability limits"),
    ("mesa_repeatability_limit_agatston", "number", "", "upper 95 % repeatability limit of a "
     "second Agatston score: 0.17 AS + 4.89 sqrt(AS) + 0.44 BMI - 10.84, AS the earlier "
     "(baseline) score (Chung H et al., MESA, AJR 2008;190:W87, PMID 18212206); derived in "
     "participants with baseline CAC: empty when the earlier score is 0 or BMI is missing"),
    ("mesa_agatston_change", "string", "", "increase or decrease when the Agatston change "
     "exceeds the MESA limit (Chung 2008: detectable change), else none"),
    ("mesa_repeatability_limit_volume_mm3", "number", "mm3", "the same for the volume score: "
     "0.16 V + 4.30 sqrt(V) + 0.23 BMI - 5.00 (Chung et al. 2008)"),
    ("mesa_volume_change", "string", "", "increase, decrease or none against "
     "mesa_repeatability_limit_volume_mm3"),
)


def scan_columns(r: ScanResult | CaseFailure) -> dict[str, Any]:
    """The uncertainty columns of one scans row (all empty without the rescan model)."""
    out: dict[str, Any] = dict.fromkeys(name for name, *_ in SCANS)
    u = r.uncertainty if isinstance(r, ScanResult) else None
    if u is None:
        return out
    out.update(uncertainty_n_rescans=u.n_rescans, uncertainty_seed=u.seed,
               noise_sd_hu=u.noise_hu, uncertainty_reason=u.reason,
               integrated_mass_mg=u.integrated_mass_value_mg)
    for m, (lo, hi) in INTERVALS.items():
        ci = getattr(u, m)
        if ci is not None:
            out[lo], out[hi] = ci
    out.update(zip(RISK_P, u.risk_probabilities))
    out.update(zip(CAC_DRS_P, u.cac_drs_probabilities))
    return out
