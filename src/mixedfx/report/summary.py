"""Printed summaries in lme4's (and lmerTest's) layout, so users can compare line by line."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import html
from .format import (
    abbreviate,
    decimals_for,
    fmt_num,
    format_coef_table,
    header_lines,
    quantile_lines,
)

__all__ = ["GlmerSummary", "LmerSummary", "model_summary", "varcorr_text"]


def fit_statistics_lines(m: Any) -> list[str]:
    """lme4's AIC, BIC, logLik, deviance and df.resid block."""
    strs = [f"{v:.1f}" for v in (m.aic, m.bic, m.loglik, m.deviance)] + [str(int(m.df_resid))]
    return header_lines(["AIC", "BIC", "logLik", "deviance", "df.resid"], strs)


def model_summary(model: Any, ddf: str = "satterthwaite") -> Any:
    """The summary of a fitted model in its kind's layout: lmerMod (with lmerTest's t tests
    as ``ddf`` asks) for linear mixed models, glmerMod for generalized ones."""
    if model.engine.gaussian:
        return LmerSummary(model, ddf=ddf)
    return GlmerSummary(model)


def varcorr_text(model: Any, residual: bool = True) -> str:
    """The random-effects table: Groups, Name, Variance, Std.Dev., Corr (and the Residual
    row unless ``residual`` is False, as for GLMMs without a dispersion parameter)."""
    rows: list[list[str]] = []
    all_var = []
    for S in model.covariance_matrices():
        all_var.extend(np.diag(S).tolist())
    if residual:
        all_var.append(model.sigma**2)
    dv = decimals_for(np.asarray(all_var), 4)
    dsd = decimals_for(np.sqrt(np.asarray(all_var)), 4)
    max_k = 1
    for t, S in zip(model.design.terms, model.covariance_matrices(), strict=True):
        sd = np.sqrt(np.diag(S))
        max_k = max(max_k, t.k)
        for i, name in enumerate(t.columns):
            corr = []
            for j in range(i):
                c = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else float("nan")
                corr.append("NaN" if math.isnan(c) else f"{c:.2f}")
            rows.append(
                [
                    t.vc_name if i == 0 else "",
                    name,
                    fmt_num(S[i, i], dv),
                    fmt_num(sd[i], dsd),
                    *corr,
                ]
            )
    if residual:
        rows.append(["Residual", "", fmt_num(model.sigma**2, dv), fmt_num(model.sigma, dsd)])
    header = ["Groups", "Name", "Variance", "Std.Dev.", *(["Corr"] if max_k > 1 else [])]
    ncol = max(len(header), *(len(r) for r in rows))
    rows = [r + [""] * (ncol - len(r)) for r in rows]
    header = header + [""] * (ncol - len(header))
    widths = [max(len(header[c]), *(len(r[c]) for r in rows)) for c in range(ncol)]
    # as R: numbers right-aligned among themselves, the column left-aligned under its header
    numw = [max((len(r[c]) for r in rows), default=0) for c in range(ncol)]

    def line(r: list[str], is_header: bool = False) -> str:
        parts = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        for c in range(2, ncol):
            cell = r[c] if is_header else r[c].rjust(numw[c])
            parts.append(cell.ljust(widths[c]))
        return (" " + " ".join(parts)).rstrip()

    return "\n".join([line(header, True), *(line(r) for r in rows)])


def _fixef_corr_text(model: Any) -> str:
    V = model.vcov.to_numpy()
    names = list(model.vcov.index)
    if len(names) < 2:
        return ""
    if len(names) > 12:
        return (
            f"\nCorrelation matrix not shown by default, as p = {len(names)} > 12.\n"
            "Use model.vcov to see it."
        )
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    abbr = [abbreviate(n) for n in names]
    rows = []
    for i in range(1, len(names)):
        rows.append([f"{C[i, j]:.3f}" for j in range(i)])
    w0 = max(len(n) for n in names[1:])
    widths = [
        max(len(abbr[j]), *(len(r[j]) for r in rows if j < len(r))) for j in range(len(names) - 1)
    ]
    lines = [" " * w0 + "".join(" " + abbr[j].ljust(widths[j]) for j in range(len(names) - 1))]
    for i, r in enumerate(rows, start=1):
        lines.append(
            names[i].ljust(w0) + "".join(" " + r[j].rjust(widths[j]) for j in range(len(r)))
        )
    return "\nCorrelation of Fixed Effects:\n" + "\n".join(line.rstrip() for line in lines)


class _Printed:
    """A summary shows its text everywhere: repr, IPython's pretty printer, and (as tables)
    a notebook's HTML."""

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return html.summary_html(self)


