"""Generalized linear mixed models: :func:`glmer`, lme4's ``glmer``.

The model: y_i | u ~ an exponential family with mean μ_i = g⁻¹(η_i), η = o + Xβ + ZΛθ u,
u ~ N(0, I). The pipeline is lmer's (formula -> design -> cross-products -> blocked factor)
with the criterion replaced by the Laplace approximation (or adaptive Gauss–Hermite
quadrature) of −2 log-likelihood evaluated through PIRLS (:mod:`mixedfx.pirls`), and
lme4's two-stage optimization:

1. over θ alone, with β and u both found by PIRLS for each θ (lme4's ``nAGQ = 0`` fit);
2. over (θ, β) together, u by PIRLS for each (θ, β), starting from stage 1's answer.

In stage 2, β is searched in the whitened coordinates δ = R_X (β − β₁) (R_X the fixed-effects
block of stage 1's factor, so that the criterion's curvature in δ is about 2 I): BOBYQA's
trust region is then equally sized in every direction however the predictors are scaled.
Standard errors are lme4's default for GLMMs: the β block of 2 H⁻¹, H the finite-difference
Hessian of the criterion over (θ, β).
"""

from __future__ import annotations

import math
import re
import warnings
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

from .design import ColumnMaker, Design, _response, build_design
from .errors import ConvergenceWarning, DataError, FormulaError, ModelError, SingularFitWarning
from .families import Binomial, Family, get_family
from .formula import parse_formula, split_top_level
from .lmm import LinearMixedModel
from .optimizer import OptimizerResult, bobyqa, check_convergence, fd_gradient_hessian
from .pirls import PIRLS, PirlsResult, agq_correction, gauss_hermite

__all__ = ["GeneralizedLinearMixedModel", "glmer"]

_CBIND = re.compile(r"^\s*cbind\s*\((.*)\)\s*$", re.S)


def _binomial_response(frame: pd.DataFrame, text: str) -> np.ndarray:
    """The response of a binomial model: cbind(successes, failures) as an (n, 2) array, a
    factor (first level = failure, as R), booleans, or numbers."""
    m = _CBIND.match(text)
    if m:
        parts = [p for _, p, _ in split_top_level(m.group(1), ",")]
        if len(parts) != 2:
            raise FormulaError(
                f"cbind() in the response needs two arguments (successes, failures): {text!r}"
            )
        cols = []
        for p in parts:
            p = p.strip()
            if p in frame.columns:
                cols.append(_response(frame, p))
            else:
                # I(): "size - incidence" is arithmetic here, not a formula's term removal
                _, v = ColumnMaker.build(f"0 + I({p})", frame, "response")
                cols.append(v[:, 0])
        out = np.column_stack(cols).astype(float)
        if np.any(out < 0):
            i = int(np.flatnonzero((out < 0).any(axis=1))[0])
            raise DataError(
                f"cbind(successes, failures) in {text!r} has negative counts (row {i + 1})"
            )
        return out
    if text in frame.columns:
        col = frame[text]
        if (
            isinstance(col.dtype, pd.CategoricalDtype)
            or col.dtype.kind in "OUS"
            or (str(col.dtype) in ("str", "string"))
        ):
            levels = (
                list(col.cat.categories)
                if isinstance(col.dtype, pd.CategoricalDtype)
                else sorted(pd.unique(col.dropna()).tolist())
            )
            if len(levels) < 2:
                raise DataError(
                    f"binomial response {text!r} is a factor with {len(levels)} level(s); it "
                    "needs two (the first is 'failure', the others 'success', as in R)"
                )
            return (col.astype(object).to_numpy() != levels[0]).astype(float)
    return _response(frame, text)


