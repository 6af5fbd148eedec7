"""Responses simulated from a fitted linear mixed model (lme4's ``simulate``).

    y* = o + X β̂ + Z Λ(θ̂) σ̂ u* + σ̂ ε* / √w,    u* ~ N(0, I_q),  ε* ~ N(0, I_n),

(with ``use_u=True`` the conditional modes replace u*: only the residual noise is new). All
replicates are drawn at once: one (q x nsim) and one (n x nsim) normal matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["simulate_lmm"]


def _check_nsim(nsim: Any) -> int:
    try:
        k = int(nsim)
    except (TypeError, ValueError):
        raise DataError(f"nsim must be a whole number, got {nsim!r}") from None
    if k < 1 or k != nsim:
        raise DataError(f"nsim must be a whole number of at least 1, got {nsim!r}")
    return k


def simulate_lmm(model: Any, nsim: int = 1, seed: Any = None, use_u: bool = False) -> np.ndarray:
    """An (n, nsim) array of responses simulated from the fitted model.

    Parameters
    ----------
    model : fitted LinearMixedModel
    nsim : int
        Number of replicates.
    seed : int, numpy Generator or SeedSequence, optional
        Seed of ``numpy.random.default_rng``: equal seeds give equal responses.
    use_u : bool
        Condition on the fitted random effects (lme4's ``use.u = TRUE``).
    """
    model._require_fit()
    nsim = _check_nsim(nsim)
    rng = np.random.default_rng(seed)
    d = model.design
    n = d.n
    sigma = model.sigma
    mean = d.X @ model.beta
    if d.offset is not None:
        mean = mean + d.offset
    out = np.empty((n, nsim))
    out[:] = mean[:, None]
    if use_u:
        out += model._linear_predictor(include_random=True)[:, None] - mean[:, None]
    else:
        U = rng.standard_normal((d.q, nsim))
        pos = 0
        for t, lam in zip(d.terms, model.lambdas(), strict=True):
            k = t.k
            u = U[pos : pos + t.q].reshape(t.nlevels, k, nsim)
            pos += t.q
            b = np.einsum("ij,ljs->lis", sigma * lam, u)  # (levels, k, nsim)
            out += np.einsum("ik,iks->is", t.Zt, b[t.refs])
    eps = rng.standard_normal((n, nsim)) * sigma
    if d.weights is not None:
        eps /= np.sqrt(d.weights)[:, None]
    out += eps
    return out
