"""The exact gradient of the profiled criterion with respect to θ, from the blocked factor.

With Λ̃ = blockdiag(Λθ, I_p), B = [Z X]'W[Z X] and D = blockdiag(I_q, 0), the system matrix is
M = Λ̃'BΛ̃ + D = L L' (the factor of :mod:`mixedfx.linalg.factor` without the response row).
For an element θ_i = (Λ_j)_{ab} (a ≥ b) of term j's k x k block, E_i = dΛ̃/dθ_i is e_a e_b' in
every level's block of term j. Then

* log-determinant (Jacobi's formula; Λ̃'BΛ̃ = M − D gives M⁻¹Λ̃'B = (I − M⁻¹D)Λ̃⁻¹)::

      d log|M| / dθ_i = 2 tr(M⁻¹ Λ̃'B E_i) = 2 [(n_j I − S_j) Λ_j⁻¹]_{ba},
      S_j = Σ_ℓ V_ℓ,   V_ℓ = the k x k diagonal block of M⁻¹ of level ℓ of term j.

  REML's log|L_Z|² + log|R_X|² is log|M|; ML's log|L_Z|² is log|C| with C = Λ'Z'WZΛ + I, the
  random-effects block alone: the same formula with C⁻¹'s blocks.
* penalized residual sum of squares: r²(θ) = min_{u,β} ||W^½(y − Xβ − ZΛu)||² + ||u||², so by
  the envelope theorem dr²/dθ_i = −2 (W(y − Xβ − ZΛu))'Z E_i u, and the normal equations
  Λ'Z'W(y − Xβ − ZΛu) = u turn this into::

      dr²/dθ_i = −2 [U_j'U_j Λ_j⁻¹]_{ba},   U_j'U_j = Σ_ℓ u_ℓ u_ℓ'  (term j's conditional modes).

* ML: d = log|C| + n(1 + log(2πr²/n)); REML: d = log|M| + (n−p)(1 + log(2πr²/(n−p))). So

      ∂d/∂θ_i = 2 [Λ_j⁻ᵀ X_j]_{ab},   X_j = n_j I − S_j − (ν/r²) U_j'U_j,   ν = n or n − p.

The blocks V_ℓ come from the blocked factor. For the later terms they are diagonal blocks of
G⁻¹ = (L22 L22')⁻¹, the inverse of the trailing block (restricted to the random effects for
ML): one LAPACK ``potri``. For the first term (many levels),

    V_ℓ = L11_ℓ⁻ᵀ (I + P_ℓ' H P_ℓ) L11_ℓ⁻¹,   H = Λr G⁻¹ Λr',

with P_ℓ the ℓ-th column block of P = A21 Λ1 L11⁻ᵀ (its rows are the rows of A21 that are not
zero): a compiled gather over the same pairs of rows as the Schur update, never the q x n1
triangular solve. For a scalar first term I − V_ℓ = (θ²A11_ℓ − P_ℓ'HP_ℓ)/L11_ℓ², with no
cancellation as θ → 0.

For a scalar term (Λ_j = θ_j I) the gradient is 2 X_j / θ_j, whose two parts are O(θ_j²): it is
0 at θ_j = 0 (the criterion is even in θ_j). For a vector-valued term Λ_j⁻¹ enters: the gradient
is given only while every diagonal element of Λ_j is at least ``1e-4`` times its largest
element (:func:`profiled_gradient` returns None otherwise; callers fall back to differences).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.linalg import lapack, solve_triangular

from .factor import BlockedFactor

__all__ = ["canonical_theta", "profiled_gradient", "trailing_inverse", "zero_curvatures"]

_MIN_DIAG_RATIO = 1e-4
# a second derivative at θ_j = 0 below this fraction of its terms is taken as 0
_ZERO_TOL = 1e-10


@njit(cache=True)
def _first_term_quadratic(ptr, rows, P, H, s, d, out):  # pragma: no cover - compiled
    """out[l] = P_l' S H S P_l over the rows of column block l that are below ``d``, with S =
    diag(s) (rows are increasing within a block; H symmetric, only its lower triangle is
    read)."""
    n1 = ptr.shape[0] - 1
    k = P.shape[1]
    for lev in range(n1):
        a = ptr[lev]
        e = a
        b = ptr[lev + 1]
        while e < b and rows[e] < d:
            e += 1
        o = out[lev]
        for c in range(k):
            for t in range(k):
                o[c, t] = 0.0
        if k == 1:
            acc = 0.0
            for i in range(a, e):
                ri = rows[i]
                hrow = H[ri]
                pi = P[i, 0] * s[ri]
                t = 0.5 * hrow[ri] * pi
                for j in range(a, i):
                    rj = rows[j]
                    t += hrow[rj] * P[j, 0] * s[rj]
                acc += pi * t
            o[0, 0] = 2.0 * acc
        else:
            for i in range(a, e):
                ri = rows[i]
                for j in range(a, i + 1):
                    rj = rows[j]
                    h = H[ri, rj] * s[ri] * s[rj]
                    for c in range(k):
                        for t in range(k):
                            v = P[i, c] * h * P[j, t]
                            o[c, t] += v
                            if j != i:
                                o[t, c] += v


def trailing_inverse(factor: BlockedFactor, d: int) -> np.ndarray:
    """(L22 L22')⁻¹ over the first ``d`` rows of the trailing block, C-ordered with its lower
    triangle filled (the upper triangle is not).

    The leading d x d part of L22 is the factor of the leading d x d part of the trailing
    matrix, so d = q_rest gives the random-effects block alone (ML) and d = q_rest + p the
    whole system without the response (REML)."""
    if d == 0:
        return np.zeros((0, 0))
    # the C-ordered lower triangle of G read as a Fortran array is U = L22'; LAPACK returns
    # the upper triangle of (U'U)⁻¹ in Fortran order, i.e. the lower triangle in C order
    U = np.array(factor.G[:d, :d].T, order="F")
    inv, info = lapack.dpotri(U, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("the trailing block is singular")
    return inv.T


def _rest_slices(factor: BlockedFactor) -> list[tuple[int, int, int]]:
    """(first row in the trailing block, levels, k) of each later term."""
    out = []
    pos = 0
    for t in factor.terms[1:]:
        out.append((pos, t.nlevels, t.k))
        pos += t.nlevels * t.k
    return out


def _scaled_inverse(factor: BlockedFactor, Ginv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H and s with diag(s) H diag(s) = Λr G⁻¹ Λr' on the rows of the later terms and of the
    fixed effects (Λr = I there). For scalar later terms Λr is diagonal: H = G⁻¹ (its lower
    triangle) and s = diag(Λr); otherwise H is the full product and s = 1."""
    d = Ginv.shape[0]
    s = np.ones(d)
    slices = _rest_slices(factor)
    if all(k == 1 for _, _, k in slices):
        for (pos, nl, _), lam in zip(slices, factor.lams[1:], strict=True):
            s[pos : min(pos + nl, d)] = lam[0, 0]
        return Ginv, s
    H = np.tril(Ginv) + np.tril(Ginv, -1).T
    for (pos, nl, k), lam in zip(slices, factor.lams[1:], strict=True):
        if pos >= d:
            break
        sl = slice(pos, pos + nl * k)
        H[sl, :] = (lam @ H[sl, :].reshape(nl, k, d)).reshape(nl * k, d)
        H[:, sl] = (H[:, sl].reshape(d, nl, k) @ lam.T).reshape(d, nl * k)
    return np.ascontiguousarray(H), s


def _available(lams: list[np.ndarray]) -> bool:
    for lam in lams:
        if lam.shape[0] > 1:
            dg = np.abs(np.diag(lam))
            if np.min(dg) < _MIN_DIAG_RATIO * np.max(np.abs(lam)):
                return False
    return True


def profiled_gradient(factor: BlockedFactor, n: int, p: int, reml: bool) -> np.ndarray | None:
    """∂d/∂θ of the profiled criterion (ML deviance or REML criterion, see the module
    docstring) at the θ the factor was last updated for, in the factor's units of θ.

    None when the factor broke down there, or when a vector-valued term's Λ_j is too close to
    singular for Λ_j⁻¹ to be applied accurately."""
    st = factor.stats
    if st is None or not st.ok or not st.pwrss > 0.0 or not _available(factor.lams):
        return None
    A = factor.A
    q = A.q_rest
    d = q + (p if reml else 0)
    nu = (n - p) if reml else n
    scale_r = nu / st.pwrss
    u, _ = factor.solve()
    try:
        Ginv = trailing_inverse(factor, d)
    except np.linalg.LinAlgError:
        return None
    lams = factor.lams
    n1, k1 = factor.n1, factor.k1
    grads: list[np.ndarray] = []
    # ---- first term
    H, sc = _scaled_inverse(factor, Ginv)
    Q = np.zeros((n1, k1, k1))
    if d > 0:
        _first_term_quadratic(A.ptr, A.rows, factor.P, H, sc, d, Q)
    U1 = u[: n1 * k1].reshape(n1, k1)
    lam1 = lams[0]
    if k1 == 1:
        t = lam1[0, 0]
        L2 = factor.L11[:, 0, 0] ** 2
        uu = float(U1[:, 0] @ U1[:, 0])
        X = np.sum((t * t * A.A11[:, 0, 0] - Q[:, 0, 0]) / L2) - scale_r * uu
        grads.append(np.array([2.0 * X / t if t != 0.0 else 0.0]))
    else:
        Linv = np.linalg.inv(factor.L11)
        V = np.swapaxes(Linv, 1, 2) @ (np.eye(k1) + Q) @ Linv
        X = n1 * np.eye(k1) - V.sum(axis=0) - scale_r * (U1.T @ U1)
        grads.append(_vector_grad(lam1, X))
    # ---- later terms
    off = n1 * k1
    for (pos, nl, k), lam in zip(_rest_slices(factor), lams[1:], strict=True):
        Uj = u[off + pos : off + pos + nl * k].reshape(nl, k)
        blk = Ginv[pos : pos + nl * k, pos : pos + nl * k].reshape(nl, k, nl, k)
        S = np.tril(np.einsum("lalb->ab", blk))  # the lower triangle of each block is set
        S = S + np.tril(S, -1).T
        X = nl * np.eye(k) - S - scale_r * (Uj.T @ Uj)
        if k == 1:
            t = lam[0, 0]
            grads.append(np.array([2.0 * X[0, 0] / t if t != 0.0 else 0.0]))
        else:
            grads.append(_vector_grad(lam, X))
    return np.concatenate(grads)


def zero_curvatures(factor: BlockedFactor, n: int, p: int, reml: bool) -> dict[int, float] | None:
    """∂²d/∂θ_j² at θ_j = 0 for every scalar later term j whose θ_j is 0 at the θ the factor
    was last updated for (keyed by the index of θ_j in θ); the other second derivatives
    ∂²d/∂θ_i∂θ_j vanish there (d is even in θ_j). None when the factor broke down or the
    later terms are not all scalar.

    With v = θ_j², Λ̃0 the Λ̃ with Λ_j = 0 and K = Z_j'W[ZΛ̃0 X] (only Z_j's rows for ML),
    expanding log|M(θ_j)| to second order (M⁻¹ is block diagonal between term j and the rest
    at θ_j = 0, where term j's block is I) and r² by the envelope theorem gives

        ∂d/∂v = tr(Z_j'WZ_j) − Σ_c ||L_o⁻¹ K_c||² − (ν/r²) ||Z_j'We||²,   ∂²d/∂θ_j² = 2 ∂d/∂v,

    with L_o the factor of the system without term j, e the weighted residual at (û, β̂) and
    the sum over the columns c of Z_j. Through the blocked factor, L_o⁻¹K_c = [P_c; L22⁻¹Λr
    S_c]: P_c the entries of P = A21Λ1L11⁻ᵀ in row c of each column block, S = A22 − PP'
    the Schur complement (column c over the first ``d`` trailing rows; term j's rows carry
    Λr = 0). So the cost is one sparse product and a triangular solve with as many right-hand
    sides as term j has levels: the limit of the gradient's 2X_j/θ_j, whose two parts are
    O(θ_j²) and cannot be divided out at θ_j = 0. A value within 1e-10 of its largest term
    is returned as 0 (the sign of rounding noise is meaningless).
    """
    st = factor.stats
    if st is None or not st.ok or not st.pwrss > 0.0 or not factor.scalar_rest:
        return None
    A = factor.A
    q, m = A.q_rest, A.m
    lams = factor.lams
    zero = []
    idx = factor.ks[0] * (factor.ks[0] + 1) // 2
    for (pos, nl, _), lam in zip(_rest_slices(factor), lams[1:], strict=True):
        if lam[0, 0] == 0.0:
            zero.append((idx, pos, nl))
        idx += 1
    if not zero:
        return {}
    d = q + (p if reml else 0)
    nu = (n - p) if reml else n
    u, beta = factor.solve()
    n1, k1 = factor.n1, factor.k1
    scale = np.ones(m)
    scale[m - 1] = 0.0
    for (pos, nl, _), lam in zip(_rest_slices(factor), lams[1:], strict=True):
        scale[pos : pos + nl] = lam[0, 0]
    # Λ̃ [u; β] on the trailing rows and Λ1 u1 per level (the response row: coefficient −1)
    w = np.zeros(m)
    w[:q] = u[n1 * k1 :]
    w[q : q + A.p] = beta
    w *= scale
    w[m - 1] = -1.0
    lu1 = u[: n1 * k1].reshape(n1, k1) @ lams[0].T
    lev = np.repeat(np.arange(n1), np.diff(A.ptr))
    a21_u = np.einsum("ik,ik->i", A.vals, lu1[lev])  # (Z_1'Z)_{l,r} Λ1 u1_l per stored pair
    P = factor.P
    L22 = factor.G[:d, :d]  # lower triangle = L22's leading part
    out: dict[int, float] = {}
    rr = np.arange(m)
    for i, pos, nl in zero:
        cols = np.arange(pos, pos + nl)
        # column c of the symmetric A22 from its lower triangle
        Acol = A.A22[:, cols].copy()
        upper = rr[:, None] < cols[None, :]
        Acol[upper] = A.A22[cols, :].T[upper]
        # PP' columns c: Σ_l P_l P_l[c]' (P stored by column blocks: the rows of a CSR n1 x m)
        sel = (A.rows >= pos) & (A.rows < pos + nl)
        jptr = np.zeros(n1 + 1, dtype=np.int64)
        np.cumsum(np.bincount(lev[sel], minlength=n1), out=jptr[1:])
        PPc = np.zeros((m, nl))
        for t in range(k1):
            Pt = sp.csr_matrix((P[:, t], A.rows, A.ptr), shape=(n1, m))
            Pj = sp.csr_matrix((P[sel, t], A.rows[sel] - pos, jptr), shape=(n1, nl))
            PPc += (Pt.T @ Pj).toarray()
        S = (Acol - PPc)[:d] * scale[:d, None]
        Y = solve_triangular(L22, S, lower=True, check_finite=False) if d > 0 else S
        zte = -(Acol.T @ w) - np.bincount(A.rows[sel] - pos, weights=a21_u[sel], minlength=nl)
        parts = (
            float(np.trace(Acol[cols])),
            float(np.einsum("ij,ij->", Y, Y)) + float(np.trace(PPc[cols])),
            nu / st.pwrss * float(zte @ zte),
        )
        dv = parts[0] - parts[1] - parts[2]
        # within rounding of 0 (e.g. REML with Z_j in the span of X: d does not depend on θ_j)
        out[i] = 2.0 * dv if abs(dv) > _ZERO_TOL * max(parts) else 0.0
    return out


def _vector_grad(lam: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The lower triangle (column by column, lme4's θ order) of 2 Λ⁻ᵀ X."""
    k = lam.shape[0]
    Gm = 2.0 * np.linalg.solve(lam.T, X)
    cols, rows = np.triu_indices(k)
    return Gm[rows, cols]


def canonical_theta(theta: np.ndarray, ks: list[int]) -> np.ndarray:
    """θ with every Λ_j column whose diagonal element is negative negated.

    The criterion depends on Λ_j only through Λ_jΛ_j' (u's signs absorb the rest), so Λ_j and
    Λ_j D, D = diag(±1), give the same value: an optimizer may leave the bounds and the answer
    is brought back to lme4's (a non-negative diagonal) afterwards."""
    out = np.array(theta, dtype=float, copy=True)
    pos = 0
    for k in ks:
        nt = k * (k + 1) // 2
        if k == 1:
            out[pos] = abs(out[pos])
        else:
            cols, rows = np.triu_indices(k)
            blk = out[pos : pos + nt]
            diag = blk[rows == cols]
            sign = np.where(diag < 0, -1.0, 1.0)
            blk *= sign[cols]
        pos += nt
    return out
