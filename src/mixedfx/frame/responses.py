"""Responses that are not one numeric column: binomial ``cbind(successes, failures)``,
two-level factors and booleans (R's conventions: the first level is "failure")."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .data import column_values
from .design import ColumnMaker, Frame, has_column, numeric_column, response_values
from .expressions import evaluate_arithmetic
from .formula import split_top_level, unquote

__all__ = ["CBIND", "binomial_response"]

CBIND = re.compile(r"^\s*cbind\s*\((.*)\)\s*$", re.S)


def binomial_response(frame: Frame, text: str) -> np.ndarray:
    """The response of a binomial model: cbind(successes, failures) as an (n, 2) array, a
    factor (first level = failure, as R), booleans, or numbers."""
    m = CBIND.match(text)
    if m:
        parts = [p for _, p, _ in split_top_level(m.group(1), ",")]
        if len(parts) != 2:
            raise FormulaError(
                f"cbind() in the response needs two arguments (successes, failures): {text!r}"
            )
        cols = []
        floats: dict[str, np.ndarray | None] = {}  # numeric_column's answers, each made once

        def column(name: str) -> np.ndarray | None:
            if name not in floats:
                floats[name] = numeric_column(frame, name)
            return floats[name]

        for p in parts:
            p = p.strip()
            if has_column(frame, unquote(p)):
                cols.append(response_values(frame, unquote(p)))
                continue
            # "size - incidence" is arithmetic here, not a formula's term removal: numpy for
            # plain arithmetic of numeric columns, else formulaic's I()
            value = evaluate_arithmetic(p, column)
            if value is not None and np.ndim(value) == 1:
                cols.append(np.asarray(value, dtype=float))
                continue
            _, v = ColumnMaker.build(f"0 + I({p})", frame, "response")
            cols.append(v[:, 0])
        out = np.empty((len(cols[0]), 2))  # np.column_stack(cols) as floats, without its wrapper
        out[:, 0] = cols[0]
        out[:, 1] = cols[1]
        # finite, non-negative whole numbers (the usual counts): the checks below pass
        if (
            np.logical_and.reduce(np.isfinite(out), axis=None)
            and not np.logical_or.reduce(out < 0.0, axis=None)
            and np.logical_and.reduce(out == np.rint(out), axis=None)
        ):
            return out
        ok = np.isfinite(out).all(axis=1)  # missing or infinite counts: reported by the caller
        if np.any(out[ok] < 0):
            i = int(np.flatnonzero(ok & (out < 0).any(axis=1))[0])
            raise DataError(
                f"cbind(successes, failures) in {text!r} has negative counts (row {i + 1})"
            )
        frac = ok[:, None] & (np.abs(out - np.round(out)) > 1e-7 * np.maximum(1.0, np.abs(out)))
        if frac.any():
            i = int(np.flatnonzero(frac.any(axis=1))[0])
            raise DataError(
                f"cbind(successes, failures) in {text!r} must be whole numbers of successes and "
                f"failures; row {i + 1} has {out[i, 0]:g} and {out[i, 1]:g}. For proportions "
                "give the proportion as the response and the number of trials as weights"
            )
        return out
    if has_column(frame, unquote(text)):
        text = unquote(text)
        values = column_values(frame[text])
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            levels = list(values.categories)
        elif getattr(dtype, "kind", "O") in "OUS" or str(dtype) in ("str", "string"):
            present = values[~np.asarray(pd.isna(values), dtype=bool)]
            levels = sorted(pd.unique(np.asarray(present, dtype=object)).tolist())
        else:
            levels = None
        if levels is not None:
            if len(levels) < 2:
                raise DataError(
                    f"binomial response {text!r} is a factor with {len(levels)} level(s); it "
                    "needs two (the first is 'failure', the others 'success', as in R)"
                )
            if isinstance(dtype, pd.CategoricalDtype):  # the first level is category 0
                return (np.asarray(values.codes) != 0).astype(float)
            return (np.asarray(values, dtype=object) != levels[0]).astype(float)
    return response_values(frame, text)
