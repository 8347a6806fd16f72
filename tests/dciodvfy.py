"""dciodvfy (Debian's dicom3tools), the independent DICOM validator, as the tests run it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

DCIODVFY = shutil.which("dciodvfy")

needs_dciodvfy = pytest.mark.skipif(
    DCIODVFY is None, reason="dciodvfy (Debian dicom3tools) is not installed; .ci/run installs it")


def problems(path: Path, *, warnings: bool = True) -> list[str]:
    """dciodvfy's errors (and warnings) for one file. A private coding scheme cannot be known
    to dciodvfy: its 'unrecognized defined term' warning is left out only for a scheme the file
    declares in its CodingSchemeIdentificationSequence (PS3.3 C.12.1.1.3.1)."""
    assert DCIODVFY is not None, "use needs_dciodvfy on the test"
    rep = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    declared = {str(it.CodingSchemeDesignator)
                for it in ds.get("CodingSchemeIdentificationSequence", [])}
    kinds = ("Error", "Warning") if warnings else ("Error",)
    return [ln for ln in (rep.stdout + rep.stderr).splitlines() if ln.startswith(kinds)
            and not any(f"Unrecognized defined term <{d}>" in ln and
                        "Coding Scheme Designator" in ln for d in declared)]
