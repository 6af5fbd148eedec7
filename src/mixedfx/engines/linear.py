"""The linear engine: lme4's profiled REML/ML criterion over θ, minimized by BOBYQA.

For θ, the blocked Cholesky factor of the penalized least-squares system (cross-products A,
computed once from the design) gives (:mod:`mixedfx.linalg.criterion`)

    ML:   −2ℓ(θ)  = 2 log|L_Z| + n (1 + log(2π r²/n))
    REML: −2ℓ_R(θ) = 2 log|L_Z| + 2 log|R_X| + (n−p)(1 + log(2π r²/(n−p))),

and, at the optimum θ̂, β̂ and the conditional modes û by back-substitution, σ̂² = r²/n (ML) or
r²/(n − p) (REML).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..errors import DataError
from ..frame.design import Design
from ..glm.families import Family, Gaussian
from ..linalg.criterion import profiled_deviance, sigma_hat
from ..linalg.crossprod import CrossProductPlan, CrossProducts, crossproducts
from ..linalg.factor import BlockedFactor
from ..linalg.optimizer import bobyqa, check_convergence, newton_polish
from .base import Engine

__all__ = ["LinearEngine"]


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

    def __init__(
        self,
        design: Design,
        REML: bool = True,
        y: np.ndarray | None = None,
        *,
        A: CrossProducts | None = None,
        grouped: bool = True,
    ):
        super().__init__(design)
        self.REML = bool(REML)
        if A is not None:
            self._y = design.y
            self.A = A
        elif y is None:
            self._y = design.y
            self.A: CrossProducts = crossproducts(design)
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
            yeff = yy - design.offset if design.offset is not None else yy
            self.A = crossproducts(design, y=yeff)
        self.factor = BlockedFactor(self.A, design.terms, grouped=grouped)

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
        return LinearEngine(d, REML=self.REML if REML is None else REML, y=yy)

    def restart(self) -> np.ndarray:
        return self.theta

    def refitter(self) -> Callable[[np.ndarray], LinearEngine]:
        """A function y ↦ this model refitted to response y from θ̂, for many responses (the
        bootstrap): the cross-products' pattern and the factor's buffers are made once and
        refilled per response (one compiled pass); it returns the same engine each time."""
        d = self.design
        plan = CrossProductPlan(d)
        sqrtw = np.sqrt(d.weights) if d.weights is not None else None
        off = d.offset

        def yeff(y: np.ndarray) -> np.ndarray:
            return y - off if off is not None else y

        # the balanced-design Schur precomputation holds the response: not for refills
        work = LinearEngine(d, self.REML, A=plan.compute(sqrtw, yeff(self._y)), grouped=False)
        start = self.theta

        def refit(y: np.ndarray) -> LinearEngine:
            plan.compute(sqrtw, yeff(y), out=work.A)
            work._y = y
            return work.fit(start=start, check_conv=False)

        return refit

    # --------------------------------------------------------------- fit
    def objective_at(self, theta: np.ndarray, REML: bool | None = None) -> float:
        """The profiled criterion at θ: REML criterion or ML deviance (−2 log-likelihood).

        Refactors at θ; :meth:`install` puts the factor back at the optimum."""
        stats = self.factor.update(theta)
        reml = self.REML if REML is None else REML
        return profiled_deviance(stats, self.n, self.p, reml, self.A.sum_log_w)

    def fit(self, start: Any = None, *, check_conv: bool = True) -> LinearEngine:
        """Minimize the profiled criterion over θ with BOBYQA from ``start`` (default: lme4's,
        1 on Λ's diagonal and 0 elsewhere), finished by Newton steps on the free θ
        (:func:`mixedfx.linalg.optimizer.newton_polish`); lme4's gradient check when
        ``check_conv``."""
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
            # BOBYQA's stopping rule can leave a flat criterion ~1e-9 above its minimum:
            # Newton steps from its answer finish the job (2m evaluations when it is done)
            x, fx, probe = newton_polish(self.objective_at, res.x, res.fun, lower)
            res.nfev += int(probe.idx.size) * 2
            res.x, res.fun = x, fx
            self.optinfo = res
            self.convergence_messages = (
                check_convergence(self.objective_at, x, lower, probe=probe) if check_conv else []
            )
        self.install(x)
        return self

    def install(self, theta: np.ndarray) -> None:
        """Set the state (factor, β, u, σ, criterion) to the values at θ."""
        self._clear_cache()
        stats = self.factor.update(theta)
        self._theta = np.asarray(theta, dtype=float).copy()
        self._objective = profiled_deviance(stats, self.n, self.p, self.REML, self.A.sum_log_w)
        self._sigma = sigma_hat(stats, self.n, self.p, self.REML)
        self._u, self._beta = self.factor.solve()
        self.fitted = True

    # ------------------------------------------------------------ results
    @cached_property
    def vcov_unscaled(self) -> np.ndarray:
        """(R_X'R_X)⁻¹ at θ̂."""
        self.require_fit()
        return self.factor.vcov_unscaled()
