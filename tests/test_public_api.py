"""The public API: ``import vascalc`` from any folder, ``score_series`` equal to ``vascalc run``."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import vascalc
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.errors import NoInputError, UsageError

from tests.conftest import shared_path


def test_all_names_exist_and_are_documented():
    for name in vascalc.__all__:
        obj = getattr(vascalc, name)
        if name != "__version__":
            doc = (obj.__doc__ or "").strip()
            # a dataclass without a docstring gets its signature as one: not documentation
            assert doc and not doc.startswith(f"{name}("), f"vascalc.{name} has no docstring"


def test_import_from_any_folder_and_no_pipeline_package(tmp_path):
    """A pipeline.py in the user's folder cannot shadow the package, and no top-level
    ``pipeline`` package comes with vascalc."""
    (tmp_path / "pipeline.py").write_text("raise SystemExit('the local file was imported')\n")
    # the folder is on sys.path (python -c puts it first), as in a user's shell
    proc = subprocess.run([sys.executable, "-c", "import vascalc; print(vascalc.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, check=True)
    assert proc.stdout.strip().endswith("vascalc/__init__.py")
    # and outside this folder (and the repository) there is no top-level 'pipeline' to import
    proc = subprocess.run([sys.executable, "-I", "-c", "import importlib.util; "
                           "print(importlib.util.find_spec('pipeline'))"], cwd=tmp_path.parent,
                          capture_output=True, text=True, check=True)
    spec = proc.stdout.strip()
    assert spec == "None", f"a top-level 'pipeline' is importable: {spec}"


def test_score_series_equals_the_command_on_the_philips_export(tmp_path):
    export = shared_path("dcm_qa_ct", "In", "Philips")
    res = CliRunner().invoke(app, ["run", str(export), "--out", str(tmp_path / "o"), "-q",
                                   "-j", "1"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "o" / "scans.csv", encoding="utf-8") as fh:
        rows = {r["case_id"]: r for r in csv.DictReader(fh)}
    assert len(rows) == 3
    with pytest.raises(UsageError, match="holds 3 series"):
        vascalc.score_series(export)
    for case_id, row in rows.items():
        result = vascalc.score_series(export, case_id=case_id)
        assert isinstance(result, vascalc.ScanResult)
        head = result.headline or result.whole
        assert result.scope == row["scope"]
        assert head.agatston == pytest.approx(float(row["agatston"]), rel=1e-9)
        assert head.volume_mm3 == pytest.approx(float(row["volume_mm3"]), rel=1e-9)
        assert len(result.lesions) == int(row["n_lesions"])


def test_score_series_refuses_by_name(tmp_path):
    with pytest.raises(NoInputError, match="does not exist"):
        vascalc.score_series(tmp_path / "absent")
    (tmp_path / "m.csv").write_text("case_id,path\n")
    with pytest.raises(UsageError, match="is a manifest"):
        vascalc.score_series(tmp_path / "m.csv")
