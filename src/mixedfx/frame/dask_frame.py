"""Dask data frames in: the design of a model whose rows stay where they are.

A Dask data frame is read partition by partition; no partition is ever gathered. One first pass
(:func:`dask_design`) reads what the design needs from all rows before any statistic can be
formed: the rows kept after dropping missing values (counted, as in memory), the levels of
every grouping factor and of every categorical predictor (the *global* categories, in the order
a fit in memory gives them), a few rows to build the fixed-effects and random-effects column
makers from, and the scales of the response and the weights (the units the linear engine
works in). Then every partition can be turned into the rows of the model on those global
levels (:meth:`DaskSource.design`): the same model frame, the same columns, level codes that
mean the same level in every partition.

The design of the whole data (:class:`DaskDesign`) has everything a fit needs but the rows:
names, levels, column makers, n. Whatever needs the rows again reads them through its source,
partition by partition; asking it for its X raises an error that says so.
"""

from __future__ import annotations

import copy
import ctypes
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import (
    DataError,
    FormulaError,
    MissingValuesWarning,
    ModelError,
    RankDeficiencyWarning,
)
from .data import (
    ModelFrame,
    column_names_in,
    missing_column_error,
    missing_mask,
    model_frame,
    to_pandas,
    unknown_names,
)
from .design import (
    ColumnMaker,
    Design,
    FixedEffects,
    RandomEffectsTerm,
    check_term_size,
    drop_rank_deficient,
    level_names,
    lme4_term_order,
    make_unique,
    response_values,
)
from .formula import ParsedFormula, RandomTerm, expand_dot, parse_formula, quote_name

__all__ = [
    "DaskDesign",
    "DaskSource",
    "FactorLevels",
    "RowsNotHeldError",
    "dask_design",
    "is_dask_frame",
    "partition_map",
    "partition_reduce",
    "release_memory",
]

STATEFUL = ("center(", "scale(", "standardize(", "poly(", "bs(", "cr(", "cs(", "cc(", "te(")
"""formulaic's transforms that learn from all rows (a mean, a basis): not on a Dask frame."""

HEAD_ROWS = 20


class RowsNotHeldError(ModelError):
    """What was asked needs the model's rows in memory; they are on Dask."""


def is_dask_frame(data: object) -> bool:
    """Whether ``data`` is a Dask data frame (checked without importing Dask)."""
    mod = type(data).__module__.split(".")[0]
    return (
        mod in ("dask", "dask_expr") and hasattr(data, "npartitions") and hasattr(data, "columns")
    )


def partition_map(
    ddf: Any, fn: Callable[..., Any], *args: Any, combine: Callable | None = None,
    split_every: int = 8,
) -> Any:  # fmt: skip
    """``fn(partition, *args)`` on every partition of ``ddf``, computed by Dask's current
    scheduler (a distributed client if one is active). With ``combine`` the results are
    summed as a tree, ``split_every`` at a time, and the root is returned; without, the list
    of results. ``args`` are shipped once (as one task each), not once per partition."""
    import dask

    parts = ddf.to_delayed()
    shared = [dask.delayed(a, pure=False) if _big(a) else a for a in args]
    tasks = [dask.delayed(fn, pure=False)(p, *shared) for p in parts]
    if combine is None:
        return list(dask.compute(*tasks))
    comb = dask.delayed(combine, pure=False)
    while len(tasks) > 1:
        tasks = [comb(tasks[i : i + split_every]) for i in range(0, len(tasks), split_every)]
    return tasks[0].compute()


def partition_reduce(
    ddf: Any,
    fn: Callable[..., list[Any]],
    *args: Any,
    combine: Callable[[list[Any]], Any],
    shards: int,
    split_every: int = 8,
) -> list[Any]:
    """``fn(partition, *args)`` returns ``shards`` pieces (e.g. tables split by key range);
    piece b of every partition is summed with the others' piece b as a tree of its own, and
    the ``shards`` sums are returned. The largest sum the client or a worker forms is then
    1/shards of the whole."""
    import dask

    parts = ddf.to_delayed()
    shared = [dask.delayed(a, pure=False) if _big(a) else a for a in args]
    outs = [dask.delayed(fn, pure=False, nout=shards)(p, *shared) for p in parts]
    comb = dask.delayed(combine, pure=False)
    roots = []
    for b in range(shards):
        tasks = [o[b] for o in outs]
        while len(tasks) > 1:
            tasks = [comb(tasks[i : i + split_every]) for i in range(0, len(tasks), split_every)]
        roots.append(tasks[0])
    out = list(dask.compute(*roots))
    release_memory()
    return out


