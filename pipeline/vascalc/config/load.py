"""Reading a config: YAML or a mapping -> a validated :class:`~vascalc.config.schema.Config`, or
a :class:`~vascalc.errors.ConfigError` naming the key, the value received and what is allowed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..values import safe_yaml
from .profiles import resolve
from .schema import HASH_SALT_ENV, Config


def _format_validation(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parent = _model_at(e["loc"][:-1])
            allowed = sorted(parent.model_fields) if parent else []
            lines.append(f"unknown key '{loc}'; allowed keys here: {', '.join(allowed)}")
        else:
            lines.append(f"'{loc}': {e['msg']} (got {e.get('input')!r})")
    return f"{source}: invalid config: " + "; ".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type)
                                 and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def config_from_dict(data: dict, *, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, source)) from None


def load_config(path: str | Path | None) -> Config:
    """Read a YAML config.

    Parameters
    ----------
    path : str, Path or None
        A YAML file of the shape of the ``default`` profile (any subset of its keys), or the
        name of a bundled profile (``vascalc config list``); None gives the defaults.

    Returns
    -------
    Config
        The validated, frozen config.

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, or holds an unknown key or a bad value (the
        message names the file, the key, the value and what is allowed).

    Examples
    --------
    >>> load_config(None).scoring.threshold_hu
    130.0
    >>> load_config("totalsegmentator").regions.label_table  # a bundled profile, by name
    'totalsegmentator_v2'
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = p.write_text("scoring: {treshold_hu: 100}")
    >>> load_config(p)
    Traceback (most recent call last):
    ...
    vascalc.errors.ConfigError: ...unknown key 'scoring.treshold_hu'; allowed keys here: ...
    """
    if path is None:
        return Config()
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"load_config takes a YAML path, a profile name or None, not a "
                          f"{type(path).__name__}", hint="for a dict of settings use "
                          "vascalc.Config.model_validate(d)" if isinstance(path, dict) else
                          "give the path of a YAML config")
    source, text = resolve(path)
    try:
        data = safe_yaml(text)
    except ValueError as err:
        raise ConfigError(str(err), path=source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping, got {type(data).__name__}", path=source)
    return config_from_dict(data, source=source)


def with_study_secret(config: Config, environ: Mapping[str, str] | None = None) -> Config:
    """The config with the patient-id hash key resolved at the edge: under
    ``privacy.patient_id: hash`` a config without ``privacy.hash_salt`` takes it from the
    environment variable VASCALC_HASH_SALT (read here, once, never later), so the key travels
    with the config to workers and ``Config.sha256`` depends on nothing else. Refused by name
    when no key of 16 characters or more is found: ids hashed with a public salt reverse by
    enumeration."""
    pv = config.privacy
    if pv.patient_id != "hash":
        return config
    key = pv.hash_salt or (os.environ if environ is None else environ).get(HASH_SALT_ENV, "")
    if len(key) < 16:
        raise ConfigError("privacy.patient_id: hash needs the study's secret key: "
                          "privacy.hash_salt in the config, or the environment variable "
                          f"{HASH_SALT_ENV} (16 characters or more)",
                          hint="set one, or choose privacy.patient_id: omit or keep")
    return config.model_copy(update={"privacy": pv.model_copy(update={"hash_salt": key})})
