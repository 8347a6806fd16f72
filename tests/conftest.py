"""Shared fixtures: phantoms with hand-computed answers, series on disk, the sample data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from vascalc.records import CTVolume

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VASCALC_SHARED_DATA", ROOT.parent / "shared" / "data"))


def volume(hu, spacing=(3.0, 0.5, 0.5), **kw) -> CTVolume:
    """A CTVolume over ``hu`` (copied to int16 if integral, else float32)."""
    a = np.asarray(hu)
    a = a.astype(np.int16) if np.all(np.mod(a, 1) == 0) else a.astype(np.float32)
    return CTVolume(hu=a, spacing_mm=spacing, **kw)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The bundled sample data, generated once per test session into a temporary folder."""
    from sample_data.generate import generate

    out = tmp_path_factory.mktemp("phantoms")
    generate(out)
    return out


@pytest.fixture(scope="session")
def contrast_data(tmp_path_factory) -> Path:
    """The contrast-enhanced sample data (sample_data.contrast), generated once per session."""
    from sample_data.contrast import generate

    out = tmp_path_factory.mktemp("contrast_phantoms")
    generate(out)
    return out


@pytest.fixture(scope="session")
def spectral_data(sample_data) -> Path:
    """The spectral sample set (sample_data.spectral), beside the sample data, where the
    golden runs look for it."""
    from sample_data.spectral import generate

    return generate(sample_data.parent / "spectral_phantoms")


@pytest.fixture(scope="session")
def sample_truth(sample_data) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sample_data.glob("*/truth.json")}


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real scanner data not available at {p} (../shared/data is absent here)")
    return p
