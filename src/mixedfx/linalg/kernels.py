"""Compiled kernels (numba, cached to disk) for the per-evaluation loops over many small blocks.

These are the loops where numpy's per-call overhead would dominate: one tiny Cholesky per
level of the first random-effects term, and the Schur-complement update that the first term's
block column contributes to the dense trailing block. Large dense work (the trailing Cholesky)
stays with LAPACK. For a small model (:mod:`mixedfx.linalg.fused`) the whole minimization runs
here too: the criterion as nlopt's C callback (``small_objective``), Brent's method for one θ
(``small_scalar``) and the Newton polish (``small_polish``). Compiled callers live in the same
file as their callees: numba's cache is invalidated only by changes to a function's own file.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@njit(cache=True)
def factor_first_block(A11, lam, L11):  # pragma: no cover - compiled
    """L11[l] = chol(λ' A11[l] λ + I) for every level l; returns Σ log diag(L11).

    ``A11`` is (n1, k, k), ``lam`` the k x k lower-triangular Λ block of the first term.
    """
    n1, k, _ = A11.shape
    logdet = 0.0
    if k == 1:  # the loops below for k = 1 and 2, unrolled: the same operations in the same order
        l00 = lam[0, 0]
        for lev in range(n1):
            d = np.sqrt(l00 * (A11[lev, 0, 0] * l00) + 1.0)
            L11[lev, 0, 0] = d
            logdet += np.log(d)
        return logdet
    if k == 2:
        l00, l10, l11 = lam[0, 0], lam[1, 0], lam[1, 1]
        for lev in range(n1):
            a00, a01, a10, a11 = A11[lev, 0, 0], A11[lev, 0, 1], A11[lev, 1, 0], A11[lev, 1, 1]
            t00 = a00 * l00 + a01 * l10
            t10 = a10 * l00 + a11 * l10
            d0 = np.sqrt((l00 * t00 + l10 * t10) + 1.0)
            logdet += np.log(d0)
            m10 = (l11 * t10 + 0.0) / d0
            d1 = np.sqrt((l11 * (a11 * l11) + 1.0) - m10 * m10)
            logdet += np.log(d1)
            M = L11[lev]
            M[0, 0] = d0
            M[0, 1] = 0.0
            M[1, 0] = m10
            M[1, 1] = d1
        return logdet
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
    if k == 2:  # the loop below, unrolled: the same operations in the same order
        l00, l10, l11 = lam[0, 0], lam[1, 0], lam[1, 1]
        for lev in range(n1):
            L = L11[lev]
            d0, c10, d1 = L[0, 0], L[1, 0], L[1, 1]
            for r in range(ptr[lev], ptr[lev + 1]):
                v0, v1 = vals[r, 0], vals[r, 1]
                p0 = (v0 * l00 + v1 * l10) / d0
                P[r, 0] = p0
                P[r, 1] = (v1 * l11 - p0 * c10) / d1
        return
    if k == 1:
        l00 = lam[0, 0]
        for lev in range(n1):
            d0 = L11[lev, 0, 0]
            for r in range(ptr[lev], ptr[lev + 1]):
                P[r, 0] = (vals[r, 0] * l00) / d0
        return
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
    if k == 2 and q == 0:  # no later terms (one term, k = 2): the loop below, unrolled
        for lev in range(n1):
            xs = ptr[lev + 1] - nx
            for i in range(nx):
                a0, a1 = P[xs + i, 0], P[xs + i, 1]
                for j in range(i + 1):
                    G[i, j] -= a0 * P[xs + j, 0] + a1 * P[xs + j, 1]
        return
    if k == 1:  # a scalar first term: the loop below with the sums over c of one term
        for lev in range(n1):
            s = ptr[lev]
            xs = ptr[lev + 1] - nx
            for a in range(s, xs):
                ra = rows[a]
                sa = scale[ra]
                pa = P[a, 0]
                for b in range(s, a + 1):
                    rb = rows[b]
                    G[ra, rb] -= sa * scale[rb] * (pa * P[b, 0])
                for j in range(nx):
                    W[ra, j] += pa * P[xs + j, 0]
            for i in range(nx):
                pi = P[xs + i, 0]
                for j in range(i + 1):
                    G[q + i, q + j] -= pi * P[xs + j, 0]
    else:
        _schur_update_general(ptr, rows, P, nx, q, scale, G, W)
    for ra in range(q):
        sa = scale[ra]
        for j in range(nx):
            G[q + j, ra] -= sa * W[ra, j]


@njit(cache=True)
def _schur_update_general(ptr, rows, P, nx, q, scale, G, W):  # pragma: no cover - compiled
    """The random-effects and fixed-effects rows of :func:`schur_update` for any k (W is
    left for the caller to add)."""
    n1 = ptr.shape[0] - 1
    k = P.shape[1]
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


@njit(cache=True)
def schur_fill_scalar(ptr, rows, vals, lam, L11, scale, A22, nx, G, W, sp):  # pragma: no cover
    """G = S (A22 - P P') S + [I 0; 0 0] over the random-effects rows, for a scalar first term,
    S = diag(scale), with P = A21 λ / L11 (the first term's block column).

    First ``sp = S P`` for every stored entry of A21 (``sp[a] = vals[a] λ / L11[l] ·
    scale[rows[a]]``, the arithmetic of :func:`scale_first_column` then the scaling); the XY
    rows have scale 1, so ``sp`` there is P itself. Then G's lower triangle is filled with
    S A22 S (+ I on the random-effects diagonal, rows below q = A22 rows - nx), and each
    column block's pairs of random-effects rows are subtracted, level after level (the sums
    of :func:`schur_update` with k = 1, in the same order). Four rows a of a block are taken
    together, so that each row b's index and value are loaded once for four updates. The
    products of the block's random-effects rows with its XY rows (gathered into a small
    buffer) go to ``W`` (q x nx, already scaled: W = S_re P_re P_xy'); the XY x XY block and
    W are left to the caller.
    """
    n1 = ptr.shape[0] - 1
    m = A22.shape[0]
    q = m - nx
    for lev in range(n1):
        d = L11[lev, 0, 0]
        for a in range(ptr[lev], ptr[lev + 1]):
            sp[a] = vals[a, 0] * lam / d * scale[rows[a]]
    for i in range(m):
        si = scale[i]
        Ar = A22[i]
        Gr = G[i]
        for j in range(i + 1):
            Gr[j] = si * scale[j] * Ar[j]
        if i < q:
            Gr[i] += 1.0
    W[:, :] = 0.0
    px = np.empty(nx)
    for lev in range(n1):
        s = ptr[lev]
        xs = ptr[lev + 1] - nx
        for j in range(nx):
            px[j] = sp[xs + j]
        a = s
        while a + 3 < xs:
            G0 = G[rows[a]]
            G1 = G[rows[a + 1]]
            G2 = G[rows[a + 2]]
            G3 = G[rows[a + 3]]
            s0 = sp[a]
            s1 = sp[a + 1]
            s2 = sp[a + 2]
            s3 = sp[a + 3]
            for b in range(s, a + 1):
                rb = rows[b]
                v = sp[b]
                G0[rb] -= s0 * v
                G1[rb] -= s1 * v
                G2[rb] -= s2 * v
                G3[rb] -= s3 * v
            for k in range(1, 4):  # the pairs (a + k, b) with a < b <= a + k
                Gk = G[rows[a + k]]
                sk = sp[a + k]
                for b in range(a + 1, a + k + 1):
                    Gk[rows[b]] -= sk * sp[b]
            a += 4
        while a < xs:
            Gr = G[rows[a]]
            spa = sp[a]
            for b in range(s, a + 1):
                Gr[rows[b]] -= spa * sp[b]
            a += 1
        for a in range(s, xs):
            Wr = W[rows[a]]
            spa = sp[a]
            for j in range(nx):
                Wr[j] += spa * px[j]


@njit(cache=True)
def check_xy_rows(ptr, rows, nx, q):  # pragma: no cover - compiled
    """0 when every column block of A21 ends with the XY rows q .. q+nx-1 (what the Schur
    kernels rely on); 1 when a block has fewer than nx entries, 2 when its last rows differ."""
    for lev in range(ptr.shape[0] - 1):
        e = ptr[lev + 1]
        if e - ptr[lev] < nx:
            return 1
        for j in range(nx):
            if rows[e - nx + j] != q + j:
                return 2
    return 0


@njit(cache=True)
def lower_t_solve(L, c, m):  # pragma: no cover - compiled
    """x with L[:m, :m]' x = c[:m], L lower triangular (the order of the reference BLAS
    dtrsv); for the small trailing blocks where LAPACK's call costs more than the work."""
    x = np.empty(m)
    for j in range(m - 1, -1, -1):
        t = c[j]
        for i in range(m - 1, j, -1):
            t -= L[i, j] * x[i]
        x[j] = t / L[j, j]
    return x


@njit(cache=True)
def first_block_solve(ptr, rows, P, L11, lv):  # pragma: no cover - compiled
    """u1[l] = L11[l]⁻ᵀ (c1[l] − Σ_r P[r] lv[rows[r]]) for every level l of the first term,
    c1[l] the block's last row of P (the response row; lv is 0 there), the sum over the
    block's rows in order; the triangular solve in the reference BLAS dtrsm's order."""
    n1 = ptr.shape[0] - 1
    k = P.shape[1]
    u1 = np.empty((n1, k))
    for lev in range(n1):
        s = ptr[lev]
        e = ptr[lev + 1]
        L = L11[lev]
        x = u1[lev]
        for j in range(k):
            acc = 0.0
            for r in range(s, e):
                acc += P[r, j] * lv[rows[r]]
            x[j] = P[e - 1, j] - acc
        for j in range(k - 1, -1, -1):
            x[j] /= L[j, j]
            for i in range(j):
                x[i] -= x[j] * L[j, i]
    return u1


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
def merge_order(lv, n1):  # pragma: no cover - compiled
    """Where each entry goes when the entries (levels ``lv``, parts one after another, each
    part's rows below the next part's) are sorted stably by level, and the column pointers:
    ``ptr`` from the counts per level, then a running cursor per level in entry order."""
    ptr = np.zeros(n1 + 1, np.int64)
    for i in range(lv.size):
        ptr[lv[i] + 1] += 1
    for lev in range(n1):
        ptr[lev + 1] += ptr[lev]
    cursor = ptr[:-1].copy()
    dest = np.empty(lv.size, np.int64)
    for i in range(lv.size):
        lev = lv[i]
        dest[i] = cursor[lev]
        cursor[lev] += 1
    return dest, ptr


@njit(cache=True)
def pair_index(a, b, na, nb):  # pragma: no cover - compiled
    """``np.unique(a * nb + b, return_inverse=True)`` for level codes 0 <= a < na and
    0 <= b < nb, in O(n + pairs · log) instead of a sort of all n keys.

    The rows are bucketed by ``a`` (a counting sort); within each level of ``a`` the distinct
    levels of ``b`` met are marked, sorted (a short sort per level) and numbered. Returns the
    sorted unique keys (int64) and each row's index among them (int64).
    """
    n = a.shape[0]
    start = np.zeros(na + 1, np.int64)
    for i in range(n):
        start[a[i] + 1] += 1
    for lev in range(na):
        start[lev + 1] += start[lev]
    # b bucketed by a (one scattered write per row); the buckets are then read in order
    fill = start[:na].copy()
    bs = np.empty(n, np.int64)
    for i in range(n):
        ai = a[i]
        bs[fill[ai]] = b[i]
        fill[ai] += 1
    mark = np.full(nb, -1, np.int64)  # mark[v] = the last level of a in which v was met
    slot = np.empty(nb, np.int64)  # slot[v] = pair number of (current level, v)
    buf = np.empty(nb, np.int64)
    keys = np.empty(n, np.int64)
    npairs = 0
    for lev in range(na):
        k = 0
        for t in range(start[lev], start[lev + 1]):
            v = bs[t]
            if mark[v] != lev:
                mark[v] = lev
                buf[k] = v
                k += 1
        lv = np.sort(buf[:k])
        for j in range(k):
            slot[lv[j]] = npairs + j
            keys[npairs + j] = lev * nb + lv[j]
        for t in range(start[lev], start[lev + 1]):
            bs[t] = slot[bs[t]]  # now the pair number of the bucketed row
        npairs += k
    # back to the rows' order: the buckets are filled again in the same order
    inv = np.empty(n, np.int64)
    fill[:] = start[:na]
    for i in range(n):
        ai = a[i]
        inv[i] = bs[fill[ai]]
        fill[ai] += 1
    return keys[:npairs].copy(), inv


@njit(cache=True)
def grouped_outer(ptr, rows, vals, order, gstart, r0, cb, S, work):  # pragma: no cover
    """The sums S_g = Σ_{l in group g} a_l a_l' of a scalar first term's column blocks a_l,
    over the rows r0 <= r < cb[-1] of the lower triangle, in the chunked layout that
    :func:`grouped_fill` reads.

    The levels are taken group by group (``order[gstart[g]:gstart[g + 1]]``), so each group's
    sum is accumulated in the small packed workspace ``work`` (rows r0.., row by row), which
    stays in cache, and then copied out once. Layout: row chunk b (rows cb[b]..cb[b + 1]-1,
    packed entries e_b..e_{b+1}-1 counted from row r0) holds, for each group g in turn, that
    group's e_{b+1} - e_b entries, starting at nd·e_b + g·(e_{b+1} - e_b). ``S``, ``work``
    and ``vals`` may be integer arrays when every partial sum is an integer that fits them
    (the caller checks).
    """
    nd = gstart.shape[0] - 1
    nb = cb.shape[0] - 1
    r1 = cb[nb]
    base0 = r0 * (r0 + 1) // 2
    for g in range(nd):
        work[:] = 0
        for t in range(gstart[g], gstart[g + 1]):
            lev = order[t]
            s = ptr[lev]
            for a in range(s, ptr[lev + 1]):
                ra = rows[a]
                if ra >= r1:  # rows increase within a block
                    break
                if ra < r0:
                    continue
                off = ra * (ra + 1) // 2 - base0
                va = vals[a]
                for b in range(s, a + 1):
                    work[off + rows[b]] += va * vals[b]
        for b in range(nb):
            e0 = cb[b] * (cb[b] + 1) // 2 - base0
            e1 = cb[b + 1] * (cb[b + 1] + 1) // 2 - base0
            o = nd * e0 + g * (e1 - e0) - e0
            for e in range(e0, e1):
                S[o + e] = work[e]


@njit(cache=True)
def grouped_fill(S, wg, r0, cb, A22, scale, n_identity, G, acc):  # pragma: no cover
    """Rows r0 <= i < cb[-1] of the lower triangle of G = S_r (A22 - Σ_g wg[g] S_g) S_r
    + [I 0; 0 0], with the S_g in the chunked layout of :func:`grouped_outer` and S_r =
    diag(scale). Each row chunk is one contiguous stretch of ``S``: its weighted sum over the
    groups is accumulated in ``acc`` (held in cache) and then scaled into G."""
    nd = wg.shape[0]
    nb = cb.shape[0] - 1
    base0 = r0 * (r0 + 1) // 2
    for b in range(nb):
        e0 = cb[b] * (cb[b] + 1) // 2 - base0
        e1 = cb[b + 1] * (cb[b + 1] + 1) // 2 - base0
        ne = e1 - e0
        a = acc[:ne]
        a[:] = 0.0
        o = nd * e0
        for g in range(nd):
            w = wg[g]
            Sg = S[o + g * ne : o + (g + 1) * ne]  # a view: the loop below vectorizes
            for e in range(ne):
                a[e] += w * Sg[e]
        pos = 0
        for i in range(cb[b], cb[b + 1]):
            si = scale[i]
            Ar = A22[i]
            Gr = G[i]
            for j in range(i + 1):
                Gr[j] = si * scale[j] * (Ar[j] - a[pos + j])
            pos += i + 1
            if i < n_identity:
                Gr[i] += 1.0


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


@njit(cache=True)
def scalar_crossprods(r1, z1, rrows, rz, pos21, w, XY, ptr, A11, vals, A22):  # pragma: no cover
    """All blocked cross-products in one pass over the observations, for designs whose
    random-effects terms are all scalar (k = 1): the common random-intercepts GLMM, whose
    cross-products PIRLS refills every iteration.

    ``r1``/``z1``: first term's level and value per observation; ``rrows``/``rz`` (K-1, n):
    the row of A22 (term offset + level) and value of each later term; ``pos21`` (K-1, n):
    the position in ``vals`` of the (first-term level, later-term level) pair; ``XY`` the
    unweighted [X | y]; ``w`` the weights. A22 is filled in the lower triangle, then mirrored,
    except its XY x XY block, left to the caller (one BLAS product).
    """
    A11[:] = 0.0
    vals[:] = 0.0
    A22[:] = 0.0
    n = r1.shape[0]
    K = rrows.shape[0]
    nx = XY.shape[1]
    m = A22.shape[0]
    q = m - nx
    for i in range(n):
        wi = w[i]
        lev = r1[i]
        a = wi * z1[i]
        A11[lev, 0, 0] += a * z1[i]
        xs = ptr[lev + 1] - nx
        for c in range(nx):
            vals[xs + c, 0] += a * XY[i, c]
        for t in range(K):
            zt = rz[t, i]
            bt = wi * zt
            rt = rrows[t, i]
            vals[pos21[t, i], 0] += a * zt
            for s in range(t + 1):
                A22[rt, rrows[s, i]] += bt * rz[s, i]
            for c in range(nx):
                A22[q + c, rt] += bt * XY[i, c]
    for r in range(m):
        for c in range(r):
            A22[c, r] = A22[r, c]


# --------------------------------------------------------------------------------------------
# A small model's whole factor and criterion in one call (linalg/fused.py). Kept in this file:
# numba's on-disk cache of a function is invalidated by changes to its own file only, so a
# compiled caller in another module would keep stale copies of these kernels.

_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True)
def small_factor(  # pragma: no cover - compiled
    theta, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, S, cg
):
    """Factor the system at θ into L11, P and G (lower triangle = L22, as
    :meth:`BlockedFactor.update` leaves them); returns (log|Lz|, log|Rx|, r, ok), ok False
    when L22 is not positive definite.

    ``rest`` (nterms-1, 4) holds for each later term: first row in G, levels, k, first θ
    index. ``S`` (nd, m, m) and ``cg`` (nd,): for a scalar first term and scalar later terms,
    the grouped Schur update (see :class:`mixedfx.linalg.fused.SmallSystem`)

        P P' = Σ_g θ1²/(θ1² c_g + 1) S_g,   S_g = Σ_{l: A11[l] = c_g} a_l a_l'

    in place of the scatter over the entries of P (P is then not written: nd > 0 leaves it
    for the caller to compute when needed). nd = 0: the scatter.
    """
    # Λ1 from θ: lower triangle, column by column
    lam = np.zeros((k1, k1))
    t = 0
    for j in range(k1):
        for i in range(j, k1):
            lam[i, j] = theta[t]
            t += 1
    logdet1 = factor_first_block(A11, lam, L11)
    m = A22.shape[0]
    nx = m - q
    nrest = rest.shape[0]
    nd = S.shape[0]
    if nd > 0:
        for i in range(m):
            scale[i] = 1.0
        for r in range(nrest):
            v = theta[rest[r, 3]]
            for i in range(rest[r, 0], rest[r, 0] + rest[r, 1]):
                scale[i] = v
        t2 = lam[0, 0] * lam[0, 0]
        wg = np.empty(nd)
        for g in range(nd):
            wg[g] = t2 / (t2 * cg[g] + 1.0)
        for i in range(m):
            si = scale[i]
            for j in range(i + 1):
                acc = 0.0
                for g in range(nd):
                    acc += wg[g] * S[g, i, j]
                G[i, j] = si * scale[j] * (A22[i, j] - acc)
            if i < q:
                G[i, i] += 1.0
        return _small_cholesky(G, m, q, logdet1)
    scale_first_column(ptr, vals, lam, L11, P)
    scalar_rest = True
    for r in range(nrest):
        if rest[r, 2] != 1:
            scalar_rest = False
    if scalar_rest:
        for i in range(m):
            scale[i] = 1.0
        for r in range(nrest):
            v = theta[rest[r, 3]]
            for i in range(rest[r, 0], rest[r, 0] + rest[r, 1]):
                scale[i] = v
        fill_scaled(A22, scale, q, G)
        schur_update(ptr, rows, P, nx, q, scale, G, W)
    else:
        for i in range(m):
            scale[i] = 1.0
        fill_scaled(A22, scale, 0, G)
        schur_update(ptr, rows, P, nx, q, scale, G, W)
        # G <- Λr' G Λr + [I 0; 0 0], Λr block diagonal: symmetrize, scale columns, then rows
        for i in range(m):
            for j in range(i):
                G[j, i] = G[i, j]
        for r in range(nrest):
            pos, nl, k, t0 = rest[r, 0], rest[r, 1], rest[r, 2], rest[r, 3]
            lr = np.zeros((k, k))
            t = t0
            for j in range(k):
                for i in range(j, k):
                    lr[i, j] = theta[t]
                    t += 1
            tmp = np.empty(k)
            for lev in range(nl):
                c0 = pos + lev * k
                for i in range(m):  # G[i, c0:c0+k] @= lr
                    for j in range(k):
                        s = 0.0
                        for c in range(j, k):
                            s += G[i, c0 + c] * lr[c, j]
                        tmp[j] = s
                    for j in range(k):
                        G[i, c0 + j] = tmp[j]
                for i in range(m):  # G[c0:c0+k, i] = lr' G[c0:c0+k, i]
                    for j in range(k):
                        s = 0.0
                        for c in range(j, k):
                            s += lr[c, j] * G[c0 + c, i]
                        tmp[j] = s
                    for j in range(k):
                        G[c0 + j, i] = tmp[j]
        for i in range(q):
            G[i, i] += 1.0
    return _small_cholesky(G, m, q, logdet1)


