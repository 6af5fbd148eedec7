"""Nakagawa's R² and the intraclass correlation of a mixed model, as R's ``performance``
package computes them (``r2_nakagawa`` and ``icc``, with ``insight::get_variance``).

The variance of the linear predictor's scale is split into four parts (Nakagawa & Schielzeth
2013; Johnson 2014 for random slopes; Nakagawa, Johnson & Schielzeth 2017 for the
distribution-specific variance of non-Gaussian families):

    σ²_f = Var(X β̂)                       sample variance (denominator n − 1) of the fixed
                                           part; the offset is not part of it
    σ²_r = Σ_t (1/n) Σ_i z_ti' Σ_t z_ti     over the terms t with fewer levels than observations:
                                           z_ti is row i of term t's columns, Σ_t its
                                           covariance (an intercept-only term gives Σ_t itself)
    σ²_d = the distribution-specific variance (below)
    σ²_e = σ²_d + σ²_o                      σ²_o: the same sum over terms with one level per
                                           observation (GLMMs; observation-level effects)

and

    R²_marginal    = σ²_f / (σ²_f + σ²_r + σ²_e),
    R²_conditional = (σ²_f + σ²_r) / (σ²_f + σ²_r + σ²_e),
    ICC_adjusted   = σ²_r / (σ²_r + σ²_e),
    ICC_unadjusted = σ²_r / (σ²_f + σ²_r + σ²_e).

The distribution-specific variance σ²_d, as ``insight`` chooses it by default:

* Gaussian: σ̂² (the residual variance);
* binomial: π²/3 (logit), 1 (probit), π²/6 (cloglog) — the latent-scale variances;
* Poisson and negative binomial (log link): the lognormal approximation
  ``log(1 + V(μ)/μ²)`` with μ = exp(β̂₀) from the *null model* (the same random effects, an
  intercept only, refitted), i.e. ``log(1 + 1/μ)`` for Poisson and ``log(1 + 1/μ + 1/θ)`` for
  the negative binomial with shape θ (V(μ) = μ + μ²/θ); with the sqrt link 0.25;
* Gamma: σ̂² (``family$variance(σ)`` as insight evaluates it); inverse Gaussian: σ̂.

Two cases where ``insight`` (0.19) gives other numbers, by accident of its bookkeeping: for a
random-effect column that is not also a column of X (``(0 + Machine | Worker)`` with
treatment-coded ``Machine``), insight leaves that column's variance out; for uncorrelated
terms ``(x || g)`` it keeps only the first term of each grouping factor. Here every term and
every column counts, as the formula for σ²_r says.

A singular fit (a θ on its bound within ``tolerance``, insight's 1e-5) has no σ²_r: as
performance, the conditional R² and the ICC are then NaN and the marginal R² is
σ²_f / (σ²_f + σ²_e), with a warning.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np

from ..errors import DataError, MixedFXWarning, ModelError
from ..frame.design import ColumnMaker, FixedEffects

__all__ = [
    "ICC",
    "R2Nakagawa",
    "VarianceComponents",
    "distribution_variance",
    "icc",
    "r2_nakagawa",
    "variance_components",
]

TOLERANCE = 1e-5
"""insight's tolerance on θ's bounded elements below which the fit counts as singular."""

_BINOMIAL_LATENT = {"logit": math.pi**2 / 3.0, "probit": 1.0, "cloglog": math.pi**2 / 6.0}
_COUNT_FAMILIES = ("poisson", "negative.binomial")


@dataclasses.dataclass(frozen=True)
class VarianceComponents:
    """The parts of the variance that R² and the ICC are made of (``insight::get_variance``).

    Attributes
    ----------
    fixed : float
        σ²_f = Var(Xβ̂) (``var.fixed``).
    random : float
        σ²_r (``var.random``); NaN for a singular fit.
    distribution : float
        σ²_d (``var.distribution``).
    dispersion : float
        σ²_o, the variance of observation-level random effects (``var.dispersion``).
    """

    fixed: float
    random: float
    distribution: float
    dispersion: float

    @property
    def residual(self) -> float:
        """σ²_e = σ²_d + σ²_o (``var.residual``)."""
        return self.distribution + self.dispersion

    @property
    def total(self) -> float:
        """σ²_f + σ²_r + σ²_e."""
        return self.fixed + self.random + self.residual


@dataclasses.dataclass(frozen=True)
class R2Nakagawa:
    """Marginal and conditional R² (``performance::r2_nakagawa``)."""

    marginal: float
    conditional: float
    variances: VarianceComponents

    def __str__(self) -> str:
        return (
            "# R2 for Mixed Models\n\n"
            f"  Conditional R2: {_num(self.conditional)}\n"
            f"     Marginal R2: {_num(self.marginal)}"
        )

    __repr__ = __str__


@dataclasses.dataclass(frozen=True)
class ICC:
    """Adjusted and unadjusted intraclass correlation (``performance::icc``)."""

    adjusted: float
    unadjusted: float
    variances: VarianceComponents

    @property
    def conditional(self) -> float:
        """performance's ``ICC_conditional`` (the unadjusted ICC under its older name)."""
        return self.unadjusted

    def __str__(self) -> str:
        return (
            "# Intraclass Correlation Coefficient\n\n"
            f"    Adjusted ICC: {_num(self.adjusted)}\n"
            f"  Unadjusted ICC: {_num(self.unadjusted)}"
        )

    __repr__ = __str__


