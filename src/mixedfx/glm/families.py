"""Exponential families and link functions for glmer, as R's ``family`` objects define them.

A :class:`Family` supplies what penalized iteratively reweighted least squares (PIRLS) and the
Laplace approximation need, vectorized over observations:

* the link ``g`` (``linkfun``), its inverse ``μ = g⁻¹(η)`` (``linkinv``) and ``dμ/dη``
  (``mu_eta``), with R's clamping so that μ stays inside the family's range;
* the variance function ``V(μ)``, giving the working weights ``w = wt (dμ/dη)² / V(μ)``;
* the deviance residuals ``d_i`` whose sum, plus ``‖u‖²``, PIRLS minimizes;
* ``aic``: −2 log p(y | μ) summed over observations (R's ``family$aic``), which with
  ``‖u‖² + log|L|²`` makes the Laplace approximation of −2 log-likelihood;
* ``simulate``: responses drawn from the family given μ.

Numbers follow R's ``stats`` package (``binomial()``, ``poisson()``, ``Gamma()``,
``inverse.gaussian()`` and ``make.link``) so that results agree with lme4 to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..errors import DataError, ModelError

__all__ = [
    "Binomial",
    "Family",
    "Gamma",
    "Gaussian",
    "InverseGaussian",
    "Link",
    "NegativeBinomial",
    "Poisson",
    "get_family",
    "kernel_codes",
]

EPS = float(np.finfo(float).eps)
_LOGIT_THRESH = 30.0
_PROBIT_THRESH = -float(special.ndtri(EPS))


class Link:
    """A link function η = g(μ), with its inverse and derivative dμ/dη.

    Parameters
    ----------
    name : str
        One of ``logit``, ``probit``, ``cloglog``, ``log``, ``identity``, ``inverse``,
        ``1/mu^2``, ``sqrt`` (R's names).
    """

    NAMES = ("logit", "probit", "cloglog", "log", "identity", "inverse", "1/mu^2", "sqrt")

    def __init__(self, name: str):
        if name not in self.NAMES:
            raise ModelError(f"unknown link {name!r}; known links: {', '.join(self.NAMES)}")
        self.name = name
        self.code = self.NAMES.index(name)
        """The link's number in the compiled kernels (:mod:`mixedfx.glm.pirls_kernels`)."""

    def __repr__(self) -> str:
        return f"Link({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """η = g(μ)."""
        n = self.name
        if n == "logit":
            return np.log(mu / (1.0 - mu))
        if n == "probit":
            return special.ndtri(mu)
        if n == "cloglog":
            return np.log(-np.log1p(-mu))
        if n == "log":
            return np.log(mu)
        if n == "identity":
            return np.asarray(mu, dtype=float)
        if n == "inverse":
            return 1.0 / mu
        if n == "1/mu^2":
            return 1.0 / (mu * mu)
        return np.sqrt(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """μ = g⁻¹(η), clamped as R clamps it (μ strictly inside (0, 1) for binomial links)."""
        n = self.name
        if n == "logit":
            e = np.exp(np.clip(eta, -_LOGIT_THRESH, _LOGIT_THRESH))
            e = np.where(eta < -_LOGIT_THRESH, EPS, np.where(eta > _LOGIT_THRESH, 1.0 / EPS, e))
            return e / (1.0 + e)
        if n == "probit":
            return special.ndtr(np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH))
        if n == "cloglog":
            return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), EPS, 1.0 - EPS)
        if n == "log":
            return np.maximum(np.exp(eta), EPS)
        if n == "identity":
            return np.asarray(eta, dtype=float)
        if n == "inverse":
            return 1.0 / eta
        if n == "1/mu^2":
            return 1.0 / np.sqrt(eta)
        return eta * eta

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """dμ/dη at η (bounded away from 0 as in R)."""
        n = self.name
        if n == "logit":
            e = np.exp(np.clip(eta, -_LOGIT_THRESH, _LOGIT_THRESH))
            out = e / ((1.0 + e) * (1.0 + e))
            return np.where(np.abs(eta) > _LOGIT_THRESH, EPS, out)
        if n == "probit":
            return np.maximum(np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi), EPS)
        if n == "cloglog":
            e = np.minimum(eta, 700.0)
            return np.maximum(np.exp(e) * np.exp(-np.exp(e)), EPS)
        if n == "log":
            return np.maximum(np.exp(eta), EPS)
        if n == "identity":
            return np.ones_like(eta, dtype=float)
        if n == "inverse":
            return -1.0 / (eta * eta)
        if n == "1/mu^2":
            return -1.0 / (2.0 * np.power(eta, 1.5))
        return 2.0 * eta

    def valideta(self, eta: np.ndarray) -> bool:
        if self.name in ("inverse",):
            return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))
        if self.name == "1/mu^2":
            return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))
        return bool(np.all(np.isfinite(eta)))


class Family:
    """Base class of the exponential families (R's ``family`` object).

    Subclasses define ``name``, the allowed links, ``variance``, ``dev_resids``, ``aic``,
    ``mustart``, ``validmu``, ``check_response`` and ``simulate``.
    """

    name = "family"
    links: tuple[str, ...] = ()
    default_link = ""
    has_dispersion = False
    """True for Gamma and inverse Gaussian: lme4 estimates a scale σ after the fit."""
    code: int | None = None
    """The family's number in the compiled kernel :func:`mixedfx.glm.pirls_kernels.glm_working`
    (built-in families only: see :func:`kernel_codes`)."""

    extra_npar = 0
    """Parameters of the family counted by lme4 (``npar.merMod``): 1 for the negative
    binomial's θ, fixed or estimated."""

    def __init__(self, link: str | Link | None = None):
        link = link if link is not None else self.default_link
        name = link.name if isinstance(link, Link) else str(link)
        if name not in self.links:
            raise ModelError(
                f"link {name!r} is not available for the {self.name} family; "
                f"use one of: {', '.join(self.links)}"
            )
        self.link = Link(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    def with_link(self, link: str | Link) -> Family:
        """The same family with another link."""
        return type(self)(link)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.link == self.link  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name))

    @property
    def canonical(self) -> bool:
        return self.link.name == self.default_link

    @property
    def label(self) -> str:
        """The family's name as R's summary prints it (R's ``family(m)$family``)."""
        return self.name

    # the link, forwarded
    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        return self.link.linkfun(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        return self.link.linkinv(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return self.link.mu_eta(eta)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def aic(
        self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float
    ) -> float:
        raise NotImplementedError

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def saturated_aic(self, y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> float | None:
        """C with ``aic(y, n, μ, wt, dev) = Σ d_i(μ) + C`` for every μ, or None when there is
        no such constant (families with a dispersion parameter). For binomial and Poisson,
        −2 log p(y_i | μ) − d_i(μ) = −2 log p(y_i | μ = y_i), so C = aic at μ = y."""
        if self.has_dispersion:
            return None
        return self.aic(y, n, np.asarray(y, dtype=float), wt, 0.0)

    def validmu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)))

    def check_response(self, y: np.ndarray, name: str) -> None:
        """Raise a DataError naming the response when its values are outside the family."""

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        raise NotImplementedError


def _first_bad(mask: np.ndarray, y: np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[0])
    return f"row {i + 1} has {y[i]:g}"


class Binomial(Family):
    """Binomial family: y a proportion of ``wt`` trials (0/1 for binary data), V(μ) = μ(1 − μ)."""

    name = "binomial"
    links = ("logit", "probit", "cloglog", "log")
    default_link = "logit"

    code = 0

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu * (1.0 - mu)

    def validmu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """2 wt [y log(y/μ) + (1 − y) log((1 − y)/(1 − μ))], with 0 log 0 = 0."""
        return (
            2.0 * wt * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))
        )

    def aic(
        self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float
    ) -> float:
        """−2 Σ (wt/m) log dbinom(m y, m, μ), m the number of trials (R's binomial()$aic)."""
        # (array methods rather than np.any/np.round/np.sum: the same operations, fewer
        # Python layers; the engine computes this once per model)
        n = np.asarray(n, dtype=float)
        m = n if (n > 1).any() else np.asarray(wt, dtype=float)
        k = (m * y).round()
        mm = m.round()
        logd = (
            special.gammaln(mm + 1.0)
            - special.gammaln(k + 1.0)
            - special.gammaln(mm - k + 1.0)
            + special.xlogy(k, mu)
            + special.xlog1py(mm - k, -mu)
        )
        pos = m > 0
        f = np.where(pos, wt / np.where(pos, m, 1.0), 0.0)
        return float(-2.0 * (f * logd).sum())

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return (wt * y + 0.5) / (wt + 1.0)

    def check_response(self, y: np.ndarray, name: str) -> None:
        bad = (y < 0) | (y > 1)
        if bad.any():
            raise DataError(
                f"binomial response {name!r} must be 0/1, a proportion in [0, 1] (with the "
                f"number of trials as weights) or cbind(successes, failures); "
                f"{_first_bad(bad, y)}"
            )

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        trials = np.round(wt).astype(np.int64)
        return rng.binomial(trials, mu) / np.maximum(trials, 1)


