"""lme4's ``glmer.nb``: a negative binomial mixed model with its shape θ estimated.

For a fixed shape θ (written θ_nb below, to keep it apart from the random-effects parameters
θ), ``glmer(..., family=NegativeBinomial(θ_nb))`` is an ordinary GLMM: counts y with mean
μ = g⁻¹(η), η = o + Xβ + ZΛu, and variance μ + μ²/θ_nb. Its Laplace (or AGQ) criterion,
minimized over (θ, β), gives the profiled deviance

    D(θ_nb) = min_{θ, β} −2 log L(θ, β, θ_nb),

and the maximum-likelihood θ̂_nb minimizes D. lme4's ``glmer.nb`` finds it in three steps;
:func:`glmer_nb` takes the same first two and a faster third one:

1. a Poisson GLMM; θ_nb's starting value is MASS's ``theta.ml`` for its fitted means
   (lme4's ``est_theta``);
2. the GLMM at that θ_nb;
3. lme4 minimizes D over t = log θ_nb by Brent's method (R's ``optimize`` on log θ ± 3, tol
   5e-5), a GLMM refitted for each t. Here the zero of D'(t) is found instead: at the inner
   optimum the gradient over (θ, β) vanishes, so (envelope theorem)

       D'(t) = ∂/∂t [−2 log L(θ̂, β̂, e^t)]   at fixed (θ̂, β̂),

   a central difference of the Laplace criterion with û found by PIRLS (no refit). A Newton
   step with the fixed-(θ, β) curvature (larger than D''s, so the step is lengthened),
   doubled until D' changes sign, brackets the zero; Brent's root finder (tol 5e-5 on t)
   then needs a few more GLMMs: five to seven fits in all where lme4 takes ten to twenty.
   Each GLMM starts from the previous one's θ, and PIRLS is converged fully, so D is smooth.
   Should D' not change sign inside the interval, D itself is minimized as lme4 does.

The result is the GLMM refitted at θ̂_nb (with lme4's convergence checks): its standard errors
are those of the fit at fixed θ_nb (as lme4's), and its parameter count includes θ_nb (lme4's
``npar``: AIC, BIC, df.resid and likelihood-ratio tests count it). Copies (``refit``,
``update``, the bootstrap's refits) keep θ_nb fixed at θ̂_nb, as lme4's do.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._lazy import LazyModule
from ..engines.generalized import GeneralizedEngine
from ..errors import ConvergenceWarning, ModelError, SingularFitWarning
from ..frame.design import Design
from ..glm.families import NegativeBinomial, Poisson
from .base import Call
from .glmer import GeneralizedLinearMixedModel

__all__ = ["NegativeBinomialMixedModel", "ThetaSearch", "glmer_nb"]

optimize = LazyModule("scipy.optimize")


@dataclass
class ThetaSearch:
    """How θ_nb was estimated: its starting value, the interval searched and every
    evaluation of the profiled deviance D(θ_nb) (``table``: theta, deviance, in order)."""

    theta_start: float
    interval: tuple[float, float]
    table: pd.DataFrame
    tol: float

    @property
    def nevals(self) -> int:
        return len(self.table)


class NegativeBinomialMixedModel(GeneralizedLinearMixedModel):
    """A negative binomial GLMM whose shape θ_nb was estimated by :func:`glmer_nb`.

    Everything of :class:`~mixedfx.GeneralizedLinearMixedModel` (summary, predict, simulate,
    confint, bootstrap, ``mixedfx.anova``), at θ_nb = θ̂_nb: ``family`` is
    ``NegativeBinomial(theta=θ̂_nb)`` and is kept by every copy (``refit``, ``update``, the
    bootstrap's refits), which therefore hold θ_nb fixed at θ̂_nb — as lme4's ``refit``,
    ``update`` and ``bootMer`` of a ``glmer.nb`` fit do.
    """

    _option_names: ClassVar[tuple[str, ...]] = ("family", "nAGQ")
    engine: GeneralizedEngine
    theta_search: ThetaSearch | None = None
    """The search for θ̂_nb (None for a copy)."""

    def __init__(
        self,
        formula: str,
        data: Any,
        family: NegativeBinomial,
        weights: Any = None,
        offset: Any = None,
        nAGQ: int = 1,
        *,
        design: Design | None = None,
    ):
        if not isinstance(family, NegativeBinomial):
            raise ModelError(f"family must be a mixedfx.families.NegativeBinomial, got {family!r}")
        super().__init__(formula, data, family, weights, offset, nAGQ, design=design)

    @classmethod
    def _make_engine(cls, design: Design, call: Call) -> GeneralizedEngine:
        opts = dict(call.options)
        family = opts["family"]
        if not isinstance(family, NegativeBinomial):
            raise ModelError(
                f"a negative binomial model keeps its family; got family={family!r}: use "
                "mixedfx.glmer for another family"
            )
        return GeneralizedEngine(design, family, _nagq(opts["nAGQ"]))

    @property
    def nb_theta(self) -> float:
        """θ̂_nb, the negative binomial shape (lme4's ``getME(m, "glmer.nb.theta")``)."""
        return float(self.family.theta)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        if not self.engine.fitted:
            return f"<NegativeBinomialMixedModel {self.formula!r} (not fitted)>"
        return (
            f"<NegativeBinomialMixedModel {self.formula!r} ({self.family.label}, "
            f"{self.family.link.name}): -2 log-likelihood {self.objective:.4f}, n = {self.n}>"
        )


_SLOPE_STEP = 1e-4
"""Step in log θ_nb of the central differences of the profile's slope."""


def _find_root(
    g: Any, curvature: dict[float, float], t0: float, lo: float, hi: float, tol: float
) -> float | None:
    """A zero of the profile's slope g in [lo, hi], from t0: a first step by Newton's method
    with the (larger) curvature at fixed (θ, β), doubled until g changes sign, then Brent's
    root finder on the bracket. None when g does not change sign (or is not finite)."""
    ga = g(t0)
    if not math.isfinite(ga):
        return None
    if ga == 0.0:
        return t0
    direction = -math.copysign(1.0, ga)
    c = curvature.get(t0, math.nan)
    step = 1.5 * abs(ga) / c if math.isfinite(c) and c > 0 else 0.1
    step = min(max(step, 0.02), 1.0)
    ta = t0
    while True:
        tb = min(max(ta + direction * step, lo), hi)
        if tb == ta:
            return tb  # at the end of the interval: the caller warns
        gb = g(tb)
        if not math.isfinite(gb):
            return None
        if gb == 0.0:
            return tb
        if math.copysign(1.0, gb) != math.copysign(1.0, ga):
            a, b = sorted((ta, tb))
            return float(optimize.brentq(g, a, b, xtol=tol))
        ta, ga = tb, gb
        step *= 2.0


def _nagq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ModelError(f"nAGQ must be a whole number (0, 1, or more nodes), got {value!r}")
    if not float(value).is_integer():
        raise ModelError(f"nAGQ must be a whole number (0, 1, or more nodes), got {value!r}")
    return int(value)


def _check_tol(tol: Any) -> float:
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.number):
        raise ModelError(f"tol must be a positive number, got {tol!r}")
    t = float(tol)
    if not (math.isfinite(t) and t > 0):
        raise ModelError(f"tol must be a positive number, got {tol!r}")
    return t


def _check_theta_start(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ModelError(f"theta_start must be a positive number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ModelError(f"theta_start must be a positive number, got {value!r}")
    return v


def glmer_nb(
    formula: str,
    data: Any,
    weights: Any = None,
    offset: Any = None,
    nAGQ: int = 1,
    *,
    link: str = "log",
    theta_start: float | None = None,
    interval: tuple[float, float] | None = None,
    tol: float = 5e-5,
    check_conv: bool = True,
) -> NegativeBinomialMixedModel:
    """Fit a negative binomial GLMM with the shape θ_nb estimated, as lme4's ``glmer.nb``.

    The counts y have conditional mean μ = g⁻¹(o + Xβ + ZΛu) and variance μ + μ²/θ_nb.
    θ̂_nb minimizes the profiled deviance D(θ_nb) = min over (θ, β) of the Laplace (or AGQ)
    −2 log-likelihood; it is found as the zero of D' over t = log θ_nb (see
    :mod:`mixedfx.models.glmer_nb`), a GLMM fitted at each step.

    Parameters
    ----------
    formula : str
        ``"count ~ fixed + (expr | group)"``; the response must be counts.
    data : pandas or polars data frame, or dict of arrays
    weights, offset : column name or array, optional
    nAGQ : int, default 1
        Laplace (1) or adaptive Gauss–Hermite quadrature (one scalar term).
    link : str, default "log"
        ``log``, ``identity`` or ``sqrt``.
    theta_start : float, optional
        Starting θ_nb. Default: MASS's ``theta.ml`` for the fitted means of the Poisson GLMM
        (lme4's ``est_theta``).
    interval : (float, float), optional
        Interval of log θ_nb searched; default log(θ_start) ± 3 (lme4's).
    tol : float, default 5e-5
        Tolerance on log θ_nb (lme4's).
    check_conv : bool, default True
        Run lme4's convergence checks on the final fit.

    Returns
    -------
    NegativeBinomialMixedModel
        The GLMM at θ̂_nb; ``family.theta`` (or ``nb_theta``) is θ̂_nb, ``theta_search``
        records the search.

    Raises
    ------
    ModelError
        A bad ``tol``, ``theta_start`` or ``interval``; ``DataError`` for responses that are
        not counts.

    Examples
    --------
    >>> import mixedfx as mfx
    >>> g = mfx.datasets.load("grouseticks")
    >>> m = mfx.glmer_nb("TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", g)  # doctest: +SKIP
    >>> round(m.nb_theta, 3)  # doctest: +SKIP
    3.308
    """
    tol = _check_tol(tol)
    theta_start = _check_theta_start(theta_start)
    nagq = _nagq(nAGQ)
    NegativeBinomial(1.0, link)  # the link is checked before any fit
    quiet = (ConvergenceWarning, SingularFitWarning)

    # 1. the Poisson GLMM (for θ_nb's start) and the design, built once
    base = GeneralizedLinearMixedModel(
        formula, data, family=Poisson(link), weights=weights, offset=offset, nAGQ=nagq
    )
    design = base.design
    start: Any = None
    if theta_start is None:
        with warnings.catch_warnings():
            for w in quiet:
                warnings.simplefilter("ignore", w)
            base.fit(check_conv=False)
        eng = base.engine
        theta_start = NegativeBinomial.theta_ml(eng.y, eng.fitted_values(), eng.prior_weights)
        start = eng.theta
    t0 = math.log(theta_start)
    if interval is None:
        lo, hi = t0 - 3.0, t0 + 3.0
    else:
        try:
            lo, hi = (float(v) for v in interval)
        except (TypeError, ValueError):
            raise ModelError(
                f"interval must be two numbers (log theta), got {interval!r}"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ModelError(f"interval must be two increasing finite numbers, got {interval!r}")

    def engine_at(theta_nb: float) -> GeneralizedEngine:
        return GeneralizedEngine(design, NegativeBinomial(theta_nb, link), nagq)

    # 2.-3. the profiled deviance, each fit started from the last one's θ
    evals: list[tuple[float, float]] = []
    fits: dict[float, GeneralizedEngine] = {}
    last: dict[str, Any] = {"start": start}

    def deviance(t: float) -> float:
        if t in fits:
            return fits[t].objective
        th = math.exp(t)
        eng = engine_at(th)
        with warnings.catch_warnings():
            for w in quiet:
                warnings.simplefilter("ignore", w)
            try:
                eng.fit(start=last["start"], check_conv=False)
            except (np.linalg.LinAlgError, FloatingPointError):
                evals.append((th, math.inf))
                return math.inf
        dev = eng.objective
        evals.append((th, dev))
        if math.isfinite(dev):
            fits[t] = eng
            last["start"] = eng.theta
        return dev if math.isfinite(dev) else math.inf

    def slope(t: float) -> float:
        """dD/dt at the fit for t = log θ_nb. At the inner optimum the gradient over (θ, β)
        vanishes, so the profile's derivative is the criterion's partial derivative in t
        at fixed (θ, β) (the envelope theorem): central differences, û by PIRLS."""
        if deviance(t) == math.inf:
            return math.nan
        if t not in slopes:
            eng = fits[t]
            vals = []
            for step in (_SLOPE_STEP, -_SLOPE_STEP):
                other = engine_at(math.exp(t + step))
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        other.install(eng.theta, eng.beta, eng.u)
                except (np.linalg.LinAlgError, FloatingPointError):
                    return math.nan
                vals.append(other.objective)
            slopes[t] = (vals[0] - vals[1]) / (2.0 * _SLOPE_STEP)
            curvature[t] = (vals[0] - 2.0 * eng.objective + vals[1]) / _SLOPE_STEP**2
        return slopes[t]

    slopes: dict[float, float] = {}
    curvature: dict[float, float] = {}
    t_root = _find_root(slope, curvature, t0, lo, hi, tol)
    if t_root is None:  # no sign change of the slope found: minimize D itself (lme4's way)
        deviance(t0)
        optimize.minimize_scalar(
            deviance, bounds=(lo, hi), method="bounded", options={"xatol": tol}
        )
    else:
        deviance(t_root)
    finite = {t: e for t, e in fits.items() if math.isfinite(e.objective)}
    if not finite:
        raise ModelError(
            "the negative binomial model could not be fitted at any value of theta searched"
        )
    t_best = min(finite, key=lambda t: finite[t].objective)
    if min(t_best - lo, hi - t_best) < 10 * tol:
        warnings.warn(
            f"the negative binomial theta estimate ({math.exp(t_best):.6g}) is at the end of the "
            f"interval searched (log theta in [{lo:.4g}, {hi:.4g}]): pass a wider interval=, or, "
            "for a very large theta, the data may not be overdispersed (use family='poisson')",
            ConvergenceWarning,
            stacklevel=2,
        )
    best = finite[t_best]
    theta_nb = math.exp(t_best)

    # the model at θ̂_nb: the best inner fit, with lme4's convergence checks
    call = Call(formula, data, weights, offset, (("family", best.family), ("nAGQ", nagq)))
    model = NegativeBinomialMixedModel.__new__(NegativeBinomialMixedModel)
    model._init(call, design, engine_at(theta_nb))
    model.fit(start=best.theta, check_conv=check_conv)
    if model.engine.objective > best.objective:  # the refit moved uphill: keep the search's
        model._init(call, design, best)
        model.engine.warn_if_singular(stacklevel=2)
    model.theta_search = ThetaSearch(
        theta_start=float(theta_start),
        interval=(math.exp(lo), math.exp(hi)),
        table=pd.DataFrame(evals, columns=["theta", "deviance"]),
        tol=tol,
    )
    return model
