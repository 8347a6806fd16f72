"""Spectral series kinds read from a header: what a dual-energy or photon-counting series is.

One registry (:data:`SERIES_KINDS`) names every kind, whether its pixels are HU that calcium
can be scored on, and what vascalc does with it; :func:`classify` reads the kind from, in
order of trust:

1. the DICOM multi-energy CT attributes (Supplement 188, "Multi-energy CT Images", 2018):
   ImageType value 4 (VMI, MAT_SPECIFIC, MAT_REMOVED, MAT_FRACTIONAL, MAT_VALUE_BASED,
   MAT_MODIFIED, EFF_ATOMIC_NUM, ELECTRON_DENSITY; any other MAT_ term is a map),
   MonoenergeticEnergyEquivalent
   (0018,937C, keV) and MultienergyCTAcquisition (0018,9361);
2. ImageType words and the vendors' series description conventions (docs, 'Spectral CT'):
   Siemens ("MonoE 70keV", "Mono+ 70 keV", "VNC", "VNI", "PureCalcium", "Iodine", "A_80kV" /
   "B_Sn150kV", "Mixed"), Philips ("MonoE 70 keV", "VNC", "Iodine density", "Iodine no water",
   "Z effective", "Electron density", "Calcium suppressed", "SBI"), GE ("Monochromatic 70keV",
   "VUE", "Iodine(Water)", "Water(Iodine)", "Effective Z"), Canon ("Spectral 70keV", "VNC",
   "Iodine map");
3. otherwise ``conventional``.

Examples
--------
>>> classify({"SeriesDescription": "Cardiac MonoE 70keV", "KVP": "120"})
('vmi', 70.0, 0.0, '', 'description')
>>> classify({"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MAT_SPECIFIC"],
...           "SeriesDescription": "Iodine density"})[0]
'iodine_map'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..core.spectral import TIN_MM


@dataclass(frozen=True)
class SeriesKind:
    """One kind of series: its name (the ``series_kind`` column), whether its pixels are HU
    calcium is scored on, and what vascalc does with it."""

    name: str
    scored: bool
    meaning: str


SERIES_KINDS: dict[str, SeriesKind] = {k.name: k for k in (
    SeriesKind("conventional", True, "an ordinary single-energy image at its KVP"),
    SeriesKind("vmi", True, "virtual monoenergetic image at its keV: scored at the threshold "
               "of scoring.energy_threshold for that keV"),
    SeriesKind("mixed", True, "blended image of a dual-energy pair (about 120 kVp-like): "
               "scored at its header KVP; its effective energy is the vendor's blend"),
    SeriesKind("low_kv", True, "the low-kV image of a dual-energy pair, scored at its kV"),
    SeriesKind("high_kv", True, "the high-kV (often tin-filtered) image of a pair, scored at "
               "its kV"),
    SeriesKind("vnc", True, "virtual non-contrast / non-iodine image: scored as "
               "scoring.vnc says, flagged vnc_underscores (vendors' VNC removes calcium too)"),
    SeriesKind("calcium_preserving", True, "the calcium-preserving non-contrast image vascalc "
               "makes from a dual-energy pair (vascalc.spectral_pair), at 120 kVp"),
    SeriesKind("iodine_map", False, "iodine density map (mg/mL, not HU): never scored"),
    SeriesKind("material_map", False, "a material density, fraction, effective Z or electron "
               "density map (not HU): never scored"),
    SeriesKind("calcium_suppressed", False, "calcium-suppressed image: its calcium was "
               "removed on purpose, so it is never scored for calcium"),
)}

#: Supplement 188 ImageType value 4 -> kind (MAT_REMOVED: see _removed)
_IMAGE_TYPE_4 = {"VMI": "vmi", "MAT_SPECIFIC": "material_map", "MAT_FRACTIONAL": "material_map",
                 "MAT_VALUE_BASED": "material_map", "MAT_MODIFIED": "material_map",
                 "EFF_ATOMIC_NUM": "material_map", "ELECTRON_DENSITY": "material_map"}
_F = re.IGNORECASE
_CALCIUM_SUPPRESSED = re.compile(r"ca(lcium)?[\s_-]*supp|\bcasupp|calcium[\s_-]*removed", _F)
_VNC = re.compile(r"\bvnc\b|\bvni\b|\bvue\b|virtual[\s_-]*(un|non)[\s_-]*(enhanced|contrast|"
                  r"iodine)|non[\s_-]*iodine|pure[\s_-]*calcium|iodine[\s_-]*removed", _F)
_WATER_MD = re.compile(r"water\s*\(\s*iodine\s*\)|\bmd\b", _F)  # GE material density, mg/cm3
#: an iodine map says so: 'Iodine' alone or before a thickness, 'Iodine map/density/overlay/no
#: water/(Water)'; a description that merely mentions iodine contrast is not a map
_IODINE = re.compile(r"iodine\s*(map|dens|overlay|no[\s_-]*water|only|conc|\(|$|[\s_-]+\d)|"
                     r"^\s*iodine\b|\bjod[\s_-]*(map|bild)|\bi[\s_-]*map\b|\bidm\b", _F)
_MATERIAL = re.compile(r"z[\s_-]*eff|effective[\s_-]*(z|atomic)|electron[\s_-]*density|"
                       r"\brho\b|uric[\s_-]*acid|\bmaterial\b|fat[\s_-]*fraction|"
                       r"\(water\)|\bwater[\s_-]*map", _F)
_KEV = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d+)?)\s*kev\b", _F)
_MONO = re.compile(r"mono(?:e|\+|chromatic|energetic)?[\s_:+-]*(\d{2,3}(?:\.\d+)?)\b", _F)
_TIN = re.compile(r"(?<![a-z])sn[\s_-]?(\d{2,3})(?:\s*kv)?\b", _F)
_KV = re.compile(r"(?<![\d.])(\d{2,3})\s*kvp?\b", _F)
_PAIR = re.compile(r"(?<![a-z])de(?![a-z])|dual[\s_-]*energy|\bdect\b|spectral|"
                   r"(?<![a-z0-9])[ab][\s_-](sn)?\d{2,3}\s*kv", _F)
_MIXED = re.compile(r"\bmixed\b|\bblend|\bsbi\b|\bm[_\s]?0\.\d", _F)


def _text(v: Any) -> str:
    return "\\".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v or "")


def _float(v: Any) -> float | None:
    try:
        x = float(v[0] if isinstance(v, (list, tuple)) else v)
    except (TypeError, ValueError, IndexError):
        return None
    return x if 0.0 < x < 1000.0 else None


def _map_kind(desc: str) -> str:
    return "iodine_map" if _IODINE.search(desc) and not _VNC.search(desc) else "material_map"


def classify(v: dict[str, Any]) -> tuple[str, float | None, float, str, str]:
    """(kind, energy_kev, tin_mm, material, source) of one header's values (keywords as in
    :data:`vascalc.io.dicom_header._WANTED`): ``energy_kev`` for a VMI, ``tin_mm`` when the
    beam was tin-filtered, ``material`` what a map holds (for the refusal), ``source`` where
    the kind was read: 'image_type', 'multi_energy_attribute', 'description' or ''."""
    image_type = [t.strip().upper() for t in (v.get("ImageType") or [])] \
        if isinstance(v.get("ImageType"), list) else [_text(v.get("ImageType")).upper()]
    desc = " ".join(_text(v.get(k)) for k in ("SeriesDescription", "ImageComments"))
    words = " ".join(image_type[2:]).replace("_", " ") + " " + desc
    kev = _float(v.get("MonoenergeticEnergyEquivalent"))
    tin = TIN_MM if "TIN" in _text(v.get("FilterMaterial")).upper() \
        or re.search(r"\bSN\b", _text(v.get("FilterMaterial")).upper()) else 0.0
    m = _TIN.search(desc)
    tin = TIN_MM if m else tin
    vt4 = image_type[3] if len(image_type) > 3 else ""
    if vt4 == "MAT_REMOVED":
        kind = "calcium_suppressed" if _CALCIUM_SUPPRESSED.search(words) else "vnc"
        return kind, None, tin, "", "image_type"
    if vt4 in _IMAGE_TYPE_4 or vt4.startswith("MAT_"):
        if vt4 == "VMI":
            kev = kev or _keV(words)
            return "vmi", kev, 0.0, "", "image_type"
        kind = _map_kind(words)
        return kind, None, tin, vt4.lower(), "image_type"
    if kev is not None:
        return "vmi", kev, 0.0, "", "multi_energy_attribute"
    if _CALCIUM_SUPPRESSED.search(words):
        return "calcium_suppressed", None, tin, "", "description"
    if _WATER_MD.search(words):
        return "material_map", None, tin, "water density (mg/cm3)", "description"
    if _VNC.search(words):
        return "vnc", _keV(words), tin, "", "description"
    if _IODINE.search(words) or _MATERIAL.search(words):
        return _map_kind(words), None, tin, "", "description"
    kev = _keV(words)
    if kev is not None:
        return "vmi", kev, 0.0, "", "description"
    me = _text(v.get("MultienergyCTAcquisition")).upper() == "YES"
    if _MIXED.search(words):
        return "mixed", None, tin, "", "description"
    kv = pair_kv(desc)
    if kv is not None and (me or _PAIR.search(words)):
        return ("high_kv" if tin or kv >= 130 else "low_kv"), None, tin, "", "description"
    if me:
        return "mixed", None, tin, "", "multi_energy_attribute"
    return "conventional", None, tin, "", ""


def _keV(words: str) -> float | None:
    m = _KEV.search(words) or _MONO.search(words)
    return _float(m.group(1)) if m else None


def pair_kv(description: str) -> float | None:
    """The kV a pair image's description names ('A_80kV', 'Sn150'), or None.

    >>> pair_kv("B_Sn150kV 0.6"), pair_kv("Cardiac A_80kV")
    (150.0, 80.0)
    """
    m = _TIN.search(description) or _KV.search(description)
    return float(m.group(1)) if m else None


#: the header elements the kinds are read from, beside those dicom_header reads anyway
#: (ImageType, SeriesDescription, KVP): tag -> (keyword, VR)
SPECTRAL_TAGS: dict[int, tuple[str, str]] = {
    0x00204000: ("ImageComments", "LT"), 0x00187050: ("FilterMaterial", "CS"),
    0x00189361: ("MultienergyCTAcquisition", "CS"),
    0x0018937C: ("MonoenergeticEnergyEquivalent", "FD"),
}
