"""Step 2 of the pipeline: terms + data -> design.

The design holds the response y, the dense fixed-effects matrix X (via formulaic, with R's
treatment contrasts and R's coefficient names) and, for each random-effects term, the level
index of every row and the n x k matrix of the term's columns. Z itself is never formed:
row r of term i's block of Z has the k values ``Zt[r]`` in the columns of level ``refs[r]``.

Terms are ordered as lme4 orders them: by decreasing number of levels (lme4 reorders only when
some later term has more levels, with ``rev(order(nl))``; we replicate that exactly so that θ
comes out in lme4's order). Largest first is also what makes the first diagonal block of the
penalized system block-diagonal (ARCHITECTURE.md).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy.linalg import lapack

from .._lazy import formulaic
from .._threads import one_thread
from ..errors import DataError, DataWarning, FormulaError, ModelError, RankDeficiencyWarning
from .data import (
    ModelFrame,
    column_names_in,
    index_strings,
    missing_column_error,
    model_frame,
    to_pandas,
)
from .formula import (
    ParsedFormula,
    RandomTerm,
    expand_dot,
    parse_formula,
    quote_name,
    split_top_level,
    unquote,
)

__all__ = [
    "ColumnMaker",
    "Design",
    "FixedEffects",
    "RandomEffectsTerm",
    "build_design",
    "r_name",
]

FORMULA_CONTEXT: dict[str, Any] = {
    "np": np,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}

_BRACKET = re.compile(r"\[(?:T\.)?([^\]]*)\]")


def r_name(name: str) -> str:
    """Translate a formulaic column name into the name lme4 prints.

    ``Intercept`` -> ``(Intercept)``, ``recipe[T.B]`` -> ``recipeB``,
    ``recipe[T.B]:temperature[T.185]`` -> ``recipeB:temperature185``,
    ``I(x ** 2)`` -> ``I(x^2)``.
    """
    if name == "Intercept":
        return "(Intercept)"
    name = _BRACKET.sub(r"\1", name)
    return name.replace(" ** ", "^").replace("**", "^")


def _ordered_as_poly(rhs: str, frame: pd.DataFrame) -> tuple[str, list[str]]:
    """R codes an ordered factor by polynomial contrasts (``contr.poly``: o.L, o.Q, ...), an
    unordered one by treatment contrasts: the ordered categoricals of ``rhs`` (not already in
    ``C(...)``) are written ``C(o, Poly)``."""
    ordered = [
        c
        for c in column_names_in([rhs], frame.columns)
        if isinstance(frame[c].dtype, pd.CategoricalDtype) and frame[c].dtype.ordered
    ]
    for name in ordered:
        q = quote_name(name)
        token = re.escape(q) if q != name else rf"(?<![\w.`]){re.escape(name)}(?![\w.`(])"
        rhs = re.sub(rf"(?<!C\()(?<!C\( ){token}", f"C({q}, Poly)", rhs)
    return rhs, ordered


Frame = pd.DataFrame | ModelFrame
"""Where model columns are read from: a data frame, or a model frame's cleaned columns."""


def has_column(frame: Frame, name: str) -> bool:
    """Whether ``frame`` has a column ``name``."""
    return name in frame if isinstance(frame, ModelFrame) else name in frame.columns


def pandas_frame(frame: Frame) -> pd.DataFrame:
    """The frame as pandas (formulaic's input)."""
    return frame.frame if isinstance(frame, ModelFrame) else frame


def numeric_column(frame: Frame, name: str) -> np.ndarray | None:
    """A numeric (or boolean) column as floats; None when there is no such column."""
    if not has_column(frame, name):
        return None
    col = frame[name]
    if getattr(col.dtype, "kind", "O") not in "fiub":
        return None
    try:
        return _floats(col)
    except (TypeError, ValueError):
        return None


def _floats(col: object) -> np.ndarray:
    """A numeric column (Series or array) as a float array."""
    if isinstance(col, pd.Series):
        return col.to_numpy(dtype=float)
    return np.asarray(col, dtype=float)


def _all_str(values: np.ndarray) -> bool:
    return all(isinstance(v, str) for v in values.tolist())


def _level_codes(col: object, levels: list[str], name: str) -> np.ndarray:
    """Positions in ``levels`` (the fit's level names) of a factor column's values; a value
    the fit did not see (or a missing one) is an error naming it."""
    if isinstance(col, pd.Series):
        col = col.array
    if isinstance(col, pd.Categorical):
        cats = index_strings(col.categories)
        raw = np.asarray(col.codes, dtype=np.intp)
        if len(cats) == len(levels) and all(a == b for a, b in zip(cats, levels, strict=True)):
            codes = raw
        else:
            lookup = {lv: i for i, lv in enumerate(levels)}
            remap = np.array([lookup.get(cv, -1) for cv in cats] + [-1], dtype=np.intp)
            codes = remap[raw]  # raw −1 (missing) reads the appended −1
        unseen = codes < 0
        if not np.logical_or.reduce(unseen):
            return codes
        r = int(raw[np.flatnonzero(unseen)[0]])
        bad = cats[r] if r >= 0 else "NA"
    else:
        shown = np.asarray(col, dtype=object).astype(str)
        codes = pd.Categorical(shown, categories=levels).codes.astype(np.intp)
        if np.any(codes < 0):
            bad = str(shown[np.flatnonzero(codes < 0)[0]])
    if np.any(codes < 0):
        raise DataError(
            f"column {name!r} has level {bad!r}, which the fitted data did not have "
            f"(levels: {', '.join(map(repr, levels))})"
        )
    return codes


