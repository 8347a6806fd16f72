"""The column registry: every column of every table, its type, unit and meaning.

The table writers and ``data_dictionary.csv`` are both generated from here, so a written column
can never be missing from the dictionary. Column names are a public interface: snake_case,
unit as suffix; renaming one is a breaking change.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.score import CAC_DRS_LABELS, RISK_LABELS


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # string | integer | number | boolean | date
    unit: str
    meaning: str


#: the pandas dtype of each registry type (nullable, so an empty cell stays missing)
PANDAS_DTYPES = {"string": "string", "integer": "Int64", "number": "float64",
                 "boolean": "boolean", "date": "datetime64[ns]"}
#: columns read as ordered categoricals, with their categories in order
ORDERED_CATEGORIES: dict[str, tuple[str, ...]] = {"risk_category": RISK_LABELS,
                                                  "cac_drs": CAC_DRS_LABELS}


def pandas_dtype(column: str, type_: str) -> str:
    """The dtype a pandas user passes for a column (the data dictionary's ``pandas_dtype``).

    >>> pandas_dtype("agatston", "number"), pandas_dtype("risk_category", "string")
    ('float64', 'category')
    """
    return "category" if column in ORDERED_CATEGORIES else PANDAS_DTYPES[type_]


def _c(name: str, type_: str, unit: str, meaning: str) -> Column:
    return Column(name, type_, unit, meaning)


_PROVENANCE = [
    _c("preset", "string", "", "scoring convention: literature, ge, terarecon, siemens, "
       "philips, canon (van Praagh et al., Med Phys 2021)"),
    _c("threshold_hu", "number", "HU", "calcium voxel threshold used for this scan: HU >= "
       "this value"),
    _c("threshold_source", "string", "", "where threshold_hu came from: config, lumen_adaptive:<region>, "
       "kvp_table:<kV> (scoring.kvp_table) or calibration:<d>mg_ha_cm3 (a density threshold)"),
    _c("volume_method", "string", "", "voxel_count (kept voxels x voxel volume) or "
       "interpolated (linear along z to isotropic voxels, after Callister et al. 1998)"),
    _c("min_lesion_area_mm2", "number", "mm2", "slice lesions with a smaller area were dropped "
       "(a pixel-count limit folded in)"),
    _c("volume_threshold_hu", "number", "HU", "threshold of volume and mass when the preset "
       "sets its own (Philips 112.5); empty = threshold_hu"),
    _c("mass_calibration_mg_per_cm3_per_hu", "number", "mg/(cm3*HU)",
       "calibration factor c of mass = c * sum(HU - water HU) * voxel volume; empty = "
       "uncalibrated"),
    _c("calibration_water_hu", "number", "HU", "HU of water in the calibration (0 unless "
       "scoring.calibration_water_hu sets it)"),
    _c("pipeline_version", "string", "", "vascalc version that computed the row"),
    _c("config_sha256", "string", "", "sha256 of the config this row was scored with: the "
       "run's (run.json), or with this case's calibration from the manifest or the "
       "calibration table"),
]

def _scope_aggregate_columns(scope: str, what: str) -> list[Column]:
    """The scans columns of one scope's aggregate (docs, conventions: 'Scopes')."""
    return [
        _c(f"{scope}_agatston", "number", "", f"Agatston score over {what}; empty without "
           "such regions"),
        _c(f"{scope}_volume_mm3", "number", "mm3", f"calcium volume over {what}"),
        _c(f"{scope}_mass_mg", "number", "mg", f"calcium mass over {what}; empty if "
           "uncalibrated"),
        _c(f"{scope}_n_lesions", "integer", "", f"3-D lesions with a voxel in {what}"),
        _c(f"{scope}_volume_per_bsa_mm3_m2", "number", "mm3/m2", f"{scope}_volume_mm3 / bsa_m2"),
    ]


#: the provenance columns a scans row takes from the result's settings (or the config's)
PROVENANCE_KEYS: tuple[str, ...] = tuple(c.name for c in _PROVENANCE
                                         if c.name != "pipeline_version")

SCANS: tuple[Column, ...] = tuple([
    _c("case_id", "string", "", "case identifier: from the manifest, else derived by vascalc"),
    _c("patient_id", "string", "",
       "manifest patient_id, else DICOM PatientID as the config's privacy.patient_id says"),
    _c("study_date", "date", "", "DICOM StudyDate (yyyy-mm-dd)"),
    _c("patient_age", "string", "", "DICOM PatientAge (e.g. 061Y); empty unless privacy.demographics"),
    _c("patient_age_years", "number", "year", "patient_age in years (D/W/M/Y units of the DICOM "
       "AS value converted: days / 365.25, weeks / 52.1775, months / 12); empty unless "
       "privacy.demographics"),
    _c("patient_sex", "string", "", "DICOM PatientSex (M, F, O); empty unless privacy.demographics"),
    _c("series_instance_uid", "string", "", "DICOM SeriesInstanceUID of the scored series"),
    _c("status", "string", "", "ok or failed"),
    _c("error_code", "string", "", "stable error code when failed (docs, outputs: 'Error codes')"),
    _c("error", "string", "", "what was wrong, with the file, and what to do"),
    _c("scope", "string", "", "what the headline scores (agatston, volume_mm3, mass_mg, "
       "density_score, n_lesions, volume_per_bsa_mm3_m2, risk) cover: coronary, vascular, "
       "bone_excluded or whole_volume (docs, conventions: 'Scopes')"),
    _c("scope_regions", "string", "", "semicolon-separated regions the headline sums (empty: "
       "the whole field of view)"),
    _c("region_source", "string", "", "how the case's region masks were given: nifti_masks, "
       "label_map, label_map:<table>, dicom_seg; reader (a reader's lesion labels, vascalc "
       "rescore); empty without regions"),
    _c("reader", "string", "", "the reader whose lesion labels made the regions and the "
       "coronary scope (vascalc rescore); empty otherwise"),
    _c("review_done", "boolean", "", "whether the read is a final: the reader marked the case "
       "done with every calcium lesion labelled or the rest confirmed not coronary; false only "
       "under rescore --include-unfinished (flag review_incomplete: no risk category or "
       "CAC-DRS); empty without a reader"),
    _c("unlabelled_agatston", "number", "", "Agatston score of the calcium the reader left "
       "unlabelled (regions.csv 'outside'); empty without a reader"),
    _c("unlabelled_volume_mm3", "number", "mm3", "volume of the calcium the reader left "
       "unlabelled; empty without a reader"),
    _c("unlabelled_n_lesions", "integer", "", "3-D lesions with a voxel the reader left "
       "unlabelled; empty without a reader"),
    _c("rest_confirmed_not_coronary", "boolean", "", "whether the reader, marking the case "
       "done, confirmed that the calcium left unlabelled (unlabelled_agatston, "
       "unlabelled_volume_mm3) is not coronary; a done read with unlabelled calcium and no "
       "confirmation is not final (review_done false, no risk category); empty without a "
       "reader"),
    _c("rest_confirmed_at", "string", "", "when the reader gave that confirmation (UTC, ISO "
       "8601); empty when not confirmed or without a reader"),
    _c("agatston", "number", "", "Agatston score over the scope, scaled by slice increment / "
       "3 mm; empty when scoring.agatston is false (micro-CT) or withheld (withheld_reason); "
       "on contrast CT the score above the contrast rule's threshold (score_label)"),
    _c("volume_mm3", "number", "mm3", "calcium volume over the scope, by volume_method"),
    _c("mass_mg", "number", "mg", "calcium mass over the scope, c * sum(HU - water HU) * voxel "
       "volume; empty if uncalibrated"),
    _c("mass_status", "string", "", "calibrated or uncalibrated"),
    _c("density_score", "number", "", "mean density weight (1-4) of the kept calcium: Agatston "
       "/ (area x increment scaling) (Criqui et al., JAMA 2014); empty without calcium"),
    _c("n_lesions", "integer", "", "3-D lesions (26-connected components of kept voxels) "
       "with a voxel in the scope"),
    _c("n_slice_lesions", "integer", "", "kept 2-D slice lesions (whole-volume scopes only)"),
    _c("risk_category", "string", "", "Agatston category: 0, 1 to 10, 11 to 100, 101 to 400, "
       ">400 (spelled so spreadsheets keep it as text); "
       "coronary scope only (risk_basis says why it is empty)"),
    _c("risk_category_order", "integer", "", "order of risk_category: 0 (0) to 4 (>400); "
       "coronary scope only"),
    _c("cac_drs", "string", "", "CAC-DRS Agatston category: A0, A1, A2, A3; coronary scope only"),
    _c("cac_drs_vessels", "string", "", "CAC-DRS vessel modifier N1-N4 (coronary vessels "
       "with calcium); coronary scope with vessel regions only"),
    _c("risk_basis", "string", "", "what risk_category and cac_drs rest on, or why they are "
       "empty"),
    _c("mesa_chd_10y_risk_pct", "number", "%", "MESA 10-year coronary heart disease risk with "
       "CAC (McClelland et al., JACC 2015, Table 2) from the manifest's risk factors and the "
       "coronary Agatston score; empty outside ages 45-84, for another scope, without a score "
       "by the definition or with a factor missing (mesa_withheld_reason)"),
    _c("mesa_age_sex_source", "string", "", "where the MESA age and sex came from: manifest "
       "(its age_years and sex win) or dicom_header, or both named"),
    _c("mesa_withheld_reason", "string", "", "why mesa_chd_10y_risk_pct is empty when the "
       "manifest gives risk factors"),
    _c("score_label", "string", "", "what the headline number is, as the console, index and "
       "report name it: '<scope> Agatston at <t> HU', '<scope> calcium score at <t> HU "
       "(<rule>)' on contrast CT, '<scope> calcium volume' without Agatston, or withheld"),
    _c("withheld_reason", "string", "", "why the headline numbers are empty although the case "
       "was scored (contrast-filled lumen no contrast rule applies to, an unfinished read); "
       "empty when they are given"),
    _c("headline_threshold_hu", "number", "HU", "threshold the headline's calcium was found "
       "at (a contrast rule's, or threshold_hu); empty when its regions differ"),
    _c("headline_threshold_rule", "string", "", "contrast rules that set the headline's "
       "thresholds (phase_threshold:venous, phase_threshold:arterial_thoracic, "
       "lumen_adaptive, lumen_adaptive_comp2comp; ';'-joined); empty = threshold_hu"),
    _c("contrast_rule", "string", "", "scoring.contrast rule applied to the contrast-filled "
       "territories of a contrast-enhanced scan; empty on non-contrast scans"),
    _c("contrast_phase", "string", "", "contrast phase used by phase_threshold: arterial or "
       "venous; empty when not used or unknown"),
    _c("contrast_phase_source", "string", "", "where contrast_phase came from: config, header "
       "(ContrastBolusAgentPhase), series_description, lumen_hu (aortic lumen median)"),
    _c("agatston_comparable", "boolean", "", "true when the headline is an Agatston score at "
       "the scan threshold with no protocol deviation: comparable with the published reference "
       "protocol and its risk categories"),
    _c("protocol_deviations", "string", "", "semicolon-separated deviations from the reference "
       "protocol (non-contrast, 120 kVp, 2.5-3.0 mm slices, reference kernel, ECG gating for "
       "coronary scope, whole territory in the field of view, lossless); codes in the quality "
       "flag registry"),
    _c("height_cm", "number", "cm", "height used for BSA"),
    _c("weight_kg", "number", "kg", "weight used for BSA"),
    _c("bsa_m2", "number", "m2", "body surface area; empty when height or weight is missing"),
    _c("bsa_formula", "string", "", "BSA formula (dubois, mosteller, haycock, gehan_george, boyd)"),
    _c("bsa_source", "string", "", "where height and weight came from, or why BSA is empty"),
    _c("volume_per_bsa_mm3_m2", "number", "mm3/m2", "Calc/BSA: volume_mm3 / bsa_m2"),
    _c("slice_thickness_mm", "number", "mm", "DICOM SliceThickness (reported, not used)"),
    _c("slice_increment_mm", "number", "mm", "distance between slice positions"),
    _c("pixel_spacing_mm", "string", "mm", "in-plane spacing as 'row x column'"),
    _c("pixel_spacing_row_mm", "number", "mm", "distance between rows (PixelSpacing[0])"),
    _c("pixel_spacing_col_mm", "number", "mm", "distance between columns (PixelSpacing[1])"),
    _c("n_slices", "integer", "", "slices in the series"),
    _c("n_rows", "integer", "", "rows per slice"),
    _c("n_cols", "integer", "", "columns per slice"),
    _c("kvp", "number", "kV", "DICOM KVP"),
    _c("manufacturer", "string", "", "DICOM Manufacturer (in the CSV, a text that a "
       "spreadsheet would run as a formula, starting = + - @, gets a leading ' as every "
       "text cell from a file does; the Parquet keeps it as read)"),
    _c("model", "string", "", "DICOM ManufacturerModelName (formula-like text as manufacturer)"),
    _c("kernel", "string", "", "DICOM ConvolutionKernel (formula-like text as manufacturer)"),
    _c("quality_flags", "string", "", "semicolon-separated quality codes; empty when none"),
    *_scope_aggregate_columns("vascular", "the vascular regions (each voxel once)"),
    *_scope_aggregate_columns("coronary", "the coronary regions"),
    _c("all_calcium_agatston", "number", "", "Agatston score of all calcium in the field of "
       "view, bone included (bone removed by the heuristic under scope bone_excluded)"),
    _c("all_calcium_volume_mm3", "number", "mm3", "volume of all calcium in the field of view "
       "(as all_calcium_agatston)"),
    _c("all_calcium_mass_mg", "number", "mg", "mass of all calcium in the field of view "
       "(as all_calcium_agatston); empty if uncalibrated"),
    _c("source_path", "string", "", "series folder or file, relative to the input given"),
    *_PROVENANCE,
])

LESIONS: tuple[Column, ...] = (
    _c("case_id", "string", "", "case identifier (joins scans.csv)"),
    _c("lesion_id", "integer", "", "lesion number within the case, 1.. in raster order"),
    _c("region", "string", "", "whole, or with region masks the region of this piece: a "
       "lesion crossing regions has one row per region, split by voxel"),
    _c("region_class", "string", "", "class of the region: coronary, vascular, bone, other, "
       "outside, or whole without regions"),
    _c("n_slices", "integer", "", "slices the lesion spans (with regions: slices this region's "
       "piece of it spans)"),
    _c("n_voxels", "integer", "", "kept voxels in the lesion"),
    _c("volume_mm3", "number", "mm3", "lesion volume"),
    _c("mass_mg", "number", "mg", "lesion mass; empty if uncalibrated"),
    _c("agatston", "number", "", "lesion share of the Agatston score"),
    _c("peak_hu", "number", "HU", "highest HU in the lesion"),
    _c("mean_hu", "number", "HU", "mean HU over the lesion's voxels"),
    _c("centroid_x_mm", "number", "mm", "centroid, patient LPS x (DICOM)"),
    _c("centroid_y_mm", "number", "mm", "centroid, patient LPS y (DICOM)"),
    _c("centroid_z_mm", "number", "mm", "centroid, patient LPS z (DICOM)"),
    _c("region_source", "string", "", "where the region came from: the masks' kind "
       "(nifti_masks, label_map, dicom_seg), reader (a reader's labels, vascalc rescore), "
       "or empty without regions"),
    _c("label", "string", "", "the reader's label of this piece (LM, LAD, LCX, RCA, aorta, "
       "bone, noise, ...; vascalc rescore); empty when unlabelled or without reads"),
    # the shape of the whole 3-D lesion (every piece of it carries the same), output.lesion_shape
    _c("length_mm", "number", "mm", "lesion length along its principal axis: sqrt(12 l1), l1 "
       "the largest eigenvalue of its second moments as a solid (vascalc.measure.shape); empty "
       "unless output.lesion_shape"),
    _c("width_mm", "number", "mm", "lesion extent along its second axis, sqrt(12 l2)"),
    _c("thickness_mm", "number", "mm", "lesion extent along its shortest axis, sqrt(12 l3)"),
    _c("extent", "number", "", "voxels / voxels of the lesion's bounding box (scikit-image "
       "regionprops)"),
    _c("linearity", "number", "", "(l1 - l2) / l1, Westin et al., Med Image Anal 2002: 1 for a "
       "line"),
    _c("planarity", "number", "", "(l2 - l3) / l1 (Westin 2002): 1 for a sheet"),
    _c("sphericity", "number", "", "l3 / l1 (Westin 2002): 1 for a compact lesion"),
    _c("shape_class", "string", "", "the largest of the three: linear, planar (sheet-like) or "
       "spherical (compact); a lesion of a few voxels is as compact as its voxels"),
)

REGIONS: tuple[Column, ...] = (
    _c("case_id", "string", "", "case identifier (joins scans.csv)"),
    _c("region", "string", "", "a region mask's name, or outside (kept calcium in no region); "
       "whole (all kept calcium) only for a scan without regions. The rows of a scan partition "
       "its kept calcium: their sum is the scan's all_calcium_* total"),
    _c("scope", "string", "", "for 'whole' whole_volume or bone_excluded (all calcium in the "
       "field of view); region for the others"),
    _c("region_class", "string", "", "whole; coronary, vascular, bone or other (regions.coronary, "
       "regions.vascular, regions.bone); outside (kept calcium in no region)"),
    _c("agatston", "number", "", "Agatston score within the region"),
    _c("volume_mm3", "number", "mm3", "calcium volume within the region"),
    _c("mass_mg", "number", "mg", "calcium mass within the region; empty if uncalibrated"),
    _c("density_score", "number", "", "mean density weight (1-4) of the region's kept voxels: "
       "Agatston / (area x increment scaling) (Criqui et al., JAMA 2014); empty without calcium"),
    _c("n_lesions", "integer", "", "3-D lesions within the region"),
    _c("n_slice_lesions", "integer", "", "kept slice lesions (whole volume only)"),
    _c("volume_per_bsa_mm3_m2", "number", "mm3/m2", "region volume / bsa_m2; empty without BSA"),
    _c("lumen_median_hu", "number", "HU", "median HU inside the vascular region's mask as given "
       "(not grown); above 100 HU the lumen is contrast-filled (flag contrast_filled:<region>); "
       "on a scan with no other sign of contrast, measured without the calcium and its "
       "one-pixel rim (a mask that hugs a plaque measures the blood beside it)"),
    _c("threshold_hu", "number", "HU", "threshold this region's calcium was found at: the "
       "scan's, or a contrast rule's (threshold_rule); empty when withheld"),
    _c("threshold_rule", "string", "", "the contrast rule that set threshold_hu; empty = the "
       "scan's threshold"),
    _c("withheld_reason", "string", "", "why this region's numbers are empty (contrast-filled "
       "lumen no rule applies to, enhanced tissue on a contrast scan); empty when given"),
    _c("region_source", "string", "", "where the region came from: the masks' kind "
       "(nifti_masks, label_map, dicom_seg), reader (a reader's labels, vascalc rescore), "
       "or empty for 'whole'"),
)

#: measures of each region in the wide per-scan table (regions_wide.csv): column
#: '<region>_<measure>', one row per scored scan
WIDE_MEASURES: tuple[Column, ...] = (
    _c("agatston", "number", "", "Agatston score within the region"),
    _c("volume_mm3", "number", "mm3", "calcium volume within the region"),
    _c("mass_mg", "number", "mg", "calcium mass within the region; empty if uncalibrated"),
    _c("n_lesions", "integer", "", "3-D lesions within the region"),
    _c("volume_per_bsa_mm3_m2", "number", "mm3/m2", "region volume / bsa_m2"),
)

#: regions_masks.csv: after vascalc rescore, the region masks' own partition of the calcium the
#: reader's labels split in regions.csv (the same columns; empty without a rescore)
TABLES: dict[str, tuple[Column, ...]] = {"scans": SCANS, "regions": REGIONS, "lesions": LESIONS,
                                         "regions_masks": REGIONS}

#: primary keys of each table (datapackage.json); every other table's case_id refers to scans
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "scans": ("case_id",), "regions": ("case_id", "region"),
    "lesions": ("case_id", "lesion_id", "region"), "regions_wide": ("case_id",),
    "regions_masks": ("case_id", "region")}


