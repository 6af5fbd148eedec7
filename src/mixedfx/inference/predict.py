"""Predictions from a fitted mixed model, for its own rows or for new data (lme4's ``predict``).

The linear predictor is

    η = o + X β̂ + Σ_{terms in re_form} Z_t b̂_t,

with X, Z and the offset o rebuilt from ``newdata`` by the same column makers that built the
fit (categorical variables coded with the fit's levels). A random-effects term contributes
its conditional mode b̂ for the level of each new row; a level not seen in the fit contributes
0 when ``allow_new_levels`` is True (lme4: its random effect is predicted as its mean), and is
an error otherwise. ``re_form=None`` gives the population-level prediction Xβ̂ (+ o).

Rows with a missing value in a variable the prediction needs give NaN (R's ``na.pass``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..frame.data import (
    clean_column,
    column_names_in,
    missing_column_error,
    missing_mask,
    to_pandas,
    unknown_names,
)
from ..frame.design import ColumnMaker, RandomEffectsTerm, level_names
from ..frame.formula import parse_formula, quote_name
from ..linalg.zmul import z_times

__all__ = ["ALL", "linear_predictor", "select_terms"]

ALL = "all"
"""``re_form`` default: every random-effects term."""


def select_terms(model: Any, re_form: Any) -> list[int]:
    """Positions (in ``model.design.terms``) of the random-effects terms ``re_form`` names.

    ``re_form`` is ``"all"`` (every term), ``None``, ``"NA"`` or ``"~0"`` (none), or a
    formula such as ``"~ (1 | Subject)"``; a named term matches a fitted term with the same
    grouping factor and the same columns (``(Days | g)`` is ``(1 + Days | g)``).
    """
    terms = model.design.terms
    if isinstance(re_form, str) and re_form.strip() == ALL:
        return list(range(len(terms)))
    if re_form is None:
        return []
    if not isinstance(re_form, str):
        raise FormulaError(f"re_form must be a formula string, 'all' or None, got {re_form!r}")
    text = re_form.strip()
    if text in ("NA", "~0", "~ 0", "0"):
        return []
    rhs = text[1:] if text.startswith("~") else text
    parsed = parse_formula(f".y ~ 1 + {rhs}")
    if parsed.fixed.replace(" ", "") not in ("1", "1+1"):
        raise FormulaError(
            f"re_form may name random-effects terms only, e.g. '~ (1 | g)': {re_form!r}"
        )
    frame = model.design.frame.frame
    chosen: list[int] = []
    for rt in parsed.random:
        try:
            maker, _ = ColumnMaker.build(rt.expr, frame, f"re_form term {rt.text}")
        except Exception as exc:  # a variable the fit does not have
            raise FormulaError(f"re_form term {rt.text} does not match the model: {exc}") from None
        names = maker.names
        hits = [
            i for i, t in enumerate(terms) if t.group == rt.group and list(t.columns) == list(names)
        ]
        if not hits:
            fitted = " + ".join(t.term.text for t in terms)
            raise FormulaError(
                f"re_form term {rt.text} is not a random-effects term of the model ({fitted})"
            )
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def _levels_of(series: pd.Series) -> np.ndarray:
    """Level names (as the fit names levels) of a grouping variable's values."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(object).map(lambda v: v if v is None else str(v)).to_numpy()
    values = series.to_numpy()
    if values.dtype.kind in "fiub":
        out = np.empty(values.shape[0], dtype=object)
        ok = ~pd.isna(values)
        out[ok] = level_names(values[ok])
        out[~ok] = None
        return out
    return np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)


def _group_levels(frame: pd.DataFrame, term: RandomEffectsTerm) -> np.ndarray:
    parts = [_levels_of(frame[f]) for f in term.factors]
    if len(parts) == 1:
        return parts[0]
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = np.array(
            [None if (a is None or b is None) else f"{a}:{b}" for a, b in zip(out, p, strict=True)],
            dtype=object,
        )
    return out


def _check_categories(model: Any, new: pd.DataFrame, names: list[str]) -> None:
    """Categorical predictors (``names``: the variables of the fixed part and of the
    random-effects terms' expressions) of new data may only take levels the fit has seen."""
    fit_frame = model.design.frame.frame
    for name in names:
        if name not in fit_frame.columns:
            continue
        col = fit_frame[name]
        if col.dtype.kind in "fiub" and not isinstance(col.dtype, pd.CategoricalDtype):
            continue
        seen = set(col.astype(str).unique().tolist())
        vals = new[name]
        ok = vals.notna().to_numpy()
        got = vals[ok].astype(str).to_numpy()
        bad = ~np.isin(got, list(seen))
        if bad.any():
            level = got[np.flatnonzero(bad)[0]]
            raise DataError(
                f"newdata column {name!r} has level {level!r} that the model was not fitted with "
                f"(levels: {', '.join(sorted(seen))})"
            )


