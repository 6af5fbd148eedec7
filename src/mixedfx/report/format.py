"""Numbers and tables formatted as R prints them (``format``, ``format.pval``,
``printCoefmat``, ``abbreviate``): the primitives every printer in this layer uses."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

__all__ = [
    "SIGNIF_LEGEND",
    "abbreviate",
    "decimals_for",
    "fmt_num",
    "format_coef_table",
    "format_pvalue",
    "format_table",
    "header_lines",
    "quantile_lines",
    "signif_stars",
]


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


def signif_stars(p: float) -> str:
    if p is None or math.isnan(p):
        return ""
    return (
        "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else " "
    )


def fmt_num(x: float, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NA"
    return f"{x:.{digits}f}"


def decimals_for(values: np.ndarray, sig: int = 4) -> int:
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
    df: pd.DataFrame | list[str],
    columns: list[tuple[str, list[str]]],
    index_name: str = "",
    strip: bool = False,
) -> str:
    """Right-aligned text table as R prints a data frame or matrix: row names (``df``'s
    index, or a list) left-aligned, ``columns`` = [(header, formatted strings)] right-aligned;
    ``strip`` drops trailing blanks of each line."""
    idx = [str(i) for i in (df if isinstance(df, list) else df.index)]
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
    return "\n".join(line.rstrip() for line in lines) if strip else "\n".join(lines)


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def format_coef_table(coef: pd.DataFrame, stat_name: str = "t value") -> str:
    """Fixed-effects table as lme4/lmerTest print it."""
    est = coef["estimate"].to_numpy()
    se = coef["std_error"].to_numpy()
    stat = coef["statistic"].to_numpy()
    d_est = decimals_for(np.concatenate([est, se]), 4)
    cols: list[tuple[str, list[str]]] = [
        ("Estimate", [fmt_num(x, d_est) for x in est]),
        ("Std. Error", [fmt_num(x, d_est) for x in se]),
    ]
    if "df" in coef.columns:
        df_ = coef["df"].to_numpy()
        cols.append(("df", [fmt_num(x, max(decimals_for(df_, 4), 0)) for x in df_]))
    # R's printCoefmat: test statistics rounded to digits - 1 = 3 decimals, then formatted
    stat_r = np.round(stat, 3)
    d_stat = min(3, decimals_for(stat_r, 4))
    cols.append((stat_name, [fmt_num(x, d_stat) for x in stat_r]))
    pcol = "p_value" if "p_value" in coef.columns else None
    if pcol:
        pv = coef[pcol].to_numpy()
        label = "Pr(>|z|)" if stat_name == "z value" else "Pr(>|t|)"
        cols.append((label, [format_pvalue(p) for p in pv]))
        cols.append(("", [signif_stars(p) for p in pv]))
    text = format_table(coef, cols)
    if pcol:
        text += "\n---\n" + SIGNIF_LEGEND
    return text


def quantile_lines(q: np.ndarray) -> list[str]:
    """The five-number summary of residuals as R prints it: a header line (Min 1Q Median 3Q
    Max) and a line of values with a common number of decimals."""
    heads = ["Min", "1Q", "Median", "3Q", "Max"]
    dq = decimals_for(q, 4)
    strs = [f"{v:.{dq}f}" for v in q]
    w = max(*map(len, heads), *map(len, strs)) + 1
    return ["".join(h.rjust(w) for h in heads), "".join(s.rjust(w) for s in strs)]


def header_lines(heads: list[str], values: list[str]) -> list[str]:
    """A row of labels over a row of values, right-aligned to a common width (lme4's
    AIC/BIC/logLik/deviance/df.resid block)."""
    w = max(*map(len, heads), *map(len, values)) + 1
    return ["".join(h.rjust(w) for h in heads), "".join(s.rjust(w) for s in values)]
