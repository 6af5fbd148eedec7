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
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import narwhals as nw
from ..errors import ColumnNotFoundError, DataError, MissingValuesWarning

__all__ = [
    "ModelFrame",
    "clean_column",
    "column_names_in",
    "column_values",
    "frame_column",
    "missing_mask",
    "model_frame",
    "to_pandas",
]

# Names that may appear in a formula without being columns: functions and modules that
# formulaic evaluates, and formula keywords.
_KNOWN_NAMES = {
    "np", "numpy", "I", "C", "Q", "log", "log2", "log10", "log1p", "exp", "sqrt", "abs",
    "center", "scale", "poly", "bs", "offset", "Treatment", "Sum", "Poly", "Helmert", "Diff",
    "contr", "lag", "cbind", "True", "False", "None", "pi",
}  # fmt: skip

# back-quoted names, numbers (skipped: the e3 of 1e3 is not a name), identifiers (any alphabet)
_TOKEN = re.compile(r"`(?P<q>[^`]+)`|(?P<num>\d[\w.]*)|(?P<name>[^\W\d][\w.]*)")
_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")


def _names(text: str) -> Iterable[tuple[str, bool, int, int]]:
    """(name, back-quoted, start, end) of each name in a formula fragment, string literals
    and numbers skipped."""
    stripped = _STRING.sub(lambda m: "'" + " " * (len(m.group(0)) - 2) + "'", text)
    for m in _TOKEN.finditer(stripped):
        if m.group("num") is not None:
            continue
        quoted = m.group("q") is not None
        name = m.group("q") if quoted else m.group("name")
        yield name, quoted, m.start(), m.end()


def to_pandas(data: object) -> pd.DataFrame:
    """Convert ``data`` to a pandas DataFrame without copying more than needed."""
    if isinstance(data, pd.DataFrame):
        return _str_columns(data)
    if isinstance(data, Mapping):
        try:
            return _str_columns(
                pd.DataFrame(
                    {
                        k: v
                        if isinstance(v, pd.Series | pd.api.extensions.ExtensionArray)
                        else np.asarray(v)
                        for k, v in data.items()
                    }
                )
            )
        except (ValueError, TypeError) as exc:
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
    return _str_columns(pd.DataFrame(cols))


def _as_list(columns: Iterable[str]) -> list:
    """Column names as a list (an Arrow-backed pandas index iterates slowly, element by
    element; its tolist is one conversion)."""
    if isinstance(columns, pd.Index):
        return list(index_values(columns))
    return list(columns)


_INDEX_CACHE: list[tuple[pd.Index, tuple]] = []


def index_values(index: pd.Index) -> tuple:
    """The values of a pandas Index as a tuple of Python objects. An Index is immutable, so
    the last few conversions are kept by identity: refits of the same data frame (the
    bootstrap, a user's loop) read its column names and categories once (~3 µs each with
    pandas 3's Arrow-backed strings)."""
    for idx, values in _INDEX_CACHE:
        if idx is index:
            return values
    values = tuple(index.to_numpy(dtype=object).tolist())  # numpy's: Arrow's tolist is slower
    _INDEX_CACHE.insert(0, (index, values))
    del _INDEX_CACHE[8:]
    return values


_STRINGS_CACHE: list[tuple[pd.Index, tuple[str, ...]]] = []


def index_strings(index: pd.Index) -> tuple[str, ...]:
    """``str`` of each value of a pandas Index (a factor's level names), kept by identity as
    :func:`index_values` keeps its values: a fit reads its factors' levels several times."""
    for idx, values in _STRINGS_CACHE:
        if idx is index:
            return values
    values = tuple(str(v) for v in index_values(index))
    _STRINGS_CACHE.insert(0, (index, values))
    del _STRINGS_CACHE[8:]
    return values


