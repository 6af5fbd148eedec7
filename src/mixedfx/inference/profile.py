"""Profile likelihood of a linear mixed model (lme4's ``profile`` and ``confint(m)``).

Parameters are on lme4's "sdcor" scale, named as lme4 names them: ``.sig01``, ``.sig02``, ...
(per term, in θ's order: a standard deviation on Λ's diagonal, a correlation below it), then
``.sigma``, then the fixed effects. For a parameter ψ with estimate ψ̂,

    ζ(ψ) = sign(ψ − ψ̂) √(D_min(ψ) − D̂),

where D_min(ψ) is the criterion minimized over all other parameters with ψ held fixed.

* Variance parameters: the criterion as a function of (θ, σ) — not profiled over σ —

      REML:  D(θ, σ) = log|L|² + log|R_X|² + (n − p) log(2πσ²) + r²(θ)/σ²
      ML:    D(θ, σ) = log|L|² + n log(2πσ²) + r²(θ)/σ²,

  evaluated through the fitted model's blocked factor (its design and cross-products are
  reused), with the other sd/cor parameters and σ found by BOBYQA.
* Fixed effects: β_j = b moves b·x_j into the offset; the ML deviance of that reduced model,
  minimized over θ (σ and the other β profile out), against the ML optimum. The reduced
  model's cross-products are refilled for each b from a fixed pattern; nothing is re-parsed.

Interval ends solve ζ(ψ) = ±z_{(1+level)/2} by Brent's method (lme4 interpolates a spline
through the profile; the roots agree to its interpolation error).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..errors import ModelError
from ..frame.checks import check_int, check_level, check_names
from ..frame.design import tril_indices_colmajor
from ..linalg.optimizer import bobyqa
from .parameters import sdcor_names, sdcor_to_theta, theta_to_sdcor

__all__ = ["Profiler"]

_LOG_2PI = math.log(2.0 * math.pi)


class Profiler:
    """Profiles of one fitted linear engine; the engine's factor is restored afterwards."""

    def __init__(self, model: Any):
        model = getattr(model, "engine", model)  # a fitted model or its engine
        model.require_fit()
        if not model.gaussian:
            raise ModelError(
                "profile likelihoods are implemented for linear mixed models (lmer) only; for a "
                "glmer fit use confint with method='wald' or method='boot'"
            )
        self.fitted_model = model
        if model.REML:  # lme4 profiles the ML deviance: a REML fit is refitted by ML first
            model = model.refit(REML=False)
        self.model = model
        self.ks = [t.k for t in model.design.terms]
        self.m = len(model.design.theta_lower())
        self.phi_hat = theta_to_sdcor(model.theta, model.sigma, self.ks)
        self.names = sdcor_names(model) + list(model.design.fixed.names)
        self.D_hat = model.objective
        n, p = model.n, model.p
        self._c = (n - p) if model.REML else n
        # lower/upper bounds of the sd/cor parameters
        lo, hi = [], []
        for k in self.ks:
            rows, cols = tril_indices_colmajor(k)
            for r, c in zip(rows, cols, strict=True):
                lo.append(0.0 if r == c else -1.0)
                hi.append(np.inf if r == c else 1.0)
        self.lower = np.array([*lo, 1e-10 * max(model.sigma, 1.0)])
        self.upper = np.array([*hi, np.inf])
        self._fixed_models: dict[int, Any] = {}
        self._ml_min: float | None = None

    # ------------------------------------------------------------ criteria
    def _D(self, phi: np.ndarray) -> float:
        """D(θ, σ) at the sd/cor parameters φ."""
        mod = self.model
        theta, sigma = sdcor_to_theta(phi, self.ks)
        st = mod.state_at(theta)
        if not st.ok or not sigma > 0:
            return math.inf
        ld = 2.0 * st.logdet_Lz + (2.0 * st.logdet_Rx if mod.REML else 0.0)
        s2 = sigma * sigma
        return ld + self._c * (_LOG_2PI + math.log(s2)) + st.pwrss / s2 - mod.sum_log_w

    def _var_profile(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over the other sd/cor parameters and σ of D, with φ_j = value."""
        free = np.array([i for i in range(self.m + 1) if i != j])

        def f(x: np.ndarray) -> float:
            phi = self.phi_hat.copy()
            phi[free] = x
            phi[j] = value
            return self._D(phi)

        x0 = np.clip(start[free], self.lower[free], self.upper[free])
        if free.size == 0:
            return f(x0), start
        res = bobyqa(f, x0, self.lower[free], self.upper[free], ftol_abs=1e-10, xtol_abs=1e-9)
        phi = self.phi_hat.copy()
        phi[free] = res.x
        phi[j] = value
        return res.fun, phi

    def _beta_model(self, j: int) -> Any:
        """The model with column j of X moved to the offset, fitted by ML (pattern reused)."""
        if j not in self._fixed_models:
            d = self.model.design
            keep = [c for c in range(d.fixed.p) if c != j]
            fixed = dataclasses.replace(
                d.fixed,
                X=np.ascontiguousarray(d.X[:, keep]),
                names=[d.fixed.names[c] for c in keep],
            )
            red = self.model.derive(design=dataclasses.replace(d, fixed=fixed), REML=False)
            self._fixed_models[j] = red
        return self._fixed_models[j]

    def _ml(self) -> tuple[float, np.ndarray, np.ndarray]:
        """The ML fit of the full model: (deviance, β̂_ML, θ̂_ML)."""
        if self._ml_min is None:
            full = self.model.refit(REML=False)
            self._ml_min = full.objective
            self._ml_beta = full.beta
            self._ml_theta = full.theta
        return self._ml_min, self._ml_beta, self._ml_theta

    def _beta_dev(self, j: int, b: float) -> float:
        """ML deviance minimized over θ with β_j = b (the previous fit as start)."""
        X, y = self.model.design.X, self.model.y
        red = self._beta_model(j)
        start = red.theta if red.fitted else self._ml()[2]  # the previous fit, or the ML θ
        fit = red.refit(y - b * X[:, j], start=start)
        self._fixed_models[j] = fit
        return fit.objective

    # -------------------------------------------------------------- zeta
    def zeta(self, name: str, value: float) -> float:
        """ζ of parameter ``name`` at ``value``."""
        i = self.names.index(name)
        try:
            if i <= self.m:
                Dmin, _ = self._var_profile(i, value, self.phi_hat)
                base, center = self.D_hat, self.phi_hat[i]
            else:
                j = i - self.m - 1
                base, beta_ml, _ = self._ml()
                Dmin = self._beta_dev(j, value)
                center = beta_ml[j]
        finally:
            self.model.state_at(self.model.theta)
        return math.copysign(math.sqrt(max(Dmin - base, 0.0)), value - center)

    def _scale(self, i: int) -> float:
        mod = self.model
        if i > self.m:
            j = i - self.m - 1
            return float(mod.sigma * np.sqrt(mod.vcov_unscaled[j, j]))
        v = abs(self.phi_hat[i])
        if self.lower[i] == -1.0:
            return 0.2
        return max(0.2 * v, 1e-3 * mod.sigma)

    def interval(self, name: str, z: float) -> tuple[float, float]:
        """The values where ζ = −z and ζ = +z (a bound when ζ stays inside it)."""
        i = self.names.index(name)
        if i <= self.m:
            center, lo_b, hi_b = self.phi_hat[i], self.lower[i], self.upper[i]
            if i == self.m:
                lo_b = 0.0
        else:
            _, beta_ml, _ = self._ml()
            center, lo_b, hi_b = beta_ml[i - self.m - 1], -np.inf, np.inf
        step = self._scale(i)
        ends = []
        for sign in (-1.0, 1.0):
            a = center
            b = center + sign * step
            target = sign * z
            found = None
            for _ in range(60):
                if (sign < 0 and b <= lo_b) or (sign > 0 and b >= hi_b):
                    b = lo_b if sign < 0 else hi_b
                    zb = self.zeta(name, b) if np.isfinite(b) else math.nan
                    if math.isfinite(zb) and sign * zb >= z:
                        found = (a, b)
                    break
                zb = self.zeta(name, b)
                if sign * zb >= z:
                    found = (a, b)
                    break
                a, b = b, center + 2.0 * (b - center)
            if found is None:
                ends.append(lo_b if sign < 0 else hi_b)
                continue
            fa, fb = found
            root = optimize.brentq(
                lambda x, t=target: self.zeta(name, x) - t,
                min(fa, fb),
                max(fa, fb),
                xtol=1e-10 * max(1.0, abs(center)),
                rtol=1e-12,
            )
            ends.append(root)
        return ends[0], ends[1]

    def table(
        self, which: list[str] | None = None, level_max: float = 0.99, npoints: int = 8
    ) -> pd.DataFrame:
        """The profile as a tidy table: parameter, value, zeta (for plotting, lme4's
        ``as.data.frame(profile(m))``), from ζ = −z to +z with z for ``level_max``."""
        level_max = check_level(level_max, "level_max")
        npoints = check_int(npoints, "npoints", low=1, high=1000)
        names = (
            self.names if which is None else check_names(which, "which", self.names, "parameter")
        )
        z = float(stats.norm.ppf(0.5 + level_max / 2))
        rows = []
        for name in names:
            lo, hi = self.interval(name, z)
            i = self.names.index(name)
            center = self.phi_hat[i] if i <= self.m else self._ml()[1][i - self.m - 1]
            grid = np.unique(
                np.concatenate(
                    [np.linspace(lo, center, npoints + 1), np.linspace(center, hi, npoints + 1)]
                )
            )
            for v in grid:
                if np.isfinite(v):
                    rows.append((name, float(v), self.zeta(name, float(v))))
        return pd.DataFrame(rows, columns=["parameter", "value", "zeta"])
