"""One linear model per group, as lme4's ``lmList``: ``lmlist("Reaction ~ Days | Subject", df)``.

For each level g of the grouping factor, with the n_g rows of that group,

    y_g = X_g β_g + ε_g,   ε_g ~ N(0, σ_g² I),

fitted by least squares from a thin QR of X_g (:class:`~mixedfx.models.ols.QRLeastSquares`):

    β̂_g = R_g⁻¹ Q_g' y_g,   RSS_g = ‖y_g − X_g β̂_g‖²,   ν_g = n_g − p,   σ̂_g² = RSS_g / ν_g.

The pooled residual standard deviation (lme4's ``sigma(l)``, ``pooledSD``) and its df are

    σ̂_pool² = Σ_g RSS_g / Σ_g ν_g,   ν_pool = Σ_g ν_g,

and the standard errors of ``summary(l)`` are σ̂_pool sqrt(diag((X_g'X_g)⁻¹)), with t tests on
ν_pool df. Confidence intervals (``confint(l)``) come two ways:

* ``pool=False`` (lme4 1.1's default, which fits each group's ``lm`` on its own):
  β̂_g ± t_{ν_g, (1+level)/2} σ̂_g sqrt(diag((X_g'X_g)⁻¹));
* ``pool=True`` (``confint(l, pool = TRUE)``):
  β̂_g ± t_{ν_pool, (1+level)/2} σ̂_pool sqrt(diag((X_g'X_g)⁻¹)).

These per-group fits are what a random-effects model shrinks: comparing them with the
conditional modes of ``lmer("Reaction ~ Days + (Days | Subject)")`` shows how much, and their
spread suggests which random effects are needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..errors import DataError, FormulaError
from ..frame.design import build_design
from ..frame.formula import parse_formula, split_top_level
from ..inference.bootstrap import percent_label
from ..report.format import decimals_for, format_pvalue, format_table, signif_stars
from .ols import QRLeastSquares

__all__ = ["LmList", "lmlist"]

_RANK_TOL = 1e-7


class LmList:
    """Per-group least-squares fits (lme4's ``lmList``), made by :func:`lmlist`.

    Attributes
    ----------
    formula : str
    group : str
        The grouping factor.
    groups : list of str
        Its levels, in the factor's order (R's).
    coef : pandas.DataFrame
        One row per group, one column per coefficient (R's ``coef(l)``).
    sigma : pandas.Series
        Each group's residual standard deviation σ̂_g.
    df_resid : pandas.Series
        Each group's residual df ν_g = n_g − p.
    pooled_sigma : float
        sqrt(Σ RSS_g / Σ ν_g) (R's ``sigma(l)``).
    pooled_df : int
        Σ ν_g.
    """

    def __init__(
        self,
        formula: str,
        group: str,
        groups: list[str],
        names: list[str],
        beta: np.ndarray,
        unscaled: np.ndarray,
        rss: np.ndarray,
        nobs: np.ndarray,
    ):
        self.formula = formula
        self.group = group
        self.groups = groups
        self.names = names
        self._beta = beta  # (G, p)
        self._unscaled = unscaled  # (G, p, p): (X_g'X_g)⁻¹
        self._rss = rss
        self._nobs = nobs
        index = pd.Index(groups, name=group)
        p = len(names)
        df = nobs - p
        self.coef = pd.DataFrame(beta, index=index, columns=names)
        self.df_resid = pd.Series(df, index=index, name="df_resid")
        self.sigma = pd.Series(np.sqrt(rss / df), index=index, name="sigma")
        self.pooled_df = int(df.sum())
        self.pooled_sigma = math.sqrt(float(rss.sum()) / self.pooled_df)

    @property
    def nobs(self) -> int:
        return int(self._nobs.sum())

    def _unscaled_se(self) -> np.ndarray:
        """sqrt(diag((X_g'X_g)⁻¹)), (G, p)."""
        return np.sqrt(np.einsum("gii->gi", self._unscaled))

    @property
    def coefficients(self) -> pd.DataFrame:
        """``summary(l)``'s table in long form: group, term, estimate, std_error (pooled σ̂),
        statistic (t), df (ν_pool), p_value."""
        se = self.pooled_sigma * self._unscaled_se()
        t = self._beta / se
        G, p = self._beta.shape
        return pd.DataFrame(
            {
                self.group: np.repeat(self.groups, p),
                "term": np.tile(self.names, G),
                "estimate": self._beta.ravel(),
                "std_error": se.ravel(),
                "statistic": t.ravel(),
                "df": float(self.pooled_df),
                "p_value": 2.0 * stats.t.sf(np.abs(t.ravel()), self.pooled_df),
            }
        )

    def confint(self, level: float = 0.95, pool: bool = False) -> pd.DataFrame:
        """Confidence intervals per group and coefficient (R's ``confint(l)``).

        Parameters
        ----------
        level : float
            Strictly between 0 and 1.
        pool : bool
            False: each group's own σ̂_g and df (lme4 1.1's ``confint(l)``); True: the pooled
            σ̂ and df (``confint(l, pool = TRUE)``).

        Returns
        -------
        pandas.DataFrame
            Index: the groups; columns: (coefficient, bound) with bounds labelled as R's
            (``2.5 %``, ``97.5 %``).
        """
        level = _level(level)
        if not isinstance(pool, bool | np.bool_):
            raise DataError(f"pool must be True or False, got {pool!r}")
        a = (1.0 - level) / 2.0
        u = self._unscaled_se()
        if pool:
            half = stats.t.ppf(1.0 - a, self.pooled_df) * self.pooled_sigma * u
        else:
            df = self.df_resid.to_numpy()
            q = stats.t.ppf(1.0 - a, df)
            half = (q * self.sigma.to_numpy())[:, None] * u
        lo, hi = self._beta - half, self._beta + half
        bounds = [percent_label(a), percent_label(1.0 - a)]
        cols = pd.MultiIndex.from_product([self.names, bounds], names=["term", "bound"])
        values = np.stack([lo, hi], axis=2).reshape(len(self.groups), -1)
        return pd.DataFrame(values, index=self.coef.index, columns=cols)

    def plot(self, level: float = 0.95, pool: bool = False, ax: Any = None) -> Any:
        """Each group's coefficients with their confidence intervals, one panel per
        coefficient, groups down the side (lme4's ``plot(confint(l))``); returns the
        matplotlib Figure. matplotlib is optional (``pip install 'mixedfx[plot]'``)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "plotting needs matplotlib: pip install 'mixedfx[plot]' (or pip install matplotlib)"
            ) from None
        ci = self.confint(level=level, pool=pool)
        p = len(self.names)
        if ax is None:
            fig, axs = plt.subplots(
                1, p, figsize=(3.2 * p, 0.25 * len(self.groups) + 1.5), sharey=True, squeeze=False
            )
            axs = list(axs.ravel())
        else:
            axs = list(np.ravel(ax)) if isinstance(ax, list | tuple | np.ndarray) else [ax]
            if len(axs) != p:
                raise DataError(f"this plot draws {p} panels; ax has {len(axs)} Axes")
            fig = axs[0].figure
        ypos = np.arange(len(self.groups))
        for a, name in zip(axs, self.names, strict=True):
            lo, hi = ci[name].iloc[:, 0].to_numpy(), ci[name].iloc[:, 1].to_numpy()
            a.hlines(ypos, lo, hi, color="C0")
            a.plot(self.coef[name].to_numpy(), ypos, "o", color="C0", ms=4)
            a.set_title(name)
            a.set_yticks(ypos, self.groups)
            a.grid(axis="x", alpha=0.3)
        axs[0].set_ylabel(self.group)
        return fig

    def __str__(self) -> str:
        d = [decimals_for(self.coef[c].to_numpy(), 7) for c in self.names]
        cols = [
            (c, [f"{x:.{k}f}" for x in self.coef[c].to_numpy()])
            for c, k in zip(self.names, d, strict=True)
        ]
        lines = [
            f"Call: lmList(formula = {self.formula})",
            "Coefficients:",
            format_table(self.coef, cols),
            "",
            f"Degrees of freedom: {self.nobs} total; {self.pooled_df} residual",
            f"Residual standard error: {self.pooled_sigma:.7g}",
        ]
        return "\n".join(lines)

    __repr__ = __str__

    def summary(self) -> str:
        """The per-group t tests with the pooled σ̂ (R's ``summary(l)``), as text."""
        t = self.coefficients
        blocks = []
        for name in self.names:
            sub = t[t["term"] == name].set_index(self.group)
            est, se, st = (sub[k].to_numpy() for k in ("estimate", "std_error", "statistic"))
            dec = decimals_for(np.concatenate([est, se]), 4)
            cols = [
                ("Estimate", [f"{x:.{dec}f}" for x in est]),
                ("Std. Error", [f"{x:.{dec}f}" for x in se]),
                ("t value", [f"{x:.3f}" for x in st]),
                ("Pr(>|t|)", [format_pvalue(x) for x in sub["p_value"]]),
                ("", [signif_stars(x) for x in sub["p_value"]]),
            ]
            blocks.append(f"   {name}\n" + format_table(sub, cols))
        return "\n".join(
            [
                f"Call: lmList(formula = {self.formula})",
                "Coefficients:",
                *blocks,
                "",
                f"Residual standard error: {self.pooled_sigma:.7g} on {self.pooled_df} "
                "degrees of freedom",
            ]
        )


def _level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float | np.number):
        raise DataError(f"level must be a number strictly between 0 and 1, got {level!r}")
    if not 0.0 < float(level) < 1.0:
        raise DataError(f"level must be strictly between 0 and 1, got {level!r}")
    return float(level)


def _split(formula: str) -> tuple[str, str]:
    """``"y ~ x | g"`` → (``"y ~ x"``, ``"g"``)."""
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    parts = split_top_level(formula, "|")
    if len(parts) != 2 or not parts[1][1].strip() or not parts[0][1].strip():
        raise FormulaError(
            f"lmlist needs a formula 'response ~ predictors | group', got {formula!r}",
            formula,
            parts[1][2] - 1 if len(parts) > 1 else len(formula),
        )
    lhs, group = parts[0][1].strip(), parts[1][1].strip()
    parsed = parse_formula(lhs)
    if parsed.random:
        raise FormulaError(
            f"lmlist fits one linear model per group: no random-effects terms in {formula!r}"
        )
    return lhs, group


def lmlist(formula: str, data: Any) -> LmList:
    """Fit one linear model per group, as lme4's ``lmList``.

    Parameters
    ----------
    formula : str
        ``"response ~ predictors | group"``: the part before ``|`` is fitted within each
        level of ``group`` (a column, or ``a:b`` for the combinations of two).
    data : data frame (pandas, polars, ...) or dict of arrays
        Rows with a missing value in a used column are dropped.

    Returns
    -------
    LmList

    Raises
    ------
    FormulaError
        The formula has no ``| group`` (or has random-effects terms).
    DataError
        A group has no more rows than coefficients, or its columns are collinear (its model
        is not estimable).

    Examples
    --------
    >>> import mixedfx as mfx
    >>> l = mfx.lmlist("Reaction ~ Days | Subject", mfx.datasets.load("sleepstudy"))
    >>> round(float(l.coef.loc["308", "Days"]), 4)
    21.7647
    >>> round(l.pooled_sigma, 4)
    25.5918
    """
    lhs, group = _split(formula)
    design = build_design(f"{lhs} + (1 | {group})", data, check_nobs_vs_nre=False)
    if len(design.terms) != 1:
        raise FormulaError(
            f"lmlist groups by one factor (or a:b); {group!r} makes {len(design.terms)} "
            "grouping factors"
        )
    term = design.terms[0]
    X = design.X
    y = design.y if design.offset is None else design.y - design.offset
    p = X.shape[1]
    nobs = np.bincount(term.refs, minlength=term.nlevels)
    small = np.flatnonzero(nobs <= p)
    if small.size:
        g = int(small[0])
        raise DataError(
            f"group {term.levels[g]!r} of {group!r} has {int(nobs[g])} rows for {p} "
            f"coefficients ({', '.join(design.fixed.names)}): lmlist needs more rows than "
            "coefficients in every group to estimate its residual variance"
        )
    order = np.argsort(term.refs, kind="stable")
    bounds = np.cumsum(nobs)[:-1]
    G = term.nlevels
    beta = np.empty((G, p))
    unscaled = np.empty((G, p, p))
    rss = np.empty(G)
    for g, rows in enumerate(np.split(order, bounds)):
        ls = QRLeastSquares(X[rows])
        diag = np.abs(np.diag(ls.R))
        norms = np.sqrt((X[rows] ** 2).sum(axis=0))
        bad = np.flatnonzero(diag <= _RANK_TOL * np.maximum(norms, 1e-300))
        if bad.size:
            raise DataError(
                f"in group {term.levels[g]!r} of {group!r} the column "
                f"{design.fixed.names[int(bad[0])]!r} is constant or a combination of the "
                "others: its coefficient is not estimable within that group"
            )
        b, _, r = ls.fit(y[rows])
        beta[g], unscaled[g], rss[g] = b, ls.unscaled_vcov, float(r)
    return LmList(
        formula=formula,
        group=term.group,
        groups=list(term.levels),
        names=list(design.fixed.names),
        beta=beta,
        unscaled=unscaled,
        rss=rss,
        nobs=nobs,
    )
