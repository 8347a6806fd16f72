"""Statisticians' tables: typed frames (vascalc.read_tables), regions.csv rows that partition
each scan's calcium, and a wide table with snake_case columns stable for a run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import vascalc
from typer.testing import CliRunner
from vascalc.cli.app import app
from vascalc.errors import ResultError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_out(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("frames")
    res = CliRunner().invoke(app, ["run", str(sample_data / "manifest.csv"), "--out", str(out),
                                   "--config", "sample_data", "--no-report", "-j", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_read_tables_types_every_column_from_the_dictionary(run_out):
    t = vascalc.read_tables(run_out)
    scans = t["scans"]
    assert scans["agatston"].dtype == "float64" and scans["n_lesions"].dtype == "Int64"
    assert scans["study_date"].dtype == "datetime64[ns]"
    assert scans["agatston_comparable"].dtype == "boolean"
    assert scans["case_id"].dtype == "string" and scans["error_code"].dtype == "string"
    risk = scans["risk_category"].dtype
    assert isinstance(risk, pd.CategoricalDtype) and risk.ordered
    assert list(risk.categories) == ["0", "1 to 10", "11 to 100", "101 to 400", ">400"]
    assert list(scans["cac_drs"].dtype.categories) == ["A0", "A1", "A2", "A3"]
    # the covariates carried from the manifest are typed as the dictionary says
    d = t["dictionary"]
    for _, row in d[d["table"] == "scans"].iterrows():
        want = row["pandas_dtype"]
        got = str(scans[row["name"]].dtype)
        assert got == want, (row["name"], got, want)
    assert scans.attrs["units"]["volume_mm3"] == "mm3"
    assert {r["name"] for r in scans.attrs["dictionary"]} == set(scans.columns)
    # the attrs survive pandas operations that combine frames (concat, astype, merge)
    pd.concat([scans, scans]).astype({"agatston": float}).merge(t["regions"], on="case_id")
    assert set(t) == {"scans", "regions", "lesions", "regions_wide", "regions_masks", "dictionary"}
    assert t["regions_masks"].empty  # no rescore: the masks' partition is regions itself


def test_csv_and_parquet_give_equal_frames(run_out):
    a, b = vascalc.read_tables(run_out, source="csv"), vascalc.read_tables(run_out, source="parquet")
    for name in ("scans", "regions", "lesions", "regions_wide", "regions_masks"):
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


def test_a_naive_per_case_sum_of_regions_is_the_all_calcium_total(run_out):
    t = vascalc.read_tables(run_out)
    sums = t["regions"].groupby("case_id")[["agatston", "volume_mm3", "mass_mg"]].sum()
    scans = t["scans"].set_index("case_id")
    for m in ("agatston", "volume_mm3", "mass_mg"):
        pd.testing.assert_series_equal(sums[m], scans.loc[sums.index, f"all_calcium_{m}"],
                                       check_names=False, rtol=1e-9)
    assert "whole" not in set(t["regions"]["region"])  # every sample case has regions


def test_the_wide_table_is_snake_case_and_sums_like_regions(run_out):
    wide = vascalc.read_tables(run_out)["regions_wide"].set_index("case_id")
    assert all(c == c.lower() for c in wide.columns)
    assert {"lad_agatston", "vertebrae_l1_volume_mm3", "outside_mass_mg"} <= set(wide.columns)
    vol = wide[[c for c in wide.columns if c.endswith("_volume_mm3")]].sum(axis=1)
    scans = vascalc.read_tables(run_out)["scans"].set_index("case_id")
    pd.testing.assert_series_equal(vol, scans.loc[vol.index, "all_calcium_volume_mm3"],
                                   check_names=False, rtol=1e-9)


def test_the_wide_columns_are_the_configs_regions_whether_present_or_not():
    from vascalc.config.load import load_config
    from vascalc.results.wide import wide_rows

    cfg = load_config("totalsegmentator")
    rows, stems = wide_rows([("a", [{"region": "aorta_thoracic", "agatston": 1.0, "volume_mm3": 2.0,
                                     "mass_mg": None, "n_lesions": 1,
                                     "volume_per_bsa_mm3_m2": None}])], cfg)
    assert list(stems)[:len(cfg.regions.territories)] == list(cfg.regions.territories)
    assert "outside" in stems and "iliac" in stems  # named by the config, absent from the case
    assert rows == [{"case_id": "a", "aorta_thoracic_agatston": 1.0, "aorta_thoracic_volume_mm3": 2.0,
                     "aorta_thoracic_mass_mg": None, "aorta_thoracic_n_lesions": 1,
                     "aorta_thoracic_volume_per_bsa_mm3_m2": None}]


def test_two_regions_of_one_snake_case_name_get_their_own_columns():
    from vascalc.results.wide import wide_stems

    assert wide_stems(["LAD", "lad", "Lad"]) == {"LAD": "lad", "lad": "lad_2", "Lad": "lad_3"}


def test_read_tables_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ResultError, match="data_dictionary.csv"):
        vascalc.read_tables(tmp_path)


def test_the_documented_per_case_sum_is_the_all_calcium_total(contrast_data, tmp_path):
    """docs/statistics.md: regions summed per case with skipna=False equal scans.csv's
    all-calcium columns, an empty (withheld) total included; a plain sum would give the scored
    regions' part (the vertebrae) on the contrast phantoms."""
    import vascalc
    from typer.testing import CliRunner
    from vascalc.cli.app import app

    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["run", str(contrast_data / "manifest.csv"), "--out",
                                   str(out), "-j", "1", "-q"], catch_exceptions=False)
    assert res.exit_code in (0, 1), res.output
    t = vascalc.read_tables(out)
    sums = t["regions"].groupby("case_id")[["agatston", "volume_mm3"]].sum(skipna=False)
    scans = t["scans"].set_index("case_id")
    withheld = scans["all_calcium_agatston"].isna()
    assert withheld.any(), "no withheld total: the check would hold vacuously"
    for col in ("agatston", "volume_mm3"):
        got, want = sums[col].reindex(scans.index), scans[f"all_calcium_{col}"]
        assert (got.isna() == want.isna()).all(), col
        assert ((got - want).abs()[want.notna()] < 1e-6).all(), col
    plain = t["regions"].groupby("case_id")["agatston"].sum()
    assert plain.reindex(scans.index)[withheld].notna().all()  # what the docs warn against
