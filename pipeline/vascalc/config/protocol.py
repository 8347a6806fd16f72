"""The ``contrast`` and ``protocol`` sections of the config: the published contrast rules'
parameters, and the reference protocol a row is compared with (``agatston_comparable``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

#: vascular region names (shell patterns) below the diaphragm: the abdominal arterial-phase
#: threshold applies to them; every other vascular or coronary region is thoracic
ABDOMINAL_DEFAULT = [
    "aorta_abdominal", "*abdominal*", "iliac", "iliac_*", "*_iliac_*", "renal_arter*",
    "femoral_arter*", "*mesenteric*", "celiac*", "splenic_arter*", "hepatic_arter*"]

#: Reconstruction kernels of the reference calcium-scoring protocol, by manufacturer (the
#: DICOM Manufacturer, upper case, matched as a prefix) -> kernel names (prefixes of the
#: ConvolutionKernel, upper case). Source: McCollough CH et al., "Coronary artery calcium: a
#: multi-institutional, multimanufacturer international standard for quantification at
#: cardiac CT", Radiology 2007;243:527-538, which fixed one kernel per manufacturer for its
#: standard: GE 'STANDARD', Philips 'B', Siemens 'B35f', Toshiba 'FC12' (Canon, Toshiba's
#: successor, keeps the name). Newer scanners' calcium kernels (e.g. Siemens Sa36, Qr36) are
#: not in that standard: a site adds them under ``protocol.kernels`` with its own source.
KERNELS_DEFAULT: dict[str, list[str]] = {
    "GE": ["STANDARD"],
    "PHILIPS": ["B"],
    "SIEMENS": ["B35F"],
    "TOSHIBA": ["FC12"],
    "CANON": ["FC12"],
}


class ContrastConfig(BaseModel):
    """Parameters of the contrast rules (``scoring.contrast``; docs, conventions: 'Contrast')."""

    model_config = _STRICT

    phase: Literal["auto", "arterial", "venous"] = Field(
        "auto", description="phase_threshold: the contrast phase; auto = the header's "
        "ContrastBolusAgentPhase or SeriesDescription, else inferred from the aortic lumen HU")
    venous_threshold_hu: float = Field(
        300.0, gt=0.0, description="phase_threshold, venous phase (contrast CT study of 1,125 "
        "triphasic CTAs, 2026)")
    arterial_thoracic_threshold_hu: float = Field(
        900.0, gt=0.0, description="phase_threshold, arterial phase, thoracic territories")
    arterial_abdominal_threshold_hu: float = Field(
        800.0, gt=0.0, description="phase_threshold, arterial phase, abdominal territories")
    arterial_lumen_hu: float = Field(
        250.0, gt=0.0, description="phase inferred from the lumen: arterial when the aortic "
        "lumen median is at least this (a choice: 250 HU is the usual adequacy mark of a CT "
        "angiogram), venous below it")
    fixed_regions: list[str] = Field(
        default_factory=lambda: ["aorta", "aorta_*"], description="phase_threshold applies "
        "to contrast-filled regions matching these patterns (the study measured the thoracic "
        "and abdominal aorta); other contrast-filled regions are withheld under it")
    abdominal: list[str] = Field(
        default_factory=lambda: list(ABDOMINAL_DEFAULT),
        description="vascular region name patterns that are abdominal (the rest thoracic)")
    lumen_margin_k: float = Field(
        3.0, gt=0.0, description="a fixed threshold applies only when it is above the lumen "
        "median + this x robust spread (else the lumen is too bright for the rule)")


class ProtocolConfig(BaseModel):
    """The reference calcium-scoring protocol (Agatston 1990; McCollough 2007): a row whose
    scan departs from it says so in ``protocol_deviations`` and is not
    ``agatston_comparable``."""

    model_config = _STRICT

    kvp: float = Field(120.0, gt=0.0, description="reference tube voltage, kVp")
    thickness_mm: tuple[float, float] = Field(
        (2.5, 3.0), description="allowed slice thickness and increment, mm (inclusive)")
    kernels: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in KERNELS_DEFAULT.items()},
        description="manufacturer -> reference kernels (prefixes, case-insensitive)")

    @model_validator(mode="after")
    def _range(self) -> "ProtocolConfig":
        lo, hi = self.thickness_mm
        if not 0 < lo <= hi:
            raise ValueError(f"thickness_mm={list(self.thickness_mm)} must be 0 < low <= high")
        return self
