"""The calcium threshold and density-weight bands of one scan, as a record (pure).

Where the numbers come from (the config, its kVp table or a density through the calibration)
is decided by :func:`vascalc.config.thresholds.resolve`; the core only uses the record.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """The HU at which calcium starts and at which density weights 1-4 start, and their source."""

    threshold_hu: float
    weight_hu: tuple[float, float, float, float]
    source: str  # config | kvp_table:<kV> | calibration:<mg>mg_ha_cm3 | lumen_adaptive:<region>
