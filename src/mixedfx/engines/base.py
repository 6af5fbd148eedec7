"""The interface every fitting engine offers, and what all engines compute the same way.

An engine holds one design and, once fitted, the parameters of the model

    η = o + X β + Z Λθ u,     b = Λθ u,

θ (lme4's order), β, the spherical conditional modes u, the scale σ and the minimized criterion,
with the blocked factor at the optimum. The linear engine (:mod:`mixedfx.engines.linear`)
profiles β and σ out of the Gaussian likelihood; the generalized engine
(:mod:`mixedfx.engines.generalized`) finds u by PIRLS over the same kind of factor. Everything
above this layer (inference, reports, the user's model classes) reads engines through this
interface only: no branches on the engine's class.

What differs is stated by attributes, not by type:

* ``gaussian``: the conditional distribution is Gaussian with identity link (β and σ are
  profiled out; REML, Satterthwaite and Kenward–Roger apply);
* ``has_dispersion``: σ is a free parameter (Gaussian, Gamma, inverse Gaussian);
* ``u_scale``: the standard deviation of the spherical random effects u (σ for the linear
  model, whose u ~ N(0, σ²I); 1 for GLMMs, whose u ~ N(0, I)).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError, SingularFitWarning
from ..frame.design import Design
from ..glm.families import Family
from ..linalg.factor import BlockedFactor, lambda_blocks
from ..linalg.optimizer import OptimizerResult
from ..linalg.zmul import b_blocks, z_times

__all__ = ["SINGULAR_TOL", "Engine"]

SINGULAR_TOL = 1e-4
"""lme4's ``isSingular`` tolerance on θ's bounded elements."""


class Engine(ABC):
    """A model over one design: fit, state at the optimum, and copies for a new response.

    Subclasses set ``factor`` (the blocked factor at the optimum) and implement the abstract
    members; the rest is shared.
    """

    gaussian: ClassVar[bool]
    family: Family
    REML: bool
    factor: BlockedFactor

    def __init__(self, design: Design):
        self.design = design
        self.optinfo: OptimizerResult | None = None
        self.convergence_messages: list[str] = []
        self.fitted = False
        self._theta = np.zeros(0)
        self._beta = np.zeros(0)
        self._u = np.zeros(0)
        self._sigma = math.nan
        self._objective = math.nan
        self.cache: dict[str, Any] = {}
        """Results computed from the fitted state by higher layers (Satterthwaite's and
        Kenward–Roger's quantities): emptied whenever the state changes."""

    # ------------------------------------------------------------ abstract
    @abstractmethod
    def fit(self, start: Any = None, *, check_conv: bool = True) -> Engine:
        """Minimize the criterion; returns ``self`` fitted."""

    @abstractmethod
    def objective_at(self, theta: np.ndarray) -> float:
        """The criterion at θ (for GLMMs at (θ, β̂)); leaves the fitted state as it was."""

    @abstractmethod
    def derive(
        self, *, y: np.ndarray | None = None, design: Design | None = None, REML: bool | None = None
    ) -> Engine:
        """The same model (every option of the call kept) with a new response, design or
        criterion, not yet fitted. The one way engines are copied."""

    @abstractmethod
    def refitter(self) -> Any:
        """A function y ↦ this model refitted to the response y (the bootstrap's refits)."""

    @abstractmethod
    def restart(self) -> Any:
        """A ``start`` for :meth:`fit` at this fit's estimates."""

    @property
    @abstractmethod
    def y(self) -> np.ndarray:
        """The response on the scale the model is fitted to (proportions for binomial)."""

    @property
    @abstractmethod
    def prior_weights(self) -> np.ndarray:
        """Prior weights as the likelihood uses them (binomial: trials × weights)."""

    @property
    @abstractmethod
    def has_dispersion(self) -> bool:
        """Whether σ is estimated (a residual variance or a GLM dispersion)."""

    @property
    @abstractmethod
    def u_scale(self) -> float:
        """Standard deviation of the spherical random effects u."""

    @property
    @abstractmethod
    def vcov_unscaled(self) -> np.ndarray:
        """vcov(β̂) / σ²."""

    # ------------------------------------------------------------- copies
    def refit(
        self,
        y: np.ndarray | None = None,
        *,
        start: Any = None,
        check_conv: bool = False,
        design: Design | None = None,
        REML: bool | None = None,
    ) -> Engine:
        """A new fitted engine: :meth:`derive` then :meth:`fit`, by default from this fit's
        estimates (``self`` is unchanged). Singular-fit warnings of the copy are not shown."""
        new = self.derive(y=y, design=design, REML=REML)
        if start is None and self.fitted and design is None:
            start = self.restart()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            new.fit(start=start, check_conv=check_conv)
        return new

    # ------------------------------------------------------------ state
    def require_fit(self) -> None:
        if not self.fitted:
            raise ModelError("the model has not been fitted yet: call .fit()")

    def _clear_cache(self) -> None:
        for name in ("cond_var", "vcov_unscaled", "hessian"):
            self.__dict__.pop(name, None)
        self.cache = {}

    @property
    def n(self) -> int:
        return self.design.n

    @property
    def p(self) -> int:
        return self.design.fixed.p

    @property
    def theta(self) -> np.ndarray:
        self.require_fit()
        return self._theta.copy()

    @property
    def beta(self) -> np.ndarray:
        self.require_fit()
        return self._beta.copy()

    @property
    def u(self) -> np.ndarray:
        self.require_fit()
        return self._u.copy()

    @property
    def sigma(self) -> float:
        self.require_fit()
        return self._sigma

    @property
    def objective(self) -> float:
        self.require_fit()
        return self._objective

    @property
    def offset(self) -> np.ndarray | None:
        return self.design.offset

    @property
    def npar(self) -> int:
        """β, θ, σ where it is estimated, and the family's own parameters as lme4 counts
        them (the negative binomial's θ)."""
        return (
            self.p
            + self.design.theta_lower().size
            + int(self.has_dispersion)
            + self.family.extra_npar
        )

    @property
    def is_singular(self) -> bool:
        """lme4's ``isSingular``: a bounded θ element within 1e-4 of its bound 0."""
        rel = self.relative_theta().tolist()  # a few values: Python floats
        return any(rel[i] < SINGULAR_TOL for i in self.design.bounded_theta())

    def relative_theta(self) -> np.ndarray:
        """θ on the scale the singularity tolerance applies to (θ itself; the linear engine
        takes the weights' units out, so that weights times c do not make a fit singular)."""
        return self.theta

    def warn_if_singular(self, stacklevel: int = 3) -> None:
        if self.is_singular:
            warnings.warn(
                "boundary (singular) fit: a variance is estimated as (near) zero or a "
                "correlation as (near) ±1; see the model's is_singular",
                SingularFitWarning,
                stacklevel=stacklevel,
            )

    # ------------------------------------------------------- random effects
    def lambdas(self) -> list[np.ndarray]:
        """The k × k lower-triangular Λ block of each term."""
        return lambda_blocks(self.theta, [t.k for t in self.design.terms])

    def covariance_matrices(self) -> list[np.ndarray]:
        """Each term's random-effects covariance as lme4's ``VarCorr`` reports it: σ² λ λ'
        (σ = 1 for binomial and Poisson)."""
        s2 = self.sigma**2
        return [s2 * (lam @ lam.T) for lam in self.lambdas()]

    def factor_at_optimum(self) -> BlockedFactor:
        """The blocked factor at the fitted state (conditional variances read it)."""
        return self.factor

    def b_blocks(self, u: np.ndarray | None = None) -> list[np.ndarray]:
        """Random effects b = Λu per term, each (levels, k); u defaults to the modes."""
        return b_blocks(self.design.terms, self.lambdas(), self._u if u is None else u)

    @cached_property
    def cond_var(self) -> list[np.ndarray]:
        """Conditional covariance of b given y per term and level, (levels, k, k):
        σ² λ V_l λ' with V_l from the factor at the optimum (lme4's ``condVar``)."""
        self.require_fit()
        s2 = self.sigma**2
        blocks = self.factor_at_optimum().conditional_variances()
        return [s2 * (lam @ V @ lam.T) for lam, V in zip(self.lambdas(), blocks, strict=True)]

    # ---------------------------------------------------- linear predictor
    def fixed_part(self) -> np.ndarray:
        """o + Xβ̂."""
        eta = self.design.X @ self._beta
        return eta + self.design.offset if self.design.offset is not None else eta

    def linear_predictor(self, include_random: bool = True) -> np.ndarray:
        """η̂ = o + Xβ̂ (+ ZΛû)."""
        self.require_fit()
        eta = self.fixed_part()
        if include_random:
            eta = eta + z_times(self.design.terms, self.b_blocks())
        return eta

    def fitted_values(self) -> np.ndarray:
        """μ̂ = g⁻¹(η̂), the fitted values on the response scale."""
        return self.family.linkinv(self.linear_predictor())

    def residuals(self, type: str = "response") -> np.ndarray:
        """Residuals as R's ``residuals(m, type)``: ``response`` (y − μ̂),
        ``deviance``, ``pearson`` or ``working``."""
        eta = self.linear_predictor()
        fam = self.family
        mu = fam.linkinv(eta)
        y, wt = self.y, self.prior_weights
        if type == "deviance":
            d = np.maximum(fam.dev_resids(y, mu, wt), 0.0)
            return np.sign(y - mu) * np.sqrt(d)
        if type == "pearson":
            return (y - mu) * np.sqrt(wt) / np.sqrt(fam.variance(mu))
        if type == "response":
            return y - mu
        if type == "working":
            return (y - mu) / fam.mu_eta(eta)
        raise ModelError(
            f"unknown residual type {type!r}: use 'deviance', 'pearson', 'response' or 'working'"
        )
