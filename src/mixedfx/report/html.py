"""HTML renderings of model summaries, for notebooks (Jupyter calls ``_repr_html_``).

The content is the printed summary's (lme4's layout, the same numbers with the same rounding:
:mod:`mixedfx.report.format`), with its tables — fit criteria, scaled residuals, random effects,
fixed effects — as HTML tables instead of aligned text. Every string from the model (formula,
names, levels) is escaped.

Fitted models get their ``_repr_html_`` from :func:`model_html`; a summary object's
``_repr_html_`` is :func:`summary_html` of itself.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from .format import SIGNIF_LEGEND, decimals_for, fmt_num, format_pvalue, signif_stars

__all__ = ["model_html", "summary_html", "table_html"]

_STYLE = (
    "<style>"
    ".mixedfx-summary table{border-collapse:collapse;margin:0.2em 0 0.8em 0}"
    ".mixedfx-summary th,.mixedfx-summary td{padding:0.1em 0.6em;text-align:right;"
    "font-family:monospace}"
    ".mixedfx-summary th{border-bottom:1px solid #999}"
    ".mixedfx-summary td.name,.mixedfx-summary th.name{text-align:left}"
    ".mixedfx-summary h4{margin:0.6em 0 0.2em 0}"
    "</style>"
)


def _e(text: Any) -> str:
    return html.escape(str(text))


def table_html(
    headers: list[str], rows: list[list[str]], n_name_columns: int = 1, caption: str = ""
) -> str:
    """An HTML table of already formatted strings; the first ``n_name_columns`` columns are
    names (left-aligned), the others numbers (right-aligned)."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")

    def cell(tag: str, j: int, text: str) -> str:
        cls = ' class="name"' if j < n_name_columns else ""
        return f"<{tag}{cls}>{_e(text)}</{tag}>"

    out.append("<thead><tr>" + "".join(cell("th", j, h) for j, h in enumerate(headers)))
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(cell("td", j, s) for j, s in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# ---------------------------------------------------------------- the tables
def _criteria(model: Any) -> str:
    if model.engine.gaussian and model.REML:
        return f"<p>REML criterion at convergence: {model.objective:.1f}</p>"
    heads = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    vals = [f"{v:.1f}" for v in (model.aic, model.bic, model.loglik, model.deviance)]
    return table_html(heads, [[*vals, str(int(model.df_resid))]], n_name_columns=0)


def _residuals(q: np.ndarray) -> str:
    dq = decimals_for(q, 4)
    heads = ["Min", "1Q", "Median", "3Q", "Max"]
    return "<h4>Scaled residuals</h4>" + table_html(
        heads, [[f"{v:.{dq}f}" for v in q]], n_name_columns=0
    )


def _random(model: Any, residual: bool) -> str:
    covs = model.covariance_matrices()
    all_var = [float(v) for S in covs for v in np.diag(S)]
    if residual:
        all_var.append(model.sigma**2)
    dv = decimals_for(np.asarray(all_var), 4)
    dsd = decimals_for(np.sqrt(np.asarray(all_var)), 4)
    max_k = max([t.k for t in model.design.terms] + [1])
    rows: list[list[str]] = []
    for t, S in zip(model.design.terms, covs, strict=True):
        sd = np.sqrt(np.diag(S))
        for i, name in enumerate(t.columns):
            corr = []
            for j in range(i):
                c = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else math.nan
                corr.append("NaN" if math.isnan(c) else f"{c:.2f}")
            corr += [""] * (max_k - 1 - len(corr))
            group = t.vc_name if i == 0 else ""
            rows.append([group, name, fmt_num(S[i, i], dv), fmt_num(sd[i], dsd), *corr])
    if residual:
        rows.append(
            ["Residual", "", fmt_num(model.sigma**2, dv), fmt_num(model.sigma, dsd)]
            + [""] * (max_k - 1)
        )
    heads = ["Groups", "Name", "Variance", "Std.Dev."] + (
        ["Corr"] + [""] * (max_k - 2) if max_k > 1 else []
    )
    groups = "; ".join(f"{_e(g)}, {n}" for g, n in model.ngroups.items())
    return (
        "<h4>Random effects</h4>"
        + table_html(heads, rows, n_name_columns=2)
        + f"<p>Number of obs: {model.nobs}, groups: {groups}</p>"
    )


def _fixed(coef: Any, stat_name: str) -> str:
    est = coef["estimate"].to_numpy()
    se = coef["std_error"].to_numpy()
    d_est = decimals_for(np.concatenate([est, se]), 4)
    heads = ["", "Estimate", "Std. Error"]
    cols = [[fmt_num(x, d_est) for x in est], [fmt_num(x, d_est) for x in se]]
    if "df" in coef:
        df = coef["df"].to_numpy()
        heads.append("df")
        cols.append([fmt_num(x, decimals_for(df, 4)) for x in df])
    stat = np.round(coef["statistic"].to_numpy(), 3)
    d_stat = min(3, decimals_for(stat, 4))
    heads.append(stat_name)
    cols.append([fmt_num(x, d_stat) for x in stat])
    legend = ""
    if "p_value" in coef:
        pv = coef["p_value"].to_numpy()
        heads += ["Pr(>|z|)" if stat_name == "z value" else "Pr(>|t|)", ""]
        cols += [[format_pvalue(p) for p in pv], [signif_stars(p) for p in pv]]
        legend = f"<p><small>{_e(SIGNIF_LEGEND)}</small></p>"
    rows = [[str(name), *(c[i] for c in cols)] for i, name in enumerate(coef.index)]
    return "<h4>Fixed effects</h4>" + table_html(heads, rows) + legend


# ---------------------------------------------------------------- public
def summary_html(summary: Any) -> str:
    """The summary (lme4's layout) as HTML: heading lines, then the tables."""
    m = summary.model
    text = str(summary)
    head = text.split("\n\n", 1)[0].splitlines()
    parts = [_STYLE, '<div class="mixedfx-summary">']
    parts.append("<p><strong>" + _e(head[0]) + "</strong>")
    parts += ["<br>" + _e(line.strip()) for line in head[1:]]
    parts.append("</p>")
    parts.append(_criteria(m))
    parts.append(_residuals(np.asarray(summary.scaled_residuals)))
    gaussian = m.engine.gaussian
    parts.append(_random(m, residual=gaussian or m.engine.has_dispersion))
    if gaussian:
        stat = "t value"
    else:
        stat = "t value" if m.engine.has_dispersion else "z value"
    parts.append(_fixed(summary.coefficients, stat))
    notes = []
    if m.design.fixed.dropped:
        notes.append(
            "fixed-effect model matrix is rank deficient so dropping "
            f"{len(m.design.fixed.dropped)} columns / coefficients"
        )
    if m.is_singular:
        notes.append("boundary (singular) fit: see help('isSingular')")
    notes += [f"convergence warning: {msg}" for msg in m.convergence_messages]
    if notes:
        parts.append("<p>" + "<br>".join(_e(n) for n in notes) + "</p>")
    parts.append("</div>")
    return "".join(parts)


def model_html(model: Any) -> str:
    """A fitted model as its summary in HTML; an unfitted one as its text representation."""
    if not model.engine.fitted:
        return f"<pre>{_e(repr(model))}</pre>"
    return summary_html(model.summary())
