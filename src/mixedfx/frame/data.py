"""Data frames in, one clean pandas frame of the used columns out.

Any eager data frame that narwhals understands (pandas, polars, pyarrow, ...) or a dict of
arrays is accepted. Only the columns the model uses are taken; rows with a missing value in
any of them are dropped, counted and reported, as R's ``na.omit`` does for lme4.
"""

from __future__ import annotations

import difflib
import keyword
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._lazy import narwhals as nw
from ..errors import ColumnNotFoundError, DataError, MissingValuesWarning

__all__ = ["ModelFrame", "column_names_in", "model_frame", "to_pandas"]

# Names that may appear in a formula without being columns: functions and modules that
# formulaic evaluates, and formula keywords.
_KNOWN_NAMES = {
    "np", "numpy", "I", "C", "Q", "log", "log2", "log10", "log1p", "exp", "sqrt", "abs",
    "center", "scale", "poly", "bs", "offset", "Treatment", "Sum", "Poly", "Helmert", "Diff",
    "contr", "lag", "cbind", "True", "False", "None", "pi",
}  # fmt: skip

_TOKEN = re.compile(r"`([^`]+)`|([A-Za-z_][A-Za-z0-9_.]*)")


def to_pandas(data: object) -> pd.DataFrame:
    """Convert ``data`` to a pandas DataFrame without copying more than needed."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame(
                {k: np.asarray(v) if not isinstance(v, pd.Series) else v for k, v in data.items()}
            )
        except ValueError as exc:
            raise DataError(f"cannot make a data frame from the mapping given: {exc}") from None
    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError:
        raise DataError(
            f"data must be a data frame (pandas, polars, pyarrow, ...) or a dict of arrays, "
            f"got {type(data).__name__}"
        ) from None
    cols: dict[str, object] = {}
    for name in frame.columns:
        s = frame[name]
        dtype = s.dtype
        if dtype == nw.Categorical or dtype == nw.Enum:
            cats = list(s.cat.get_categories().to_list())
            cols[name] = pd.Categorical(s.to_list(), categories=cats)
        elif dtype == nw.String:
            cols[name] = pd.array(s.to_list(), dtype=object)
        else:
            values = s.to_numpy()
            if s.null_count() and values.dtype.kind in "iub":
                values = s.cast(nw.Float64).to_numpy()
            cols[name] = values
    return pd.DataFrame(cols)


def column_names_in(texts: Iterable[str], columns: Iterable[str]) -> list[str]:
    """Identifiers in formula fragments that name columns, in order of first appearance.

    Names used as a function (followed by ``(``) or an attribute (``np.log``) are skipped;
    back-quoted names (`` `my col` ``) are column names.
    """
    colset = set(columns)
    seen: dict[str, None] = {}
    for text in texts:
        for m in _TOKEN.finditer(text):
            name = m.group(1) or m.group(2)
            if m.group(2) is not None:
                rest = text[m.end() :].lstrip()
                if rest.startswith("(") and name not in colset:
                    continue
                if m.start() > 0 and text[m.start() - 1] == ".":
                    continue
            if name in colset:
                seen.setdefault(name, None)
    return list(seen)


def unknown_names(texts: Iterable[str], columns: Iterable[str]) -> list[str]:
    """Identifiers in formula fragments that are neither columns nor known functions."""
    colset = set(columns)
    out: dict[str, None] = {}
    for text in texts:
        # skip string literals
        stripped = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)
        for m in _TOKEN.finditer(stripped):
            name = m.group(1) or m.group(2)
            if m.group(1) is not None:
                if name not in colset:
                    out.setdefault(name, None)
                continue
            rest = stripped[m.end() :].lstrip()
            if rest.startswith("(") or rest.startswith("="):
                continue
            if m.start() > 0 and stripped[m.start() - 1] == ".":
                continue
            head = name.split(".")[0]
            if name in colset or head in _KNOWN_NAMES or keyword.iskeyword(name):
                continue
            out.setdefault(name, None)
    return list(out)


def missing_column_error(
    name: str, columns: Iterable[str], what: str = "column"
) -> ColumnNotFoundError:
    """A :class:`ColumnNotFoundError` naming ``name`` and the closest column names."""
    cols = list(columns)
    close = difflib.get_close_matches(name, cols, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in cols[:20]) + (", ..." if len(cols) > 20 else "")
    return ColumnNotFoundError(f"{what} {name!r} is not in the data{hint} (columns: {shown})")


@dataclass
class ModelFrame:
    """The rows and columns a model uses, after dropping rows with missing values.

    Attributes
    ----------
    frame : pandas.DataFrame
        Used columns only, rows with missing values removed, index reset.
    rows : numpy.ndarray
        Positions (0-based) in the original data of the rows kept.
    n_dropped : int
        Number of rows dropped for missing values.
    n_original : int
        Number of rows in the data as given.
    """

    frame: pd.DataFrame
    rows: np.ndarray
    n_dropped: int
    n_original: int


def _missing(col: object) -> np.ndarray | None:
    """Boolean mask of missing values of a column, or None when it cannot have any."""
    if isinstance(col, pd.Series):
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return np.asarray(col.array.codes) < 0
        if dtype.kind in "iub":
            return None
        if dtype.kind in "fc":
            return np.isnan(col.to_numpy())
        return col.isna().to_numpy()
    arr = np.asarray(col)
    return np.isnan(arr) if arr.dtype.kind in "fc" else pd.isna(arr)


def _values(col: object) -> object:
    """The values of a column without its index (numpy for numbers, pandas arrays else)."""
    if isinstance(col, pd.Series):
        return col.to_numpy() if col.dtype.kind in "fiub" else col.array
    return col


def _take(col: object, rows: np.ndarray) -> object:
    if isinstance(col, pd.Series):
        return col.iloc[rows].reset_index(drop=True)
    return np.asarray(col)[rows]


def _vector_column(value: object, name: str, n: int, data: pd.DataFrame) -> pd.Series:
    """A weights/offset argument given as a column name or as an array of length n."""
    if isinstance(value, str):
        if value not in data.columns:
            raise missing_column_error(value, data.columns, what=f"{name} column")
        return data[value]
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape[0] != n:
        raise DataError(f"{name} has length {arr.shape[0]} but the data have {n} rows")
    return pd.Series(arr, index=data.index)


def model_frame(
    data: object,
    texts: Iterable[str],
    extra: Mapping[str, object] | None = None,
    warn: bool = True,
) -> ModelFrame:
    """Select the columns named in ``texts`` (formula fragments), add ``extra`` vectors
    (weights, offset: a column name or an array), and drop rows with missing values.

    Raises
    ------
    ColumnNotFoundError
        If a name in the formula is neither a column nor a known function.
    DataError
        If no rows remain.
    """
    df = to_pandas(data)
    texts = list(texts)
    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)  # a renamed copy: the caller's frame is left alone
    unknown = unknown_names(texts, df.columns)
    if unknown:
        raise missing_column_error(unknown[0], df.columns, what="variable")
    used = column_names_in(texts, df.columns)
    n = len(df)
    if n == 0:
        raise DataError("the data have no rows")
    cols: dict[str, object] = {c: df[c] for c in used}
    for key, value in (extra or {}).items():
        if value is not None:
            cols[f"({key})"] = _vector_column(value, key, n, df)
    na = np.zeros(n, dtype=bool)
    bad_cols = []
    for name, col in cols.items():
        miss = _missing(col)
        if miss is not None and miss.any():
            na |= miss
            bad_cols.append(name)
    n_dropped = int(na.sum())
    if n_dropped:
        if n_dropped == n:
            raise DataError(
                f"no rows left after dropping rows with missing values "
                f"(missing in: {', '.join(bad_cols)})"
            )
        if warn:
            warnings.warn(
                f"{n_dropped} of {n} rows dropped because of missing values "
                f"(in: {', '.join(bad_cols)})",
                MissingValuesWarning,
                stacklevel=3,
            )
        keep = ~na
        rows = np.flatnonzero(keep)
        cols = {k: _take(v, rows) for k, v in cols.items()}
    else:
        rows = np.arange(n)
    sub = pd.DataFrame({k: _values(v) for k, v in cols.items()}, index=pd.RangeIndex(len(rows)))
    return ModelFrame(frame=sub, rows=rows, n_dropped=n_dropped, n_original=n)
