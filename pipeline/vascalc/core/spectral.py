"""Spectral CT physics at run time: what one beam or virtual monoenergetic image makes of
hydroxyapatite, iodine and blood, and the calcium threshold equivalent to 130 HU at 120 kVp.

Everything here reads :data:`vascalc.core.spectral_table.ROWS`, written by
``scripts/build_spectral_table.py`` from xraydb cross-sections (Elam et al. 2002, close to NIST
XCOM) and SpekPy tungsten spectra (Poludniowski et al., Med Phys 2021), energy-weighted after
20 cm of water (the script's docstring gives the model and its limits). No physics package is
imported at run time.

Threshold rules (``scoring.energy_threshold``):

- ``fixed``: 130 HU whatever the energy (Agatston AS et al., J Am Coll Cardiol 1990).
- ``table``: the published kVp-specific thresholds 207/177/145/130/119 HU at 70/80/100/120/135
  kVp (Graeni C et al., AJR 2018;211:1-9, "kVp-adapted thresholds"), and 130 HU on a 70 keV
  virtual monoenergetic image of a photon-counting scanner (Mergen V et al., Radiol Cardiothorac
  Imaging 2023). Nothing else: another energy has no published row.
- ``physics``: the HU that the density giving 130 HU at 120 kVp gives at the image's energy,
  from the table above: any kVp 60-150, tin-filtered 100-150 kV, or VMI 40-150 keV.

Examples
--------
>>> round(physics_threshold("kvp", 80.0), 1), round(physics_threshold("kev", 70.0), 1)
(180.2, 119.6)
>>> table_threshold("kvp", 100.0)
145.0
"""

from __future__ import annotations

import bisect
import math

from .spectral_table import ROWS

#: reference: the calcium threshold at 120 kVp (Agatston 1990)
REFERENCE_HU = 130.0
REFERENCE_KVP = 120.0
#: bulk density of hydroxyapatite, mg/cm3 (the table's ha_hu is for this density)
HA_DENSITY_MG_CM3 = 3160.0
#: tin filtration assumed for a tin-filtered beam (Siemens SOMATOM Force, 0.6 mm Sn)
TIN_MM = 0.6
#: Graeni C et al., AJR 2018: kVp -> threshold (HU) that keeps Agatston comparable
GRAENI_2018: dict[float, float] = {70.0: 207.0, 80.0: 177.0, 100.0: 145.0, 120.0: 130.0,
                                   135.0: 119.0}
#: Mergen V et al., Radiol Cardiothorac Imaging 2023: photon-counting CT at 70 keV, 130 HU
MERGEN_2023_KEV: dict[float, float] = {70.0: 130.0}
RULE_SOURCES: dict[str, str] = {
    "fixed": "Agatston et al., JACC 1990 (130 HU, defined at 120 kVp)",
    "table": "Graeni et al., AJR 2018 (kVp rows); Mergen et al., Radiol Cardiothorac Imaging "
             "2023 (70 keV VMI)",
    "physics": "first-order model: xraydb attenuation, SpekPy spectra, 20 cm water "
               "(scripts/build_spectral_table.py)",
}
_TOL = 0.5


def _series(beam: str, tin_mm: float) -> list[tuple[float, float, float, float]]:
    return sorted((e, ha, io, bl) for b, e, t, ha, io, bl in ROWS
                  if b == beam and abs(t - tin_mm) < 1e-6)


def beam_values(beam: str, energy: float, *, tin_mm: float = 0.0) -> tuple[float, float, float]:
    """(HU of bulk hydroxyapatite, HU per mg iodine/mL, HU of blood) for a beam: ``beam``
    'kvp' (tube voltage ``energy`` kV, ``tin_mm`` of tin added) or 'kev' (a virtual
    monoenergetic image at ``energy`` keV), linearly interpolated in the table.

    Raises
    ------
    ValueError
        The energy is outside the table (kVp 60-150, tin 100-150 kV, keV 40-150).
    """
    rows = _series(beam, tin_mm if beam == "kvp" else 0.0)
    if not rows or not math.isfinite(energy):
        raise ValueError(f"no physics rows for beam {beam!r} with {tin_mm:g} mm tin")
    xs = [r[0] for r in rows]
    unit = "keV" if beam == "kev" else "kV"
    if not xs[0] - _TOL <= energy <= xs[-1] + _TOL:
        raise ValueError(f"{energy:g} {unit} is outside the physics table "
                         f"({xs[0]:g}-{xs[-1]:g} {unit})")
    e = min(max(energy, xs[0]), xs[-1])
    i = min(max(bisect.bisect_left(xs, e), 1), len(xs) - 1)
    a, b = rows[i - 1], rows[i]
    f = (e - a[0]) / (b[0] - a[0])
    return tuple(a[k] + f * (b[k] - a[k]) for k in (1, 2, 3))  # type: ignore[return-value]


def physics_threshold(beam: str, energy: float, *, tin_mm: float = 0.0,
                      reference_hu: float = REFERENCE_HU) -> float:
    """The HU at ``energy`` of the hydroxyapatite density that reads ``reference_hu`` at
    120 kVp: reference_hu x ha_hu(energy) / ha_hu(120 kVp) (the model is linear in density)."""
    ref = beam_values("kvp", REFERENCE_KVP)[0]
    return reference_hu * beam_values(beam, energy, tin_mm=tin_mm)[0] / ref


def table_threshold(beam: str, energy: float, *, tin_mm: float = 0.0) -> float | None:
    """The published threshold for this energy (Graeni 2018 kVp rows, Mergen 2023 at 70 keV),
    or None when no publication gives one (tin-filtered beams included)."""
    table = MERGEN_2023_KEV if beam == "kev" else GRAENI_2018 if tin_mm == 0 else {}
    return next((hu for e, hu in table.items() if abs(e - energy) <= _TOL), None)


def energy_label(beam: str, energy: float | None, *, tin_mm: float = 0.0) -> str:
    """How a row names the energy: '70 keV', 'Sn150 kV', '80 kV', or '' when unknown.

    >>> energy_label("kev", 70.0), energy_label("kvp", 150.0, tin_mm=0.6)
    ('70 keV', 'Sn150 kV')
    """
    if energy is None:
        return ""
    if beam == "kev":
        return f"{energy:g} keV"
    return f"Sn{energy:g} kV" if tin_mm else f"{energy:g} kV"