@njit(cache=True)
def _small_cholesky(G, m, q, logdet1):  # pragma: no cover - compiled
    """In-place Cholesky of the lower triangle of G (m x m) and :func:`small_factor`'s
    (log|Lz|, log|Rx|, r, ok), log|Lz| = ``logdet1`` + Σ log diag L22[:q]."""
    for j in range(m):
        d = G[j, j]
        for c in range(j):
            d -= G[j, c] * G[j, c]
        if not d > 0.0:
            return 0.0, 0.0, 0.0, False
        d = math.sqrt(d)
        G[j, j] = d
        inv = 1.0 / d
        for i in range(j + 1, m):
            s = G[i, j]
            for c in range(j):
                s -= G[i, c] * G[j, c]
            G[i, j] = s * inv
    ld_z = logdet1
    for i in range(q):
        ld_z += math.log(G[i, i])
    ld_x = 0.0
    for i in range(q, m - 1):
        ld_x += math.log(G[i, i])
    return ld_z, ld_x, G[m - 1, m - 1], True


@njit(cache=True)
def small_groups(A11, ptr, rows, vals, m, max_groups, min_ratio):  # pragma: no cover
    """The S_g (nd, m, m; lower triangles) and distinct counts c_g (sorted) of the grouped
    Schur update of a scalar first term (:func:`small_factor`), S_g = Σ_{l: A11[l] = c_g}
    a_l a_l' with a_l level l's column of A21 (entries ptr[l]..ptr[l+1] at ``rows``). nd = 0
    when there are more than ``max_groups`` distinct counts, or the grouped update is not
    ``min_ratio`` times fewer operations than the scatter over the entries."""
    n1 = A11.shape[0]
    counts = np.empty(n1)
    for lev in range(n1):
        counts[lev] = A11[lev, 0, 0]
    c = np.unique(counts)
    nd = c.shape[0]
    scatter = 0.0
    for lev in range(n1):
        r = ptr[lev + 1] - ptr[lev]
        scatter += r * (r + 1) / 2.0
    if nd > max_groups or min_ratio * nd * m * (m + 1) / 2.0 > scatter:
        return np.zeros((0, m, m)), np.zeros(0)
    S = np.zeros((nd, m, m))
    for lev in range(n1):
        g = np.searchsorted(c, counts[lev])
        for a in range(ptr[lev], ptr[lev + 1]):
            ra = rows[a]
            va = vals[a, 0]
            for b in range(ptr[lev], a + 1):
                S[g, ra, rows[b]] += va * vals[b, 0]
    return S, c


