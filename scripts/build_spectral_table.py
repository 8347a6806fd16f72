"""Build vascalc's spectral physics table (``pipeline/vascalc/core/spectral_table.py``).

Run by hand, never at run time: ``pip install -e ".[physics]"`` then
``python scripts/build_spectral_table.py``. The table it writes is committed; vascalc reads
only that table, so the runtime needs neither package.

Model (first order, one energy-weighted effective attenuation per beam)
----------------------------------------------------------------------
- Attenuation: xraydb (Elam, Ravel & Sieber, Radiat Phys Chem 2002; total cross-sections
  including coherent scattering, close to NIST XCOM, Berger et al.) for water (H2O,
  1.0 g/cm3), hydroxyapatite (Ca10(PO4)6(OH)2, 3.16 g/cm3), iodine (per mg/mL added to water,
  no volume) and blood (ICRU Report 44 adult blood, 1.06 g/cm3).
- Tube spectra: SpekPy v2 (Poludniowski et al., Med Phys 2021; Bujila et al., Phys Med 2020)
  for a tungsten anode at 12 degrees, 6 mm Al total filtration (inherent filtration and the
  bowtie's centre as one equivalent, a choice: from 3 to 9 mm Al the thresholds move by less
  than 1 HU) and, for tin-filtered beams, 0.6 mm Sn added (Siemens Force Sn100/Sn150).
- Patient: 20 cm of water hardens the beam; an energy-integrating detector weights each
  photon by its energy: w(E) = N(E) E exp(-mu_water(E) 20 cm).
- HU of a material in a beam = 1000 (sum w mu_m / sum w mu_water - 1). Virtual monoenergetic
  images (keV rows) are the monoenergetic limit: no spectrum.

Limits: no beam hardening by the insert itself, no scatter, no detector response other than
energy weighting, no vendor's VMI algorithm (a VMI is taken as the ideal monoenergetic image).
The kVp rows reproduce Graeni et al. 2018 (207/177/145/130/119 HU at 70/80/100/120/135 kVp)
within 4 HU (tests/test_spectral_physics.py checks it).
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np

HA = "Ca10(PO4)6(OH)2"
HA_DENSITY = 3.16  # g/cm3, hydroxyapatite (bulk)
BLOOD_DENSITY = 1.06  # g/cm3, ICRU Report 44
#: ICRU Report 44 adult blood, mass fractions (%)
BLOOD_MASS_PCT = {"H": 10.2, "C": 11.0, "N": 3.3, "O": 74.5, "Na": 0.1, "P": 0.1, "S": 0.2,
                  "Cl": 0.3, "K": 0.2, "Fe": 0.1}
AL_MM, SN_MM, WATER_CM, ANODE_DEG = 6.0, 0.6, 20.0, 12.0
OUT = Path(__file__).resolve().parents[1] / "pipeline" / "vascalc" / "core" / "spectral_table.py"


def _mu(material: str, kev: np.ndarray, density: float) -> np.ndarray:
    import xraydb
    return np.asarray(xraydb.material_mu(material, kev * 1e3, density=density))


def _blood_mu(kev: np.ndarray) -> np.ndarray:
    import xraydb
    total = np.zeros_like(kev)
    for el, pct in BLOOD_MASS_PCT.items():
        total += pct / 100.0 * np.asarray(xraydb.mu_elam(el, kev * 1e3))  # cm2/g
    return total * BLOOD_DENSITY


def _weights(kvp: float, tin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    import spekpy
    s = spekpy.Spek(kvp=kvp, th=ANODE_DEG, dk=0.5)
    s.filter("Al", AL_MM)
    if tin_mm:
        s.filter("Sn", tin_mm)
    k, n = s.get_spectrum()
    keep = k >= 10.0
    k, n = k[keep], n[keep]
    w = n * k * np.exp(-_mu("H2O", k, 1.0) * WATER_CM)
    return k, w / w.sum()


def _row(k: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    mw = float((w * _mu("H2O", k, 1.0)).sum())
    ha = 1000.0 * (float((w * _mu(HA, k, HA_DENSITY)).sum()) / mw - 1.0)
    iodine = 1000.0 * float((w * _mu("I", k, 1e-3)).sum()) / mw  # HU per mg I/mL
    blood = 1000.0 * (float((w * _blood_mu(k)).sum()) / mw - 1.0)
    return round(ha, 2), round(iodine, 4), round(blood, 2)


def build() -> str:
    import spekpy
    import xraydb
    rows: list[str] = []
    for kev in range(40, 151):
        k = np.array([float(kev)])
        rows.append(f'    ("kev", {kev}.0, 0.0, *{_row(k, np.ones(1))}),')
    for kvp in range(60, 151):
        rows.append(f'    ("kvp", {kvp}.0, 0.0, *{_row(*_weights(kvp, 0.0))}),')
    for kvp in range(100, 151, 10):
        rows.append(f'    ("kvp", {kvp}.0, {SN_MM}, *{_row(*_weights(kvp, SN_MM))}),')
    head = f'''"""Spectral physics table, written by scripts/build_spectral_table.py: do not edit.

Built {datetime.date.today().isoformat()} with xraydb {xraydb.__version__} and SpekPy \
{spekpy.__version__}, Python {sys.version.split()[0]}.
Each row: (beam, energy, tin_mm, ha_hu, iodine_hu_per_mg_ml, blood_hu) where beam is 'kev'
(a virtual monoenergetic image at that keV) or 'kvp' (a tungsten tube at that kV, 6 mm Al,
with tin_mm of tin added; after 20 cm of water, energy-weighted); ha_hu is the HU of bulk
hydroxyapatite (3.16 g/cm3), iodine_hu_per_mg_ml the HU added by 1 mg iodine per mL of water,
blood_hu the HU of ICRU-44 blood (1.06 g/cm3). Sources and limits: the script's docstring.
"""

ROWS: tuple[tuple[str, float, float, float, float, float], ...] = (
'''
    return head + "\n".join(rows) + "\n)\n"


if __name__ == "__main__":
    OUT.write_text(build())
    print(f"wrote {OUT}")
