"""A run's tables as typed pandas DataFrames: :func:`read_tables`.

The types come from the run's own ``data_dictionary.csv`` (written from the column registry,
with the run's covariate columns and wide columns): floats for numbers, nullable integers
(``Int64``) and booleans (``boolean``), ``datetime64[ns]`` for dates, ordered categoricals for
``risk_category`` (0 < 1 to 10 < ... < >400) and ``cac_drs`` (A0 < ... < A3), ``string`` for the
rest. CSV and Parquet give equal frames. Each frame carries its dictionary rows (a list of
records) in ``df.attrs["dictionary"]`` and the units in ``df.attrs["units"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ResultError, UsageError
from .columns import ORDERED_CATEGORIES, PRIMARY_KEYS

#: the tables of a run, in the order read_tables returns them
TABLE_NAMES = ("scans", "regions", "lesions", "regions_wide", "regions_masks")


def _where(df: pd.DataFrame, i: int, csv: bool) -> str:
    """A row named as a person finds it: the CSV line (the header is line 1) or the Parquet
    row, and its case id."""
    pos = df.index.get_loc(i) if i in df.index else i
    row = f"line {int(pos) + 2}" if csv else f"row {int(pos) + 1}"
    cid = df["case_id"].iloc[int(pos)] if "case_id" in df.columns else None
    return f"{row} (case {cid})" if isinstance(cid, str) and cid else row


def _refuse(df: pd.DataFrame, col: str, bad: pd.Series, what: str, csv: bool,
            source: str) -> None:
    """Raise ResultError naming the first row of ``bad`` (a boolean mask) and the column."""
    first = bad[bad].index[0]
    n = int(bad.sum())
    more = f" ({n - 1} more row(s) too)" if n > 1 else ""
    raise ResultError(f"{_where(df, first, csv)}, column {col}: {df[col].loc[first]!r} "
                      f"{what}{more}; vascalc never writes that", path=source,
                      hint="the table was edited or is not vascalc's: write it again with "
                           "vascalc (rebuild the run) or correct that cell")


def _numbers(df: pd.DataFrame, col: str, csv: bool, source: str) -> pd.Series:
    """A number column as float64: text that is not a number, and inf or NaN written out,
    are refused (vascalc writes a missing number as an empty cell, never inf or NaN)."""
    s = df[col]
    if pd.api.types.is_bool_dtype(s):
        _refuse(df, col, s.notna(), "is a boolean, not a number", csv, source)
    values = pd.to_numeric(s, errors="coerce")
    given = s.notna() & (s.astype("string").str.strip() != "") if not \
        pd.api.types.is_numeric_dtype(s) else s.notna()
    _refuse_if(df, col, given & values.isna(), "is not a number", csv, source)
    _refuse_if(df, col, values.notna() & ~np.isfinite(values.astype("float64")),
               "is not a finite number", csv, source)
    return values.astype("float64")


def _refuse_if(df, col, bad, what, csv, source) -> None:
    if bool(bad.any()):
        _refuse(df, col, bad, what, csv, source)


def _typed(df: pd.DataFrame, dictionary: pd.DataFrame, source: str, *,
           csv: bool = True) -> pd.DataFrame:
    """The table typed column by column as its dictionary says; a column the dictionary lists
    but the table lacks, one it does not list, and a cell vascalc never writes in its column
    (inf or text in a number, 1.5 in an integer, 'maybe' in a boolean, a date that is not
    one, a category outside its list) are refused by file, row and column."""
    types = dict(zip(dictionary["name"], dictionary["type"]))
    missing = [c for c in types if c not in df.columns]
    if missing:
        raise ResultError(f"column(s) {', '.join(missing)} missing (data_dictionary.csv lists "
                          "them)", path=source, hint="the table was cut or is not this run's: "
                          "write it again with vascalc")
    unknown = [c for c in df.columns if c not in types]
    if unknown:
        raise ResultError(f"column(s) {', '.join(map(str, unknown))} not in "
                          "data_dictionary.csv", path=source,
                          hint="the table was edited or is not this run's")
    out = {}
    for col in df.columns:
        kind = types[col]
        s = df[col]
        if col in ORDERED_CATEGORIES:
            dtype = pd.CategoricalDtype(list(ORDERED_CATEGORIES[col]), ordered=True)
            values = s.astype("string")
            _refuse_if(df, col, values.notna() & ~values.isin(list(dtype.categories)),
                       f"is not one of {list(dtype.categories)}", csv, source)
            out[col] = values.astype(dtype)
        elif kind == "number":
            out[col] = _numbers(df, col, csv, source)
        elif kind == "integer":
            values = _numbers(df, col, csv, source)
            _refuse_if(df, col, values.notna() & (values != values.round()),
                       "is not an integer", csv, source)
            out[col] = values.astype("Int64")
        elif kind == "boolean":
            if pd.api.types.is_bool_dtype(s):
                out[col] = s.astype("boolean")
                continue
            text = s.astype("string").str.strip()
            _refuse_if(df, col, text.notna() & ~text.isin(["true", "false", "True", "False"]),
                       "is not true or false", csv, source)
            out[col] = text.map({"true": True, "false": False, "True": True,
                                 "False": False}).astype("boolean")
        elif kind == "date":
            if pd.api.types.is_datetime64_any_dtype(s):
                out[col] = s.astype("datetime64[ns]")
                continue
            text = s.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
            parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
            _refuse_if(df, col, text.notna() & parsed.isna(), "is not a date (yyyy-mm-dd)",
                       csv, source)
            out[col] = parsed.astype("datetime64[ns]")
        else:
            out[col] = s.astype("string")
    typed = pd.DataFrame(out, index=df.index)
    return typed


def _unique_keys(df: pd.DataFrame, table: str, source: str, csv: bool) -> None:
    """A table's primary key (:data:`PRIMARY_KEYS`) is unique: a case row twice is refused."""
    keys = [k for k in PRIMARY_KEYS.get(table, ()) if k in df.columns]
    if not keys or df.empty:
        return
    twice = df.duplicated(subset=keys, keep="first")
    if bool(twice.any()):
        first = twice[twice].index[0]
        key = ", ".join(f"{k}={df[k].loc[first]!r}" for k in keys)
        raise ResultError(f"{_where(df, first, csv)}: a second row with {key}; vascalc writes "
                          f"one row per {' and '.join(keys)}", path=source,
                          hint="the table was edited or two tables were joined: write it "
                               "again with vascalc")


