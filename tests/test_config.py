from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from vascalc.config.load import load_config
from vascalc.config.schema import Config
from vascalc.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"default.yaml", "sample_data.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert len(cfg.sha256()) == 64


def test_default_yaml_equals_the_schema_defaults():
    assert load_config(CONFIGS[[p.name for p in CONFIGS].index("default.yaml")]) == Config()


def test_every_key_in_default_yaml_is_commented():
    import re

    lines = (Path(CONFIGS[0]).parent / "default.yaml").read_text().splitlines()
    keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*\w+:\s*\S", line)]
    assert len(keyed) >= 15
    for i in keyed:
        assert lines[i - 1].lstrip().startswith("#"), f"key without comment: {lines[i]}"


def test_unknown_key_lists_allowed(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"scoring": {"treshold_hu": 100}}))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "scoring.treshold_hu" in msg and "threshold_hu" in msg and str(p) in msg


def test_bad_values_are_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("scoring:\n  density_weight_hu: [130, 300, 200, 400]\n")
    with pytest.raises(ConfigError, match="increase"):
        load_config(p)
    p.write_text("bsa:\n  formula: dubios\n")
    with pytest.raises(ConfigError, match="dubois"):
        load_config(p)
    p.write_text("scoring:\n  mass_calibration_mg_per_cm3_per_hu: 0\n")
    with pytest.raises(ConfigError, match="mass_calibration"):
        load_config(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


def test_config_is_frozen():
    cfg = Config()
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        cfg.scoring.threshold_hu = 100  # type: ignore[misc]


def test_the_study_secret_is_read_at_the_edge_only(monkeypatch):
    """Config.sha256 and the id hash never read the environment; with_study_secret (called by
    the CLI, score_series and review) resolves VASCALC_HASH_SALT once into the config."""
    from vascalc.config.load import with_study_secret
    from vascalc.errors import ConfigError

    cfg = Config(privacy={"patient_id": "hash"})
    before = cfg.sha256()
    monkeypatch.setenv("VASCALC_HASH_SALT", "a-study-secret-of-32-characters!")
    assert cfg.sha256() == before and cfg.privacy.secret() is None
    resolved = with_study_secret(cfg)
    assert resolved.privacy.secret() == "a-study-secret-of-32-characters!"
    assert resolved.sha256() != before  # a new key redoes the cases
    assert "a-study-secret" not in resolved.model_dump_json()  # never written out
    monkeypatch.setenv("VASCALC_HASH_SALT", "short")
    with pytest.raises(ConfigError, match="secret key"):
        with_study_secret(cfg)
    assert with_study_secret(Config()) == Config()  # no hash: nothing to resolve


def test_deep_nesting_and_duplicate_keys_are_refused_by_name(tmp_path):
    """#22: YAML nested 1,000 deep gave a RecursionError traceback (and time quadratic in the
    depth); a key given twice was silently last-wins."""
    from vascalc.errors import ConfigError

    deep = tmp_path / "deep.yaml"
    deep.write_text("scoring: " + "[" * 1000 + "]" * 1000 + "\n")
    with pytest.raises(ConfigError, match="nested deeper than 64 levels") as err:
        load_config(deep)
    assert err.value.code == "CONFIG_INVALID" and str(deep) in str(err.value)
    twice = tmp_path / "twice.yaml"
    twice.write_text("scoring:\n  threshold_hu: 130\n  threshold_hu: 100\n")
    with pytest.raises(ConfigError, match="'threshold_hu' is given twice \\(line 3\\)"):
        load_config(twice)