class Poisson(Family):
    """Poisson family: counts, V(μ) = μ."""

    name = "poisson"
    links = ("log", "identity", "sqrt")
    default_link = "log"

    code = 1

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu

    def validmu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """2 wt [y log(y/μ) − (y − μ)]."""
        return 2.0 * wt * (special.xlogy(y, y / mu) - (y - mu))

    def aic(
        self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float
    ) -> float:
        """−2 Σ wt log dpois(y, μ)."""
        logd = special.xlogy(y, mu) - mu - special.gammaln(y + 1.0)
        return float(-2.0 * np.multiply(logd, wt).sum())

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return y + 0.1

    def check_response(self, y: np.ndarray, name: str) -> None:
        bad = y < 0
        if bad.any():
            raise DataError(
                f"negative values are not allowed for the poisson family: response {name!r} "
                f"{_first_bad(bad, y)}"
            )
        frac = np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))
        if frac.any():
            raise DataError(
                f"poisson response {name!r} must be counts (whole numbers); {_first_bad(frac, y)}"
            )

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        return rng.poisson(mu).astype(float)


class Gamma(Family):
    """Gamma family: positive responses, V(μ) = μ², with a dispersion parameter."""

    name = "Gamma"
    links = ("inverse", "identity", "log")
    default_link = "inverse"
    has_dispersion = True

    code = 2

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu * mu

    def validmu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """−2 wt [log(y/μ) − (y − μ)/μ]."""
        return -2.0 * wt * (np.log(np.where(y == 0, 1.0, y / mu)) - (y - mu) / mu)

    def aic(
        self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float
    ) -> float:
        """R's Gamma()$aic: −2 Σ wt log dgamma(y; 1/φ, μφ) + 2 with φ = dev / Σ wt."""
        disp = dev / np.sum(wt)
        shape = 1.0 / disp
        scale = mu * disp
        logd = (
            (shape - 1.0) * np.log(y) - y / scale - special.gammaln(shape) - shape * np.log(scale)
        )
        return float(-2.0 * np.sum(logd * wt) + 2.0)

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=float)

    def check_response(self, y: np.ndarray, name: str) -> None:
        bad = y <= 0
        if bad.any():
            raise DataError(
                f"non-positive values are not allowed for the Gamma family: response {name!r} "
                f"{_first_bad(bad, y)}"
            )

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        shape = wt / (sigma * sigma)
        return rng.gamma(shape, mu / shape)