def read_tables(out: str | Path, *, source: Literal["auto", "csv", "parquet"] = "auto"
                ) -> dict[str, pd.DataFrame]:
    """The tables of a ``vascalc run`` output folder as typed DataFrames.

    Parameters
    ----------
    out : str or Path
        The output folder (it holds ``scans.csv`` and ``data_dictionary.csv``).
    source : {"auto", "csv", "parquet"}
        Read the CSV files or the Parquet twins; ``auto`` takes Parquet where written.

    Returns
    -------
    dict of str to DataFrame
        ``scans``, ``regions``, ``lesions``, ``regions_wide`` and ``regions_masks`` (where
        written), and
        ``dictionary``: the data dictionary (table, name, type, pandas_dtype, unit, meaning).
        The rows of ``regions`` partition each scan's kept calcium: a per-case sum equals
        the scan's ``all_calcium_*`` columns.

    Raises
    ------
    ResultError
        The folder is not a run's output; a table lacks a column its dictionary lists or
        holds one it does not; a cell is not of its column's type or is what vascalc never
        writes (inf or NaN in a number, 'maybe' in a boolean); a key row (a case) is there
        twice; or a table file is not one the run wrote (run.json ``table_files``: an
        earlier run's Parquet after a run with ``output.parquet: false``). The message names
        the file, the row and the column.
    UsageError
        ``source`` is none of auto, csv, parquet.

    Notes
    -----
    Typical use::

        t = read_tables("results/cohort")
        t["scans"].groupby("risk_category", observed=True)["volume_mm3"].median()
    """
    if source not in ("auto", "csv", "parquet"):
        raise UsageError(f"read_tables(source={source!r}): source is 'auto', 'csv' or "
                         "'parquet'", hint="leave it out to read Parquet where the run wrote it")
    if isinstance(out, bool) or not isinstance(out, (str, os.PathLike)):
        raise UsageError(f"read_tables(out) is {out!r} ({type(out).__name__}); it takes the "
                         "output folder of a vascalc run, as a str or Path")
    folder = Path(out)
    dict_path = folder / "data_dictionary.csv"
    if not dict_path.is_file():
        raise ResultError("no data_dictionary.csv: not the output folder of a vascalc run",
                          path=str(folder), hint="give the --out folder of vascalc run")
    owned = run_tables(folder)
    dictionary = pd.read_csv(dict_path, dtype="string", keep_default_na=False)
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        csv_path, pq_path = folder / f"{name}.csv", folder / f"{name}.parquet"
        pq_ours = pq_path.is_file() and (owned is None or pq_path.name in owned)
        use_pq = source == "parquet" or (source == "auto" and pq_ours)
        path = pq_path if use_pq else csv_path
        if owned is not None and path.name not in owned:
            if path.is_file():
                raise ResultError(f"{path.name} is not a table of the run that wrote run.json "
                                  f"(it lists {', '.join(sorted(owned))}): an earlier run's "
                                  "file", path=str(path),
                                  hint="read source='csv', or rerun with output.parquet: true")
            if name in ("regions_wide", "regions_masks") and source != "parquet":
                continue
            raise ResultError(f"no {path.name}: the run wrote "
                              f"{', '.join(sorted(owned))}", path=str(folder),
                              hint="read source='csv' (output.parquet was false)")
        if not path.is_file():
            if name in ("regions_wide", "regions_masks") and source != "parquet":
                continue  # not written by every run (no scored case; older outputs)
            raise ResultError(f"no {path.name} in the output folder", path=str(folder))
        try:
            raw = (pd.read_parquet(path) if use_pq else
                   pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
        except (OSError, ValueError, TypeError) as err:
            raise ResultError(f"cannot read the table ({type(err).__name__}: {err})",
                              path=str(path)) from None
        rows = dictionary[dictionary["table"] == name].reset_index(drop=True)
        try:
            df = _typed(raw, rows, str(path), csv=not use_pq)
        except (ValueError, TypeError) as err:
            raise ResultError(f"cannot read it as typed: {err}", path=str(path)) from None
        _unique_keys(raw, name, str(path), not use_pq)
        # plain records, not a frame: pandas compares attrs with == when it combines frames
        df.attrs["dictionary"] = rows.to_dict("records")
        df.attrs["units"] = {n: u for n, u in zip(rows["name"], rows["unit"]) if u}
        tables[name] = df
    _complete(folder, tables)
    tables["dictionary"] = dictionary
    return tables


def _complete(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Refuse a scans table that is not whole: a row without its status (a file cut inside a
    row), or other cases than the run that wrote run.json recorded (a file cut between rows,
    or edited)."""
    scans = tables.get("scans")
    if scans is None:
        return
    path = str(folder / "scans.csv")
    if "status" in scans and scans["status"].isna().any():
        line = int(scans.index[scans["status"].isna()][0]) + 2
        raise ResultError(f"line {line}: a row without its status (case "
                          f"{scans['case_id'].iloc[line - 2]!s}): the table was cut or edited",
                          path=path, hint="rerun vascalc run into the folder to rewrite it")
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    ids = run.get("case_ids") if isinstance(run, dict) else None
    if isinstance(ids, list) and "case_id" in scans:
        have, want = set(scans["case_id"].astype(str)), {str(i) for i in ids}
        if have != want:
            gone, extra = sorted(want - have), sorted(have - want)
            raise ResultError(
                f"holds {len(have)} case(s) where run.json records {len(want)}"
                + (f"; missing {', '.join(gone[:5])}" if gone else "")
                + (f"; not in the run {', '.join(extra[:5])}" if extra else "")
                + ": the table was cut or edited", path=path,
                hint="rerun vascalc run into the folder to rewrite it")


def run_tables(folder: Path) -> set[str] | None:
    """The table files the run that wrote ``folder/run.json`` wrote (its ``table_files``);
    None for an output without that record (an older vascalc, or tables copied alone)."""
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = run.get("table_files") if isinstance(run, dict) else None
    return set(files) if isinstance(files, list) else None
