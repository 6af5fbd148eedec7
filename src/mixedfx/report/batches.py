"""Printed tables of the batch workflows: the comparison of OLS, nuisance regression and the
mixed model (``compare_controls``), and power simulations (``power``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .format import format_pvalue

__all__ = ["comparison_text", "power_text", "term_table"]


def term_table(
    header: list[str], rows: list[list[str]], blank_between_terms: bool = False
) -> list[str]:
    """Lines of a table whose first two columns (term, method) are left-aligned, the next six
    right-aligned and the last (a note) free; optionally a blank line between terms."""
    widths = [max(len(header[c]), *(len(row[c]) for row in rows)) for c in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[c].rjust(widths[c]) for c in range(2, 8)]
        cells.append(row[8])
        return "  ".join(cells).rstrip()

    out = [fmt(header)]
    prev = None
    for row in rows:
        if blank_between_terms and prev is not None and row[0] != prev:
            out.append("")
        out.append(fmt(row))
        prev = row[0]
    return out


def comparison_text(cmp: Any) -> str:
    """A :class:`~mixedfx.ControlComparison` as printed: one block per term, one row per
    approach."""
    t = cmp.table
    lines = [
        f"Controlling for batches: {cmp.formula}",
        "  ols      = " + cmp.labels["ols"] + f": {cmp.fits['ols'].formula}",
        "  nuisance = " + cmp.labels["nuisance"] + f": {cmp.fits['nuisance'].formula}",
        "  mixed    = " + cmp.labels["mixed"] + f"; df: {cmp.mixed_df_method}",
        "",
    ]
    pct = f"{100 * cmp.level:g}%"
    header = [
        "term",
        "approach",
        "Estimate",
        "Std. Error",
        "df",
        "t value",
        "Pr(>|t|)",
        f"{pct} CI",
        "note",
    ]
    rows = []
    for _, r in t.iterrows():
        if np.isfinite(r["estimate"]):
            rows.append(
                [
                    r["term"],
                    r["approach"],
                    f"{r['estimate']:.4g}",
                    f"{r['std_error']:.4g}",
                    "Inf" if math.isinf(r["df"]) else f"{r['df']:.4g}",
                    f"{r['statistic']:.3f}",
                    format_pvalue(r["p_value"]),
                    f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]",
                    r["note"],
                ]
            )
        else:
            rows.append([r["term"], r["approach"], "NA", "NA", "NA", "NA", "NA", "", r["note"]])
        lines += term_table(header, rows, blank_between_terms=True)
    return "\n".join(lines)


def power_text(sim: Any) -> str:
    """A :class:`~mixedfx.PowerResult` as printed: rejection rates with Monte Carlo intervals."""
    t = sim.table
    lines = [
        f"Power by simulation: {sim.formula}",
        f"nsim = {sim.nsim}, alpha = {sim.alpha:g}, seed = {sim.seed}; "
        f"mixed-model df: {sim.mixed_df_method}"
        + (f"; singular mixed fits: {sim.n_singular}" if sim.n_singular else ""),
        "rejection rate = power where the true value is not 0, the false-positive rate "
        "where it is 0; MC interval: Clopper-Pearson 95%",
        "",
    ]
    header = [
        "term",
        "method",
        "true",
        "rejection rate",
        "MC 95% interval",
        "mean estimate",
        "sd estimate",
        "mean SE",
        "note",
    ]
    rows = []
    for _, r in t.iterrows():
        ok = r["n_valid"] > 0
        rows.append(
            [
                r["term"],
                r["method"],
                f"{r['true_value']:.4g}",
                f"{r['rejection_rate']:.3f}" if ok else "NA",
                f"[{r['mc_low']:.3f}, {r['mc_high']:.3f}]" if ok else "",
                f"{r['mean_estimate']:.4g}" if ok else "NA",
                f"{r['sd_estimate']:.4g}" if ok else "NA",
                f"{r['mean_se']:.4g}" if ok else "NA",
                r["note"],
            ]
        )
        lines += term_table(header, rows)
    return "\n".join(lines)