@njit(cache=True)
def small_criterion(  # pragma: no cover - compiled
    theta, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, S, cg, n, reml, const
):
    """The profiled criterion at θ (NaN when L22 is not positive definite, +inf when r² is
    not positive); ``const`` is added (−Σ log w plus the units' shift)."""
    ld_z, ld_x, r, ok = small_factor(
        theta, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, S, cg
    )
    if not ok:
        return np.nan
    pwrss = r * r
    if not pwrss > 0.0:
        return np.inf
    if reml:
        nmp = n - (A22.shape[0] - q - 1)
        return 2.0 * ld_z + 2.0 * ld_x + nmp * (1.0 + _LOG_2PI + math.log(pwrss / nmp)) + const
    return 2.0 * ld_z + n * (1.0 + _LOG_2PI + math.log(pwrss / n)) + const


@njit(cache=True)
def small_criterion_many(  # pragma: no cover - compiled
    thetas, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, S, cg, n, reml, const
):
    """:func:`small_criterion` at every row of ``thetas``."""
    out = np.empty(thetas.shape[0])
    for i in range(thetas.shape[0]):
        out[i] = small_criterion(
            thetas[i],
            k1,
            A11,
            ptr,
            rows,
            vals,
            A22,
            rest,
            q,
            L11,
            P,
            G,
            W,
            scale,
            S,
            cg,
            n,
            reml,
            const,
        )
    return out


