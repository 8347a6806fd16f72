"""The registry of quality flags: the public vocabulary of the ``quality_flags`` column.

Each flag has a code (the column's value, ``;``-separated), what it means in words (the
report's text, the docs), and the modules that emit it. A flag ``name:<region>`` is a
parametrised family (``contrast_filled:aorta``). :func:`check` refuses a flag that is not
registered, so nothing can put an undocumented word into the column.

Examples
--------
>>> describe("kvp_not_120")
'Tube voltage is not 120 kVp: the 130 HU threshold is defined at 120 kVp.'
>>> check(("gantry_tilt", "contrast_filled:aorta"))
('gantry_tilt', 'contrast_filled:aorta')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityFlag:
    """One registered flag: its code, its meaning and who emits it."""

    code: str
    meaning: str
    emitted_by: str
    parametrised: bool = False  # code:<region>
    #: the headline is not the calcium it seems to be: the console prints the meaning beside it
    warns_headline: bool = False


QUALITY_FLAGS: dict[str, QualityFlag] = {f.code: f for f in (
    QualityFlag(
        'mass_uncalibrated',
        'Mass not computed: no scanner calibration (c) was configured.',
        'analyse'),
    QualityFlag(
        'contrast_enhanced',
        'Contrast-enhanced scan: 130 HU also selects enhanced lumen, so no number counts at '
        'it where contrast is (docs, conventions: \'Contrast\').',
        'analyse, measure.protocol', warns_headline=True),
    QualityFlag(
        'contrast_from_image',
        'Contrast found in the image (an enhanced blood pool or lumen), not in the header: '
        'ContrastBolusAgent is empty (de-identified?) or says none.',
        'measure.contrast'),
    QualityFlag(
        'contrast_phase_disagrees',
        'The header names one contrast phase (ContrastBolusAgentPhase or SeriesDescription) '
        'and the lumen HU measure another: the measured phase was used.',
        'measure.contrast', warns_headline=True),
    QualityFlag(
        'review_incomplete',
        'The reader has not marked this case done: its labels may be partial, so no risk '
        'category or CAC-DRS is given (vascalc rescore --include-unfinished).',
        'analyse', warns_headline=True),
    QualityFlag(
        'kvp_not_120',
        'Tube voltage is not 120 kVp: the 130 HU threshold is defined at 120 kVp.',
        'analyse'),
    QualityFlag(
        'aorta_not_split',
        'The aorta was not split into thoracic and abdominal parts: the T12 and L1 vertebra '
        'masks are missing or empty.',
        'measure.layout'),
    QualityFlag(
        'report_failed',
        'Some report artefacts could not be written (see run.json).',
        'outputs.artefacts'),
    QualityFlag(
        'gantry_tilt',
        'Gantry-tilted stack: scored slice by slice along the tilted planes.',
        'io.geometry'),
    QualityFlag(
        'duplicate_files_removed',
        'Duplicated files were found and counted once.',
        'io.geometry'),
    QualityFlag(
        'pixel_padding',
        'Padding pixels were set to air (-1000 HU).',
        'io.dicom'),
    QualityFlag(
        'monochrome1',
        'MONOCHROME1 images (display inverted; HU unaffected).',
        'io.dicom'),
    QualityFlag(
        'rescale_type_not_hu',
        'RescaleType is not HU: values may not be Hounsfield units.',
        'io.dicom'),
    QualityFlag(
        'rescale_varies',
        'The rescale differs between slices; applied per slice.',
        'io.dicom'),
    QualityFlag(
        'lossy_compression',
        'Lossy compression: voxels near 130 HU may have moved.',
        'io.dicom'),
    QualityFlag(
        'multi_frame',
        'Read from a multi-frame image.',
        'io.dicom'),
    QualityFlag(
        'nifti_input',
        'Read from NIfTI: no DICOM identity or acquisition details.',
        'io.nifti'),
    QualityFlag(
        'outlier_images_excluded',
        'Images of another orientation or matrix were left out.',
        'run.discovery, io.load'),
    QualityFlag(
        'bsa_implausible_dicom',
        'Height or weight in the DICOM header is implausible: no BSA.',
        'analyse'),
    QualityFlag(
        'series_split',
        'The series was split (images of another matrix, orientation or acquisition, or of '
        'another patient, frame of reference or date): this case holds part of it.',
        'run.discovery'),
    QualityFlag(
        'unreadable_files_in_folder',
        'A DICOM file in the series folder could not be read whole or classified (cut inside '
        'its header): a slice may be missing from this case.',
        'run.discovery'),
    QualityFlag(
        'regions_partial_coverage',
        "The region masks' grid covers only part of the CT (a map of another crop, or a "
        'shifted one?): calcium beyond it is counted outside every region.',
        'io.mask_fit', warns_headline=True),
    QualityFlag(
        'regions_misaligned',
        'The bone regions of the masks lie mostly off bone (under 20 % of their voxels at '
        '150 HU or more): the masks are probably shifted against the CT or belong to another '
        'scan, so region rows may be wrong.',
        'io.mask_fit', warns_headline=True),
    QualityFlag(
        'bone_heuristic',
        'Bone was removed by a heuristic (large dense structures): on a real body CT it left '
        "43 % of the bone calcium and took 16 % of the aorta's (docs, conventions: 'Scopes'); region "
        'masks are exact.',
        'analyse'),
    QualityFlag(
        'bone_dominated',
        'Most of this calcium is bone-like (large dense structures such as the spine, ribs or'
        ' skull): it is not a vascular score.',
        'analyse', warns_headline=True),
    QualityFlag(
        'contrast_filled',
        'Contrast in the lumen of the region (median above 100 HU): at 130 HU it would count '
        'lumen; its numbers come from the contrast rule (threshold_rule) or are withheld.',
        'analyse', parametrised=True, warns_headline=True),
    # protocol deviations (column protocol_deviations, measure.protocol): each makes the row
    # not agatston_comparable
    QualityFlag(
        'kvp_unknown',
        'No tube voltage recorded: the 130 HU threshold is defined at 120 kVp.',
        'measure.protocol'),
    QualityFlag(
        'slice_thickness_off_protocol',
        'Slice thickness outside 2.5-3.0 mm: Agatston scores depend on it (thinner slices '
        'score higher, thicker ones miss small calcium).',
        'measure.protocol', warns_headline=True),
    QualityFlag(
        'slice_increment_off_protocol',
        'Slice increment outside 2.5-3.0 mm: the reference protocol scores contiguous '
        '2.5-3.0 mm slices.',
        'measure.protocol', warns_headline=True),
    QualityFlag(
        'kernel_not_reference',
        "Reconstruction kernel not the manufacturer's calcium-scoring kernel (protocol."
        'kernels): sharper kernels raise peak HU and area.',
        'measure.protocol'),
    QualityFlag(
        'kernel_unknown',
        'No reconstruction kernel recorded: the protocol cannot be checked.',
        'measure.protocol'),
    QualityFlag(
        'ecg_gating_not_recorded',
        'Coronary scope without ECG gating in the header: motion blurs coronary calcium and '
        'changes its score.',
        'measure.protocol'),
    QualityFlag(
        'ecg_not_gated',
        'Coronary scope on a scan the header records as not ECG-synchronised '
        '(CardiacSynchronizationTechnique NONE): motion blurs coronary calcium and changes its '
        'score.',
        'measure.protocol'),
    QualityFlag(
        'slice_thickness_unknown',
        'No SliceThickness recorded: the protocol (2.5-3.0 mm) cannot be checked, so the '
        'score is not called comparable.',
        'measure.protocol'),
    QualityFlag(
        'fov_cuts',
        'The field of view cuts the region (its mask touches the image edge): calcium outside '
        'the image is missing from its score.',
        'measure.protocol', parametrised=True, warns_headline=True),
)}


def lookup(flag: str) -> QualityFlag | None:
    """The registry entry of ``flag`` (a parametrised flag by its family), None if unregistered."""
    code, sep, _ = flag.partition(":")
    entry = QUALITY_FLAGS.get(code)
    if entry is None or entry.parametrised != bool(sep):
        return None
    return entry


def check(flags: tuple[str, ...]) -> tuple[str, ...]:
    """``flags`` unchanged when every one is registered; ValueError naming the first that is not
    (a programming error: register the flag here, with its meaning, before emitting it)."""
    for f in flags:
        if lookup(f) is None:
            raise ValueError(f"quality flag {f!r} is not registered in vascalc.flags.QUALITY_FLAGS")
    return flags


def describe(flag: str) -> str:
    """What ``flag`` means, in words (for a parametrised flag, with its region named)."""
    entry = lookup(flag)
    if entry is None:
        return flag
    if entry.parametrised:
        region = flag.split(":", 1)[1]
        return entry.meaning.replace("the region", region, 1)
    return entry.meaning
