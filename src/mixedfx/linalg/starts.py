"""Starts for θ close to the optimum of a small model, so that Newton steps can finish alone.

The linear engine's small-model route (:meth:`mixedfx.engines.linear.LinearEngine.fit`) takes
Newton steps straight from one of these, in place of BOBYQA, and keeps their answer only when
they converge inside the bounds to a criterion no higher than at lme4's default start. Both are
one compiled pass over what the fit holds already (the cross-products; for the moments also the
rows, once).

**One random-effects term: per-level least squares** (:func:`group_ols_theta`), the two-stage
(moment) estimate of a random-coefficients model. For one term with k columns over G levels,
let r = y − Xβ̃ (β̃ the OLS fit of the fixed effects) and, per level l, b̃_l the least-squares
coefficients of r_l on the term's columns Z_l:

    b̃_l = (Z_l'Z_l)⁻¹ Z_l' r_l,        Var(b̃_l) ≈ Σ_b + σ² (Z_l'Z_l)⁻¹.

With σ̃² the within-level residual variance, r'r − Σ_l (Z_l'r_l)' b̃_l over n − G k degrees of
freedom, the covariance of the b̃_l about their mean, less σ̃² times the mean of the
(Z_l'Z_l)⁻¹, estimates Σ_b; θ is the Cholesky factor of Σ̃_b / σ̃² (Σ_b = σ² ΛΛ'), in lme4's
order (the lower triangle column by column). For a balanced design (every Z_l the same, as in
sleepstudy) this is the REML estimate itself when it is inside the parameter space. It comes
from the blocked cross-products of a one-term model (:mod:`mixedfx.linalg.crossprod`):
A11[l] = Z_l'Z_l, the column block of level l of A21 holds [X | y]'Z_l, and
A22 = [X | y]'[X | y]; weights (√w on every row) and the units' scaling carry through.

**Crossed or nested random intercepts: the method of moments** (:func:`moment_theta`), the
estimate of :func:`mixedfx.linalg.moments.moment_start` (Gao & Owen; its docstring has the
equations) computed in one compiled pass: level and cell counts from the cross-products, the
residuals' per-level sums from the rows. Where the non-negative solution of the moment equations
has a zero (which moment_start's NNLS would return) there is no start here: a zero variance is
left to BOBYQA's bounded search. For the balanced Penicillin design it is the REML estimate
to 1e-8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from .crossprod import CrossProducts

__all__ = ["group_ols_theta", "moment_theta"]


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


@njit(cache=True)
def _moments(A11, rows, vals, A22, q, nlev, X, y, refs, theta):  # pragma: no cover - compiled
    """θ of the moment estimate into ``theta`` (one per term); False where the moment
    equations have no solution with every variance positive."""
    R = nlev.size
    n, p = X.shape
    m = A22.shape[0]
    # β_OLS from X'X, X'y; r = y − Xβ
    Lx = np.zeros((p, p))
    if p > 0 and not _chol(A22[q : q + p, q : q + p].copy(), Lx):
        return False
    beta = np.zeros(p)
    if p > 0:
        _solve(Lx, A22[m - 1, q : q + p].copy(), beta)
    # U_0 and the per-level sums of r and r² of every factor (U_f, halved as below)
    U = np.zeros(R + 1)
    total = 0
    for f in range(R):
        total += nlev[f]
    s1 = np.zeros(total)
    s2 = np.zeros(total)
    off = np.zeros(R + 1, dtype=np.int64)
    for f in range(R):
        off[f + 1] = off[f] + nlev[f]
    sr = 0.0
    srr = 0.0
    for i in range(n):
        r = y[i]
        for j in range(p):
            r -= X[i, j] * beta[j]
        sr += r
        srr += r * r
        for f in range(R):
            lev = off[f] + refs[f, i]
            s1[lev] += r
            s2[lev] += r * r
    N = float(n)
    U[0] = (N * srr - sr * sr) / 2.0
    # level counts: the first term's from A11, the later terms' from A22's diagonal
    counts = np.empty(total)
    for lev in range(nlev[0]):
        counts[lev] = A11[lev, 0, 0]
    for lev in range(total - nlev[0]):
        counts[nlev[0] + lev] = A22[lev, lev]
    Pf = np.zeros(R)
    for f in range(R):
        a = 0.0
        b = 0.0
        for lev in range(off[f], off[f + 1]):
            c = counts[lev]
            a += c * s2[lev] - s1[lev] * s1[lev]
            b += c * (c - 1.0) / 2.0
        U[1 + f] = a / 2.0
        Pf[f] = b
    # pairs sharing a cell of two factors: first x later from A21, later x later from A22
    Pfg = np.zeros((R, R))
    for e in range(rows.size):
        row = rows[e]
        if row < q:
            g = 1
            while row >= off[g + 1] - nlev[0]:
                g += 1
            c = vals[e, 0]
            Pfg[0, g] += c * (c - 1.0) / 2.0
    for g in range(1, R):
        for h in range(g + 1, R):
            for i in range(off[h] - nlev[0], off[h + 1] - nlev[0]):
                for j in range(off[g] - nlev[0], off[g + 1] - nlev[0]):
                    c = A22[i, j]
                    Pfg[g, h] += c * (c - 1.0) / 2.0
    P = N * (N - 1.0) / 2.0
    M = np.zeros((R + 1, R + 1))
    for g in range(R):
        M[0, g] = P - Pf[g]
    M[0, R] = P
    for f in range(R):
        for g in range(R):
            if g != f:
                M[1 + f, g] = Pf[f] - (Pfg[f, g] if f < g else Pfg[g, f])
        M[1 + f, R] = Pf[f]
    # M s = U with rows scaled to unit norm, by Gaussian elimination with partial pivoting
    k = R + 1
    for i in range(k):
        nrm = 0.0
        for j in range(k):
            nrm += M[i, j] * M[i, j]
        nrm = math.sqrt(nrm)
        if not nrm > 0.0:
            return False
        for j in range(k):
            M[i, j] /= nrm
        U[i] /= nrm
    for c in range(k):
        piv = c
        for i in range(c + 1, k):
            if abs(M[i, c]) > abs(M[piv, c]):
                piv = i
        if not abs(M[piv, c]) > 1e-12:
            return False
        if piv != c:
            for j in range(k):
                M[c, j], M[piv, j] = M[piv, j], M[c, j]
            U[c], U[piv] = U[piv], U[c]
        for i in range(c + 1, k):
            t = M[i, c] / M[c, c]
            for j in range(c, k):
                M[i, j] -= t * M[c, j]
            U[i] -= t * U[c]
    sv = np.empty(k)
    for i in range(k - 1, -1, -1):
        t = U[i]
        for j in range(i + 1, k):
            t -= M[i, j] * sv[j]
        sv[i] = t / M[i, i]
    for i in range(k):
        if not (sv[i] > 0.0 and math.isfinite(sv[i])):
            return False
    for f in range(R):
        theta[f] = math.sqrt(sv[f] / sv[R])
    return True


def moment_theta(
    A: CrossProducts, terms: Sequence[Any], X: np.ndarray, y: np.ndarray
) -> np.ndarray | None:
    """The moment start θ (one per term, lme4's order of the design's terms) for crossed or
    nested random intercepts of an unweighted model, from its cross-products ``A`` (in the
    units of ``y``) and rows; None where a term is not a random intercept, or where the moment
    equations give a zero variance (see the module docstring).

    Parameters
    ----------
    A : CrossProducts
        Unweighted, of the design whose ``terms`` (first term first), ``X`` and response
        ``y`` (offset taken off, in A's units) are given.
    """
    if any(t.k != 1 or t.columns != ["(Intercept)"] for t in terms):
        return None
    nl = [t.nlevels for t in terms]
    if A.A11.shape[0] != nl[0] or A.q_rest != sum(nl[1:]):
        return None
    refs = np.stack([t.refs for t in terms]).astype(np.int64, copy=False)
    theta = np.empty(len(terms))
    Xc = np.ascontiguousarray(X, dtype=float)
    ok = _moments(A.A11, A.rows, A.vals, A.A22, A.q_rest, np.array(nl), Xc, y, refs, theta)
    return theta if ok else None