# ---------------------------------------------------------------------------------------------
# The whole optimization of a small model in compiled code: nlopt's BOBYQA calls
# ``small_objective`` (a C callback) and ``small_polish`` takes the Newton steps after it, both
# on the system described by an int64 header (see :meth:`mixedfx.linalg.fused.SmallSystem.header`):
#
#   0 k1   1 q   2 n   3 reml   4 levels of the first term   5 m   6 rows of P   7 later terms
#   8, 9 shape of W   10 number of θ   11-22 addresses of A11, ptr, rows, vals, A22, rest, L11,
#   P, G, W, scale and the float64 state [const, evaluations, failures, best f, best θ...]
#   23 groups of the grouped Schur update (nd)   24, 25 addresses of S and cg
# ---------------------------------------------------------------------------------------------

SMALL_HEADER = 26


@intrinsic
def _address(typingctx, addr):  # pragma: no cover - compiled
    """An integer address as a void pointer (for ``carray``)."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(addr), codegen


@njit(cache=True)
def small_header(
    k1, q, n, reml, nx, A11, ptr, rows, vals, A22, rest, L11, P, G, W, scale, state, S, cg
):  # pragma: no cover - compiled
    """The header of a small system (layout above); one compiled call (numpy's ``.ctypes``
    costs ~2 µs per array)."""
    hdr = np.empty(SMALL_HEADER, np.int64)
    hdr[0] = k1
    hdr[1] = q
    hdr[2] = n
    hdr[3] = 1 if reml else 0
    hdr[4] = A11.shape[0]
    hdr[5] = A22.shape[0]
    hdr[6] = vals.shape[0]
    hdr[7] = rest.shape[0]
    hdr[8] = W.shape[0]
    hdr[9] = W.shape[1]
    hdr[10] = nx
    hdr[11] = A11.ctypes.data
    hdr[12] = ptr.ctypes.data
    hdr[13] = rows.ctypes.data
    hdr[14] = vals.ctypes.data
    hdr[15] = A22.ctypes.data
    hdr[16] = rest.ctypes.data
    hdr[17] = L11.ctypes.data
    hdr[18] = P.ctypes.data
    hdr[19] = G.ctypes.data
    hdr[20] = W.ctypes.data
    hdr[21] = scale.ctypes.data
    hdr[22] = state.ctypes.data
    hdr[23] = S.shape[0]
    hdr[24] = S.ctypes.data
    hdr[25] = cg.ctypes.data
    return hdr


@njit(cache=True)
def small_eval(theta, hdr):  # pragma: no cover - compiled
    """:func:`small_criterion` at θ on the system of the header; counts the evaluation (and a
    failure, returned as +inf, where the factor does not exist) and keeps the best point."""
    k1, q, n1, m, nr = hdr[0], hdr[1], hdr[4], hdr[5], hdr[6]
    A11 = carray(_address(hdr[11]), (n1, k1, k1), np.float64)
    ptr = carray(_address(hdr[12]), (n1 + 1,), np.int64)
    rows = carray(_address(hdr[13]), (nr,), np.int64)
    vals = carray(_address(hdr[14]), (nr, k1), np.float64)
    A22 = carray(_address(hdr[15]), (m, m), np.float64)
    rest = carray(_address(hdr[16]), (hdr[7], 4), np.int64)
    L11 = carray(_address(hdr[17]), (n1, k1, k1), np.float64)
    P = carray(_address(hdr[18]), (nr, k1), np.float64)
    G = carray(_address(hdr[19]), (m, m), np.float64)
    W = carray(_address(hdr[20]), (hdr[8], hdr[9]), np.float64)
    scale = carray(_address(hdr[21]), (m,), np.float64)
    nx = hdr[10]
    state = carray(_address(hdr[22]), (4 + nx,), np.float64)
    nd = hdr[23]
    S = carray(_address(hdr[24]), (nd, m, m), np.float64)
    cg = carray(_address(hdr[25]), (nd,), np.float64)
    v = small_criterion(
        theta,
        k1,
        A11,
        ptr,
        rows,
        vals,
        A22,
        rest,
        q,
        L11,
        P,
        G,
        W,
        scale,
        S,
        cg,
        hdr[2],
        hdr[3] != 0,
        state[0],
    )
    state[1] += 1.0
    if v != v:
        state[2] += 1.0
        v = np.inf
    if v < state[3]:
        state[3] = v
        for i in range(nx):
            state[4 + i] = theta[i]
    return v


@cfunc(
    types.float64(
        types.uint32, types.CPointer(types.float64), types.CPointer(types.float64), types.voidptr
    ),
    cache=True,
)
def small_objective(nx, x, grad, data):  # pragma: no cover - compiled
    """nlopt's objective (``nlopt_func``) for a small model: ``data`` is the header; values
    that are not finite are given as 1e300, as :func:`mixedfx.linalg.optimizer.bobyqa` does."""
    hdr = carray(data, (SMALL_HEADER,), np.int64)
    v = small_eval(carray(x, (nx,)), hdr)
    if not v < 1e300:
        return 1e300
    return v


@njit(cache=True)
def _probe(hdr, x, lower, f0, h, boundary_tol):  # pragma: no cover - compiled
    """Central differences at x over the coordinates off their lower bound (as
    :meth:`mixedfx.linalg.optimizer.Probe.at`): (idx, steps, fp, fm)."""
    nx = x.size
    k = 0
    for i in range(nx):
        if not x[i] - lower[i] < boundary_tol:
            k += 1
    idx = np.empty(k, np.int64)
    steps = np.empty(k)
    fp = np.empty(k)
    fm = np.empty(k)
    j = 0
    for i in range(nx):
        if not x[i] - lower[i] < boundary_tol:
            idx[j] = i
            steps[j] = min(h, (x[i] - lower[i]) / 2.0)
            j += 1
    pt = x.copy()
    for j in range(k):
        pt[idx[j]] = x[idx[j]] + steps[j]
        fp[j] = small_eval(pt, hdr)
        pt[idx[j]] = x[idx[j]]
    for j in range(k):
        pt[idx[j]] = x[idx[j]] - steps[j]
        fm[j] = small_eval(pt, hdr)
        pt[idx[j]] = x[idx[j]]
    return idx, steps, fp, fm


@njit(cache=True)
def _central_hessian(hdr, x, f0, idx, steps, fp, fm):  # pragma: no cover - compiled
    """The Hessian over the probed coordinates by central differences, O(h²) (as
    :meth:`mixedfx.linalg.optimizer.Probe.hessian` with ``central``)."""
    k = idx.size
    H = np.zeros((k, k))
    for a in range(k):
        H[a, a] = (fp[a] - 2.0 * f0 + fm[a]) / steps[a] ** 2
    pt = x.copy()
    for a in range(k):
        for b in range(a):
            v = np.empty(4)
            r = 0
            for sa in (1.0, -1.0):
                for sb in (1.0, -1.0):
                    pt[idx[a]] = x[idx[a]] + sa * steps[a]
                    pt[idx[b]] = x[idx[b]] + sb * steps[b]
                    v[r] = small_eval(pt, hdr)
                    r += 1
            pt[idx[a]] = x[idx[a]]
            pt[idx[b]] = x[idx[b]]
            H[a, b] = H[b, a] = (v[0] - v[1] - v[2] + v[3]) / 4.0 / (steps[a] * steps[b])
    return H


@njit(cache=True)
def _cholesky(H):  # pragma: no cover - compiled
    """Lower Cholesky factor of a small symmetric matrix; ok False when not positive
    definite (or not finite)."""
    k = H.shape[0]
    L = np.zeros((k, k))
    for j in range(k):
        d = H[j, j]
        for c in range(j):
            d -= L[j, c] * L[j, c]
        if not d > 0.0:
            return L, False
        d = math.sqrt(d)
        L[j, j] = d
        for i in range(j + 1, k):
            s = H[i, j]
            for c in range(j):
                s -= L[i, c] * L[j, c]
            L[i, j] = s / d
    return L, True


@njit(cache=True)
def small_polish(hdr, x, fx, lower, xtol, max_iter, last_step, h):  # pragma: no cover
    """:func:`mixedfx.linalg.optimizer.newton_polish` for a small model, in one compiled
    call: Newton steps −H⁻¹g on central differences (step h inside the bounds) over the
    coordinates off their lower bound, H by central differences once per free set, halved
    until f decreases (unless the predicted decrease is below f's rounding), until a step is
    below ``xtol``·max(1, |x_i|). Returns (x, f(x), px, idx, steps, f0, fp, fm, done): the
    answer, the last probe, taken at px (lme4's convergence check reuses it), and whether the
    steps ended converged (a step below ``xtol``, or one below ``last_step`` taken) rather than
    stopped (no free coordinate, H not positive definite, no decrease, ``max_iter``)."""
    x = x.copy()
    done = False
    nx = x.size
    boundary_tol = 1e-5
    idx, steps, fp, fm = _probe(hdr, x, lower, fx, h, boundary_tol)
    f0 = fx
    px = x.copy()
    L = np.zeros((0, 0))
    have_h = False
    free = idx.copy()
    eps = 2.220446049250313e-16
    prev = np.inf
    for _ in range(max_iter):
        k = idx.size
        if k == 0:
            break
        g = (fp - fm) / (2.0 * steps)
        finite = True
        for j in range(k):
            if not np.isfinite(g[j]):
                finite = False
        if not finite:
            break
        same = have_h and free.size == k
        if same:
            for j in range(k):
                if free[j] != idx[j]:
                    same = False
        fresh = False
        while True:
            if not same:
                free = idx.copy()
                H = _central_hessian(hdr, x, f0, idx, steps, fp, fm)
                L, ok = _cholesky(H)
                if not ok:
                    break
                have_h = True
                fresh = True
            # step = −H⁻¹ g by the Cholesky factor
            z = np.empty(k)
            for i in range(k):
                s = -g[i]
                for c in range(i):
                    s -= L[i, c] * z[c]
                z[i] = s / L[i, i]
            step = np.empty(k)
            for i in range(k - 1, -1, -1):
                s = z[i]
                for c in range(i + 1, k):
                    s -= L[c, i] * step[c]
                step[i] = s / L[i, i]
            size = 0.0
            gs = 0.0
            for j in range(k):
                size = max(size, abs(step[j]) / max(1.0, abs(x[free[j]])))
                gs += g[j] * step[j]
            # the old H's steps shrink by less than 4x a step while f can still judge them
            # (slow, linear convergence where the curvature changes along the way, as on a
            # flat ridge): H anew, here
            if fresh or size <= xtol or size <= 0.25 * prev:
                break
            if -0.5 * gs < 100.0 * (8.0 * eps * max(abs(fx), 1.0)):
                break
            same = False
        if not have_h or (not fresh and not same):
            break  # H at x is not positive definite
        prev = size
        if size <= xtol:
            done = True
            break
        full = np.zeros(nx)
        for j in range(k):
            full[free[j]] = step[j]
        alpha = 1.0
        for i in range(nx):
            if full[i] < 0.0:
                alpha = min(alpha, (x[i] - lower[i]) / -full[i])
        noise = 8.0 * eps * max(abs(fx), 1.0)
        if -0.5 * gs < 100.0 * noise:
            noise = np.inf
        moved = False
        cand = np.empty(nx)
        for _t in range(6):
            for i in range(nx):
                cand[i] = max(x[i] + alpha * full[i], lower[i])
            fc = small_eval(cand, hdr)
            if fc <= fx + noise:
                x[:] = cand
                fx = fc
                moved = True
                break
            alpha *= 0.5
        if not moved:
            break
        if size <= last_step:
            done = True
            break
        idx, steps, fp, fm = _probe(hdr, x, lower, fx, h, boundary_tol)
        f0 = fx
        px[:] = x
    return x, fx, px, idx, steps, f0, fp, fm, done


@njit(cache=True)
def _scalar_value(hdr, t):  # pragma: no cover - compiled
    """The criterion at the single θ = t, +inf (failure) as 1e150: large, yet Brent's
    products stay finite."""
    x = np.empty(1)
    x[0] = t
    v = small_eval(x, hdr)
    return v if v < 1e300 else 1e150


@njit(cache=True)
def small_scalar(hdr, x0, lo, xtol):  # pragma: no cover - compiled
    """:func:`mixedfx.linalg.optimizer.bobyqa` for one θ (its ``_scalar``) in compiled code:
    the bracket [lo, hi] grown by factors of 4 from max(4|x0|, 4) until the criterion rises,
    Brent's bounded minimization on it (scipy's ``minimize_scalar(method="bounded")``, the
    same steps) to ``xatol = xtol/100``, then the bound compared (a singular fit). Returns
    (x, f(x))."""
    hi = max(4.0 * abs(x0), 4.0)
    fhi = _scalar_value(hdr, hi)
    for _ in range(40):
        if hi > 1e15:
            break
        fnext = _scalar_value(hdr, hi * 4.0)
        if fnext >= fhi:
            break
        hi, fhi = hi * 4.0, fnext
    hi *= 4.0
    # scipy.optimize._optimize._minimize_scalar_bounded, maxiter 500
    xatol = xtol * 1e-2
    sqrt_eps = math.sqrt(2.2e-16)
    golden_mean = 0.5 * (3.0 - math.sqrt(5.0))
    a, b = lo, hi
    fulc = a + golden_mean * (b - a)
    nfc, xf = fulc, fulc
    rat = e = 0.0
    x = xf
    fx = _scalar_value(hdr, x)
    num = 1
    ffulc = fnfc = fx
    xm = 0.5 * (a + b)
    tol1 = sqrt_eps * abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(xf - xm) > (tol2 - 0.5 * (b - a)):
        golden = True
        if abs(e) > tol1:  # a parabolic step?
            golden = False
            r = (xf - nfc) * (fx - ffulc)
            q = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * q - (xf - nfc) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r = e
            e = rat
            if (abs(p) < abs(0.5 * q * r)) and (p > q * (a - xf)) and (p < q * (b - xf)):
                rat = (p + 0.0) / q
                x = xf + rat
                if ((x - a) < tol2) or ((b - x) < tol2):
                    si = np.sign(xm - xf) + (1.0 if (xm - xf) == 0 else 0.0)
                    rat = tol1 * si
            else:
                golden = True
        if golden:
            if xf >= xm:
                e = a - xf
            else:
                e = b - xf
            rat = golden_mean * e
        si = np.sign(rat) + (1.0 if rat == 0 else 0.0)
        x = xf + si * max(abs(rat), tol1)
        fu = _scalar_value(hdr, x)
        num += 1
        if fu <= fx:
            if x >= xf:
                a = xf
            else:
                b = xf
            fulc, ffulc = nfc, fnfc
            nfc, fnfc = xf, fx
            xf, fx = x, fu
        else:
            if x < xf:
                a = x
            else:
                b = x
            if (fu <= fnfc) or (nfc == xf):
                fulc, ffulc = nfc, fnfc
                nfc, fnfc = x, fu
            elif (fu <= ffulc) or (fulc == xf) or (fulc == nfc):
                fulc, ffulc = x, fu
        xm = 0.5 * (a + b)
        tol1 = sqrt_eps * abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= 500:
            break
    f_lo = _scalar_value(hdr, lo)
    # the bound wins when it is as good to rounding (a singular fit is then exactly singular)
    if f_lo <= fx + 1e-12 * max(1.0, abs(fx)):
        return lo, f_lo
    return xf, fx
