"""The case path: settings resolved in one function, result documents versioned, rows built
only through the column registry, modules kept to their job."""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from vascalc.analyse import analyse
from vascalc.config.schema import Config
from vascalc.config.settings import resolve_settings
from vascalc.errors import ResultError
from vascalc.records import CaseFailure, ScanMeta
from vascalc.results.columns import TABLES
from vascalc.results.document import (
    RESULT_SCHEMA,
    read_result,
    result_path,
    reusable,
    scan_row,
)
from vascalc.results.rows import _checked
from vascalc.run.batch import run_batch
from vascalc.run.discovery import cases_from_manifest

from tests.conftest import volume
from tests.golden.make_golden import HERE as GOLDEN

ROOT = Path(__file__).resolve().parents[1]
TABLE_CFG = Config(scoring={
    "mass_calibration_mg_per_cm3_per_hu": 0.9, "calibration_water_hu": 1.0,
    "calibration_table": [{"manufacturer": "acme", "c_mg_per_cm3_per_hu": 0.6, "water_hu": 2.0}]})
ACME = ScanMeta(manufacturer="ACME Medical", model="X", kvp=120.0)


def _cal(cfg: Config) -> tuple[float | None, float]:
    return (cfg.scoring.mass_calibration_mg_per_cm3_per_hu, cfg.scoring.calibration_water_hu)


@pytest.mark.parametrize("manifest, meta, expected", [
    ((None, None), None, (0.9, 1.0)),  # config only (no header yet: no table entry)
    ((None, None), ScanMeta(manufacturer="Other"), (0.9, 1.0)),  # no entry matches
    ((None, None), ACME, (0.6, 2.0)),  # the table's entry wins over the config
    ((0.75, None), ACME, (0.75, 2.0)),  # each manifest value wins on its own
    ((None, -3.0), ACME, (0.6, -3.0)),
    ((0.75, -3.0), ACME, (0.75, -3.0)),
    ((0.75, None), None, (0.75, 1.0)),
])
def test_settings_precedence_manifest_then_table_then_config(manifest, meta, expected):
    cfg = resolve_settings(TABLE_CFG, calibration=manifest[0], water_hu=manifest[1], meta=meta)
    assert _cal(cfg) == expected
    # every other key is the run's config
    assert cfg.model_dump(exclude={"scoring"}) == TABLE_CFG.model_dump(exclude={"scoring"})


def test_settings_unchanged_config_is_the_same_object():
    cfg = Config()
    assert resolve_settings(cfg, meta=ACME) is cfg


def test_settings_are_resolved_in_one_function_only():
    """No other module applies the calibration table or the manifest's calibration."""
    for p in sorted((ROOT / "pipeline").rglob("*.py")):
        text = p.read_text()
        if p.name not in ("settings.py", "schema.py"):
            assert "for_scanner(" not in text, p
            assert not re.search(r"model_copy\(update=\{\s*\"scoring\"", text), p
            assert not re.search(r"scoring\.model_copy", text), p


def _doc_dir(tmp_path, sample_data):
    case = cases_from_manifest(sample_data / "manifest.csv")[4]  # P04: no calcium, quick
    out = tmp_path / "o"
    run_batch([case], Config(), out)
    return case, out


def test_result_of_another_schema_version_is_refused_by_name(tmp_path, sample_data):
    case, out = _doc_dir(tmp_path, sample_data)
    path = result_path(out, case.case_id)
    doc = read_result(path)
    assert doc["schema"] == RESULT_SCHEMA
    doc["schema"] = RESULT_SCHEMA - 1
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultError, match=f"schema version {RESULT_SCHEMA - 1}.*reads version "
                                          f"{RESULT_SCHEMA}") as err:
        read_result(path)
    assert str(path) in str(err.value) and err.value.code == "RESULT_INVALID"
    # a rerun does not reuse it: the case is scored again and the document rewritten
    assert reusable(out, case.case_id, config_sha256=Config().sha256(),
                    fingerprint=case.fingerprint()) is None
    summary = run_batch([case], Config(), out).summary
    assert summary["counts"]["reused"] == 0
    assert read_result(path)["schema"] == RESULT_SCHEMA