def release_memory() -> None:
    """Give the memory freed by a pass's temporaries back to the operating system (glibc keeps
    freed blocks below its dynamic mmap threshold, up to 32 MB each, in its heaps: after a pass
    over many partitions that is gigabytes of resident memory nobody uses)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _big(obj: Any) -> bool:
    return not (isinstance(obj, bool | int | float | str | type(None)) or callable(obj))


# ------------------------------------------------------------------ levels
@dataclass
class FactorLevels:
    """The global levels of one grouping variable and how to code any partition's values.

    ``kind``: "num" (numbers and booleans: sorted values), "str" (strings and anything else:
    sorted text) or "cat" (a categorical: its category order, unused categories dropped).
    """

    name: str
    kind: str
    names: list[str]
    values: np.ndarray | None = None

    def codes(self, col: pd.Series) -> np.ndarray:
        """0-based codes on the global levels of a cleaned column's values."""
        if self.kind == "cat":
            cat = col.array
            idx = pd.Index(self.names).get_indexer([str(c) for c in cat.categories])
            return idx[np.asarray(cat.codes)].astype(np.intp)
        vals = col.to_numpy()
        if self.kind == "str":
            vals = vals.astype(str)
        assert self.values is not None
        return np.searchsorted(self.values, vals).astype(np.intp)


