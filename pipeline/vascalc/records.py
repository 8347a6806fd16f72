"""Frozen records passed between the stages.

Arrays are ``(slice, row, col)``; ``spacing_mm`` is in the same order: (slice increment,
distance between rows, distance between columns). Patient coordinates are DICOM LPS in mm.
Records validate themselves on construction, so a record that exists is valid
(highdicom ``volume.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _finite_positive(name: str, values: tuple[float, ...]) -> None:
    for v in values:
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and > 0 in every axis, got {values!r}")


@dataclass(frozen=True, kw_only=True)
class ScanMeta:
    """Header facts the outputs need. Identifying fields stay here and reach a table only when
    the config asks for them."""

    patient_id: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    study_date: str = ""  # ISO yyyy-mm-dd or ""
    manufacturer: str = ""
    model: str = ""
    kvp: float | None = None
    kernel: str = ""
    slice_thickness_mm: float | None = None
    patient_size_m: float | None = None
    patient_weight_kg: float | None = None
    patient_age: str = ""
    patient_sex: str = ""
    series_description: str = ""
    study_description: str = ""
    protocol_name: str = ""
    body_part: str = ""  # DICOM BodyPartExamined, upper case
    transfer_syntax: str = ""
    n_files: int = 0
    contrast_agent: str = ""  # DICOM ContrastBolusAgent, when recorded
    contrast_phase: str = ""  # DICOM ContrastBolusAgentPhase (ARTERIAL, VENOUS, ...), when recorded
    #: True when the header records ECG synchronisation (CardiacSynchronizationTechnique other
    #: than NONE, or a TriggerTime), False when it records NONE, None when it says nothing
    ecg_gated: bool | None = None
    #: spectral series kind (vascalc.io.spectral_kinds: conventional, vmi, vnc, mixed, low_kv,
    #: high_kv, iodine_map, material_map, calcium_suppressed); '' = not read from a header
    series_kind: str = ""
    series_kind_source: str = ""  # image_type, multi_energy_attribute, description or ''
    energy_kev: float | None = None  # the keV of a virtual monoenergetic image
    tin_filter_mm: float = 0.0  # tin added to the beam (Sn100, Sn150), 0 = none
    material: str = ""  # what a material map holds, when the header says


@dataclass(frozen=True, kw_only=True, eq=False)
class CTVolume:
    """A CT volume in Hounsfield units on a regular grid.

    ``hu`` is int16 when the rescale was integral (slope 1, integer intercept), else float64
    (exact decimal HU of the definition), and is made read-only. ``direction`` is a 3x3
    matrix whose columns are the unit vectors, in patient LPS, of increasing slice, row and
    column index; ``origin_mm`` is the patient position of voxel (0, 0, 0).
    """

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    meta: ScanMeta = field(default_factory=ScanMeta)
    quality_flags: tuple[str, ...] = ()
    #: per slice, in volume order: the DICOM file and SOPInstanceUID it came from (a frame of
    #: a multi-frame file is 'uid#frame'); empty for NIfTI input
    source_paths: tuple[str, ...] = ()
    source_uids: tuple[str, ...] = ()
    #: per slice, in volume order: the DICOM InstanceNumber (None where not recorded)
    source_instances: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.hu, np.ndarray) or self.hu.ndim != 3:
            raise ValueError(f"CTVolume.hu must be a 3-D array (slice, row, col), got "
                             f"{type(self.hu).__name__} with shape {getattr(self.hu, 'shape', None)}")
        if self.hu.dtype.kind not in "iuf":
            raise ValueError(f"CTVolume.hu must be numeric, got dtype {self.hu.dtype}")
        if len(self.spacing_mm) != 3:
            raise ValueError(f"spacing_mm needs 3 values (slice, row, col), got {self.spacing_mm!r}")
        _finite_positive("spacing_mm", tuple(self.spacing_mm))
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise ValueError(f"direction must be a finite 3x3 matrix, got {self.direction!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)

    @property
    def voxel_volume_mm3(self) -> float:
        s, r, c = self.spacing_mm
        return float(s) * float(r) * float(c)

    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Patient LPS (mm) of fractional voxel indices ``ijk`` of shape (n, 3)."""
        ijk = np.asarray(ijk, dtype=float).reshape(-1, 3)
        d = np.asarray(self.direction, dtype=float)
        return np.asarray(self.origin_mm, dtype=float) + (ijk * np.asarray(self.spacing_mm)) @ d.T


@dataclass(frozen=True, kw_only=True)
class Lesion:
    """One 3-D lesion: a 26-connected component of the kept calcium voxels."""

    lesion_id: int
    n_slices: int
    n_voxels: int
    volume_mm3: float
    mass_mg: float | None
    agatston: float
    peak_hu: float
    mean_hu: float
    centroid_x_mm: float
    centroid_y_mm: float
    centroid_z_mm: float
    region: str = "whole"


#: the lesion shape columns of lesions.csv, in order (empty when output.lesion_shape is off)
SHAPE_COLUMNS = ("length_mm", "width_mm", "thickness_mm", "extent", "linearity", "planarity",
                 "sphericity", "shape_class")
