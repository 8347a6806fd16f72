"""The ``microct`` section of the config: how micro-CT stacks are scored (docs: Micro-CT).

The density threshold is a hydroxyapatite density with its source recorded in every row.
The default, 100 mg HA/cm3, is the density the clinical 130 HU threshold stands for at
120 kVp (the introduction of Eur Radiol 2022, doi:10.1007/s00330-022-08642-5, and its
reference 5; see :mod:`vascalc.config.thresholds`): a starting point that a study replaces
with the threshold it publishes, naming it in ``threshold_source``.

The calibration precedence, per stack: HA rods or slope/intercept given here (the user's
measurement wins) over the file header's (Scanco); with none, density and mass are empty
with the reason and the volume needs ``threshold_stored``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MicroCTConfig(BaseModel):
    """Micro-CT scoring (``vascalc microct``)."""

    model_config = _STRICT

    threshold_mg_ha_cm3: float = Field(
        100.0, gt=0.0, description="a voxel is calcified at or above this density (mg HA/cm3)")
    threshold_source: str = Field(
        "vascalc default: the density of 130 HU at 120 kVp (Eur Radiol 2022, "
        "doi:10.1007/s00330-022-08642-5)", description="where the threshold comes from "
        "(recorded in every row); name your study's publication")
    threshold_stored: float | None = Field(
        None, description="without any calibration: a threshold in the stack's stored values "
        "(grey values), so volume and lesions are still measured; density and mass stay empty")
    calibration_slope: float | None = Field(
        None, gt=0.0, description="density = slope x stored value + intercept (mg HA/cm3 per "
        "stored unit), e.g. from vascalc calibrate on HA rods; wins over the header's")
    calibration_intercept: float | None = Field(
        None, description="mg HA/cm3 at stored value 0 (with calibration_slope)")
    calibration_source: str = Field(
        "config", description="where slope and intercept come from (rods:<file> from vascalc "
        "calibrate)")
    calibration_valid_min_mg_ha_cm3: float | None = Field(
        None, description="the least dense rod of the calibration (its valid range)")
    calibration_valid_max_mg_ha_cm3: float | None = Field(
        None, description="the densest rod: denser calcified voxels are flagged "
        "(density_beyond_calibration), never silently extrapolated")
    min_lesion_voxels: int = Field(
        1, ge=1, description="3-D lesions (26-connected) with fewer voxels are dropped")
    memory_budget_mb: int = Field(
        256, ge=16, description="memory for one slab of the stack and its labels; sets the "
        "slab's number of slices (slab_slices overrides)")
    slab_slices: int | None = Field(
        None, ge=1, description="slices per slab (default: from memory_budget_mb)")
    voi_labels: dict[int, str] = Field(
        default_factory=dict, description="VOI label value -> region name, when no table "
        "lies beside the label map")

    @model_validator(mode="after")
    def _pair(self) -> "MicroCTConfig":
        if (self.calibration_slope is None) != (self.calibration_intercept is None):
            raise ValueError("give calibration_slope and calibration_intercept together")
        lo, hi = self.calibration_valid_min_mg_ha_cm3, self.calibration_valid_max_mg_ha_cm3
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError("calibration_valid_min_mg_ha_cm3 must be below the max")
        return self

    def slab_for(self, slice_voxels: int) -> int:
        """Slices per slab: ``slab_slices``, else the budget over about 16 bytes per voxel
        (the values, the mask, the int32 labels and their temporaries)."""
        if self.slab_slices is not None:
            return self.slab_slices
        return max(1, int(self.memory_budget_mb * 2**20 // (16 * max(1, slice_voxels))))
