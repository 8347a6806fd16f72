"""The calcium threshold and density-weight bands of one scan, and where they came from.

- By default the config's ``threshold_hu`` (130 HU) and ``density_weight_hu`` (130, 200, 300,
  400 HU): the Agatston definition, which holds at 120 kVp (Agatston AS et al., J Am Coll
  Cardiol 1990;15:827-832).
- ``kvp_select`` picks a row of ``kvp_table`` (kV -> the HU at which weights 1-4 start) by the
  header's KVP or by a given kV. Calcium reads brighter at lower tube voltage, so published
  low-kVp protocols raise these numbers; the table is filled by the user from the
  publication they follow (vascalc ships no numbers it could not check against the source).
  A scan at 120 kV with no 120 row keeps the Agatston definition.
- ``threshold_mg_ha_cm3`` sets the threshold as a density through the scan's calibration
  (density = c x (HU - water HU), :mod:`vascalc.core.calibrate`): HU threshold = water HU +
  density / c. 130 HU at 120 kVp corresponds to about 100 mg HA/cm3 (the introduction of
  Eur Radiol 2022, doi:10.1007/s00330-022-08642-5, and its reference 5), so a threshold
  of 100 mg HA/cm3 with a calibration measured at the scan's own kVp carries the definition
  to other voltages; it is also how micro-CT thresholds are given. Band 1 then starts at the
  threshold; bands 2-4 keep their HU unless the config changes them.
"""

from __future__ import annotations

from ..core.thresholds import Thresholds
from ..errors import ThresholdError
from .schema import ScoringConfig

KVP_TOLERANCE = 0.5  # kV: header values like 119.9 match the 120 row


def resolve(sc: ScoringConfig, kvp: float | None) -> Thresholds:
    """The threshold and bands for a scan of tube voltage ``kvp`` (None = not in the header)."""
    if sc.threshold_mg_ha_cm3 is not None:
        c = sc.mass_calibration_mg_per_cm3_per_hu
        if c is None:
            raise ThresholdError(
                f"scoring.threshold_mg_ha_cm3={sc.threshold_mg_ha_cm3:g} needs a calibration, "
                "and this case has none")
        thr = sc.calibration_water_hu + sc.threshold_mg_ha_cm3 / c
        w = sc.density_weight_hu
        if sc.agatston and thr >= w[1]:
            raise ThresholdError(
                f"the density threshold gives {thr:.1f} HU, at or above the weight-2 band "
                f"({w[1]:g} HU)", hint="raise scoring.density_weight_hu or set scoring.agatston: "
                "false")
        return Thresholds(thr, (thr, *w[1:]), f"calibration:{sc.threshold_mg_ha_cm3:g}mg_ha_cm3")
    if sc.kvp_select == "off":
        return Thresholds(sc.threshold_hu, sc.density_weight_hu, "config")
    if sc.kvp_select == "header":
        if kvp is None:
            raise ThresholdError("scoring.kvp_select is 'header' but the series has no KVP")
        target = kvp
    else:
        target = float(sc.kvp_select)
    for kv, row in sc.kvp_table.items():
        if abs(kv - target) <= KVP_TOLERANCE:
            return Thresholds(row[0], row, f"kvp_table:{kv:g}")
    if abs(target - 120.0) <= KVP_TOLERANCE:
        return Thresholds(sc.threshold_hu, sc.density_weight_hu, "config")
    raise ThresholdError(f"kvp_table has no row for {target:g} kV (rows: "
                         f"{', '.join(f'{k:g}' for k in sorted(sc.kvp_table)) or 'none'})")
