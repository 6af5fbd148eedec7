"""Marginal means and their contrasts, printed as R's emmeans prints them.

:class:`EmmeansResult` wraps :class:`mixedfx.inference.emmeans.MarginalMeans` (its table, linear
functions and contrasts) and :class:`ContrastResult` wraps
:class:`mixedfx.inference.emmeans.Contrasts`; both print emmeans' layout: one block per ``by``
group, factor levels left-aligned, numbers to 3 significant digits (R's ``format(x, digits =
3)``), t and z ratios to 3 decimals, p-values to 4 decimals (``<.0001`` below), then the notes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..inference.emmeans import Contrasts, MarginalMeans

__all__ = ["ContrastResult", "EmmeansResult", "format_emmeans_table"]

_HEADERS = {
    "t_ratio": "t.ratio",
    "z_ratio": "z.ratio",
    "p_value": "p.value",
    "odds_ratio": "odds.ratio",
}


def _numbers(values: Any, sig: int = 3) -> list[str]:
    """A numeric column as R's ``format(x, digits = sig)``: fixed notation with the decimals
    the element needing most shows ``sig`` significant digits, or scientific notation when
    that is narrower (R's rule, ``scipen = 0``)."""
    v = np.asarray(values, dtype=float)
    fin = v[np.isfinite(v)]
    nz = fin[fin != 0]
    fixed_dec, use_sci, mant = 0, False, 1
    if nz.size:
        nsig, expo = [], []
        for x in np.abs(nz).tolist():
            m_text, e_text = f"{x:.{sig - 1}e}".split("e")
            nsig.append(len(m_text.replace(".", "").rstrip("0")) or 1)
            expo.append(int(e_text))
        rgt = max(max(0, n - 1 - e) for n, e in zip(nsig, expo, strict=True))
        left = max(max(1, e + 1) for e in expo)
        neg = int(bool(np.any(fin < 0)))
        fixed_dec = min(rgt, 15)
        fixed_w = neg + left + (fixed_dec + 1 if fixed_dec else 0)
        mant = max(nsig)
        expw = 3 if any(abs(e) >= 100 for e in expo) else 2
        sci_w = neg + (mant + 1 if mant > 1 else mant) + 2 + expw
        use_sci = fixed_w > sci_w
    out = []
    for x in v.tolist():
        if math.isnan(x):
            out.append("NA")
        elif math.isinf(x):
            out.append("Inf" if x > 0 else "-Inf")
        elif use_sci:
            out.append(f"{x:.{mant - 1}e}")
        else:
            out.append(f"{x:.{fixed_dec}f}")
    return out


def _pvalues(values: Any) -> list[str]:
    out = []
    for p in np.asarray(values, dtype=float).tolist():
        if math.isnan(p):
            out.append("NA")
        elif p < 1e-4:
            out.append("<.0001")
        else:
            out.append(f"{p:.4f}")
    return out


def _ratios(values: Any) -> list[str]:
    out = []
    for x in np.asarray(values, dtype=float).tolist():
        out.append("NA" if math.isnan(x) else f"{x:.3f}")
    return out


def format_emmeans_table(
    table: pd.DataFrame, by: Sequence[str], ci_names: tuple[str, str] | None = None
) -> str:
    """emmeans' printed table: one block per ``by`` combination ("temperature = 175:").

    Level columns (and ``contrast``) are left-aligned, numbers right-aligned; ``lower`` and
    ``upper`` are printed as ``ci_names`` (``lower.CL``/``upper.CL`` or ``asymp.LCL``/
    ``asymp.UCL``).
    """
    by = list(by)
    cols = [c for c in table.columns if c not in by]
    if by:
        keys = table[by].astype(str).agg(", ".join, axis=1) if by else None
        blocks = []
        for key in pd.unique(keys):  # type: ignore[arg-type]
            sub = table[(keys == key).to_numpy()]
            head = ", ".join(f"{b} = {sub[b].iloc[0]}" for b in by) + ":"
            blocks.append(head + "\n" + _block(sub[cols], ci_names))
        return "\n\n".join(blocks)
    return _block(table[cols], ci_names)


def _block(table: pd.DataFrame, ci_names: tuple[str, str] | None) -> str:
    columns: list[tuple[str, list[str], bool]] = []  # (header, cells, left-aligned)
    for c in table.columns:
        col = table[c]
        if c in ("t_ratio", "z_ratio"):
            cells = _ratios(col)
        elif c == "p_value":
            cells = _pvalues(col)
        elif c == "null":
            cells = _numbers(col, 7)
        elif isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "OSUb":
            columns.append((str(c), [str(x) for x in col], True))
            continue
        else:
            cells = _numbers(col, 3)
        header = _HEADERS.get(str(c), str(c))
        if ci_names is not None and c in ("lower", "upper"):
            header = ci_names[0] if c == "lower" else ci_names[1]
        columns.append((header, cells, False))
    widths = [max(len(h), *(len(x) for x in cells)) if cells else len(h) for h, cells, _ in columns]
    lines = []
    head = "".join(
        " " + (h.ljust(w) if left else h.rjust(w))
        for (h, _, left), w in zip(columns, widths, strict=True)
    )
    lines.append(head.rstrip())
    for r in range(len(table)):
        line = "".join(
            " " + (cells[r].ljust(w) if left else cells[r].rjust(w))
            for (_, cells, left), w in zip(columns, widths, strict=True)
        )
        lines.append(line.rstrip())
    return "\n".join(lines)


class ContrastResult:
    """Contrasts of marginal means (``e.pairs()``, ``e.contrast()``); prints as emmeans.

    Attributes
    ----------
    table : pandas.DataFrame
        ``contrast``, by columns, ``estimate`` (``ratio`` / ``odds_ratio`` on the response
        scale), ``SE``, ``df``, (``null``,) ``t_ratio`` or ``z_ratio``, ``p_value``.
    L : ndarray
        The contrasts as linear functions of β.
    notes : list of str
    """

    def __init__(self, result: Contrasts):
        self.result = result

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table

    @property
    def L(self) -> np.ndarray:
        return self.result.L

    @property
    def coefficients(self) -> np.ndarray:
        return self.result.coefficients

    @property
    def adjust(self) -> str:
        return self.result.adjust

    @property
    def notes(self) -> list[str]:
        return self.result.notes

    def __str__(self) -> str:
        text = format_emmeans_table(self.table, self.result.by)
        return text + ("\n\n" + "\n".join(self.notes) if self.notes else "")

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class EmmeansResult:
    """Estimated marginal means (``m.emmeans(...)``); prints as emmeans.

    Attributes
    ----------
    table : pandas.DataFrame
        The specs and by columns, ``emmean`` (``prob``, ``rate`` or ``response`` with
        ``type="response"``), ``SE``, ``df``, ``lower``, ``upper``.
    L : ndarray
        The means as linear functions of β (one row per mean).
    notes : list of str
    """

    def __init__(self, result: MarginalMeans):
        self.result = result

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table

    @property
    def L(self) -> np.ndarray:
        return self.result.L

    @property
    def notes(self) -> list[str]:
        return self.result.notes

    @property
    def ddf(self) -> str:
        return self.result.ddf

    def pairs(self, adjust: str = "tukey", reverse: bool = False) -> ContrastResult:
        """Pairwise differences within each by group ("A - B"; on the response scale of a
        log or logit link, ratios "A / B"), Tukey-adjusted by default (emmeans' ``pairs``).
        ``adjust``: "tukey", "sidak", "bonferroni", "holm", "hochberg", "fdr", "BY",
        "scheffe", "dunnettx" or "none"."""
        return ContrastResult(self.result.pairs(adjust=adjust, reverse=reverse))

    def contrast(
        self,
        method: str | dict[str, Sequence[float]] = "eff",
        adjust: str | None = None,
        ref: int | str = 1,
    ) -> ContrastResult:
        """Contrasts within each by group (emmeans' ``contrast``): "pairwise",
        "revpairwise", "trt.vs.ctrl" (vs ``ref``), "consec", "eff", or a dict of weights.
        See :meth:`mixedfx.inference.emmeans.MarginalMeans.contrast`."""
        return ContrastResult(self.result.contrast(method=method, adjust=adjust, ref=ref))

    def __str__(self) -> str:
        asym = self.result.ddf == "asymptotic"
        ci = ("asymp.LCL", "asymp.UCL") if asym else ("lower.CL", "upper.CL")
        text = format_emmeans_table(self.table, self.result.by, ci)
        return text + ("\n\n" + "\n".join(self.notes) if self.notes else "")

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))
