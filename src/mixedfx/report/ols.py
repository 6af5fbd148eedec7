"""R's printouts of a least-squares fit: ``summary.lm`` and ``anova.lm``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from .format import (
    SIGNIF_LEGEND,
    format_coef_table,
    format_pvalue,
    format_table,
    quantile_lines,
    signif_stars,
)

__all__ = ["OLSAnova", "OLSSummary"]


class OLSAnova:
    """The table of :meth:`OLSModel.anova`; print it for R's layout, or read ``table``."""

    def __init__(self, table: pd.DataFrame, formulas: list[str]):
        self.table = table
        self.formulas = formulas

    def __str__(self) -> str:
        t = self.table

        def col(x: np.ndarray, fmt: str) -> list[str]:
            return ["" if not np.isfinite(v) else format(v, fmt) for v in x]

        cols = [
            ("Res.Df", col(t["res_df"].to_numpy(), ".0f")),
            ("RSS", col(t["rss"].to_numpy(), ".6g")),
            ("Df", col(t["df"].to_numpy(), ".0f")),
            ("Sum of Sq", col(t["sum_sq"].to_numpy(), ".6g")),
            ("F", col(t["F"].to_numpy(), ".4f")),
            ("Pr(>F)", ["" if not np.isfinite(p) else format_pvalue(p) for p in t["p_value"]]),
            ("", ["" if not np.isfinite(p) else signif_stars(p) for p in t["p_value"]]),
        ]
        lines = ["Analysis of Variance Table", ""]
        lines += [f"Model {i}: {f}" for i, f in enumerate(self.formulas, start=1)]
        lines.append(format_table(t, cols))
        if np.isfinite(t["p_value"]).any():
            lines += ["---", SIGNIF_LEGEND]
        return "\n".join(lines)

    __repr__ = __str__


class OLSSummary:
    """R's ``summary.lm`` printout; the tables are attributes."""

    def __init__(self, model: Any):
        self.model = model
        self.coefficients = model.coefficients
        r = model.residuals
        if model.design.weights is not None:
            r = r * np.sqrt(model.design.weights)
        self.residual_quantiles = np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0])

    def __str__(self) -> str:
        m = self.model
        lines = ["Linear model fit by least squares", f"Formula: {m.formula}"]
        if m.design.weights is not None:
            lines.append("Weights: (prior weights)")
        if m.design.frame.n_dropped:
            lines.append(
                f"Rows dropped for missing values: {m.design.frame.n_dropped} of "
                f"{m.design.frame.n_original}"
            )
        lines += ["", "Residuals:", *quantile_lines(self.residual_quantiles)]
        coef = self.coefficients.drop(columns=["df"])
        head = "Coefficients:"
        if m.dropped:
            k = len(m.dropped)
            head = (
                f"Coefficients: ({k} not defined because of singularities: {', '.join(m.dropped)})"
            )
        lines += ["", head, format_coef_table(coef, "t value"), ""]
        lines.append(f"Residual standard error: {m.sigma:.4g} on {m.df_resid} degrees of freedom")
        f, d1, d2 = m.fstatistic
        if d1 > 0:
            lines.append(
                f"Multiple R-squared:  {m.r_squared:.4g},\tAdjusted R-squared:  "
                f"{m.adj_r_squared:.4g} "
            )
            lines.append(
                f"F-statistic: {f:.4g} on {d1} and {d2} DF,  p-value: "
                f"{format_pvalue(float(stats.f.sf(f, d1, d2)))}"
            )
        return "\n".join(lines)

    __repr__ = __str__
