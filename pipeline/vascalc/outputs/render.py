"""HTML from the Jinja2 templates of ``outputs/templates``, and PDF from that same HTML.

The templates autoescape every value (a DICOM header string is text, never markup). The PDF
is WeasyPrint's rendering of the report's HTML with CSS paged media (CSS Paged Media Level 3:
``@page`` size and margins, margin boxes with ``counter(page)`` and ``counter(pages)``), so
every page carries the case and "page N of M", tables do not split inside a row, and the
screen and the printed report are one document.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..results.columns import TABLES
from ..values import visible_text

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _environment():
    import jinja2  # lazy: Jinja2, for reports only

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, finalize=_visible)
    env.filters["css_string"] = css_string
    return env


def _visible(value: Any) -> Any:
    """Every value a template prints, with bidi formatting and control characters made
    visible (:func:`vascalc.values.visible_text`): a patient id with U+202E would display
    reversed (#35 item 14). Markup stays markup."""
    if not isinstance(value, str):
        return value
    shown = visible_text(value)
    if shown == value:
        return value
    import markupsafe  # lazy: Jinja2's own dependency, for reports only

    return markupsafe.Markup(shown) if isinstance(value, markupsafe.Markup) else shown


def render(name: str, **context: Any) -> str:
    """The template ``name`` filled with ``context`` (a missing value is an error, never an
    empty cell)."""
    return _environment().get_template(name).render(**context)


def fmt(v: Any, digits: int = 1) -> str:
    """A value as the reports print it: '-' for none, floats with thousands separators.

    >>> fmt(None), fmt(1234.5678), fmt(0.5, 2), fmt("A1")
    ('-', '1,234.6', '0.50', 'A1')
    """
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def typed(row: dict[str, Any], table: str) -> dict[str, Any]:
    """A table row with each registered column as its registry type (:mod:`vascalc.results.
    columns`): text as str ('' for none), numbers as finite floats, integers as int,
    booleans as bool (None where the value is none or not of the type). A report never
    trusts a row read back from disk to be what vascalc wrote; columns the registry does
    not know (covariates) pass as they are.

    >>> r = typed({"case_id": 7, "agatston": "nan", "n_lesions": "3", "status": None}, "scans")
    >>> r["case_id"], r["agatston"], r["n_lesions"], r["status"]
    ('7', None, 3, '')
    """
    kinds = {c.name: c.type for c in TABLES[table]}
    out = dict(row)
    for name, value in row.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        if kind in ("string", "date"):
            out[name] = "" if value is None else str(value)
        elif kind == "boolean":
            out[name] = value if isinstance(value, bool) else {"true": True, "false": False}.get(
                str(value).strip().lower())
        else:
            try:
                x = float(value) if not isinstance(value, bool) else None
            except (TypeError, ValueError):
                x = None
            x = x if x is not None and math.isfinite(x) else None
            out[name] = (int(x) if x is not None and x.is_integer() else None) \
                if kind == "integer" else x
    return out


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The reports' shared CSS (screen and print), read once per process."""
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")


def css_string(text: Any) -> str:
    """``text`` as the inside of a CSS string (for ``@page`` margin boxes, inside a ``<style>``
    element, where HTML escapes are not read): quotes and backslashes escaped, control
    characters and ``<`` ``>`` (which could close the element) dropped.

    >>> print(css_string('case "A"'))
    case \\"A\\"
    """
    from markupsafe import Markup  # lazy: Jinja2's, for reports only

    out = []
    for ch in str(text):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "<>":
            out.append(ch)
    return Markup("".join(out))


def html_to_pdf(text: str) -> bytes:
    """The PDF of a report's HTML (WeasyPrint; images are embedded as data: URLs, so nothing
    is fetched)."""
    try:
        import weasyprint  # lazy: WeasyPrint, for PDF reports only
    except OSError as err:  # its system libraries (Pango) are missing
        raise RuntimeError(f"PDF reports need WeasyPrint's system libraries ({err}): install "
                           "Pango (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0), "
                           "or set report.pdf: false") from None

    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return weasyprint.HTML(string=text, base_url=None).write_pdf()
