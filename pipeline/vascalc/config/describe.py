"""The config schema as text a person reads: every key with its value and its description, as
commented YAML (``vascalc config show`` / ``config init``) and as reference rows (the docs'
config page). Both are generated from :class:`~vascalc.config.schema.Config`, never typed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence

import yaml
from pydantic import BaseModel

from .schema import Config


def _section(annotation) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _flow(value) -> str:
    """``value`` as one line of YAML flow style (a JSON-like value from model_dump)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**9,
                          sort_keys=False).strip()[1:-1]


def _keys(model: type[BaseModel], prefix: str = "", *, with_text: bool = False) -> Iterator[tuple]:
    """``(dotted key, type)`` of every leaf key in schema order (with its description when
    ``with_text``)."""
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = prefix + (field.alias or name)
        sub = _section(field.annotation)
        if sub is not None:
            yield from _keys(sub, key + ".", with_text=with_text)
            continue
        kind = str(field.annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
        yield (key, kind, field.description or "") if with_text else (key, kind)


def key_rows() -> list[dict[str, str]]:
    """One row per config key: ``key``, ``type``, ``default`` (YAML) and ``description``.

    >>> rows = {r["key"]: r for r in key_rows()}
    >>> rows["scoring.threshold_hu"]["default"], rows["scoring.threshold_hu"]["description"]
    ('130.0', 'calcium voxel: HU >= this value')
    """
    defaults = Config().model_dump(mode="json", by_alias=True)
    rows = []
    for key, kind, text in _keys(Config, with_text=True):
        value = defaults
        for part in key.split("."):
            value = value[part]
        rows.append({"key": key, "type": kind, "default": _flow(value), "description": text})
    return rows


def commented_yaml(config: Config, *, header: Sequence[str] = (), given: dict | None = None) -> str:
    """The whole resolved ``config`` as YAML, every key under a comment from the schema; keys
    that ``given`` (the mapping a file held) sets are marked, so a profile's choices stand
    out among the defaults. Loading the text gives the same config (same ``sha256``).

    >>> from vascalc.config.load import config_from_dict
    >>> cfg = config_from_dict({"scoring": {"scope": "coronary"}})
    >>> text = commented_yaml(cfg, given={"scoring": {"scope": "coronary"}})
    >>> "  scope: coronary  # set here" in text
    True
    >>> config_from_dict(yaml.safe_load(text)).sha256() == cfg.sha256()
    True
    """
    data = config.model_dump(mode="json", by_alias=True)
    out = [f"# {line}".rstrip() for line in header]
    out += ["# Every key of the config, with its value; keys marked 'set here' are the file's own,",
            "# the others are vascalc's defaults. Every key is optional; unknown keys are refused."]
    _emit(type(config), data, given or {}, out, indent="")
    return "\n".join(out) + "\n"


def _emit(model: type[BaseModel], data: dict, given: dict, out: list[str], indent: str) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        if field.exclude or key not in data:
            continue
        sub = _section(field.annotation)
        mine = given.get(key) if isinstance(given, dict) else None
        if sub is not None:
            doc = (sub.__doc__ or "").strip().splitlines()
            out.append("")
            if doc and not doc[0].startswith(sub.__name__ + "("):
                out.append(f"{indent}# {doc[0]}")
            out.append(f"{indent}{key}:")
            _emit(sub, data[key], mine if isinstance(mine, dict) else {}, out, indent + "  ")
            continue
        for line in textwrap.wrap(field.description or "", 96 - len(indent)):
            out.append(f"{indent}# {line}")
        mark = "  # set here" if isinstance(given, dict) and key in given else ""
        out.append(f"{indent}{key}: {_flow(data[key])}{mark}")
