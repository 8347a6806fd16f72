"""The spectral columns of a scans row: what series was scored, at what energy, by which
threshold rule (docs, 'Spectral CT'; registered in :mod:`vascalc.results.columns`)."""

from __future__ import annotations

from typing import Any

from ..core.spectral import energy_label
from ..records import ScanResult


def spectral_columns(r: ScanResult) -> dict[str, Any]:
    """series_kind, series_kind_source, energy_kev, energy_label and energy_threshold_rule of
    a scored series; a result without a header (NIfTI) is 'conventional' with no source.

    >>> from vascalc.records import ScanMeta
    >>> from types import SimpleNamespace
    >>> r = SimpleNamespace(meta=ScanMeta(series_kind="vmi", energy_kev=70.0, kvp=140.0),
    ...                     settings={"threshold_source": "energy_table:70keV"})
    >>> spectral_columns(r)["energy_label"], spectral_columns(r)["energy_threshold_rule"]
    ('70 keV', 'table')
    """
    m = r.meta
    source = str(r.settings.get("threshold_source", ""))
    rule = source.split(":")[0].removeprefix("energy_") if source.startswith("energy_") \
        else str(r.settings.get("energy_threshold", "fixed"))
    vmi = m.series_kind == "vmi"
    return {"series_kind": m.series_kind or "conventional",
            "series_kind_source": m.series_kind_source,
            "energy_kev": m.energy_kev,
            "energy_label": energy_label("kev" if vmi else "kvp", m.energy_kev if vmi else m.kvp,
                                         tin_mm=0.0 if vmi else m.tin_filter_mm),
            "energy_threshold_rule": rule}
