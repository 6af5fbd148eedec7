"""The approximate engine: crossed random intercepts by moments and GLS (O(N)).

For models whose exact fit would factor a dense block too large for memory or time (two or
more crossed grouping factors of tens of thousands of levels or more): variance components by
the method of moments, fixed effects and conditional modes by generalized least squares solved
with preconditioned conjugate gradients (:mod:`mixedfx.linalg.moments`). There is no likelihood:
``objective`` (and logLik, AIC, BIC) are NaN, Satterthwaite's and Kenward–Roger's df, profiles
and likelihood-ratio tests are not defined; the fixed effects carry Wald z tests with the GLS
standard errors, the variance components bootstrap standard errors. ``approximate`` is True
and ``method`` is "moments"; the summary says so.

Models: scalar random intercepts ``(1 | g)`` on any number of crossed or nested factors, any
fixed effects, offsets; no prior weights.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..frame.design import Design
from ..glm.families import Family, Gaussian
from ..linalg.moments import MomentsFit, MomentsSolver
from ..linalg.sufficient import ChunkPlan, SufficientStats
from .base import Engine

__all__ = ["MomentsEngine", "check_moments_model"]

NBOOT = 50
"""Bootstrap replicates for the standard errors of the variance components."""

_NO_LIKELIHOOD = (
    "a fit by the method of moments (method='moments', approximate) has no likelihood, so "
    "{what} is not defined; fit with method='exact' where the model fits in memory and time"
)


def check_moments_model(design: Design) -> None:
    """Raise a ModelError naming what the method of moments cannot fit."""
    bad = [t.term.text for t in design.terms if t.k != 1 or list(t.columns) != ["(Intercept)"]]
    if bad:
        raise ModelError(
            f"the method of moments fits random intercepts (1 | g) only; this model has "
            f"{', '.join(bad)}: use method='exact' (if it fits), or intercepts only"
        )
    if design.weights is not None:
        raise ModelError(
            "the method of moments does not take prior weights: fit without weights, or with "
            "method='exact'"
        )


class MomentsEngine(Engine):
    """A linear mixed model with crossed random intercepts, fitted approximately.

    Parameters
    ----------
    design : Design
    stats : SufficientStats, optional
        Unweighted statistics with per-level sums (``level_xy``), in units ``s`` of the
        response; default: computed from the design's rows.
    s : float
        The response's scale in ``stats`` (y/s).
    nboot : int
        Bootstrap replicates for the variance components' standard errors (needs the rows in
        memory; 0 or a Dask design: none).
    rows : bool
        Whether the design holds its rows (False for a Dask design).
    keep : ndarray, optional
        The fixed-effects columns of ``stats`` to use (rank-deficient ones dropped).
    """

    gaussian: ClassVar[bool] = True
    approximate: ClassVar[bool] = True
    method: ClassVar[str] = "moments"
    method_note = ""
    family: Family = Gaussian()
    REML = False

    def __init__(
        self,
        design: Design,
        stats: SufficientStats | None = None,
        s: float = 1.0,
        *,
        nboot: int = NBOOT,
        rows: bool = True,
        seed: int = 20240501,
        keep: np.ndarray | None = None,
    ):
        super().__init__(design)
        check_moments_model(design)
        self.rows = rows
        self.nboot = int(nboot) if rows else 0
        self.seed = seed
        if stats is None:
            yeff = design.y - design.offset if design.offset is not None else design.y
            m = float(np.max(np.abs(yeff), initial=0.0))
            s = m if m > 0 and math.isfinite(m) else 1.0
            stats = ChunkPlan(design).stats(None, yeff / s, design.X, level_xy=True)
        self.s = s
        self.stats = stats
        self.solver = MomentsSolver(stats, [t.nlevels for t in design.terms], keep=keep)
        self.result: MomentsFit | None = None

    # ----------------------------------------------------------- interface
    @property
    def y(self) -> np.ndarray:
        return self.design.y

    @property
    def prior_weights(self) -> np.ndarray:
        return np.ones(self.n)

    @property
    def has_dispersion(self) -> bool:
        return True

    @property
    def u_scale(self) -> float:
        return self.sigma

    def objective_at(self, theta: np.ndarray, *args: Any) -> float:
        raise ModelError(_NO_LIKELIHOOD.format(what="the criterion at another θ"))

    def state_at(self, theta: np.ndarray) -> Any:
        raise ModelError(_NO_LIKELIHOOD.format(what="Satterthwaite's df (t tests)"))

    def derive(self, *, y=None, design=None, REML=None) -> Engine:  # type: ignore[override]
        raise ModelError(_NO_LIKELIHOOD.format(what="a refit for another response or criterion"))

    def refitter(self) -> Any:
        raise ModelError(_NO_LIKELIHOOD.format(what="the parametric bootstrap of the fit"))

    def restart(self) -> Any:
        return self.theta

    # ----------------------------------------------------------------- fit
    def fit(self, start: Any = None, *, check_conv: bool = True) -> MomentsEngine:
        """Moments, then GLS by conjugate gradients, then the bootstrap standard errors."""
        self._clear_cache()
        try:
            res = self.solver.fit()
        except ValueError as exc:
            raise ModelError(f"the method of moments failed: {exc}") from None
        d = self.design
        if self.nboot > 1:
            refs = [t.refs for t in d.terms]
            se, se_e = self.solver.bootstrap(res, d.X, refs, self.nboot, self.seed)
            res.se_sigma2, res.se_sigma2_e, res.nboot = se, se_e, self.nboot
        else:
            res.se_sigma2 = np.full(len(d.terms), np.nan)
            res.notes.append(
                "standard errors of the variance components come from a parametric bootstrap "
                "over the rows, which a Dask data frame does not hold in memory: not computed"
            )
        self.result = res
        s = self.s
        s2e = res.sigma2_e
        theta = np.sqrt(res.sigma2 / s2e)
        self._theta = theta
        self._beta = res.beta * s
        self._sigma = math.sqrt(s2e) * s
        u = []
        for th, a in zip(theta, res.modes, strict=True):
            u.append(a * s / th if th > 0 else np.zeros_like(a))
        self._u = np.concatenate(u)
        self._objective = math.nan
        self.convergence_messages = list(res.notes)
        self.fitted = True
        return self

    # ------------------------------------------------------------ results
    @cached_property
    def vcov_unscaled(self) -> np.ndarray:
        """vcov(β̂)/σ² with vcov(β̂) = (X'V⁻¹X)⁻¹ at the estimated components."""
        self.require_fit()
        assert self.result is not None
        return self.result.vcov_beta / self.result.sigma2_e

    @cached_property
    def cond_var(self) -> list[np.ndarray]:
        """Each level's conditional variance given the other factors' effects,
        σ_e²/(n_ℓ + σ_e²/σ_f²) (approximate: smaller than the exact conditional variance)."""
        self.require_fit()
        assert self.result is not None
        return [(v * self.s**2)[:, None, None] for v in self.result.cond_var]

    def variance_components(self) -> pd.DataFrame:
        """Estimated variances with their bootstrap standard errors (data units)."""
        self.require_fit()
        r = self.result
        assert r is not None and r.se_sigma2 is not None
        s2 = self.s**2
        names = [t.vc_name for t in self.design.terms] + ["Residual"]
        return pd.DataFrame(
            {
                "variance": np.r_[r.sigma2, r.sigma2_e] * s2,
                "std_error": np.r_[r.se_sigma2, r.se_sigma2_e] * s2,
            },
            index=pd.Index(names, name="group"),
        )
