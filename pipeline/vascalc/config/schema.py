"""The configuration schema: one pydantic model, defaults in one place, no globals.

Every model forbids unknown keys and is frozen (pyradiomics validates its example settings the
same way, ``tests/test_exampleSettings.py``). :mod:`vascalc.config.load` turns a YAML file
into a ``Config`` or raises :class:`vascalc.errors.ConfigError` naming the key, the value and
what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.bsa import FORMULAS
from .listen import ListenConfig
from .microct import MicroCTConfig
from .protocol import ContrastConfig, ProtocolConfig
from .regions import RegionsConfig
from .review import ReviewConfig
from .selection import SelectionConfig

#: unknown keys refused, records frozen, and no NaN or infinity in any number (a NaN
#: threshold compares false with every HU; an infinite increment makes Agatston 0)
_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: Vendor scoring conventions as compared by van Praagh GD et al., Med Phys 2021
#: (the keys each preset sets; anything given explicitly in the config wins).
PRESETS: dict[str, dict] = {
    "literature": {},  # DESIGN.md: Agatston 1990, 130 HU, 1 mm2
    "ge": {"min_lesion_area_mm2": 1.0},
    "terarecon": {"min_lesion_area_mm2": 1.0},
    "siemens": {"min_lesion_area_mm2": 0.0},
    "philips": {"min_lesion_area_mm2": 0.5, "volume_threshold_hu": 112.5},
    "canon": {"min_lesion_area_mm2": 0.0, "min_lesion_area_px": 3},
}

#: the preset names, derived from PRESETS (one list: a new preset is one new dict entry)
if TYPE_CHECKING:
    PresetName = str
else:
    PresetName = Literal[tuple(PRESETS)]


class CalibrationEntry(BaseModel):
    """A mass calibration for the scans of one scanner or protocol, matched on the header."""

    model_config = _STRICT

    manufacturer: str | None = Field(
        None, description="matches when this is in DICOM Manufacturer (any case); None = any")
    model: str | None = Field(
        None, description="matches when this is in ManufacturerModelName (any case); None = any")
    kvp: float | None = Field(None, gt=0.0, description="matches this KVP (+-0.5); None = any")
    c_mg_per_cm3_per_hu: float = Field(gt=0.0, description="mass calibration factor c")
    water_hu: float = Field(0.0, description="HU of water in that calibration")

    def matches(self, manufacturer: str, model: str, kvp: float | None) -> bool:
        def has(part: str | None, text: str) -> bool:
            return part is None or part.casefold() in (text or "").casefold()

        return (has(self.manufacturer, manufacturer) and has(self.model, model)
                and (self.kvp is None or (kvp is not None and abs(kvp - self.kvp) <= 0.5)))


class ScoringConfig(BaseModel):
    """Measurement conventions (DESIGN.md, 'Measurement conventions')."""

    model_config = _STRICT

    preset: PresetName = Field(
        "literature", description="named convention; recorded in every row")
    threshold_hu: float = Field(130.0, description="calcium voxel: HU >= this value")
    min_lesion_area_mm2: float = Field(1.0, ge=0.0, description="slice lesions smaller are dropped")
    min_lesion_area_px: int = Field(
        0, ge=0, description="slice lesions of fewer pixels are dropped too (Canon: 3)")
    volume_threshold_hu: float | None = Field(
        None, description="volume and mass from voxels >= this HU (Philips: 112.5); None = "
        "threshold_hu")
    density_weight_hu: tuple[float, float, float, float] = Field(
        (130.0, 200.0, 300.0, 400.0),
        description="peak HU at which the density weight becomes 1, 2, 3, 4")
    reference_increment_mm: float = Field(
        3.0, gt=0.0, description="Agatston is scaled by slice increment / this value")
    scale_by_increment: bool = Field(True, description="apply the increment / 3 mm scaling")
    slice_connectivity: Literal[4, 8] = Field(8, description="2-D connectivity of a slice lesion")
    lesion_connectivity: Literal[6, 18, 26] = Field(26, description="3-D connectivity of a lesion")
    scope: Literal["auto", "coronary", "vascular", "bone_excluded", "whole_volume"] = Field(
        "auto", description="what the headline scores cover: coronary or vascular regions, "
        "all calcium without bone (heuristic) or with it; auto = the narrowest the case's "
        "regions allow (docs, conventions: 'Scopes')")
    fov_is_coronary: bool = Field(
        False, description="the user declares the whole field of view coronary (a phantom, a "
        "cropped coronary scan): scope coronary then counts all its calcium")
    bone_threshold_hu: float = Field(200.0, description="bone heuristic: dense voxels >= this")
    bone_min_volume_cm3: float = Field(
        5.0, gt=0.0, description="bone heuristic: dense 3-D components at least this large")
    bone_margin_mm: float = Field(
        1.0, ge=0.0, description="bone heuristic: growth of the bone mask (its rim)")
    contrast: Literal["withhold", "phase_threshold", "lumen_adaptive",
                      "lumen_adaptive_comp2comp", "refuse"] = Field(
        "withhold", description="contrast-filled territories: numbers withheld (empty, with "
        "the reason), found above a published phase threshold or a lumen-adaptive one, or the "
        "scan refused (docs, conventions: 'Contrast'); 'flag' is read as withhold")
    lumen_region: str = Field(
        "aorta", description="the region whose lumen stands in for a contrast-filled territory "
        "too small to measure its own (coronary arteries), and that tells the phase")
    lumen_k: float = Field(
        3.0, gt=0.0, description="lumen_adaptive: spreads above the lumen median (a choice, "
        "not a published constant)")
    mass_calibration_mg_per_cm3_per_hu: float | None = Field(
        None, gt=0.0, description="c of mass = c * sum(HU - water HU) * voxel volume; None = "
        "uncalibrated")
    calibration_water_hu: float = Field(
        0.0, description="HU of water in the calibration scan (vascalc calibrate measures it); "
        "density = c * (HU - this)")
    calibration_table: list[CalibrationEntry] = Field(
        default_factory=list, description="calibrations per scanner or protocol, matched on "
        "each series' header (first match wins; each manifest value wins over the table's, "
        "the table over mass_calibration_mg_per_cm3_per_hu and calibration_water_hu)")
    agatston: bool = Field(
        True, description="compute Agatston, density score and risk categories; false for "
        "micro-CT, where the 1990 definition does not apply (those columns stay empty)")
    volume_method: Literal["voxel_count", "interpolated"] = Field(
        "voxel_count", description="volume as kept voxels x voxel volume, or from a linear "
        "interpolation to isotropic voxels along z (after Callister et al., Radiology 1998)")
    threshold_mg_ha_cm3: float | None = Field(
        None, gt=0.0, description="calcium threshold as a density: HU threshold = water HU + "
        "this / c (needs the calibration); overrides threshold_hu and the kVp table")
    kvp_table: dict[float, tuple[float, float, float, float]] = Field(
        default_factory=dict, description="per tube voltage (kV), the HU at which density "
        "weights 1, 2, 3, 4 start (the first is the calcium threshold); fill it from the "
        "publication you follow: vascalc ships no numbers it could not verify")
    energy_threshold: Literal["fixed", "table", "physics"] = Field(
        "fixed", description="threshold for the energy the image represents: fixed (threshold_hu), "
        "table (Graeni 2018 kVp rows, 70 keV per Mergen 2023) or physics (the HU of 130 HU at "
        "120 kVp at any kVp, tin-filtered kV or VMI keV; docs, 'Spectral CT')")
    vnc: Literal["score", "refuse"] = Field(
        "score", description="virtual non-contrast series: scored (flagged vnc_underscores, no "
        "risk category unless risk.accept_vnc) or refused (VNC_REFUSED)")
    kvp_select: Literal["off", "header"] | float = Field(
        "off", description="use the kvp_table row of the header's KVP ('header'), of a given kV "
        "(a number), or not at all ('off')")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            data = {**PRESETS[data["preset"]], **data}
        if isinstance(data, dict) and data.get("contrast") == "flag":
            # 'flag' (score at 130 HU and flag) counted the lumen; it now withholds
            data = {**data, "contrast": "withhold"}
        return data

    def for_scanner(self, manufacturer: str, model: str, kvp: float | None) -> "ScoringConfig":
        """This config with the calibration of the first matching calibration_table entry."""
        for entry in self.calibration_table:
            if entry.matches(manufacturer, model, kvp):
                return self.model_copy(update={
                    "mass_calibration_mg_per_cm3_per_hu": entry.c_mg_per_cm3_per_hu,
                    "calibration_water_hu": entry.water_hu})
        return self

    def increment_scale(self, increment_mm: float) -> float:
        """The factor on Agatston: slice increment / reference increment, or 1."""
        return increment_mm / self.reference_increment_mm if self.scale_by_increment else 1.0

    def min_area_mm2(self, pixel_area_mm2: float) -> float:
        """The area limit in mm2, with the pixel-count limit folded in."""
        return max(self.min_lesion_area_mm2, self.min_lesion_area_px * pixel_area_mm2)

    @model_validator(mode="after")
    def _bands(self) -> "ScoringConfig":
        w = self.density_weight_hu
        if any(b <= a for a, b in zip(w, w[1:])):
            raise ValueError(f"density_weight_hu must increase strictly, got {list(w)}")
        for kv, row in self.kvp_table.items():
            if any(b <= a for a, b in zip(row, row[1:])):
                raise ValueError(f"kvp_table[{kv:g}] must increase strictly, got {list(row)}")
        if not isinstance(self.kvp_select, str) and self.kvp_select not in self.kvp_table:
            raise ValueError(f"kvp_select={self.kvp_select:g} has no row in kvp_table "
                             f"(rows: {sorted(self.kvp_table)})")
        if self.kvp_select == "header" and not self.kvp_table:
            raise ValueError("kvp_select: header needs a kvp_table")
        if self.energy_threshold != "fixed" and (self.kvp_select != "off"
                                                  or self.threshold_mg_ha_cm3 is not None):
            raise ValueError("give energy_threshold or kvp_select / threshold_mg_ha_cm3, not both")
        if self.threshold_mg_ha_cm3 is not None and self.kvp_select != "off":
            raise ValueError("give either threshold_mg_ha_cm3 or kvp_select, not both")
        if self.volume_method == "interpolated" and self.volume_threshold_hu not in (
                None, self.threshold_hu):
            raise ValueError("volume_method: interpolated measures at the calcium threshold; "
                             "it cannot be combined with volume_threshold_hu")
        if w[0] > self.threshold_hu:
            raise ValueError(
                f"density_weight_hu[0]={w[0]} is above threshold_hu={self.threshold_hu}: "
                "calcium voxels between them would get weight 0; lower it to threshold_hu")
        return self


class RiskConfig(BaseModel):
    """Category boundaries on the Agatston score (upper bounds, inclusive)."""

    model_config = _STRICT

    agatston_upper_bounds: tuple[float, float, float] = Field(
        (10.0, 100.0, 400.0), description="0 | (0, 10] | (10, 100] | (100, 400] | > 400")
    cac_drs_lower_bounds: tuple[float, float] = Field(
        (100.0, 300.0), description="A0 = 0, A1 below the first, A2 below the second, A3 above")
    accept_vnc: bool = Field(
        False, description="give risk categories on virtual non-contrast scores (known to "
        "under-score; docs, 'Spectral CT'); false = empty with the reason")

    @model_validator(mode="after")
    def _ascending(self) -> "RiskConfig":
        for name in ("agatston_upper_bounds", "cac_drs_lower_bounds"):
            bounds = getattr(self, name)
            if any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
                raise ValueError(f"risk.{name} must be positive and strictly ascending, got "
                                 f"{list(bounds)}")
        return self


class BSAConfig(BaseModel):
    model_config = _STRICT

    formula: str = Field("dubois", description="one of vascalc.core.bsa.FORMULAS")

    @model_validator(mode="after")
    def _known(self) -> "BSAConfig":
        if self.formula not in FORMULAS:
            raise ValueError(f"bsa.formula={self.formula!r} is not known; allowed: {sorted(FORMULAS)}")
        return self


class GeometryConfig(BaseModel):
    model_config = _STRICT

    spacing_tolerance_mm: float = Field(
        0.01, ge=0.0, description="absolute slack allowed between slice increments")
    spacing_tolerance_rel: float = Field(
        0.01, ge=0.0, description="relative slack allowed between slice increments")
    gantry_tilt: Literal["score", "refuse"] = Field(
        "score", description="tilted stacks: score slice by slice (flagged) or refuse")
    max_obliquity_deg: float = Field(
        45.0, ge=0.0, le=90.0, description="refuse stacks whose normal is further from the "
        "patient's head-foot axis")


class InputConfig(BaseModel):
    """Limits on archives given as input."""

    model_config = _STRICT

    max_archive_bytes: int = Field(
        20 * 2**30, gt=0, description="cap on the bytes a zip archive may extract to")
    max_archive_files: int = Field(200_000, gt=0, description="cap on the files of a zip")
    require_hu: bool = Field(
        True, description="NIfTI input must reach below -100 (air or fat in HU), so masks "
        "given as CTs are refused; false for volumes in other units (micro-CT)")


class ReportConfig(BaseModel):
    """Per-case report and DICOM/NIfTI results (off by default: they cost time per case)."""

    model_config = _STRICT

    enabled: bool = Field(False, description="write the per-case artefacts and OUT/index.html")
    pdf: bool = Field(True, description="also render each report.html to report.pdf")
    dicom_seg: bool = Field(True, description="DICOM SEG of the calcium by density band")
    dicom_sr: bool = Field(True, description="DICOM Comprehensive 3D SR (TID 1500) of the scores")
    nifti: bool = Field(True, description="NIfTI calcium mask and lesion label map")
    key_images: int = Field(3, ge=0, le=12, description="axial key images per report")
    identity: Literal["pseudonymous", "full"] = Field(
        "pseudonymous", description="report header: case id only, or the DICOM patient identity")


class PrivacyConfig(BaseModel):
    model_config = _STRICT

    patient_id: Literal["hash", "keep", "omit"] = Field(
        "omit", description="DICOM PatientID in tables: keyed hash (needs a study secret), as "
        "is, or left empty")
    hash_salt: str | None = Field(
        None, exclude=True, min_length=16, description="the study's secret key of the patient "
        "id hash (at least 16 characters; never written to run.json); or the environment "
        "variable VASCALC_HASH_SALT")
    demographics: bool = Field(
        False, description="write DICOM PatientAge and PatientSex into scans.csv")

    def secret(self) -> str | None:
        """The hash key of this config (16 characters or more), or None. The environment is
        read only at the edge (:func:`vascalc.config.load.with_study_secret`), never here."""
        key = self.hash_salt or ""
        return key if len(key) >= 16 else None


#: environment variable that may hold the study secret of the patient id hash
HASH_SALT_ENV = "VASCALC_HASH_SALT"


class OutputConfig(BaseModel):
    model_config = _STRICT

    case_id_from: Literal["folder", "series_uid"] = Field(
        "folder", description="derive case ids from the series folder's own last two names "
        "(more when two would collide; a NIfTI file's name), or from a UID hash")
    parquet: bool = Field(True, description="also write the tables as Parquet (pyarrow)")
    lesion_shape: bool = Field(
        False, description="each lesion's shape in lesions.csv: length, width, thickness, "
        "extent, linearity, planarity, sphericity, shape_class (docs, outputs: 'Lesion "
        "shape'); costs a labelling pass over the calcium")


class UncertaintyConfig(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(False, description="simulate rescans of each scan (vascalc.core.rescan): "
                          "95 % intervals, integrated mass, category probabilities; scores "
                          "every scan n_rescans more times")
    n_rescans: int = Field(50, ge=10, le=10000, description="simulated rescans per scan")
    seed: int = Field(0, ge=0, description="seed of the rescans' starts and noise (in the row)")

class Config(BaseModel):
    """The run configuration (frozen, strict: unknown keys refused by name); ``Config()`` is the
    documented defaults, :func:`load_config` reads a YAML file of that shape.

    Examples
    --------
    >>> cfg = Config(scoring={"preset": "philips", "scope": "coronary"})
    >>> cfg.scoring.min_lesion_area_mm2, cfg.scoring.volume_threshold_hu  # the preset's keys
    (0.5, 112.5)
    >>> len(cfg.sha256())  # recorded in every row
    64
    """

    model_config = _STRICT

    scoring: ScoringConfig = ScoringConfig()
    risk: RiskConfig = RiskConfig()
    bsa: BSAConfig = BSAConfig()
    geometry: GeometryConfig = GeometryConfig()
    selection: SelectionConfig = SelectionConfig()
    input: InputConfig = InputConfig()
    report: ReportConfig = ReportConfig()
    regions: RegionsConfig = RegionsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    output: OutputConfig = OutputConfig()
    review: ReviewConfig = ReviewConfig()
    contrast: ContrastConfig = ContrastConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    listen: ListenConfig = ListenConfig()
    microct: MicroCTConfig = MicroCTConfig()
    uncertainty: UncertaintyConfig = UncertaintyConfig()

    def provenance(self) -> dict:
        """The provenance columns every scans row carries (analyse refines the area limit
        with the pixel size and adds the scope)."""
        sc = self.scoring
        return {"preset": sc.preset, "scope": sc.scope, "threshold_hu": sc.threshold_hu,
                "threshold_source": "config", "volume_method": sc.volume_method,
                "min_lesion_area_mm2": sc.min_lesion_area_mm2,
                "volume_threshold_hu": sc.volume_threshold_hu,
                "mass_calibration_mg_per_cm3_per_hu": sc.mass_calibration_mg_per_cm3_per_hu,
                "calibration_water_hu": sc.calibration_water_hu, "agatston": sc.agatston,
                "config_sha256": self.sha256()}

    def sha256(self) -> str:
        """Digest of the resolved config (sorted JSON), recorded in every row. The hash key is
        not in the JSON (it is a secret); a digest of it is, so a new key redoes the cases.
        The review labels, the DICOM node's settings and the micro-CT section (its rows carry
        their own digest) change no CT number and are left out."""
        # uncertainty off changes no number: left out, so the digest stays what it was
        off = set() if self.uncertainty.enabled else {"uncertainty"}
        text = json.dumps(self.model_dump(mode="json",
                                          exclude={"review", "listen", "microct"} | off),
                          sort_keys=True, separators=(",", ":"))
        key = self.privacy.secret() if self.privacy.patient_id == "hash" else None
        if key:
            text += "\0" + hashlib.sha256(("vascalc-key\0" + key).encode()).hexdigest()
        return hashlib.sha256(text.encode()).hexdigest()
