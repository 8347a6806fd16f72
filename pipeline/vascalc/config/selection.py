"""The ``selection`` section of the config: which CT stacks of a folder tree become cases
(every axial stack by default; the DICOM node's series rules when ``rules`` is given)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .listen import SeriesRules

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SelectionConfig(BaseModel):
    """Which CT stacks of a folder tree become cases (all axial stacks by default)."""

    model_config = _STRICT

    series_description_regex: str | None = Field(
        None, description="keep stacks whose SeriesDescription matches (Python regex, search)")
    kernel_regex: str | None = Field(
        None, description="keep stacks whose ConvolutionKernel matches (Python regex, search)")
    one_per_study: bool = Field(
        False, description="keep one stack per study: SliceThickness closest to the target")
    target_thickness_mm: float = Field(3.0, gt=0.0, description="target of one_per_study")
    min_slices: int = Field(
        3, ge=2, description="smaller stacks inside a series are outliers (localizer-like)")
    rules: SeriesRules | None = Field(
        None, description="the series rules of the DICOM node (listen.rules) applied to a "
        "folder tree too: a stack they refuse is listed in discovery.csv with the reason "
        "(null: every axial CT stack is scored)")

    @model_validator(mode="after")
    def _regexes(self) -> "SelectionConfig":

        for name in ("series_description_regex", "kernel_regex"):
            pattern = getattr(self, name)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise ValueError(f"{name}={pattern!r} is not a valid regex: {err}") from None
        return self
