"""The ``listen`` section of the config: how ``vascalc listen`` (the DICOM node) decides that a
study is complete, how much it may store, how many studies it scores at once and how it
retries a destination (docs, 'Results into a PACS')."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
