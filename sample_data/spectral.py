"""Spectral phantoms with known truth: QRM-like hydroxyapatite inserts in water or in blood
with iodine, rendered from vascalc's spectral physics table at any kVp, tin-filtered kV or
virtual monoenergetic keV, with blur and noise, and written as DICOM series carrying the
spectral headers of each vendor convention (:data:`SERIES`).

The physics is the first-order model of ``scripts/build_spectral_table.py`` (xraydb
attenuation, SpekPy spectra, 20 cm water): a voxel holding a fraction f of an insert reads
(1 - f) HU_background + f HU_insert, where the insert is hydroxyapatite at density rho (mg/cm3)
in a water-equivalent base, HU_insert = rho / 3160 x HU(bulk HA) (QRM inserts: HA in
water-equivalent resin). Blur is Gaussian (FWHM in mm), noise Gaussian white (SD in HU), from
a seeded generator. What the generator does not model: beam hardening by the inserts, scatter,
noise texture, a vendor's VMI or VNC algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from vascalc.core.spectral import HA_DENSITY_MG_CM3, beam_values, physics_threshold

from .dicom_writer import SeriesSpec, write_series

#: the density (mg HA/cm3) that reads 130 HU at 120 kVp in this physics: the threshold's truth
RHO_130 = 130.0 * HA_DENSITY_MG_CM3 / beam_values("kvp", 120.0)[0]

#: vendor conventions: name -> (expected series_kind, SeriesDescription, extra header elements)
SERIES: dict[str, tuple[str, str, dict]] = {
    "dicom_vmi": ("vmi", "Heart 70", {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "VMI"],
                                      "MonoenergeticEnergyEquivalent": 70.0}),
    "dicom_iodine": ("iodine_map", "Iodine", {"ImageType": ["DERIVED", "PRIMARY", "AXIAL",
                                                            "MAT_SPECIFIC"]}),
    "dicom_vnc": ("vnc", "Heart", {"ImageType": ["DERIVED", "PRIMARY", "AXIAL",
                                                 "MAT_REMOVED"]}),
    "dicom_zeff": ("material_map", "Heart", {"ImageType": ["DERIVED", "PRIMARY", "AXIAL",
                                                           "EFF_ATOMIC_NUM"]}),
    "dicom_mixed": ("mixed", "Heart", {"MultienergyCTAcquisition": "YES"}),
    "siemens_vmi": ("vmi", "Cardiac MonoE 70keV", {}),
    "siemens_monoplus": ("vmi", "Mono+ 50 keV Qr40", {}),
    "siemens_vnc": ("vnc", "Liver VNC 1.0 Qr40", {}),
    "siemens_vni": ("vnc", "VNI 70keV Qr36", {}),
    "siemens_purecalcium": ("vnc", "PureCalcium 3.0 Qr36", {}),
    "siemens_iodine": ("iodine_map", "Iodine 1.0 Qr40", {}),
    "siemens_low": ("low_kv", "Heart DE 0.75 Qr40 A_80kV", {}),
    "siemens_high": ("high_kv", "Heart DE 0.75 Qr40 B_Sn150kV", {}),
    "siemens_mixed": ("mixed", "Heart DE Mixed 0.6", {}),
    "philips_monoe": ("vmi", "MonoE 70 keV", {}),
    "philips_vnc": ("vnc", "VNC", {}),
    "philips_iodine": ("iodine_map", "Iodine density", {}),
    "philips_iodine_no_water": ("iodine_map", "Iodine no water", {}),
    "philips_zeff": ("material_map", "Z effective", {}),
    "philips_ed": ("material_map", "Electron density", {}),
    "philips_casupp": ("calcium_suppressed", "Calcium suppressed 50", {}),
    "philips_sbi": ("mixed", "SBI", {}),
    "ge_mono": ("vmi", "Monochromatic 70keV", {}),
    "ge_vue": ("vnc", "VUE", {}),
    "ge_iodine": ("iodine_map", "Iodine(Water)", {}),
    "ge_water": ("material_map", "Water(Iodine)", {}),
    "ge_zeff": ("material_map", "Effective Z", {}),
    "canon_vmi": ("vmi", "Spectral 70keV", {}),
    "canon_vnc": ("vnc", "VNC", {}),
    "canon_iodine": ("iodine_map", "Iodine map", {}),
    "conventional": ("conventional", "Calcium score 3.0 Qr36", {}),
    "conventional_cta": ("conventional", "CTA with iodine contrast", {}),
}


@dataclass(frozen=True)
class Beam:
    """What an image represents: 'kvp' (a tube at ``energy`` kV, ``tin_mm`` of tin added) or
    'kev' (a virtual monoenergetic image at ``energy`` keV)."""

    kind: str
    energy: float
    tin_mm: float = 0.0

    def values(self) -> tuple[float, float, float]:
        return beam_values(self.kind, self.energy, tin_mm=self.tin_mm)

    def threshold_truth(self) -> float:
        """The HU that RHO_130 reads at this beam (the generator's truth of the threshold)."""
        return RHO_130 / HA_DENSITY_MG_CM3 * self.values()[0]


def background_hu(beam: Beam, *, medium: str, iodine_mg_ml: float) -> float:
    """HU of the medium: water (0 HU) or blood, plus iodine at ``iodine_mg_ml``."""
    ha, io, blood = beam.values()
    return (blood if medium == "blood" else 0.0) + iodine_mg_ml * io


def insert_hu(beam: Beam, density_mg_cm3: float) -> float:
    """HU of an insert of ``density_mg_cm3`` HA in a water-equivalent base."""
    return density_mg_cm3 / HA_DENSITY_MG_CM3 * beam.values()[0]


def occupancy(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
              centre_mm: tuple[float, float, float], diameter_mm: float,
              length_mm: float | None = None, *, sub: int = 4) -> np.ndarray:
    """Fraction of each voxel inside a cylinder along z (diameter and length in mm; QRM
    inserts are as long as wide), by ``sub`` x ``sub`` x ``sub`` supersampling."""
    length = diameter_mm if length_mm is None else length_mm
    axes = []
    for n, d, c in zip(shape, spacing_mm, centre_mm):
        off = (np.arange(sub) + 0.5) / sub - 0.5
        axes.append(((np.arange(n)[:, None] + off[None, :]) * d - c).ravel())
    z, y, x = axes
    inz = (np.abs(z) <= length / 2).reshape(shape[0], sub).mean(axis=1)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    inr = (yy ** 2 + xx ** 2 <= (diameter_mm / 2) ** 2).astype(float)
    inr = inr.reshape(shape[1], sub, shape[2], sub).mean(axis=(1, 3))
    return inz[:, None, None] * inr[None, :, :]


def render(beam: Beam, inserts: list[tuple[tuple[float, float, float], float, float]], *,
           shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
           medium: str = "water", iodine_mg_ml: float = 0.0, fwhm_mm: float = 0.0,
           noise_hu: float = 0.0, seed: int = 0,
           lengths_mm: list[float] | None = None) -> np.ndarray:
    """HU volume of ``inserts`` ((centre_mm, diameter_mm, density_mg_cm3), each a cylinder
    as long as wide unless ``lengths_mm`` gives its length)
    in the medium, blurred (Gaussian of FWHM ``fwhm_mm``) and with white noise; the outer
    rows and columns are air (-1000 HU)."""
    bg = background_hu(beam, medium=medium, iodine_mg_ml=iodine_mg_ml)
    hu = np.full(shape, bg)
    for i, (centre, diameter, density) in enumerate(inserts):
        f = occupancy(shape, spacing_mm, centre, diameter,
                      None if lengths_mm is None else lengths_mm[i])
        hu += f * (insert_hu(beam, density) - bg)
    if fwhm_mm > 0:
        sigma = [fwhm_mm / 2.3548 / d for d in spacing_mm]
        hu = ndimage.gaussian_filter(hu, sigma, mode="nearest")
    if noise_hu > 0:
        hu = hu + np.random.default_rng(seed).normal(0.0, noise_hu, shape)
    hu[:, [0, -1], :] = hu[:, :, [0, -1]] = -1000.0  # air around the phantom, as a CT has
    return hu


def write(folder: str | Path, hu: np.ndarray, *, convention: str, beam: Beam,
          spacing_mm: tuple[float, float, float], patient_id: str = "SPECTRAL",
          series_number: int = 2) -> list[Path]:
    """Write ``hu`` (rounded to integers) as a DICOM series with the headers of
    ``convention`` (a key of :data:`SERIES`); KVP is the beam's kV (120 for a VMI)."""
    _kind, description, extra = SERIES[convention]
    kvp = beam.energy if beam.kind == "kvp" else 120.0
    extra = dict(extra)
    if beam.tin_mm:
        extra["FilterMaterial"] = "TIN"
    spec = SeriesSpec(pixel_spacing_mm=spacing_mm[1:], increment_mm=spacing_mm[0],
                      thickness_mm=spacing_mm[0], kvp=kvp, series_description=description,
                      patient_id=patient_id, series_number=series_number, extra=extra,
                      seed=f"{convention}-{beam.kind}{beam.energy:g}")
    return write_series(folder, np.rint(hu), spec)


def threshold_check_phantom(beam: Beam) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 10 mm insert at RHO_130 in water, no blur or noise: its centre reads the generator's
    truth of the threshold at ``beam``. Returns (hu, spacing_mm)."""
    spacing = (1.0, 0.5, 0.5)
    shape = (16, 48, 48)
    hu = render(beam, [((8.0, 12.0, 12.0), 10.0, RHO_130)], shape=shape, spacing_mm=spacing)
    return hu, spacing


__all__ = ["Beam", "RHO_130", "SERIES", "background_hu", "insert_hu", "occupancy",
           "physics_threshold", "render", "threshold_check_phantom", "write"]


#: the spectral sample set (golden run sample_spectral): folder -> (convention, beam)
SAMPLE_SET: dict[str, tuple[str, Beam]] = {
    "S01_vmi70": ("siemens_vmi", Beam("kev", 70.0)),
    "S02_vmi50": ("siemens_monoplus", Beam("kev", 50.0)),
    "S03_low80": ("siemens_low", Beam("kvp", 80.0)),
    "S04_highSn150": ("siemens_high", Beam("kvp", 150.0, 0.6)),
    "S05_mixed": ("siemens_mixed", Beam("kvp", 120.0)),
    "S06_vnc": ("philips_vnc", Beam("kvp", 120.0)),
    "S07_iodine": ("philips_iodine", Beam("kvp", 120.0)),
    "S08_ge_water": ("ge_water", Beam("kvp", 120.0)),
}


def generate(root: str | Path) -> Path:
    """Write :data:`SAMPLE_SET` under ``root`` (one series per folder, one patient each): three
    inserts (3 and 5 mm at 200 and 400 mg HA/cm3, 5 mm at 800) in water, FWHM 0.8 mm, noise
    8 HU, 1 x 0.5 x 0.5 mm voxels."""
    root = Path(root)
    spacing = (1.0, 0.5, 0.5)
    inserts = [((6.0, 10.0, 10.0), 3.0, 200.0), ((6.0, 10.0, 22.0), 5.0, 400.0),
               ((6.0, 22.0, 16.0), 5.0, 800.0)]
    for i, (name, (conv, beam)) in enumerate(SAMPLE_SET.items()):
        hu = render(beam, inserts, shape=(12, 64, 64), spacing_mm=spacing, fwhm_mm=0.8,
                    noise_hu=8.0, seed=i)
        write(root / name, hu, convention=conv, beam=beam, spacing_mm=spacing,
              patient_id=f"S{i + 1:02d}", series_number=20 + i)
    return root
