"""The ``listen`` section of the config: how ``vascalc listen`` (the DICOM node) decides that a
study is complete, how much it may store, how many studies it scores at once and how it
retries a destination (docs, 'Results into a PACS')."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: CT Image Storage and Enhanced CT Image Storage (PS3.4 B.5)
CT_IMAGE_CLASSES = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"]


class SeriesRules(BaseModel):
    """Which series of a study may be scored: one rule set, read by
    :func:`vascalc.run.eligibility.refusal` for ``vascalc listen`` (``listen.rules``, a
    conservative default: calcium-scoring CT of the chest or heart only) and, when given, for
    ``vascalc run`` (``selection.rules``). Every text rule is a Python regex searched without
    case in SeriesDescription, StudyDescription and ProtocolName."""

    model_config = _STRICT

    sop_classes: list[str] = Field(
        default_factory=lambda: list(CT_IMAGE_CLASSES),
        description="SOP classes that may be scored (CT Image Storage, Enhanced CT)")
    min_slices: int = Field(10, ge=1, description="fewer images cannot hold a calcium score "
                            "worth reporting")
    min_coverage_mm: float = Field(
        40.0, ge=0.0, description="the stack's extent along the body, first to last slice "
        "position; a thinner slab cannot cover the heart")
    exclude_description_regex: str | None = Field(
        r"head|brain|skull|crani|cerebr|neuro|sinus|orbit|facial|dental|temporal bone|"
        r"c-?spine|cervical|neck|extremit|knee|ankle|foot|wrist|hand|elbow|shoulder",
        description="a description naming another body part: the series is not scored")
    include_description_regex: str | None = Field(
        r"calcium|ca[ _-]?sc|\bcac\b|agatston|cascore|heartscore|heart|cardi|coronar|chest|"
        r"thora|aort|lung|vascular",
        description="a description naming calcium scoring, the heart, chest or aorta; a series "
        "whose BodyPartExamined is empty must match it (null: no such requirement)")
    body_parts: list[str] | None = Field(
        default_factory=lambda: ["CHEST", "HEART", "THORAX", "CARDIAC", "CORONARY", "AORTA",
                                 "CHEST_ABDOMEN", "CHESTABDOMEN", "CHEST_ABDOMEN_PELVIS",
                                 "CHESTABDPELVIS", "TORSO", "WHOLEBODY", "ABDOMEN"],
        description="BodyPartExamined values that may be scored (DICOM PS3.16 Annex L terms); "
        "an empty BodyPartExamined falls back to include_description_regex; null: any")
    allow_contrast: bool = Field(
        False, description="score a series whose header records a contrast agent "
        "(ContrastBolusAgent); false: only non-contrast series")

    @field_validator("exclude_description_regex", "include_description_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as err:
                raise ValueError(f"{v!r} is not a valid regex: {err}") from None
        return v

    @field_validator("body_parts")
    @classmethod
    def _upper(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [b.strip().upper() for b in v]


class ListenConfig(BaseModel):
    """The DICOM node (vascalc listen, vascalc send)."""

    model_config = _STRICT

    quiet_s: float = Field(
        5.0, gt=0.0, le=3600.0, description="a study is complete when its last association "
        "ended and nothing arrived for it for this many seconds")
    max_bytes: int = Field(
        50 * 2**30, gt=0, description="received instances kept under OUT/incoming; beyond it a "
        "C-STORE is refused with 'out of resources' (0xA700)")
    workers: int = Field(2, ge=1, le=64, description="studies scored at once")
    retry_base_s: float = Field(
        2.0, gt=0.0, description="first wait before resending to a destination that failed; "
        "doubled after each failure")
    retry_max_s: float = Field(300.0, gt=0.0, description="longest wait between resends")
    max_attempts: int = Field(
        20, ge=1, description="sends to one destination before the item is given up and "
        "reported failed in the study's record")
    timeout_s: float = Field(30.0, gt=0.0, description="network timeout of one association or "
                             "STOW-RS request")
    rules: SeriesRules = Field(
        default_factory=SeriesRules,
        description="which series of a received study may be scored (conservative: "
        "calcium-scoring CT of the chest or heart)")