class InverseGaussian(Family):
    """Inverse Gaussian family: positive responses, V(μ) = μ³, with a dispersion parameter."""

    name = "inverse.gaussian"
    links = ("1/mu^2", "inverse", "identity", "log")
    default_link = "1/mu^2"
    has_dispersion = True

    code = 3

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu * mu * mu

    def validmu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """wt (y − μ)² / (y μ²)."""
        return wt * ((y - mu) ** 2) / (y * mu * mu)

    def aic(
        self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float
    ) -> float:
        """R's inverse.gaussian()$aic: Σwt (log(2πφ) + 1) + 3 Σ wt log y + 2, φ = dev / Σ wt."""
        sw = np.sum(wt)
        disp = dev / sw
        return float(
            sw * (math.log(disp * 2.0 * math.pi) + 1.0) + 3.0 * np.sum(np.log(y) * wt) + 2.0
        )

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=float)

    def check_response(self, y: np.ndarray, name: str) -> None:
        bad = y <= 0
        if bad.any():
            raise DataError(
                f"non-positive values are not allowed for the inverse.gaussian family: response "
                f"{name!r} {_first_bad(bad, y)}"
            )

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        # Wald(μ, λ) with λ = wt / φ: numpy's parametrization (mean, scale = shape λ)
        return rng.wald(mu, wt / (sigma * sigma))


