"""A start for θ of a model with one random-effects term: per-level least squares.

The two-stage (moment) estimate of a random-coefficients model. For one term with k columns
over G levels, let r = y − Xβ̃ (β̃ the OLS fit of the fixed effects) and, per level l, b̃_l the
least-squares coefficients of r_l on the term's columns Z_l:

    b̃_l = (Z_l'Z_l)⁻¹ Z_l' r_l,        Var(b̃_l) ≈ Σ_b + σ² (Z_l'Z_l)⁻¹.

With σ̃² the within-level residual variance, r'r − Σ_l (Z_l'r_l)' b̃_l over n − G k degrees of
freedom, the covariance of the b̃_l about their mean, less σ̃² times the mean of the
(Z_l'Z_l)⁻¹, estimates Σ_b; θ is the Cholesky factor of Σ̃_b / σ̃² (Σ_b = σ² ΛΛ'), in lme4's
order (the lower triangle column by column). For a balanced design (every Z_l the same, as in
sleepstudy) this is the REML estimate itself when it is inside the parameter space; otherwise
it is a start close enough for Newton's method (the linear engine compares its answer with
lme4's default start and falls back to BOBYQA).

Everything comes from the blocked cross-products of a one-term model
(:mod:`mixedfx.linalg.crossprod`): A11[l] = Z_l'Z_l, the column block of level l of A21 holds
[X | y]'Z_l, and A22 = [X | y]'[X | y]. Weights (√w on every row) and the units' scaling carry
through: the answer is the internal θ' of those cross-products. One compiled pass over the
levels, O(G k³).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .crossprod import CrossProducts

__all__ = ["group_ols_theta"]


@njit(cache=True)
def _chol(M, L):  # pragma: no cover - compiled
    """L = the lower Cholesky factor of the small symmetric M; False when M is not
    (numerically) positive definite: a pivot at or below 1e-10 of its diagonal entry."""
    k = M.shape[0]
    for j in range(k):
        d = M[j, j]
        for c in range(j):
            d -= L[j, c] * L[j, c]
        if not d > 1e-10 * abs(M[j, j]):
            return False
        d = math.sqrt(d)
        L[j, j] = d
        for i in range(j + 1, k):
            s = M[i, j]
            for c in range(j):
                s -= L[i, c] * L[j, c]
            L[i, j] = s / d
        for i in range(j):
            L[i, j] = 0.0
    return True


@njit(cache=True)
def _solve(L, b, x):  # pragma: no cover - compiled
    """x = (L L')⁻¹ b for the lower-triangular L."""
    k = L.shape[0]
    for i in range(k):
        s = b[i]
        for c in range(i):
            s -= L[i, c] * x[c]
        x[i] = s / L[i, i]
    for i in range(k - 1, -1, -1):
        s = x[i]
        for c in range(i + 1, k):
            s -= L[c, i] * x[c]
        x[i] = s / L[i, i]


@njit(cache=True)
def _group_ols(A11, vals, A22, n, theta):  # pragma: no cover - compiled
    """θ of the module's estimate into ``theta``; False where it does not exist (a level
    with Z_l'Z_l singular, no residual degrees of freedom, Σ̃_b not positive definite)."""
    G, k, _ = A11.shape
    m = A22.shape[0]
    p = m - 1
    if G <= k or n - G * k <= 0:
        return False
    # β̃ = (X'X)⁻¹ X'y and r'r = y'y − β̃'X'y
    Lx = np.zeros((p, p))
    if p > 0 and not _chol(A22[:p, :p].copy(), Lx):
        return False
    beta = np.zeros(p)
    if p > 0:
        _solve(Lx, A22[:p, p].copy(), beta)
    rr = A22[p, p]
    for j in range(p):
        rr -= A22[j, p] * beta[j]
    # per level: Z_l'r_l, b̃_l and (Z_l'Z_l)⁻¹, accumulated
    L = np.zeros((k, k))
    zr = np.empty(k)
    b = np.empty(k)
    e = np.zeros(k)
    col = np.empty(k)
    mean_b = np.zeros(k)
    sbb = np.zeros((k, k))  # Σ b̃ b̃'
    inv_sum = np.zeros((k, k))  # Σ (Z_l'Z_l)⁻¹
    fit = 0.0
    for lev in range(G):
        if not _chol(A11[lev], L):
            return False
        base = lev * m
        for c in range(k):
            s = vals[base + p, c]
            for j in range(p):
                s -= vals[base + j, c] * beta[j]
            zr[c] = s
        _solve(L, zr, b)
        for c in range(k):
            fit += zr[c] * b[c]
            mean_b[c] += b[c]
            for d in range(k):
                sbb[c, d] += b[c] * b[d]
        for c in range(k):
            e[c] = 1.0
            _solve(L, e, col)
            e[c] = 0.0
            for d in range(k):
                inv_sum[d, c] += col[d]
    rss = rr - fit
    if not rss > 0.0:
        return False
    s2 = rss / (n - G * k)
    # Σ̃_b / σ̃² = cov(b̃) / σ̃² − mean (Z_l'Z_l)⁻¹
    S = np.empty((k, k))
    for c in range(k):
        for d in range(k):
            cov = (sbb[c, d] - mean_b[c] * mean_b[d] / G) / (G - 1)
            S[c, d] = cov / s2 - inv_sum[c, d] / G
    if not _chol(S, L):
        return False
    i = 0
    for c in range(k):
        for r in range(c, k):
            theta[i] = L[r, c]
            i += 1
    for v in theta:
        if not math.isfinite(v):
            return False
    return True


def group_ols_theta(A: CrossProducts, k: int) -> np.ndarray | None:
    """The module's start θ (internal units of ``A``) for a one-term model whose term has
    ``k`` columns, or None where it does not exist or ``A`` is not a one-term system.

    Parameters
    ----------
    A : CrossProducts
        Of a model with a single random-effects term (``q_rest == 0``).
    k : int
        Columns of the term.
    """
    G = A.A11.shape[0]
    m = A.m
    if A.q_rest != 0 or A.A11.shape[1:] != (k, k) or A.vals.shape != (G * m, k):
        return None
    if A.rows.size != G * m:  # one term: every level's column block holds all of [X | y]
        return None
    theta = np.empty(k * (k + 1) // 2)
    ok = _group_ols(A.A11, A.vals, A.A22, A.n, theta)
    return theta if ok else None
