"""The README documents every column, error code and BSA formula the code defines."""

from __future__ import annotations

from pathlib import Path

from vascalc.core.bsa import FORMULAS
from vascalc.errors import error_table
from vascalc.results.columns import TABLES, with_tables

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    first = README.index("make demo")
    assert first < README.index("## Usage") and "make test" in README[:README.index("## Usage")]


def test_every_column_is_in_the_readme():
    for cols in TABLES.values():
        for c in cols:
            assert f"| `{c.name}` | {c.type} |" in README, c.name


def test_the_readme_column_tables_are_written_from_the_registry():
    """Each column table sits between markers and equals what the registry writes (rewrite
    them with `python -m vascalc.results.columns README.md`)."""
    for t in TABLES:
        assert f"<!-- columns:{t} -->" in README, t
    assert with_tables(README) == README, "README column tables are stale"


def test_every_error_code_is_in_the_readme():
    for code, _, _ in error_table():
        if code != "VASCALC_ERROR":
            assert f"| `{code}` |" in README, code


def test_every_bsa_formula_is_in_the_readme():
    for name in FORMULAS:
        assert f"| `{name}` |" in README


def test_every_preset_and_profile_is_in_the_readme():
    from vascalc.config.schema import PRESETS

    for name in PRESETS:
        assert f"`{name}`" in README, name
    for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"):
        if p.name not in ("default.yaml", "sample_data.yaml"):
            assert f"`{p.name}`" in README, p.name
