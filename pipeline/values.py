"""Small value conversions shared by the readers and the table tools."""

from __future__ import annotations

import math
from typing import Any


def finite_float(v: Any) -> float | None:
    """``v`` as a finite float, or None when it is empty, not a number, or not finite."""
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
