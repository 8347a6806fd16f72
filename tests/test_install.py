"""The installed tool is the whole tool: the profiles and the sample-data generator are in the
wheel, chosen by name; ``vascalc config`` and ``vascalc demo`` need nothing from a checkout."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.config.load import load_config
from vascalc.config.profiles import profile_names, profile_summary
from vascalc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_every_profile_of_configs_is_installed_and_listed():
    assert profile_names() == PROFILES
    res = invoke("config", "list")
    assert res.exit_code == 0
    listed = [line.split()[0] for line in res.output.splitlines()]
    assert listed == PROFILES
    for name in PROFILES:
        assert profile_summary(name) != "(no description)", name


@pytest.mark.parametrize("name", PROFILES)
def test_a_profile_by_name_is_the_file(name):
    assert load_config(name).sha256() == load_config(ROOT / "configs" / f"{name}.yaml").sha256()
    assert load_config(f"{name}.yaml").sha256() == load_config(name).sha256()


@pytest.mark.parametrize("name", PROFILES)
def test_config_show_is_every_key_resolved_and_loads_back(name, tmp_path):
    res = invoke("config", "show", name)
    assert res.exit_code == 0
    shown = tmp_path / "shown.yaml"
    shown.write_text(res.output)
    assert load_config(shown).sha256() == load_config(name).sha256()
    data = yaml.safe_load(res.output)
    assert set(data) >= {"scoring", "regions", "contrast", "protocol", "report"}
    own = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text()) or {}
    for section, keys in own.items():
        for key in keys:  # each key the profile sets is marked as its own (secrets never shown)
            if key not in data[section]:
                assert key == "hash_salt" and "hash_salt" not in res.output
                continue
            assert any(line.strip().startswith(f"{key}:") and line.endswith("# set here")
                       for line in res.output.splitlines()), (section, key)


def test_config_show_as_written_prints_the_file():
    res = invoke("config", "show", "coronary", "--as-written")
    assert res.output == (ROOT / "configs" / "coronary.yaml").read_text()


def test_config_init_writes_a_commented_start_and_keeps_an_existing_file(tmp_path):
    path = tmp_path / "mine.yaml"
    res = invoke("config", "init", path, "--from", "aortic")
    assert res.exit_code == 0 and path.read_text().count("\n  # ") > 50
    assert load_config(path).sha256() == load_config("aortic").sha256()
    path.write_text("scoring: {threshold_hu: 100}\n")
    res = invoke("config", "init", path)
    assert res.exit_code == 2 and "exists" in res.output
    assert path.read_text() == "scoring: {threshold_hu: 100}\n"


def test_an_unknown_name_lists_the_profiles_and_a_file_wins_over_a_name(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        load_config("coronery")
    assert "coronery" in str(err.value) and "coronary" in str(err.value)
    res = invoke("run", tmp_path, "--out", tmp_path / "o", "--config", "coronery")
    assert res.exit_code == 2 and "CONFIG_INVALID" in res.output
    monkeypatch.chdir(tmp_path)
    Path("coronary").write_text("scoring: {threshold_hu: 150}\n")
    assert load_config("coronary").scoring.threshold_hu == 150.0


def test_demo_scores_the_phantoms_with_the_sample_profile(sample_data, tmp_path):
    res = invoke("demo", "--out", tmp_path / "demo", "--data", sample_data, "--jobs", "1")
    assert res.exit_code == 0, res.output
    with open(tmp_path / "demo" / "scans.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["ok"] * 5
    assert {r["config_sha256"] for r in rows} >= {load_config("sample_data").sha256()}
    assert (tmp_path / "demo" / "index.html").is_file() and "index.html" in res.output


def test_demo_makes_its_phantoms_when_none_are_given(tmp_path):
    res = invoke("demo", "--out", tmp_path / "d", "--jobs", "1")
    assert res.exit_code == 0, res.output
    with open(tmp_path / "d" / "inputs" / "manifest.csv", newline="") as fh:
        cases = [r["case_id"] for r in csv.DictReader(fh)]
    with open(tmp_path / "d" / "scans.csv", newline="") as fh:
        assert [r["case_id"] for r in csv.DictReader(fh)] == sorted(cases)


@pytest.mark.skipif(os.environ.get("VASCALC_SKIP_WHEEL") == "1", reason="VASCALC_SKIP_WHEEL=1")
def test_the_wheel_holds_the_profiles_and_the_generator_and_nothing_else(tmp_path):
    """A real wheel build: what ``pip install .`` installs (build isolation off: the test
    extras bring the build backend)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"no build backend in this environment: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("vascalc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in PROFILES:
        assert f"vascalc/profiles/{name}.yaml" in names, name
    for module in ("generate", "phantom", "dicom_writer", "contrast"):
        assert f"vascalc/sample_data/{module}.py" in names, module
    assert "vascalc/review/page.html" in names and "vascalc/py.typed" in names
    assert not [n for n in names if "phantoms/" in n or n.startswith(("tests/", "pipeline/"))]
