"""Contrast found in the image itself (pure): the enhanced blood pool, without the header and
without region masks.

De-identification blanks ContrastBolusAgent (DICOM PS3.15 E.1, the Basic Application Level
Confidentiality Profile removes or empties it), so the header cannot be the only witness of
contrast. Iodinated contrast lifts the blood of the aorta, the heart chambers, the large veins
and the enhancing organs above anything unenhanced soft tissue reads: unenhanced blood reads
about 30 to 50 HU, rising with the haematocrit (New PFJ & Aronow S, "Attenuation measurements
of whole blood and blood fractions in computed tomography", Radiology 1976;121:635-640; the
left-ventricular cavity on unenhanced thoracic CT, Foster M et al., Can Assoc Radiol J
2003;54:26-30, where anaemia lowers it below about 35 HU); the aorta of a portal-venous body
CT reads about 150 to 200 HU (151 HU in the shared Siemens scan) and of a CT angiogram 250 to
500 HU (the 250 HU adequacy mark of ``contrast.arterial_lumen_hu``); an equilibrium or late
phase leaves blood and liver near 90 to 110 HU. This module finds that blood pool:

1. the HU are averaged over blocks of about 2 mm in plane (:data:`BLOCK_MM`), which lowers
   the noise by the block's side and keeps structures wider than a few millimetres;
2. blocks holding a voxel of :data:`DENSE_HU` or more are dense (cortical bone, calcium,
   metal) and never blood;
3. two bands are searched, each as 3-D connected components of blocks:

   - *enhanced*: blocks of 130 to 600 HU, in overlapping windows (:data:`ENHANCED_WINDOWS_HU`,
     so that a lumen is not joined to the bone it lies on), after an in-plane opening that
     cuts one-block bridges, whose component has a median of at least
     :data:`ENHANCED_HU` (150 HU: no unenhanced tissue reads so high; bone marrow does, and
     is told apart below), is homogeneous (robust spread of its blocks at most
     :data:`MAX_SPREAD_HU`: the cancellous bone and bone-equivalent plastics measured on the
     shared scans spread 39 to 176 HU, enhanced blood 4 to 21 HU: a narrow margin at the
     low end), thick (a point at least
     :data:`MIN_THICK_MM` from its edge in plane: a lumen, not the partial-volume shell of a
     dense structure), not enclosed by bone (at most :data:`MAX_BONY_SHARE` of its
     surrounding blocks dense or above its band) and at least :data:`MIN_VOLUME_CM3`;
   - *late*: blocks of 70 to 130 HU whose component has a median of at least :data:`LATE_HU`
     (85 HU), homogeneous, thick as a large vessel or a chamber (:data:`LATE_THICK_MM`) with
     round sections (:data:`MIN_ROUNDNESS`: costal cartilage, 86 to 117 HU in the shared
     unenhanced body CT, is a band), not enclosed by bone, at least :data:`LATE_VOLUME_CM3`,
     and whose own voxels
     reach the calcium threshold (its 99.9th percentile at or above it: a late lumen that
     cannot reach 130 HU adds nothing to a 130 HU score; the head phantom's 95 HU material
     stays below 117 HU).

The numbers 130-600, 700, 2 mm, the spreads, thicknesses, roundness and volumes are choices of this
project, checked against the shared real scans (a venous Siemens body CT is found; the
unenhanced TotalSegmentator body CT and the Philips head phantom are not) and the phantoms of
the tests; they are not a published method. A dense phantom material, an unenhanced organ
denser than 85 HU (amiodarone or iron in the liver) or a thyroid dense with its own iodine
can be taken for a late blood pool: the scan's 130 HU numbers are then withheld with the
reason, the conservative error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: in-plane block side for the averaging, mm
BLOCK_MM = 2.0
#: a block holding a voxel this dense is bone, calcium or metal, never blood
DENSE_HU = 700.0
#: the enhanced band: blocks in [BAND_LOW_HU, BAND_HIGH_HU), component median >= ENHANCED_HU
BAND_LOW_HU, BAND_HIGH_HU, ENHANCED_HU = 130.0, 600.0, 150.0
#: the enhanced band is searched in overlapping windows, so that a lumen is not joined to the
#: bone marrow it touches (the venous aorta of 151 HU lies on a vertebral body of 140-330 HU)
ENHANCED_WINDOWS_HU = ((130.0, 230.0), (180.0, 330.0), (280.0, 480.0), (430.0, 600.0))
#: the late band: blocks in [LATE_LOW_HU, BAND_LOW_HU), component median >= LATE_HU
LATE_LOW_HU, LATE_HU = 70.0, 85.0
MAX_SPREAD_HU = 35.0
MIN_THICK_MM = 3.0
LATE_THICK_MM = 5.0
MAX_BONY_SHARE = 0.3
MIN_VOLUME_CM3 = 5.0
LATE_VOLUME_CM3 = 5.0
#: tissue (voxels above -500 HU) a scan must hold for an absent blood pool to mean no contrast:
#: ten times the smallest blood pool looked for (a choice)
MIN_TISSUE_CM3 = 50.0
#: the late band's sections must be round as a vessel's (:func:`_roundness`)
MIN_ROUNDNESS = 0.5


_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = True


@dataclass(frozen=True, eq=False)
class BloodPool:
    """What the image says about contrast: ``phase`` is 'enhanced', 'late' or '' (none
    found), ``median_hu`` and ``volume_cm3`` describe the largest qualifying component, and
    ``mask`` (on the CT grid, None when nothing was found) holds every qualifying component;
    ``judged`` says whether the scan was large enough for 'nothing found' to count."""

    phase: str = ""
    median_hu: float | None = None
    volume_cm3: float = 0.0
    mask: np.ndarray | None = None
    #: whether the scan holds enough tissue (:data:`MIN_TISSUE_CM3`) for an absent blood pool
    #: to mean 'no contrast'; a smaller field of view says nothing either way
    judged: bool = False

    @property
    def found(self) -> bool:
        return bool(self.phase)

    def evidence(self) -> str:
        """The finding in words ('' when nothing was found)."""
        if not self.found:
            return ""
        kind = "enhanced" if self.phase == "enhanced" else "late-phase"
        return (f"{kind} blood pool in the image: {self.volume_cm3:.0f} cm3 at a median of "
                f"{self.median_hu:.0f} HU (no header needed)")


def find_blood_pool(hu: np.ndarray, spacing_mm, *, threshold_hu: float = 130.0) -> BloodPool:
    """The enhanced blood pool of a CT volume (the module's text). ``hu`` is not modified.

    Examples
    --------
    >>> hu = np.full((10, 64, 64), 40, dtype=np.int16)      # unenhanced soft tissue
    >>> find_blood_pool(hu, (3.0, 0.7, 0.7)).found
    False
    >>> yy, xx = np.mgrid[:64, :64]
    >>> hu[:, (yy - 32) ** 2 + (xx - 32) ** 2 <= 15 ** 2] = 350   # a lumen of 21 mm diameter
    >>> pool = find_blood_pool(hu, (3.0, 0.7, 0.7))
    >>> pool.phase, round(pool.median_hu)
    ('enhanced', 350)
    """
    from scipy import ndimage  # lazy: scipy, only for the passes that need it

    if hu.ndim != 3 or 0 in hu.shape:
        return BloodPool()
    dz, dy, dx = (float(s) for s in spacing_mm)
    judged = int(np.count_nonzero(hu > -500)) * dz * dy * dx / 1000.0 >= MIN_TISSUE_CM3
    f = max(1, int(round(BLOCK_MM / min(dy, dx))))
    n, rows, cols = hu.shape
    r2, c2 = rows // f * f, cols // f * f
    if r2 == 0 or c2 == 0:
        return BloodPool(judged=judged)
    mean, dense = _blocks(hu, f, r2, c2)
    block_cm3 = dz * dy * dx * f * f / 1000.0
    found: list[tuple[str, float, float, np.ndarray]] = []
    for phase, lo, hi in (*(("enhanced", a, b) for a, b in ENHANCED_WINDOWS_HU),
                          ("late", LATE_LOW_HU, BAND_LOW_HU)):
        if found and phase == "late":
            break  # the enhanced band is the stronger witness
        cand = (mean >= lo) & (mean < hi) & ~dense
        # cut the thin bridges of partial volume between a lumen and the bone beside it
        cand = ndimage.binary_opening(cand, _IN_PLANE)
        labels, count = ndimage.label(cand)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=count + 1) * block_cm3
        need = MIN_VOLUME_CM3 if phase == "enhanced" else LATE_VOLUME_CM3
        boxes = ndimage.find_objects(labels)
        for i in np.nonzero(sizes >= need)[0]:
            if i == 0:
                continue
            comp = _qualifies(hu, mean, dense, labels, int(i), boxes[i - 1], phase, hi, f,
                              (dz, dy * f, dx * f), threshold_hu)
            if comp is not None:
                found.append((phase, comp, float(sizes[i]), labels == i))
    if not found:
        return BloodPool(judged=judged)
    phase, med, vol, _ = max(found, key=lambda c: c[2])
    union = np.logical_or.reduce([c[3] for c in found])
    full = np.zeros(hu.shape, dtype=bool)
    full[:, :r2, :c2] = np.repeat(np.repeat(union, f, axis=1), f, axis=2)
    return BloodPool(phase=phase, median_hu=med, volume_cm3=vol, mask=full, judged=True)


def _roundness(comp: np.ndarray, thick: np.ndarray, block_mm) -> float:
    """The median over slices of pi r^2 / area, r the largest in-plane distance to the edge:
    about 1 for a vessel's round section, small for a band (cartilage) or a sheet."""
    area = comp.sum(axis=(1, 2)) * block_mm[1] * block_mm[2]
    r = thick.max(axis=(1, 2))
    ok = area > 0
    if not ok.any():
        return 0.0
    return float(np.median(np.pi * r[ok] ** 2 / area[ok]))


def _blocks(hu: np.ndarray, f: int, r2: int, c2: int) -> tuple[np.ndarray, np.ndarray]:
    """Block means (float32) and whether a block holds a dense voxel: f x f strided views
    added and compared in turn (no float copy of the whole scan)."""
    shape = (hu.shape[0], r2 // f, c2 // f)
    total = np.zeros(shape, dtype=np.float32)
    integral = hu.dtype.kind in "iu"
    top = np.full(shape, np.iinfo(hu.dtype).min if integral else -np.inf,
                  dtype=hu.dtype if integral else np.float64)
    for i in range(f):
        for j in range(f):
            view = hu[:, i:r2:f, j:c2:f]
            total += view
            np.maximum(top, view, out=top, casting="unsafe")
    return total / (f * f), top >= DENSE_HU


def _qualifies(hu, mean, dense, labels, i: int, sl, phase: str, hi: float, f: int,
               block_mm, threshold_hu: float) -> float | None:
    """The component's median HU when it is blood pool by the module's rules, else None."""
    from scipy import ndimage  # lazy: scipy, as above

    pad = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n))
                for s, n in zip(sl, labels.shape))
    comp = labels[pad] == i
    values = mean[pad][comp]
    med = float(np.median(values))
    if med < (ENHANCED_HU if phase == "enhanced" else LATE_HU):
        return None
    if 1.4826 * float(np.median(np.abs(values - med))) > MAX_SPREAD_HU:
        return None
    ring = np.zeros((3, 3, 3), dtype=bool)
    ring[1] = True
    shell = ndimage.binary_dilation(comp, ring) & ~comp
    if shell.any():
        bony = dense[pad][shell] | (mean[pad][shell] >= hi)
        if float(bony.mean()) > MAX_BONY_SHARE:
            return None
    thick = ndimage.distance_transform_edt(np.pad(comp, ((0, 0), (1, 1), (1, 1))),
                                           sampling=(1e6, *block_mm[1:]))
    if float(thick.max()) < (MIN_THICK_MM if phase == "enhanced" else LATE_THICK_MM):
        return None
    if phase == "late" and _roundness(comp, thick[:, 1:-1, 1:-1], block_mm) < MIN_ROUNDNESS:
        return None
    if phase == "late":
        z, r, c = pad
        voxels = hu[z, r.start * f:r.stop * f, c.start * f:c.stop * f][
            np.repeat(np.repeat(comp, f, axis=1), f, axis=2)]
        if float(np.percentile(voxels, 99.9)) < threshold_hu:
            return None
    return med