def _str_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with string column names (a renamed copy when some are not strings), as
    formulas name columns."""
    if isinstance(df.columns.dtype, pd.StringDtype) or all(
        isinstance(c, str) for c in _as_list(df.columns)
    ):
        return df
    return df.rename(columns=str)


def column_names_in(texts: Iterable[str], columns: Iterable[str]) -> list[str]:
    """Identifiers in formula fragments that name columns, in order of first appearance.

    Names used as a function (followed by ``(``) or an attribute (``np.log``) are skipped;
    back-quoted names (`` `my col` ``) are column names.
    """
    return scan_names(texts, columns)[0]


def unknown_names(texts: Iterable[str], columns: Iterable[str]) -> list[str]:
    """Identifiers in formula fragments that are neither columns nor known functions."""
    return scan_names(texts, columns)[1]


def scan_names(texts: Iterable[str], columns: Iterable[str]) -> tuple[list[str], list[str]]:
    """(:func:`column_names_in`, :func:`unknown_names`) of the same fragments, in one pass
    over their names (the last few answers kept: refits scan the same texts and columns)."""
    if isinstance(columns, pd.Index):
        columns = index_values(columns)
    elif not isinstance(columns, tuple):
        columns = tuple(columns)
    used, unknown = _scan_names(tuple(texts), columns)
    return list(used), list(unknown)


@lru_cache(maxsize=32)
def _scan_names(texts: tuple[str, ...], columns: tuple) -> tuple[tuple, tuple]:
    colset = set(columns)
    seen: dict[str, None] = {}
    out: dict[str, None] = {}
    for text in texts:
        for name, quoted, start, end in _names(text):
            if quoted:
                if name in colset:
                    seen.setdefault(name, None)
                else:
                    out.setdefault(name, None)
                continue
            after_dot = start > 0 and text[start - 1] == "."  # np.log: an attribute
            if name in colset and not after_dot:  # a column, even where called: lag(x)
                seen.setdefault(name, None)
                continue
            rest = text[end:].lstrip()
            if rest.startswith("(") or (rest.startswith("=") and not rest.startswith("==")):
                continue  # a function or a keyword argument
            if after_dot:
                continue
            head = name.split(".")[0]
            if head in _KNOWN_NAMES or keyword.iskeyword(name):
                continue
            out.setdefault(name, None)
    return tuple(seen), tuple(out)


def missing_column_error(
    name: str, columns: Iterable[str], what: str = "column"
) -> ColumnNotFoundError:
    """A :class:`ColumnNotFoundError` naming ``name`` and the closest column names."""
    cols = list(columns)
    close = difflib.get_close_matches(name, cols, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(repr(c) for c in cols[:20]) + (", ..." if len(cols) > 20 else "")
    return ColumnNotFoundError(f"{what} {name!r} is not in the data{hint} (columns: {shown})")


class ModelFrame:
    """The rows and columns a model uses, after dropping rows with missing values.

    Attributes
    ----------
    values : dict of column name -> array
        Used columns only, rows with missing values removed, each in the types the design
        reads (:func:`clean_column`: numpy numbers and booleans, categoricals, datetimes).
    frame : pandas.DataFrame
        The same columns as a data frame (index reset), made when first asked for: the
        design of a model of plain numeric columns and categoricals never needs it.
    rows : numpy.ndarray
        Positions (0-based) in the original data of the rows kept.
    n_dropped : int
        Number of rows dropped for missing values.
    n_original : int
        Number of rows in the data as given.
    cleaned : bool
        The values are :func:`clean_column`'s (made by :func:`model_frame`): a categorical
        among them uses every one of its categories.
    """

    def __init__(
        self,
        frame: pd.DataFrame | None,
        rows: np.ndarray,
        n_dropped: int,
        n_original: int,
        values: dict[str, object] | None = None,
        *,
        cleaned: bool = False,
    ):
        if frame is None and values is None:
            raise ValueError("a model frame needs its frame or its column values")
        self._frame = frame
        self.values: dict[str, object] = (
            values if values is not None else {str(c): frame[c] for c in frame.columns}  # type: ignore[index, union-attr]
        )
        self.rows = rows
        self.n_dropped = n_dropped
        self.n_original = n_original
        self.cleaned = cleaned

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = pd.DataFrame(self.values, index=pd.RangeIndex(len(self.rows)))
        return self._frame

    @property
    def n(self) -> int:
        """Number of rows kept."""
        return len(self.rows)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __getitem__(self, name: str) -> object:
        """The cleaned values of a column (an array or a categorical, not a Series)."""
        return self.values[name]


Column = Any
"""A column's values: a numpy array or a pandas extension array (categorical, nullable,
Arrow, ...); a pandas Series is accepted wherever a Column is and read as its values."""


def column_values(col: Column) -> Column:
    """The values of a Series (numpy array or extension array, not copied); other columns
    as they are."""
    if isinstance(col, pd.Series | pd.Index):
        return (
            col.array if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) else col.to_numpy()
        )
    return col


def frame_column(df: pd.DataFrame, name: str) -> Column:
    """The values of the column ``name`` of ``df`` (unique), as :func:`column_values` of
    ``df[name]``. pandas' own column accessor (``_get_column_array``, ~1 µs) is used where
    it exists: ``df[name]`` builds a Series (~15 µs with pandas 3's Arrow-backed column
    names), which a fit of a small model pays for every column it reads."""
    getter = getattr(df, "_get_column_array", None)
    if getter is not None:
        try:
            positions = _column_positions(df.columns)
            loc = positions[name] if name in positions else df.columns.get_loc(name)
            if isinstance(loc, int | np.integer):
                values = getter(int(loc))
                if isinstance(values.dtype, np.dtype) and not isinstance(values, np.ndarray):
                    values = values.to_numpy()  # datetimes: numpy's, as a Series gives them
                return values
        except (KeyError, TypeError, ValueError, IndexError):
            pass
    return column_values(df[name])


def frame_columns(df: pd.DataFrame, names: Iterable[str]) -> dict[str, Column]:
    """:func:`frame_column` of each name (the column positions and pandas' accessor looked
    up once for all of them)."""
    getter = getattr(df, "_get_column_array", None)
    positions = _column_positions(df.columns) if getter is not None else {}
    out: dict[str, Column] = {}
    for name in names:
        loc = positions.get(name)
        if loc is not None:
            try:
                values = getter(loc)  # type: ignore[misc]
            except (KeyError, TypeError, ValueError, IndexError):
                pass
            else:
                if isinstance(values.dtype, np.dtype) and not isinstance(values, np.ndarray):
                    values = values.to_numpy()  # datetimes: numpy's, as a Series gives them
                out[name] = values
                continue
        out[name] = frame_column(df, name)
    return out


_POSITIONS_CACHE: list[tuple[pd.Index, dict[object, int]]] = []


def _column_positions(columns: pd.Index) -> dict[object, int]:
    """Position of each name of a unique column Index (empty for one with repeated names),
    kept by identity as :func:`index_values` (``get_loc`` costs ~3 µs a column)."""
    for idx, positions in _POSITIONS_CACHE:
        if idx is columns:
            return positions
    positions = {v: i for i, v in enumerate(index_values(columns))} if columns.is_unique else {}
    _POSITIONS_CACHE.insert(0, (columns, positions))
    del _POSITIONS_CACHE[8:]
    return positions


def missing_mask(col: Column) -> np.ndarray | None:
    """Boolean mask of the missing values of a column (None, NaN, NaT, pandas' NA, Arrow's
    null), or None when its type cannot hold any."""
    if type(col) is np.ndarray and col.dtype.kind in "fiub":  # numpy numbers (most columns)
        return np.isnan(col) if col.dtype.kind == "f" else None
    values = column_values(col)
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return np.asarray(values.codes) < 0
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iub":
            return None
        if dtype.kind in "fc":
            return np.isnan(values)
        return np.asarray(pd.isna(values), dtype=bool)
    miss = np.array(values.isna(), dtype=bool)  # a copy: pandas' may be read-only
    if getattr(dtype, "kind", "O") == "f":  # a NaN (0/0) in a nullable float column
        miss |= np.isnan(values.to_numpy(dtype=float, na_value=np.nan))
    return miss


def _categorical_missing(cat: pd.Categorical) -> tuple[np.ndarray | None, bool]:
    """(:func:`missing_mask`, whether every category is used) of a categorical, from one
    count of its codes: None for the mask when no value is missing."""
    codes = cat.codes
    k = len(cat.dtype.categories)
    if codes.itemsize == 1:
        # int8 codes (at most 127 categories) viewed unsigned: a missing value's −1 is 255,
        # counted past the categories' k counts
        counts = np.bincount(codes.view(np.uint8), minlength=k)
        if counts.size > k:
            return np.asarray(codes) < 0, False
        return None, codes.size > 0 and bool(np.logical_and.reduce(counts))
    counts = np.bincount(np.add(codes, 1, dtype=np.intp), minlength=k + 1)
    if counts[0]:
        return np.asarray(codes) < 0, False
    return None, codes.size > 0 and bool(np.logical_and.reduce(counts[1:]))


def _is_dictionary(dtype: object) -> bool:
    """Whether ``dtype`` is Arrow's dictionary type (Arrow's categorical)."""
    return isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype).startswith("dictionary")


def _dictionary_categorical(values: Column) -> pd.Categorical:
    """An Arrow dictionary column (no nulls) as a categorical with the dictionary's order of
    levels (as polars' and R's factors keep theirs), unused entries dropped."""
    chunked = values.__arrow_array__()
    arr = chunked.unify_dictionaries().combine_chunks()
    codes = np.asarray(arr.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    cats = pd.Index(arr.dictionary.to_pylist())
    return pd.Categorical.from_codes(codes, categories=cats).remove_unused_categories()


def _clean_object(name: str, values: np.ndarray) -> object:
    """An object column (no missing values left) as numbers, booleans, datetimes or strings,
    by what its values are; values of mixed types are read as strings (categories)."""
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return values.astype(float)
    if kind == "boolean":
        return values.astype(bool)
    if kind == "string":
        return values
    if kind == "complex":
        raise DataError(f"column {name!r} holds complex numbers, which a model cannot use")
    if kind in ("datetime", "datetime64", "date"):
        try:
            return pd.to_datetime(pd.Series(values)).array
        except (TypeError, ValueError):
            pass
    if kind == "bytes":
        return np.array([v.decode("utf-8", "replace") for v in values], dtype=object)
    return np.array([str(v) for v in values], dtype=object)


def clean_column(name: str, col: Column) -> object:
    """A column without missing values in the types the rest of the pipeline reads: numpy
    numbers and booleans, datetimes, object arrays of strings (categories), and categoricals
    without unused categories (R's ``model.frame`` drops unused levels, so the reference level
    of a factor is its first level present in the data).

    pandas' nullable types (``Int64``, ``boolean``, ``string``, ...) and Arrow's become their
    numpy equivalents; strings of any storage become categories.
    """
    if type(col) is np.ndarray and col.dtype.kind in "fiub":  # numpy numbers: as they are
        return col
    values = column_values(col)
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = values
        codes = np.asarray(cat.codes)
        if codes.size and np.bincount(codes, minlength=len(cat.categories)).all():
            return cat  # every level used (the common case): nothing to drop
        return cat.remove_unused_categories()
    if _is_dictionary(dtype):
        return _dictionary_categorical(values)
    if isinstance(dtype, np.dtype):
        kind = dtype.kind
        if kind == "c":
            raise DataError(f"column {name!r} holds complex numbers, which a model cannot use")
        if kind == "O":
            return _clean_object(name, values)
        if kind in "US":
            return values.astype(str).astype(object)
        if kind == "V":
            raise DataError(f"column {name!r} holds raw bytes ({dtype}), which a model cannot use")
        return values
    kind = getattr(dtype, "kind", "O")
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if kind in "iufb" and isinstance(numpy_dtype, np.dtype) and numpy_dtype.kind in "iufb":
        return values.to_numpy(dtype=numpy_dtype)
    if kind == "M" or kind == "m":
        return values if not isinstance(dtype, pd.ArrowDtype) else values.to_numpy()
    if isinstance(dtype, pd.StringDtype) or kind == "U":
        return np.array([str(v) for v in values.to_numpy(dtype=object)], dtype=object)
    return _clean_object(name, values.to_numpy(dtype=object))


def _vector_column(value: object, name: str, n: int, data: pd.DataFrame) -> Column:
    """A weights/offset argument given as a column name or as an array of length n."""
    if isinstance(value, str):
        if value not in data.columns:
            raise missing_column_error(value, data.columns, what=f"{name} column")
        if not data.columns.is_unique and int((data.columns == value).sum()) > 1:
            raise DataError(f"the data have more than one column named {value!r}: rename them")
        return frame_column(data, value)
    if isinstance(value, Mapping | set) or np.ndim(value) == 0:
        raise DataError(
            f"{name} must be a column name or an array with one value per row ({n}), "
            f"got {type(value).__name__}"
        )
    if isinstance(value, pd.Series):
        s = value.reset_index(drop=True)
    elif isinstance(value, pd.api.extensions.ExtensionArray):
        s = pd.Series(value)
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} must be an array of numbers: {exc}") from None
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1:
            raise DataError(f"{name} must be one-dimensional, got an array of shape {arr.shape}")
        s = pd.Series(arr)
    if len(s) != n:
        raise DataError(f"{name} has length {len(s)} but the data have {n} rows")
    return column_values(s)


def model_frame(
    data: object,
    texts: Iterable[str],
    extra: Mapping[str, object] | None = None,
    warn: bool = True,
) -> ModelFrame:
    """Select the columns named in ``texts`` (formula fragments), add ``extra`` vectors
    (weights, offset: a column name or an array), drop rows with a missing value in any of
    them, and bring every column to the types the design reads (:func:`clean_column`).

    A value is missing when it is None, NaN, NaT, pandas' ``NA`` or an Arrow null, in any
    column type (numpy, pandas' nullable types, Arrow, categorical, object).

    Raises
    ------
    ColumnNotFoundError
        If a name in the formula is neither a column nor a known function.
    DataError
        If no rows remain, a column name is repeated, or weights/offset are not numbers.
    """
    df = to_pandas(data)
    names = index_values(df.columns)
    used, unknown = scan_names(texts, names)
    if unknown:
        raise missing_column_error(unknown[0], names, what="variable")
    if not df.columns.is_unique:
        dup = set(df.columns[df.columns.duplicated()])
        for c in used:
            if c in dup:
                raise DataError(f"the data have more than one column named {c!r}: rename them")
    n = len(df)
    if n == 0:
        raise DataError("the data have no rows")
    cols: dict[str, Column] = frame_columns(df, used)
    for key, value in (extra or {}).items():
        if value is not None:
            cols[f"({key})"] = _vector_column(value, key, n, df)
    na: np.ndarray | None = None
    bad_cols = []
    clean: dict[str, object] = {}  # categoricals already as clean_column makes them
    for name, col in cols.items():
        if type(col) is pd.Categorical:
            miss, all_used = _categorical_missing(col)
            if all_used:
                clean[name] = col
        else:
            miss = missing_mask(col)
        if miss is not None and np.logical_or.reduce(miss):
            na = miss.copy() if na is None else na | miss
            bad_cols.append(name)
    n_dropped = int(na.sum()) if na is not None else 0
    if na is not None:
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
        rows = np.flatnonzero(~na)
        cols = {k: v[rows] for k, v in cols.items()}
        clean = {}
    else:
        rows = np.arange(n)
    values = {k: clean[k] if k in clean else clean_column(k, v) for k, v in cols.items()}
    for key in extra or {}:
        v = values.get(f"({key})")
        if v is not None and (not isinstance(v, np.ndarray) or v.dtype.kind not in "fiub"):
            what = f"column {extra[key]!r}" if isinstance(extra[key], str) else "the array given"
            raise DataError(
                f"{key} must be numbers; {what} holds values of type {cols[f'({key})'].dtype}"
            )
    return ModelFrame(
        None, rows=rows, n_dropped=n_dropped, n_original=n, values=values, cleaned=True
    )
