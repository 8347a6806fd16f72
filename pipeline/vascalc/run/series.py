"""Score one series from Python exactly as ``vascalc run`` would: the same discovery (stack
selection, localizers and secondary captures left out, refusals), the same settings rule
(config, calibration table) and the same analysis, without writing anything."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..config.load import load_config, with_study_secret
from ..config.schema import Config
from ..errors import UsageError
from ..records import ScanResult
from .case import score_case
from .discovery import collect_cases


def _config(config: Config | str | Path | None) -> Config:
    if not (config is None or isinstance(config, (Config, str, os.PathLike))):
        hint = ("build one with vascalc.Config.model_validate(d) (it checks every key)"
                if isinstance(config, dict) else "give a Config, a YAML path or a profile name")
        raise UsageError(f"config is a {type(config).__name__}; score_series takes a "
                         "vascalc.Config, the path of a YAML config, a profile name or None",
                         hint=hint)
    return with_study_secret(config if isinstance(config, Config) else load_config(config))


def check_path(path: object, what: str) -> Path:
    """``path`` as a Path when it is a str or path-like; a UsageError naming ``what`` and
    the type received otherwise (never a raw TypeError from deep inside)."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)) or not str(path):
        raise UsageError(f"{what} is {path!r} ({type(path).__name__}); it takes the path of "
                         "a series folder, a DICOM or NIfTI file or a zip, as a str or Path",
                         hint="pass a path, e.g. score_series('scans/patient01')")
    return Path(path)


def score_series(path: str | Path, config: Config | str | Path | None = None, *,
                 case_id: str | None = None) -> ScanResult:
    """Score the CT series at ``path`` (a folder, a DICOM file, a NIfTI file or a zip archive).

    Parameters
    ----------
    path
        What ``vascalc run`` accepts as an input (not a manifest: use the command for a cohort).
    config
        A :class:`~vascalc.config.schema.Config`, the path of a YAML config, or None for the
        defaults.
    case_id
        Which series to score when ``path`` holds several (the ids ``vascalc run`` would give
        them, as in its scans.csv); without it, ``path`` must hold exactly one.

    Returns
    -------
    ScanResult
        The typed result: scope, headline scores, regions, lesions, flags, provenance.

    Raises
    ------
    UsageError
        ``path`` is not a str or path-like (None, a number), ``config`` is none of Config,
        str, path or None (a dict is refused: validate it with ``Config.model_validate``).
    VascalcError
        Whatever subclass ``vascalc run`` would record in the failed row (its ``code`` is the
        row's ``error_code``), or :class:`~vascalc.errors.UsageError` when ``path`` holds several
        series and ``case_id`` names none of them.

    Examples
    --------
    >>> import vascalc
    >>> vascalc.score_series("/no/such/folder")
    Traceback (most recent call last):
    ...
    vascalc.errors.NoInputError: input '/no/such/folder' does not exist -> ...
    """
    p = check_path(path, "score_series(path)")
    if case_id is not None and not isinstance(case_id, str):
        raise UsageError(f"case_id is a {type(case_id).__name__}; give the case id as a str "
                         "(as in scans.csv's case_id)")
    if p.suffix.lower() == ".csv":
        raise UsageError(f"{p} is a manifest: score_series scores one series",
                         hint="run `vascalc run MANIFEST --out OUT` for a cohort")
    cfg = _config(config)
    with tempfile.TemporaryDirectory(prefix="vascalc-") as work:
        cases, _ = collect_cases([p], cfg, work_dir=Path(work))
        if case_id is not None:
            chosen = [c for c in cases if c.case_id == case_id]
        else:
            chosen = cases if len(cases) == 1 else []
        if len(chosen) != 1:
            ids = ", ".join(c.case_id for c in cases)
            raise UsageError(f"{p} holds {len(cases)} series ({ids})"
                             + (f"; none is {case_id!r}" if case_id is not None else ""),
                             hint="pass case_id= one of them, or point at one series' folder")
        _, _, result = score_case(chosen[0], cfg)
    return result