NO_SHAPE: dict[str, Any] = dict.fromkeys(SHAPE_COLUMNS)


@dataclass(frozen=True, kw_only=True)
class LesionShape:
    """The shape of one whole 3-D lesion in physical units (vascalc.measure.shape)."""

    lesion_id: int
    length_mm: float
    width_mm: float
    thickness_mm: float
    extent: float
    linearity: float
    planarity: float
    sphericity: float
    shape_class: str

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in SHAPE_COLUMNS}


@dataclass(frozen=True, kw_only=True)
class RegionScore:
    """Scores over one region ('whole' = the whole volume).

    Withheld is None (DESIGN.md, measurement conventions): a score with a ``withheld``
    reason carries no number, so ``agatston``, ``volume_mm3``, ``mass_mg``, ``n_lesions``,
    ``n_slice_lesions``, ``density_score`` and ``threshold_hu`` are None beside the reason
    (set so on construction, whatever was passed: a withheld number is never read as 0).

    Examples
    --------
    >>> r = RegionScore(region="coronary", agatston=0.0, volume_mm3=0.0, mass_mg=None,
    ...                 n_lesions=0, n_slice_lesions=None, withheld="contrast-filled lumen")
    >>> r.agatston, r.volume_mm3, r.n_lesions, r.withheld
    (None, None, None, 'contrast-filled lumen')
    """

    region: str
    agatston: float | None
    volume_mm3: float | None
    mass_mg: float | None
    n_lesions: int | None
    n_slice_lesions: int | None
    density_score: float | None = None  # mean density weight 1-4; None without calcium
    #: whole, coronary, vascular, bone, other or outside (vascalc.core.regions.region_class)
    region_class: str = "whole"
    lumen_median_hu: float | None = None  # median HU in the mask as given (vascular regions)
    #: the threshold this region's calcium was found at, and the rule that set it ('' = the
    #: scan's own threshold, as scan-level ``threshold_hu`` says)
    threshold_hu: float | None = None
    threshold_rule: str = ""
    #: why this region's numbers are not given ('' = they are): they would count contrast-
    #: filled lumen and no contrast rule applies, or the reader has not finished
    withheld: str = ""

    def __post_init__(self) -> None:
        if self.withheld:
            for name in WITHHELD_FIELDS:
                object.__setattr__(self, name, None)
        elif self.agatston is None or self.volume_mm3 is None or self.n_lesions is None:
            raise ValueError(f"RegionScore {self.region!r}: agatston, volume_mm3 and n_lesions "
                             "are None only when the score is withheld (give the reason)")


#: the numbers of a :class:`RegionScore` that a withheld score leaves None
WITHHELD_FIELDS = ("agatston", "volume_mm3", "mass_mg", "n_lesions", "n_slice_lesions",
                   "density_score", "threshold_hu")


@dataclass(frozen=True, kw_only=True)
class BSAResult:
    """Body surface area and where its inputs came from; ``bsa_m2`` None when unavailable."""

    height_cm: float | None
    weight_kg: float | None
    bsa_m2: float | None
    formula: str
    source: str


@dataclass(frozen=True, kw_only=True)
class Anthropometry:
    """Height and weight given outside the DICOM (a manifest); None = not given."""

    height_cm: float | None = None
    weight_kg: float | None = None
    source: str = "manifest"


@dataclass(frozen=True, kw_only=True, eq=False)
class ScoredVoxels:
    """What the scoring counted, voxel by voxel, for the artefacts (masks, SEG, key images):
    ``hu`` is the HU that was scored (bone set to -1000 under scope bone_excluded), ``bands``
    the density weight (1-4) of each kept voxel (0 = not kept) and ``lesion_labels`` its 3-D
    lesion id (the ``lesion_id`` of lesions.csv; 0 = none), at ``threshold_hu`` with density
    weights starting at ``weight_hu``."""

    hu: np.ndarray
    bands: np.ndarray
    lesion_labels: np.ndarray
    threshold_hu: float
    weight_hu: tuple[float, float, float, float]
    #: with regions: each voxel's region (0 = outside, i = region_names[i - 1]) and the class
    #: of each region name (coronary, vascular, bone, other), for territory colours
    region_labels: np.ndarray | None = None
    region_names: tuple[str, ...] = ()
    region_classes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LesionLabels:
    """A reader's labels of a scan's lesions (``vascalc review``): the label of each whole
    3-D lesion (by ``lesion_id``) and of single slices of a lesion ((lesion_id, slice index),
    which win over the lesion's label on that slice); ``names`` every label, in order, and
    ``classes`` the class of each (coronary, vascular, bone, other). Unlabelled calcium stays
    outside every label. ``done`` is whether the reader marked the case done: an unfinished
    read gives no risk category or CAC-DRS and is flagged review_incomplete."""

    lesion: dict[int, str]
    slices: dict[tuple[int, int], str]
    names: tuple[str, ...]
    classes: tuple[str, ...]
    reader: str = ""
    done: bool = True
    done_at: str = ""  # when the reader marked it done (UTC, ISO 8601), '' = not done
    #: when the reader confirmed, with the done mark, that the calcium left unlabelled is not
    #: coronary ('' = not confirmed). A done read that leaves calcium unlabelled without it
    #: is not final (no risk category or CAC-DRS, flagged review_incomplete).
    rest_confirmed_at: str = ""

    def coronary(self) -> tuple[str, ...]:
        return tuple(n for n, c in zip(self.names, self.classes) if c == "coronary")