def test_a_new_column_reaches_cached_cases_without_scoring_them_again(tmp_path, sample_data,
                                                                     monkeypatch):
    """result.json stores the measured record, not rows: a column added to the registry (and
    to the row builder) is filled for every cached case on resume, and no case is scored."""
    from vascalc.results import rows as docmod
    from vascalc.results.columns import Column

    cases = cases_from_manifest(sample_data / "manifest.csv")
    out = tmp_path / "o"
    run_batch(cases, Config(), out)
    stored = json.loads(result_path(out, "P01_T1").read_text())
    assert "scan" not in stored and stored["outcome"]["kind"] == "scored"
    new = Column("agatston_x2", "number", "", "twice the headline Agatston (a test column)")
    monkeypatch.setitem(TABLES, "scans", (*TABLES["scans"], new))
    checked = docmod._checked

    def with_new(row, table):
        if table == "scans" and "agatston_x2" not in row:
            row = {**row, "agatston_x2": None if row.get("agatston") is None
                   else 2 * row["agatston"]}
        return checked(row, table)

    monkeypatch.setattr(docmod, "_checked", with_new)
    scored = []
    monkeypatch.setattr("vascalc.run.executors.run_case",
                        lambda case, *a, **k: scored.append(case.case_id))
    summary = run_batch(cases, Config(), out).summary
    assert summary["counts"]["reused"] == len(cases) and scored == []
    with open(out / "scans.csv", newline="") as fh:
        rows = {r["case_id"]: r for r in csv.DictReader(fh)}
    for r in rows.values():
        assert float(r["agatston_x2"]) == pytest.approx(2 * float(r["agatston"]))


def test_unreadable_result_is_refused_by_name(tmp_path):
    p = tmp_path / "result.json"
    p.write_text("{not json")
    with pytest.raises(ResultError, match="cannot read the case result"):
        read_result(p)
    with pytest.raises(ResultError, match="missing|cannot read"):
        read_result(tmp_path / "absent.json")


def test_a_column_the_registry_does_not_know_cannot_be_written():
    row = scan_row(CaseFailure(case_id="x", error_code="E", error="e"), settings={})
    assert set(row) == {c.name for c in TABLES["scans"]}
    with pytest.raises(ValueError, match=r"unknown \['agatson'\]"):
        _checked({**row, "agatson": 1.0}, "scans")
    del row["agatston"]
    with pytest.raises(ValueError, match=r"missing \['agatston'\]"):
        _checked(row, "scans")


def test_every_registered_column_is_filled_by_some_record():
    """Over the golden runs (which test_golden proves the code still writes), every column
    of the registry holds a value in at least one row: none is registered and never filled."""
    filled: dict[str, set[str]] = {t: set() for t in TABLES}
    for t in TABLES:
        for f in GOLDEN.glob(f"sample_*/{t}.csv"):
            with open(f, newline="") as fh:
                for row in csv.DictReader(fh):
                    filled[t] |= {k for k, v in row.items() if v != ""}
    for t, cols in TABLES.items():  # tables of one column tuple (regions, regions_masks) share
        seen = set().union(*(filled[u] for u, other in TABLES.items() if other is cols))
        assert [c.name for c in cols if c.name not in seen] == [], t


def test_scored_voxels_describe_exactly_the_scored_lesions():
    hu = np.full((4, 20, 20), -50)
    hu[1:3, 4:8, 4:8] = 250
    hu[2, 12:15, 12:15] = 450
    vol = volume(hu, (3.0, 0.5, 0.5))
    before = vol.hu.copy()
    r = analyse(vol, Config(), case_id="v", keep_voxels=True)
    np.testing.assert_array_equal(vol.hu, before)  # the input is not modified
    v = r.voxels
    assert v is not None and v.threshold_hu == 130.0
    assert int((v.bands > 0).sum()) == sum(le.n_voxels for le in r.lesions)
    assert set(np.unique(v.lesion_labels)) == {0, *(le.lesion_id for le in r.lesions)}
    assert analyse(vol, Config(), case_id="v").voxels is None
    plain = analyse(vol, Config(), case_id="v")
    assert (r.whole, r.lesions) == (plain.whole, plain.lesions)  # keeping changes no score


def test_only_the_document_module_reads_a_documents_rows_by_key():
    """A case document's rows are derived from its record in results/document.py; every other
    module reads them through its accessors (scan_of, is_ok, region_rows_of, lesion_rows_of),
    never by subscripting the document."""
    for p in sorted((ROOT / "pipeline" / "vascalc").rglob("*.py")):
        if p.name == "document.py" and p.parent.name == "results":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                    and node.slice.value in ("scan", "regions", "lesions")
                    and isinstance(node.value, ast.Name) and "doc" in node.value.id):
                raise AssertionError(f"{p}:{node.lineno} reads doc[{node.slice.value!r}]")


def test_modules_stay_small_and_import_at_the_top():
    """~400 lines per module; an import inside a function is a heavy or optional third-party
    dependency kept lazy on purpose, and says so in a comment."""
    for p in sorted((ROOT / "pipeline").rglob("*.py")):
        lines = p.read_text().splitlines()
        assert len(lines) <= 400, f"{p.name} has {len(lines)} lines"
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        line = lines[sub.lineno - 1]
                        assert "# lazy" in line or "# optional" in line, f"{p}:{sub.lineno}"


def test_discovery_does_not_import_scoring():
    tree = ast.parse((ROOT / "pipeline" / "vascalc" / "run" / "discovery.py").read_text())
    imported = {(n.module or "").rsplit(".", 1)[-1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported, "discovery imports nothing of the package: the check would hold vacuously"
    assert not imported & {"analyse", "score", "lesions", "case", "batch", "app"}
