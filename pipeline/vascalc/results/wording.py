"""What a scans row's headline says, in words: one wording for the console, the index and the
report, so none of them prints a bare 'Agatston' for a number that is not one."""

from __future__ import annotations

from typing import Any

from ..flags import describe, lookup


def headline_warning(codes: str) -> str:
    """The meaning of each flag (or protocol deviation) that says the headline is not the
    calcium it seems to be, from the registry; '' when none is set."""
    seen: list[str] = []
    for f in (codes or "").split(";"):
        entry = lookup(f) if f else None
        if entry is not None and entry.warns_headline and describe(f) not in seen:
            seen.append(describe(f))
    return f" [WARNING: {' '.join(seen)}]" if seen else ""


def headline_text(scan: dict[str, Any]) -> str:
    """The headline of an ok scans row in words: what the number is (score_label), the
    numbers, whether it is comparable with the reference protocol, and the warnings.

    >>> headline_text({"score_label": "coronary Agatston at 130 HU", "agatston": 12.0,
    ...     "volume_mm3": 9.5, "mass_mg": None, "n_lesions": 2, "agatston_comparable": True,
    ...     "protocol_deviations": "", "quality_flags": "", "withheld_reason": ""})
    'coronary Agatston at 130 HU 12.0, volume 9.5 mm3, 2 lesions'
    >>> headline_text({"score_label": "vascular score withheld", "withheld_reason": "aorta: "
    ...     "contrast-filled lumen", "quality_flags": "contrast_enhanced",
    ...     "protocol_deviations": "contrast_enhanced"})[:58]
    'vascular score withheld (aorta: contrast-filled lumen) [WA'
    """
    label = scan.get("score_label") or f"{scan.get('scope') or ''} score"
    codes = ";".join(c for c in (scan.get("quality_flags"), scan.get("protocol_deviations"))
                     if c)
    if scan.get("withheld_reason"):
        return f"{label} ({scan['withheld_reason']}){headline_warning(codes)}"
    ag = "" if scan.get("agatston") is None else f" {scan['agatston']:.1f},"
    mass = "" if scan.get("mass_mg") is None else f", mass {scan['mass_mg']:.1f} mg"
    text = (f"{label}{ag} volume {scan['volume_mm3']:.1f} mm3{mass}, "
            f"{scan['n_lesions']} lesions")
    if scan.get("agatston") is not None and not _true(scan.get("agatston_comparable")):
        off = (scan.get("protocol_deviations") or "").replace(";", ", ")
        text += f"; not comparable with the reference protocol ({off or 'contrast rule'})"
    return text + headline_warning(codes)


def _true(v: Any) -> bool:
    return v is True or str(v).lower() == "true"
