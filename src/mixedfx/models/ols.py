"""Ordinary (and weighted) least squares with lme4's formula language and the results API of
:class:`~mixedfx.lmm.LinearMixedModel`: R's ``lm``.

The model is ``y = Xβ + ε``, ``ε ~ N(0, σ² W⁻¹)`` with prior weights ``W = diag(w)``. With
``X̃ = W^{1/2} X = QR`` (thin QR, computed once),

    β̂ = R⁻¹ Q' W^{1/2} y,   RSS = ||W^{1/2}(y − Xβ̂)||²,   σ̂² = RSS / (n − p),
    Var(β̂) = σ̂² (R'R)⁻¹,   t_j = β̂_j / se_j  ~  t_{n−p}  under β_j = 0.

Rank-deficient columns are dropped as R's ``lm`` does (a column that is a linear combination of
earlier columns is not estimable; it is reported, with a warning, in ``dropped``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .._lazy import stats
from ..errors import DataError, DataWarning, FormulaError, ModelError
from ..frame.checks import check_level
from ..frame.data import (
    clean_column,
    column_names_in,
    missing_column_error,
    missing_mask,
    to_pandas,
)
from ..frame.design import ColumnMaker, Design, build_design
from ..linalg.triangular import triangular_inverse
from ..report.ols import OLSAnova, OLSSummary

__all__ = ["OLSAnova", "OLSModel", "QRLeastSquares", "ols"]


class QRLeastSquares:
    """Least squares for a fixed X and any number of responses, from one thin QR of X.

    ``fit(Y)`` with ``Y`` of shape (n,) or (n, m) solves all m problems at once:
    ``B = R⁻¹ Q'Y``, ``RSS_j = ||Y_j||² − ||Q'Y_j||²`` (computed as the residual norm to
    avoid cancellation), and the standard errors ``sqrt(diag((R'R)⁻¹) RSS_j / (n − p))``.
    This is what makes simulation-based power of OLS and nuisance regression cheap: the QR is
    computed once per design, each replicate costs two matrix products.
    """

    def __init__(self, X: np.ndarray, sqrtw: np.ndarray | None = None):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise DataError("X must be a 2-d array")
        self.n, self.p = X.shape
        if self.n <= self.p:
            raise ModelError(
                f"{self.n} observations for {self.p} coefficients: least squares needs more "
                "observations than coefficients to estimate the residual variance"
            )
        self.sqrtw = None if sqrtw is None else np.asarray(sqrtw, dtype=float)
        Xw = X if self.sqrtw is None else X * self.sqrtw[:, None]
        self.Q, self.R = sla.qr(Xw, mode="economic", check_finite=False)
        Rinv = triangular_inverse(self.R, lower=False)
        self.unscaled_vcov = Rinv @ Rinv.T
        self.X = X

    @property
    def df_resid(self) -> int:
        return self.n - self.p

    def fit(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coefficients, standard errors and RSS for each column of Y.

        Returns
        -------
        beta : ndarray (p,) or (p, m)
        se : ndarray like beta
        rss : float or ndarray (m,)
        """
        Y = np.asarray(Y, dtype=float)
        Yw = (
            Y
            if self.sqrtw is None
            else (Y * self.sqrtw if Y.ndim == 1 else Y * self.sqrtw[:, None])
        )
        QtY = self.Q.T @ Yw
        beta = sla.solve_triangular(self.R, QtY, lower=False, check_finite=False)
        resid = Yw - self.Q @ QtY
        rss = np.einsum("i...,i...->...", resid, resid)
        s2 = rss / self.df_resid
        d = np.diag(self.unscaled_vcov)
        se = np.sqrt(d[:, None] * s2[None, :]) if Y.ndim == 2 else np.sqrt(d * s2)
        return beta, se, rss


class OLSModel:
    """A fitted linear model ``y = Xβ + ε`` (R's ``lm``), made by :func:`ols`.

    Attributes follow :class:`~mixedfx.lmm.LinearMixedModel`: ``fixef``, ``coefficients``
    (estimate, std_error, statistic, df, p_value), ``vcov``, ``sigma``, ``loglik``, ``aic``,
    ``bic``, ``fitted``, ``residuals``, ``summary()``, ``predict(newdata)``; and
    ``anova(other, ...)`` compares nested fits by F tests as R's ``anova(lm1, lm2)``.
    """

    family = "gaussian"

    def __init__(self, formula: str, design: Design):
        self.formula = formula
        self.design = design
        d = design
        self._y = d.y
        yeff = d.y - d.offset if d.offset is not None else d.y
        self._sqrtw = None if d.weights is None else np.sqrt(d.weights)
        self._ls = QRLeastSquares(d.X, self._sqrtw)
        beta, se, rss = self._ls.fit(yeff)
        self._beta = beta
        self._se = se
        self.rss = float(rss)

    # ---------------------------------------------------------- parameters
    @property
    def n(self) -> int:
        return self.design.n

    @property
    def nobs(self) -> int:
        return self.design.n

    @property
    def p(self) -> int:
        return self.design.fixed.p

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom n − p."""
        return self.n - self.p

    @property
    def dropped(self) -> list[str]:
        """Columns dropped because they are linear combinations of earlier ones."""
        return list(self.design.fixed.dropped)

    @property
    def sigma(self) -> float:
        """Residual standard error sqrt(RSS / (n − p))."""
        return math.sqrt(self.rss / self.df_resid)

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self._beta, index=self.design.fixed.names, name="estimate")

    @property
    def beta(self) -> np.ndarray:
        return self._beta.copy()

    @property
    def vcov(self) -> pd.DataFrame:
        """σ̂² (X'WX)⁻¹."""
        names = self.design.fixed.names
        return pd.DataFrame(self.sigma**2 * self._ls.unscaled_vcov, index=names, columns=names)

    @property
    def coefficients(self) -> pd.DataFrame:
        """estimate, std_error, statistic (t value), df (n − p), p_value (two-sided t test)."""
        t = self._beta / self._se
        df = float(self.df_resid)
        return pd.DataFrame(
            {
                "estimate": self._beta,
                "std_error": self._se,
                "statistic": t,
                "df": np.full(self.p, df),
                "p_value": 2.0 * stats.t.sf(np.abs(t), df),
            },
            index=pd.Index(self.design.fixed.names, name="term"),
        )

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """t intervals β̂ ± t_{n−p, (1+level)/2} se, as R's ``confint.lm``."""
        level = check_level(level)
        q = stats.t.ppf(0.5 + level / 2.0, self.df_resid)
        lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
        return pd.DataFrame(
            {f"{lo:.1f} %": self._beta - q * self._se, f"{hi:.1f} %": self._beta + q * self._se},
            index=pd.Index(self.design.fixed.names, name="term"),
        )

    @property
    def loglik(self) -> float:
        """R's ``logLik.lm``: ½(Σ log w − n (log 2π + 1 − log n + log RSS))."""
        n = self.n
        slw = 0.0 if self.design.weights is None else float(np.sum(np.log(self.design.weights)))
        return 0.5 * (slw - n * (math.log(2 * math.pi) + 1.0 - math.log(n) + math.log(self.rss)))

    @property
    def npar(self) -> int:
        """Parameters counted by AIC/BIC: the p coefficients and σ."""
        return self.p + 1

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + math.log(self.n) * self.npar

    @property
    def has_intercept(self) -> bool:
        return "(Intercept)" in self.design.fixed.names

    @property
    def r_squared(self) -> float:
        """R's multiple R²: 1 − RSS/TSS, TSS about the (weighted) mean when there is an
        intercept, about 0 otherwise."""
        f = self.fitted - (self.design.offset if self.design.offset is not None else 0.0)
        w = np.ones(self.n) if self.design.weights is None else self.design.weights
        if self.has_intercept:
            m = np.sum(w * f) / np.sum(w)
            mss = float(np.sum(w * (f - m) ** 2))
        else:
            mss = float(np.sum(w * f**2))
        return mss / (mss + self.rss)

    @property
    def adj_r_squared(self) -> float:
        df_int = 1 if self.has_intercept else 0
        return 1.0 - (1.0 - self.r_squared) * ((self.n - df_int) / self.df_resid)

    @property
    def fstatistic(self) -> tuple[float, int, int]:
        """Overall F statistic against the intercept-only (or empty) model and its df."""
        df_int = 1 if self.has_intercept else 0
        numdf = self.p - df_int
        r2 = self.r_squared
        if numdf <= 0:
            return (float("nan"), numdf, self.df_resid)
        f = (r2 / numdf) / ((1 - r2) / self.df_resid)
        return (float(f), numdf, self.df_resid)

    # ------------------------------------------------------- fitted values
    @property
    def fitted(self) -> np.ndarray:
        """Xβ̂ (+ offset)."""
        f = self.design.X @ self._beta
        return f + self.design.offset if self.design.offset is not None else f

    @property
    def residuals(self) -> np.ndarray:
        """Response residuals y − fitted."""
        return self._y - self.fitted

    @property
    def y(self) -> np.ndarray:
        return self._y

    def predict(self, newdata: Any = None) -> np.ndarray:
        """Predictions Xβ̂ for new data (columns coded as when fitting); fitted values without
        ``newdata``. Offsets given as a formula ``offset(z)`` are added; an offset given as an
        array when fitting is not (supply it yourself)."""
        if newdata is None:
            return self.fitted
        if self.design.fixed.maker is None:
            raise ModelError(
                f"this fit ({self.formula!r}) was made from a model matrix built by mixedfx; "
                "to predict for new data fit it with mixedfx.ols and a formula"
            )
        new = to_pandas(newdata)
        texts = [self.design.formula.fixed, *self.design.formula.offsets]
        needed = column_names_in(texts, self.design.frame.frame.columns)
        for c in needed:
            if c not in new.columns:
                raise missing_column_error(c, new.columns, what="predictor")
        na = np.zeros(len(new), dtype=bool)
        for c in needed:  # rows with a missing predictor are predicted as NaN (R's na.pass)
            miss = missing_mask(new[c])
            if miss is not None:
                na |= miss
        out = np.full(len(new), np.nan)
        rows = np.flatnonzero(~na)
        if rows.size == 0:
            return out
        frame = pd.DataFrame(
            {c: clean_column(c, new[c].iloc[rows]) for c in needed},
            index=pd.RangeIndex(rows.size),
        )
        X = self.design.fixed.maker.make(frame)
        if X.shape[1] != self.p:
            raise DataError(
                f"new data give {X.shape[1]} fixed-effects columns, the model has {self.p}"
            )
        eta = X @ self._beta
        for expr in self.design.formula.offsets:
            _, off = ColumnMaker.build("0 + " + expr, frame, "offset")
            eta = eta + off[:, 0]
        out[rows] = eta
        return out

    # --------------------------------------------------------- comparisons
    def anova(self, *others: OLSModel) -> OLSAnova:
        """F tests between nested fits, as R's ``anova(lm1, lm2, ...)``.

        The models are listed in the order given. With RSS_i and residual df ν_i, the row of
        model i > 1 has ``Df = ν_{i−1} − ν_i``, ``Sum of Sq = RSS_{i−1} − RSS_i`` and
        ``F = (Sum of Sq / Df) / (RSS_b / ν_b)``, b the model with the fewest residual df,
        referred to F(|Df|, ν_b).
        """
        fits = [self, *others]
        if len(fits) < 2:
            raise ModelError("anova needs at least two fitted models to compare")
        for f in fits:
            if not isinstance(f, OLSModel):
                raise ModelError(
                    f"anova between OLS fits: got a {type(f).__name__}; compare OLS fits only"
                )
            if f.n != self.n or not np.array_equal(f.y, self.y):
                raise ModelError(
                    "models were not all fitted to the same data (response or number of rows "
                    f"differs: {self.formula!r} vs {f.formula!r})"
                )
        res_df = np.array([f.df_resid for f in fits], dtype=float)
        rss = np.array([f.rss for f in fits])
        big = int(np.argmin(res_df))
        scale = rss[big] / res_df[big]
        df = np.concatenate([[np.nan], -np.diff(res_df)])
        ss = np.concatenate([[np.nan], -np.diff(rss)])
        with np.errstate(invalid="ignore", divide="ignore"):
            F = np.where(df != 0, ss / df / scale, np.nan)
            p = stats.f.sf(F, np.abs(df), res_df[big])
        F[0] = np.nan
        p = np.where(np.isfinite(F), p, np.nan)
        table = pd.DataFrame(
            {"res_df": res_df, "rss": rss, "df": df, "sum_sq": ss, "F": F, "p_value": p},
            index=pd.RangeIndex(1, len(fits) + 1, name="model"),
        )
        return OLSAnova(table, [f.formula for f in fits])

    # -------------------------------------------------------------- display
    def summary(self) -> OLSSummary:
        """R's ``summary(lm(...))``: residual quantiles, coefficient table, σ̂, R², F."""
        return OLSSummary(self)

    def __repr__(self) -> str:
        return f"<OLSModel {self.formula!r}: sigma {self.sigma:.4g}, n = {self.n}>"


def ols(formula: str, data: Any, weights: Any = None, offset: Any = None) -> OLSModel:
    """Fit a linear model by (weighted) least squares, as R's ``lm``.

    Parameters
    ----------
    formula : str
        ``"y ~ x + C(g) + a*b"`` — the fixed-effects part of lme4's formula language
        (formulaic: treatment contrasts with R's names, interactions, transforms).
        Random-effects terms are not allowed (use :func:`mixedfx.lmer`).
    data : data frame (pandas, polars, ...) or dict of arrays
    weights, offset : column name or array, optional
        Prior weights (WLS) and an offset.

    Returns
    -------
    OLSModel

    Examples
    --------
    >>> import mixedfx as mfx
    >>> o = mfx.ols("Reaction ~ Days", mfx.datasets.load("sleepstudy"))
    >>> round(float(o.fixef["Days"]), 4)
    10.4673
    """
    design = build_design(formula, data, weights, offset, require_random=False)
    if design.terms:
        raise FormulaError(
            f"ols fits fixed effects only; remove the random-effects terms from {formula!r} "
            "(or use mixedfx.lmer)"
        )
    if design.fixed.p == 0:
        raise FormulaError(f"no fixed-effects columns in {formula!r}")
    model = OLSModel(formula, design)
    f = model.fitted
    if model.rss / model.df_resid < (np.mean(f) ** 2 + np.var(f)) * 1e-30:
        warnings.warn(
            f"essentially perfect fit of {design.response_name!r} (R's warning): the residuals "
            "are zero to rounding, so the standard errors and tests are not reliable",
            DataWarning,
            stacklevel=2,
        )
    return model
