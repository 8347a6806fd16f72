"""Sphinx extension: the reference pages' tables written from vascalc's registries at every
build (columns, error codes, quality flags, config keys, profiles), never typed by hand.

Each table goes to ``docs/generated/<name>.md``; the pages include them with MyST's
``{include}``. The folder is rebuilt on every build and kept out of git.
"""

from __future__ import annotations

from pathlib import Path


def _cell(text: object) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def tables() -> dict[str, str]:
    """``{file stem: Markdown}`` of every generated table."""
    from vascalc.config.describe import key_rows
    from vascalc.config.profiles import profile_names, profile_summary
    from vascalc.errors import error_table
    from vascalc.flags import QUALITY_FLAGS
    from vascalc.results.columns import TABLES, markdown_table

    out = {f"columns_{t}": markdown_table(t) + "\n" for t in TABLES}
    out["errors"] = _table(["code", "meaning", "what to do"],
                           [[f"`{c}`", m, h] for c, m, h in error_table() if c != "VASCALC_ERROR"])
    out["flags"] = _table(["flag", "meaning", "set by"],
                          [[f"`{f.code}:<region>`" if f.parametrised else f"`{f.code}`", f.meaning,
                            f"`vascalc.{f.emitted_by}`"] for f in QUALITY_FLAGS.values()])
    out["config_keys"] = _table(["key", "type", "default", "meaning"],
                                [[f"`{r['key']}`", f"`{r['type']}`", f"`{r['default']}`",
                                  r["description"]] for r in key_rows()])
    out["profiles"] = _table(["profile", "what it is for"],
                             [[f"`{n}`", profile_summary(n)] for n in profile_names()])
    return out


def write_tables(app) -> None:
    folder = Path(app.srcdir) / "generated"
    folder.mkdir(exist_ok=True)
    for stem, text in tables().items():
        path = folder / f"{stem}.md"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app):
    app.connect("builder-inited", write_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
