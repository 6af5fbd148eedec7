"""The summary of an approximate fit (method of moments), labelled as such.

lme4's layout where it applies (formula, scaled residuals, random effects, fixed effects), with
what differs said in the header and the tables: no likelihood (no REML criterion, logLik, AIC
or BIC), variance components with their bootstrap standard errors, fixed effects with GLS
standard errors and Wald z tests, and why the method was chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .format import decimals_for, fmt_num, format_coef_table, format_table

__all__ = ["ApproximateSummary"]

HEADER = (
    "Linear mixed model fit by the method of moments: APPROXIMATE\n"
    " variance components: moments of within-level sums of squares (Gao & Owen 2017, 2020)\n"
    " fixed effects, conditional modes: GLS by preconditioned conjugate gradients (as the\n"
    " backfitting of Ghosh, Hastie & Owen 2022); no likelihood: no REML criterion, logLik,\n"
    " AIC or BIC"
)


class ApproximateSummary:
    """Printable summary of a fit by the method of moments; tables as attributes."""

    def __init__(self, model: Any, scaled_residuals: Any = None):
        self.model = model
        self.coefficients: pd.DataFrame = model.coefficients
        self.variance_components: pd.DataFrame = model.variance_components
        if scaled_residuals is None:
            r = np.asarray(model.residuals) / model.sigma
            scaled_residuals = np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0])
        self.scaled_residuals = np.asarray(scaled_residuals, dtype=float)

    def __str__(self) -> str:
        m = self.model
        lines = [HEADER, f"Formula: {m.formula}"]
        if getattr(m, "data_name", None):
            lines.append(f"   Data: {m.data_name}")
        note = getattr(m.engine, "method_note", "")
        if note:
            lines.append(f" Method: {note}")
        fr = m.design.frame
        if fr.n_dropped:
            lines.append(f"Rows dropped for missing values: {fr.n_dropped} of {fr.n_original}")
        lines += ["", "Scaled residuals: "]
        q = self.scaled_residuals
        dq = decimals_for(q, 4)
        heads = ["Min", "1Q", "Median", "3Q", "Max"]
        strs = [f"{v:.{dq}f}" for v in q]
        w = [max(*map(len, heads), *map(len, strs)) + 1] * 5
        lines.append("".join(h.rjust(wi) for h, wi in zip(heads, w, strict=True)))
        lines.append("".join(s.rjust(wi) for s, wi in zip(strs, w, strict=True)))
        vc = self.variance_components
        var = vc["variance"].to_numpy()
        se = vc["std_error"].to_numpy()
        dv = decimals_for(np.concatenate([var, se[np.isfinite(se)]]), 4)
        dsd = decimals_for(np.sqrt(var), 4)
        names = list(vc.index)
        w0 = max(len(n) for n in names)
        names = [n.ljust(w0) for n in names]
        cols = [
            ("Name       ", ["(Intercept)"] * (len(names) - 1) + [" " * 11]),
            ("Variance", [fmt_num(v, dv) for v in var]),
            ("Std.Dev.", [fmt_num(float(np.sqrt(v)), dsd) for v in var]),
            ("Std.Err.(Var)", [fmt_num(s, dv) for s in se]),
        ]
        lines += ["", "Random effects:", format_table(names, cols, index_name="Groups")]
        nb = getattr(m.engine, "nboot", 0)
        if nb:
            lines.append(
                f" (standard errors of the variances: parametric bootstrap, {nb} replicates)"
            )
        groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
        lines.append(f"Number of obs: {m.nobs}, groups:  {groups}")
        lines += [
            "",
            "Fixed effects (GLS at the estimated variances; Wald z tests):",
            format_coef_table(self.coefficients, "z value"),
        ]
        for msg in m.convergence_messages:
            lines.append(f"note: {msg}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))