def _num(x: float) -> str:
    return "NA" if not math.isfinite(x) else f"{x:.3f}"


def _tolerance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise DataError(f"tolerance must be a non-negative number, got {value!r}")
    if not (math.isfinite(float(value)) and float(value) >= 0.0):
        raise DataError(f"tolerance must be a non-negative number, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ the parts
def _fixed_variance(engine: Any) -> float:
    """Var(Xβ̂), R's ``var`` (denominator n − 1); the offset is not part of it."""
    f = engine.design.X @ engine.beta
    return float(np.var(f, ddof=1)) if f.size > 1 else 0.0


def _term_variances(engine: Any) -> tuple[float, float]:
    """(σ²_r, σ²_o): (1/n) Σ_i z_i' Σ z_i summed over the terms with fewer levels than
    observations, and over the terms with one level per observation."""
    n = engine.n
    random = dispersion = 0.0
    for t, S in zip(engine.design.terms, engine.covariance_matrices(), strict=True):
        Z = t.Zt
        v = float(np.einsum("ij,jk,ik->", Z, S, Z)) / n
        if t.nlevels == n:
            dispersion += v
        else:
            random += v
    return random, (0.0 if engine.gaussian else dispersion)


def _variables(maker: Any) -> set[str]:
    """The data columns a term's or the fixed part's columns are made from."""
    return set(maker.variables())


def _slopes_not_fixed(design: Any) -> list[str]:
    """Variables with a random slope but no fixed effect (insight's check)."""
    fixed = _variables(design.fixed.maker)
    slopes: set[str] = set()
    for t in design.terms:
        slopes |= _variables(t.maker)
    return sorted(slopes - fixed)


def null_model_intercept(engine: Any) -> float:
    """β̂₀ of the null model: the same response, random effects, weights and offset with an
    intercept as the only fixed effect, refitted (what insight's ``null_model`` fits for the
    lognormal approximation). Cached on the engine."""
    key = "nakagawa_null_intercept"
    if key not in engine.cache:
        d = engine.design
        maker = ColumnMaker(names=["(Intercept)"], intercept=True, plain=[])
        fixed = FixedEffects(X=np.ones((d.n, 1)), names=["(Intercept)"], maker=maker)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MixedFXWarning)
            null = engine.refit(design=dataclasses.replace(d, fixed=fixed))
        engine.cache[key] = float(null.beta[0])
    return engine.cache[key]


