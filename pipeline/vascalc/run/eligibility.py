"""Which series may be scored, and which first: one set of rules for ``vascalc run`` and the
DICOM node, applied to the headers :mod:`vascalc.io` read once (never re-reading files).

:func:`refusal` applies a :class:`~vascalc.config.listen.SeriesRules` to a stack's facts: SOP
class, localizer, axial orientation, number of images, coverage along the body, descriptions,
BodyPartExamined and recorded contrast. :func:`points` orders the eligible stacks by the
reference protocol of the Agatston score (Agatston et al., JACC 1990;15:827-832; McCollough CH
et al., Radiology 2007;243:527-538; the config's ``protocol``):

- +4 a calcium-scoring word in SeriesDescription or ProtocolName;
- +2 no contrast recorded (ContrastBolusAgent empty or a "none" spelling), -4 contrast recorded;
- +2 SliceThickness within ``protocol.thickness_mm`` (2.5-3 mm);
- +1 a reference kernel of its manufacturer (``protocol.kernels``);
- +1 the reference tube voltage (``protocol.kvp``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config.listen import SeriesRules
from ..config.schema import Config
from ..core.contrast import agent_route
from ..io.dicom import ct_image_problem
from ..io.dicom_header import DicomHeader

CALCIUM_WORDS = re.compile(r"calcium|ca[ _-]?score|\bcac\b|agatston|cascore|heartscore", re.I)


@dataclass(frozen=True)
class SeriesFacts:
    """What the rules read of one stack, from the headers read once."""

    series_uid: str
    description: str
    study_description: str
    protocol_name: str
    body_part: str
    sop_class: str
    n_images: int
    coverage_mm: float | None
    thickness_mm: float | None
    contrast_agent: str
    kernel: str
    manufacturer: str
    kvp: float | None
    axial: bool
    problem: str  # why io does not read it as a CT image slice ('' = it does)

    @property
    def texts(self) -> str:
        return " | ".join(t for t in (self.description, self.study_description,
                                      self.protocol_name) if t)


def _axial(orientation: tuple[float, ...] | None) -> bool:
    if orientation is None or len(orientation) != 6:
        return False
    row, col = orientation[:3], orientation[3:]
    return abs(row[0] * col[1] - row[1] * col[0]) >= 0.7071  # z of the slice normal


def facts_of(stack: list[DicomHeader]) -> SeriesFacts:
    """The facts of one stack of headers (one series, or one stack of it)."""
    h = stack[0]
    m = h.meta
    zs = sorted(p[2] for p in (x.position for x in stack) if p is not None)
    return SeriesFacts(
        series_uid=h.series_uid, description=m.series_description,
        study_description=m.study_description, protocol_name=m.protocol_name,
        body_part=m.body_part, sop_class=h.sop_class_uid, n_images=len(stack),
        coverage_mm=(zs[-1] - zs[0]) if len(zs) >= 2 else None,
        thickness_mm=m.slice_thickness_mm, contrast_agent=m.contrast_agent, kernel=m.kernel,
        manufacturer=m.manufacturer, kvp=m.kvp, axial=_axial(h.orientation),
        problem=ct_image_problem(h) or "")


def contrast_recorded(agent: str) -> bool:
    """Whether ContrastBolusAgent records intravascular contrast, by the one reading of the
    agent the scoring uses (:func:`vascalc.core.contrast.agent_route`: "NONE", "-", "N/A" and
    oral-only agents do not).

    >>> contrast_recorded("Omnipaque 350"), contrast_recorded("NONE GIVEN"), contrast_recorded("")
    (True, False, False)
    """
    return agent_route(agent or "") == "intravascular"


def refusal(f: SeriesFacts, rules: SeriesRules) -> str:
    """Why the rules do not let this stack be scored; '' when they do."""
    if f.sop_class not in rules.sop_classes:
        return f"SOP class {f.sop_class or 'missing'} is not one the rules score"
    if f.problem:
        return f.problem
    if not f.axial and f.sop_class == "1.2.840.10008.5.1.4.1.1.2":
        return "not axial"
    if f.n_images < rules.min_slices:
        return f"{f.n_images} images, fewer than {rules.min_slices}"
    if rules.min_coverage_mm and f.sop_class == "1.2.840.10008.5.1.4.1.1.2" and (
            f.coverage_mm is None or f.coverage_mm < rules.min_coverage_mm):
        got = "unknown" if f.coverage_mm is None else f"{f.coverage_mm:.0f} mm"
        return f"covers {got} along the body, less than {rules.min_coverage_mm:g} mm"
    ex = rules.exclude_description_regex
    if ex and re.search(ex, f.texts, re.I):
        return (f"its description ({f.texts!r}) names a body part the rules do not score "
                "(rules.exclude_description_regex)")
    if rules.body_parts is not None and f.body_part and f.body_part not in rules.body_parts:
        return (f"BodyPartExamined {f.body_part} is not one of the rules' body parts "
                f"({', '.join(rules.body_parts)})")
    inc = rules.include_description_regex
    if rules.body_parts is not None and not f.body_part and inc and \
            not re.search(inc, f.texts, re.I):
        return ("no BodyPartExamined, and no description names calcium scoring, the heart, "
                f"chest or aorta ({f.texts or 'no description'!r}; rules.include_description_regex)")
    if not rules.allow_contrast and contrast_recorded(f.contrast_agent):
        return "the header records a contrast agent (rules.allow_contrast is false)"
    return ""


def points(f: SeriesFacts, config: Config) -> tuple[int, list[str]]:
    """The protocol points of an eligible stack, with the reason for each."""
    pc = config.protocol
    why, pts = [], 0
    if CALCIUM_WORDS.search(f"{f.description} {f.protocol_name}"):
        pts += 4
        why.append("calcium-scoring description +4")
    if contrast_recorded(f.contrast_agent):
        pts -= 4
        why.append("contrast recorded -4")
    else:
        pts += 2
        why.append("no contrast recorded +2")
    thick = f.thickness_mm
    if thick is not None and pc.thickness_mm[0] <= thick <= pc.thickness_mm[1]:
        pts += 2
        why.append(f"{thick:g} mm slices +2")
    maker, kernel = f.manufacturer.upper(), f.kernel.upper()
    refs = [k.upper() for m, ks in pc.kernels.items() if maker.startswith(m.upper()) for k in ks]
    if kernel and any(kernel.startswith(k) for k in refs):
        pts += 1
        why.append(f"reference kernel {kernel} +1")
    if f.kvp is not None and abs(f.kvp - pc.kvp) <= 0.5:
        pts += 1
        why.append(f"{pc.kvp:g} kVp +1")
    return pts, why
