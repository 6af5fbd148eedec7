"""Compiled kernels (numba, cached to disk) for the per-evaluation loops over many small blocks.

These are the loops where numpy's per-call overhead would dominate: one tiny Cholesky per
level of the first random-effects term, and the Schur-complement update that the first term's
block column contributes to the dense trailing block. Large dense work (the trailing Cholesky)
stays with LAPACK.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def factor_first_block(A11, lam, L11):  # pragma: no cover - compiled
    """L11[l] = chol(λ' A11[l] λ + I) for every level l; returns Σ log diag(L11).

    ``A11`` is (n1, k, k), ``lam`` the k x k lower-triangular Λ block of the first term.
    """
    n1, k, _ = A11.shape
    logdet = 0.0
    tmp = np.empty((k, k))
    for lev in range(n1):
        A = A11[lev]
        # tmp = A @ lam
        for i in range(k):
            for j in range(k):
                s = 0.0
                for c in range(j, k):  # lam lower triangular: lam[c, j] = 0 for c < j
                    s += A[i, c] * lam[c, j]
                tmp[i, j] = s
        M = L11[lev]
        # M = lam' @ tmp + I (lower triangle)
        for i in range(k):
            for j in range(i + 1):
                s = 0.0
                for c in range(i, k):
                    s += lam[c, i] * tmp[c, j]
                M[i, j] = s + (1.0 if i == j else 0.0)
        # in-place Cholesky of the lower triangle
        for j in range(k):
            d = M[j, j]
            for c in range(j):
                d -= M[j, c] * M[j, c]
            d = np.sqrt(d)
            M[j, j] = d
            logdet += np.log(d)
            for i in range(j + 1, k):
                s = M[i, j]
                for c in range(j):
                    s -= M[i, c] * M[j, c]
                M[i, j] = s / d
            for i in range(j):
                M[i, j] = 0.0
    return logdet


@njit(cache=True)
def scale_first_column(ptr, vals, lam, L11, P):  # pragma: no cover - compiled
    """P = A21 Λ1 L11^{-T}, block by block: for each level l of the first term,
    ``P[s:e] = vals[s:e] @ lam @ inv(L11[l]).T`` (a row-wise forward substitution)."""
    n1 = ptr.shape[0] - 1
    k = vals.shape[1]
    for lev in range(n1):
        L = L11[lev]
        for r in range(ptr[lev], ptr[lev + 1]):
            for j in range(k):
                s = 0.0
                for c in range(j, k):
                    s += vals[r, c] * lam[c, j]
                for c in range(j):
                    s -= P[r, c] * L[j, c]
                P[r, j] = s / L[j, j]


@njit(cache=True)
def schur_update(ptr, rows, P, G):  # pragma: no cover - compiled
    """G -= P P' over the lower triangle, P stored by column blocks (rows increasing)."""
    n1 = ptr.shape[0] - 1
    k = P.shape[1]
    for lev in range(n1):
        s, e = ptr[lev], ptr[lev + 1]
        for a in range(s, e):
            ra = rows[a]
            for b in range(s, a + 1):
                acc = 0.0
                for c in range(k):
                    acc += P[a, c] * P[b, c]
                G[ra, rows[b]] -= acc


@njit(cache=True)
def fill_scaled(A22, scale, q_rest, G):  # pragma: no cover - compiled
    """Lower triangle of G = S A22 S + [I 0; 0 0] for a diagonal scaling S (scalar terms)."""
    m = A22.shape[0]
    for i in range(m):
        si = scale[i]
        for j in range(i + 1):
            G[i, j] = si * scale[j] * A22[i, j]
        if i < q_rest:
            G[i, i] += 1.0


@njit(cache=True)
def scale_rows_cols(G, scale, q_rest):  # pragma: no cover - compiled
    """Lower triangle of G <- S G S + [I 0; 0 0] for a diagonal scaling S."""
    m = G.shape[0]
    for i in range(m):
        si = scale[i]
        for j in range(i + 1):
            G[i, j] *= si * scale[j]
        if i < q_rest:
            G[i, i] += 1.0
