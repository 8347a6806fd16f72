"""A case's settings, resolved once: the run's config with the case's own calibration.

One precedence rule, value by value, for the mass calibration factor c and the calibration's
water HU: the manifest's value (a non-empty cell of the case's row) wins over the first
``scoring.calibration_table`` entry that matches the series' header (Manufacturer,
ManufacturerModelName, KVP), which wins over the config's ``scoring`` value. Every other key
is the run's config. :func:`resolve_settings` is the only place this is decided; the case path
calls it once per case.
"""

from __future__ import annotations

from ..records import ScanMeta
from .schema import Config


def resolve_settings(config: Config, *, calibration: float | None = None,
                     water_hu: float | None = None, meta: ScanMeta | None = None) -> Config:
    """The config a case is scored with. ``calibration`` and ``water_hu`` are the manifest's
    values (None = not given); ``meta`` is the series' header (None before it was read, e.g.
    for a case that failed to load: then no calibration_table entry can match)."""
    sc = config.scoring
    if meta is not None and sc.calibration_table:
        sc = sc.for_scanner(meta.manufacturer, meta.model, meta.kvp)
    update = {k: v for k, v in (("mass_calibration_mg_per_cm3_per_hu", calibration),
                                ("calibration_water_hu", water_hu)) if v is not None}
    if update:
        sc = sc.model_copy(update=update)
    if sc is config.scoring:
        return config
    return config.model_copy(update={"scoring": sc})
