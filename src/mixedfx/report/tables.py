"""Printable tables of tests: lmerTest's type III F table and lme4's likelihood-ratio table."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .format import SIGNIF_LEGEND, decimals_for, format_pvalue, format_table, signif_stars

__all__ = ["AnovaResult", "AnovaTable"]


def _numbers(values: Any, sig: int) -> list[str]:
    """A numeric column with R's common number of decimals; blanks for NA (R's anova)."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    dec = decimals_for(v[ok], sig) if ok.any() else 0
    return [f"{x:.{dec}f}" if math.isfinite(x) else "" for x in v]


def _pvalues(values: Any) -> list[tuple[str, list[str]]]:
    pv = np.asarray(values, dtype=float)
    return [
        ("", [format_pvalue(x) if math.isfinite(x) else "" for x in pv]),
        ("", [signif_stars(x) if math.isfinite(x) else "" for x in pv]),
    ]


class AnovaTable(pd.DataFrame):
    """lmerTest's type III table (``anova(m)``); prints as R prints it.

    Columns sum_sq, mean_sq, num_df, den_df, f_value, p_value; ``method`` names the
    denominator df (Satterthwaite or Kenward-Roger).
    """

    _metadata: ClassVar[list[str]] = ["method"]

    @property
    def _constructor(self):  # keep the subclass through pandas operations
        return AnovaTable

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, method: str) -> AnovaTable:
        out = cls(frame)
        out.method = method
        return out

    def __str__(self) -> str:
        how = getattr(self, "method", "Satterthwaite")
        head = f"Type III Analysis of Variance Table with {how}'s method"
        if len(self) == 0:
            return head + "\n(no fixed-effect terms to test)"
        cols = [
            ("Sum Sq", _numbers(self["sum_sq"], 5)),
            ("Mean Sq", _numbers(self["mean_sq"], 5)),
            ("NumDF", [str(int(x)) for x in self["num_df"]]),
            ("DenDF", _numbers(self["den_df"], 5)),
            ("F value", _numbers(self["f_value"], 5)),
        ]
        pv = _pvalues(self["p_value"])
        cols += [("Pr(>F)", pv[0][1]), pv[1]]
        return "\n".join([head, format_table(self, cols, strip=True), "---", SIGNIF_LEGEND])

    def __repr__(self) -> str:
        return self.__str__()


class AnovaResult:
    """The table of a likelihood-ratio comparison (lme4's ``anova(m0, m1, ...)``); print it
    for R's layout.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model (sorted by npar): npar, aic, bic, loglik, deviance, chisq, df,
        p_value.
    formulas : dict
        Model name -> formula.
    notes : list of str
        E.g. that REML fits were refitted by ML.
    models : list
        The (ML) models compared, in the table's order.
    """

    def __init__(
        self, table: pd.DataFrame, formulas: dict[str, str], notes: list[str], models: list
    ):
        self.table = table
        self.formulas = formulas
        self.notes = notes
        self.models = models

    def __getitem__(self, key: str) -> pd.Series:
        return self.table[key]

    def __str__(self) -> str:
        t = self.table
        lines = [*self.notes, "Models:"]
        lines += [f"{name}: {f}" for name, f in self.formulas.items()]
        cols: list[tuple[str, list[str]]] = [("npar", [str(int(v)) for v in t["npar"]])]
        for key, head in (("aic", "AIC"), ("bic", "BIC"), ("loglik", "logLik")):
            cols.append((head, _numbers(t[key], 5)))
        cols.append(("deviance", _numbers(t["deviance"], 5)))
        cols.append(("Chisq", _numbers(t["chisq"], 5)))
        cols.append(
            ("Df", ["" if not math.isfinite(x) else str(int(x)) for x in t["df"].to_numpy(float)])
        )
        pv = _pvalues(t["p_value"])
        cols += [("Pr(>Chisq)", pv[0][1]), pv[1]]
        lines.append(format_table(t, cols, strip=True))
        if np.isfinite(t["p_value"].to_numpy(dtype=float)).any():
            lines += ["---", SIGNIF_LEGEND]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))