@functools.lru_cache(maxsize=256)
def _rhs_terms(rhs: str) -> tuple[tuple[str, str, str], ...]:
    """(sign, term, term unquoted) of each top-level term of a formula part (once per text)."""
    return tuple((sign, p.strip(), unquote(p.strip())) for sign, p, _ in split_top_level(rhs))


def _is_plain_numeric(frame: Frame, name: str) -> bool:
    return has_column(frame, name) and getattr(frame[name].dtype, "kind", "O") in "fiu"


@dataclass
class ColumnMaker:
    """Makes the model columns of one formula part for any data with the same columns.

    Built directly for the common parts: plain numeric columns (``plain``, with or without
    intercept), or, with an intercept, numeric columns and unordered factors as main effects
    coded by R's treatment contrasts (``pieces``: each factor's columns are its levels after
    the first, named ``f`` + level, as R and formulaic name them). Anything else goes through
    a formulaic ``ModelSpec``. Both remember the factor levels seen when fitting, so that new
    data are coded the same way (for ``predict``).
    """

    names: list[str]
    intercept: bool = False
    plain: list[str] | None = None
    spec: Any = None
    keep: np.ndarray | None = None  # column positions kept after dropping rank-deficient ones
    pieces: list[tuple[str, list[str] | None]] | None = None
    """Main effects in order: (column, None) for a numeric column, (column, levels) for a
    factor (all its levels; the first is the reference)."""

    def variables(self) -> set[str]:
        """The data columns these model columns are made from."""
        if self.plain is not None:
            return set(self.plain)
        if self.pieces is not None:
            return {c for c, _ in self.pieces}
        return {str(v) for v in getattr(self.spec, "required_variables", ())}

    def term_variables(self, columns: list[str]) -> list[set[str]]:
        """The data columns in each term (of ``columns``, the data's column names)."""
        if self.plain is not None:
            return [{n} for n in self.plain]
        if self.pieces is not None:
            return [{c} for c, _ in self.pieces]
        out = []
        for t in getattr(self.spec, "structure", []):
            factors = [str(f) for f in getattr(t.term, "factors", [])]
            out.append(set(column_names_in(factors, columns)))
        return out

    @classmethod
    def build(cls, rhs: str, frame: Frame, what: str) -> tuple[ColumnMaker, np.ndarray]:
        terms = _rhs_terms(rhs)
        intercept = True
        plain: list[str] = []
        simple = True
        for sign, p, name in terms:
            if p in ("0", "-1") or (sign == "-" and p == "1"):
                intercept = False
            elif p == "1" and sign == "+":
                intercept = True
            elif sign == "+" and _is_plain_numeric(frame, name) and name not in plain:
                plain.append(name)
            else:
                simple = False
                break
        if simple:
            names = (["(Intercept)"] if intercept else []) + plain
            maker = cls(names=names, intercept=intercept, plain=plain)
            return maker, maker.make(frame)
        pieces = [(sign, p) for sign, p, _ in terms]
        lean = cls._main_effects(pieces, frame)
        if lean is not None:
            return lean, lean.make(frame)
        frame = pandas_frame(frame)
        for name in column_names_in([rhs], frame.columns):
            if frame[name].dtype.kind in "Mm":
                raise DataError(
                    f"column {name!r} holds dates or times ({frame[name].dtype}), which cannot "
                    f"enter the {what} columns: convert it to numbers (e.g. days since the first "
                    "date) or to strings (categories)"
                )
            if name in ("0", "1", "-1"):
                raise FormulaError(
                    f"a column named {name!r} would be read as the intercept in {rhs!r}: "
                    "rename the column"
                )
        rhs_poly, ordered = _ordered_as_poly(rhs, frame)
        try:
            mm = formulaic.model_matrix(
                rhs_poly, frame, context=FORMULA_CONTEXT, na_action="ignore"
            )
        except Exception as exc:  # formulaic raises many types; report the term
            raise FormulaError(f"cannot build the {what} columns from {rhs!r}: {exc}") from None
        names = [r_name(str(c)) for c in mm.columns]
        for name in ordered:  # R's names of polynomial contrasts: o.L, o.Q, o.C, o^4
            q = quote_name(name)
            names = [nm.replace(f"C({q}, Poly)", name) for nm in names]
        try:
            values = np.asarray(mm, dtype=float)
        except (TypeError, ValueError) as exc:
            raise FormulaError(
                f"the {what} columns from {rhs!r} are not all numbers: {exc}"
            ) from None
        return cls(names=names, spec=mm.model_spec), values

    @classmethod
    def _main_effects(cls, pieces: list[tuple[str, str]], frame: Frame) -> ColumnMaker | None:
        """The treatment-contrast maker for ``1 + a + f + ...`` (numeric columns and unordered
        factors, each once, an intercept), or None when the part is anything else."""
        out: list[tuple[str, list[str] | None]] = []
        names = ["(Intercept)"]
        seen: set[str] = set()
        for sign, p in pieces:
            if p == "1" and sign == "+":
                continue
            c = unquote(p)
            if sign != "+" or c in seen or not has_column(frame, c) or c in ("0", "1", "-1"):
                return None
            col = frame[c]
            dtype = col.dtype
            if isinstance(dtype, pd.CategoricalDtype):
                if dtype.ordered:
                    return None  # polynomial contrasts: formulaic
                levels = list(index_strings(dtype.categories))
            elif getattr(dtype, "kind", "O") in "fiu":
                levels = None
            elif isinstance(col, np.ndarray) and dtype.kind == "O" and _all_str(col):
                levels = np.unique(col).tolist()  # strings: sorted, as formulaic orders them
            else:
                return None  # booleans, dates, nullable types in a raw frame: formulaic
            if levels is not None and len(levels) != len(set(levels)):
                return None  # levels that print alike
            seen.add(c)
            out.append((c, levels))
            names.extend([f"{c}{lv}" for lv in levels[1:]] if levels is not None else [c])
        return cls(names=names, intercept=True, pieces=out)

    def make(self, frame: Frame) -> np.ndarray:
        """The model columns for ``frame`` (n x len(names))."""
        n = frame.n if isinstance(frame, ModelFrame) else len(frame)
        if self.pieces is not None:
            return self._make_main_effects(frame, n)
        if self.plain is not None:
            out = np.empty((n, int(self.intercept) + len(self.plain)), dtype=float)
            j = 0
            if self.intercept:
                out[:, 0] = 1.0
                j = 1
            for name in self.plain:
                col = frame[name]
                if type(col) is np.ndarray and col.dtype.kind in "fiub":
                    out[:, j] = col  # numbers: the same cast as _floats, in the assignment
                    j += 1
                    continue
                try:
                    out[:, j] = _floats(col)
                except (TypeError, ValueError):
                    raise DataError(
                        f"column {name!r} of the new data is not numeric ({frame[name].dtype}) "
                        "but was numeric in the fit"
                    ) from None
                j += 1
            return out if self.keep is None else out[:, self.keep]
        try:
            mm = self.spec.get_model_matrix(
                pandas_frame(frame), context=FORMULA_CONTEXT, na_action="ignore"
            )
        except Exception as exc:
            raise DataError(f"cannot build model columns for new data: {exc}") from None
        try:
            values = np.asarray(mm, dtype=float)
        except Exception as exc:
            raise DataError(f"cannot build model columns for new data: {exc}") from None
        if values.ndim == 1:
            values = values[:, None]
        if self.keep is not None:
            values = values[:, self.keep]
        return values

    def _make_main_effects(self, frame: Frame, n: int) -> np.ndarray:
        """Intercept, numeric columns and treatment dummies (see :meth:`_main_effects`; an
        intercept and one factor: the whole matrix from :func:`_treatment_rows`)."""
        assert self.pieces is not None
        pieces = self.pieces
        if len(pieces) == 1 and pieces[0][1] is not None:
            c, levels = pieces[0]
            out = _treatment_rows(frame[c], levels, c, True)
            return out if self.keep is None else out[:, self.keep]
        ncol = 1 + sum(len(lv) - 1 if lv is not None else 1 for _, lv in pieces)
        out = np.empty((n, ncol))
        out[:, 0] = 1.0
        j = 1
        for c, levels in pieces:
            col = frame[c]
            if levels is None:
                try:
                    out[:, j] = _floats(col)
                except (TypeError, ValueError):
                    raise DataError(
                        f"column {c!r} of the new data is not numeric ({col.dtype}) "
                        "but was numeric in the fit"
                    ) from None
                j += 1
                continue
            # the dummies of levels 1.. (level 0, the reference, has none)
            out[:, j : j + len(levels) - 1] = _treatment_rows(col, levels, c, False)
            j += len(levels) - 1
        return out if self.keep is None else out[:, self.keep]