class GeneralizedLinearMixedModel(LinearMixedModel):
    """A generalized linear mixed model, fitted by :func:`glmer`.

    Has the attributes of :class:`LinearMixedModel` (theta, fixef, coefficients, vcov,
    varcorr, ranef(), objective, loglik, aic, bic, ...) with GLMM meanings: ``objective`` is
    the Laplace (or AGQ) approximation of −2 log-likelihood, ``coefficients`` carries Wald z
    tests, ``fitted`` is on the response scale.

    Parameters
    ----------
    formula : str
        lme4 formula; for binomial data the response may be ``cbind(successes, failures)``.
    data : data frame or dict of arrays
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"`` or a
        :class:`mixedfx.families.Family` (e.g. ``Binomial(link="probit")``).
    weights, offset : column name or array, optional
        Prior weights (for a binomial proportion: the number of trials) and offset.
    nAGQ : int, default 1
        1: Laplace approximation. >1: adaptive Gauss–Hermite quadrature with that many nodes
        (one scalar random-effects term only).
    """

    # stage 1 only seeds stage 2: a looser stop saves evaluations without moving the optimum
    _stage1_options: ClassVar[dict[str, float]] = {"ftol_abs": 1e-4, "xtol_abs": 1e-4}
    # stage 2's initial trust region: θ relative, δ = R_X(β − β₁) in units of about one SE
    _theta_step = 0.05
    _delta_step = 1.0

    def __init__(
        self,
        formula: str,
        data: Any,
        family: str | Family = "binomial",
        weights: Any = None,
        offset: Any = None,
        nAGQ: int = 1,
        *,
        design: Design | None = None,
    ):
        fam = get_family(family)
        self.family = fam  # type: ignore[assignment]
        self.formula = formula
        self.REML = False
        parsed = parse_formula(formula)
        if design is None:
            maker = _binomial_response if isinstance(fam, Binomial) else None
            if maker is None and _CBIND.match(parsed.response):
                raise FormulaError(
                    f"cbind() responses are for the binomial family, not {fam.name}: {formula!r}"
                )
            design = build_design(
                parsed, data, weights, offset, check_nobs_vs_nre=False, response_maker=maker
            )
        self.design = design
        self.data_name = None
        self.data = data  # kept for update()
        self._call = {"family": fam, "weights": weights, "offset": offset, "nAGQ": nAGQ}
        n = design.n
        prior = design.weights if design.weights is not None else np.ones(n)
        yraw = design.y
        if yraw.ndim == 2:
            trials = yraw.sum(axis=1)
            y = np.where(trials > 0, yraw[:, 0] / np.where(trials > 0, trials, 1.0), 0.0)
            self._ntrials = trials
            wt = prior * trials
        else:
            y = np.asarray(yraw, dtype=float)
            self._ntrials = np.ones(n)
            wt = prior
        fam.check_response(y, parsed.response)
        if isinstance(fam, Binomial) and yraw.ndim == 1 and design.weights is not None:
            succ = y * wt
            frac = np.abs(succ - np.round(succ)) > 1e-7 * np.maximum(1.0, np.abs(succ))
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                raise DataError(
                    f"binomial response {parsed.response!r} times the weights must be whole "
                    f"numbers of successes; row {i + 1} has {y[i]:g} x {wt[i]:g} = {succ[i]:g}. "
                    "Give proportions with the number of trials as weights, or "
                    "cbind(successes, failures)"
                )
        self._y = y
        self._wt = wt
        nAGQ = int(nAGQ)
        if nAGQ < 0:
            raise ModelError(f"nAGQ must be 0 (PIRLS only), 1 (Laplace) or more, got {nAGQ}")
        if nAGQ > 1 and (len(design.terms) != 1 or design.terms[0].k != 1):
            terms = " + ".join(t.term.text for t in design.terms)
            raise ModelError(
                f"nAGQ > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar "
                f"random-effects term such as (1 | g); this model has {terms}. Use nAGQ=1 "
                "(Laplace)"
            )
        self.nAGQ = nAGQ
        self._ghq = gauss_hermite(nAGQ) if nAGQ > 1 else None
        off = design.offset if design.offset is not None else np.zeros(n)
        self._offset = off
        self.pirls = PIRLS(design, fam, y, wt, off)
        self._aic_const = fam.saturated_aic(y, self._ntrials, wt)
        self.A = self.pirls._A_u
        self.factor = self.pirls.factor_u
        self.optinfo: OptimizerResult | None = None
        self.convergence_messages: list[str] = []
        self._fitted = False
        self._stage1: OptimizerResult | None = None

    # ------------------------------------------------------------ criterion
    def _laplace(self, res: PirlsResult) -> float:
        """−2 log-likelihood by Laplace: family aic + ‖û‖² + log|L|² (lme4's)."""
        uu = float(res.u @ res.u)
        dev = res.pdev - uu
        if self._aic_const is not None:
            aic = dev + self._aic_const
        else:
            aic = self.family.aic(self._y, self._ntrials, res.mu, self._wt, dev)
        return aic + uu + 2.0 * res.logdet_L

    def _criterion(self, theta: np.ndarray, res: PirlsResult) -> float:
        val = self._laplace(res)
        if self._ghq is not None:
            z, w = self._ghq
            val += agq_correction(self.pirls, theta, res, z, w)
        return val

    def objective_at(  # type: ignore[override]
        self, theta: np.ndarray, beta: np.ndarray | None = None, REML: bool | None = None
    ) -> float:
        """The criterion (Laplace or AGQ −2 log-likelihood) at (θ, β); β defaults to the fit's.

        Leaves the model's state alone: the conditional modes are found from the fitted ones.
        """
        self._require_fit()
        theta = np.asarray(theta, dtype=float)
        beta = self._beta if beta is None else np.asarray(beta, dtype=float)
        res = self.pirls.fit_u(theta, beta, self._u)
        out = self._criterion(theta, res)
        self.pirls.fit_u(self._theta, self._beta, self._u)  # restore the factor
        return out

    # --------------------------------------------------------------- fitting
    def fit(  # type: ignore[override]
        self,
        start: np.ndarray | dict | None = None,
        *,
        check_conv: bool = True,
        REML: bool | None = None,
    ) -> GeneralizedLinearMixedModel:
        """Fit by lme4's two stages (θ with PIRLS for β and u; then θ and β); returns self.

        Parameters
        ----------
        start : array or dict, optional
            Starting θ, or ``{"theta": ..., "fixef": ...}``. Default: lme4's θ start and β
            from the first stage.
        check_conv : bool
            lme4's gradient check at the optimum of the second stage.
        """
        if REML:
            raise ModelError("REML is not defined for generalized linear mixed models")
        d = self.design
        pirls = self.pirls
        lower = d.theta_lower()
        ntheta = lower.size
        beta_start = None
        if isinstance(start, dict):
            theta0 = np.asarray(start.get("theta", d.theta_start()), dtype=float)
            if start.get("fixef") is not None:
                beta_start = np.asarray(start["fixef"], dtype=float)
        elif start is not None:
            theta0 = np.asarray(start, dtype=float)
        else:
            theta0 = d.theta_start()
        if theta0.shape != lower.shape:
            raise DataError(
                f"start must have {ntheta} values of θ (lme4's order), got {theta0.size}"
            )
        if beta_start is not None and beta_start.shape != (d.fixed.p,):
            raise DataError(f"start['fixef'] must have {d.fixed.p} values, got {beta_start.size}")
        theta0 = np.maximum(theta0, lower)
        fam = self.family
        eta_start = np.asarray(fam.linkfun(fam.mustart(self._y, self._wt)), dtype=float)

        with self.factor.blas_threads():
            # ---- stage 1: θ only, u and β by PIRLS
            warm: dict[str, Any] = {"u": None, "beta": None}

            def f1(theta: np.ndarray) -> float:
                res = pirls.fit_ub(theta, warm["u"], warm["beta"], eta_start)
                if not np.isfinite(res.pdev):
                    warm["u"] = warm["beta"] = None
                    return math.inf
                warm["u"], warm["beta"] = res.u, res.beta
                return self._laplace(res)

            if beta_start is None:
                opts = self._stage1_options if self.nAGQ > 0 else {}
                r1 = bobyqa(f1, theta0, lower, **opts)
                theta1 = r1.x
                self._stage1 = r1
                res1 = pirls.fit_ub(theta1, warm["u"], warm["beta"], eta_start, compiled=False)
                beta1, u1 = res1.beta, res1.u
            else:
                theta1, beta1 = theta0, beta_start
                u1 = pirls.fit_u(theta1, beta1, np.zeros(d.q)).u
                pirls.fit_ub(theta1, u1, beta1, eta_start, compiled=False)
            if self.nAGQ == 0:
                self._install_glmm(theta1, beta1, u1)
                self.optinfo = self._stage1
                return self._after_fit()
            assert pirls.factor_b is not None
            Rx = pirls.factor_b.Rx()
            if not np.all(np.isfinite(Rx)) or np.any(np.abs(np.diag(Rx)) < 1e-12):
                Rx = np.eye(d.fixed.p)
            self._Rx1, self._beta1 = Rx, beta1

            # ---- stage 2: θ and β together, u by PIRLS
            warm_u = [u1]

            def to_beta(delta: np.ndarray) -> np.ndarray:
                return beta1 + sla.solve_triangular(Rx, delta, lower=False)

            def f2(x: np.ndarray) -> float:
                theta = x[:ntheta]
                beta = to_beta(x[ntheta:])
                res = pirls.fit_u(theta, beta, warm_u[0])
                if not np.isfinite(res.pdev):
                    return math.inf
                warm_u[0] = res.u
                return self._criterion(theta, res)

            self._f2 = f2
            x0 = np.concatenate([theta1, np.zeros(d.fixed.p)])
            lower2 = np.concatenate([lower, np.full(d.fixed.p, -np.inf)])
            step = np.concatenate(
                [
                    np.maximum(self._theta_step * np.abs(theta1), 0.05),
                    np.full(d.fixed.p, self._delta_step),
                ]
            )
            r2 = bobyqa(f2, x0, lower2, initial_step=step)
            self.optinfo = r2
            msgs: list[str] = []
            if check_conv:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    msgs = check_convergence(f2, r2.x, lower2, warn=False)
            theta, beta = r2.x[:ntheta], to_beta(r2.x[ntheta:])
            res = pirls.fit_u(theta, beta, warm_u[0])
            self._install_glmm(theta, beta, res.u, res)
        self.convergence_messages = msgs
        for msg in msgs:
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        return self._after_fit()

    def _after_fit(self) -> GeneralizedLinearMixedModel:
        if self.is_singular:
            warnings.warn(
                "boundary (singular) fit: a variance is estimated as (near) zero or a "
                "correlation as (near) ±1; see GeneralizedLinearMixedModel.is_singular",
                SingularFitWarning,
                stacklevel=3,
            )
        return self

    def _install_glmm(
        self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, res: PirlsResult | None = None
    ) -> None:
        """Set the state at (θ, β): conditional modes, μ, the factor at the mode, objective."""
        for attr in ("_cond_var", "_hessian", "_vcov_unscaled", "ranef_table"):
            self.__dict__.pop(attr, None)
        theta = np.asarray(theta, dtype=float).copy()
        beta = np.asarray(beta, dtype=float).copy()
        # the final state through BlockedFactor: conditional variances read factor_u
        res = self.pirls.fit_u(theta, beta, u if res is None else res.u, compiled=False)
        self._theta, self._beta, self._u = theta, beta, res.u.copy()
        self._eta, self._mu = res.eta, res.mu
        self._objective = self._criterion(theta, res)
        if self.nAGQ == 0:
            self._objective = self._laplace(res)
        self._pirls_result = res
        self._fitted = True
        fam = self.family
        if fam.has_dispersion:
            pearson = float(np.sum(self._wt * (self._y - res.mu) ** 2 / fam.variance(res.mu)))
            self._sigma = math.sqrt((pearson + float(res.u @ res.u)) / self.n)
        else:
            self._sigma = 1.0

    def refit(  # type: ignore[override]
        self, y: np.ndarray | None = None, *, check_conv: bool = False
    ) -> GeneralizedLinearMixedModel:
        """Refit with a new response (same design, same family and weights), starting from the
        current estimates. Returns a new model; ``self`` is unchanged. For a binomial model the
        new response is on the same scale as the fitted one (proportions of the trials)."""
        new = object.__new__(type(self))
        new.__dict__.update(
            {
                k: v
                for k, v in self.__dict__.items()
                if k
                in (
                    "formula",
                    "REML",
                    "design",
                    "data_name",
                    "family",
                    "nAGQ",
                    "_ghq",
                    "_ntrials",
                    "_wt",
                    "_offset",
                )
            }
        )
        yy = self._y if y is None else np.asarray(y, dtype=float).reshape(-1)
        if yy.shape[0] != self.n:
            raise DataError(f"new response has {yy.shape[0]} values; the model has {self.n} rows")
        self.family.check_response(yy, self.design.response_name)
        new._y = yy
        new.pirls = PIRLS(self.design, self.family, yy, self._wt, self._offset)
        new._aic_const = self.family.saturated_aic(yy, self._ntrials, self._wt)
        new.A, new.factor = new.pirls._A_u, new.pirls.factor_u
        new.optinfo, new.convergence_messages, new._fitted = None, [], False
        new._stage1 = None
        start = {"theta": self._theta, "fixef": None} if self._fitted else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            new.fit(start=start, check_conv=check_conv)
        return new

    # ------------------------------------------------------------ results
    @property
    def y(self) -> np.ndarray:
        """The response on the family's scale (proportions for binomial)."""
        return self._y

    @property
    def prior_weights(self) -> np.ndarray:
        """Prior weights as the family uses them (binomial: number of trials x weights)."""
        return self._wt

    @property
    def npar(self) -> int:
        """Number of parameters: β, θ, and σ for families with a dispersion parameter."""
        return self.p + len(self.design.theta_lower()) + (1 if self.family.has_dispersion else 0)

    @property
    def deviance(self) -> float:
        """−2 log-likelihood (the objective), the quantity compared between models."""
        return self.objective

    @property
    def df_resid(self) -> int:
        return self.n - self.npar

    @cached_property
    def _hessian(self) -> np.ndarray:
        """Finite-difference Hessian of the criterion over (θ, β) at the optimum (lme4's
        ``derivs``), computed in stage 2's whitened coordinates and mapped back."""
        self._require_fit()
        ntheta = self._theta.size
        p = self.p
        Rx = getattr(self, "_Rx1", np.eye(p))
        b1 = getattr(self, "_beta1", self._beta)
        u_keep = self._u.copy()
        warm = [u_keep]

        def f(x: np.ndarray) -> float:
            theta = x[:ntheta]
            beta = b1 + sla.solve_triangular(Rx, x[ntheta:], lower=False)
            res = self.pirls.fit_u(theta, beta, warm[0])
            return self._criterion(theta, res)

        x = np.concatenate([self._theta, Rx @ (self._beta - b1)])
        lower = np.concatenate([self.design.theta_lower(), np.full(p, -np.inf)])
        _, H = fd_gradient_hessian(f, x, lower, h=1e-3)
        self.pirls.fit_u(self._theta, self._beta, u_keep)  # restore the factor at the mode
        J = np.eye(ntheta + p)
        J[ntheta:, ntheta:] = Rx
        return J.T @ H @ J

    @cached_property
    def _vcov_unscaled(self) -> np.ndarray:  # type: ignore[override]
        """Covariance of β̂: the β block of 2 H⁻¹ (lme4's default for GLMMs); falls back to the
        conditional (RX'RX)⁻¹ with a warning when H is not positive definite."""
        H = self._hessian
        ntheta = self._theta.size
        try:
            np.linalg.cholesky(H)
            V = 2.0 * np.linalg.inv(H)[ntheta:, ntheta:]
        except np.linalg.LinAlgError:
            warnings.warn(
                "the Hessian of the criterion is not positive definite at the optimum: "
                "standard errors from the conditional (RX'RX)^-1 instead",
                ConvergenceWarning,
                stacklevel=3,
            )
            V = self.vcov_conditional
        return 0.5 * (V + V.T) / self._sigma**2

    @property
    def vcov_conditional(self) -> np.ndarray:
        """σ² (RX'RX)⁻¹ at the optimum with β held fixed in PIRLS (lme4's
        ``vcov(m, use.hessian = FALSE)``)."""
        # R_X of the full penalized system at θ̂: joint PIRLS over (u, β) started from the fit
        # (it moves β by the Laplace-vs-PIRLS difference only) leaves factor_b at its mode
        self.pirls.fit_ub(self._theta, self._u, self._beta, compiled=False)
        assert self.pirls.factor_b is not None
        Rx = self.pirls.factor_b.Rx()
        Rinv = sla.solve_triangular(Rx, np.eye(Rx.shape[0]), lower=False)
        return self._sigma**2 * (Rinv @ Rinv.T)

    @property
    def coefficients(self) -> pd.DataFrame:
        """Fixed effects with Wald tests: estimate, std_error, statistic (z value; t value for
        families with a dispersion parameter, as lme4 labels it) and p_value (normal)."""
        self._require_fit()
        se = np.sqrt(np.diag(self._sigma**2 * self._vcov_unscaled))
        z = self._beta / se
        out = pd.DataFrame(
            {"estimate": self._beta, "std_error": se, "statistic": z},
            index=pd.Index(self.design.fixed.names, name="term"),
        )
        if not self.family.has_dispersion:
            out["p_value"] = 2.0 * stats.norm.sf(np.abs(z))
        return out

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(m))`` (a Residual row only for
        families with a dispersion parameter)."""
        vc = super().varcorr
        if not self.family.has_dispersion:
            vc = vc[vc["group"] != "Residual"].reset_index(drop=True)
        return vc

    def _linear_predictor(self, include_random: bool = True) -> np.ndarray:
        eta = self.design.X @ self._beta + self._offset
        if include_random:
            eta = eta + self.pirls.zlam_u(self.lambdas(), self._u)
        return eta

    def predict(  # type: ignore[override]
        self,
        newdata: Any = None,
        type: str = "link",
        re_form: Any = "all",
        allow_new_levels: bool = False,
    ) -> np.ndarray:
        """Predictions as lme4's ``predict``: on the link scale (``type="link"``, lme4's
        default) or the response scale (``type="response"``: μ = g⁻¹(η)).

        ``newdata``, ``re_form`` and ``allow_new_levels`` are as for
        :meth:`LinearMixedModel.predict`.
        """
        from .predict import linear_predictor

        if type not in ("link", "response"):
            raise ModelError(f"type must be 'link' or 'response', got {type!r}")
        eta = linear_predictor(self, newdata, re_form, allow_new_levels)
        return self.family.linkinv(eta) if type == "response" else eta

    @property
    def linear_predictor(self) -> np.ndarray:
        """η̂ = o + Xβ̂ + ZΛû."""
        self._require_fit()
        return self._linear_predictor()

    @property
    def fitted(self) -> np.ndarray:
        """Fitted means μ̂ = g⁻¹(η̂), on the response scale (R's ``fitted``)."""
        self._require_fit()
        return self.family.linkinv(self._linear_predictor())

    def resid(self, type: str = "deviance") -> np.ndarray:
        """Residuals as R's ``residuals(m, type)``: ``deviance`` (default), ``pearson``,
        ``response`` or ``working``."""
        mu = self.fitted
        fam = self.family
        y, wt = self._y, self._wt
        if type == "deviance":
            d = np.maximum(fam.dev_resids(y, mu, wt), 0.0)
            return np.sign(y - mu) * np.sqrt(d)
        if type == "pearson":
            return (y - mu) * np.sqrt(wt) / np.sqrt(fam.variance(mu))
        if type == "response":
            return y - mu
        if type == "working":
            return (y - mu) / fam.mu_eta(self._linear_predictor())
        raise ModelError(
            f"unknown residual type {type!r}: use 'deviance', 'pearson', 'response' or 'working'"
        )

    @property
    def residuals(self) -> np.ndarray:  # type: ignore[override]
        """Deviance residuals (R's default for GLMMs); see :meth:`resid` for other types."""
        return self.resid("deviance")

    @property
    def conditional_deviance(self) -> float:
        """Σ d_i(y_i, μ̂_i): the deviance of the fitted means given the conditional modes."""
        return float(self.family.dev_resids(self._y, self.fitted, self._wt).sum())

    def simulate(  # type: ignore[override]
        self, nsim: int = 1, seed: Any = None, use_u: bool = False
    ) -> np.ndarray:
        """Responses simulated from the fitted model, as lme4's ``simulate``: new u ~ N(0, I)
        (or the conditional modes with ``use_u=True``), then y from the family given
        μ = g⁻¹(o + Xβ̂ + ZΛû). Returns an (n, nsim) array on the response's scale
        (proportions of the trials for binomial)."""
        self._require_fit()
        nsim = int(nsim)
        if nsim < 1:
            raise DataError(f"nsim must be at least 1, got {nsim}")
        rng = np.random.default_rng(seed)
        fixed = self.design.X @ self._beta + self._offset
        lams = self.lambdas()
        out = np.empty((self.n, nsim))
        for s in range(nsim):  # loop over replicates, each vectorized over observations
            u = self._u if use_u else rng.standard_normal(self.design.q)
            mu = self.family.linkinv(fixed + self.pirls.zlam_u(lams, u))
            out[:, s] = self.family.simulate(mu, self._wt, rng, self._sigma)
        return out

    def anova(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """F tests with Satterthwaite/Kenward-Roger df are for linear mixed models: raises a
        ModelError pointing to likelihood-ratio tests (mixedfx.anova) or Wald z tests."""
        raise ModelError(
            "F tests of a glmer fit's terms are not defined here: compare nested models with "
            "mixedfx.anova(g0, g) (likelihood-ratio test) or read the Wald z tests in "
            "g.coefficients"
        )

    @property
    def coefficients_kr(self) -> pd.DataFrame:  # type: ignore[override]
        raise ModelError("Kenward-Roger's method is for linear mixed models (REML fits)")

    def profile(self, *args: Any, **kwargs: Any) -> pd.DataFrame:  # type: ignore[override]
        """Not available for GLMMs yet: raises a ModelError saying what to use instead."""
        raise ModelError(
            "profile likelihoods are implemented for linear mixed models (lmer) only; for a "
            "glmer fit use confint(method='wald') or confint(method='boot')"
        )

    def summary(self) -> Any:  # type: ignore[override]
        """lme4's ``summary(glmer(...))``: family and link, AIC/BIC/logLik/deviance, scaled
        (Pearson) residuals, random effects, fixed effects with Wald z tests, correlations."""
        from .summary import GlmerSummary

        self._require_fit()
        return GlmerSummary(self)

    def __repr__(self) -> str:
        if not self._fitted:
            return f"<GeneralizedLinearMixedModel {self.formula!r} (not fitted)>"
        return (
            f"<GeneralizedLinearMixedModel {self.formula!r} ({self.family.name}, "
            f"{self.family.link.name}): -2 log-likelihood {self.objective:.4f}, n = {self.n}>"
        )


def glmer(
    formula: str,
    data: Any,
    family: str | Family = "binomial",
    weights: Any = None,
    offset: Any = None,
    nAGQ: int = 1,
    *,
    start: np.ndarray | dict | None = None,
    check_conv: bool = True,
) -> GeneralizedLinearMixedModel:
    """Fit a generalized linear mixed model, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        ``"y ~ fixed + (expr | group)"``; binomial responses may be 0/1, booleans, a two-level
        factor, proportions with the number of trials as ``weights``, or
        ``cbind(successes, failures)``.
    data : pandas or polars data frame, or dict of arrays
    family : str or Family, default "binomial"
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"``, or a Family
        object such as ``mixedfx.families.Binomial(link="probit")``.
    weights, offset : column name or array, optional
    nAGQ : int, default 1
        Laplace (1) or adaptive Gauss–Hermite quadrature with nAGQ nodes (one scalar term);
        0 stops after the first stage (β from PIRLS, as lme4's nAGQ = 0).
    start : array or dict, optional
        Starting θ, or ``{"theta": ..., "fixef": ...}``.
    check_conv : bool, default True

    Returns
    -------
    GeneralizedLinearMixedModel

    Examples
    --------
    >>> import mixedfx as mfx
    >>> cbpp = mfx.datasets.load("cbpp")
    >>> g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    >>> round(g.objective, 2)
    184.05
    """
    model = GeneralizedLinearMixedModel(
        formula, data, family=family, weights=weights, offset=offset, nAGQ=nAGQ
    )
    return model.fit(start=start, check_conv=check_conv)