@dataclass(frozen=True, kw_only=True)
class Uncertainty:
    """The rescan model of a scan's headline (:mod:`vascalc.core.rescan`): 95 % intervals of
    the truth and the share of simulated rescans in each category; intervals None where the
    measure is not given, all None with ``reason`` when no rescan was simulated.

    Attributes
    ----------
    n_rescans, seed : int
        Rescans simulated and the generator's seed (config uncertainty.*).
    noise_hu : float or None
        Image noise measured from the scan (HU).
    agatston, volume_mm3, mass_mg, integrated_mass_mg : tuple of (float, float) or None
        The 95 % intervals (low, high).
    integrated_mass_value_mg : float or None
        The threshold-free integrated calcium mass of the scan (:mod:`vascalc.core.integrated`).
    risk_probabilities, cac_drs_probabilities : tuple of float
        Share of rescans in each risk category (0 .. >400) and CAC-DRS class (A0 .. A3);
        () unless the headline is a coronary Agatston score.
    reason : str
        Why the intervals are empty ('' when given).
    """

    n_rescans: int
    seed: int
    noise_hu: float | None = None
    agatston: tuple[float, float] | None = None
    volume_mm3: tuple[float, float] | None = None
    mass_mg: tuple[float, float] | None = None
    integrated_mass_value_mg: float | None = None
    integrated_mass_mg: tuple[float, float] | None = None
    risk_probabilities: tuple[float, ...] = ()
    cac_drs_probabilities: tuple[float, ...] = ()
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ScanResult:
    """Everything the outputs need for one successfully scored case."""

    case_id: str
    meta: ScanMeta
    whole: RegionScore
    lesions: tuple[Lesion, ...]
    bsa: BSAResult
    volume_per_bsa_mm3_m2: float | None
    risk_category: str
    cac_drs: str
    settings: dict[str, Any]
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    quality_flags: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    regions: tuple[RegionScore, ...] = ()  # per region (and 'outside') when masks were given
    density_score: float | None = None  # Agatston / (area x scaling); None without calcium
    cac_drs_vessels: str = ""  # N1-N4 when coronary vessel regions were given
    #: the scope the headline covers (vascalc.core.scopes), its score, and the regions it sums
    scope: str = "whole_volume"
    headline: RegionScore | None = None  # None: the same as ``whole``
    scope_regions: tuple[str, ...] = ()
    region_source: str = ""  # how the region masks were given ('' = none; 'reader')
    reader: str = ""  # whose reads split the calcium (vascalc rescore), '' = none
    read_at: str = ""  # when that reader marked the case done (UTC, ISO 8601), '' = not done
    #: when that reader confirmed the calcium left unlabelled is not coronary ('' = not)
    rest_confirmed_at: str = ""
    #: the patient position (LPS, mm) of voxel (0, 0, 0) and the step from one slice to the
    #: next: a slice's place in patient space, which identifies a reader's slice reads
    #: (None in results of an earlier vascalc)
    origin_mm: tuple[float, float, float] | None = None
    slice_step_mm: tuple[float, float, float] | None = None
    risk_basis: str = ""  # why risk_category and cac_drs are filled or empty
    vascular: RegionScore | None = None  # over the vascular regions, when there are some
    coronary: RegionScore | None = None  # over the coronary regions, when there are some
    #: the contrast rule that set the thresholds of contrast-filled territories ('' = none
    #: applied), the phase it used and where the phase came from (header, lumen_hu, config)
    contrast_rule: str = ""
    contrast_phase: str = ""
    contrast_phase_source: str = ""
    #: whether the headline is an Agatston score comparable with the published reference
    #: protocol, and the protocol deviations (flag registry codes) that say why not
    agatston_comparable: bool = False
    protocol_deviations: tuple[str, ...] = ()
    #: after a reader's labels split the calcium (rescore), the region masks' own partition of
    #: it (regions_masks.csv) and where the masks came from; () without masks or reads
    mask_regions: tuple[RegionScore, ...] = ()
    mask_source: str = ""
    #: the shape of each whole 3-D lesion, when output.lesion_shape asks for it
    lesion_shapes: tuple[LesionShape, ...] = ()
    #: the headline's rescan model and integrated mass, when uncertainty.enabled
    uncertainty: Uncertainty | None = None
    #: the scored voxels, when analyse was asked to keep them (for the artefacts)
    voxels: ScoredVoxels | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class CaseFailure:
    """A case that could not be scored: a row with status=failed, never a 0 or a NaN."""

    case_id: str
    error_code: str
    error: str
    path: str = ""
