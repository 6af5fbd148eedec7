"""Responses simulated from a fitted mixed model (lme4's ``simulate``).

    u* ~ N(0, u_scale² I_q),   η* = o + X β̂ + Z Λ(θ̂) u*,   y* ~ family(g⁻¹(η*), weights, σ̂),

with u_scale = σ̂ for linear mixed models (so that y* = η* + σ̂ ε*/√w) and 1 for GLMMs. With
``use_u=True`` the conditional modes replace u*: only the response's own noise is new. The
random effects of all replicates are drawn at once, one (q × nsim) normal matrix; the
responses are drawn from the family, vectorized over observations (and, for the Gaussian
family, over replicates).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ..frame.checks import check_bool
from ..linalg.zmul import z_times

__all__ = ["check_nsim", "simulate"]


MAX_VALUES = 500_000_000
"""The most simulated values (rows x replicates, 4 GB of floats) one call makes."""


def check_nsim(nsim: Any) -> int:
    """nsim as a whole number ≥ 1, or a DataError naming it."""
    if isinstance(nsim, bool):
        raise DataError(f"nsim must be a whole number of at least 1, got {nsim!r}")
    try:
        k = int(nsim)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"nsim must be a whole number, got {nsim!r}") from None
    if k < 1 or k != nsim:
        raise DataError(f"nsim must be a whole number of at least 1, got {nsim!r}")
    return k


def simulate(engine: Any, nsim: int = 1, seed: Any = None, use_u: bool = False) -> np.ndarray:
    """An (n, nsim) array of responses simulated from the fitted engine.

    Parameters
    ----------
    engine : fitted engine
    nsim : int
        Number of replicates.
    seed : int, numpy Generator or SeedSequence, optional
        Seed of ``numpy.random.default_rng``: equal seeds give equal responses.
    use_u : bool
        Condition on the fitted random effects (lme4's ``use.u = TRUE``).
    """
    engine.require_fit()
    nsim = check_nsim(nsim)
    use_u = check_bool(use_u, "use_u")
    if engine.n * nsim > MAX_VALUES:
        raise DataError(
            f"nsim = {nsim} replicates of {engine.n} rows would be {engine.n * nsim:,} values "
            f"(more than {MAX_VALUES:,}): simulate fewer at a time"
        )
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise DataError(f"seed must be a whole number or a numpy Generator, got {seed!r}") from exc
    d = engine.design
    if use_u:
        eta = np.repeat(engine.linear_predictor()[:, None], nsim, axis=1)
    else:
        U = engine.u_scale * rng.standard_normal((d.q, nsim))
        eta = engine.fixed_part()[:, None] + z_times(d.terms, engine.b_blocks(U))
    fam = engine.family
    mu = fam.linkinv(eta)
    wt = engine.prior_weights
    if engine.gaussian:
        return fam.simulate(mu, wt[:, None], rng, engine.sigma)
    out = np.empty_like(mu)
    for s in range(nsim):  # replicates; each draw is vectorized over observations
        out[:, s] = fam.simulate(mu[:, s], wt, rng, engine.sigma)
    return out
