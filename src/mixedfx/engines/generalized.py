"""The generalized engine: lme4's ``glmer`` fit by PIRLS and the Laplace (or AGQ) criterion.

The model: y_i | u ~ an exponential family with mean μ_i = g⁻¹(η_i), η = o + Xβ + ZΛθ u,
u ~ N(0, I). For (θ, β), PIRLS (:mod:`mixedfx.glm.pirls`) finds the conditional mode û over the
same blocked factor as the linear engine, and the criterion is the Laplace approximation of
−2 log-likelihood (or adaptive Gauss–Hermite quadrature for one scalar term). lme4's two
stages:

1. over θ alone, with β and u both found by PIRLS for each θ (lme4's ``nAGQ = 0`` fit);
2. over (θ, β) together, u by PIRLS for each (θ, β), starting from stage 1's answer.

In stage 2, β is searched in the whitened coordinates δ = R_X (β − β₁) (R_X the fixed-effects
block of stage 1's factor, so that the criterion's curvature in δ is about 2 I): BOBYQA's trust
region is then equally sized in every direction however the predictors are scaled. For one
scalar term with a canonical link (binomial-logit, Poisson-log) the criterion's gradient has
a closed form, and stage 2 runs as BFGS with it (~7 evaluations instead of ~35), kept where
the finite differences at its answer confirm the minimum, else BOBYQA as lme4. Standard
errors are lme4's default for GLMMs: the β block of 2 H⁻¹, H the finite-difference Hessian of
the criterion over (θ, β).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..errors import ConvergenceWarning, DataError, ModelError
from ..frame.design import Design
from ..glm.families import Binomial, Family
from ..glm.laplace_objective import LaplaceObjective, gradient_family
from ..glm.laplace_objective import available as laplace_available
from ..glm.mode_predictor import ModePredictor
from ..glm.pirls import PIRLS, PirlsResult, agq_correction, gauss_hermite
from ..linalg.factor import BlockedFactor, rx_crossprod_inverse
from ..linalg.optimizer import (
    OptimizerResult,
    Probe,
    bobyqa,
    check_convergence,
    fd_gradient_hessian,
    minimize,
    scalar_from_start,
)
from ..linalg.triangular import triangular_inverse
from .base import Engine

__all__ = ["GeneralizedEngine", "family_response"]


def family_response(
    design: Design, family: Family, y: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y on the family's scale, prior weights as the likelihood uses them, trials).

    A two-column response (cbind(successes, failures)) becomes proportions of the trials
    with the trials times the prior weights as weights; a new ``y`` (refits, simulations) is
    on the family's scale already and keeps the fit's weights.
    """
    n = design.n
    prior = design.weights
    yraw = design.y
    if yraw.ndim == 2:
        trials = yraw.sum(axis=1)
        some = trials > 0
        yy = np.where(some, yraw[:, 0] / np.where(some, trials, 1.0), 0.0)
        # (no weights: 1 x trials, the same values, as a copy)
        wt = prior * trials if prior is not None else np.array(trials, dtype=float)
    else:
        yy = np.asarray(yraw, dtype=float)
        trials = np.ones(n)
        wt = prior if prior is not None else np.ones(n)
    if y is not None:
        yy = np.asarray(y, dtype=float).reshape(-1)
        if yy.shape[0] != n:
            raise DataError(f"new response has {yy.shape[0]} values; the model has {n} rows")
    family.check_response(yy, design.response_name)
    big = float(np.abs(yy * wt).max(initial=0.0))
    if not family.has_dispersion and big > 1e15:
        raise DataError(
            f"response {design.response_name!r} has counts up to {big:.3g}: beyond about 1e15 "
            f"the {family.name} log-likelihood cannot be computed in double precision; model "
            "such counts on another scale (e.g. lmer of log counts)"
        )
    if isinstance(family, Binomial) and yraw.ndim == 1 and design.weights is not None:
        succ = yy * wt
        frac = np.abs(succ - np.round(succ)) > 1e-7 * np.maximum(1.0, np.abs(succ))
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise DataError(
                f"binomial response {design.response_name!r} times the weights must be whole "
                f"numbers of successes; row {i + 1} has {yy[i]:g} x {wt[i]:g} = {succ[i]:g}. "
                "Give proportions with the number of trials as weights, or "
                "cbind(successes, failures)"
            )
    return yy, wt, trials


