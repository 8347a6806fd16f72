"""The calcium threshold for the energy a spectral (or any) image represents, and the series
that are never scored (``scoring.energy_threshold``, ``scoring.vnc``).

The rules and their sources are in :mod:`vascalc.core.spectral`; this module applies them to
one scan's header facts (:class:`vascalc.records.ScanMeta`). The density-weight bands move with
the threshold by the same ratio (the physics model is linear in density, so the density at
which a band starts at 120 kVp reads that ratio higher or lower); the threshold itself is the
published number under ``table``.
"""

from __future__ import annotations

from ..core.spectral import (
    GRAENI_2018,
    MERGEN_2023_KEV,
    REFERENCE_HU,
    energy_label,
    physics_threshold,
    table_threshold,
)
from ..core.thresholds import Thresholds
from ..errors import SpectralMapError, ThresholdError, VNCRefusedError
from ..records import ScanMeta
from .schema import ScoringConfig

#: kinds whose pixels are not HU calcium can be scored on (vascalc.io.spectral_kinds)
NOT_SCORED = {"iodine_map": "an iodine map (iodine density, not HU)",
              "material_map": "a material map (material density, fraction, effective Z or "
                              "electron density, not HU)",
              "calcium_suppressed": "a calcium-suppressed image (its calcium was removed)"}


def refuse_unscorable(meta: ScanMeta, *, vnc: str, path: str | None = None) -> None:
    """Raise for a series calcium is never scored on (a map that is not HU, a calcium-suppressed
    image), and for a VNC series under ``scoring.vnc: refuse``. io calls it on the header,
    before any pixel is read or checked as HU; analyse again on every volume."""
    desc = f" ('{meta.series_description}')" if meta.series_description else ""
    if meta.series_kind in NOT_SCORED:
        what = NOT_SCORED[meta.series_kind]
        held = f", holding {meta.material}" if meta.material else ""
        raise SpectralMapError(f"the series{desc} is {what}{held}, read from its "
                               f"{meta.series_kind_source or 'header'}: not scored as HU",
                               path=path)
    if meta.series_kind == "vnc" and vnc == "refuse":
        raise VNCRefusedError(f"the series{desc} is a virtual non-contrast image "
                              "(scoring.vnc: refuse)", path=path)


def beam(meta: ScanMeta) -> tuple[str, float | None, float]:
    """('kev', keV, 0) for a virtual monoenergetic image, else ('kvp', header KVP, tin mm)."""
    if meta.series_kind == "vmi":
        return "kev", meta.energy_kev, 0.0
    return "kvp", meta.kvp, meta.tin_filter_mm


def resolve_energy(sc: ScoringConfig, meta: ScanMeta) -> Thresholds | None:
    """The thresholds of ``scoring.energy_threshold`` for this scan, or None under ``fixed``
    (then :func:`vascalc.config.thresholds.resolve` applies the config's own rules).

    Raises
    ------
    SpectralMapError, VNCRefusedError
        The series is never scored (see :func:`refuse_unscorable`).
    ThresholdError
        The header gives no energy, or the rule has no threshold for it.
    """
    refuse_unscorable(meta, vnc=sc.vnc)
    rule = sc.energy_threshold
    if rule == "fixed":
        return None
    kind, energy, tin = beam(meta)
    if kind == "kvp" and not tin and energy is not None and abs(energy - 120.0) <= 0.5:
        energy = 120.0  # a header's 119.9 kVp is the reference voltage
    what = meta.series_kind or "conventional"
    if energy is None:
        raise ThresholdError(f"scoring.energy_threshold: {rule} needs the energy of this {what} "
                             f"series, and its header gives no {'keV' if kind == 'kev' else 'KVP'}")
    label = energy_label(kind, energy, tin_mm=tin)
    if rule == "table":
        thr = table_threshold(kind, energy, tin_mm=tin)
        if thr is None:
            rows = ", ".join([f"{k:g} kV" for k in GRAENI_2018]
                             + [f"{k:g} keV" for k in MERGEN_2023_KEV])
            raise ThresholdError(f"scoring.energy_threshold: table has no published threshold "
                                 f"for {label} (rows: {rows})", hint="set scoring."
                                 "energy_threshold: physics, or score a series at a listed energy")
        ratio = thr / REFERENCE_HU
    else:
        try:
            thr = physics_threshold(kind, energy, tin_mm=tin, reference_hu=sc.threshold_hu)
        except ValueError as err:
            raise ThresholdError(f"scoring.energy_threshold: physics: {err}",
                                 hint="score a series inside the table's range") from None
        ratio = thr / sc.threshold_hu
    w = sc.density_weight_hu
    bands = (thr, w[1] * ratio, w[2] * ratio, w[3] * ratio)
    return Thresholds(round(thr, 1), tuple(round(b, 1) for b in bands),  # type: ignore[arg-type]
                      f"energy_{rule}:{label.replace(' ', '')}")


def spectral_flags(meta: ScanMeta, sc: ScoringConfig, *, adapted: bool) -> list[str]:
    """The spectral quality flags of a scored series (codes of :mod:`vascalc.flags`):
    vnc_underscores on a VNC, spectral_mixed_energy on a blended pair image, and
    spectral_fixed_threshold on a VMI (other than 70 keV) or a tin-filtered beam scored at the
    fixed threshold."""
    out = []
    if meta.series_kind == "vnc":
        out.append("vnc_underscores")
    if meta.series_kind == "mixed":
        out.append("spectral_mixed_energy")
    off_keV = meta.series_kind == "vmi" and (meta.energy_kev is None
                                             or table_threshold("kev", meta.energy_kev) is None)
    if not adapted and (off_keV or meta.tin_filter_mm > 0):
        out.append("spectral_fixed_threshold")
    return out
