"""Step 5: what the headline covers and says: the scope, its score and the risk fields
(moved out of :mod:`vascalc.analyse` so that a reader's scores on the review page and in
rescore are chosen by the same function, :func:`vascalc.measure.reads.reader_split`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config.schema import Config
from ..core.regions import OUTSIDE
from ..core.scopes import is_coronary_score, resolve_scope, risk_basis
from ..core.score import cac_drs, risk_category
from ..core.thresholds import Thresholds
from ..records import CTVolume, LesionLabels, RegionScore
from .breakdown import Breakdown
from .calcium import Calcium
from .contrast import ContrastPlan
from .layout import RegionLayout


@dataclass(frozen=True, eq=False)
class Prepared:
    """The scan made ready for the calcium search: its HU (bone removed under scope
    bone_excluded, the contrast plan applied), the thresholds, the region layout and the
    contrast plan."""

    volume: CTVolume
    thresholds: Thresholds
    base_scope: str  # whole_volume or bone_excluded: what the field of view's total covers
    layout: RegionLayout | None
    plan: ContrastPlan
    kvp_adapted: bool


@dataclass(frozen=True)
class Headline:
    """What the case's headline covers and says: the scope and its regions, the score, why
    it is withheld ('' = it is given), and the risk fields with their basis."""

    scope: str
    regions: tuple[str, ...]
    score: RegionScore
    withheld: str
    risk_category: str
    cac_drs: str
    cac_drs_vessels: str
    risk_basis: str


def unconfirmed_rest(breakdown: Breakdown, reads: LesionLabels | None) -> RegionScore | None:
    """The calcium a reader marked done but left unlabelled without confirming it is not
    coronary (DESIGN.md, 'Results over time in the lab': a final only when every calcium
    lesion is labelled or the reader confirmed the rest is not coronary); None when there is
    none, the read is not done (it is incomplete anyway) or the reader confirmed it."""
    if reads is None or not reads.done or reads.rest_confirmed_at:
        return None
    rest = next((r for r in breakdown.regions if r.region == OUTSIDE), None)
    return rest if rest is not None and (rest.volume_mm3 or 0.0) > 0 else None


def choose_headline(prepared: Prepared, config: Config, calcium: Calcium,
                    breakdown: Breakdown, *, reads: LesionLabels | None,
                    has_regions: bool) -> Headline:
    """The scope (:func:`vascalc.core.scopes.resolve_scope`), its score, and the risk fields:
    given for a coronary Agatston score only, and never for a withheld one, one found above
    a contrast rule's threshold (that is not the Agatston score the categories are set on),
    or a reader's that is not final (not done, or calcium left unlabelled unconfirmed)."""
    sc, rk = config.scoring, config.risk
    requested = "coronary" if reads is not None else (
        prepared.base_scope if sc.scope in ("whole_volume", "bone_excluded") else sc.scope)
    scope, members = resolve_scope(requested, breakdown.classes(),
                                   fov_is_coronary=sc.fov_is_coronary,
                                   has_regions=has_regions or reads is not None)
    if members:
        score = breakdown.aggregates[scope]
    else:
        score = replace(calcium.whole, region=scope, withheld=prepared.plan.whole_withheld)
    th = prepared.thresholds
    if th.source.startswith("energy_physics") and abs(th.threshold_hu - sc.threshold_hu) > 0.05:
        # a modelled threshold: not a published Agatston convention, so named like a contrast
        # rule's (docs, 'Spectral CT')
        score = replace(score, threshold_rule=score.threshold_rule or th.source)
    # one definition of "the coronary score" for every clinical number (core.scopes)
    basis = risk_basis(scope, agatston=sc.agatston, regions=members, withheld=score.withheld,
                       threshold_rule=score.threshold_rule,
                       review_pending=reads is not None and not reads.done)
    rest = unconfirmed_rest(breakdown, reads)
    if is_coronary_score(basis) and prepared.volume.meta.series_kind == "vnc" \
            and not config.risk.accept_vnc:
        basis = ("empty: virtual non-contrast score (VNC under-scores calcium; "
                 "risk.accept_vnc is false)")
    elif is_coronary_score(basis) and rest is not None:
        basis = (f"empty: {rest.volume_mm3:,.1f} mm3 of calcium (Agatston "
                 f"{rest.agatston:,.1f}) is unlabelled and the reader did not "
                 "confirm it is not coronary (review incomplete)")
    risky = is_coronary_score(basis)
    vessels = reads.coronary() if reads is not None else config.regions.coronary_vessels
    return Headline(
        scope=scope, regions=members, score=score, withheld=score.withheld,
        risk_category=risk_category(score.agatston, upper_bounds=rk.agatston_upper_bounds)
        if risky and score.agatston is not None else "",  # withheld: None, never category 0
        cac_drs=cac_drs(score.agatston, lower_bounds=rk.cac_drs_lower_bounds)
        if risky and score.agatston is not None else "",
        cac_drs_vessels=_cac_drs_vessels(breakdown.regions, vessels) if risky else "",
        risk_basis=basis)


def _cac_drs_vessels(region_scores, vessel_names) -> str:
    """CAC-DRS vessel modifier N1-N4: the number of coronary vessels (LM, LAD, LCX, RCA by
    default) with calcium (Hecht HS et al., CAC-DRS, J Cardiovasc Comput Tomogr
    2018;12:185-191); empty without coronary regions or without calcium in them."""
    vessels = set(vessel_names)
    given = [r for r in region_scores if r.region in vessels]
    if not given:
        return ""
    n = sum(1 for r in given if (r.agatston or 0.0) > 0)  # a withheld vessel gives none
    return f"N{n}" if n else ""