class NegativeBinomial(Family):
    """Negative binomial family with known shape θ (R's ``MASS::negative.binomial(theta)``).

    Counts y with mean μ and variance

        V(μ) = μ + μ²/θ,

    a Poisson whose mean is multiplied by a Gamma variable of mean 1 and variance 1/θ
    (θ → ∞ is the Poisson family). The deviance residuals and −2 log-likelihood are MASS's:

        d_i = 2 wt [y log(max(1, y)/μ) − (y + θ) log((y + θ)/(μ + θ))],

        −2 log p(y | μ) = 2 Σ wt [(y + θ) log(μ + θ) − y log μ + log Γ(y + 1)
                                  − θ log θ + log Γ(θ) − log Γ(θ + y)].

    θ is fixed here: :func:`mixedfx.glmer_nb` estimates it, as lme4's ``glmer.nb`` does, by
    fitting this family for a sequence of θ values.

    Parameters
    ----------
    theta : float
        The shape θ > 0 (lme4's ``getME(m, "glmer.nb.theta")``).
    link : str, default "log"
        ``log``, ``identity`` or ``sqrt`` (MASS's links).
    """

    name = "negative.binomial"
    links = ("log", "identity", "sqrt")
    default_link = "log"

    extra_npar = 1

    def with_link(self, link: str | Link) -> NegativeBinomial:
        return type(self)(self.theta, link)

    def __init__(self, theta: float, link: str | Link | None = None):
        try:
            th = float(theta)
        except (TypeError, ValueError):
            raise ModelError(
                f"theta of the negative binomial family must be a positive number, got {theta!r}"
            ) from None
        if isinstance(theta, bool) or not (math.isfinite(th) and th > 0.0):
            raise ModelError(
                f"theta of the negative binomial family must be a positive number, got {theta!r}"
            )
        super().__init__(link)
        self.theta = th

    @property
    def label(self) -> str:
        """The family as R prints it: ``Negative Binomial(0.9419)`` (θ rounded to 4 decimals,
        R's ``format(round(theta, 4))``)."""
        return f"Negative Binomial({_r_format(round(self.theta, 4))})"

    def __repr__(self) -> str:
        return f"NegativeBinomial(theta={self.theta!r}, link={self.link.name!r})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.link == self.link  # type: ignore[attr-defined]
            and other.theta == self.theta  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name, self.theta))

    @property
    def canonical(self) -> bool:
        """False: the canonical link, log(μ/(μ + θ)), is none of MASS's links. (Fisher scoring
        with the log link converges linearly, so PIRLS iterates to a tighter step.)"""
        return False

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """μ + μ²/θ."""
        return mu + mu * mu / self.theta

    def validmu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """2 wt [y log(max(1, y)/μ) − (y + θ) log((y + θ)/(μ + θ))]."""
        th = self.theta
        return (
            2.0
            * wt
            * (special.xlogy(y, np.maximum(1.0, y) / mu) - (y + th) * np.log((y + th) / (mu + th)))
        )

    def aic(
        self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float
    ) -> float:
        """−2 Σ wt log p(y; μ, θ) (MASS's ``negative.binomial(theta)$aic``)."""
        th = self.theta
        term = (
            (y + th) * np.log(mu + th)
            - special.xlogy(y, mu)
            + special.gammaln(y + 1.0)
            - th * math.log(th)
            + special.gammaln(th)
            - special.gammaln(th + y)
        )
        return float(2.0 * np.sum(term * wt))

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """y + 1/6 where y = 0 (MASS's ``initialize``)."""
        return y + (y == 0) / 6.0

    def check_response(self, y: np.ndarray, name: str) -> None:
        bad = y < 0
        if bad.any():
            raise DataError(
                f"negative values are not allowed for the negative binomial family: response "
                f"{name!r} {_first_bad(bad, y)}"
            )
        frac = np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))
        if frac.any():
            raise DataError(
                f"negative binomial response {name!r} must be counts (whole numbers); "
                f"{_first_bad(frac, y)}"
            )

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        """Poisson(μ G/θ) with G ~ Gamma(θ, 1) (MASS's ``rnegbin``; prior weights unused)."""
        th = self.theta
        return rng.poisson(mu * rng.gamma(th, 1.0, size=np.shape(mu)) / th).astype(float)

    @staticmethod
    def theta_ml(
        y: np.ndarray, mu: np.ndarray, wt: np.ndarray | None = None, limit: int = 20
    ) -> float:
        """Maximum-likelihood θ for counts y with known means μ (MASS's ``theta.ml``, as
        lme4's ``est_theta`` uses it): Newton's method on the score

            S(θ) = Σ w [ψ(θ + y) − ψ(θ) + log θ + 1 − log(θ + μ) − (y + θ)/(μ + θ)],

        from the moment estimate n / Σ w (y/μ − 1)². Returns θ (at least 1e-8).
        """
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        w = np.ones_like(y) if wt is None else np.asarray(wt, dtype=float)
        n = float(np.sum(w))
        denom = float(np.sum(w * (y / mu - 1.0) ** 2))
        t0 = n / denom if denom > 0 else 1e8
        eps = EPS**0.25
        for _ in range(limit):
            t0 = abs(t0)
            score = np.sum(
                w
                * (
                    special.digamma(t0 + y)
                    - special.digamma(t0)
                    + math.log(t0)
                    + 1.0
                    - np.log(t0 + mu)
                    - (y + t0) / (mu + t0)
                )
            )
            info = np.sum(
                w
                * (
                    -special.polygamma(1, t0 + y)
                    + special.polygamma(1, t0)
                    - 1.0 / t0
                    + 2.0 / (mu + t0)
                    - (y + t0) / (mu + t0) ** 2
                )
            )
            if not (np.isfinite(score) and np.isfinite(info)) or info == 0:
                break
            delta = float(score / info)
            t0 += delta
            if abs(delta) <= eps:
                break
        return float(max(t0, 1e-8)) if math.isfinite(t0) else 1.0


