"""Every table on the sample data (and on ../shared/data, where present) equals the golden
copy written by tests/golden/make_golden.py, byte for byte: refactorings change no number."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.golden.make_golden import HERE, TABLES, normalised, runs, score


@pytest.mark.parametrize("name", sorted(runs(Path("p"), SHARED)))
def test_tables_equal_golden(name, sample_data, contrast_data, spectral_data, tmp_path):
    args, needs = runs(sample_data, SHARED, contrast_data)[name]
    if needs is not None and not needs.exists():
        pytest.skip(f"real scanner data not available at {needs} (../shared/data is absent)")
    golden = HERE / name
    if not golden.exists():
        pytest.skip(f"no golden tables for {name}: run python -m tests.golden.make_golden "
                    "where ../shared/data is present")
    score(args, tmp_path / "out", name)
    for t in TABLES:
        got = normalised((tmp_path / "out" / t).read_text(),
                         {"$CONTRAST": contrast_data, "$PHANTOMS": sample_data,
                          "$SPECTRAL": spectral_data, "$SHARED": SHARED})
        assert got == (golden / t).read_text(), f"{name}/{t} differs from the golden copy"