def names(table: str) -> list[str]:
    return [c.name for c in TABLES[table]]


def _score_columns() -> list[Column]:
    units = {"agatston": "", "volume_mm3": "mm3", "mass_mg": "mg",
             "volume_per_bsa_mm3_m2": "mm3/m2"}
    cols = []
    for s, u in units.items():
        per_year = f"{u}/year" if u else "1/year"
        cols += [
            _c(f"{s}_1", "number", u, f"{s} of the earlier scan"),
            _c(f"{s}_2", "number", u, f"{s} of the later scan"),
            _c(f"{s}_change", "number", u, "later - earlier"),
            _c(f"{s}_change_per_year", "number", per_year, "change / interval_years"),
            _c(f"{s}_relative_change", "number", "", "change / earlier (empty if earlier is 0)"),
        ]
    return cols


PROGRESSION: tuple[Column, ...] = (
    _c("patient_id", "string", "", "patient whose scans are paired"),
    _c("case_id_1", "string", "", "earlier scan (joins scans.csv)"),
    _c("case_id_2", "string", "", "later scan (joins scans.csv)"),
    _c("date_1", "date", "", "date of the earlier scan"),
    _c("date_2", "date", "", "date of the later scan"),
    _c("date_source", "string", "", "scan_date (the manifest's, preferred) or study_date "
       "(DICOM StudyDate), as the scans were placed"),
    _c("interval_days", "integer", "d", "days between the scans"),
    _c("interval_years", "number", "year", "interval_days / 365.25"),
    _c("interval_flag", "string", "", "same_date when both scans carry one date; "
       "short_interval when they are under 90 days apart (a scan-rescan pair: a change over "
       "days annualised is noise); the per-year changes and Raggi's rate are then empty"),
    *_score_columns(),
    _c("sqrt_volume_difference", "number", "mm^1.5",
       "sqrt(volume_2) - sqrt(volume_1) (Hokanson et al., AJR 2004)"),
    _c("progression_hokanson", "boolean", "", "sqrt_volume_difference >= 2.5"),
    _c("volume_annual_relative_change", "number", "1/year",
       "(volume_2 / volume_1) ** (1 / years) - 1 (Raggi et al., ATVB 2004)"),
    _c("progression_raggi", "boolean", "", "volume_annual_relative_change > 0.15"),
    _c("parameters_differ", "string", "",
       "scan parameters that differ between the scans (they bias the change)"),
)


#: progression per region (vascalc progression --regions): the region, then PROGRESSION
PROGRESSION_REGIONS: tuple[Column, ...] = (
    _c("region", "string", "", "region of regions.csv whose scores are paired (whole, a mask's "
       "name, or outside)"),
    *PROGRESSION,
)


def markdown_table(table: str) -> str:
    """The docs' table of ``table``'s columns (name, type, unit, meaning), written from the
    registry when the docs are built (docs/_ext/vascalc_reference.py)."""
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.unit} | {c.meaning.replace('|', '/')} |"
              for c in TABLES[table]]
    return "\n".join(lines)