_UNSIGNED = {
    t.itemsize: t
    for t in map(np.dtype, (np.uint8, np.uint16, np.uint32))
    if t.itemsize < np.dtype(np.intp).itemsize
}
"""Unsigned integer types narrower than intp, by size (the views of categorical codes)."""

_TABLE_LEVELS = 64
"""The most levels a factor's dummies are taken from a treatment table for (a table holds
K x K values; more levels are compared with their codes)."""


@functools.lru_cache(maxsize=2 * _TABLE_LEVELS)
def _treatment_table(nlevels: int, intercept: bool) -> np.ndarray:
    """Row i: the treatment-contrast columns of level i (zeros for level 0, the reference; a
    one in column i - 1 for the others), after a column of ones with ``intercept``
    (read-only, made once)."""
    k = max(nlevels, 1)
    first = int(intercept)
    table = np.zeros((k, k - 1 + first))
    if intercept:
        table[:, 0] = 1.0
    for i in range(1, k):
        table[i, first + i - 1] = 1.0
    table.flags.writeable = False
    return table


def _treatment_rows(col: object, levels: list[str], name: str, intercept: bool) -> np.ndarray:
    """The treatment dummies of the factor column ``col`` (the fit's ``levels``): one row per
    value, the columns of levels 1.. (level 0, the reference, has none), after a column of
    ones with ``intercept``; floats (without intercept possibly booleans, for assignment).

    Up to :data:`_TABLE_LEVELS` levels the rows are taken from :func:`_treatment_table`; a
    categorical with the fit's levels as its categories is then read by its stored codes
    viewed unsigned: a missing value's code −1 lies beyond any table (255 for int8 codes,
    which hold at most 127 categories), so ``take`` refuses it and :func:`_level_codes`
    reports it as before. (Codes as wide as intp are not read so: they would wrap.)"""
    if isinstance(col, pd.Series):
        col = col.array
    k = len(levels)
    if k <= _TABLE_LEVELS:
        table = _treatment_table(k, intercept)
        if type(col) is pd.Categorical and index_strings(col.categories) == tuple(levels):
            codes = col.codes
            unsigned = _UNSIGNED.get(codes.itemsize)
            if unsigned is not None:
                try:
                    return table.take(codes.view(unsigned), axis=0)
                except IndexError:
                    pass
        return table.take(_level_codes(col, levels, name), axis=0)
    dummies = _level_codes(col, levels, name)[:, None] == _level_range(k)
    if not intercept:
        return dummies
    out = np.empty((dummies.shape[0], k))
    out[:, 0] = 1.0
    out[:, 1:] = dummies
    return out


