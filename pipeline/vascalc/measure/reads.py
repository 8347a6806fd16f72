"""A reader's labels as scores: the one arithmetic behind the review page's live scores,
the agreement statistics and rescore (:func:`vascalc.analyse.analyse` with ``reads``).

The calcium is the scan's, found once (:class:`Measured`); a reader's labels become one
region per label (:func:`vascalc.core.regions.label_regions`), the calcium is split by them
as region masks split it (:func:`vascalc.measure.breakdown.break_down`: the per-voxel form
of Agatston 1990, so the parts of a lesion add up to its score), and the headline and risk
fields are chosen as for any case (:func:`vascalc.measure.headline.choose_headline`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.schema import Config
from ..core.regions import label_regions
from ..records import LesionLabels
from .breakdown import Breakdown, break_down
from .calcium import Calcium
from .contrast import ContrastPlan
from .headline import Headline, Prepared, choose_headline
from .layout import layout_regions


@dataclass(frozen=True, eq=False)
class Measured:
    """A scan's calcium as the case path found it: the prepared scan, its calcium (with the
    kept voxels) and the settings resolved for the case."""

    prepared: Prepared
    calcium: Calcium
    config: Config


def reader_split(measured: Measured, reads: LesionLabels) -> tuple[Breakdown, Headline]:
    """The calcium split by a reader's labels, and the headline it gives (the coronary
    scope of the coronary labels; risk fields only for a final read)."""
    kept = measured.calcium.kept
    assert kept is not None, "a reader's labels split the kept voxels"
    prepared, config = measured.prepared, measured.config
    layout = layout_regions(prepared.volume, config.regions,
                            label_regions(kept.lesion_labels, reads),
                            classes=dict(zip(reads.names, reads.classes)))
    breakdown = break_down(prepared.volume, config, measured.calcium, layout, ContrastPlan(),
                           prepared.thresholds.threshold_hu)
    headline = choose_headline(prepared, config, measured.calcium, breakdown, reads=reads,
                               has_regions=True)
    return breakdown, headline
