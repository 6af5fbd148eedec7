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
        """The link's number in the compiled kernel :func:`mixedfx._kernels.glm_working`."""

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
    """The family's number in the compiled kernel :func:`mixedfx.linalg.kernels.glm_working`
    (built-in families only: see :func:`kernel_codes`)."""

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

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.link == self.link  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name))

    @property
    def canonical(self) -> bool:
        return self.link.name == self.default_link

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
        m = n if np.any(n > 1) else wt
        k = np.round(m * y)
        mm = np.round(m)
        logd = (
            special.gammaln(mm + 1.0)
            - special.gammaln(k + 1.0)
            - special.gammaln(mm - k + 1.0)
            + special.xlogy(k, mu)
            + special.xlog1py(mm - k, -mu)
        )
        f = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
        return float(-2.0 * np.sum(f * logd))

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
        return float(-2.0 * np.sum(logd * wt))

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
            return type(family)(link)
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
