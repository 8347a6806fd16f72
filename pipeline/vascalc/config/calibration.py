"""The files of ``vascalc calibrate``: the phantom's inserts (YAML in) and the measured
calibration as a commented config snippet (YAML out)."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.calibrate import Calibration, Insert
from ..errors import ConfigError
from ..values import safe_yaml


def read_inserts(path: Path) -> list[Insert]:
    """The inserts of a YAML list of ``name``, ``density_mg_per_cm3`` (0 = water),
    ``center_mm`` [x, y, z] (patient coordinates) and ``radius_mm``; refused by name."""
    try:
        items = safe_yaml(Path(path).read_text(encoding="utf-8"))
        out = []
        for i in items:
            x, y, z = (float(v) for v in i["center_mm"])
            out.append(Insert(name=str(i["name"]), density_mg_per_cm3=float(i["density_mg_per_cm3"]),
                              center_mm=(x, y, z), radius_mm=float(i["radius_mm"])))
        return out
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"inserts must be a YAML list of name, density_mg_per_cm3, center_mm, "
                          f"radius_mm ({type(err).__name__}: {err})", path=str(path),
                          hint="see vascalc calibrate --help") from None


def snippet(cal: Calibration, source: str) -> str:
    """The config snippet that carries ``cal`` (scoring.mass_calibration_mg_per_cm3_per_hu and
    scoring.calibration_water_hu), with the measured HU in its comments."""
    return "\n".join([
        f"# mass calibration measured by vascalc calibrate on {source}",
        f"# water {cal.water_hu:.2f} HU; per insert: " + "; ".join(
            f"{r['name']} {r['mean_hu']:.2f} HU" for r in cal.inserts),
        "scoring:",
        "  # c of mass = c * sum(HU - water HU) * voxel volume, mg/(cm3*HU)",
        f"  mass_calibration_mg_per_cm3_per_hu: {cal.c_mg_per_cm3_per_hu:.6g}",
        "  # HU of water in this calibration (density = c * (HU - this))",
        f"  calibration_water_hu: {cal.water_hu:.4g}", ""])


def microct_snippet(fit, stack: str, inserts: str) -> str:
    """The config snippet of an HA rod calibration (:class:`vascalc.core.rods.RodFit`): the
    ``microct`` slope, intercept, source and valid range, with each rod's mean value, fitted
    density and residual in the comments."""
    cal = fit.calibration
    lines = [f"# HA rod calibration measured by vascalc calibrate on {stack}",
             "# rod: known mg HA/cm3 <- mean stored value -> fitted (residual)"]
    lines += [f"#   {r['name']}: {r['density_mg_ha_cm3']:g} <- {r['mean_value']:.4f} -> "
              f"{r['fitted_mg_ha_cm3']:.2f} ({r['residual_mg_ha_cm3']:+.2f})" for r in fit.rods]
    lines += ["microct:",
              "  # density (mg HA/cm3) = slope x stored value + intercept",
              f"  calibration_slope: {cal.slope:.10g}",
              f"  calibration_intercept: {cal.intercept:.10g}",
              f"  calibration_source: {json.dumps('rods:' + inserts)}",
              "  # the rods' densities: a denser voxel is flagged density_beyond_calibration",
              f"  calibration_valid_min_mg_ha_cm3: {cal.valid_min_mg_ha_cm3:g}",
              f"  calibration_valid_max_mg_ha_cm3: {cal.valid_max_mg_ha_cm3:g}", ""]
    return "\n".join(lines)
