"""Result versions of a case: the automated draft, a reader's final, later amendments, and a
rescoring of a study that grew. Each version is its own set of DICOM instances.

DICOM keeps an instance once per SOP Instance UID (a PACS such as Orthanc with its default
``OverwriteInstances: false`` keeps the first it received), so a changed result sent under an
old UID never reaches the reader's screen. Here each version has its own UIDs, derived from
what the version is (:func:`version_key`): the source study and series, the config, the
reader's read, the numbers (the scans, region and lesion rows) and the vascalc version (a new
release is a new provenance, so its result is a new version). The same result written again
(a resend, ``--force`` on unchanged inputs, a restart) gets the same UIDs and a PACS stores it
once; anything that changes the result gets new UIDs and never collides, also across
patients whose runs name a case alike.

The case folder's ``versions.json`` lists every version written, oldest first; a new version
references the one before it as its predecessor (the SR's PredecessorDocumentsSequence, PS3.3
C.17.2.3: "Predecessor Documents Sequence ... shall refer to SR documents of which this
document is a revision"). A final is a version made from a read the reader marked done
(PS3.3 C.17.2: VerificationFlag VERIFIED and the VerifyingObserverSequence); a final after a
final is an amendment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..files import write_atomic

LEDGER = "versions.json"

#: scans-row keys that do not change what a result says (where it was read from, how long)
_VOLATILE = ("source_path", "pipeline_version")


@dataclass(frozen=True)
class ResultVersion:
    """One version of a case's result as sent to a PACS.

    Attributes
    ----------
    number : int
        1 for the first version of the case, then counting up.
    key : str
        The digest of what the version is (:func:`version_key`).
    status : str
        ``draft`` (automated, not read), ``final`` (a reader marked the case done) or
        ``amended`` (a final after an earlier final).
    reader, verified_at : str
        Who marked the case done, and when (UTC, ISO 8601); empty for a draft.
    study_uid, sr_uid, sr_series_uid : str
        The study of the CT, and the SR's SOP and series instance UIDs of this version.
    predecessor : dict
        The version it replaces (number, status, study, series and SOP instance UID of its
        SR), empty for the first.
    """

    number: int
    key: str
    status: str
    reader: str = ""
    verified_at: str = ""
    study_uid: str = ""
    sr_uid: str = ""
    sr_series_uid: str = ""
    predecessor: dict[str, Any] = field(default_factory=dict)

    def uid(self, kind: str) -> str:
        """The UID of one object of this version (``sr``, ``seg``, ``pdf``, ``sc``, each also
        with ``-series``)."""
        return uid_from("result-version", self.key, kind)

    @property
    def label(self) -> str:
        """How a person sees the version: 'draft v1', 'final v2 (read by ...)'."""
        who = f", read by {self.reader}" if self.reader else ""
        return f"{self.status} v{self.number}{who}"


def uid_from(*parts: str) -> str:
    """A UID derived from ``parts``, the same for the same parts: 2.25 and the first 128 bits
    of their sha256 as a decimal integer (PS3.5 B.2, a UID derived from a UUID-sized number).
    pydicom's ``generate_uid(prefix=None, entropy_srcs=...)`` ignores the entropy and returns a
    random UUID, which made every result's UIDs new on each write.

    >>> uid_from("case", "sr") == uid_from("case", "sr") != uid_from("case", "seg")
    True
    """
    digest = hashlib.sha256("\0".join(["vascalc", __version__, *parts]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def version_key(*, study_uid: str, series_uid: str, config_sha: str, reader: str,
                read_at: str, scan: dict[str, Any],
                regions: list[dict[str, Any]], lesions: list[dict[str, Any]]) -> str:
    """The digest of what a version is: its source series, config, read and numbers (the
    scans row, the region and lesion rows). Files touched but unchanged give the same numbers
    and so the same version; a corrected series, a grown study or a new read gives another.

    >>> k = dict(study_uid="1.2", series_uid="1.2.3", config_sha="c", reader="", read_at="",
    ...          scan={"agatston": 1.0}, regions=[], lesions=[])
    >>> version_key(**k) == version_key(**k)
    True
    >>> version_key(**k) == version_key(**{**k, "series_uid": "1.2.4"})
    False
    """
    steady = {k: v for k, v in scan.items() if k not in _VOLATILE}
    payload = json.dumps({"study": study_uid, "series": series_uid, "config": config_sha,
                          "reader": reader, "read_at": read_at,
                          "scan": steady, "regions": regions, "lesions": lesions,
                          "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def ledger(case_dir: Path) -> list[ResultVersion]:
    """The versions written for a case, oldest first ([] when none or unreadable)."""
    path = Path(case_dir) / LEDGER
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [ResultVersion(**r) for r in rows]
    except (OSError, ValueError, TypeError):
        return []


def next_version(case_dir: Path, key: str, *, reader: str, verified_at: str,
                 study_uid: str) -> ResultVersion:
    """The version a result with ``key`` is: the one already written with that key, or a new
    one after the last (not yet recorded: :func:`record` it once its objects are written)."""
    versions = ledger(case_dir)
    for v in versions:
        if v.key == key:
            return v
    last = versions[-1] if versions else None
    finals = [v for v in versions if v.status in ("final", "amended")]
    status = ("amended" if finals else "final") if verified_at else "draft"
    v = ResultVersion(number=(last.number + 1) if last else 1, key=key, status=status,
                      reader=reader if verified_at else "", verified_at=verified_at,
                      study_uid=study_uid)
    pred = {}
    if last is not None:
        pred = {"number": last.number, "status": last.status, "study_uid": last.study_uid,
                "sr_series_uid": last.sr_series_uid, "sr_uid": last.sr_uid}
    return ResultVersion(**{**asdict(v), "sr_uid": v.uid("sr"), "sr_series_uid":
                            v.uid("sr-series"), "predecessor": pred})


def record(case_dir: Path, version: ResultVersion) -> None:
    """Add ``version`` to the case's ledger (once)."""
    versions = ledger(case_dir)
    if any(v.key == version.key for v in versions):
        return
    rows = [asdict(v) for v in versions] + [asdict(version)]
    write_atomic(Path(case_dir) / LEDGER, json.dumps(rows, indent=1, sort_keys=True) + "\n")


def carry_over(old_case_dir: Path, new_case_dir: Path) -> None:
    """Continue an older case's versions in a new case folder (the DICOM node, when a study
    that grew is scored on another series): the new case's first version then replaces the
    old case's last, and the study holds one current result."""
    old = ledger(old_case_dir)
    if not old or ledger(new_case_dir):
        return
    Path(new_case_dir).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(new_case_dir) / LEDGER,
                 json.dumps([asdict(v) for v in old], indent=1, sort_keys=True) + "\n")
