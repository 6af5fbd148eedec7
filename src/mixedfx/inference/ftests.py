"""Type III F tests of the fixed-effect terms of a linear mixed model (lmerTest's ``anova(m)``).

Type III hypotheses do not depend on how categorical variables are coded. As lmerTest does,
the fixed-effects columns are rebuilt with sum-to-zero contrasts (R's ``contr.sum``), X_s; in
that coding the hypothesis of a term is "its columns' coefficients are 0", a selection
matrix L_s. With X = X_s T (both span the same space), β_s = T β, so the hypothesis in the
fitted coding is L = L_s T. Each term's L is tested with Satterthwaite's or Kenward-Roger's
denominator df; the table is lmerTest's: Sum Sq, Mean Sq (= F σ̂²), NumDF, DenDF, F value,
Pr(>F). The intercept is not tested.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import formulaic, stats
from ..errors import ModelError
from ..frame.design import FORMULA_CONTEXT
from .kenward_roger import kr_ddf, kr_info
from .satterthwaite import contrast_f_test, satterthwaite_info

__all__ = ["type3_anova", "type3_contrasts"]


def type3_contrasts(model: Any) -> dict[str, np.ndarray]:
    """Term label -> contrast matrix L (rows x p) of its type III hypothesis."""
    fixed = model.design.fixed
    X = fixed.X
    if fixed.dropped:
        raise ModelError(
            "type III tests need a full-rank fixed-effects design; columns were dropped: "
            + ", ".join(fixed.dropped)
        )
    maker = fixed.maker
    if maker.plain is not None:  # numeric columns only: each its own term
        return {
            name: np.eye(X.shape[1])[[j]]
            for j, name in enumerate(fixed.names)
            if name != "(Intercept)"
        }
    frame = model.design.frame.frame
    rhs = model.design.formula.fixed
    factors = [
        c
        for c in frame.columns
        if not c.startswith("(")
        and (isinstance(frame[c].dtype, pd.CategoricalDtype) or frame[c].dtype.kind in "OSUb")
    ]
    summed = rhs
    for c in sorted(factors, key=len, reverse=True):
        summed = re.sub(rf"(?<![\w.`]){re.escape(c)}(?![\w.`(])", f"C({c}, contr.sum)", summed)
    mm = formulaic.model_matrix(summed, frame, context=FORMULA_CONTEXT, na_action="ignore")
    Xs = np.asarray(mm, dtype=float)
    T, *_ = np.linalg.lstsq(Xs, X, rcond=None)
    out: dict[str, np.ndarray] = {}
    for term, sl in mm.model_spec.term_slices.items():
        label = re.sub(r"C\((\w+), contr\.sum\)", r"\1", str(term))
        if label in ("1", "Intercept"):
            continue
        Ls = np.zeros((sl.stop - sl.start, Xs.shape[1]))
        Ls[np.arange(sl.stop - sl.start), np.arange(sl.start, sl.stop)] = 1.0
        L = Ls @ T
        L[np.abs(L) < 1e-10] = 0.0
        out[label] = L
    return out


def type3_anova(model: Any, ddf: str = "satterthwaite") -> tuple[pd.DataFrame, str]:
    """lmerTest's ``anova(m, type = 3, ddf = ...)`` of a fitted linear engine: one row per
    fixed-effect term (sum_sq, mean_sq, num_df, den_df, f_value, p_value), and the name of
    the df method."""
    if not model.gaussian:
        raise ModelError(
            "F tests of a glmer fit's terms are not defined here: compare nested models with "
            "mixedfx.anova(g0, g) (likelihood-ratio test) or read the Wald z tests in "
            "g.coefficients"
        )
    model.require_fit()
    beta = model.beta
    s2 = model.sigma**2
    rows = []
    kr = kr_info(model) if ddf == "kenward-roger" else None
    for label, L in type3_contrasts(model).items():
        if kr is None:
            r = contrast_f_test(satterthwaite_info(model), L, beta)
            q, F, den = r["num_df"], r["f_value"], r["den_df"]
            p = r["p_value"]
        else:
            q = int(np.linalg.matrix_rank(L))
            Lb = L @ beta
            F = float(Lb @ np.linalg.solve(L @ kr.PhiA @ L.T, Lb)) / q
            den = kr_ddf(kr, L)
            p = float(stats.f.sf(F, q, den))
        rows.append((label, F * s2 * q, F * s2, q, den, F, p))
    table = pd.DataFrame(
        [r[1:] for r in rows],
        index=pd.Index([r[0] for r in rows], name="term"),
        columns=["sum_sq", "mean_sq", "num_df", "den_df", "f_value", "p_value"],
    )
    return table, "Kenward-Roger" if kr is not None else "Satterthwaite"
