"""Small value conversions shared by the readers and the table tools."""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
from typing import Any

#: names Windows reserves for devices, with any extension (CON, CON.txt): not a folder name
DEVICE_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                          *(f"LPT{i}" for i in range(1, 10))})


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a Windows device name (case-insensitive, any extension)."""
    return name.split(".")[0].upper() in DEVICE_NAMES


def safe_name(text: str, default: str = "case") -> str:
    """A file-name-safe name from ``text`` (case ids, patient folders): [A-Za-z0-9._-], no
    leading dot, at most 64 characters (longer ones keep a hash suffix so they stay unique),
    never a Windows device name (CON becomes CON_).

    >>> safe_name("P 01/T1"), safe_name("nul"), safe_name("..")
    ('P_01_T1', 'nul_', 'case')
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or default
    if len(s) > 64:
        s = s[:51].rstrip("._-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    if is_device_name(s):
        s = s.split(".")[0] + "_" + s[len(s.split(".")[0]):]
    return s


#: Unicode bidirectional formatting characters (Unicode Standard Annex #9, section 2: the
#: embeddings, overrides, isolates and marks): a patient id holding U+202E displays reversed
#: ('gpj.exe' shown as 'exe.jpg'), so they are never copied into names or pages as they are
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
_INVISIBLE = {ord(c): f"[U+{ord(c):04X}]" for c in BIDI_CONTROLS} | {
    c: f"[U+{c:04X}]" for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
    if chr(c) not in "\t\n\r"}


def visible_text(text: str) -> str:
    r"""``text`` with every bidirectional formatting character and every C0/C1 control except
    tab and line breaks written as a visible ``[U+XXXX]``, so a page shows what the value
    holds instead of being reordered or hiding a NUL.

    >>> visible_text("P\u202egpj.exe"), visible_text("a\x00b\tc")
    ('P[U+202E]gpj.exe', 'a[U+0000]b\tc')
    """
    return text.translate(_INVISIBLE)


def distinct_name(text: str, default: str) -> str:
    r"""A file-name-safe name (:func:`safe_name`) that two different ``text`` never share, even
    on a case-insensitive file system: ``text`` itself when it is already safe and has no
    lower-case letter (P01, PHANTOM-01) or is vascalc's own pseudonym (p- and 16 lower-case
    hex digits, privacy.patient_id: hash), else its safe form with the first 10 hex digits of
    the SHA-256 of ``text`` (so 'P 01', 'P/01', 'P_01' and 'p_01' are four folders, and a
    bidi override cannot make a name end in '.exe'). Stable: the same text, the same name.

    >>> distinct_name("P01", "patient"), distinct_name("P 01", "patient")
    ('P01', 'P_01-a058bef8f0')
    """
    safe = safe_name(text, default)
    if safe == text and not re.search(r"-[0-9A-Fa-f]{10}$", text):
        if re.fullmatch(r"p-[0-9a-f]{16}", text):  # vascalc's own keyed hash of a PatientID
            return safe
        if not any(c.islower() for c in text) and not re.fullmatch(r"P-[0-9A-F]{16}", text):
            return safe
    return f"{safe}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


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


#: nesting deeper than this is not a config (each level costs the parser more than the last)
YAML_MAX_DEPTH = 64


def safe_yaml(text: str):
    r"""``text`` parsed by YAML's safe loader, refusing anchors and aliases (a kilobyte of
    nested aliases expands to gigabytes: the 'billion laughs'), texts over
    :data:`YAML_MAX_BYTES`, nesting deeper than :data:`YAML_MAX_DEPTH` (checked on the event
    stream, before anything is built) and a key given twice in one mapping (YAML's last-wins
    would drop the first silently). Raises ValueError with the reason.

    >>> safe_yaml("a: 1\nb: [2, 3]")
    {'a': 1, 'b': [2, 3]}
    >>> safe_yaml("a: 1\na: 2")
    Traceback (most recent call last):
    ...
    ValueError: the key 'a' is given twice (line 2): give each key once
    """
    import yaml  # lazy: PyYAML, for the files that are YAML

    if len(text.encode("utf-8", errors="replace")) > YAML_MAX_BYTES:
        raise ValueError(f"over {YAML_MAX_BYTES // 1024} KiB: not a config")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValueError("YAML anchors and aliases (&, *) are not allowed here: "
                                 "write each value out")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > YAML_MAX_DEPTH:
                    raise ValueError(f"nested deeper than {YAML_MAX_DEPTH} levels: not a config")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(text, Loader=_unique_keys_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {err}") from None


def _unique_keys_loader():
    import yaml  # lazy: PyYAML, for the files that are YAML

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise ValueError(f"the key {key!r} is given twice (line "
                                     f"{key_node.start_mark.line + 1}): give each key once")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeys


#: CardiacSynchronizationTechnique (0018,9037) values that say no synchronisation: NONE is the
#: defined term (PS3.3 C.7.6.16.2.13); the others are what exports write for it
_NOT_GATED = frozenset({"NONE", "NO", "N", "OFF", "FALSE", "0"})
#: its defined terms that say the acquisition was synchronised
_GATED = frozenset({"REALTIME", "PROSPECTIVE", "RETROSPECTIVE", "PACED"})


def ecg_gated(technique: str, trigger_time: Any) -> bool | None:
    """Whether a header records ECG synchronisation: CardiacSynchronizationTechnique
    (0018,9037; PS3.3 C.7.6.16.2.13, defined terms NONE, REALTIME, PROSPECTIVE,
    RETROSPECTIVE, PACED) when it holds one of those terms (or NO, N, OFF for none); else a
    positive TriggerTime (0018,1060: the time from the R wave, PS3.3 C.7.6.18.1) means gated.
    None (unknown) when neither says: a technique that is no defined term, and a TriggerTime
    of 0, which exports write for scans that were not triggered, are not evidence of gating.

    >>> ecg_gated("PROSPECTIVE", None), ecg_gated("NONE", "350"), ecg_gated("", "350")
    (True, False, True)
    >>> ecg_gated("NO", "350"), ecg_gated("", "0") is None, ecg_gated("MAYBE", None) is None
    (False, True, True)
    >>> ecg_gated("", None) is None
    True
    """
    technique = technique.strip().upper()
    if technique in _NOT_GATED:
        return False
    if technique in _GATED:
        return True
    t = finite_float(trigger_time) if trigger_time not in (None, "") else None
    if t is not None and t > 0:
        return True
    return None


def parse_date(text: str) -> _dt.date | None:
    """A calendar date from ``yyyy-mm-dd`` or DICOM's ``yyyymmdd``; None when it is not one
    (2020-02-30 is not).

    >>> parse_date("2020-02-29"), parse_date("20200229"), parse_date("2020-02-30")
    (datetime.date(2020, 2, 29), datetime.date(2020, 2, 29), None)
    """
    v = text.strip()
    try:
        if len(v) == 8 and v.isdigit():
            return _dt.date(int(v[:4]), int(v[4:6]), int(v[6:]))
        return _dt.date.fromisoformat(v) if len(v) == 10 else None
    except ValueError:
        return None


def json_depth(raw: bytes) -> int:
    """The deepest bracket nesting of a JSON text (strings skipped), without parsing it.

    >>> json_depth(b'{"a": [1, {"b": "[[["}]}')
    3
    """
    depth = top = 0
    in_string = escaped = False
    for ch in raw.decode("utf-8", errors="replace"):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    return top


def age_years(age: str) -> float | None:
    """A DICOM Age String (nnnD, nnnW, nnnM or nnnY; PS3.5 6.2) in years, or None."""
    m = re.fullmatch(r"(\d{3})([DWMY])", (age or "").strip())
    if m is None:
        return None
    n = int(m.group(1))
    return {"D": n / 365.25, "W": n / 52.1775, "M": n / 12.0, "Y": float(n)}[m.group(2)]
