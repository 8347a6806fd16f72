"""Which series of a received study to score: a documented ranking, with the reason for every
series written into the study's record.

A series can be scored only when it is a CT image series (CT Image Storage or Enhanced CT),
not a localizer, with at least ``MIN_SLICES`` images and axial (its row and column directions
within 45 degrees of the patient's axial plane). Among those, the calcium-scoring series come
first, by points that follow the reference protocol (Agatston 1990; McCollough CH et al.,
Radiology 2007;243:527-538; ``protocol`` of the config):

- +4 a calcium-scoring word in SeriesDescription or ProtocolName (calcium, ca score, cac,
  agatston, cascore, heartscore);
- +2 no contrast recorded (ContrastBolusAgent empty), -4 contrast recorded;
- +2 SliceThickness within ``protocol.thickness_mm`` (2.5-3 mm);
- +1 a reference kernel of its manufacturer (``protocol.kernels``);
- +1 the reference tube voltage (``protocol.kvp``).

Ties go to more images, then the SeriesInstanceUID (so the choice never depends on arrival).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..config.schema import Config

#: fewer images than this cannot hold a calcium score worth reporting
MIN_SLICES = 10
CALCIUM_WORDS = re.compile(r"calcium|ca[ _-]?score|\bcac\b|agatston|cascore|heartscore", re.I)
CT_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}


@dataclass(frozen=True)
class SeriesChoice:
    """One series of a study as the ranker saw it."""

    series_uid: str
    folder: str
    description: str
    n_images: int
    slice_thickness_mm: float | None
    points: int
    eligible: bool
    reason: str
    chosen: bool = False


def _axial(ds) -> bool:
    iop = [float(v) for v in (ds.get("ImageOrientationPatient") or [])]
    if len(iop) != 6:
        return False
    row, col = iop[:3], iop[3:]
    normal_z = abs(row[0] * col[1] - row[1] * col[0])  # z of the slice normal
    return normal_z >= 0.7071


def _rank_one(folder: Path, config: Config) -> SeriesChoice:
    import pydicom  # lazy: only the DICOM node ranks series

    files = sorted(folder.glob("*.dcm"))
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    text = f"{ds.get('SeriesDescription', '')} {ds.get('ProtocolName', '')}".strip()
    thick = float(ds.SliceThickness) if ds.get("SliceThickness") not in (None, "") else None
    base: dict[str, Any] = dict(
        series_uid=str(ds.get("SeriesInstanceUID", "")), folder=folder.name,
        description=str(ds.get("SeriesDescription", "")), n_images=len(files),
        slice_thickness_mm=thick)
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    refusal = ("not a CT image series" if str(ds.get("SOPClassUID", "")) not in CT_CLASSES
               else "a localizer" if "LOCALIZER" in image_type
               else f"{len(files)} images, fewer than {MIN_SLICES}" if len(files) < MIN_SLICES
               else "not axial" if not _axial(ds) and str(ds.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.2"
               else "")
    if refusal:
        return SeriesChoice(**base, points=0, eligible=False, reason=refusal)
    pc = config.protocol
    why, points = [], 0
    if CALCIUM_WORDS.search(text):
        points += 4
        why.append("calcium-scoring description +4")
    if str(ds.get("ContrastBolusAgent", "")).strip():
        points -= 4
        why.append("contrast recorded -4")
    else:
        points += 2
        why.append("no contrast recorded +2")
    if thick is not None and pc.thickness_mm[0] <= thick <= pc.thickness_mm[1]:
        points += 2
        why.append(f"{thick:g} mm slices +2")
    maker = str(ds.get("Manufacturer", "")).upper()
    kernel = str(ds.get("ConvolutionKernel", "")).upper()
    refs = [k.upper() for m, ks in pc.kernels.items() if maker.startswith(m.upper()) for k in ks]
    if kernel and any(kernel.startswith(k) for k in refs):
        points += 1
        why.append(f"reference kernel {kernel} +1")
    if ds.get("KVP") not in (None, "") and abs(float(ds.KVP) - pc.kvp) <= 0.5:
        points += 1
        why.append(f"{pc.kvp:g} kVp +1")
    return SeriesChoice(**base, points=points, eligible=True, reason="; ".join(why))


def rank_series(study_folder: Path, config: Config) -> list[SeriesChoice]:
    """Every series folder of a received study, best first, the chosen one marked."""
    ranked = [_rank_one(f, config) for f in sorted(study_folder.iterdir())
              if f.is_dir() and any(f.glob("*.dcm"))]
    ranked.sort(key=lambda s: (not s.eligible, -s.points, -s.n_images, s.series_uid))
    if ranked and ranked[0].eligible:
        ranked[0] = replace(ranked[0], chosen=True)
    return ranked


def record_of(ranked: list[SeriesChoice]) -> list[dict[str, Any]]:
    """The ranking as the study record keeps it."""
    return [asdict(s) for s in ranked]