def _r_format(x: float) -> str:
    """R's ``format(x)`` of one number: up to 7 significant digits, no trailing zeros."""
    text = f"{x:.7g}"
    if "e" in text:
        mant, exp = text.split("e")
        sign = exp[0]
        digits = exp[1:].lstrip("0").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return text


class Gaussian(Family):
    """Gaussian family with identity link: the conditional distribution of a linear mixed
    model (lmer's; glmer refuses it, as lme4 does)."""

    name = "gaussian"
    links = ("identity",)
    default_link = "identity"
    has_dispersion = True

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return np.ones_like(mu)

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return wt * (y - mu) ** 2

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=float)

    def simulate(
        self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator, sigma: float = 1.0
    ) -> np.ndarray:
        return mu + sigma * rng.standard_normal(np.shape(mu)) / np.sqrt(wt)


_BUILTIN_KERNEL = (Binomial, Poisson, Gamma, InverseGaussian)


def kernel_codes(family: Family) -> tuple[int, int] | None:
    """(family code, link code) of the compiled GLM kernels, for the built-in families only.

    A user's subclass (even of a built-in family) may redefine any method, so it runs through
    the family's own Python methods instead: never through another family's compiled branch.
    """
    if type(family) in _BUILTIN_KERNEL and family.code is not None:
        return family.code, family.link.code
    return None


_FAMILIES: dict[str, type[Family]] = {
    "binomial": Binomial,
    "poisson": Poisson,
    "gamma": Gamma,
    "inverse.gaussian": InverseGaussian,
    "inverse_gaussian": InverseGaussian,
    "inversegaussian": InverseGaussian,
}


def get_family(family: str | Family | type[Family], link: str | None = None) -> Family:
    """A Family from a name (``"binomial"``, ``"poisson"``, ``"Gamma"``,
    ``"inverse.gaussian"``), a Family class or instance. ``link`` overrides the default link
    (only with a name or class)."""
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            return family.with_link(link)
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family(link)
    if isinstance(family, str):
        key = family.strip().lower()
        if key == "gaussian":
            raise ModelError(
                "family 'gaussian' is a linear mixed model: use mixedfx.lmer (lme4 does the same)"
            )
        if key not in _FAMILIES:
            raise ModelError(
                f"unknown family {family!r}; known families: binomial, poisson, Gamma, "
                "inverse.gaussian (or a mixedfx.families.Family object)"
            )
        return _FAMILIES[key](link)
    raise ModelError(f"family must be a name or a mixedfx.families.Family, got {family!r}")