class LmerSummary(_Printed):
    """lme4's ``summary(lmer(...))``, printable; tables as attributes."""

    def __init__(self, model: Any, ddf: str = "satterthwaite", scaled_residuals: Any = None):
        self.model = model
        self.ddf = ddf
        if ddf == "satterthwaite":
            coef = model.coefficients
        elif ddf == "kenward-roger":
            coef = model.coefficients_kr
        else:  # lme4: no df, no p-values
            coef = model.coefficients[["estimate", "std_error", "statistic"]]
        self.coefficients: pd.DataFrame = coef
        self.varcorr: pd.DataFrame = model.varcorr
        if scaled_residuals is not None:  # computed elsewhere (rows on Dask)
            self.scaled_residuals = np.asarray(scaled_residuals, dtype=float)
            return
        r = model.residuals
        if model.design.weights is not None:
            r = r * np.sqrt(model.design.weights)
        self.scaled_residuals = np.quantile(r / model.sigma, [0, 0.25, 0.5, 0.75, 1.0])

    def __str__(self) -> str:
        m = self.model
        method = "REML" if m.REML else "maximum likelihood"
        if "df" in self.coefficients:
            how = "Kenward-Roger's" if self.ddf == "kenward-roger" else "Satterthwaite's"
            extra = f". t-tests use {how} method [lmerModLmerTest]"
        else:
            extra = " ['lmerMod']" if m.REML else "  ['lmerMod']"
        lines = [f"Linear mixed model fit by {method}{extra}", f"Formula: {m.formula}"]
        if m.data_name:
            lines.append(f"   Data: {m.data_name}")
        if m.design.weights is not None:
            lines.append("Weights: (prior weights)")
        if m.design.frame.n_dropped:
            fr = m.design.frame
            lines.append(f"Rows dropped for missing values: {fr.n_dropped} of {fr.n_original}")
        lines.append("")
        if m.REML:
            lines.append(f"REML criterion at convergence: {m.objective:.1f}")
        else:
            lines += fit_statistics_lines(m)
        lines += ["", "Scaled residuals: "]
        q = self.scaled_residuals
        lines += quantile_lines(q)
        lines += ["", "Random effects:", varcorr_text(m)]
        groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
        lines.append(f"Number of obs: {m.nobs}, groups:  {groups}")
        lines += ["", "Fixed effects:", format_coef_table(self.coefficients, "t value")]
        corr = _fixef_corr_text(m)
        if corr:
            lines.append(corr)
        if m.design.fixed.dropped:
            lines.append(
                f"fit warnings:\nfixed-effect model matrix is rank deficient so dropping "
                f"{len(m.design.fixed.dropped)} columns / coefficients"
            )
        if m.is_singular:
            lines.append("optimizer (bobyqa) convergence code: 0 (OK)")
            lines.append("boundary (singular) fit: see help('isSingular')")
        for msg in m.convergence_messages:
            lines.append(f"convergence warning: {msg}")
        return "\n".join(lines)


class GlmerSummary(_Printed):
    """lme4's ``summary(glmer(...))``, printable; tables as attributes."""

    def __init__(self, model: Any, scaled_residuals: Any = None):
        self.model = model
        self.coefficients: pd.DataFrame = model.coefficients
        self.varcorr: pd.DataFrame = model.varcorr
        if scaled_residuals is not None:  # computed elsewhere (rows on Dask)
            self.scaled_residuals = np.asarray(scaled_residuals, dtype=float)
            return
        r = model.resid("pearson") / model.sigma
        self.scaled_residuals = np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0])

    def __str__(self) -> str:
        m = self.model
        fam = m.family
        if m.nAGQ > 1:
            how = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {m.nAGQ}"
        elif m.nAGQ == 1:
            how = "Laplace Approximation"
        else:
            how = "nAGQ = 0 (PIRLS for the fixed effects)"
        lines = [
            f"Generalized linear mixed model fit by maximum likelihood ({how}) ['glmerMod']",
            f" Family: {fam.label}  ( {fam.link.name} )",
            f"Formula: {m.formula}",
        ]
        if m.design.weights is not None:
            lines.append("Weights: (prior weights)")
        if m.design.frame.n_dropped:
            fr = m.design.frame
            lines.append(f"Rows dropped for missing values: {fr.n_dropped} of {fr.n_original}")
        lines.append("")
        lines += fit_statistics_lines(m)
        lines += ["", "Scaled residuals: "]
        q = self.scaled_residuals
        lines += quantile_lines(q)
        lines += ["", "Random effects:", varcorr_text(m, residual=fam.has_dispersion)]
        groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
        lines.append(f"Number of obs: {m.nobs}, groups:  {groups}")
        stat = "t value" if fam.has_dispersion else "z value"
        lines += ["", "Fixed effects:", format_coef_table(self.coefficients, stat)]
        corr = _fixef_corr_text(m)
        if corr:
            lines.append(corr)
        if m.is_singular:
            lines.append("boundary (singular) fit: see help('isSingular')")
        for msg in m.convergence_messages:
            lines.append(f"convergence warning: {msg}")
        return "\n".join(lines)
