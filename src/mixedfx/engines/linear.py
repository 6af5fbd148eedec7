"""The linear engine: lme4's profiled REML/ML criterion over θ, minimized by BOBYQA.

For θ, the blocked Cholesky factor of the penalized least-squares system (cross-products A,
computed once from the design) gives (:mod:`mixedfx.linalg.criterion`)

    ML:   −2ℓ(θ)  = 2 log|L_Z| + n (1 + log(2π r²/n))
    REML: −2ℓ_R(θ) = 2 log|L_Z| + 2 log|R_X| + (n−p)(1 + log(2π r²/(n−p))),

and, at the optimum θ̂, β̂ and the conditional modes û by back-substitution, σ̂² = r²/n (ML) or
r²/(n − p) (REML).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..errors import ConvergenceWarning, DataError
from ..frame.design import Design
from ..glm.families import Family, Gaussian
from ..linalg.criterion import profiled_deviance, sigma_hat
from ..linalg.crossprod import CrossProductPlan, CrossProducts
from ..linalg.factor import BlockedFactor, FactorStats
from ..linalg.fused import SmallObjective
from ..linalg.gradient import canonical_theta, profiled_gradient, zero_curvatures
from ..linalg.moments import moment_start
from ..linalg.optimizer import (
    OptimizerResult,
    Probe,
    bobyqa,
    check_convergence,
    gradient_newton,
    minimize,
    newton_polish,
)
from ..linalg.starts import group_ols_theta, moment_theta
from .base import SINGULAR_TOL, Engine

__all__ = ["LinearEngine", "Units"]


@dataclass(frozen=True)
class Units:
    """The scales that bring the response and the weights to order one.

    The cross-products are formed from y' = (y − o)/s and w' = w/c, with s = max|y − o| and
    c = max w. The model for (y', w') is the same model with

        β = s β',   θ = θ'/√c,   σ = s √c σ',   u = s √c u',

    its −2 log-likelihood differs by 2n log s (ML) or 2(n − p) log s (REML), and its factor
    has log|L_Z| unchanged, R_X'R_X = c R_X'ᵀR_X', r² = s² c r'². The optimizer works on θ',
    so the fit does not depend on the units of y or of w (y·a and w·b give the same θ' for any
    a, b in double range, up to rounding) and the criterion stays finite.
    """

    s: float = 1.0
    c: float = 1.0

    @classmethod
    def of(cls, yeff: np.ndarray, weights: np.ndarray | None) -> Units:
        m = float(np.maximum.reduce(np.abs(yeff), initial=0.0))  # np.max's, without its wrapper
        s = m if m > 0 and math.isfinite(m) else 1.0
        c = 1.0
        if weights is not None and weights.size:
            mw = float(np.max(weights))
            if mw > 0 and math.isfinite(mw):
                c = mw
        return cls(s, c)

    @property
    def rc(self) -> float:
        """√c."""
        return math.sqrt(self.c)

    def sqrtw(self, weights: np.ndarray | None) -> np.ndarray | None:
        return None if weights is None else np.sqrt(weights / self.c)

    def criterion_shift(self, n: int, p: int, reml: bool) -> float:
        """−2 log L(y) − (−2 log L(y')) = 2 (n or n − p) log s."""
        return 2.0 * (n - p if reml else n) * math.log(self.s)


class LinearEngine(Engine):
    """A linear mixed model over one design (lme4's ``lmerMod``).

    Parameters
    ----------
    design : Design
    REML : bool
        Minimize the REML criterion (True) or the ML deviance (False).
    y : ndarray, optional
        A response replacing the design's (same rows), e.g. a simulated one.
    """

    gaussian: ClassVar[bool] = True
    family: Family = Gaussian()
    # BOBYQA may stop early: the Newton steps that follow take θ to the optimum (~1e-10), and
    # fewer BOBYQA evaluations cost less than the one or two Newton steps they save
    _bobyqa_options: ClassVar[dict[str, float]] = {"ftol_abs": 1e-5, "xtol_abs": 1e-5}
    # with the exact gradient BOBYQA only has to get near: Newton/BFGS steps on the gradient
    # finish (see _gradient_finish)
    _bobyqa_coarse: ClassVar[dict[str, float]] = {
        "ftol_abs": 0.0,
        "ftol_rel": 1e-5,
        "xtol_abs": 1e-5,
    }
    # below this size of the trailing block an evaluation costs less than the gradient's
    # Python overhead, and BOBYQA + the difference-based Newton polish is faster (measured on
    # InstEval subsamples: slower at m = 167, faster from m = 331)
    _gradient_min_m: ClassVar[int] = 300
    # the first quasi-Newton steps from BOBYQA's coarse answer overshoot (InstEval: 4 fewer
    # gradients with steps held to half of max(1, |θ_i|))
    _gradient_max_step: ClassVar[float] = 0.5
    # the quasi-Newton iterates converge superlinearly: a proposed step below this (relative
    # to max(1, |θ_i|)) means θ is about that close to the optimum, the criterion within
    # ~1e-10 of its minimum (InstEval: 2 fewer gradients than stepping down to 1e-9)
    _gradient_stop_step: ClassVar[float] = 1e-7
    # a first step longer than this (relative) is followed by a new Hessian from values (when
    # it is made from values: at most two free θ): InstEval, 2 fewer gradients for 1 value
    _gradient_refresh_step: ClassVar[float] = 1e-3
    # Newton steps from a close start (_close_start) are kept only with every diagonal θ
    # (internal units) of the start and the answer at least this far from its bound of 0
    _newton_margin: ClassVar[float] = 1e-2

    def __init__(
        self,
        design: Design,
        REML: bool = True,
        y: np.ndarray | None = None,
        *,
        units: Units | None = None,
        grouped: bool = True,
        A: CrossProducts | None = None,
    ):
        super().__init__(design)
        self.REML = bool(REML)
        self._n_failed = 0
        self._n_evals = 0
        if y is None:
            yy = design.y
        else:
            yy = np.asarray(y, dtype=float).reshape(-1)
            if yy.shape[0] != design.n:
                raise DataError(
                    f"new response has {yy.shape[0]} values; the model has {design.n} rows"
                )
            if not np.all(np.isfinite(yy)):
                i = int(np.flatnonzero(~np.isfinite(yy))[0])
                raise DataError(f"new response has a missing or infinite value (row {i + 1})")
        self._y = yy
        if A is not None:
            # cross-products formed elsewhere (a Dask pass over the rows) in ``units``:
            # from (y − o)/s and w/c exactly as below
            if units is None:
                raise ValueError("precomputed cross-products need the units they are in")
            self.units, self.plan, self.A = units, None, A
        else:
            self.units = units if units is not None else Units.of(self._yeff(yy), design.weights)
            self.plan = CrossProductPlan(design)
            self.A = self.plan.compute(
                self.units.sqrtw(design.weights), self._yeff(yy) / self.units.s
            )
        self.factor = BlockedFactor(self.A, design.terms, grouped=grouped)
        # small trailing block: the whole criterion in one compiled call, on scratch buffers
        # (the factor's own are left at the θ it was last updated for)
        small = self.factor.small
        self._fused = small.scratch() if small is not None else None

    def _yeff(self, y: np.ndarray) -> np.ndarray:
        off = self.design.offset
        return y - off if off is not None else y

    # ----------------------------------------------------------- interface
    @property
    def y(self) -> np.ndarray:
        return self._y

    @property
    def prior_weights(self) -> np.ndarray:
        w = self.design.weights
        return w if w is not None else np.ones(self.n)

    @property
    def has_dispersion(self) -> bool:
        return True

    @property
    def u_scale(self) -> float:
        return self.sigma

    def derive(
        self,
        *,
        y: np.ndarray | None = None,
        design: Design | None = None,
        REML: bool | None = None,
    ) -> LinearEngine:
        d = self.design if design is None else design
        yy = y if y is not None else (self._y if d is self.design else None)
        if yy is d.y:
            yy = None
        if yy is None and d is self.design and self.plan is None:  # cross-products given
            return LinearEngine(
                d, REML=self.REML if REML is None else REML, units=self.units, A=self.A
            )
        return LinearEngine(d, REML=self.REML if REML is None else REML, y=yy)

    def restart(self) -> np.ndarray:
        return self.theta

    def relative_theta(self) -> np.ndarray:
        """θ√c: θ for weights scaled to a maximum of 1 (the same as θ for unweighted fits and
        lme4's isSingular there)."""
        return self.theta * self.units.rc

    def refitter(self) -> Callable[[np.ndarray], LinearEngine]:
        """A function y ↦ this model refitted to response y from θ̂, for many responses (the
        bootstrap): the cross-products' pattern and the factor's buffers are made once and
        refilled per response (one compiled pass); it returns the same engine each time."""
        d = self.design
        units = self.units
        sqrtw = units.sqrtw(d.weights)
        # the balanced-design Schur precomputation holds the response: not for refills
        work = LinearEngine(d, self.REML, self._y, units=units, grouped=False)
        start = self.theta

        def refit(y: np.ndarray) -> LinearEngine:
            work.plan.compute(sqrtw, work._yeff(y) / units.s, out=work.A)
            work._y = y
            return work.fit(start=start, check_conv=False, polish=False)

        return refit

    # --------------------------------------------------------------- fit
    def _criterion(self, theta_int: np.ndarray, reml: bool | None = None) -> float:
        """The criterion in the original units at the internal θ' = θ√c."""
        reml = self.REML if reml is None else reml
        self._n_evals += 1
        stats = self.factor.update(theta_int)
        if not stats.ok:
            self._n_failed += 1
        crit = profiled_deviance(stats, self.n, self.p, reml, self.A.sum_log_w)
        return crit + self.units.criterion_shift(self.n, self.p, reml)

    def _moment_start(self) -> np.ndarray | None:
        """θ from the method of moments (Gao & Owen) for unweighted crossed or nested random
        intercepts (:func:`mixedfx.linalg.moments.moment_start`: a few ms from the
        cross-products and one pass for the residuals); None where it does not apply."""
        d = self.design
        if d.weights is not None or self.plan is None:
            return None
        return moment_start(self.A, d.terms, d.X, self._yeff(self._y) / self.units.s)

    def _objective_fn(self) -> Callable[[np.ndarray], float]:
        """:meth:`_criterion` at the engine's REML setting, as lean as it gets (the
        optimizer calls it some 50-100 times per fit)."""
        if self._fused is None:
            return self._criterion
        crit, reml, n, const = self._fused.criterion, self.REML, self.n, self._const(self.REML)

        def f(theta_int: np.ndarray) -> float:
            self._n_evals += 1
            v = crit(theta_int, reml, n, const)
            if v != v:  # NaN: the trailing block is not positive definite
                self._n_failed += 1
                return math.inf
            return v

        return f

    def _small_objective(self) -> SmallObjective | None:
        """The criterion of a small model for a minimization in compiled code
        (:class:`mixedfx.linalg.fused.SmallObjective`), counts reset; None for other models."""
        if self._fused is None:
            return None
        key = (self.REML, self._const(self.REML))
        cached = self.__dict__.get("_small")
        if cached is None or cached[0] != key:
            cached = (key, self._fused.objective(self.REML, self.n, key[1]))
            self.__dict__["_small"] = cached
        small = cached[1]
        if small is not None:
            small.reset()
        return small

    def _const(self, reml: bool) -> float:
        """What the criterion adds to the factor's terms: −Σ log w and the units' shift
        (fixed for the engine: its weights and units do not change)."""
        consts = self.__dict__.get("_consts")
        if consts is None or consts[0] != self.A.sum_log_w:
            s = self.A.sum_log_w
            u = self.units
            consts = (
                s,
                u.criterion_shift(self.n, self.p, False) - s,
                u.criterion_shift(self.n, self.p, True) - s,
            )
            self.__dict__["_consts"] = consts
        return consts[2] if reml else consts[1]

    def _criterion_many(self, thetas: np.ndarray) -> np.ndarray:
        """:meth:`_criterion` at every row of ``thetas``, in one compiled call (only with the
        fused criterion of a small model)."""
        assert self._fused is not None
        vals = self._fused.criterion_many(thetas, self.REML, self.n, self._const(self.REML))
        self._n_evals += vals.size
        bad = np.isnan(vals)
        if bad.any():
            self._n_failed += int(bad.sum())
            vals[bad] = math.inf
        return vals

    def objective_at(self, theta: np.ndarray, REML: bool | None = None) -> float:
        """The profiled criterion at θ: REML criterion or ML deviance (−2 log-likelihood).

        Refactors at θ; :meth:`install` puts the factor back at the optimum."""
        return self._criterion(np.asarray(theta, dtype=float) * self.units.rc, REML)

    def state_at(self, theta: np.ndarray) -> FactorStats:
        """log|L_Z|, log|R_X| and r² at θ in the original units (the factor is left at θ)."""
        u = self.units
        st = self.factor.update(np.asarray(theta, dtype=float) * u.rc)
        if not st.ok:
            return st
        return FactorStats(
            st.logdet_Lz, st.logdet_Rx + 0.5 * self.p * math.log(u.c), st.pwrss * u.s**2 * u.c
        )

    def current_vcov_unscaled(self) -> np.ndarray:
        """(R_X'R_X)⁻¹ in the original units at the θ the factor was last computed for."""
        return self.factor.vcov_unscaled() / self.units.c

    @property
    def sum_log_w(self) -> float:
        """Σ log w of the prior weights (0 without weights)."""
        return self.A.sum_log_w + self.n * math.log(self.units.c)

    def fit(
        self, start: Any = None, *, check_conv: bool = True, polish: bool = True
    ) -> LinearEngine:
        """Minimize the profiled criterion over θ with BOBYQA from ``start`` (default: lme4's,
        1 on Λ's diagonal and 0 elsewhere), finished by Newton steps on the free θ
        (:func:`mixedfx.linalg.optimizer.newton_polish`); lme4's gradient check when
        ``check_conv``; ``polish=False`` skips the Newton steps (bootstrap replicates, whose
        Monte Carlo error is far larger). The optimizer works on θ' = θ√c (c the weights' scale, see
        :class:`Units`), which does not depend on the units of the data.

        A large trailing block (``_gradient_min_m`` rows or more) is finished by steps on the
        exact gradient (:meth:`_gradient_finish`) instead; crossed or nested random intercepts
        start from the method of moments and, when each zero variance there is a minimum along
        its θ_j, skip BOBYQA altogether."""
        d = self.design
        lower = d.theta_lower()
        rc = self.units.rc
        x0 = d.theta_start() if start is None else np.asarray(start, dtype=float) * rc
        if x0.shape != lower.shape:
            raise DataError(
                f"start must have {lower.size} values (θ in lme4's order), got {x0.size}"
            )
        x0 = np.maximum(x0, lower)
        self._n_failed = 0
        self._n_evals = 0
        # a small model: BOBYQA (Brent's method for one θ) and the Newton steps in compiled
        # code, the same steps as through Python
        compiled = lower.size >= 2 or (lower.size == 1 and math.isfinite(lower[0]))
        small = self._small_objective() if compiled else None
        f = small if small is not None else self._objective_fn()

        def run_bobyqa(x: np.ndarray, **opts: Any) -> OptimizerResult:
            if small is None:
                return bobyqa(f, x, lower, **opts)
            if lower.size == 1:
                return small.scalar(x, lower, opts.get("xtol_abs", 1e-8))
            return small.bobyqa(x, lower, **opts)

        with self.factor.blas_threads():
            # without the Newton steps, BOBYQA's own (lme4's) tolerances; with the exact
            # gradient (a large trailing block, where an evaluation outweighs the gradient's
            # Python overhead) BOBYQA only has to get near
            use_grad = polish and self.A.m >= self._gradient_min_m
            moments = self._moment_start() if use_grad and start is None else None
            if moments is not None:  # crossed/nested intercepts: start near the optimum
                x0 = np.maximum(moments * rc, lower)
            given = start is not None or moments is not None
            direct, f_def = None, None
            if moments is not None:
                # the moments are close: Newton/BFGS on the exact gradient from there, no
                # BOBYQA, when every zero variance of the start is a minimum along its θ_j
                # (else BOBYQA's bounded search decides whether to leave it). lme4's default
                # start is evaluated first (the factor is then left at the answer)
                f_def = f(d.theta_start())
                direct = self._gradient_finish(x0, math.inf, strict=True)
                if direct is not None and not direct[1] <= f_def:
                    direct = None
            # a small model with a cheap start close to the optimum: Newton steps from there
            many = self._criterion_many if self._fused is not None else None
            newton = None
            if direct is None and start is None and polish and not use_grad:

                def steps(x: np.ndarray, fx: float) -> tuple[np.ndarray, float, Probe]:
                    if small is not None:
                        return small.polish(x, fx, lower)
                    return newton_polish(f, x, fx, lower, many=many)

                newton = self._newton_from_close_start(f, steps, lower)
            if direct is not None:
                res = OptimizerResult(direct[0], direct[1], 0, "success")
            elif newton is not None:
                res = OptimizerResult(newton[0], newton[1], 0, "success")
            else:
                res = self._bobyqa_start(f, run_bobyqa, x0, given, use_grad, polish, f_def)
            # BOBYQA's stopping rule can leave a flat criterion ~1e-9 above its minimum:
            # Newton steps from its answer finish the job (2m evaluations when it is done)
            grad = None
            if direct is not None:
                x, fx, grad = direct
                probe = None
            elif newton is not None:
                x, fx, probe = newton
            elif polish:
                done = self._gradient_finish(res.x, res.fun) if use_grad else None
                if done is not None:
                    x, fx, grad = done
                    probe = None
                else:  # no exact gradient: BOBYQA to its tolerances, then differences
                    if use_grad:
                        res = bobyqa(f, res.x, lower, **self._bobyqa_options)
                    if small is not None:
                        x, fx, probe = small.polish(res.x, res.fun, lower)
                    else:
                        x, fx, probe = newton_polish(f, res.x, res.fun, lower, many=many)
            else:  # many refits of one model (the bootstrap): BOBYQA's answer is enough
                x, fx, probe = res.x, res.fun, None
            if small is not None:
                self._n_evals += small.nevals
                self._n_failed += small.nfailed
                small.reset()
            res.x, res.fun, res.nfev = x / rc, fx, self._n_evals
            self.optinfo = res
            self.convergence_messages = (
                check_convergence(f, x, lower, probe=probe, many=many, gradient=grad)
                if check_conv
                else []
            )
            if small is not None:  # failures among the check's evaluations
                self._n_failed += small.nfailed
            # the last gradient was taken at x: its factor serves the checks and the install
            ready = grad is not None and np.array_equal(self.factor.theta, x)
        lost = self._digits_lost(x, ready)
        if lost > 8.0:
            msg = (
                f"the residual sum of squares is about 1e{-lost:.0f} of the response's: "
                f"about {lost:.0f} of 16 significant digits are lost (random-effects variances "
                "far larger than the residual variance); the estimates may be inaccurate"
            )
            self.convergence_messages.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        if self._n_failed and np.any((lower == 0.0) & (x < SINGULAR_TOL)):
            # the factor broke down somewhere (random-effects variances ~1e16 times the
            # residual variance or more) and the answer is on the boundary: the optimum may lie
            # where the criterion cannot be computed in double precision
            msg = (
                "the criterion could not be computed at some θ (random-effects variances about "
                "1e16 times the residual variance or more, beyond double precision) and the fit "
                "ended at a zero variance: the estimates may be wrong; check whether the "
                "grouping factors determine the response (almost) exactly"
            )
            self.convergence_messages.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        # the digits check left the factor at x when it was not there already
        ready = self.factor.stats is not None and np.array_equal(self.factor.theta, (x / rc) * rc)
        self._install(x / rc, ready)
        return self

    def _close_start(self) -> np.ndarray | None:
        """A θ (internal units) close to the optimum where one is cheap
        (:mod:`mixedfx.linalg.starts`): per-level least squares for one random-effects term,
        the method of moments for crossed or nested random intercepts without weights; None
        for other models or where the estimate has a zero variance."""
        d = self.design
        if len(d.terms) == 1:
            return group_ols_theta(self.A, d.terms[0].k)
        if d.weights is None and self.plan is not None:
            return moment_theta(self.A, d.terms, d.X, self._yeff(self._y) / self.units.s)
        return None

    def _newton_from_close_start(
        self,
        f: Callable[[np.ndarray], float],
        steps: Callable[[np.ndarray, float], tuple[np.ndarray, float, Probe]],
        lower: np.ndarray,
    ) -> tuple[np.ndarray, float, Probe] | None:
        """From lme4's default start: Newton steps (``steps(x, f(x))``:
        :func:`mixedfx.linalg.optimizer.newton_polish` on ``f``, compiled for a small model)
        straight from :meth:`_close_start` (sleepstudy's and Penicillin's REML θ itself, to
        1e-7), in place of BOBYQA. The answer (x, f(x), the last probe) is kept only when the
        steps converge, every diagonal θ of the start and of the answer is at least
        ``_newton_margin`` (a variance near zero is left to BOBYQA's bounded search), and the
        criterion there is no higher than at lme4's default start; else None, and BOBYQA from
        lme4's start runs as without it."""
        x0 = self._close_start()
        if x0 is None:
            return None
        diag = lower == 0.0
        margin = self._newton_margin
        if not np.all(x0[diag] >= margin):
            return None
        f_def = f(self.design.theta_start())
        x, fx, probe = steps(x0, f(x0))
        if probe.converged and fx <= f_def and np.all(x[diag] >= margin):
            return x, fx, probe
        return None

    def _bobyqa_start(
        self,
        f: Callable[[np.ndarray], float],
        run: Callable[..., OptimizerResult],
        x0: np.ndarray,
        given: bool,
        use_grad: bool,
        polish: bool,
        f_def: float | None = None,
    ) -> OptimizerResult:
        """BOBYQA from x0: to lme4's tolerances, coarsely when the exact gradient finishes
        (``use_grad``), or to nlopt's defaults without the polish. From a given start, lme4's
        default start is tried too (``f_def``: its value, when already known). ``run(x,
        **options)`` is BOBYQA on ``f`` from x (compiled for a small model)."""
        d = self.design
        # From a given start (refits, profiles, the bootstrap, the moments) nlopt's default
        # first step is a fraction of each |θ_i|: a θ_i near 0 would get a step too small to
        # leave it.
        step = np.maximum(0.1 * np.abs(x0), 0.05) if given else None
        opts = (self._bobyqa_coarse if use_grad else self._bobyqa_options) if polish else {}
        res = run(x0, initial_step=step, **opts)
        if given:
            # a start far from the optimum can leave BOBYQA on a plateau or at a bound:
            # compare with lme4's default start and keep the better answer
            x_def = d.theta_start()
            if (f(x_def) if f_def is None else f_def) < res.fun:
                alt = run(x_def)
                if alt.fun < res.fun:
                    alt.nfev += res.nfev
                    res = alt
        return res

    def _gradient_finish(
        self, x: np.ndarray, fx: float, strict: bool = False
    ) -> tuple[np.ndarray, float, np.ndarray] | None:
        """From BOBYQA's (coarse) answer, Newton/BFGS steps on the exact gradient of the
        criterion (:func:`mixedfx.linalg.gradient.profiled_gradient`,
        :func:`mixedfx.linalg.optimizer.gradient_newton`) at the internal θ'; the answer with
        lme4's signs (a non-negative diagonal of each Λ block). None where the gradient is not
        available or the steps did not improve on ``fx``.

        A θ_j = 0 of a scalar term at x gets its exact second derivative
        (:func:`mixedfx.linalg.gradient.zero_curvatures`) in place of a difference of
        gradients. ``strict``: give up (None) unless every zero θ_j at x has one, and it is
        positive (x is then a minimum along each of them, where the unconstrained steps,
        whose gradient there is 0, would stay even at a maximum). Up to two remaining
        columns of the starting Hessian come from values of the criterion (one factorization
        each, no inverse: InstEval, 3 values in place of 2 gradients)."""
        n, p, reml = self.n, self.p, self.REML

        def fg(t: np.ndarray) -> tuple[float, np.ndarray | None]:
            v = self._criterion(t)
            if not math.isfinite(v):
                return v, None
            return v, profiled_gradient(self.factor, n, p, reml)

        def columns(t: np.ndarray) -> dict[int, np.ndarray] | None:
            zeros = np.flatnonzero(t == 0.0)
            if zeros.size == 0:
                return {}
            curv = zero_curvatures(self.factor, n, p, reml)
            if curv is None:
                curv = {}
            if strict and not all(curv.get(int(i), 0.0) > 0.0 for i in zeros):
                return None
            out = {}
            for i, c in curv.items():
                col = np.zeros(t.size)
                col[i] = c
                out[i] = col
            return out

        out = gradient_newton(
            fg,
            x,
            max_step=self._gradient_max_step,
            columns=columns,
            stop_step=self._gradient_stop_step,
            f=self._criterion,
            refresh_size=self._gradient_refresh_step,
        )
        if out is None:
            return None
        xg, fg_val, g = out
        xc = canonical_theta(xg, self.factor.ks)
        if not np.array_equal(xc, xg):
            fg_val, g = fg(xc)
            if g is None:
                return None
        if not fg_val <= fx + 1e-12 * max(1.0, abs(fx)):
            return None
        return xc, fg_val, g

    def _digits_lost(self, theta_int: np.ndarray, ready: bool = False) -> float:
        """log10 of (weighted) y'y over r² at θ': the digits the Schur complement's
        subtraction cancels in the response row (0 for an ordinary fit). ``ready``: the
        factor is at θ' already."""
        yy = float(self.A.A22[-1, -1])
        st = self.factor.stats if ready and self.factor.stats is not None else None
        if st is None:
            st = self.factor.update(theta_int)
        if not st.ok or not st.pwrss > 0.0 or not yy > 0.0:
            return 0.0
        return max(0.0, math.log10(yy / st.pwrss))

    def reoptimize(self, method: str) -> OptimizerResult:
        """Fit from lme4's start with another optimizer (see
        :func:`mixedfx.linalg.optimizer.minimize`; no Newton polish, so that optimizers can
        be compared as lme4's ``allFit`` does); the state is set at its answer."""
        d = self.design
        lower = d.theta_lower()
        with self.factor.blas_threads():
            res = minimize(self._criterion, d.theta_start(), lower, method)
        res.x = res.x / self.units.rc
        self.optinfo = res
        self.install(res.x)
        return res

    def install(self, theta: np.ndarray) -> None:
        """Set the state (factor, β, u, σ, criterion) to the values at θ."""
        self._install(theta, False)

    def _install(self, theta: np.ndarray, ready: bool) -> None:
        """:meth:`install`; ``ready``: the factor is at θ already (the fit's last step)."""
        self._clear_cache()
        u = self.units
        theta = np.asarray(theta, dtype=float)
        stats = self.factor.stats if ready else None
        if stats is None:
            stats = self.factor.update(theta * u.rc)
        self._theta = theta.copy()
        self._objective = profiled_deviance(
            stats, self.n, self.p, self.REML, self.A.sum_log_w
        ) + u.criterion_shift(self.n, self.p, self.REML)
        self._sigma = sigma_hat(stats, self.n, self.p, self.REML) * u.s * u.rc
        u_int, beta_int = self.factor.solve()
        self._u = u_int * (u.s * u.rc)
        self._beta = beta_int * u.s
        self.fitted = True

    # ------------------------------------------------------------ results
    @cached_property
    def vcov_unscaled(self) -> np.ndarray:
        """(R_X'R_X)⁻¹ at θ̂, in the original units."""
        self.require_fit()
        self.factor.update(self._theta * self.units.rc)
        return self.current_vcov_unscaled()