class GeneralizedEngine(Engine):
    """A generalized linear mixed model over one design (lme4's ``glmerMod``).

    Parameters
    ----------
    design : Design
    family : Family
    nAGQ : int
        0: stage 1 only; 1: Laplace; > 1: adaptive Gauss–Hermite quadrature (one scalar term).
    y : ndarray, optional
        A response on the family's scale replacing the design's (refits, the bootstrap).
    """

    gaussian: ClassVar[bool] = False
    REML = False
    # stage 1 only seeds stage 2: a looser stop saves evaluations without moving the optimum
    # (a single θ: from the start by scalar_from_start to xtol_abs, not bobyqa()'s search
    # over [0, 4 max(1, |θ₀|)] to xtol_abs/100, about half the evaluations)
    _stage1_options: ClassVar[dict[str, float]] = {"ftol_abs": 1e-4, "xtol_abs": 1e-4}
    # stage 2's initial trust region: θ relative, δ = R_X(β − β₁) in units of about one SE
    _theta_step = 0.05
    _delta_step = 1.0
    # the optimizers' PIRLS stops without its last Fisher step when that step is below this
    # (relative): the criterion then moves by ~1e-12 relative, below BOBYQA's tolerances;
    # finite differences (convergence check, Hessian) polish every mode
    _tol_stay = 1e-10
    # stage 1 stops at a change of 1e-4 in its criterion: its PIRLS may stay below 1e-7
    # (the criterion then moves by ~1e-6 at most, measured on cbpp, grouseticks, VerbAgg)
    _tol_stay1 = 1e-7
    # stage 2 by the criterion's gradient only with θ at least this far from its bound
    _gradient_margin = 1e-2

    def __init__(self, design: Design, family: Family, nAGQ: int = 1, y: np.ndarray | None = None):
        super().__init__(design)
        self.family = family
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
        self._y, self._wt, self.ntrials = family_response(design, family, y)
        n = design.n
        self._offset = design.offset if design.offset is not None else np.zeros(n)
        self.pirls = PIRLS(design, family, self._y, self._wt, self._offset)
        self._aic_const = family.saturated_aic(self._y, self.ntrials, self._wt)
        self.stage1: OptimizerResult | None = None
        self._Rx1 = np.eye(design.fixed.p)
        self._Rx1_inv = self._Rx1
        self._beta1: np.ndarray | None = None
        self._theta1 = design.theta_start()
        self.pirls_result: PirlsResult | None = None
        self._factored = False  # factor_u at the fitted mode (install)

    # ----------------------------------------------------------- interface
    @property
    def factor(self) -> BlockedFactor:  # type: ignore[override]
        """PIRLS's factor over u (made when first read; see :meth:`factor_at_optimum`)."""
        return self.pirls.factor_u

    @property
    def y(self) -> np.ndarray:
        return self._y

    @property
    def prior_weights(self) -> np.ndarray:
        return self._wt

    @property
    def has_dispersion(self) -> bool:
        return self.family.has_dispersion

    @property
    def u_scale(self) -> float:
        return 1.0

    def derive(
        self,
        *,
        y: np.ndarray | None = None,
        design: Design | None = None,
        REML: bool | None = None,
    ) -> GeneralizedEngine:
        if REML:
            raise ModelError(
                "REML is not defined for generalized linear mixed models: glmer fits maximize "
                "the (Laplace or quadrature) likelihood"
            )
        d = self.design if design is None else design
        yy = y if y is not None else (self._y if d is self.design else None)
        return GeneralizedEngine(d, self.family, self.nAGQ, y=yy)

    def restart(self) -> dict[str, Any]:
        return {"theta": self.theta, "fixef": None}

    def refitter(self) -> Callable[[np.ndarray], GeneralizedEngine]:
        """A function y ↦ this model refitted to response y (the family's scale) from θ̂."""
        return lambda y: self.refit(y)

    # ------------------------------------------------------------ criterion
    def laplace(self, res: PirlsResult) -> float:
        """−2 log-likelihood by Laplace: family aic + ‖û‖² + log|L|² (lme4's)."""
        uu = float(res.u @ res.u)
        dev = res.pdev - uu
        if self._aic_const is not None:
            aic = dev + self._aic_const
        else:
            aic = self.family.aic(self._y, self.ntrials, res.mu, self._wt, dev)
        return aic + uu + 2.0 * res.logdet_L

    def criterion(self, theta: np.ndarray, res: PirlsResult) -> float:
        """The criterion at the PIRLS mode: Laplace, plus the AGQ correction for nAGQ > 1."""
        val = self.laplace(res)
        if self._ghq is not None:
            z, w = self._ghq
            val += agq_correction(self.pirls, theta, res, z, w)
        return val

    def objective_at(self, theta: np.ndarray, beta: np.ndarray | None = None) -> float:
        """The criterion at (θ, β), β defaulting to the fit's; the state is left as it was."""
        self.require_fit()
        theta = np.asarray(theta, dtype=float)
        beta = self._beta if beta is None else np.asarray(beta, dtype=float)
        res = self.pirls.fit_u(theta, beta, self._u)
        out = self.criterion(theta, res)
        self.pirls.fit_u(self._theta, self._beta, self._u)  # restore the factor
        return out

    # --------------------------------------------------------------- fitting
    def _start(self, start: Any) -> tuple[np.ndarray, np.ndarray | None]:
        d = self.design
        lower = d.theta_lower()
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
                f"start must have {lower.size} values of θ (lme4's order), got {theta0.size}"
            )
        if beta_start is not None and beta_start.shape != (d.fixed.p,):
            raise DataError(f"start['fixef'] must have {d.fixed.p} values, got {beta_start.size}")
        return np.maximum(theta0, lower), beta_start

    def fit(self, start: Any = None, *, check_conv: bool = True) -> GeneralizedEngine:
        """lme4's two stages (θ with PIRLS for β and u; then θ and β); returns ``self``.

        ``start``: θ, or ``{"theta": ..., "fixef": ...}`` (with fixef, stage 1 is skipped).
        A fit from a given β that ends above the fit from lme4's own start is replaced by the
        latter: a far start must not leave the answer on a plateau.
        """
        self._fit(start, check_conv)
        if isinstance(start, dict) and start.get("fixef") is not None:
            mine = self._objective
            default = self.derive()
            default._fit(None, check_conv)
            if default._objective < mine - 1e-9 * max(1.0, abs(mine)):
                self._fit(None, check_conv)
        if check_conv:
            self._check_separation()
        return self

    def _check_separation(self) -> None:
        """R's glm warning "fitted probabilities numerically 0 or 1 occurred" (rates 0 for
        count families), naming the fixed effects that diverge: (quasi-)separation makes their
        estimates, standard errors and tests meaningless."""
        fam = self.family
        eps = 10.0 * np.finfo(float).eps
        res = self.pirls_result
        if res is not None and res.mu.size and fam.name in ("binomial", "poisson"):
            # μ̂ of the fit's PIRLS: far from 0 and 1 (a margin far above the rounding by which
            # it and the fitted values differ), none of them is extreme
            lo, hi = float(res.mu.min()), float(res.mu.max())
            if lo > 1e-10 and (fam.name == "poisson" or hi < 1.0 - 1e-10):
                return
        mu = self.fitted_values()
        if fam.name == "binomial":
            extreme, what = (mu < eps) | (mu > 1.0 - eps), "probabilities numerically 0 or 1"
        elif fam.name in ("poisson", "negative.binomial"):
            extreme, what = mu < eps, "rates numerically 0"
        else:
            return
        if not extreme.any():
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            se = np.sqrt(np.abs(np.diag(self.vcov_unscaled))) * self._sigma
        beta = self._beta
        # a diverging estimate: one whose standard error does not bound it, or whose column
        # alone moves η by more than 1000 (far past where μ is numerically 0 or 1, |η| ≈ 34):
        # in a flat direction the standard error is rounding noise, the size of Xβ is not
        reach = np.abs(beta) * np.max(np.abs(self.design.X), axis=0, initial=0.0)
        diverging = [
            name
            for name, b, e, r in zip(self.design.fixed.names, beta, se, reach, strict=True)
            if (abs(b) > 10.0 and not (np.isfinite(e) and e < 10.0 * abs(b))) or r > 1e3
        ]
        msg = f"fitted {what} occurred ({int(extreme.sum())} rows)"
        if diverging:
            msg += (
                f": the data are (quasi-)separated by {', '.join(diverging)}, whose estimates "
                "diverge; their standard errors and tests are not meaningful (remove or "
                "recode the term, or use a penalized or Bayesian fit)"
            )
        msg_list = self.convergence_messages
        msg_list.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=4)

    def _fit(self, start: Any, check_conv: bool) -> None:
        lower = self.design.theta_lower()
        theta0, beta_start = self._start(start)
        fam = self.family
        eta_start = np.asarray(fam.linkfun(fam.mustart(self._y, self._wt)), dtype=float)
        with self.pirls.blas_threads():
            theta1, beta1, u1, Rx1 = self._stage1(theta0, beta_start, lower, eta_start)
            if self.nAGQ == 0:
                self.optinfo = self.stage1
                self.install(theta1, beta1, u1)
                return
            msgs = self._stage2(theta1, beta1, u1, Rx1, lower, check_conv)
        self.convergence_messages = msgs
        for msg in msgs:
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)

    def _stage1(
        self,
        theta0: np.ndarray,
        beta_start: np.ndarray | None,
        lower: np.ndarray,
        eta_start: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Stage 1: θ only, u and β by PIRLS (lme4's nAGQ = 0 fit), or with a given β the
        modes there; returns (θ₁, β₁, û₁, R_X at the mode or None)."""
        d = self.design
        pirls = self.pirls
        # (u, β) start where the modes at the last θs predict; the first θ starts cold
        pred1 = ModePredictor(2 * theta0.size + 1)
        # (nAGQ = 0: stage 1 is the fit, to BOBYQA's full tolerances)
        stay = self._tol_stay1 if self.nAGQ > 0 else self._tol_stay
        Rx1: np.ndarray | None
        if beta_start is not None:
            u1 = pirls.fit_u(theta0, beta_start, np.zeros(d.q)).u
            res1 = pirls.fit_ub(theta0, u1, beta_start, eta_start)
            return theta0, beta_start, u1, res1.Rx
        opts = self._stage1_options if self.nAGQ > 0 else {}
        obj1 = self._stage1_objective(pred1, theta0.size, eta_start, stay)
        if obj1 is not None:
            r1 = self._stage1_compiled(obj1, theta0, lower, opts)
        else:
            f1 = self._stage1_criterion(pred1, stay, eta_start)
            if theta0.size == 1 and opts:  # a seed for stage 2: from the start
                r1 = scalar_from_start(f1, theta0, lower, opts["xtol_abs"])
            else:
                r1 = bobyqa(f1, theta0, lower, **opts)
        if not r1.fun < 1e300:
            raise ModelError(
                "PIRLS found no conditional mode at any θ tried: the penalized "
                "least-squares system cannot be solved in double precision for these "
                "data (check the response's scale and the model)"
            )
        theta1 = r1.x
        self.stage1 = r1
        # the mode at θ₁ polished, from the mode there (θ₁ was evaluated)
        if obj1 is not None:  # in compiled code: the same as fit_ub below
            _, u1, beta1, Rx1 = obj1.polish(theta1)
        else:
            ub = pred1.predict(theta1)
            q = d.q
            u0, b0 = (None, None) if ub is None else (ub[:q], ub[q:])
            res1 = pirls.fit_ub(theta1, u0, b0, eta_start)
            beta1, u1, Rx1 = res1.beta, res1.u, res1.Rx
        return theta1, beta1, u1, Rx1

    def _whiten(self, theta1: np.ndarray, beta1: np.ndarray, Rx1: np.ndarray | None) -> None:
        """Stage 2's coordinates δ = R_X (β − β₁) from stage 1's answer and R_X (the compiled
        PIRLS's at the mode, else factor_b's; the identity where neither is usable)."""
        pirls = self.pirls
        p = self.design.fixed.p
        if Rx1 is not None:  # the compiled PIRLS's R_X at the mode
            Rx = Rx1
        elif pirls.factor_b is not None:  # factor_b is at the mode
            Rx = pirls.factor_b.Rx()
        else:  # the compiled PIRLS found no mode at θ₁: unwhitened
            Rx = np.eye(p)
        # (Python floats: numpy's calls cost more than the few values)
        if not all(map(math.isfinite, Rx.ravel().tolist())) or not all(
            abs(v) >= 1e-12 for v in Rx.diagonal().tolist()
        ):
            Rx = np.eye(p)
        self._Rx1, self._beta1, self._theta1 = Rx, beta1, theta1
        self._Rx1_inv = triangular_inverse(Rx, lower=False)

    def _stage2(
        self,
        theta1: np.ndarray,
        beta1: np.ndarray,
        u1: np.ndarray,
        Rx1: np.ndarray | None,
        lower: np.ndarray,
        check_conv: bool,
    ) -> list[str]:
        """Stage 2 from (θ₁, β₁) with the mode û₁ there: θ and β together, u by PIRLS; the
        state is installed at the answer and the convergence check's messages returned."""
        pirls = self.pirls
        ntheta = theta1.size
        p = self.design.fixed.p
        self._whiten(theta1, beta1, Rx1)
        warm_u = [u1]
        x0 = np.zeros(ntheta + p)  # (θ₁, 0)
        x0[:ntheta] = theta1
        pred2 = ModePredictor(2 * (ntheta + p) + 1)
        # the slopes ∂û/∂δ at x0 from stage 1's factor: points one whitened step away in
        # δ (BOBYQA's first ones) then start from a first-order prediction of the mode:
        # x0 + 10⁻³ e_j with û + 10⁻³ ∂û/∂δ_j, after x0 with its mode
        J = pirls.mode_slopes(theta1)
        if J is not None and np.isfinite(J).all():
            xs = np.empty((p + 1, x0.size))
            xs[:, :ntheta] = theta1
            xs[0, ntheta:] = 0.0
            xs[1:, ntheta:] = 1e-3 * np.eye(p)
            ms = np.empty((p + 1, u1.size))
            ms[0] = u1
            ms[1:] = u1 + 1e-3 * (J @ self._Rx1_inv).T
            pred2.fill(xs, ms)
        else:
            pred2.add(x0, u1)
        lower2 = np.full(ntheta + p, -np.inf)
        lower2[:ntheta] = lower
        # the criterion compiled where it can be (the same evaluations), else in Python
        obj2 = self._stage2_compiled(pred2, u1, x0.size)
        # one scalar term, canonical link: quasi-Newton with the criterion's gradient,
        # kept where the finite-difference gradient confirms its minimum
        r2, grad = self._stage2_gradient(obj2, pred2, x0, lower2)
        if r2 is not None:
            assert obj2 is not None
            warm_u[0] = obj2.warm.copy()
        else:
            step = np.full(ntheta + p, self._delta_step)
            step[:ntheta] = np.maximum(self._theta_step * np.abs(theta1), 0.05)
            if obj2 is None:
                f2, _ = self._stage2_criterion(warm_u, predictor=pred2, tol_stay=self._tol_stay)
                r2 = bobyqa(f2, x0, lower2, initial_step=step)
            else:
                obj2.tol_stay = self._tol_stay
                r2 = obj2.bobyqa(x0, lower2, initial_step=step)
                warm_u[0] = obj2.warm.copy()
        self.optinfo = r2
        u2 = pred2.predict(r2.x)  # the mode at r2.x: it was evaluated
        msgs: list[str] = []
        if check_conv:  # finite differences: the criterion with every mode polished
            many = None
            if obj2 is None:
                f2c, _ = self._stage2_criterion(warm_u, predictor=pred2)
            else:
                obj2.tol_stay = 0.0
                f2c, many = obj2, obj2.many
            # (the gradient route's exact gradient settles the check without evaluations)
            probe = None if grad is not None else Probe.at(f2c, r2.x, lower2, f0=r2.fun, many=many)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                msgs = check_convergence(
                    f2c, r2.x, lower2, warn=False, probe=probe, many=many, gradient=grad
                )
            if obj2 is not None:
                warm_u[0] = obj2.warm.copy()
        theta, beta = r2.x[:ntheta], self._to_beta(r2.x[ntheta:])
        self.install(theta, beta, warm_u[0] if u2 is None else u2)
        return msgs

    def _stage1_criterion(
        self, pred1: ModePredictor, stay: float, eta_start: np.ndarray
    ) -> Callable[[np.ndarray], float]:
        """Stage 1's criterion over θ through Python (where it does not run compiled): u and β
        by PIRLS from the mode ``pred1`` predicts (the lean compiled PIRLS, stopping below
        ``stay``, where there is one), else from the family's start ``eta_start``."""
        pirls = self.pirls
        q = self.design.q
        const = self._aic_const
        lean = pirls.mode_evaluator(True, stay) if const is not None else None

        def f1(theta: np.ndarray) -> float:
            ub = pred1.predict(theta)
            if lean is not None and ub is not None:
                assert const is not None
                pd, logdet = lean(theta, ub[q:], ub[:q])  # ub becomes the mode
                if math.isfinite(pd):
                    pred1.add(theta, ub)
                    return pd + const + 2.0 * logdet  # laplace(): Σ d_i + aic const + ...
                ub = None  # no mode from the prediction: from the family's start
            u0, b0 = (None, None) if ub is None else (ub[:q], ub[q:])
            res = pirls.fit_ub(theta, u0, b0, eta_start)
            if not np.isfinite(res.pdev) and u0 is not None:  # from the family's start
                res = pirls.fit_ub(theta, None, None, eta_start)
            if not np.isfinite(res.pdev):
                pred1.clear()
                return math.inf
            mode = np.concatenate([res.u, res.beta])
            pred1.add(theta, mode)
            return self.laplace(res)

        return f1

    def _stage1_objective(
        self, pred: ModePredictor, nt: int, eta_start: np.ndarray, tol_stay: float
    ) -> LaplaceObjective | None:
        """Stage 1's criterion compiled
        (:class:`~mixedfx.glm.laplace_objective.LaplaceObjective`, the same evaluations as
        f1 in :meth:`_fit`), or None where it does not apply (then f1 runs through Python)."""
        if not laplace_available(self.pirls, self._aic_const, nt):
            return None
        assert self._aic_const is not None
        return LaplaceObjective(
            self.pirls, True, self._aic_const, tol_stay, pred, nt, eta_start=eta_start
        )

    def _stage1_compiled(
        self,
        obj: LaplaceObjective,
        theta0: np.ndarray,
        lower: np.ndarray,
        opts: dict[str, float],
    ) -> OptimizerResult:
        """Stage 1's minimization with every evaluation compiled (``obj`` of
        :meth:`_stage1_objective`)."""
        if theta0.size == 1 and opts:  # as scalar_from_start(): a seed for stage 2
            return obj.scalar_from_start(theta0, lower, opts["xtol_abs"])
        if theta0.size == 1:  # nAGQ = 0, as bobyqa(): Brent's method for one parameter
            return obj.scalar(theta0, lower, opts.get("xtol_abs", 1e-8))
        return obj.bobyqa(theta0, lower, **opts)

    def _stage2_compiled(
        self,
        pred: ModePredictor,
        u1: np.ndarray,
        nx: int,
        *,
        beta1: np.ndarray | None = None,
        tol_stay: float | None = None,
    ) -> LaplaceObjective | None:
        """Stage 2's criterion compiled (f2 of :meth:`_stage2_criterion`, with ``tol_stay``,
        by default the optimizer's, from the mode ``u1``, β = β₁ + R_X⁻¹δ with β₁ stage 1's
        unless given), or None where it does not apply (one parameter, AGQ, or PIRLS not
        compiled)."""
        if nx < 2 or self._ghq is not None:
            return None
        if not laplace_available(self.pirls, self._aic_const, nx):
            return None
        assert self._aic_const is not None
        return LaplaceObjective(
            self.pirls,
            False,
            self._aic_const,
            self._tol_stay if tol_stay is None else tol_stay,
            pred,
            nx,
            beta1=self._beta1 if beta1 is None else beta1,
            rx1_inv=self._Rx1_inv,
            warm=u1,
        )

    def _stage2_gradient(
        self,
        obj: LaplaceObjective | None,
        pred: ModePredictor,
        x0: np.ndarray,
        lower: np.ndarray,
    ) -> tuple[OptimizerResult | None, np.ndarray | None]:
        """Stage 2 by quasi-Newton steps with the criterion's gradient
        (:meth:`~mixedfx.glm.laplace_objective.LaplaceObjective.quasi_newton`) where it has a
        closed form: one scalar random-effects term, binomial-logit or Poisson-log, Laplace,
        the criterion compiled (``obj``), θ₁ and the path's θ at least ``_gradient_margin``
        (off the boundary, where the minimum may sit on it). Returns the answer and the
        gradient there.

        The answer is kept only when the search converged (steps below 1e-8 relative: the
        gradient is then ~1e-9) and the gradient is confirmed independently of its formula:
        along two fixed directions d, the central difference (f(x + hd) − f(x − hd)) / 2h
        (h = 1e-4) agrees with g·d to 1e-6 + 1e-8 |f| (a wrong gradient misses by O(1)), and
        f curves upwards. Otherwise (None, None), with the predictor ``pred`` of the modes
        and the last mode as they were: BOBYQA then runs from x₀ exactly as lme4's second
        stage.
        """
        if obj is None or self._ghq is not None or not x0[0] >= self._gradient_margin:
            return None, None
        gfam = gradient_family(self.pirls)
        if gfam < 0:
            return None, None
        xs, ms, ring = pred.storage(x0.size, obj.warm.size)
        saved = (xs.copy(), ms.copy(), ring.copy(), obj.warm.copy())
        obj.tol_stay = 0.0  # every mode to PIRLS's full tolerance: the gradient reads it
        start = obj.nevals
        qlower = lower.copy()  # a step below the margin ends the search
        qlower[:1] = self._gradient_margin
        res, grad, ok = obj.quasi_newton(x0, qlower, gfam)
        if ok and self._gradient_confirmed(obj, res, grad):
            res.nfev = obj.nevals - start
            return res, grad
        xs[:], ms[:], ring[:], obj.warm[:] = saved
        return None, None

    @staticmethod
    def _gradient_confirmed(obj: LaplaceObjective, res: OptimizerResult, grad: np.ndarray) -> bool:
        """Whether central differences along two fixed directions (unit length, every
        coordinate moved, signs and sizes mixed) agree with ``grad`` at ``res.x`` and find
        the criterion curved upwards there (:meth:`_stage2_gradient`)."""
        x, fx = res.x, res.fun
        n = x.size
        h = 1e-4
        k = np.arange(1, n + 1, dtype=float)
        dirs = np.array([np.cos(2.0 * k), np.sin(3.0 * k + 1.0)])
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        pts = np.concatenate([x + h * dirs, x - h * dirs])
        vals = obj.many(pts).tolist()
        tol = 1e-6 + 1e-8 * abs(fx)
        for r in range(2):
            fp, fm = vals[r], vals[2 + r]
            slope = (fp - fm) / (2.0 * h)
            curv = (fp - 2.0 * fx + fm) / (h * h)
            if not (abs(slope - float(grad @ dirs[r])) <= tol and curv > 0.0):
                return False
        return True

    def reoptimize(self, method: str) -> OptimizerResult:
        """Stage 2 (θ and β, u by PIRLS) by another optimizer from stage 1's answer, as lme4's
        ``allFit`` varies the optimizer of the second stage; the state is set at its answer.
        The engine is fitted first (stage 1 gives the start and R_X) if it is not."""
        if not self.fitted or self._beta1 is None:
            self.fit(check_conv=False)
        ntheta = self.design.theta_lower().size
        p = self.design.fixed.p
        warm = [self._u.copy()]
        f2, _ = self._stage2_criterion(warm)
        x0 = np.concatenate([self._theta1, np.zeros(p)])
        lower2 = np.concatenate([self.design.theta_lower(), np.full(p, -np.inf)])
        with self.pirls.blas_threads():
            res = minimize(f2, x0, lower2, method)
        theta, beta = res.x[:ntheta], self._to_beta(res.x[ntheta:])
        self.install(theta, beta, self.pirls.fit_u(theta, beta, warm[0]).u)
        self.optinfo = res
        return res

    def _to_beta(self, delta: np.ndarray) -> np.ndarray:
        """β from stage 2's whitened coordinates δ = R_X (β − β₁)."""
        b1 = self._beta1 if self._beta1 is not None else self._beta
        return b1 + self._Rx1_inv @ delta

    def _stage2_criterion(
        self,
        warm_u: list[np.ndarray],
        known: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        predictor: ModePredictor | None = None,
        tol_stay: float = 0.0,
    ) -> tuple[Callable[[np.ndarray], float], ModePredictor]:
        """The criterion over x = (θ, δ), and the predictor of its modes.

        u starts where the modes at the last evaluations predict
        (:class:`~mixedfx.glm.mode_predictor.ModePredictor`, ``predictor`` or a new one;
        ``known``, a point and its mode, seeds it), else from the last evaluation's;
        ``warm_u[0]`` is the last mode. The Laplace criterion (with the family's constant)
        runs through the lean compiled PIRLS where there is one, which with ``tol_stay`` > 0
        stops without the last Fisher step when that step is below ``tol_stay`` (relative).
        """
        ntheta = self.design.theta_lower().size
        pred = (
            predictor
            if predictor is not None
            else ModePredictor(2 * (ntheta + self.design.fixed.p) + 1)
        )
        if known is not None:
            pred.add(*known)
        const = self._aic_const
        lean = None
        if const is not None and self._ghq is None:
            lean = self.pirls.mode_evaluator(False, tol_stay)

        def f2(x: np.ndarray) -> float:
            theta = x[:ntheta]
            u0 = pred.predict(x)
            beta = self._to_beta(x[ntheta:])
            if lean is not None:
                u = np.array(warm_u[0], dtype=float) if u0 is None else u0
                pd, logdet = lean(theta, beta, u)  # u becomes the mode
                if not math.isfinite(pd) and u0 is not None:  # again from the last mode
                    u = np.array(warm_u[0], dtype=float)
                    pd, logdet = lean(theta, beta, u)
                if not math.isfinite(pd):
                    pred.clear()
                    return math.inf
                warm_u[0] = u
                pred.add(x, u)
                return pd + const + 2.0 * logdet  # laplace(): Σ d_i + aic const + ...
            res = self.pirls.fit_u(theta, beta, warm_u[0] if u0 is None else u0)
            if not np.isfinite(res.pdev) and u0 is not None:  # again from the last mode
                res = self.pirls.fit_u(theta, beta, warm_u[0])
            if not np.isfinite(res.pdev):
                pred.clear()
                return math.inf
            warm_u[0] = res.u
            pred.add(x, res.u)
            return self.criterion(theta, res)

        return f2, pred

    def install(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> None:
        """Set the state at (θ, β): conditional modes, μ, criterion. With compiled PIRLS the
        factor at the mode is made only when read (:meth:`factor_at_optimum`); otherwise
        PIRLS runs through it and leaves it there."""
        self._clear_cache()
        theta = np.asarray(theta, dtype=float).copy()
        beta = np.asarray(beta, dtype=float).copy()
        res = None
        if getattr(self.pirls, "compiled", False):
            res = self.pirls.fit_u(theta, beta, u)
            if not (math.isfinite(res.pdev) and math.isfinite(res.logdet_L)):
                res = None
        self._factored = res is None
        if res is None:
            res = self.pirls.fit_u_factored(theta, beta, u)
        self._theta, self._beta, self._u = theta, beta, res.u.copy()
        self._objective = self.laplace(res) if self.nAGQ == 0 else self.criterion(theta, res)
        self.pirls_result = res
        self.fitted = True
        fam = self.family
        if fam.has_dispersion:
            pearson = float(np.sum(self._wt * (self._y - res.mu) ** 2 / fam.variance(res.mu)))
            self._sigma = math.sqrt((pearson + float(res.u @ res.u)) / self.n)
        else:
            self._sigma = 1.0

    # ------------------------------------------------------------ results
    def factor_at_optimum(self) -> BlockedFactor:
        """``factor_u`` at the fitted mode: made here, once per fit, where :meth:`install`
        found the mode compiled (the same mode and factor as a factored install)."""
        self.require_fit()
        if not self._factored:
            self.pirls.fit_u_factored(self._theta, self._beta, self._u)
            self._factored = True
        return self.factor

    @cached_property
    def hessian(self) -> np.ndarray:
        """Finite-difference Hessian of the criterion over (θ, β) at the optimum (lme4's
        ``derivs``), computed in stage 2's whitened coordinates and mapped back."""
        self.require_fit()
        ntheta = self._theta.size
        p = self.p
        Rx = self._Rx1
        u_keep = self._u.copy()
        b1 = self._beta1 if self._beta1 is not None else self._beta
        # the criterion compiled where it can be (the same evaluations), else in Python
        pred = ModePredictor(2 * (ntheta + p) + 1)
        f: Callable[[np.ndarray], float] | None
        f = self._stage2_compiled(pred, u_keep, ntheta + p, beta1=b1, tol_stay=0.0)
        if f is None:
            f, _ = self._stage2_criterion([u_keep.copy()], predictor=pred)
        x = np.concatenate([self._theta, Rx @ (self._beta - b1)])
        lower = np.concatenate([self.design.theta_lower(), np.full(p, -np.inf)])
        _, H = fd_gradient_hessian(f, x, lower, h=1e-3)
        self.pirls.fit_u(self._theta, self._beta, u_keep)  # restore the factor at the mode
        J = np.eye(ntheta + p)
        J[ntheta:, ntheta:] = Rx
        return J.T @ H @ J

    @cached_property
    def vcov_unscaled(self) -> np.ndarray:
        """Covariance of β̂ / σ²: the β block of 2 H⁻¹ (lme4's default for GLMMs); the
        conditional (R_X'R_X)⁻¹ with a warning when H is not positive definite."""
        H = self.hessian
        ntheta = self._theta.size
        try:
            np.linalg.cholesky(H)
            V = 2.0 * np.linalg.inv(H)[ntheta:, ntheta:]
        except np.linalg.LinAlgError:
            try:
                V = self.vcov_conditional()
                how = "standard errors from the conditional (RX'RX)^-1 instead"
            except np.linalg.LinAlgError:
                V = np.full((self.p, self.p), np.nan)
                how = "nor can the conditional (RX'RX)^-1 be computed: standard errors are NaN"
            warnings.warn(
                f"the Hessian of the criterion is not positive definite at the optimum; {how}",
                ConvergenceWarning,
                stacklevel=3,
            )
        return 0.5 * (V + V.T) / self._sigma**2

    def vcov_conditional(self) -> np.ndarray:
        """σ² (R_X'R_X)⁻¹ at the optimum with β held fixed in PIRLS (lme4's
        ``vcov(m, use.hessian = FALSE)``)."""
        # R_X of the full penalized system at θ̂: joint PIRLS over (u, β) started from the fit
        # (it moves β by the Laplace-vs-PIRLS difference only) leaves factor_b at its mode
        self.pirls.fit_ub(self._theta, self._u, self._beta, compiled=False)
        assert self.pirls.factor_b is not None
        return self._sigma**2 * rx_crossprod_inverse(self.pirls.factor_b.Rx())