def _values_of(col: pd.Series) -> tuple[str, Any]:
    """A partition's distinct values of a cleaned grouping column, in a mergeable form."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return "cat", [c for c in col.array.categories]
    vals = col.to_numpy()
    if vals.dtype.kind in "fiub":
        return "num", np.unique(vals)
    return "str", np.unique(vals.astype(str))


def _merge_levels(name: str, found: list[tuple[str, Any]], dtype: Any) -> FactorLevels:
    kinds = {k for k, _ in found}
    kind = kinds.pop() if len(kinds) == 1 else "str"
    if kind == "cat":
        used: dict[Any, None] = {}
        for _, cats in found:
            for c in cats:
                used.setdefault(c, None)
        order = list(dtype.categories) if isinstance(dtype, pd.CategoricalDtype) else list(used)
        cats = [c for c in order if c in used] + [c for c in used if c not in set(order)]
        return FactorLevels(name, "cat", [str(c) for c in cats])
    if kind == "num":
        vals = np.unique(np.concatenate([v for _, v in found]))
        return FactorLevels(name, "num", level_names(vals), vals)
    vals = np.unique(np.concatenate([np.asarray(v, dtype=str) for _, v in found]))
    return FactorLevels(name, "str", [str(v) for v in vals], vals)


@dataclass
class TermSpec:
    """One random-effects term on the global levels: its column maker and level coding.

    For an interaction ``a:b`` the levels are the combinations that occur, ordered with the
    first factor varying slowest (as :func:`mixedfx.frame.design.grouping_factor`); ``stages``
    holds the sorted combined codes of each step of that construction."""

    term: RandomTerm
    maker: ColumnMaker
    levels: list[str]
    factor_levels: tuple[list[str], ...]
    stages: list[np.ndarray] = field(default_factory=list)

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    def codes(self, frame: pd.DataFrame, flev: dict[str, FactorLevels]) -> np.ndarray:
        fs = self.term.factors
        codes = flev[fs[0]].codes(frame[fs[0]])
        for f, uniq in zip(fs[1:], self.stages, strict=True):
            c2 = flev[f].codes(frame[f])
            key = codes.astype(np.int64) * len(flev[f].names) + c2
            codes = np.searchsorted(uniq, key).astype(np.intp)
        return codes


def _interaction(
    term: RandomTerm, combos: pd.DataFrame, flev: dict[str, FactorLevels]
) -> tuple[list[str], list[np.ndarray]]:
    """Levels (R's ``a:b`` names) and stage keys of an interaction from its distinct rows."""
    fs = term.factors
    codes = flev[fs[0]].codes(combos[fs[0]])
    levels = flev[fs[0]].names
    stages = []
    for f in fs[1:]:
        l2 = flev[f].names
        key = codes.astype(np.int64) * len(l2) + flev[f].codes(combos[f])
        uniq, codes = np.unique(key, return_inverse=True)
        stages.append(uniq)
        levels = [f"{levels[u // len(l2)]}:{l2[u % len(l2)]}" for u in uniq.tolist()]
    return levels, stages


# ------------------------------------------------------------------ the first pass
@dataclass
class _ScanSpec:
    texts: list[str]
    extra: dict[str, str | None]
    response: str
    response_maker: Any
    offsets: tuple[str, ...]
    factors: list[str]
    interactions: list[tuple[str, ...]]
    value_texts: list[str]


def _used_frame(
    part: pd.DataFrame, texts: list[str], extra: dict[str, str | None]
) -> ModelFrame | None:
    """The partition's model frame (missing values dropped, columns cleaned), or None when
    no row is complete."""
    df = to_pandas(part)
    if len(df) == 0:
        return None
    used = column_names_in(texts, df.columns) + [v for v in extra.values() if v is not None]
    na = np.zeros(len(df), dtype=bool)
    for c in dict.fromkeys(used):
        if c in df.columns:
            miss = missing_mask(df[c])
            if miss is not None:
                na |= miss
    if na.all():
        return ModelFrame(df.iloc[:0], np.zeros(0, dtype=np.intp), len(df), len(df))
    return model_frame(df, texts, extra=extra, warn=False)


def _finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{what} has {int(bad.sum())} infinite or undefined values")


def _response_offset_weights(
    frame: pd.DataFrame,
    response: str,
    response_maker: Any,
    offsets: Sequence[str],
    has_offset: bool,
    has_weights: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """y, offset and weights of a model frame, checked as :func:`build_design` checks them."""
    y = response_maker(frame, response) if response_maker else response_values(frame, response)
    _finite(y, f"response {response!r}")
    w = None
    if has_weights:
        w = frame["(weights)"].to_numpy(dtype=float)
        _finite(w, "weights")
        if np.any(w < 0):
            raise DataError("weights must be non-negative; found negative weights")
        if np.any(w == 0):
            raise DataError("weights must be positive; drop the rows with zero weight first")
    parts: list[np.ndarray] = []
    if has_offset:
        parts.append(frame["(offset)"].to_numpy(dtype=float))
    for expr in offsets:
        _, values = ColumnMaker.build("0 + " + expr, frame, "offset")
        parts.append(values[:, 0])
    off = None
    if parts:
        off = np.sum(parts, axis=0)
        _finite(off, "offset")
    return y, off, w


def _scan(part: pd.DataFrame, spec: _ScanSpec) -> dict[str, Any]:
    """What the first pass learns from one partition."""
    out: dict[str, Any] = {"n_original": len(part), "n": 0}
    mf = _used_frame(part, spec.texts, spec.extra)
    if mf is None or len(mf.frame) == 0:
        out["na_cols"] = _na_columns(part, spec)
        return out
    frame = mf.frame
    out["n"] = len(frame)
    out["na_cols"] = _na_columns(part, spec) if mf.n_dropped else []
    out["factors"] = {f: _values_of(frame[f]) for f in spec.factors}
    out["interactions"] = [frame[list(fs)].drop_duplicates() for fs in spec.interactions]
    values = {}
    for c in column_names_in(spec.value_texts, frame.columns):
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.to_numpy().dtype.kind not in "fiu":
            values[c] = col.drop_duplicates()
    out["values"] = values
    out["head"] = frame.iloc[:HEAD_ROWS].copy()  # a copy: a view would keep every row
    y, off, w = _response_offset_weights(
        frame,
        spec.response,
        spec.response_maker,
        spec.offsets,
        spec.extra.get("offset") is not None,
        spec.extra.get("weights") is not None,
    )
    if y.ndim == 2:
        out["max_trials"] = float(np.max(y.sum(axis=1), initial=0.0))
        out["ymax"] = float(np.max(np.abs(y), initial=0.0))
    else:
        ye = y - off if off is not None else y
        out["ymax"] = float(np.max(np.abs(ye), initial=0.0))
        out["ymin_raw"], out["ymax_raw"] = float(np.min(y)), float(np.max(y))
        out["max_trials"] = 1.0
    out["wmax"] = float(np.max(w)) if w is not None else 1.0
    return out


def _na_columns(part: pd.DataFrame, spec: _ScanSpec) -> list[str]:
    df = to_pandas(part)
    names = column_names_in(spec.texts, df.columns)
    cols = {c: df[c] for c in names}
    for key, v in spec.extra.items():
        if v is not None:
            cols[f"({key})"] = df[v]
    bad = []
    for name, col in cols.items():
        miss = missing_mask(col)
        if miss is not None and miss.any():
            bad.append(name)
    return bad


def _template(
    heads: list[pd.DataFrame], values: dict[str, list[pd.Series]], dtypes: dict[str, Any]
) -> pd.DataFrame:
    """A few rows with every level of every categorical predictor: what the column makers
    are built from (they remember the levels, as for ``predict`` on new data). Categoricals
    keep the data's category order (``dtypes``: the Dask frame's), unused categories dropped."""
    head = next(h for h in heads if len(h))
    rows = [head]
    for c, found in values.items():
        seen = set(head[c].astype(object).tolist())
        new = []
        for s in found:
            for v in s.astype(object).tolist():
                if v not in seen:
                    seen.add(v)
                    new.append(v)
        if new:
            extra = head.iloc[[0] * len(new)].copy()
            extra[c] = (
                pd.array(new, dtype=object)
                if not isinstance(head[c].dtype, pd.CategoricalDtype)
                else pd.Categorical(new)
            )
            rows.append(extra)
    out = pd.concat([r.astype({c: object for c in values}) for r in rows], ignore_index=True)
    for c, found in values.items():
        if any(isinstance(s.dtype, pd.CategoricalDtype) for s in found):
            order: dict[Any, None] = {}
            known = dtypes.get(c)
            if isinstance(known, pd.CategoricalDtype):
                for v in known.categories:
                    order.setdefault(v, None)
            for s in found:
                for v in s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else s:
                    order.setdefault(v, None)
            used = set(out[c].tolist())
            out[c] = pd.Categorical(out[c], categories=[v for v in order if v in used])
        elif all(s.to_numpy().dtype.kind == "b" for s in found):
            out[c] = out[c].astype(bool)
    return out


def _kept_maker(maker: ColumnMaker, keep: np.ndarray) -> ColumnMaker:
    """A column maker giving only the ``keep`` columns (rank-deficient ones dropped)."""
    names = [maker.names[j] for j in keep]
    if maker.plain is not None:
        return ColumnMaker(
            names=names,
            intercept="(Intercept)" in names,
            plain=[n for n in names if n != "(Intercept)"],
        )
    new = copy.copy(maker)
    new.names, new.keep = names, keep
    return new


# ------------------------------------------------------------------ the source
class DaskSource:
    """How any partition of the data becomes rows of the model (on the global levels).

    Holds no Dask collection (it is shipped to the workers as one task argument); the data
    frame itself is :attr:`DaskDesign.ddf`."""

    def __init__(
        self,
        *,
        parsed: ParsedFormula,
        texts: list[str],
        extra: dict[str, str | None],
        response_maker: Any,
        fixed_maker: ColumnMaker,
        fixed_names: list[str],
        specs: list[TermSpec],
        factor_levels: dict[str, FactorLevels],
        keep: np.ndarray,
        n: int,
        n_dropped: int,
        n_original: int,
        ymax: float,
        wmax: float,
        max_trials: float = 1.0,
        yrange: tuple[float, float] = (math.nan, math.nan),
    ):
        self.parsed, self.texts, self.extra = parsed, texts, extra
        self.response_maker = response_maker
        self.fixed_maker, self.fixed_names = fixed_maker, fixed_names
        self.specs, self.factor_levels, self.keep = specs, factor_levels, keep
        self.n, self.n_dropped, self.n_original = n, n_dropped, n_original
        self.ymax, self.wmax, self.max_trials, self.yrange = ymax, wmax, max_trials, yrange

    @property
    def p_full(self) -> int:
        return len(self.fixed_names)

    def frame(self, part: pd.DataFrame) -> pd.DataFrame | None:
        """The partition's model frame (complete rows, cleaned columns), or None."""
        mf = _used_frame(part, self.texts, self.extra)
        if mf is None or len(mf.frame) == 0:
            return None
        return mf.frame

    def rows(self, part: pd.DataFrame) -> tuple[Design | None, pd.Index]:
        """The partition's rows as a design and the partition's index of those rows."""
        mf = _used_frame(part, self.texts, self.extra)
        if mf is None or len(mf.frame) == 0:
            return None, part.index[:0]
        return self.design_of_frame(mf.frame), part.index[mf.rows]

    def design(self, part: pd.DataFrame, full: bool = False) -> Design | None:
        """The partition's rows as a :class:`Design` on the global levels (None when no row
        is complete). ``full``: every fixed-effects column, rank-deficient ones included."""
        frame = self.frame(part)
        if frame is None:
            return None
        return self.design_of_frame(frame, full)

    def design_of_frame(self, frame: pd.DataFrame, full: bool = False) -> Design:
        y, off, w = _response_offset_weights(
            frame,
            self.parsed.response,
            self.response_maker,
            self.parsed.offsets,
            self.extra.get("offset") is not None,
            self.extra.get("weights") is not None,
        )
        X = self.fixed_maker.make(frame)
        _finite(X, "fixed-effects model matrix")
        names = self.fixed_names
        if not full and self.keep.size < X.shape[1]:
            X = X[:, self.keep]
            names = [names[j] for j in self.keep]
        terms = []
        for s in self.specs:
            Zt = s.maker.make(frame)
            _finite(Zt, f"random-effects term {s.term.text}")
            terms.append(
                RandomEffectsTerm(
                    term=s.term,
                    group=s.term.group,
                    vc_name=s.term.group,
                    columns=list(s.maker.names),
                    refs=s.codes(frame, self.factor_levels),
                    levels=s.levels,
                    Zt=np.ascontiguousarray(Zt, dtype=float),
                    maker=s.maker,
                    factors=s.term.factors,
                    factor_levels=s.factor_levels,
                )
            )
        return Design(
            formula=self.parsed,
            y=y,
            fixed=FixedEffects(X=np.ascontiguousarray(X), names=names, maker=self.fixed_maker),
            terms=terms,
            weights=w,
            offset=off,
            frame=ModelFrame(frame, np.arange(len(frame)), 0, len(frame)),
            response_name=self.parsed.response,
            offset_name=self.extra.get("offset"),
        )


def _call_with_source(part: pd.DataFrame, source: DaskSource, fn: Callable, *args: Any) -> Any:
    return fn(source, part, *args)


_NBINS = 1 << 16


def _values(source: DaskSource, part: pd.DataFrame, fn: Callable, args: tuple) -> np.ndarray:
    d = source.design(part)
    return np.zeros(0) if d is None else np.asarray(fn(d, *args), dtype=float)


def _histogram(source: DaskSource, part: pd.DataFrame, fn: Callable, edges: np.ndarray,
               *args: Any) -> dict[str, Any]:  # fmt: skip
    v = _values(source, part, fn, args)
    idx = np.clip(np.searchsorted(edges, np.arcsinh(v), side="right") - 1, 0, edges.size - 2)
    return {
        "counts": np.bincount(idx, minlength=edges.size - 1),
        "min": float(v.min()) if v.size else np.inf,
        "max": float(v.max()) if v.size else -np.inf,
    }


def _sum_hist(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "counts": sum(p["counts"] for p in parts),
        "min": min(p["min"] for p in parts),
        "max": max(p["max"] for p in parts),
    }


def _in_bins(source: DaskSource, part: pd.DataFrame, fn: Callable, edges: np.ndarray,
             bins: np.ndarray, *args: Any) -> dict[int, np.ndarray]:  # fmt: skip
    v = _values(source, part, fn, args)
    idx = np.clip(np.searchsorted(edges, np.arcsinh(v), side="right") - 1, 0, edges.size - 2)
    return {int(b): v[idx == b] for b in bins}


def _concat(parts: list[dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    keys = {k for p in parts for k in p}
    return {k: np.concatenate([p[k] for p in parts if k in p]) for k in keys}


def _series_of_partition(
    part: pd.DataFrame, source: DaskSource, fn: Callable, name: str | None, *args: Any
) -> pd.Series:
    d, index = source.rows(part)
    if d is None:
        return pd.Series([], dtype=float, name=name)
    return pd.Series(np.asarray(fn(d, *args), dtype=float), index=index, name=name)


_NOT_HELD = (
    "the rows of a model fitted to a Dask data frame are not held in memory, so {what} is not "
    "available: use what works from the cross-products (coefficients with Satterthwaite's df, "
    "vcov, varcorr, ranef(), confint(method='wald'), anova(m0, m)) and m.fitted / "
    "m.residuals / m.predict(ddf), which are lazy Dask series"
)


class _RowlessFixedEffects(FixedEffects):
    """Fixed effects of a Dask-backed design: names and column maker, no X."""

    def __init__(self, names: list[str], maker: ColumnMaker, dropped: list[str], X0: np.ndarray):
        self.names, self.maker, self.dropped = names, maker, dropped
        self.template_X = X0

    @property
    def X(self) -> np.ndarray:  # type: ignore[override]
        raise RowsNotHeldError(_NOT_HELD.format(what="the fixed-effects matrix X"))

    @property
    def p(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"FixedEffects(names={self.names!r}, rows on Dask)"


class DaskDesign(Design):
    """The design of a model over a Dask data frame: every attribute of a :class:`Design`
    but the rows (``y``, ``weights`` and ``offset`` are empty arrays, X raises
    :class:`RowsNotHeldError`); ``source`` turns partitions into rows."""

    has_rows: ClassVar[bool] = False

    def __init__(
        self,
        *,
        source: DaskSource,
        fixed: FixedEffects,
        terms: list[RandomEffectsTerm],
        frame: ModelFrame,
        ddf: Any,
    ):
        p = source.parsed
        self.ddf = ddf
        self.formula = p
        self.y = np.zeros(0)
        self.fixed = fixed
        self.terms = terms
        self.weights = np.zeros(0) if source.extra.get("weights") is not None else None
        self.offset = np.zeros(0) if (source.extra.get("offset") is not None or p.offsets) else None
        self.frame = frame
        self.response_name = p.response
        self.offset_name = source.extra.get("offset")
        self.source = source
        self.passes = 1  # the first pass made it
        self.pass_seconds: list[float] = []
        """Wall time of each pass (the first pass's included), for reports and benchmarks."""

    @property
    def n(self) -> int:
        return self.source.n

    def __repr__(self) -> str:
        return f"DaskDesign({self.formula.text!r}, n={self.n}, rows on Dask)"

    def map(self, fn: Callable[..., Any], *args: Any, combine: Callable | None = None) -> Any:
        """``fn(source, partition, *args)`` over the partitions (see :func:`partition_map`)."""
        self.passes += 1
        t = time.perf_counter()
        out = partition_map(self.ddf, _call_with_source, self.source, fn, *args, combine=combine)
        self.pass_seconds.append(time.perf_counter() - t)
        return out

    def quantiles(self, fn: Callable[..., np.ndarray], qs: Sequence[float], *args: Any
                  ) -> np.ndarray:  # fmt: skip
        """Quantiles (numpy's default, linear interpolation) of a per-row value
        ``fn(design_of_partition, *args)``, exactly, in two passes: counts over 2^16 bins of
        asinh(value), then the values of the few bins holding the order statistics needed."""
        edges = np.linspace(-45.0, 45.0, _NBINS + 1)
        hist = self.map(_histogram, fn, edges, *args, combine=_sum_hist)
        counts, lo, hi = hist["counts"], hist["min"], hist["max"]
        n = int(counts.sum())
        if n == 0:
            return np.full(len(qs), np.nan)
        pos = [(n - 1) * float(q) for q in qs]
        ranks = sorted(
            {int(np.floor(h)) for h in pos} | {min(int(np.floor(h)) + 1, n - 1) for h in pos}
        )
        cum = np.cumsum(counts)
        bins = sorted({int(np.searchsorted(cum, r, side="right")) for r in ranks})
        got = self.map(_in_bins, fn, edges, np.asarray(bins), *args, combine=_concat)
        before = {b: int(cum[b - 1]) if b > 0 else 0 for b in bins}
        values: dict[int, float] = {}
        for b in bins:
            v = np.sort(got[b]) if b in got else np.zeros(0)
            for r in ranks:
                if before[b] <= r < before[b] + v.size:
                    values[r] = float(v[r - before[b]])
        out = []
        for h in pos:
            f = int(np.floor(h))
            g = min(f + 1, n - 1)
            out.append(values[f] + (h - f) * (values[g] - values[f]))
        out[0] = lo if qs[0] == 0 else out[0]
        out[-1] = hi if qs[-1] == 1 else out[-1]
        return np.asarray(out)

    def reduce(self, fn: Callable[..., list[Any]], *args: Any, combine: Callable,
               shards: int) -> list[Any]:  # fmt: skip
        """``fn(source, partition, *args)`` gives ``shards`` pieces, each piece summed over the
        partitions as its own tree (see :func:`partition_reduce`)."""
        self.passes += 1
        t = time.perf_counter()
        out = partition_reduce(
            self.ddf, _call_with_source, self.source, fn, *args, combine=combine, shards=shards
        )
        self.pass_seconds.append(time.perf_counter() - t)
        return out

    def map_series(self, fn: Callable[..., np.ndarray], *args: Any, name: str | None = None) -> Any:
        """A lazy Dask series: ``fn(design_of_partition, *args)`` (one value per complete
        row) on every partition, indexed by the rows' index in the data."""
        import dask

        shared = [dask.delayed(a, pure=False) if _big(a) else a for a in args]
        src = dask.delayed(self.source, pure=False)
        return self.ddf.map_partitions(
            _series_of_partition, src, fn, name, *shared, meta=pd.Series([], dtype=float, name=name)
        )


def _column_name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    raise DataError(
        f"with a Dask data frame, {what} must name a column of it (an array cannot be lined up "
        "with the partitions); add the values as a column first"
    )


def _rank_keep(xx: np.ndarray, names: list[str]) -> np.ndarray:
    """The columns :func:`mixedfx.frame.design.drop_rank_deficient` keeps, from X'X: any R
    with R'R = X'X has the QR factors of X's column subsets (up to signs)."""
    p = xx.shape[0]
    if p == 0:
        return np.arange(0)
    ev, V = np.linalg.eigh(0.5 * (xx + xx.T))
    R = np.sqrt(np.maximum(ev, 0.0))[:, None] * V.T
    return drop_rank_deficient(R, names)


def dask_design(
    formula: str | ParsedFormula,
    ddf: Any,
    weights: object = None,
    offset: object = None,
    *,
    check_nobs_vs_nre: bool = True,
    require_random: bool = True,
    response_maker: Any = None,
) -> DaskDesign:
    """The design of a mixed model over a Dask data frame, by one pass over its partitions.

    The same checks and messages as :func:`mixedfx.frame.design.build_design`, except that
    fixed-effects columns are checked for rank deficiency later, from X'X
    (:func:`finish_design`), once the cross-products are known; ``weights`` and ``offset`` must
    be column names.
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if require_random and not parsed.random:
        raise FormulaError(
            f"no random-effects terms in {parsed.text!r}: add a term like (1 | group), "
            "or use mixedfx.ols for a model without random effects"
        )
    columns = [str(c) for c in ddf.columns]
    parsed = expand_dot(parsed, columns)
    extra = {"weights": _column_name(weights, "weights"), "offset": _column_name(offset, "offset")}
    for key, col in extra.items():
        if col is not None and col not in columns:
            raise missing_column_error(col, columns, what=f"{key} column")
    texts = [parsed.response, parsed.fixed, *parsed.offsets]
    for t in parsed.random:
        texts.append(t.expr)
        texts.extend(quote_name(f) for f in t.factors)
    unknown = unknown_names(texts, columns)
    if unknown:
        raise missing_column_error(unknown[0], columns, what="variable")
    for t in parsed.random:
        for f in t.factors:
            if f not in columns:
                raise missing_column_error(f, columns, what="grouping factor")
    value_texts = [parsed.fixed, *parsed.offsets, *(t.expr for t in parsed.random)]
    for text in [*value_texts, parsed.response]:
        low = text.replace(" ", "")
        for fn in STATEFUL:
            if fn in low:
                raise FormulaError(
                    f"{fn[:-1]}() learns from all rows (a mean, a scale or a basis), which a "
                    "Dask data frame does not hold in one place: compute the column first "
                    "(e.g. ddf['xc'] = ddf['x'] - ddf['x'].mean()) and use it in the formula"
                )
    used = column_names_in(texts, columns) + [v for v in extra.values() if v is not None]
    sub = ddf[list(dict.fromkeys(used))]
    factors = list(dict.fromkeys(f for t in parsed.random for f in t.factors))
    interactions = list(dict.fromkeys(t.factors for t in parsed.random if len(t.factors) > 1))
    spec = _ScanSpec(
        texts=texts,
        extra=extra,
        response=parsed.response,
        response_maker=response_maker,
        offsets=parsed.offsets,
        factors=factors,
        interactions=interactions,
        value_texts=value_texts,
    )
    t0 = time.perf_counter()
    scans = partition_map(sub, _scan, spec)
    first_seconds = time.perf_counter() - t0
    n = sum(s["n"] for s in scans)
    n_original = sum(s["n_original"] for s in scans)
    if n_original == 0:
        raise DataError("the data have no rows")
    bad_cols = list(dict.fromkeys(c for s in scans for c in s.get("na_cols", [])))
    if n == 0:
        raise DataError(
            f"no rows left after dropping rows with missing values (missing in: "
            f"{', '.join(bad_cols)})"
        )
    n_dropped = n_original - n
    if n_dropped:
        warnings.warn(
            f"{n_dropped} of {n_original} rows dropped because of missing values "
            f"(in: {', '.join(bad_cols)})",
            MissingValuesWarning,
            stacklevel=4,
        )
    scans = [s for s in scans if s["n"]]
    dtypes = dict(zip(columns, ddf.dtypes, strict=True))
    flev = {f: _merge_levels(f, [s["factors"][f] for s in scans], dtypes.get(f)) for f in factors}
    values: dict[str, list[pd.Series]] = {}
    for s in scans:
        for c, v in s["values"].items():
            values.setdefault(c, []).append(v)
    template = _template([s["head"] for s in scans], values, dtypes)
    fmaker, X0 = ColumnMaker.build(parsed.fixed, template, "fixed-effects")
    specs: list[TermSpec] = []
    for t in parsed.random:
        maker, Z0 = ColumnMaker.build(t.expr, template, f"random-effects term {t.text}")
        if Z0.shape[1] == 0:
            raise FormulaError(f"random-effects term {t.text} has no columns")
        if len(t.factors) > 1:
            ii = interactions.index(t.factors)
            combos = pd.concat([s["interactions"][ii] for s in scans], ignore_index=True)
            levels, stages = _interaction(t, combos.drop_duplicates(), flev)
        else:
            levels, stages = flev[t.factors[0]].names, []
        per_factor = tuple(flev[f].names for f in t.factors)
        check_term_size(t, len(levels), Z0.shape[1], n, check_nobs_vs_nre)
        specs.append(TermSpec(t, maker, levels, per_factor, stages))
    specs = [specs[i] for i in lme4_term_order([s.nlevels for s in specs])]
    fnames = list(fmaker.names)
    source = DaskSource(
        parsed=parsed,
        texts=texts,
        extra=extra,
        response_maker=response_maker,
        fixed_maker=fmaker,
        fixed_names=fnames,
        specs=specs,
        factor_levels=flev,
        keep=np.arange(len(fnames)),
        n=n,
        n_dropped=n_dropped,
        n_original=n_original,
        ymax=max(s["ymax"] for s in scans),
        wmax=max(s["wmax"] for s in scans),
        max_trials=max(s["max_trials"] for s in scans),
        yrange=(
            min(s.get("ymin_raw", math.nan) for s in scans),
            max(s.get("ymax_raw", math.nan) for s in scans),
        ),
    )
    terms = []
    for s, vc in zip(specs, make_unique([s.term.group for s in specs]), strict=True):
        terms.append(
            RandomEffectsTerm(
                term=s.term,
                group=s.term.group,
                vc_name=vc,
                columns=list(s.maker.names),
                refs=np.zeros(0, dtype=np.intp),
                levels=s.levels,
                Zt=np.zeros((0, len(s.maker.names))),
                maker=s.maker,
                factors=s.term.factors,
                factor_levels=s.factor_levels,
            )
        )
    fixed = _RowlessFixedEffects(fnames, fmaker, [], X0)
    frame = ModelFrame(template, np.zeros(0, dtype=np.intp), n_dropped, n_original)
    design = DaskDesign(source=source, fixed=fixed, terms=terms, frame=frame, ddf=sub)
    design.pass_seconds.append(first_seconds)
    return design


def finish_design(design: DaskDesign, xx: np.ndarray, stacklevel: int = 4) -> np.ndarray:
    """Drop rank-deficient fixed-effects columns (found from the unweighted X'X, with the
    warning :func:`build_design` gives) and check p < n; returns the columns kept."""
    src = design.source
    fnames = src.fixed_names
    keep = _rank_keep(xx, fnames)
    dropped: list[str] = []
    if keep.size < len(fnames):
        kept = set(keep.tolist())
        dropped = [fnames[j] for j in range(len(fnames)) if j not in kept]
        plural = "s" if len(dropped) > 1 else ""
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column{plural} / coefficient{plural}: {', '.join(dropped)}",
            RankDeficiencyWarning,
            stacklevel=stacklevel,
        )
    if keep.size >= src.n:
        raise ModelError(
            f"{keep.size} fixed-effects coefficients for {src.n} observations: a model "
            "needs more observations than coefficients (drop terms from the fixed part)"
        )
    src.keep = keep
    maker = _kept_maker(src.fixed_maker, keep) if dropped else src.fixed_maker
    X0 = design.fixed.template_X[:, keep]  # type: ignore[attr-defined]
    design.fixed = _RowlessFixedEffects([fnames[j] for j in keep], maker, dropped, X0)
    return keep
