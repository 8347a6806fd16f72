"""Scopes: what a scan's headline numbers cover (pure). docs, conventions: 'Scopes'; DESIGN.md, 'Scopes'.

- ``coronary``: the union of the regions classed coronary (``regions.coronary``: LM, LAD, LCX,
  RCA masks ...), or the whole field of view when the user declares it coronary
  (``scoring.fov_is_coronary``: a phantom). The only scope that fills the risk category and
  CAC-DRS, which are defined on coronary calcium (Agatston 1990; Hecht et al., CAC-DRS, JCCT
  2018).
- ``vascular``: the union of the regions classed vascular or coronary (``regions.vascular``),
  each kept voxel counted once (regions never overlap after :func:`vascalc.core.regions.combine`).
- ``bone_excluded``: all calcium in the field of view without what the bone heuristic of
  :mod:`vascalc.core.bone` removes; ``whole_volume``: all calcium in the field of view.
- ``auto``: the narrowest the case allows: coronary when every vascular region is coronary,
  vascular when any region is vascular, else the field of view declared coronary, else
  whole_volume.
"""

from __future__ import annotations

import numpy as np

from ..errors import ScopeError
from ..records import RegionScore
from .score import density_score, mass_mg

#: scope -> what its headline covers (the docs and the data dictionary say the same)
SCOPES: dict[str, str] = {
    "coronary": "coronary calcium: the union of the coronary regions (or a field of view the "
                "user declared coronary)",
    "vascular": "vascular calcium: the union of the regions declared vascular, each voxel "
                "once",
    "bone_excluded": "all calcium in the field of view except what the bone heuristic removed "
                     "(not a vascular score)",
    "whole_volume": "all calcium in the field of view, bone included (not a vascular score)",
}


def resolve_scope(requested: str, classes: dict[str, str], *, fov_is_coronary: bool,
                  has_regions: bool) -> tuple[str, tuple[str, ...]]:
    """The scope a case is scored in and the regions its headline sums (empty: the field of
    view). ``classes`` maps each region name to its class. Raises ScopeError when the case
    cannot give what was asked (never a wider number in its place)."""
    coronary = tuple(n for n, c in classes.items() if c == "coronary")
    vascular = tuple(n for n, c in classes.items() if c in ("vascular", "coronary"))
    if requested == "auto":
        if vascular:
            return ("coronary", coronary) if coronary == vascular else ("vascular", vascular)
        return ("coronary", ()) if fov_is_coronary else ("whole_volume", ())
    if requested == "coronary" and (coronary or fov_is_coronary):
        return "coronary", coronary
    if requested == "vascular" and vascular:
        return "vascular", vascular
    if requested in ("coronary", "vascular"):
        why = (f"none of the case's regions ({', '.join(sorted(classes))}) matches "
               f"regions.{requested}" if has_regions else "the case has no region masks")
        raise ScopeError(f"scope {requested} needs {requested} regions, and {why}",
                         hint=_SCOPE_HINT[requested])
    return requested, ()


_SCOPE_HINT = {
    "coronary": "give LM/LAD/LCX/RCA masks (manifest column regions, or --regions), set "
                "scoring.fov_is_coronary for a coronary-only scan, or choose another scope",
    "vascular": "give region masks (e.g. TotalSegmentator's, with --config totalsegmentator)"
                ", or set scoring.scope: whole_volume to score all calcium in the field of view",
}


def aggregate(split, name: str, indices: list[int], *, unit: float, voxel_volume_mm3: float,
              c: float | None, water_hu: float, pixel_area_mm2: float, scale: float,
              agatston: bool) -> RegionScore:
    """Scores over the union of the regions at ``indices`` of a :class:`RegionSplit`: sums of
    their voxels (no voxel is in two regions) and the 3-D lesions with a voxel in any."""
    idx = np.asarray(indices, dtype=np.int64)
    ag = float(split.agatston[idx].sum())
    n_vox = int(split.n_voxels[idx].sum())
    m = mass_mg(float(split.sum_hu[idx].sum()), n_vox, voxel_volume_mm3, c, water_hu)
    lesions = np.unique(split.piece_lesion[np.isin(split.piece_region, idx)])
    return RegionScore(
        region=name, agatston=ag, volume_mm3=float(split.volume_units[idx].sum() * unit),
        mass_mg=None if m is None else float(m), n_lesions=int(lesions.size),
        n_slice_lesions=None, region_class=name,
        density_score=density_score(ag, n_vox, pixel_area_mm2, scale) if agatston else None)


def risk_basis(scope: str, *, agatston: bool, regions: tuple[str, ...],
               withheld: str = "", threshold_rule: str = "",
               review_pending: bool = False) -> str:
    """Whether the headline is *the coronary score*, and why: the one definition every clinical
    number (risk category, CAC-DRS, the MESA risk) is given on. It is when the scope is coronary
    (coronary regions, a reader's coronary labels, or a field of view declared coronary), the
    score is an Agatston score, given (not withheld), found at the scan threshold (no contrast
    rule) and, for a reader's labels, from a finished read. The text names what it rests on, or
    starts with 'empty:' and says why not (:func:`is_coronary_score`).

    >>> risk_basis("coronary", agatston=True, regions=())
    'field of view declared coronary (scoring.fov_is_coronary)'
    >>> is_coronary_score(risk_basis("coronary", agatston=True, regions=("LAD",), withheld="x"))
    False
    """
    if not agatston:
        return "empty: scoring.agatston is false (no Agatston score)"
    if scope != "coronary":
        return (f"empty: scope {scope}; risk categories and CAC-DRS are defined for coronary "
                "calcium only")
    if review_pending:
        return ("empty: the reader has not marked the case done (review incomplete); its "
                "labels may be partial")
    if withheld:
        return f"empty: the coronary score is withheld ({withheld})"
    if threshold_rule:
        return (f"empty: coronary calcium found by the contrast rule {threshold_rule}, not an "
                "Agatston score at 130 HU")
    if regions:
        return f"coronary regions: {', '.join(regions)}"
    return "field of view declared coronary (scoring.fov_is_coronary)"


def is_coronary_score(basis: str) -> bool:
    """Whether a :func:`risk_basis` text says the headline is the coronary score."""
    return bool(basis) and not basis.startswith("empty")
