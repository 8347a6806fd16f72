"""Step 1: the region masks laid out on the CT grid (aorta split, territories merged, masks
grown, ordered and excluded) as one label volume, each region classed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config.regions import RegionsConfig
from ..core.region_names import canonical_region_name, literal_names
from ..core.regions import (
    OUTSIDE,
    RegionMask,
    as_region_mask,
    combine,
    merge_territories,
    region_class,
    split_aorta,
    voxel_z_mm,
)
from ..errors import RegionError
from ..records import CTVolume


@dataclass(frozen=True, eq=False)
class RegionLayout:
    """The regions of a case on the CT grid: ``labels`` (0 = no region, i = ``names[i-1]``),
    the class of each name, the masks as given (after the aorta split and the territory
    merge, before growth: lumen HU is measured in them) and the flags laying them out
    raised."""

    labels: np.ndarray
    names: tuple[str, ...]
    classes: tuple[str, ...]
    masks: dict[str, RegionMask] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    def class_of(self) -> dict[str, str]:
        return dict(zip(self.names, self.classes))

    def index(self, name: str) -> int:
        """The label of ``name`` in :attr:`labels`."""
        return self.names.index(name) + 1


def region_names(rc: RegionsConfig) -> dict[str, list[str]]:
    """What the config names: every pattern it gives a region (classes, territories, order,
    exclusions, margins), the plain names among them with the coronary vessels, and the
    coronary ones, for :func:`vascalc.core.region_names.canonical_region_name`."""
    patterns = [*rc.coronary, *rc.vascular, *rc.bone, *rc.order, *rc.exclude, *rc.margin_mm,
                *(p for pats in rc.territories.values() for p in pats)]
    return {"patterns": patterns,
            "known": literal_names([*rc.coronary_vessels, *patterns]),
            "coronary": literal_names([*rc.coronary_vessels, *rc.coronary])}


def checked_masks(volume: CTVolume, regions, rc: RegionsConfig | None = None,
                  ) -> list[tuple[str, RegionMask]]:
    """The region masks as :class:`RegionMask` records, each on the CT's grid (else ValueError).
    With ``rc``, each name goes through the one name matcher
    (:func:`~vascalc.core.region_names.canonical_region_name`: 'LCx' and 'lad ' take the known
    spelling, 'LADD' is refused with its suggestion). A name given twice (two SEG segments, two
    mask files of one name, 'LAD' and 'lad') or a name vascalc reserves for its own rows
    ('whole', 'outside') is refused by name (RegionError): either would give two rows of one
    name or collide with the built-in rows."""
    out = []
    seen: set[str] = set()
    names = region_names(rc) if rc is not None else None
    for name, m in regions or []:
        if names is not None:
            name = canonical_region_name(name, patterns=names["patterns"],
                                         known=names["known"], coronary=names["coronary"])
        if tuple(m.shape) != tuple(volume.shape):
            raise ValueError(f"region {name!r} has shape {m.shape}, the CT {volume.shape}")
        if name.strip().lower() in ("whole", OUTSIDE):
            raise RegionError(f"a region is named {name!r}, which vascalc reserves for its own "
                              "rows (all calcium, and calcium in no region)",
                              hint="rename that mask, segment or label")
        if name in seen:
            raise RegionError(f"two regions are named {name!r}: one name, one region",
                              hint="merge them into one mask, or give each its own name")
        seen.add(name)
        out.append((name, as_region_mask(m)))
    return out


def layout_regions(volume: CTVolume, rc: RegionsConfig, masks: list[tuple[str, RegionMask]],
                   *, classes: dict[str, str] | None = None) -> RegionLayout:
    """Lay the masks out as ``rc`` says. ``classes`` (a reader's label set) replaces the
    config's name patterns; a reader's labels are taken as given (no split, merge, growth or
    exclusion: they hold calcium only)."""
    flags: list[str] = []
    if classes is None:
        if rc.split_aorta != "none" and "aorta" in dict(masks):
            z = voxel_z_mm(volume.shape, volume.origin_mm, volume.direction, volume.spacing_mm)
            masks, split = split_aorta(masks, z, mode=rc.split_aorta,
                                       plane_z_mm=rc.split_aorta_z_mm)
            if not split:
                flags.append("aorta_not_split")
        masks = merge_territories(masks, rc.territories)
        labels, names = combine(masks, spacing_mm=volume.spacing_mm, order=rc.order,
                                margins_mm=rc.margin_mm, default_margin_mm=rc.default_margin_mm,
                                exclude=rc.exclude)
        cls = {n: region_class(n, coronary=rc.coronary, vascular=rc.vascular, bone=rc.bone)
               for n in names}
    else:
        labels, names = combine(masks, spacing_mm=volume.spacing_mm, order=[], margins_mm={},
                                exclude=[])
        cls = classes
    return RegionLayout(labels=labels, names=tuple(names), classes=tuple(cls[n] for n in names),
                        masks=dict(masks), flags=tuple(flags))
