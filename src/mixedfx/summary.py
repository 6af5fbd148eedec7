"""Printed summaries in lme4's (and lmerTest's) layout, so users can compare line by line."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["GlmerSummary", "LmerSummary", "abbreviate", "format_coef_table", "format_pvalue"]


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate``: drop lower-case vowels from the right (never the first
    character), then lower-case letters, until ``minlength`` characters remain."""
    chars = list(name)
    if len(chars) <= minlength:
        return name
    for pattern in ("[aeiou]", "[a-z]"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if re.fullmatch(pattern, chars[i]) and chars[i - 1] != " ":
                del chars[i]
            i -= 1
        if len(chars) <= minlength:
            break
    return "".join(chars)


def format_pvalue(p: float) -> str:
    """R's ``format.pval`` with 3 significant digits and ``< 2e-16`` for tiny values."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "NA"
    if p < 2.2e-16:
        return "< 2e-16"
    if p < 1e-4:
        return f"{p:.2e}"  # R: 1.47e-09 (two-digit exponent)
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.6f}".rstrip("0")


def _signif_stars(p: float) -> str:
    if p is None or math.isnan(p):
        return ""
    return (
        "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else " "
    )


def _fmt_num(x: float, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NA"
    return f"{x:.{digits}f}"


def _decimals_for(values: np.ndarray, sig: int = 4) -> int:
    """Decimals R prints for a numeric column with ``digits = sig``: the most decimals any
    element needs to show ``sig`` significant digits (trailing zeros dropped), at most 15."""
    v = np.abs(np.asarray(values, dtype=float))
    dec = 0
    for x in v[np.isfinite(v) & (v > 0)].tolist():
        text = f"{x:.{sig}g}"
        if "e" in text:
            mant, exp = text.split("e")
            dec = max(dec, -int(exp) + (len(mant.split(".")[1]) if "." in mant else 0))
        elif "." in text:
            dec = max(dec, len(text.split(".")[1]))
    return min(dec, 15)


def format_table(
    df: pd.DataFrame, columns: list[tuple[str, list[str]]], index_name: str = ""
) -> str:
    """Right-aligned text table: ``columns`` = [(header, formatted strings)]."""
    idx = [str(i) for i in df.index]
    w0 = max([len(index_name), *map(len, idx)]) if idx else len(index_name)
    widths = [max(len(h), *(len(s) for s in vals)) if vals else len(h) for h, vals in columns]
    lines = [
        index_name.ljust(w0)
        + "".join(" " + h.rjust(w) for (h, _), w in zip(columns, widths, strict=True))
    ]
    for r, name in enumerate(idx):
        lines.append(
            name.ljust(w0)
            + "".join(" " + vals[r].rjust(w) for (_, vals), w in zip(columns, widths, strict=True))
        )
    return "\n".join(lines)


def format_coef_table(coef: pd.DataFrame, stat_name: str = "t value") -> str:
    """Fixed-effects table as lme4/lmerTest print it."""
    est = coef["estimate"].to_numpy()
    se = coef["std_error"].to_numpy()
    stat = coef["statistic"].to_numpy()
    d_est = _decimals_for(np.concatenate([est, se]), 4)
    cols: list[tuple[str, list[str]]] = [
        ("Estimate", [_fmt_num(x, d_est) for x in est]),
        ("Std. Error", [_fmt_num(x, d_est) for x in se]),
    ]
    if "df" in coef.columns:
        df_ = coef["df"].to_numpy()
        cols.append(("df", [_fmt_num(x, max(_decimals_for(df_, 4), 0)) for x in df_]))
    # R's printCoefmat: test statistics rounded to digits - 1 = 3 decimals, then formatted
    stat_r = np.round(stat, 3)
    d_stat = min(3, _decimals_for(stat_r, 4))
    cols.append((stat_name, [_fmt_num(x, d_stat) for x in stat_r]))
    pcol = "p_value" if "p_value" in coef.columns else None
    if pcol:
        pv = coef[pcol].to_numpy()
        label = "Pr(>|z|)" if stat_name == "z value" else "Pr(>|t|)"
        cols.append((label, [format_pvalue(p) for p in pv]))
        cols.append(("", [_signif_stars(p) for p in pv]))
    text = format_table(coef, cols)
    if pcol:
        text += "\n---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
    return text


def varcorr_text(model: Any, residual: bool = True) -> str:
    """The random-effects table: Groups, Name, Variance, Std.Dev., Corr (and the Residual
    row unless ``residual`` is False, as for GLMMs without a dispersion parameter)."""
    rows: list[list[str]] = []
    all_var = []
    for S in model.covariance_matrices():
        all_var.extend(np.diag(S).tolist())
    if residual:
        all_var.append(model.sigma**2)
    dv = _decimals_for(np.asarray(all_var), 4)
    dsd = _decimals_for(np.sqrt(np.asarray(all_var)), 4)
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
                    _fmt_num(S[i, i], dv),
                    _fmt_num(sd[i], dsd),
                    *corr,
                ]
            )
    if residual:
        rows.append(["Residual", "", _fmt_num(model.sigma**2, dv), _fmt_num(model.sigma, dsd)])
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


class LmerSummary:
    """lme4's ``summary(lmer(...))``, printable; tables as attributes."""

    def __init__(self, model: Any, ddf: str = "satterthwaite"):
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
            vals = [m.aic, m.bic, m.loglik, m.deviance, m.df_resid]
            heads = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
            strs = [f"{v:.1f}" for v in vals[:4]] + [str(int(vals[4]))]
            w = [max(*map(len, heads), *map(len, strs)) + 1] * 5
            lines.append("".join(h.rjust(wi) for h, wi in zip(heads, w, strict=True)))
            lines.append("".join(s.rjust(wi) for s, wi in zip(strs, w, strict=True)))
        lines += ["", "Scaled residuals: "]
        q = self.scaled_residuals
        heads = ["Min", "1Q", "Median", "3Q", "Max"]
        dq = _decimals_for(q, 4)
        strs = [f"{v:.{dq}f}" for v in q]
        w = [max(*map(len, heads), *map(len, strs)) + 1] * 5
        lines.append("".join(h.rjust(wi) for h, wi in zip(heads, w, strict=True)))
        lines.append("".join(s.rjust(wi) for s, wi in zip(strs, w, strict=True)))
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

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class GlmerSummary:
    """lme4's ``summary(glmer(...))``, printable; tables as attributes."""

    def __init__(self, model: Any):
        self.model = model
        self.coefficients: pd.DataFrame = model.coefficients
        self.varcorr: pd.DataFrame = model.varcorr
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
            f" Family: {fam.name}  ( {fam.link.name} )",
            f"Formula: {m.formula}",
        ]
        if m.design.weights is not None:
            lines.append("Weights: (prior weights)")
        if m.design.frame.n_dropped:
            fr = m.design.frame
            lines.append(f"Rows dropped for missing values: {fr.n_dropped} of {fr.n_original}")
        lines.append("")
        vals = [m.aic, m.bic, m.loglik, m.deviance]
        heads = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        strs = [f"{v:.1f}" for v in vals] + [str(int(m.df_resid))]
        w = [max(*map(len, heads), *map(len, strs)) + 1] * 5
        lines.append("".join(h.rjust(wi) for h, wi in zip(heads, w, strict=True)))
        lines.append("".join(s.rjust(wi) for s, wi in zip(strs, w, strict=True)))
        lines += ["", "Scaled residuals: "]
        q = self.scaled_residuals
        qh = ["Min", "1Q", "Median", "3Q", "Max"]
        dq = _decimals_for(q, 4)
        qs = [f"{v:.{dq}f}" for v in q]
        w = [max(*map(len, qh), *map(len, qs)) + 1] * 5
        lines.append("".join(h.rjust(wi) for h, wi in zip(qh, w, strict=True)))
        lines.append("".join(s.rjust(wi) for s, wi in zip(qs, w, strict=True)))
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

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))