def linear_predictor(
    model: Any,
    newdata: Any = None,
    re_form: Any = ALL,
    allow_new_levels: bool = False,
) -> np.ndarray:
    """The linear predictor η of a fitted engine (linear or generalized) for its rows or for
    ``newdata``.

    Parameters
    ----------
    model : fitted engine
    newdata : data frame (pandas, polars, ...) or dict of arrays, optional
        Default: the rows the model was fitted to.
    re_form : "all", None or formula string
        Which random-effects terms to include (see :func:`select_terms`).
    allow_new_levels : bool
        A grouping level not seen in the fit contributes 0 (True) or is an error (False).

    Returns
    -------
    ndarray (n,)
        NaN where a needed variable is missing in ``newdata``.
    """
    model.require_fit()
    if not isinstance(allow_new_levels, bool):
        raise DataError(f"allow_new_levels must be True or False, got {allow_new_levels!r}")
    d = model.design
    chosen = select_terms(model, re_form)
    beta = model.beta
    blocks = model.b_blocks()
    if newdata is None:
        eta = model.fixed_part()
        if chosen:
            eta = eta + z_times([d.terms[i] for i in chosen], [blocks[i] for i in chosen])
        return eta

    new = to_pandas(newdata)
    parsed = d.formula
    texts = [parsed.fixed, *parsed.offsets]
    for i in chosen:
        texts.append(d.terms[i].term.expr)
        texts.extend(quote_name(f) for f in d.terms[i].factors)
    if d.offset_name is not None:
        texts.append(quote_name(d.offset_name))
    missing = unknown_names(texts, new.columns)
    if missing:
        raise missing_column_error(missing[0], new.columns, what="newdata: variable")
    used = column_names_in(texts, new.columns)
    dup = set(new.columns[new.columns.duplicated()])
    if dup & set(used):
        raise DataError(f"newdata has more than one column named {sorted(dup & set(used))[0]!r}")
    if d.offset is not None and d.offset_name is None and not parsed.offsets:
        raise DataError(
            "the model's offset was given as an array, which cannot be evaluated on new data: "
            "fit with the offset as a column name (offset='col') or in the formula "
            "(+ offset(col)) to predict on new data"
        )
    n = len(new)
    na = np.zeros(n, dtype=bool)
    for c in used:  # rows with a missing value are predicted as NaN (R's na.pass)
        miss = missing_mask(new[c])
        if miss is not None:
            na |= miss
    out = np.full(n, np.nan)
    rows = np.flatnonzero(~na)
    if rows.size == 0:
        return out
    # the complete rows, in the types the fit's column makers read (as the model frame)
    frame = pd.DataFrame(
        {c: clean_column(c, new[c].iloc[rows]) for c in used}, index=pd.RangeIndex(rows.size)
    )
    predictors = [parsed.fixed, *parsed.offsets] + [d.terms[i].term.expr for i in chosen]
    _check_categories(model, frame, column_names_in(predictors, frame.columns))
    X = d.fixed.maker.make(frame)
    eta = X @ beta
    offs = []
    if d.offset_name is not None:
        offs.append(frame[d.offset_name].to_numpy(dtype=float))
    for expr in parsed.offsets:
        _, v = ColumnMaker.build("0 + " + expr, frame, "offset")
        offs.append(v[:, 0])
    if offs:
        eta = eta + np.sum(offs, axis=0)
    Zts, refs = [], []
    for i in chosen:
        t = d.terms[i]
        levels = _group_levels(frame, t)
        idx = pd.Index(t.levels).get_indexer(levels)
        unseen = idx < 0
        if unseen.any() and not allow_new_levels:
            bad = sorted({str(v) for v in levels[unseen]})
            shown = ", ".join(repr(b) for b in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise DataError(
                f"newdata has level(s) {shown} of grouping factor {t.group!r} not seen in the "
                "fit; use allow_new_levels=True to predict them at the population level"
            )
        Zts.append(t.maker.make(frame))
        refs.append(idx)
    if chosen:
        terms = [d.terms[i] for i in chosen]
        eta = eta + z_times(terms, [blocks[i] for i in chosen], Zts, refs)
    out[rows] = eta
    return out
