"""The typed records as JSON and back: a case result stores what was measured (the
:class:`vascalc.records.ScanResult` or :class:`vascalc.records.CaseFailure`), not finished
table rows, so a column added to the registry is derived from a cached result without
scoring the case again.

:func:`encode` turns a dataclass record into JSON values (tuples as lists, numpy scalars as
Python numbers; an array is refused, since the scored voxels are never stored);
:func:`decode` builds the record back from its type hints and refuses, by field name, a value
of the wrong kind, an unknown field or a missing one.

Examples
--------
>>> from vascalc.records import RegionScore
>>> r = RegionScore(region="LAD", agatston=12.0, volume_mm3=9.5, mass_mg=None, n_lesions=2,
...                 n_slice_lesions=None)
>>> decode(RegionScore, encode(r)) == r
True
>>> decode(RegionScore, {"region": "LAD"})
Traceback (most recent call last):
...
ValueError: RegionScore: missing field(s) agatston, mass_mg, n_lesions, n_slice_lesions, volume_mm3
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Callable, TypeVar, Union

import numpy as np

T = TypeVar("T")


def encode(obj: Any, *, skip: frozenset[str] = frozenset()) -> Any:
    """JSON values of ``obj`` (a dataclass record, and what it holds); fields named in
    ``skip`` are left out of the top-level record."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in skip}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a case result")


def decode(cls: type[T], data: Any) -> T:
    """The record ``cls`` from its JSON values (see the module's text)."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    convert, names, required = _shape(typing.cast(Any, cls))
    if not names.issuperset(data):
        unknown = sorted(set(data) - names)
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    if not required.issubset(data):
        missing = sorted(required - set(data))
        raise ValueError(f"{cls.__name__}: missing field(s) {', '.join(missing)}")
    return cls(**{n: convert[n](v, n) for n, v in data.items()})


Converter = Callable[[Any, str], Any]


@functools.lru_cache(maxsize=None)
def _shape(cls: type) -> tuple[dict[str, Converter], frozenset[str], frozenset[str]]:
    """A record's converter per field, its field names and its required fields (built once
    per class, so reading many results costs one pass over their values)."""
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    required = frozenset(f.name for f in fields if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
    return ({f.name: _converter(hints[f.name]) for f in fields},
            frozenset(f.name for f in fields), required)


def _fail(v: Any, tp: Any, where: str) -> Any:
    raise ValueError(f"{where}: {v!r} is not a {getattr(tp, '__name__', tp)}")


@functools.lru_cache(maxsize=None)
def _converter(tp: Any) -> Converter:
    """The function that checks and converts one JSON value to ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return lambda v, where: v
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            inner = _converter(others[0])
            return lambda v, where: None if v is None and nullable else inner(v, where)

        def either(v: Any, where: str) -> Any:
            if v is None and nullable:
                return None
            for a in others:  # e.g. float | str: the first that takes the value as it is
                if _plain(a, v):
                    return v
            raise ValueError(f"{where}: {v!r} is none of {others}")
        return either
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda v, where: decode(tp, v)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])
            return lambda v, where: (tuple(item(x, where) for x in v) if isinstance(v, list)
                                     else _fail(v, tp, where))
        items = [_converter(a) for a in args]
        return lambda v, where: (tuple(c(x, where) for c, x in zip(items, v))
                                 if isinstance(v, list) and len(v) == len(items)
                                 else _fail(v, tp, where))
    if origin is dict:
        _, vt = typing.get_args(tp) or (str, Any)
        value = _converter(vt)
        return lambda v, where: ({k: value(x, where) for k, x in v.items()}
                                 if isinstance(v, dict) else _fail(v, tp, where))
    if tp is float:
        return lambda v, where: (float(v) if isinstance(v, (int, float))
                                 and not isinstance(v, bool) else _fail(v, tp, where))
    return lambda v, where: v if _plain(tp, v) else _fail(v, tp, where)


def _plain(tp: Any, v: Any) -> bool:
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, float)
    if tp is str:
        return isinstance(v, str)
    return False
