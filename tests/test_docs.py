"""The README and the docs: short, true, and written from the registries where they list them."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import typer.main
from vascalc import __version__
from vascalc.cli.app import app
from vascalc.config.profiles import profile_names
from vascalc.config.schema import PRESETS
from vascalc.core.bsa import FORMULAS
from vascalc.errors import error_table
from vascalc.flags import QUALITY_FLAGS
from vascalc.results.columns import TABLES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import vascalc_reference  # noqa: E402  (the docs' generator)

PAGES = {p.stem: p.read_text() for p in DOCS.glob("*.md")}
ALL_DOCS = "\n".join(PAGES.values())


def test_readme_is_short_and_starts_with_the_two_commands():
    assert len(README.splitlines()) <= 200
    two = README.index("## The two commands")
    assert README.index("make demo") > two and README.index("make test") > two
    assert two < README.index("## Install")


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def _commands(text: str) -> list[list[str]]:
    """Every `vascalc ...` line of the text's shell blocks, as argv (comments cut)."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("vascalc "):
                out.append(shlex.split(line)[1:])
    return out


def _check_command(argv: list[str]) -> None:
    group = typer.main.get_command(app)
    cmd, args = group, list(argv)
    while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
        cmd = cmd.commands[args.pop(0)]
    assert not hasattr(cmd, "commands"), f"vascalc {' '.join(argv)}: no such command"
    options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for a in args:
        if a.startswith("-"):
            assert a.split("=")[0] in options, f"vascalc {' '.join(argv)}: no option {a}"


@pytest.mark.parametrize("page", ["README", *sorted(PAGES)])
def test_every_documented_command_and_option_exists(page):
    text = README if page == "README" else PAGES[page]
    for argv in _commands(text):
        _check_command(argv)


def test_the_generated_tables_hold_every_registry_entry():
    tables = vascalc_reference.tables()
    for t, cols in TABLES.items():
        for c in cols:
            assert f"| `{c.name}` | {c.type} |" in tables[f"columns_{t}"], c.name
    for code, _, _ in error_table():
        if code != "VASCALC_ERROR":
            assert f"| `{code}` |" in tables["errors"], code
    for flag in QUALITY_FLAGS.values():
        assert f"`{flag.code}" in tables["flags"], flag.code
    for name in profile_names():
        assert f"| `{name}` |" in tables["profiles"], name
    assert "| `scoring.threshold_hu` |" in tables["config_keys"]


def test_the_pages_include_every_generated_table():
    for stem in vascalc_reference.tables():
        assert f"{{include}} generated/{stem}.md" in ALL_DOCS, stem


def test_every_bsa_formula_preset_and_profile_is_documented():
    for name in FORMULAS:
        assert f"| `{name}` |" in PAGES["conventions"], name
    for name in PRESETS:
        assert f"`{name}`" in PAGES["conventions"], name
    for name in profile_names():
        assert f"`{name}`" in README, name


def test_the_version_is_one_and_released_in_the_changelog_and_citation():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in changelog
    assert f"\nversion: {__version__}\n" in (ROOT / "CITATION.cff").read_text()
    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text() or "Redistribution and use" in (
        ROOT / "LICENSE").read_text()


@pytest.mark.shared_data
def test_the_readme_library_example_runs_on_a_real_export(capsys):
    """The README's Python block, run as written on the real Siemens export of ../shared/data
    (its path in place of the example's)."""
    from tests.conftest import SHARED

    series = SHARED / "totalsegmentator_example" / "example_ct_dicom"
    if not series.is_dir():
        pytest.skip(f"real scanner data not available at {series} (../shared/data is absent)")
    (code,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert '"export/ct_series"' in code
    exec(code.replace('"export/ct_series"', repr(str(series))), {})
    printed = capsys.readouterr().out.split()
    assert printed[0] in ("coronary", "vascular", "bone_excluded", "whole_volume")
