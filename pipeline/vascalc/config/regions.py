"""The ``regions`` section of the config: how region masks are grown, ordered, grouped into
territories and classed (coronary, vascular, bone) for the scopes (docs, conventions: 'Scopes')."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .label_tables import LABEL_TABLES

#: unknown keys refused, records frozen, and no NaN or infinity in any number (a NaN
#: threshold compares false with every HU; an infinite increment makes Agatston 0)
_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

#: region names (shell patterns) whose calcium is coronary: the four main arteries
CORONARY_DEFAULT = ["LM", "LAD", "LCX", "RCA", "coronary_*"]
#: region names (shell patterns) whose calcium is vascular: arteries and arterial territories
#: (TotalSegmentator v2 'total' class names among them) and the coronary ones
VASCULAR_DEFAULT = [
    "aorta", "aorta_*", "supra_aortic", "brachiocephalic_trunk", "common_carotid_artery_*",
    "subclavian_artery_*", "iliac", "iliac_artery_*", "cardiac", "renal_arter*",
    "femoral_arter*", "carotid*", *CORONARY_DEFAULT]
#: region names (shell patterns) that are bone: shown apart, never vascular
BONE_DEFAULT = [
    "bone", "vertebrae_*", "sacrum", "rib_*", "sternum", "costal_cartilages", "clavicula_*",
    "scapula_*", "humerus_*", "hip_*", "femur_*", "skull", "spine"]


class RegionsConfig(BaseModel):
    """How region masks (vascalc run --regions, or a manifest 'regions' column) are used."""

    model_config = _STRICT

    order: list[str] = Field(
        default_factory=list, description="priority where grown regions overlap (first wins)")
    margin_mm: dict[str, float] = Field(
        default_factory=dict, description="per-region growth in mm (calcium sits in the wall)")
    default_margin_mm: float = Field(0.0, ge=0.0, description="growth of other regions, mm")
    exclude: list[str] = Field(
        default_factory=list, description="masks that remove their voxels from every region "
        "(shell patterns, e.g. vertebrae_*)")
    split_aorta: Literal["none", "plane", "vertebrae"] = Field(
        "none", description="split 'aorta' into aorta_thoracic and aorta_abdominal")
    split_aorta_z_mm: float | None = Field(
        None, description="patient z (mm) of the split plane when split_aorta is 'plane'")
    coronary_vessels: list[str] = Field(
        ["LM", "LAD", "LCX", "RCA"], description="region names counted for CAC-DRS N1-N4")
    territories: dict[str, list[str]] = Field(
        default_factory=dict, description="territory name -> region name patterns whose masks "
        "are merged into it (after the aorta split; first matching territory wins; a region "
        "no pattern matches keeps its own name)")
    coronary: list[str] = Field(
        default_factory=lambda: list(CORONARY_DEFAULT),
        description="region name patterns whose calcium is coronary (scope coronary)")
    vascular: list[str] = Field(
        default_factory=lambda: list(VASCULAR_DEFAULT),
        description="region name patterns whose calcium is vascular (scope vascular); the "
        "coronary ones count only when listed here too")
    bone: list[str] = Field(
        default_factory=lambda: list(BONE_DEFAULT),
        description="region name patterns that are bone: reported apart, never vascular")
    label_table: str | None = Field(
        None, description="label table of NIfTI label maps without a table file beside them: "
        "'totalsegmentator_v2' (TotalSegmentator v2 task 'total', written with --ml)")

    @model_validator(mode="after")
    def _margins(self) -> "RegionsConfig":
        bad = {k: v for k, v in self.margin_mm.items() if not 0 <= v <= 50}
        if bad:
            raise ValueError(f"regions.margin_mm must be within 0-50 mm, got {bad}")
        if self.label_table is not None and self.label_table not in LABEL_TABLES:
            raise ValueError(f"regions.label_table={self.label_table!r} is not known; allowed: "
                             f"{sorted(LABEL_TABLES)}")
        if self.split_aorta == "plane" and self.split_aorta_z_mm is None:
            raise ValueError("regions.split_aorta: plane needs regions.split_aorta_z_mm")
        return self
