"""Digital calcium phantoms with truth computed by hand from their geometry.

A phantom is a body (soft tissue and fat, with noise that never reaches 130 HU), an aorta
lumen, a spine, and calcified objects that are axis-aligned boxes of constant HU (optionally
with a denser core). Because every object is a box separated from every other by at least
two voxels, each kept object is exactly one 3-D lesion, and its Agatston score, volume and
mass follow from arithmetic on the box sizes, which :func:`truth` does without any labelling.
No patient data: everything here is made up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

THRESHOLD_HU = 130.0
WEIGHT_BANDS = (130.0, 200.0, 300.0, 400.0)


@dataclass(frozen=True)
class Box:
    """Voxels [s0, s1) x [r0, r1) x [c0, c1) at ``hu``; an optional core at ``core_hu`` over
    ``core`` = (s0, s1, r0, r1, c0, c1), inside the box."""

    name: str
    kind: str  # plaque | coronary | speck | spine | subthreshold
    s0: int
    s1: int
    r0: int
    r1: int
    c0: int
    c1: int
    hu: float
    core: tuple[int, int, int, int, int, int] | None = None
    core_hu: float | None = None

    def grown(self, by: int = 1) -> "Box":
        """The same plaque one voxel longer in columns and one slice longer (timepoint 2)."""
        return replace(self, c1=self.c1 + by, s1=self.s1 + by)


@dataclass(frozen=True)
class Phantom:
    name: str
    shape: tuple[int, int, int]
    pixel_spacing_mm: tuple[float, float]
    increment_mm: float
    objects: tuple[Box, ...]
    seed: int = 0


def _weight(peak: float) -> int:
    return int(np.searchsorted(np.asarray(WEIGHT_BANDS), peak, side="right"))


def render(ph: Phantom) -> np.ndarray:
    """HU volume (float64) of the phantom, deterministic for its seed."""
    n, rows, cols = ph.shape
    rng = np.random.default_rng(ph.seed)
    rr, cc = np.mgrid[0:rows, 0:cols]
    cy, cx = rows / 2, cols / 2
    body = ((rr - cy) / (rows * 0.45)) ** 2 + ((cc - cx) / (cols * 0.47)) ** 2 <= 1.0
    inner = ((rr - cy) / (rows * 0.40)) ** 2 + ((cc - cx) / (cols * 0.42)) ** 2 <= 1.0
    vol = np.full(ph.shape, -1000.0)
    fat = body & ~inner
    noise = np.clip(np.rint(rng.normal(0.0, 12.0, ph.shape)), -40, 40)
    vol[:, fat] = -100.0
    vol[:, inner] = 40.0
    vol[:, body] += noise[:, body]  # soft tissue 0..80 HU, fat -140..-60 HU: never calcium
    # aorta lumen (blood, no contrast)
    lumen = (rr - rows * 0.62) ** 2 + (cc - cols * 0.45) ** 2 <= (rows * 0.08) ** 2
    vol[:, lumen] = 45.0
    for b in ph.objects:
        vol[b.s0:b.s1, b.r0:b.r1, b.c0:b.c1] = b.hu
        if b.core is not None:
            s0, s1, r0, r1, c0, c1 = b.core
            vol[s0:s1, r0:r1, c0:c1] = b.core_hu
    return vol


def check_separated(ph: Phantom) -> None:
    """Every pair of objects is at least two voxels apart along some axis (so no two are
    26-connected), and each lies inside the volume."""
    objs = ph.objects
    for b in objs:
        if not (0 <= b.s0 < b.s1 <= ph.shape[0] and 0 <= b.r0 < b.r1 <= ph.shape[1]
                and 0 <= b.c0 < b.c1 <= ph.shape[2]):
            raise ValueError(f"{ph.name}: object {b.name} leaves the volume")
    for i, a in enumerate(objs):
        for b in objs[i + 1:]:
            gap = max(b.s0 - a.s1, a.s0 - b.s1, b.r0 - a.r1, a.r0 - b.r1,
                      b.c0 - a.c1, a.c0 - b.c1)
            if gap < 1:
                raise ValueError(f"{ph.name}: objects {a.name} and {b.name} touch")


def truth(ph: Phantom, *, min_area_mm2: float = 1.0, reference_increment_mm: float = 3.0,
          calibration: float | None = None, kinds: tuple[str, ...] | None = None) -> dict:
    """Hand-computed scores of the calcium objects (optionally only some kinds).

    Per object and slice: area = rows x cols x pixel area; peak = core HU on the core's slices
    (when the core is inside that slice) else the box HU; weight from the peak; kept when the
    area reaches the minimum. Volume counts kept voxels; mass = c x sum(HU) x voxel volume.
    """
    dr, dc = ph.pixel_spacing_mm
    px = dr * dc
    vv = px * ph.increment_mm
    scale = ph.increment_mm / reference_increment_mm
    out = {"agatston": 0.0, "volume_mm3": 0.0, "sum_hu": 0.0, "n_lesions": 0, "lesions": []}
    for b in ph.objects:
        if kinds is not None and b.kind not in kinds:
            continue
        if max(b.hu, b.core_hu or -np.inf) < THRESHOLD_HU:
            continue
        nr, nc = b.r1 - b.r0, b.c1 - b.c0
        area_px = nr * nc
        if area_px * px < min_area_mm2 * (1 - 1e-9):
            continue  # every slice of it is below the area limit
        ag = 0.0
        sum_hu = 0.0
        for s in range(b.s0, b.s1):
            peak = b.hu
            core_vox = 0
            if b.core is not None and b.core[0] <= s < b.core[1]:
                peak = max(b.hu, b.core_hu)
                core_vox = (b.core[3] - b.core[2]) * (b.core[5] - b.core[4])
            ag += area_px * px * _weight(peak) * scale
            sum_hu += (area_px - core_vox) * b.hu + core_vox * (b.core_hu or 0.0)
        nvox = area_px * (b.s1 - b.s0)
        lesion = {"name": b.name, "kind": b.kind, "agatston": ag, "volume_mm3": nvox * vv,
                  "n_voxels": nvox, "n_slices": b.s1 - b.s0, "sum_hu": sum_hu,
                  "peak_hu": max(b.hu, b.core_hu or -np.inf),
                  "mass_mg": None if calibration is None else calibration * sum_hu * vv / 1000}
        out["lesions"].append(lesion)
        out["agatston"] += ag
        out["volume_mm3"] += nvox * vv
        out["sum_hu"] += sum_hu
        out["n_lesions"] += 1
    out["mass_mg"] = None if calibration is None else calibration * out["sum_hu"] * vv / 1000
    return out


def aorta_plaques(rows: int, cols: int, n_slices: int) -> list[Box]:
    """Plaques around the aortic lumen: every density band, its edges, a dense core, a
    and specks under the 1 mm^2 limit (for 0.7 mm pixels)."""
    r, c = int(rows * 0.62), int(cols * 0.45)
    R = int(rows * 0.08) + 1  # wall just outside the lumen
    z = max(1, n_slices // 20)
    objs = [
        Box("band1_150", "plaque", 2 * z, 2 * z + 3, r - R - 3, r - R, c - 6, c - 3, 150),
        Box("band2_250", "plaque", 2 * z, 2 * z + 2, r - R - 3, r - R, c + 2, c + 5, 250),
        Box("band3_350", "plaque", 6 * z, 6 * z + 4, r + R, r + R + 4, c - 2, c + 2, 350),
        Box("band4_600", "plaque", 9 * z, 9 * z + 2, r - 2, r + 1, c + R, c + R + 3, 600),
        Box("edge_130", "plaque", 12 * z, 12 * z + 2, r - 2, r + 1, c - R - 3, c - R, 130),
        Box("edge_199", "plaque", 12 * z, 12 * z + 2, r - R - 3, r - R, c - 2, c + 1, 199),
        Box("edge_200", "plaque", 12 * z, 12 * z + 2, r + R, r + R + 3, c - 2, c + 1, 200),
        Box("edge_400", "plaque", 12 * z, 12 * z + 2, r - 2, r + 1, c + R, c + R + 3, 400),
        Box("below_129", "subthreshold", 15 * z, 15 * z + 2, r - 2, r + 1, c + R, c + R + 3, 129),
        # rim of 250 HU with a 450 HU core on its middle slices only: the per-slice peak rule
        Box("cored_250_450", "plaque", 15 * z, 15 * z + 4, r + R, r + R + 4, c - 2, c + 2, 250,
            core=(15 * z + 1, 15 * z + 3, r + R + 1, r + R + 2, c - 1, c), core_hu=450),
        # 3 pixels of 0.49 mm^2 = 1.47 mm^2: kept; 2 pixels = 0.98 mm^2 and 1 pixel: dropped
        Box("tiny_3px", "plaque", 18 * z, 18 * z + 1, r - R - 1, r - R, c - 1, c + 2, 320),
        Box("speck_2px", "speck", 18 * z, 18 * z + 1, r + R + 2, r + R + 3, c - 1, c + 1, 500),
        Box("speck_1px", "speck", 18 * z, 18 * z + 1, r - 1, r, c + R + 2, c + R + 3, 900),
    ]
    return objs


def spine(rows: int, cols: int, n_slices: int) -> Box:
    return Box("spine", "spine", 0, n_slices, int(rows * 0.78), int(rows * 0.88),
               int(cols * 0.44), int(cols * 0.56), 700)


def coronary(rows: int, cols: int, n_slices: int) -> Box:
    z = max(1, n_slices // 20)
    return Box("coronary_lad", "coronary", 18 * z, 18 * z + 2, int(rows * 0.30),
               int(rows * 0.30) + 2, int(cols * 0.60), int(cols * 0.60) + 2, 420)


def aorta_region(ph: Phantom, radius_px: int = 17) -> np.ndarray:
    """A mask of the aorta with its wall: a disc around the lumen centre on every slice, wide
    enough to hold every aortic plaque whole and clear of the spine (both checked)."""
    n, rows, cols = ph.shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    disc = (rr - rows * 0.62) ** 2 + (cc - cols * 0.45) ** 2 <= radius_px ** 2
    mask = np.broadcast_to(disc, ph.shape).copy()
    for b in ph.objects:
        inside = mask[b.s0:b.s1, b.r0:b.r1, b.c0:b.c1]
        if b.kind in ("plaque", "speck", "subthreshold") and not inside.all():
            raise ValueError(f"{ph.name}: plaque {b.name} is not inside the aorta region")
        if b.kind in ("spine", "coronary") and inside.any():
            raise ValueError(f"{ph.name}: {b.name} reaches into the aorta region")
    return mask


def box_region(ph: Phantom, kind: str, margin_px: int = 3) -> np.ndarray | None:
    """A box mask around the objects of ``kind`` (e.g. a coronary segment), or None."""
    objs = [b for b in ph.objects if b.kind == kind]
    if not objs:
        return None
    mask = np.zeros(ph.shape, dtype=bool)
    for b in objs:
        mask[max(b.s0 - 1, 0):b.s1 + 1, max(b.r0 - margin_px, 0):b.r1 + margin_px,
             max(b.c0 - margin_px, 0):b.c1 + margin_px] = True
    return mask


def vertebrae(ph: Phantom) -> list[tuple[str, Box]]:
    """The spine box cut at its middle slice into two vertebrae as TotalSegmentator names
    them: slices go up the body (z grows with the slice index), so the upper half is T12 and
    the lower half L1."""
    out = []
    for b in ph.objects:
        if b.kind == "spine":
            mid = (b.s0 + b.s1) // 2
            out += [("vertebrae_T12", replace(b, name="vertebrae_T12", s0=mid)),
                    ("vertebrae_L1", replace(b, name="vertebrae_L1", s1=mid))]
    return out
