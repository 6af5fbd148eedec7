"""Step 5 of the pipeline: the linear mixed model, its fit, and what a user reads from it.

:func:`lmer` is lme4's ``lmer``: formula -> design -> cross-products -> blocked factor ->
profiled criterion -> BOBYQA -> :class:`LinearMixedModel` with β, σ, the conditional modes,
variance components and everything ``summary`` prints.
"""

from __future__ import annotations

import math
import warnings
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .criterion import profiled_deviance, sigma_hat
from .crossprod import CrossProducts, crossproducts
from .design import Design, build_design
from .errors import DataError, ModelError, SingularFitWarning
from .factor import BlockedFactor, lambda_blocks
from .optimizer import OptimizerResult, bobyqa, check_convergence

__all__ = ["LinearMixedModel", "lmer"]

SINGULAR_TOL = 1e-4


class LinearMixedModel:
    """A linear mixed-effects model ``y = Xβ + Zb + ε``, ``b = Λθ u``, ``u ~ N(0, σ²I)``.

    Create with :func:`lmer` (which also fits), or construct and call :meth:`fit`.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : data frame (pandas, polars, ...) or dict of arrays
    REML : bool, default True
        Minimize the REML criterion (True) or the ML deviance (False).
    weights : str or array-like, optional
        Prior weights: a column name or an array with one value per row of ``data``.
    offset : str or array-like, optional
        A known term added to the linear predictor: column name or array.
    """

    family = "gaussian"

    def __init__(
        self,
        formula: str,
        data: Any,
        REML: bool = True,
        weights: Any = None,
        offset: Any = None,
        *,
        design: Design | None = None,
    ):
        self.formula = formula
        self.REML = bool(REML)
        self.design = design if design is not None else build_design(formula, data, weights, offset)
        self.data_name = getattr(data, "name", None) if not isinstance(data, pd.DataFrame) else None
        self.data = data  # kept for update()
        self._call = {"REML": self.REML, "weights": weights, "offset": offset}
        self._y = self.design.y
        self.A: CrossProducts = crossproducts(self.design)
        self.factor = BlockedFactor(self.A, self.design.terms)
        self.optinfo: OptimizerResult | None = None
        self.convergence_messages: list[str] = []
        self._fitted = False

    # ---------------------------------------------------------------- fitting
    @property
    def n(self) -> int:
        return self.design.n

    @property
    def p(self) -> int:
        return self.design.fixed.p

    def objective_at(self, theta: np.ndarray, REML: bool | None = None) -> float:
        """The profiled criterion at θ: REML criterion or ML deviance (−2 log-likelihood)."""
        stats = self.factor.update(theta)
        reml = self.REML if REML is None else REML
        return profiled_deviance(stats, self.n, self.p, reml, self.A.sum_log_w)

    def fit(
        self,
        start: np.ndarray | None = None,
        *,
        check_conv: bool = True,
        REML: bool | None = None,
    ) -> LinearMixedModel:
        """Minimize the profiled criterion over θ with BOBYQA; returns ``self``.

        Parameters
        ----------
        start : array, optional
            Starting θ (lme4's order). Default: lme4's, 1 on Λ's diagonal and 0 elsewhere.
        check_conv : bool
            Check the gradient and Hessian at the optimum and warn as lme4 does.
        REML : bool, optional
            Change the criterion before fitting (``fit(REML=False)`` refits by ML).
        """
        if REML is not None:
            self.REML = bool(REML)
        d = self.design
        lower = d.theta_lower()
        x0 = d.theta_start() if start is None else np.asarray(start, dtype=float)
        if x0.shape != lower.shape:
            raise DataError(
                f"start must have {lower.size} values (θ in lme4's order), got {x0.size}"
            )
        x0 = np.maximum(x0, lower)
        with self.factor.blas_threads():
            # From a given start (refits, profiles, the bootstrap) nlopt's default first step
            # is a fraction of each |θ_i|: a θ_i near 0 would get a step too small to leave it.
            step = None if start is None else np.maximum(0.1 * np.abs(x0), 0.05)
            res = bobyqa(self.objective_at, x0, lower, initial_step=step)
            self.optinfo = res
            self.convergence_messages = (
                check_convergence(self.objective_at, res.x, lower) if check_conv else []
            )
        self._install(res.x)
        if self.is_singular:
            warnings.warn(
                "boundary (singular) fit: a variance is estimated as (near) zero or a "
                "correlation as (near) ±1; see LinearMixedModel.is_singular",
                SingularFitWarning,
                stacklevel=2,
            )
        return self

    def _install(self, theta: np.ndarray) -> None:
        """Set the model's state (factor, β, u, σ) to the values at θ."""
        for attr in ("_cond_var", "_vcov_unscaled", "_satterthwaite", "_kenward_roger"):
            self.__dict__.pop(attr, None)
        self.__dict__.pop("ranef_table", None)
        stats = self.factor.update(theta)
        self._theta = np.asarray(theta, dtype=float).copy()
        self._objective = profiled_deviance(stats, self.n, self.p, self.REML, self.A.sum_log_w)
        self._sigma = sigma_hat(stats, self.n, self.p, self.REML)
        u, beta = self.factor.solve()
        self._u = u
        self._beta = beta
        self._fitted = True

    def refit(self, y: np.ndarray | None = None, *, check_conv: bool = False) -> LinearMixedModel:
        """Refit with a new response (same design, no re-parsing), starting from the current θ.

        Returns a new fitted model object sharing the design; ``self`` is unchanged.
        """
        new = object.__new__(type(self))
        new.__dict__.update(
            {
                k: v
                for k, v in self.__dict__.items()
                if k in ("formula", "REML", "design", "data_name")
            }
        )
        yy = self.design.y if y is None else np.asarray(y, dtype=float).reshape(-1)
        if yy.shape[0] != self.n:
            raise DataError(f"new response has {yy.shape[0]} values; the model has {self.n} rows")
        new._y = yy
        yeff = yy - self.design.offset if self.design.offset is not None else yy
        new.A = crossproducts(self.design, y=yeff)
        new.factor = BlockedFactor(new.A, self.design.terms)
        new.optinfo = None
        new.convergence_messages = []
        new._fitted = False
        start = self._theta if self._fitted else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            new.fit(start=start, check_conv=check_conv)
        return new

    def _require_fit(self) -> None:
        if not self._fitted:
            raise RuntimeError("the model has not been fitted yet: call .fit()")

    # ------------------------------------------------------------ parameters
    @property
    def y(self) -> np.ndarray:
        """The response the model was fitted to."""
        return self._y

    @property
    def theta(self) -> np.ndarray:
        """θ in lme4's order: per term, the lower triangle of Λ column by column."""
        self._require_fit()
        return self._theta.copy()

    @property
    def theta_names(self) -> list[str]:
        return self.design.theta_names()

    @property
    def objective(self) -> float:
        """The minimized criterion: REML criterion, or −2 log-likelihood for ML fits."""
        self._require_fit()
        return self._objective

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ̂."""
        self._require_fit()
        return self._sigma

    @property
    def nobs(self) -> int:
        return self.n

    @property
    def npar(self) -> int:
        """Number of parameters: fixed effects, θ, and σ."""
        return self.p + len(self.design.theta_lower()) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for REML fits), as lme4's ``logLik``."""
        return -0.5 * self.objective

    @property
    def deviance(self) -> float:
        """As lme4's ``deviance``: −2 log-likelihood (the REML criterion for REML fits)."""
        return self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return self.objective + math.log(self.n) * self.npar

    @property
    def df_resid(self) -> int:
        return self.n - self.npar

    @property
    def beta(self) -> np.ndarray:
        self._require_fit()
        return self._beta.copy()

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates β̂, named as lme4 names them."""
        self._require_fit()
        return pd.Series(self._beta, index=self.design.fixed.names, name="estimate")

    @cached_property
    def _vcov_unscaled(self) -> np.ndarray:
        """(Rx'Rx)^{-1}: vcov(β̂) / σ²."""
        Rx = self.factor.Rx()
        Rinv = sla.solve_triangular(Rx, np.eye(Rx.shape[0]), lower=False)
        return Rinv @ Rinv.T

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of β̂: σ² (Rx'Rx)⁻¹."""
        self._require_fit()
        names = self.design.fixed.names
        return pd.DataFrame(self._sigma**2 * self._vcov_unscaled, index=names, columns=names)

    @cached_property
    def _satterthwaite(self) -> Any:
        from .satterthwaite import satterthwaite_info

        return satterthwaite_info(self)

    @property
    def coefficients(self) -> pd.DataFrame:
        """Table of fixed effects as lmerTest's summary: estimate, std_error, df
        (Satterthwaite), statistic (t value), p_value (two-sided)."""
        from scipy import stats

        self._require_fit()
        se = np.sqrt(np.diag(self._sigma**2 * self._vcov_unscaled))
        t = self._beta / se
        from .satterthwaite import contrast_df

        df = contrast_df(self._satterthwaite, np.eye(self.p))
        return pd.DataFrame(
            {
                "estimate": self._beta,
                "std_error": se,
                "df": df,
                "statistic": t,
                "p_value": 2.0 * stats.t.sf(np.abs(t), df),
            },
            index=pd.Index(self.design.fixed.names, name="term"),
        )

    @cached_property
    def _kenward_roger(self) -> Any:
        from .kenward_roger import kr_info

        return kr_info(self)

    @property
    def vcov_kr(self) -> pd.DataFrame:
        """Kenward-Roger adjusted covariance of β̂ (pbkrtest's ``vcovAdj``); REML fits only."""
        self._require_fit()
        names = self.design.fixed.names
        return pd.DataFrame(self._kenward_roger.PhiA, index=names, columns=names)

    @property
    def coefficients_kr(self) -> pd.DataFrame:
        """Fixed effects with Kenward-Roger t tests, as lmerTest's
        ``summary(m, ddf = "Kenward-Roger")``: standard errors from the adjusted covariance,
        df from pbkrtest's ``Lb_ddf``."""
        from scipy import stats

        from .kenward_roger import kr_ddf

        self._require_fit()
        kr = self._kenward_roger
        se = np.sqrt(np.diag(kr.PhiA))
        df = np.array([kr_ddf(kr, np.eye(self.p)[[j]]) for j in range(self.p)])
        t = self._beta / se
        return pd.DataFrame(
            {
                "estimate": self._beta,
                "std_error": se,
                "df": df,
                "statistic": t,
                "p_value": 2.0 * stats.t.sf(np.abs(t), df),
            },
            index=pd.Index(self.design.fixed.names, name="term"),
        )

    def anova(self, ddf: str = "satterthwaite") -> Any:
        """Type III F tests of the fixed-effect terms, as lmerTest's ``anova(m)``:
        Satterthwaite's (default) or Kenward-Roger's denominator df. For likelihood-ratio
        tests between models use :func:`mixedfx.anova`."""
        from .ftests import type3_anova

        key = _ddf_name(ddf)
        if key == "lme4":
            raise ModelError("anova(ddf=...) takes 'satterthwaite' or 'kenward-roger'")
        return type3_anova(self, key)

    def lambdas(self) -> list[np.ndarray]:
        """The k x k lower-triangular Λ block of each term."""
        return lambda_blocks(self.theta, [t.k for t in self.design.terms])

    def covariance_matrices(self) -> list[np.ndarray]:
        """Covariance matrix σ² λ λ' of each term's random effects."""
        s2 = self.sigma**2
        return [s2 * (lam @ lam.T) for lam in self.lambdas()]

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components, like R's ``as.data.frame(VarCorr(m))``.

        Columns ``group, var1, var2, vcov, sdcor``: one row per variance (``var2`` missing,
        ``sdcor`` the standard deviation) and per covariance (``sdcor`` the correlation), then
        the residual.
        """
        rows = []
        for t, S in zip(self.design.terms, self.covariance_matrices(), strict=True):
            sd = np.sqrt(np.diag(S))
            for i, name in enumerate(t.columns):
                rows.append((t.vc_name, name, None, S[i, i], sd[i]))
            for i in range(t.k):
                for j in range(i + 1, t.k):
                    corr = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((t.vc_name, t.columns[i], t.columns[j], S[i, j], corr))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    @property
    def is_singular(self) -> bool:
        """lme4's ``isSingular``: a θ on its lower bound 0 (within 1e-4)."""
        lower = self.design.theta_lower()
        th = self.theta
        return bool(np.any(th[lower == 0.0] < SINGULAR_TOL))

    # ------------------------------------------------------- random effects
    def _b_blocks(self) -> list[np.ndarray]:
        """Conditional modes b = Λu, per term as an (levels, k) array."""
        self._require_fit()
        out = []
        pos = 0
        for t, lam in zip(self.design.terms, self.lambdas(), strict=True):
            u = self._u[pos : pos + t.q].reshape(t.nlevels, t.k)
            out.append(u @ lam.T)
            pos += t.q
        return out

    @cached_property
    def _cond_var(self) -> list[np.ndarray]:
        """Conditional covariance blocks of b given y, σ² λ V_l λ' per level, where V_l is the
        diagonal block of (Lz Lz')⁻¹ for that level (lme4's ``condVar``), shape (levels, k, k)."""
        f = self.factor
        A = self.A
        terms = self.design.terms
        q = A.q_rest
        t1 = terms[0]
        n1, k1 = t1.nlevels, t1.k
        L11 = f.L11
        # (L11^{-1})' L11^{-1} per level
        Linv1 = np.linalg.inv(L11) if k1 > 1 else 1.0 / L11
        V1 = np.swapaxes(Linv1, 1, 2) @ Linv1
        blocks: list[np.ndarray] = []
        if q > 0:
            # W = L22re^{-1} L21re L11^{-1}; add W_l' W_l to level l's block
            L22 = np.tril(f.G[:q, :q])
            re_mask = A.rows < q
            lev = np.repeat(np.arange(n1), np.diff(A.ptr))
            L21 = np.zeros((q, n1 * k1))
            cols = lev[re_mask][:, None] * k1 + np.arange(k1)[None, :]
            L21[A.rows[re_mask][:, None], cols] = f.P[re_mask]
            # Λr' applied to the rows
            for (pos, nl, k), lam in zip(f._rest_slices, f.lams[1:], strict=True):
                sl = slice(pos, pos + nl * k)
                L21[sl] = (lam.T @ L21[sl].reshape(nl, k, -1)).reshape(nl * k, -1)
            W = sla.solve_triangular(L22, L21, lower=True, check_finite=False)
            W = W.reshape(q, n1, k1)
            W = np.einsum("rlk,lkj->rlj", W, Linv1)
            V1 = V1 + np.einsum("rli,rlj->lij", W, W)
            Minv = sla.solve_triangular(L22, np.eye(q), lower=True, check_finite=False)
        blocks.append(V1)
        for pos, nl, k in f._rest_slices:
            Mb = Minv[:, pos : pos + nl * k].reshape(q, nl, k)
            blocks.append(np.einsum("rli,rlj->lij", Mb, Mb))
        s2 = self.sigma**2
        return [s2 * (lam @ V @ lam.T) for lam, V in zip(self.lambdas(), blocks, strict=True)]

    def ranef(self, condvar: bool = True) -> pd.DataFrame:
        """Conditional modes of the random effects, like R's
        ``as.data.frame(ranef(m, condVar=TRUE))``: columns ``group, term, level, condval, condsd``.
        """
        frames = []
        cv = self._cond_var if condvar else None
        for i, (t, b) in enumerate(zip(self.design.terms, self._b_blocks(), strict=True)):
            for j, col in enumerate(t.columns):
                d = {
                    "group": t.group,
                    "term": col,
                    "level": t.levels,
                    "condval": b[:, j],
                }
                if cv is not None:
                    d["condsd"] = np.sqrt(cv[i][:, j, j])
                frames.append(pd.DataFrame(d))
        return pd.concat(frames, ignore_index=True)

    def ranef_dict(self) -> dict[str, pd.DataFrame]:
        """Conditional modes as R's ``ranef(m)`` prints them: one frame per grouping factor,
        levels as rows and the terms' columns side by side."""
        out: dict[str, pd.DataFrame] = {}
        for t, b in zip(self.design.terms, self._b_blocks(), strict=True):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.columns)
            if t.group in out:
                out[t.group] = out[t.group].join(df, how="outer")
            else:
                out[t.group] = df
        return out

    # ------------------------------------------------------ fitted values
    def _linear_predictor(self, include_random: bool = True) -> np.ndarray:
        d = self.design
        eta = d.X @ self._beta
        if d.offset is not None:
            eta = eta + d.offset
        if include_random:
            for t, b in zip(d.terms, self._b_blocks(), strict=True):
                eta = eta + np.einsum("ij,ij->i", t.Zt, b[t.refs])
        return eta

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values Xβ̂ + Zb̂ (+ offset), in the rows of the data that were used."""
        self._require_fit()
        return self._linear_predictor()

    @property
    def residuals(self) -> np.ndarray:
        """Response residuals y − fitted."""
        return self._y - self.fitted

    def predict(
        self, newdata: Any = None, re_form: Any = "all", allow_new_levels: bool = False
    ) -> np.ndarray:
        """Predictions as lme4's ``predict``: Xβ̂ + Zb̂ (+ offset) for the fitted rows or for
        ``newdata``.

        Parameters
        ----------
        newdata : data frame or dict of arrays, optional
        re_form : "all" (default), None, or a formula naming random-effects terms
            ``None`` predicts at the population level (fixed effects only, R's
            ``re.form = NA``); ``"~ (1 | g)"`` includes only that term.
        allow_new_levels : bool, default False
            Grouping levels not seen in the fit get random effects 0 (True), or raise.

        Returns
        -------
        ndarray, one value per row (NaN where a needed variable is missing).
        """
        from .predict import linear_predictor

        return linear_predictor(self, newdata, re_form, allow_new_levels)

    def update(self, formula: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """A new model fitted with a changed formula, data or arguments (R's ``update``).

        ``formula`` uses R's ``update.formula`` shorthand: ``". ~ . + x2"``, ``"~ . - Days"``,
        ``". ~ . - (1 | g) + (1 | h)"``; a formula without ``~`` changes the right-hand side
        (``"... + x2"`` or ``"+ x2"``). Other arguments (``REML``, ``weights``, ``offset``, and
        for glmer ``family``, ``nAGQ``) default to the original call's. See
        :func:`mixedfx.update.update`.
        """
        from .update import update

        return update(self, formula, data, **kwargs)

    def simulate(self, nsim: int = 1, seed: Any = None, use_u: bool = False) -> np.ndarray:
        """Responses simulated from the fitted model, as lme4's ``simulate``: an (n, nsim)
        array, reproducible from ``seed``. See :func:`mixedfx.simulate.simulate_lmm`."""
        from .simulate import simulate_lmm

        return simulate_lmm(self, nsim, seed, use_u)

    def bootstrap(
        self,
        nsim: int = 1000,
        seed: Any = None,
        n_jobs: int = 1,
        progress: bool | None = None,
    ) -> Any:
        """Parametric bootstrap, as lme4's ``bootMer``: simulate, refit, collect. Returns a
        :class:`mixedfx.bootstrap.BootstrapResult` (``.table``: one row per replicate).
        See :func:`mixedfx.bootstrap.bootstrap`."""
        from .bootstrap import bootstrap

        return bootstrap(self, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)

    def profile(self, which: list[str] | None = None, level_max: float = 0.99) -> pd.DataFrame:
        """The profile likelihood (lme4's ``profile``): a table of parameter, value and ζ,
        ζ from −z to +z for ``level_max``. See :mod:`mixedfx.profile`."""
        from .profile import Profiler

        return Profiler(self).table(which=which, level_max=level_max)

    def confint(
        self,
        parm: list[str] | None = None,
        level: float = 0.95,
        method: str = "profile",
        nsim: int = 1000,
        seed: Any = None,
        n_jobs: int = 1,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Confidence intervals as lme4's ``confint``: ``method`` "profile" (default),
        "wald" or "boot" (parametric bootstrap percentile intervals). Rows ``.sig01``...,
        ``.sigma`` and the fixed effects; columns as R labels them (``2.5 %``, ``97.5 %``).
        See :func:`mixedfx.confint.confint`."""
        from .confint import confint

        return confint(
            self,
            parm=parm,
            level=level,
            method=method,
            nsim=nsim,
            seed=seed,
            n_jobs=n_jobs,
            progress=progress,
        )

    @property
    def ngroups(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.design.terms:
            out.setdefault(t.group, t.nlevels)
        return out

    # ---------------------------------------------------------- display
    def summary(self, ddf: str = "satterthwaite") -> Any:
        """lme4's summary with lmerTest's t tests: criterion, scaled residuals, random effects,
        fixed effects, correlations. Print it, or read its tables as attributes.

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger", "lme4"}
            Denominator df of the t tests (lmerTest's ``ddf``); ``"lme4"`` prints lme4's own
            table (no df, no p-values).
        """
        from .summary import LmerSummary

        self._require_fit()
        return LmerSummary(self, ddf=_ddf_name(ddf))

    def plot_ranef(self, level: float = 0.95, ax: Any = None) -> Any:
        """Caterpillar plot of the conditional modes (lme4's ``dotplot(ranef(m, condVar=TRUE))``);
        returns the matplotlib Figure. See :func:`mixedfx.plots.plot_ranef`."""
        from .plots import plot_ranef

        return plot_ranef(self, level=level, ax=ax)

    def plot_residuals(self, ax: Any = None) -> Any:
        """Residuals vs fitted and normal QQ plots of residuals and conditional modes;
        returns the matplotlib Figure. See :func:`mixedfx.plots.plot_residuals`."""
        from .plots import plot_residuals

        return plot_residuals(self, ax=ax)

    def __repr__(self) -> str:
        if not self._fitted:
            return f"<LinearMixedModel {self.formula!r} (not fitted)>"
        crit = "REML criterion" if self.REML else "deviance"
        return f"<LinearMixedModel {self.formula!r}: {crit} {self.objective:.4f}, n = {self.n}>"


def _ddf_name(ddf: str) -> str:
    """Normalize a ddf name: Satterthwaite, Kenward-Roger (any case, - or _) or lme4."""
    key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-")
    names = {
        "satterthwaite": "satterthwaite",
        "kenward-roger": "kenward-roger",
        "kr": "kenward-roger",
        "lme4": "lme4",
    }
    if key not in names:
        raise ModelError(f"unknown ddf {ddf!r}: use 'satterthwaite', 'kenward-roger' or 'lme4'")
    return names[key]


def lmer(
    formula: str,
    data: Any,
    REML: bool = True,
    weights: Any = None,
    offset: Any = None,
    *,
    start: np.ndarray | None = None,
    check_conv: bool = True,
) -> LinearMixedModel:
    """Fit a linear mixed-effects model, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        ``"y ~ fixed + (expr | group) + ..."`` in lme4's formula language.
    data : pandas or polars data frame, or dict of arrays
    REML : bool, default True
        REML (default) or maximum likelihood.
    weights, offset : column name or array, optional
        Prior weights and offset.
    start : array, optional
        Starting θ.
    check_conv : bool, default True
        Run lme4's convergence checks at the optimum.

    Returns
    -------
    LinearMixedModel
        The fitted model.

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    >>> round(m.objective, 3)
    1743.628
    """
    model = LinearMixedModel(formula, data, REML=REML, weights=weights, offset=offset)
    return model.fit(start=start, check_conv=check_conv)
