"""The column registry of the micro-CT tables (``microct_scans.csv``, ``microct_regions.csv``,
``microct_lesions.csv``): name, type, unit and meaning of each column, in order. The tables,
their data dictionary and the docs are written from it. Names follow the house rule: snake_case
with the unit as suffix."""

from __future__ import annotations

from dataclasses import asdict

from .columns import Column

#: a micro-CT column is a column of the one registry record (name, type, unit, meaning)
MicroColumn = Column


_C = MicroColumn
_ANIMAL = (
    _C("case_id", "string", "", "the stack's id (manifest case_id, else the file or folder name)"),
    _C("animal_id", "string", "", "the animal (manifest column animal_id)"),
    _C("group", "string", "", "study group, e.g. adenine or control (manifest column group)"),
    _C("treatment", "string", "", "diet or treatment (manifest column treatment)"),
    _C("time_point", "string", "", "time point of the scan, e.g. week 8 (manifest time_point)"),
)

SCANS: tuple[MicroColumn, ...] = (*_ANIMAL,
    _C("status", "string", "", "ok or failed"),
    _C("error_code", "string", "", "the error's stable code when failed"),
    _C("error", "string", "", "what was wrong and what to do, when failed"),
    _C("path", "string", "", "the input as given"),
    _C("format", "string", "", "bruker, scanco_isq, scanco_aim, tiff_stack, tiff_slices, nrrd, "
       "mha"),
    _C("slices", "integer", "", "slices in the stack"),
    _C("rows", "integer", "", "rows per slice"),
    _C("cols", "integer", "", "columns per slice"),
    _C("voxel_size_um", "number", "um", "voxel size in plane (columns)"),
    _C("slice_spacing_um", "number", "um", "voxel size along the slices"),
    _C("voxel_size_source", "string", "", "rec_log, header, tiff_metadata or manifest"),
    _C("calibration_source", "string", "", "header:<format>, rods:<file>, config, or empty "
       "(uncalibrated)"),
    _C("calibration_slope", "number", "mg HA/cm3 per stored unit", "density = slope x stored + "
       "intercept"),
    _C("calibration_intercept", "number", "mg HA/cm3", "density at stored value 0"),
    _C("calibration_valid_max_mg_ha_cm3", "number", "mg HA/cm3", "the densest rod (empty: the "
       "calibration gives no range)"),
    _C("threshold_mg_ha_cm3", "number", "mg HA/cm3", "density threshold of a calcified voxel "
       "(empty when uncalibrated)"),
    _C("threshold_source", "string", "", "where the threshold comes from (microct."
       "threshold_source)"),
    _C("threshold_stored", "number", "stored units", "the same threshold in the stack's stored "
       "values"),
    _C("volume_mm3", "number", "mm3", "calcified volume: kept voxels x voxel volume"),
    _C("mass_mg", "number", "mg", "mineral mass: sum of density x voxel volume over the kept "
       "voxels; empty when uncalibrated"),
    _C("mass_status", "string", "", "calibrated, or why mass is empty"),
    _C("n_lesions", "integer", "", "3-D lesions (26-connected components)"),
    _C("largest_lesion_mm3", "number", "mm3", "volume of the largest lesion"),
    _C("beyond_calibration_voxels", "integer", "", "calcified voxels denser than the densest rod "
       "(empty: no rod range)"),
    _C("agatston", "number", "", "always empty on micro-CT (see agatston_withheld)"),
    _C("agatston_withheld", "string", "", "why Agatston is not given"),
    _C("risk_category", "string", "", "always empty on micro-CT (no clinical risk)"),
    _C("quality_flags", "string", "", "';'-separated flags of vascalc.flags"),
    _C("notes", "string", "", "facts of the input (attenuation range, mu scaling, ...)"),
    _C("slab_slices", "integer", "", "slices per slab read"),
    _C("config_sha256", "string", "", "digest of the resolved config including microct"),
    _C("vascalc_version", "string", "", "vascalc's version"),
)

REGIONS: tuple[MicroColumn, ...] = (*_ANIMAL,
    _C("region", "string", "", "VOI name (label table or microct.voi_labels), or outside"),
    _C("n_voxels", "integer", "", "calcified voxels in the region"),
    _C("volume_mm3", "number", "mm3", "calcified volume in the region"),
    _C("mass_mg", "number", "mg", "mineral mass in the region; empty when uncalibrated"),
)

LESIONS: tuple[MicroColumn, ...] = (*_ANIMAL,
    _C("lesion_id", "integer", "", "1.. in raster order of the lesion's first voxel"),
    _C("region", "string", "", "the VOI holding most of its voxels, or outside"),
    _C("n_voxels", "integer", "", "voxels"),
    _C("volume_mm3", "number", "mm3", "volume"),
    _C("mass_mg", "number", "mg", "mineral mass; empty when uncalibrated"),
    _C("peak_density_mg_ha_cm3", "number", "mg HA/cm3", "densest voxel; empty when "
       "uncalibrated"),
    _C("centroid_x_mm", "number", "mm", "centroid, column axis, from the first voxel"),
    _C("centroid_y_mm", "number", "mm", "centroid, row axis"),
    _C("centroid_z_mm", "number", "mm", "centroid, slice axis"),
    _C("first_slice", "integer", "", "first slice (0-based)"),
    _C("last_slice", "integer", "", "last slice"),
)

TABLES = {"microct_scans": SCANS, "microct_regions": REGIONS, "microct_lesions": LESIONS}


def dictionary_rows() -> list[dict[str, str]]:
    """The micro-CT data dictionary: one row per (table, column)."""
    return [{"table": t, **asdict(c)} for t, cols in TABLES.items() for c in cols]
