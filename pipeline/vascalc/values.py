"""Small value conversions shared by the readers and the table tools."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any


def safe_name(text: str, default: str = "case") -> str:
    """A file-name-safe name from ``text`` (case ids, patient folders): [A-Za-z0-9._-], no
    leading dot, at most 64 characters (longer ones keep a hash suffix so they stay unique)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or default
    if len(s) > 64:
        s = s[:51].rstrip("._-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return s


def finite_float(v: Any) -> float | None:
    """``v`` as a finite float, or None when it is empty, not a number, or not finite."""
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --- DICOM header values as read (text, lists, numbers in strings) ---------------------

def header_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "\\".join(str(x) for x in v).strip()
    return str(v).strip()


def header_numbers(v: Any, n: int) -> tuple[float, ...] | None:
    items = v if isinstance(v, list) else (str(v).split("\\") if v not in (None, "") else [])
    try:
        out = tuple(float(x) for x in items)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(x) for x in out) else None


def header_integer(v: Any, default: int) -> int:
    if v is None or isinstance(v, list) or v == "":
        return default
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return default


def header_date(da: str) -> str:
    da = da.strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    return ""


# --- YAML written by people: configs, label tables, insert lists ----------------------------

#: a config or a table is a few kilobytes; this cap stops a file that is not one
YAML_MAX_BYTES = 1 << 20


def safe_yaml(text: str):
    """``text`` parsed by YAML's safe loader, refusing anchors and aliases (a kilobyte of
    nested aliases expands to gigabytes: the 'billion laughs') and texts over
    :data:`YAML_MAX_BYTES`. Raises ValueError with the reason."""
    import yaml  # lazy: PyYAML, for the files that are YAML

    if len(text.encode("utf-8", errors="replace")) > YAML_MAX_BYTES:
        raise ValueError(f"over {YAML_MAX_BYTES // 1024} KiB: not a config")
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValueError("YAML anchors and aliases (&, *) are not allowed here: "
                                 "write each value out")
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {err}") from None


def ecg_gated(technique: str, trigger_time: Any) -> bool | None:
    """Whether a header records ECG synchronisation: CardiacSynchronizationTechnique
    (0018,9037; PS3.3 C.7.6.16.2.13: NONE, REALTIME, PROSPECTIVE, RETROSPECTIVE, PACED) when
    present, else a TriggerTime (0018,1060: the time from the R wave, PS3.3 C.7.6.18.1) means
    gated; None when neither is recorded.

    >>> ecg_gated("PROSPECTIVE", None), ecg_gated("NONE", "350"), ecg_gated("", "350")
    (True, False, True)
    >>> ecg_gated("", None) is None
    True
    """
    technique = technique.strip().upper()
    if technique:
        return technique != "NONE"
    if trigger_time not in (None, "") and finite_float(trigger_time) is not None:
        return True
    return None
