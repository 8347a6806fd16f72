"""The ``review`` section of the config: the labels a reader gives candidate lesions in
``vascalc review``, each with its class (coronary, vascular, bone, other), its key and colour.

The default set is the one clinical calcium-scoring software offers: the four main coronary
arteries (LM, LAD, LCX, RCA: the vessels of the CAC-DRS vessel count, Hecht HS et al.,
J Cardiovasc Comput Tomogr 2018;12:185-191), and what is calcium but not coronary (aorta,
aortic valve, mitral annulus, other vascular, bone) or not calcium at all (noise/artefact).
Only coronary-class labels enter the coronary scope, risk category and CAC-DRS.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.region_names import near_miss

#: the coronary vessels a reader's label name is matched against (CAC-DRS N1-N4)
CORONARY_VESSELS = ("LM", "LAD", "LCX", "RCA")

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ReviewLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description="region name in the tables (letters, digits, _)")
    title: str = Field("", description="what the page shows (default: the name)")
    label_class: Literal["coronary", "vascular", "bone", "other"] = Field(
        alias="class", description="coronary labels make the coronary scope; vascular ones "
        "the vascular scope with them; bone and other are in neither")
    key: str = Field(description="the keyboard key that gives the label (one character)")
    colour: str = Field(description="outline colour on the page (#rrggbb)")

    @model_validator(mode="before")
    @classmethod
    def _spelling(cls, data: Any) -> Any:
        """A name that is a coronary vessel's but for case and whitespace takes its spelling,
        through the one name matcher (:mod:`vascalc.core.region_names`): 'lad' is 'LAD'."""
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            folded = data["name"].strip().casefold()
            known = next((v for v in CORONARY_VESSELS if v.casefold() == folded), None)
            if known is not None:
                data = {**data, "name": known}
        return data

    @model_validator(mode="after")
    def _check(self) -> "ReviewLabel":
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", self.name):
            raise ValueError(f"label name {self.name!r}: letters, digits and _ only, starting "
                             "with a letter (it becomes a region name and a column value)")
        close = near_miss(self.name, CORONARY_VESSELS, CORONARY_VESSELS)
        if self.label_class != "coronary" and close is not None:
            # 'LADD' of class other: a reader's LAD calcium would leave the coronary score
            raise ValueError(f"label {self.name!r} of class {self.label_class} is close to the "
                             f"coronary vessel {close!r} but not it: name it {close!r}, or "
                             "give it class coronary if it is a coronary segment")
        if len(self.key) != 1 or not self.key.isprintable() or self.key == " ":
            raise ValueError(f"label {self.name!r}: key must be one printable character")
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", self.colour):
            raise ValueError(f"label {self.name!r}: colour must be #rrggbb, got {self.colour!r}")
        return self


def _label(name: str, cls: str, key: str, colour: str, title: str = "") -> ReviewLabel:
    return ReviewLabel.model_validate({"name": name, "class": cls, "key": key, "colour": colour,
                                       "title": title})


DEFAULT_LABELS = [
    _label("LM", "coronary", "1", "#e8112d", "LM"),
    _label("LAD", "coronary", "2", "#ff8c00", "LAD"),
    _label("LCX", "coronary", "3", "#ffd700", "LCX"),
    _label("RCA", "coronary", "4", "#c71585", "RCA"),
    _label("aorta", "vascular", "a", "#00c8ff", "aorta"),
    _label("aortic_valve", "other", "v", "#1e90ff", "aortic valve"),
    _label("mitral_annulus", "other", "m", "#7cfc00", "mitral annulus"),
    _label("other_vascular", "vascular", "o", "#ff69b4", "other vascular"),
    _label("bone", "bone", "b", "#d9d9d9", "bone"),
    _label("noise", "other", "n", "#8a6bbf", "noise / artefact"),
]


class ReviewConfig(BaseModel):
    """How ``vascalc review`` labels lesions."""

    model_config = _STRICT

    labels: list[ReviewLabel] = Field(
        default_factory=lambda: list(DEFAULT_LABELS),
        description="the labels a reader can give, in the order the page lists them")
    organization: str = Field(
        "unspecified", min_length=1, max_length=64,
        description="the readers' organization, named as the verifying organization of a "
        "final SR (DICOM VerifyingOrganization, LO)")

    @model_validator(mode="after")
    def _check(self) -> "ReviewConfig":
        if not self.labels:
            raise ValueError("review.labels is empty: give at least one label")
        for what in ("name", "key"):
            seen: set[str] = set()
            for lab in self.labels:
                v = getattr(lab, what).lower() if what == "key" else getattr(lab, what)
                if v in seen:
                    raise ValueError(f"review.labels: {what} {v!r} is given twice")
                seen.add(v)
        if "outside" in {lab.name for lab in self.labels}:
            raise ValueError("review.labels: 'outside' is reserved (calcium in no label)")
        return self

    def by_name(self) -> dict[str, ReviewLabel]:
        return {lab.name: lab for lab in self.labels}

    def coronary(self) -> list[str]:
        return [lab.name for lab in self.labels if lab.label_class == "coronary"]