@functools.cache
def _level_range(nlevels: int) -> np.ndarray:
    """``[1, 2, ..., nlevels - 1]`` (read-only, made once per number of levels): the codes of a
    factor's levels after the reference."""
    out = np.arange(1, max(nlevels, 1), dtype=np.intp)
    out.flags.writeable = False
    return out


@dataclass
class FixedEffects:
    """The fixed-effects model matrix X (n x p) with lme4's column names."""

    X: np.ndarray
    names: list[str]
    maker: ColumnMaker
    dropped: list[str] = field(default_factory=list)

    @property
    def p(self) -> int:
        return self.X.shape[1]


@dataclass
class RandomEffectsTerm:
    """One random-effects term: grouping factor, its levels and the term's columns.

    Attributes
    ----------
    group : str
        Grouping factor name as lme4 prints it (``"Subject"``, ``"cask:batch"``).
    vc_name : str
        Name in VarCorr: the group name, made unique (``"Subject.1"``) as lme4 does.
    columns : list of str
        Names of the term's columns (``["(Intercept)", "Days"]``).
    refs : ndarray of intp, shape (n,)
        Level index of every row.
    levels : list of str
        Level names in lme4's order.
    Zt : ndarray, shape (n, k)
        The term's columns; row r contributes to the random effects of level ``refs[r]``.
    """

    term: RandomTerm
    group: str
    vc_name: str
    columns: list[str]
    refs: np.ndarray
    levels: list[str]
    Zt: np.ndarray
    maker: ColumnMaker
    factors: tuple[str, ...]
    factor_levels: tuple[list[str], ...]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def k(self) -> int:
        return self.Zt.shape[1]

    @property
    def q(self) -> int:
        """Number of random effects of this term: levels x columns."""
        return self.nlevels * self.k

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2

    def theta_lower(self) -> np.ndarray:
        """Lower bounds of this term's θ: 0 on the diagonal of Λ, -inf elsewhere."""
        k = self.k
        rows, cols = tril_indices_colmajor(k)
        return np.where(rows == cols, 0.0, -np.inf)

    def theta_names(self) -> list[str]:
        """lme4's θ names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ..."""
        rows, cols = tril_indices_colmajor(self.k)
        out = []
        for r, c in zip(rows, cols, strict=True):
            if r == c:
                out.append(f"{self.group}.{self.columns[r]}")
            else:
                out.append(f"{self.group}.{self.columns[r]}.{self.columns[c]}")
        return out


