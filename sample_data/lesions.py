"""Digital calcified lesions of known size and density, rendered at clinical CT geometries.

A lesion is a sphere of diameter ``diameter_mm`` whose HU lies ``contrast_hu`` above a
uniform background (``background_hu``). It is rendered at a geometry (slice thickness,
increment, pixel size) with its centre at a random position within one voxel (the random
slice start and in-plane grid position of a real acquisition): each voxel takes the fraction
of the sphere inside its slice profile (a rectangle of the slice thickness along z, the pixel
in plane), found by supersampling, then an in-plane Gaussian blur (the scanner's in-plane
point spread, ``blur_mm`` standard deviation) and white Gaussian noise of ``noise_hu``.

Truth, from the geometry: volume = pi d^3 / 6 (mm3); calcium mass above the background =
c x contrast x volume / 1000 (mg) for a calibration c in mg/(cm3 HU). Everything here is made
up: no patient data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """A clinical reconstruction: slice thickness and increment, pixel size (mm)."""

    thickness_mm: float = 3.0
    increment_mm: float = 3.0
    pixel_mm: float = 0.5


@dataclass(frozen=True)
class Lesion:
    """A sphere ``diameter_mm`` across, ``contrast_hu`` above the background."""

    diameter_mm: float
    contrast_hu: float

    @property
    def volume_mm3(self) -> float:
        return float(np.pi * self.diameter_mm ** 3 / 6.0)

    def mass_mg(self, calibration_mg_per_cm3_per_hu: float) -> float:
        return calibration_mg_per_cm3_per_hu * self.contrast_hu * self.volume_mm3 / 1000.0


def render(lesion: Lesion, geometry: Geometry, rng: np.random.Generator, *,
           background_hu: float = 40.0, noise_hu: float = 20.0, blur_mm: float = 0.4,
           field_mm: float = 16.0, supersample: int = 5) -> np.ndarray:
    """One acquisition (slice, row, col) of ``lesion`` at ``geometry`` with a random start,
    as float64 HU; deterministic for the generator's state."""
    from scipy import ndimage  # lazy: only rendering needs it

    g = geometry
    n_sl = int(np.ceil((field_mm + g.thickness_mm) / g.increment_mm)) + 2
    n_px = int(np.ceil(field_mm / g.pixel_mm))
    centre = (np.array([n_sl * g.increment_mm, n_px * g.pixel_mm, n_px * g.pixel_mm]) / 2.0
              + rng.uniform(-0.5, 0.5, 3) * np.array([g.increment_mm, g.pixel_mm, g.pixel_mm]))
    r2 = (lesion.diameter_mm / 2.0) ** 2
    k = supersample
    # sub-sample offsets inside a voxel: z across the slice thickness, row/col across the pixel
    oz = (np.arange(2 * k) + 0.5) / (2 * k) * g.thickness_mm - g.thickness_mm / 2.0
    op = (np.arange(k) + 0.5) / k * g.pixel_mm - g.pixel_mm / 2.0
    zc = np.arange(n_sl) * g.increment_mm + g.increment_mm / 2.0
    pc = np.arange(n_px) * g.pixel_mm + g.pixel_mm / 2.0
    dz = (zc[:, None] + oz[None, :] - centre[0]) ** 2  # (slices, sub)
    dr = (pc[:, None] + op[None, :] - centre[1]) ** 2  # (rows, sub)
    dc = (pc[:, None] + op[None, :] - centre[2]) ** 2  # (cols, sub)
    inside = (dz[:, None, None, :, None, None] + dr[None, :, None, None, :, None]
              + dc[None, None, :, None, None, :]) <= r2
    frac = inside.mean(axis=(3, 4, 5))
    frac = ndimage.gaussian_filter(frac, sigma=(0.0, blur_mm / g.pixel_mm, blur_mm / g.pixel_mm))
    return background_hu + lesion.contrast_hu * frac + rng.normal(0.0, noise_hu, frac.shape)
