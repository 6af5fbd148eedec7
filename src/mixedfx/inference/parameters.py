"""The parameters as lme4's ``confint`` and ``profile`` name them: the random effects'
standard deviations and correlations (``.sig01``, ``.sig02``, ... per term in θ's order),
``.sigma`` where the model has a dispersion parameter, then the fixed effects; and the maps
between θ and that "sdcor" scale."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..frame.design import tril_indices_colmajor
from ..linalg.factor import lambda_blocks

__all__ = ["parameter_names", "sdcor_names", "sdcor_to_theta", "theta_to_sdcor"]


def parameter_names(engine: Any) -> list[str]:
    """lme4's confint row names: sd/cor parameters, ``.sigma`` (if estimated), fixed effects."""
    names = sdcor_names(engine)
    if not engine.has_dispersion:
        names = names[:-1]
    return names + list(engine.design.fixed.names)


def sdcor_names(model: Any) -> list[str]:
    """lme4's names of the variance parameters: ``.sig01``, ... and ``.sigma``."""
    m = len(model.design.theta_lower())
    return [f".sig{i + 1:02d}" for i in range(m)] + [".sigma"]


def theta_to_sdcor(theta: np.ndarray, sigma: float, ks: list[int]) -> np.ndarray:
    """(θ, σ) -> (sd/cor per term in θ's order, σ)."""
    out: list[float] = []
    for lam in lambda_blocks(theta, ks):
        k = lam.shape[0]
        S = sigma**2 * (lam @ lam.T)
        sd = np.sqrt(np.diag(S))
        rows, cols = tril_indices_colmajor(k)
        for r, c in zip(rows, cols, strict=True):
            if r == c:
                out.append(sd[r])
            else:
                out.append(S[r, c] / (sd[r] * sd[c]) if sd[r] > 0 and sd[c] > 0 else 0.0)
    out.append(sigma)
    return np.asarray(out)


def sdcor_to_theta(phi: np.ndarray, ks: list[int]) -> tuple[np.ndarray, float]:
    """(sd/cor..., σ) -> (θ, σ); a correlation matrix that is not positive definite is
    nudged to the nearest semidefinite one before its Cholesky factor is taken."""
    sigma = float(phi[-1])
    theta: list[float] = []
    pos = 0
    for k in ks:
        nt = k * (k + 1) // 2
        block = phi[pos : pos + nt]
        pos += nt
        rows, cols = tril_indices_colmajor(k)
        if k == 1:
            theta.append(block[0] / sigma)
            continue
        R = np.eye(k)
        sd = np.zeros(k)
        for v, r, c in zip(block, rows, cols, strict=True):
            if r == c:
                sd[r] = v
            else:
                R[r, c] = R[c, r] = v
        w, V = np.linalg.eigh(R)
        if w.min() < 1e-12:
            w = np.maximum(w, 1e-12)
            R = (V * w) @ V.T
            d = np.sqrt(np.diag(R))
            R = R / np.outer(d, d)
        L = np.linalg.cholesky(R) * sd[:, None] / sigma
        theta.extend(L[r, c] for r, c in zip(rows, cols, strict=True))
    return np.asarray(theta), sigma