def distribution_variance(engine: Any) -> float:
    """σ²_d, the distribution-specific variance on the link scale (see the module's notes).

    Raises
    ------
    ModelError
        For a family or link that Nakagawa's R² does not cover (as insight, which returns NA).
    """
    fam = engine.family
    name, link = fam.name, fam.link.name
    if name == "gaussian":
        return engine.sigma**2
    if name == "binomial":
        if link not in _BINOMIAL_LATENT:
            raise ModelError(
                f"Nakagawa's R² is defined for the binomial family with the logit, probit or "
                f"cloglog link, not link {link!r}"
            )
        return _BINOMIAL_LATENT[link]
    if name in _COUNT_FAMILIES:
        if link == "sqrt":
            return 0.25
        if link != "log":
            raise ModelError(
                f"Nakagawa's R² is defined for the {name} family with the log or sqrt link, "
                f"not link {link!r}"
            )
        mu = math.exp(null_model_intercept(engine))
        if mu < 6.0:
            warnings.warn(
                f"mu of {mu:.1f} is too close to zero, estimate of random effect variances may "
                "be unreliable (the lognormal approximation of the distribution-specific "
                "variance needs a mean count well above zero)",
                MixedFXWarning,
                stacklevel=4,
            )
        cv2 = float(fam.variance(np.array([mu]))[0]) / mu**2
        return math.log1p(cv2)
    if name == "Gamma":
        return engine.sigma**2
    if name == "inverse.gaussian":
        return engine.sigma
    raise ModelError(f"Nakagawa's R² is not defined for the {name} family")


def variance_components(engine: Any, tolerance: float = TOLERANCE) -> VarianceComponents:
    """σ²_f, σ²_r, σ²_d and σ²_o of a fitted model (``insight::get_variance``).

    Parameters
    ----------
    engine : fitted engine
    tolerance : float
        A θ element with lower bound 0 below this makes the fit singular: σ²_r is NaN, with a
        warning (insight's default 1e-5).
    """
    engine.require_fit()
    tol = _tolerance(tolerance)
    lower = engine.design.theta_lower()
    singular = bool(np.any(np.abs(engine.theta[lower == 0.0]) < tol))
    random, dispersion = _term_variances(engine)
    if singular:
        warnings.warn(
            "can't compute random effect variances: some variance components equal zero "
            "(singular fit; see the model's is_singular). The conditional R² and the ICC are "
            "NaN; decrease tolerance to force the computation",
            MixedFXWarning,
            stacklevel=3,
        )
        random = math.nan
    missing = _slopes_not_fixed(engine.design)
    if missing:
        warnings.warn(
            f"random slopes not present as fixed effects ({', '.join(missing)}): this "
            "inflates the conditional R² and the ICC",
            MixedFXWarning,
            stacklevel=3,
        )
    return VarianceComponents(
        fixed=_fixed_variance(engine),
        random=random,
        distribution=distribution_variance(engine),
        dispersion=dispersion,
    )


def r2_nakagawa(engine: Any, tolerance: float = TOLERANCE) -> R2Nakagawa:
    """Nakagawa's marginal and conditional R² (``performance::r2_nakagawa``).

    .. math::

        R^2_m = \\frac{σ^2_f}{σ^2_f + σ^2_r + σ^2_e}, \\qquad
        R^2_c = \\frac{σ^2_f + σ^2_r}{σ^2_f + σ^2_r + σ^2_e}.

    For a singular fit, R²_m = σ²_f / (σ²_f + σ²_e) and R²_c is NaN (as performance).
    """
    v = variance_components(engine, tolerance)
    if math.isnan(v.random):
        return R2Nakagawa(v.fixed / (v.fixed + v.residual), math.nan, v)
    return R2Nakagawa(v.fixed / v.total, (v.fixed + v.random) / v.total, v)


def icc(engine: Any, tolerance: float = TOLERANCE) -> ICC:
    """Adjusted and unadjusted ICC (``performance::icc``).

    .. math::

        ICC_{adj} = \\frac{σ^2_r}{σ^2_r + σ^2_e}, \\qquad
        ICC_{unadj} = \\frac{σ^2_r}{σ^2_f + σ^2_r + σ^2_e}.

    Both are NaN for a singular fit.
    """
    v = variance_components(engine, tolerance)
    return ICC(v.random / (v.random + v.residual), v.random / v.total, v)
