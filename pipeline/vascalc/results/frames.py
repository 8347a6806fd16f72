"""A run's tables as typed pandas DataFrames: :func:`read_tables`.

The types come from the run's own ``data_dictionary.csv`` (written from the column registry,
with the run's covariate columns and wide columns): floats for numbers, nullable integers
(``Int64``) and booleans (``boolean``), ``datetime64[ns]`` for dates, ordered categoricals for
``risk_category`` (0 < 1 to 10 < ... < >400) and ``cac_drs`` (A0 < ... < A3), ``string`` for the
rest. CSV and Parquet give equal frames. Each frame carries its dictionary rows (a list of
records) in ``df.attrs["dictionary"]`` and the units in ``df.attrs["units"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from ..errors import ResultError
from .columns import ORDERED_CATEGORIES

#: the tables of a run, in the order read_tables returns them
TABLE_NAMES = ("scans", "regions", "lesions", "regions_wide", "regions_masks")


def _typed(df: pd.DataFrame, dictionary: pd.DataFrame, source: str) -> pd.DataFrame:
    out = {}
    types = dict(zip(dictionary["name"], dictionary["type"]))
    for col in df.columns:
        kind = types.get(col, "string")
        s = df[col]
        if col in ORDERED_CATEGORIES:
            dtype = pd.CategoricalDtype(list(ORDERED_CATEGORIES[col]), ordered=True)
            values = s.astype("string")
            unknown = set(values.dropna()) - set(dtype.categories)
            if unknown:
                raise ResultError(f"column {col} holds {sorted(unknown)}, not one of "
                                  f"{list(dtype.categories)}", path=source)
            out[col] = values.astype(dtype)
        elif kind == "number":
            out[col] = pd.to_numeric(s, errors="raise").astype("float64")
        elif kind == "integer":
            out[col] = pd.to_numeric(s, errors="raise").astype("Int64")
        elif kind == "boolean":
            if s.dtype == object or pd.api.types.is_string_dtype(s):
                s = s.map({"true": True, "false": False, True: True, False: False})
            out[col] = s.astype("boolean")
        elif kind == "date":
            text = s.dtype == object and s.dropna().map(type).eq(str).all()
            parsed = pd.to_datetime(s, format="%Y-%m-%d") if text else pd.to_datetime(s)
            out[col] = parsed.astype("datetime64[ns]")
        else:
            out[col] = s.astype("string")
    return pd.DataFrame(out, index=df.index)


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
        The folder is not a run's output, or a cell does not have its column's type.

    Notes
    -----
    Typical use::

        t = read_tables("results/cohort")
        t["scans"].groupby("risk_category", observed=True)["volume_mm3"].median()
    """
    folder = Path(out)
    dict_path = folder / "data_dictionary.csv"
    if not dict_path.is_file():
        raise ResultError("no data_dictionary.csv: not the output folder of a vascalc run",
                          path=str(folder), hint="give the --out folder of vascalc run")
    dictionary = pd.read_csv(dict_path, dtype="string", keep_default_na=False)
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        csv_path, pq_path = folder / f"{name}.csv", folder / f"{name}.parquet"
        use_pq = source == "parquet" or (source == "auto" and pq_path.is_file())
        path = pq_path if use_pq else csv_path
        if not path.is_file():
            if name in ("regions_wide", "regions_masks") and source != "parquet":
                continue  # not written by every run (no scored case; older outputs)
            raise ResultError(f"no {path.name} in the output folder", path=str(folder))
        try:
            raw = (pd.read_parquet(path) if use_pq else
                   pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
            rows = dictionary[dictionary["table"] == name].reset_index(drop=True)
            df = _typed(raw, rows, str(path))
        except (ValueError, TypeError) as err:
            raise ResultError(f"cannot read it as typed: {err}", path=str(path)) from None
        # plain records, not a frame: pandas compares attrs with == when it combines frames
        df.attrs["dictionary"] = rows.to_dict("records")
        df.attrs["units"] = {n: u for n, u in zip(rows["name"], rows["unit"]) if u}
        tables[name] = df
    tables["dictionary"] = dictionary
    return tables