@functools.cache
def tril_indices_colmajor(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle of a k x k matrix, column by column
    (lme4's order of θ within a term); read-only arrays, made once per k."""
    cols, rows = np.triu_indices(k)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def level_names(values: np.ndarray) -> list[str]:
    if (
        values.dtype.kind == "f"
        and np.all(np.isfinite(values))
        and np.all(values == np.round(values))
    ):
        values = values.astype(np.int64)
    return [str(v) for v in values.tolist()]


def factor_codes(
    series: pd.Series, name: str, all_used: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Integer codes and level names of a grouping variable, unused levels dropped.

    Categoricals keep their category order; other values are sorted (numbers numerically,
    strings lexically), as R's ``factor()`` does. ``all_used``: a categorical is known to use
    every category (a model frame's, :func:`mixedfx.frame.data.clean_column`), not counted.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        # the Categorical itself: .codes without building a Series
        cat = series.array if isinstance(series, pd.Series) else series
        codes = np.asarray(cat.codes)
        cats = cat.categories
        used = None if all_used else np.bincount(codes, minlength=len(cats)) > 0
        if used is not None and not used.all():
            remap = np.cumsum(used) - 1
            codes = remap[codes]
            cats = cats[used]
        return codes.astype(np.intp), list(index_strings(cats))
    values = series if isinstance(series, np.ndarray) else series.to_numpy()
    if values.dtype.kind == "O":
        try:
            uniq, codes = np.unique(values.astype(str), return_inverse=True)
        except TypeError:
            raise DataError(
                f"grouping variable {name!r} has values that cannot be compared"
            ) from None
        return codes.astype(np.intp), [str(u) for u in uniq]
    if values.dtype.kind in "fiub" or values.dtype.kind in "US":
        uniq, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.intp), level_names(uniq)
    uniq, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.intp), [str(u) for u in uniq]


def grouping_factor(
    frame: Frame, factors: tuple[str, ...]
) -> tuple[np.ndarray, list[str], tuple[list[str], ...]]:
    """Codes and level names of the interaction of ``factors`` (``a:b``), unused combinations
    dropped, levels ordered with the first factor varying slowest (R's ``a:b``)."""
    cleaned = isinstance(frame, ModelFrame) and frame.cleaned
    codes, levels = factor_codes(frame[factors[0]], factors[0], cleaned)
    per_factor = [levels]
    for f in factors[1:]:
        c2, l2 = factor_codes(frame[f], f, cleaned)
        per_factor.append(l2)
        combined = codes.astype(np.int64) * len(l2) + c2
        uniq, codes = np.unique(combined, return_inverse=True)
        levels = [f"{levels[u // len(l2)]}:{l2[u % len(l2)]}" for u in uniq.tolist()]
        codes = codes.astype(np.intp)
    return codes, levels, tuple(per_factor)


@dataclass
class Design:
    """Everything the model needs from the data, computed once.

    ``has_rows`` (a class attribute): the rows are in memory (False for a design whose rows
    stay on Dask, :class:`mixedfx.frame.dask_frame.DaskDesign`).

    Attributes
    ----------
    y : ndarray (n,)
        Response (offset not subtracted).
    fixed : FixedEffects
    terms : list of RandomEffectsTerm
        In lme4's order (decreasing number of levels).
    weights : ndarray (n,) or None
        Prior weights.
    offset : ndarray (n,) or None
    """

    has_rows: ClassVar[bool] = True

    formula: ParsedFormula
    y: np.ndarray
    fixed: FixedEffects
    terms: list[RandomEffectsTerm]
    weights: np.ndarray | None
    offset: np.ndarray | None
    frame: ModelFrame
    response_name: str
    offset_name: str | None = None
    """The column the offset came from, when it was given by name (``predict`` on new data
    evaluates it there)."""

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def X(self) -> np.ndarray:
        return self.fixed.X

    @property
    def q(self) -> int:
        return sum(t.q for t in self.terms)

    def theta_lower(self) -> np.ndarray:
        """Lower bounds of θ: 0 for the diagonal elements of each Λ block, −∞ elsewhere."""
        return self._theta_bounds()[0].copy()

    def theta_start(self) -> np.ndarray:
        """lme4's starting values: 1 on the diagonal of each Λ block, 0 elsewhere."""
        return self._theta_bounds()[1].copy()

    def _theta_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, start), worked out once per list of terms (every fit asks often; the
        list is recognized by identity and length: terms are replaced, never edited)."""
        cached = self._bounds_cache()
        return cached[2], cached[3]

    def bounded_theta(self) -> tuple[int, ...]:
        """Positions of the θ elements bounded below by 0 (the diagonals of the Λ blocks)."""
        return self._bounds_cache()[4]

    def _bounds_cache(self) -> tuple[Any, ...]:
        terms = self.terms
        cached = self.__dict__.get("_bounds")
        if cached is None or cached[0] is not terms or cached[1] != len(terms):
            cached = (terms, len(terms), *_theta_bounds_of(tuple(t.k for t in terms)))
            self.__dict__["_bounds"] = cached
        return cached

    def theta_names(self) -> list[str]:
        return [name for t in self.terms for name in t.theta_names()]


@functools.lru_cache(maxsize=64)
def _theta_bounds_of(ks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(lower, start, bounded) of θ for terms of ``ks`` columns: each term's
    RandomEffectsTerm.theta_lower, concatenated: 0 on the diagonal of its Λ block, −∞ below,
    column by column; start 1 on the diagonals, 0 below; the diagonals' positions. Made in
    Python once per list of sizes; the arrays are read-only (:class:`Design` hands out
    copies)."""
    diagonal = [r == c for k in ks for c in range(k) for r in range(c, k)]
    lower = np.array([0.0 if d else -math.inf for d in diagonal], dtype=float)
    start = np.array([1.0 if d else 0.0 for d in diagonal], dtype=float)
    lower.flags.writeable = False
    start.flags.writeable = False
    return lower, start, tuple(i for i, d in enumerate(diagonal) if d)


def response_values(frame: Frame, response: str) -> np.ndarray:
    """The response column (or expression, e.g. ``log(y)``) as floats."""
    if has_column(frame, unquote(response)):
        response = unquote(response)
        col = frame[response]
        kind = getattr(col.dtype, "kind", "O")
        if kind == "b":
            return _floats(col)
        if kind not in "fiu":
            if isinstance(col.dtype, pd.BooleanDtype):
                return _floats(col)
            raise DataError(
                f"response {response!r} is not numeric (its type is {col.dtype}); "
                "convert it to numbers first"
            )
        return _floats(col)
    _, values = ColumnMaker.build("0 + " + response, frame, "response")
    if values.shape[1] != 1:
        raise FormulaError(f"response {response!r} must be a single numeric column")
    return values[:, 0]


def _check_finite(values: np.ndarray, what: str, names: list[str] | None = None) -> None:
    if np.logical_and.reduce(np.isfinite(values), axis=None):  # (two C calls: the usual case)
        return
    bad = ~np.isfinite(values)
    if bad.any():
        if values.ndim == 2 and names is not None:
            j = int(np.flatnonzero(bad.any(axis=0))[0])
            what = f"{what} column {names[j]!r}"
        raise DataError(f"{what} has {int(bad.sum())} infinite or undefined values")


def drop_rank_deficient(X: np.ndarray, names: list[str], tol: float = 1e-7) -> np.ndarray:
    """Positions of the columns to keep so that X has full column rank.

    Like R's ``qr`` with its limited pivoting (what lme4 uses), a column is dropped when it is
    a linear combination of the columns before it (relative residual norm below ``tol``);
    earlier columns are kept. One Householder QR of X (n x p) gives R0 with X = Q R0; the
    QR of any subset of X's columns is then the QR of the same columns of R0 (p x p), so the
    repeated factorizations after each drop never touch the n rows again.
    """
    n, p = X.shape
    if p == 0:
        return np.arange(0)
    if p == 1 and n >= 1 and X.dtype == np.float64:
        # one column (an intercept-only model): R is ±||x||, kept unless x is zero; the QR
        # decides where ||x|| could overflow or x is not finite
        big = float(np.maximum.reduce(np.abs(X), axis=None))
        if big == 0.0:
            return np.arange(0)
        if big < 1e150:
            return np.arange(1)
    if n >= p and p <= _SMALL_P and X.dtype == np.float64 and _full_rank_small(X, tol):
        return np.arange(p)
    R0 = _qr_r(X)[:p]
    if n < p:  # more columns than rows: X = Q R0 still holds with R0 padded by zero rows
        R0 = np.vstack([R0, np.zeros((p - n, p))])
    norms = np.sqrt(np.einsum("ij,ij->j", R0, R0))
    if (np.abs(R0.diagonal()) > tol * norms).all():
        return np.arange(p)  # full rank (the common case): R0 is already the answer's QR
    keep = [j for j in range(p) if norms[j] > 0]
    while keep:
        R = sla.qr(R0[:, keep], mode="r", check_finite=False)[0]
        diag = np.abs(np.diag(R)[: len(keep)])
        bad = np.flatnonzero(diag <= tol * norms[keep])
        if bad.size == 0:
            break
        del keep[int(bad[0])]
    return np.asarray(keep, dtype=np.intp)


_SMALL_P = 8
"""Up to this many columns the full-rank test of :func:`drop_rank_deficient` reads R in
Python floats (a small model's X: fewer numpy calls than the test on arrays)."""


def _full_rank_small(X: np.ndarray, tol: float) -> bool:
    """Whether X (n x p, n >= p, p <= ``_SMALL_P``) passes :func:`drop_rank_deficient`'s
    full-rank test: |R[j, j]| > tol ||R[:j+1, j]|| for every column j of X's Householder R
    (the same dgeqrf as :func:`_qr_r`, for X of fewer than 10,000 values; False, for the
    general route, on anything else)."""
    if X.size >= 10_000:
        return False
    qr, _, _, info = lapack.dgeqrf(X)
    if info != 0:
        return False
    # R's columns as Python lists (the rows of R'); each column's upper triangle only (the
    # reflectors are below), its squares added in order as sum() adds them
    for j, col in enumerate(qr[: X.shape[1]].T.tolist()):
        s = 0.0
        for v in col[: j + 1]:
            s += v * v
        if not abs(col[j]) > tol * math.sqrt(s):
            return False
    return True


def _qr_r(X: np.ndarray) -> np.ndarray:
    """R of X's Householder QR (min(n, p) x p), as ``scipy.linalg.qr(X, mode="r")``.

    For p ≤ 32 LAPACK's dgeqrf is called directly: with so few columns it runs its unblocked
    code whatever the workspace, so R is the same to the bit, without scipy's ~20 µs of
    argument handling (a small model's fit pays it once); one BLAS thread for large X."""
    if X.size >= 10_000:
        # Householder steps are BLAS-2: threads gain little, and under load OpenBLAS's
        # waiting threads cost 10x (VerbAgg's 7584 x 8: 2.6 ms on one thread, 29 ms on two)
        with one_thread("blas"):
            return _qr_r_direct(X)
    return _qr_r_direct(X)


def _qr_r_direct(X: np.ndarray) -> np.ndarray:
    if X.shape[1] <= 32 and X.dtype == np.float64:
        qr, _, _, info = lapack.dgeqrf(X)
        if info == 0:
            R = qr[: min(X.shape)]  # a fresh array: its reflectors below the diagonal zeroed
            R[_strictly_lower(*R.shape)] = 0.0
            return R
    return sla.qr(X, mode="r", check_finite=False)[0]


@functools.cache
def _strictly_lower(k: int, p: int) -> np.ndarray:
    """Mask of the entries below the diagonal of a k x p matrix (read-only, cached)."""
    mask = np.tri(k, p, -1, dtype=bool)
    mask.flags.writeable = False
    return mask


def lme4_term_order(nlevels: list[int]) -> list[int]:
    """lme4's mkReTrms ordering: if any later term has more levels, ``rev(order(nl))``."""
    if len(nlevels) < 2:  # one term (or none): nothing to order
        return list(range(len(nlevels)))
    nl = [int(v) for v in nlevels]
    if any(b > a for a, b in itertools.pairwise(nl)):  # (a few terms: Python's stable sort)
        return sorted(range(len(nl)), key=nl.__getitem__)[::-1]
    return list(range(len(nl)))


MAX_DENSE_BYTES = 8e9


def _check_dense_size(terms: list[RandomEffectsTerm], p: int) -> None:
    """The trailing block (all terms but the first, the fixed effects and the response) is
    held dense: refuse, with the reason, a model whose block would not fit in memory."""
    m = sum(t.q for t in terms[1:]) + p + 1
    need = 3.0 * m * m * 8
    if need > MAX_DENSE_BYTES:
        sizes = ", ".join(f"{t.group}: {t.q}" for t in terms[1:])
        raise ModelError(
            f"the random effects after the first term are too many to factor densely "
            f"({m} rows, about {need / 1e9:.0f} GB; {sizes}). mixedfx puts the term with the most "
            "levels first and holds the others in a dense block: models with two or more "
            "grouping factors of tens of thousands of levels each are not supported yet"
        )


def make_unique(names: list[str]) -> list[str]:
    """R's make.unique: repeated names get .1, .2, ..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}.{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def _drop_response_from_rhs(parsed: ParsedFormula) -> ParsedFormula:
    """R's terms(): a fixed-effects term that is the response itself is dropped, with R's
    warning (``y ~ y + x`` is ``y ~ x``)."""
    fixed = _rhs_without_response(parsed.response, parsed.fixed)
    if fixed is None:
        return parsed
    warnings.warn(
        f"the response {parsed.response!r} appeared on the right-hand side and was dropped "
        "(R's warning)",
        DataWarning,
        stacklevel=4,
    )
    return dataclasses.replace(parsed, fixed=fixed)


@functools.lru_cache(maxsize=256)
def _rhs_without_response(response: str, fixed: str) -> str | None:
    """The fixed part without its terms that are the response itself; None when it has none
    (worked out once per formula: every fit asks)."""
    resp = unquote(response.strip())
    pieces = split_top_level(fixed)
    kept = [
        (sign, piece)
        for sign, piece, _ in pieces
        if not (sign == "+" and unquote(piece.strip()) == resp)
    ]
    if len(kept) == len(pieces):
        return None
    out = " ".join(f"{sign} {piece.strip()}" for sign, piece in kept).lstrip("+ ")
    return out or "1"


def check_term_size(t: RandomTerm, nlevels: int, ncols: int, n: int, vs_nobs: bool) -> None:
    """lme4's checks of a random-effects term's size: at least 2 levels and, when ``vs_nobs``
    (lmer), fewer levels and fewer random effects than observations."""
    if nlevels < 2:
        raise ModelError(
            f"grouping factor {t.group!r} has only {nlevels} level in the data used: "
            "a random effect needs at least 2 levels (drop the term or use a fixed effect)"
        )
    if vs_nobs and nlevels >= n:
        raise ModelError(
            f"grouping factor {t.group!r} has {nlevels} levels for {n} observations: "
            "the number of levels of each grouping factor must be less than the number of "
            "observations, or its variance is confounded with the residual variance"
        )
    if vs_nobs and nlevels * ncols >= n:
        raise ModelError(
            f"number of observations ({n}) <= number of random effects "
            f"({nlevels * ncols}) for term {t.text}: the random-effects parameters "
            "and the residual variance are probably unidentifiable"
        )


def build_design(
    formula: str | ParsedFormula,
    data: object,
    weights: object = None,
    offset: object = None,
    *,
    check_nobs_vs_nre: bool = True,
    require_random: bool = True,
    response_maker: Any = None,
    check_dense: bool = True,
) -> Design:
    """Build the design of a mixed model from a formula and data.

    Parameters
    ----------
    formula : str or ParsedFormula
    data : data frame (pandas, polars, ...) or dict of arrays
    weights, offset : column name, array of length n, or None
    check_nobs_vs_nre : bool
        lme4's check that every term has fewer random effects than observations (on for
        linear models, where the residual variance would otherwise be unidentifiable).
    require_random : bool
        Raise if the formula has no random-effects term.
    response_maker : callable, optional
        ``f(frame, response_text) -> ndarray`` to build the response (glmer's ``cbind``).
    check_dense : bool
        Refuse a model whose dense trailing block would not fit in memory.

    Raises
    ------
    FormulaError, ColumnNotFoundError, DataError, ModelError
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if require_random and not parsed.random:
        raise FormulaError(
            f"no random-effects terms in {parsed.text!r}: add a term like (1 | group), "
            "or use mixedfx.ols for a model without random effects"
        )
    df = to_pandas(data)
    parsed = _drop_response_from_rhs(expand_dot(parsed, df.columns))
    texts = [parsed.response, parsed.fixed, *parsed.offsets]
    for t in parsed.random:
        texts.append(t.expr)
        texts.extend(quote_name(f) for f in t.factors)
    mf = model_frame(df, texts, extra={"weights": weights, "offset": offset})
    frame = mf  # the cleaned columns; a pandas frame only where formulaic needs one
    for t in parsed.random:
        for f in t.factors:
            if f not in mf:
                raise missing_column_error(f, list(mf.values), what="grouping factor")

    y = (
        response_maker(mf, parsed.response)
        if response_maker
        else response_values(frame, parsed.response)
    )
    _check_finite(y, f"response {parsed.response!r}")

    fmaker, X = ColumnMaker.build(parsed.fixed, frame, "fixed-effects")
    fnames = list(fmaker.names)
    if fmaker.pieces is None or any(lv is None for _, lv in fmaker.pieces):
        # (an intercept and factor dummies only: ones and zeros, finite)
        _check_finite(X, "fixed-effects model matrix", fnames)
    finite = set(fmaker.plain or ())  # data columns whose values are now known finite
    keep = drop_rank_deficient(X, fnames)
    dropped: list[str] = []
    if len(keep) < X.shape[1]:
        dropped = [fnames[j] for j in range(X.shape[1]) if j not in set(keep.tolist())]
        plural = "s" if len(dropped) > 1 else ""
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column{plural} / coefficient{plural}: {', '.join(dropped)}",
            RankDeficiencyWarning,
            stacklevel=3,
        )
        X = X[:, keep]
        fnames = [fnames[j] for j in keep]
        fmaker.keep = keep
        fmaker.names = fnames
    if X.shape[1] >= X.shape[0]:
        raise ModelError(
            f"{X.shape[1]} fixed-effects coefficients for {X.shape[0]} observations: a model "
            "needs more observations than coefficients (drop terms from the fixed part)"
        )
    fixed = FixedEffects(X=np.ascontiguousarray(X), names=fnames, maker=fmaker, dropped=dropped)

    n = mf.n
    terms: list[RandomEffectsTerm] = []
    for t in parsed.random:
        refs, levels, per_factor = grouping_factor(frame, t.factors)
        maker, Zt = ColumnMaker.build(t.expr, frame, f"random-effects term {t.text}")
        if Zt.shape[1] == 0:
            raise FormulaError(f"random-effects term {t.text} has no columns")
        if maker.plain is None or not finite.issuperset(maker.plain):
            # (an intercept and columns already checked in X are finite: not checked again)
            _check_finite(Zt, f"random-effects term {t.text}", maker.names)
        check_term_size(t, len(levels), Zt.shape[1], n, check_nobs_vs_nre)
        terms.append(
            RandomEffectsTerm(
                term=t,
                group=t.group,
                vc_name=t.group,
                columns=list(maker.names),
                refs=refs,
                levels=levels,
                Zt=np.ascontiguousarray(Zt),
                maker=maker,
                factors=t.factors,
                factor_levels=per_factor,
            )
        )
    order = lme4_term_order([t.nlevels for t in terms])
    terms = [terms[i] for i in order]
    if check_dense:  # off: the caller weighs the exact fit's cost (lmer's method="auto")
        _check_dense_size(terms, fixed.p)
    for t, name in zip(terms, make_unique([t.group for t in terms]), strict=True):
        t.vc_name = name
    w = None
    if weights is not None:
        w = _floats(mf["(weights)"])
        _check_finite(w, "weights")
        if np.any(w < 0):
            raise DataError("weights must be non-negative; found negative weights")
        if np.any(w == 0):
            raise DataError("weights must be positive; drop the rows with zero weight first")
    off = None
    parts: list[np.ndarray] = []
    if offset is not None:
        parts.append(_floats(mf["(offset)"]))
    for expr in parsed.offsets:
        _, values = ColumnMaker.build("0 + " + expr, frame, "offset")
        parts.append(values[:, 0])
    if parts:
        off = np.sum(parts, axis=0)
        _check_finite(off, "offset")
    return Design(
        formula=parsed,
        y=y,
        fixed=fixed,
        terms=terms,
        weights=w,
        offset=off,
        frame=mf,
        response_name=parsed.response,
        offset_name=offset if isinstance(offset, str) else None,
    )
