"""Body surface area (m^2) from height (cm) and weight (kg).

One registry, ``FORMULAS``, from which the config choices, the docs and the tests derive.
Each formula cites its source; the coefficients are the published ones. For 170 cm / 70 kg
they give 1.810 (Du Bois), 1.818 (Mosteller), 1.826 (Haycock), 1.831 (Gehan-George) and
1.835 (Boyd) m^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..errors import AnthropometryError

#: plausible ranges; a value outside is refused (height 1.7 is metres given as cm, weight 0 is
#: "unknown" in many DICOM headers, 400 lb is pounds given as kg)
HEIGHT_CM_RANGE = (30.0, 260.0)
WEIGHT_KG_RANGE = (1.0, 350.0)


def du_bois(height_cm: float, weight_kg: float) -> float:
    """Du Bois D, Du Bois EF. A formula to estimate the approximate surface area if height and
    weight be known. Arch Intern Med 1916;17:863-871. BSA = 0.007184 W^0.425 H^0.725."""
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


def mosteller(height_cm: float, weight_kg: float) -> float:
    """Mosteller RD. Simplified calculation of body-surface area. N Engl J Med 1987;317:1098.
    BSA = sqrt(H W / 3600)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def haycock(height_cm: float, weight_kg: float) -> float:
    """Haycock GB, Schwartz GJ, Wisotsky DH. Geometric method for measuring body surface area.
    J Pediatr 1978;93:62-66. BSA = 0.024265 W^0.5378 H^0.3964."""
    return 0.024265 * weight_kg**0.5378 * height_cm**0.3964


def gehan_george(height_cm: float, weight_kg: float) -> float:
    """Gehan EA, George SL. Estimation of human body surface area from height and weight.
    Cancer Chemother Rep 1970;54:225-235. BSA = 0.0235 W^0.51456 H^0.42246."""
    return 0.0235 * weight_kg**0.51456 * height_cm**0.42246


def boyd(height_cm: float, weight_kg: float) -> float:
    """Boyd E. The growth of the surface area of the human body. University of Minnesota
    Press, 1935. BSA = 0.0003207 H^0.3 Wg^(0.7285 - 0.0188 log10 Wg), weight Wg in grams."""
    grams = weight_kg * 1000.0
    return 0.0003207 * height_cm**0.3 * grams ** (0.7285 - 0.0188 * math.log10(grams))


@dataclass(frozen=True)
class Formula:
    """A registered formula; its citation is the function's docstring."""

    name: str
    func: Callable[[float, float], float]


FORMULAS: dict[str, Formula] = {
    f.name: f
    for f in (
        Formula("dubois", du_bois),
        Formula("mosteller", mosteller),
        Formula("haycock", haycock),
        Formula("gehan_george", gehan_george),
        Formula("boyd", boyd),
    )
}


def check_anthropometry(height_cm: float, weight_kg: float, *, source: str) -> None:
    """Raise AnthropometryError naming the value when height or weight is implausible."""
    lo, hi = HEIGHT_CM_RANGE
    if not (math.isfinite(height_cm) and lo <= height_cm <= hi):
        hint = " (it looks like metres: multiply by 100)" if 0.3 <= height_cm <= 2.6 else ""
        raise AnthropometryError(
            f"height_cm={height_cm:g} from {source} is outside {lo:g}-{hi:g} cm{hint}")
    lo, hi = WEIGHT_KG_RANGE
    if not (math.isfinite(weight_kg) and lo <= weight_kg <= hi):
        raise AnthropometryError(
            f"weight_kg={weight_kg:g} from {source} is outside {lo:g}-{hi:g} kg "
            "(0 often means 'unknown'; pounds must be converted to kg)")


def body_surface_area(height_cm: float, weight_kg: float, *, formula: str = "dubois") -> float:
    """BSA in m^2 by the named formula, after the plausibility check."""
    if formula not in FORMULAS:
        raise ValueError(f"unknown BSA formula {formula!r}; allowed: {sorted(FORMULAS)}")
    check_anthropometry(height_cm, weight_kg, source="arguments")
    return FORMULAS[formula].func(height_cm, weight_kg)
