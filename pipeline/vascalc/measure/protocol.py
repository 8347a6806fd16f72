"""Step 5: the protocol gate. The Agatston score is defined on non-contrast CT at 120 kVp with
3 mm slices (Agatston AS et al., J Am Coll Cardiol 1990;15:827-832), and its multicentre
standard fixes 2.5-3.0 mm slices, one soft-tissue kernel per manufacturer and ECG
triggering (McCollough CH et al., Radiology 2007;243:527-538). A row whose scan departs from
that says how, by codes of the quality-flag registry, and is not ``agatston_comparable``."""

from __future__ import annotations

from ..config.schema import Config
from ..records import CTVolume
from .contrast import ContrastPlan
from .layout import RegionLayout

#: voxel flags of the reader that are protocol deviations too
_FROM_FLAGS = ("lossy_compression",)


def deviations(volume: CTVolume, config: Config, *, scope: str, kvp_adapted: bool,
               plan: ContrastPlan, layout: RegionLayout | None,
               flags: tuple[str, ...]) -> tuple[str, ...]:
    """The protocol deviations of a scored scan, in a fixed order (codes of
    :mod:`vascalc.flags`): kVp, slice thickness and increment, kernel, ECG gating (coronary
    scope only), contrast, a field of view that cuts a vascular or coronary region (its mask
    touches the image's edge in plane), lossy compression."""
    pc, meta = config.protocol, volume.meta
    out = []
    if meta.kvp is None:
        out.append("kvp_unknown")
    elif abs(meta.kvp - pc.kvp) > 0.5 and not kvp_adapted:
        out.append("kvp_not_120")
    lo, hi = pc.thickness_mm
    thickness = meta.slice_thickness_mm
    if thickness is None:
        out.append("slice_thickness_unknown")  # unknown is not comparable: the fact is named
    elif not lo - 1e-6 <= thickness <= hi + 1e-6:
        out.append("slice_thickness_off_protocol")
    increment = float(volume.spacing_mm[0])
    if not lo - 1e-3 <= increment <= hi + 1e-3:
        out.append("slice_increment_off_protocol")
    out.extend(_kernel(meta.manufacturer, meta.kernel, pc.kernels))
    if scope == "coronary" and meta.ecg_gated is None:
        out.append("ecg_gating_not_recorded")
    elif scope == "coronary" and meta.ecg_gated is False:
        out.append("ecg_not_gated")
    if plan.enhanced:
        out.append("contrast_enhanced")
    if layout is not None:
        out.extend(f"fov_cuts:{n}" for n, c in zip(layout.names, layout.classes)
                   if c in ("vascular", "coronary") and n in layout.masks
                   and _touches_edge(layout.masks[n]))
    out.extend(f for f in _FROM_FLAGS if f in flags)
    return tuple(out)


def _kernel(manufacturer: str, kernel: str, kernels: dict[str, list[str]]) -> list[str]:
    if not kernel.strip():
        return ["kernel_unknown"]
    maker = manufacturer.strip().upper()
    listed = next((v for k, v in kernels.items() if maker.startswith(k.upper())), None)
    name = kernel.strip().upper()
    if listed is None or not any(name.startswith(p.upper()) for p in listed):
        return ["kernel_not_reference"]
    return []


def _touches_edge(mask) -> bool:
    """Whether a region mask reaches the first or last row or column of the image."""
    if not mask.any():
        return False
    _, rows, cols = mask.box
    return (rows.start == 0 or cols.start == 0 or rows.stop == mask.shape[1]
            or cols.stop == mask.shape[2])
