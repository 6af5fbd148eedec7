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
def schur_update(ptr, rows, P, nx, q, scale, G, W):  # pragma: no cover - compiled
    """G -= S P P' S over the lower triangle, S = diag(scale).

    P is stored by column blocks (one per level of the first term) with increasing rows; the
    last ``nx`` rows of every block are the fixed-effects/response rows q .. q+nx-1, present in
    every block. The products with those rows are accumulated in the contiguous workspace
    ``W`` (q x nx) and added to G once at the end, so the inner loops over them are contiguous;
    only the random-effects pairs scatter into G.
    """
    n1 = ptr.shape[0] - 1
    k = P.shape[1]
    W[:, :] = 0.0
    for lev in range(n1):
        s = ptr[lev]
        e = ptr[lev + 1]
        xs = e - nx
        for a in range(s, xs):
            ra = rows[a]
            sa = scale[ra]
            for b in range(s, a + 1):
                acc = 0.0
                for c in range(k):
                    acc += P[a, c] * P[b, c]
                G[ra, rows[b]] -= sa * scale[rows[b]] * acc
            for j in range(nx):
                acc = 0.0
                for c in range(k):
                    acc += P[a, c] * P[xs + j, c]
                W[ra, j] += acc
        for i in range(nx):
            for j in range(i + 1):
                acc = 0.0
                for c in range(k):
                    acc += P[xs + i, c] * P[xs + j, c]
                G[q + i, q + j] -= acc
    for ra in range(q):
        sa = scale[ra]
        for j in range(nx):
            G[q + j, ra] -= sa * W[ra, j]


@njit(cache=True)
def schur_update_scalar(ptr, rows, p, nx, q, scale, G, W):  # pragma: no cover - compiled
    """The random-effects part of :func:`schur_update` for a scalar first term (k1 = 1,
    ``p`` one-dimensional): G -= S P P' S over the random-effects rows, and W = the products
    of the random-effects rows with the XY rows. The XY x XY block is left to the caller
    (one BLAS product). Each block's scaled values are gathered once into a small buffer so
    the inner loop is a plain multiply-add."""
    n1 = ptr.shape[0] - 1
    W[:, :] = 0.0
    longest = 0
    for lev in range(n1):
        longest = max(longest, ptr[lev + 1] - ptr[lev] - nx)
    sp = np.empty(max(longest, 1))
    for lev in range(n1):
        s = ptr[lev]
        xs = ptr[lev + 1] - nx
        for a in range(s, xs):
            sp[a - s] = p[a] * scale[rows[a]]
        for a in range(s, xs):
            Gr = G[rows[a]]
            spa = sp[a - s]
            for b in range(s, a + 1):
                Gr[rows[b]] -= spa * sp[b - s]
            Wr = W[rows[a]]
            pa = p[a]
            for j in range(nx):
                Wr[j] += pa * p[xs + j]


@njit(cache=True)
def fill_scaled(A22, scale, n_identity, G):  # pragma: no cover - compiled
    """Lower triangle of G = S A22 S + diag(1 for the first ``n_identity`` rows, else 0)."""
    m = A22.shape[0]
    for i in range(m):
        si = scale[i]
        for j in range(i + 1):
            G[i, j] = si * scale[j] * A22[i, j]
        if i < n_identity:
            G[i, i] += 1.0


@njit(cache=True)
def diag_logdets(G, q, p):  # pragma: no cover - compiled
    """(Σ log diag L22[:q], Σ log diag L22[q:q+p], L22[-1, -1]) from the factored block."""
    ld_z = 0.0
    for i in range(q):
        ld_z += np.log(G[i, i])
    ld_x = 0.0
    for i in range(q, q + p):
        ld_x += np.log(G[i, i])
    return ld_z, ld_x, G[G.shape[0] - 1, G.shape[0] - 1]


@njit(cache=True)
def grouped_outer(ptr, rows, vals, group, S):  # pragma: no cover - compiled
    """S[group[l]] += a_l a_l' (lower triangle, packed row by row) for every column block l
    of a scalar first term: the precomputation of the balanced-design Schur update."""
    n1 = ptr.shape[0] - 1
    for lev in range(n1):
        Sg = S[group[lev]]
        for a in range(ptr[lev], ptr[lev + 1]):
            ra = rows[a]
            base = ra * (ra + 1) // 2
            va = vals[a]
            for b in range(ptr[lev], a + 1):
                Sg[base + rows[b]] += va * vals[b]


@njit(cache=True)
def unpack_scaled(Mp, scale, n_identity, G):  # pragma: no cover - compiled
    """Lower triangle of G = S M S + [I 0; 0 0] from M packed row by row."""
    m = G.shape[0]
    pos = 0
    for i in range(m):
        si = scale[i]
        for j in range(i + 1):
            G[i, j] = si * scale[j] * Mp[pos]
            pos += 1
        if i < n_identity:
            G[i, i] += 1.0


@njit(cache=True)
def grouped_cross(refs, Za, w, B, out):  # pragma: no cover - compiled
    """out[g, a, c] = Σ_{i: refs[i] = g} w[i] Za[i, a] B[i, c] (out zeroed first).

    The weighted cross-products of one random-effects term's columns with another block of
    columns, summed within the groups given by ``refs``; one pass over the observations.
    """
    out[:] = 0.0
    n, ka = Za.shape
    kb = B.shape[1]
    for i in range(n):
        g = refs[i]
        wi = w[i]
        for a in range(ka):
            za = wi * Za[i, a]
            for c in range(kb):
                out[g, a, c] += za * B[i, c]
