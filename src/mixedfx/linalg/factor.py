"""Step 4a of the pipeline: θ -> blocked Cholesky factor L of the penalized system.

For covariance parameters θ, with Λ = blockdiag(Λ1, Λr) the relative covariance factor, the
penalized system (random effects first, then the fixed effects and the response) is

    [ Λ1'A11Λ1 + I    .                 ]        L = [ L11   0  ]
    [ Λr'A21Λ1        Λr'A22Λr + [I 0]  ]  = L L',   [ L21  L22 ]
                                   [0 0]

* ``L11`` is block diagonal (one k1 x k1 block per level of the first term): a compiled loop
  of tiny Cholesky factorizations.
* ``L21 = Λr' P`` with ``P = A21 Λ1 L11^{-T}``, computed block column by block column.
* ``L22 = chol(Λr'(A22 - P P')Λr + [I 0; 0 0])``: dense, factored in place by LAPACK.

The last row of L22 belongs to the response: ``L22[-1, -1]² = r²`` is the penalized residual
sum of squares, the diagonal of L11 and the random-effects part of L22 give log|Lz|, and the
fixed-effects part gives log|Rx| (ARCHITECTURE.md, "The statistics in one page").

Buffers are allocated once; :meth:`BlockedFactor.update` writes into them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack

from .._threads import one_thread
from ..frame.design import RandomEffectsTerm, tril_indices_colmajor
from . import kernels as K
from .crossprod import CrossProducts
from .fused import SmallSystem, applies
from .triangular import triangular_inverse, triangular_solve

__all__ = ["BlockedFactor", "FactorStats", "lambda_blocks", "rx_crossprod_inverse"]


@dataclass(frozen=True)
class FactorStats:
    """What the criterion needs from the factor."""

    logdet_Lz: float
    """log|Lz| = Σ log of the diagonal of the random-effects part of L."""
    logdet_Rx: float
    """log|Rx| = Σ log of the diagonal of the fixed-effects part of L."""
    pwrss: float
    """r², the penalized (weighted) residual sum of squares."""
    ok: bool = True
    """False when the trailing block was not positive definite."""


@cache
def _tril(k: int) -> tuple[np.ndarray, np.ndarray]:
    return tril_indices_colmajor(k)


def lambda_blocks(theta: np.ndarray, ks: list[int]) -> list[np.ndarray]:
    """Split θ into the k x k lower-triangular Λ blocks of each term (θ column by column)."""
    out = []
    pos = 0
    for k in ks:
        nt = k * (k + 1) // 2
        lam = np.zeros((k, k))
        if k == 1:
            lam[0, 0] = theta[pos]
        else:
            rows, cols = _tril(k)
            lam[rows, cols] = theta[pos : pos + nt]
        out.append(lam)
        pos += nt
    return out


def rx_crossprod_inverse(Rx: np.ndarray) -> np.ndarray:
    """(R_X'R_X)⁻¹ from the upper-triangular R_X, by one triangular inverse."""
    Rinv = triangular_inverse(Rx, lower=False)
    return Rinv @ Rinv.T


@dataclass
class _GroupedSchur:
    """The precomputed Schur update of a balanced scalar first term (see
    :meth:`BlockedFactor._setup_grouped`): the distinct first-term counts c, and per range of
    rows [r0, cb[-1]) the sums S_c in the chunked layout of :func:`kernels.grouped_outer`."""

    counts: np.ndarray
    parts: list[tuple[int, np.ndarray, np.ndarray]]
    acc: np.ndarray


def _row_chunks(r0: int, r1: int, chunk: int = 2048) -> np.ndarray:
    """Row boundaries r0 = cb[0] < cb[1] < ... < cb[-1] = r1 cutting the lower triangle's rows
    r0..r1-1 (row i holds i + 1 entries) into runs of about ``chunk`` entries: a run starts
    at each row whose first entry lies past the next multiple of ``chunk``."""
    i = np.arange(r0, r1 + 1, dtype=np.int64)
    start = i * (i + 1) // 2 - r0 * (r0 + 1) // 2
    key = start // chunk
    cut = np.flatnonzero(np.diff(key[:-1]) != 0) + 1  # rows that start a new run
    return np.concatenate([[r0], i[cut], [r1]]).astype(np.int64)


def _integer_storage(rows: np.ndarray, vals: np.ndarray, q: int) -> np.dtype:
    """The narrowest dtype holding every partial sum of the products a_l[r] a_l[s] exactly.

    Integer types only when every value is an integer; by Cauchy–Schwarz any such sum is at
    most max_r Σ_l a_l[r]² in absolute value, which must fit the type."""
    if vals.size == 0 or not np.all(vals == np.rint(vals)):
        return np.dtype(np.float64)
    bound = np.bincount(rows, weights=vals * vals, minlength=q).max()
    for dt in (np.int16, np.int32):
        if bound <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.float64)


def zeros_like(a: np.ndarray) -> np.ndarray:
    """``np.zeros_like(a)``: for a C-contiguous ``a`` by ``np.zeros`` (a builtin; zeros_like
    is numpy Python around empty_like and copyto, a few µs a call in a small model's set-up)."""
    if a.flags.c_contiguous:
        return np.zeros(a.shape, a.dtype)
    return np.zeros_like(a)


_NO_SCALE = np.empty(0)
_NO_SCALE.flags.writeable = False


def blas_threads_for(m: int) -> Any:
    """The context :meth:`BlockedFactor.blas_threads` gives a factor whose dense trailing
    block has ``m`` rows: LAPACK held to one thread for 64 ≤ m < 1000, else unchanged."""
    if m >= 1000 or m < 64:
        return contextlib.nullcontext()
    return one_thread("blas")


class BlockedFactor:
    """The blocked Cholesky factor of the penalized least-squares system, updated in place.

    Parameters
    ----------
    A : CrossProducts
    terms : list of RandomEffectsTerm
        The terms, in the order of the cross-products (first term = largest).
    grouped : bool, default True
        Allow the precomputed Schur update of a balanced scalar first term. It is worked out
        from the values of ``A`` at construction: pass False when the values of ``A`` will be
        overwritten later (PIRLS refills them with new working weights every iteration).
    """

    def __init__(self, A: CrossProducts, terms: list[RandomEffectsTerm], grouped: bool = True):
        self.A = A
        self.terms = terms
        self.ks = [t.k for t in terms]
        self.k1 = self.ks[0]
        self.n1 = terms[0].nlevels
        self.L11 = zeros_like(A.A11)
        self._P = zeros_like(A.vals)
        self._P_stale = True
        self.G = zeros_like(A.A22)  # C-ordered; lower triangle holds L22
        self.scalar_rest = all(k == 1 for k in self.ks[1:])
        self._rest_slices: list[tuple[int, int, int]] = []
        pos = 0
        for t in terms[1:]:
            self._rest_slices.append((pos, t.nlevels, t.k))
            pos += t.q
        self.nx = A.p + 1
        # The Schur-update kernels rely on the fixed-effects/response (XY) rows closing every
        # column block of A21 (crossproducts stores them so): check it once here.
        bad = K.check_xy_rows(A.ptr, A.rows, self.nx, A.q_rest)
        if bad == 1:
            raise ValueError("cross-products: every column block of A21 must hold the XY rows")
        if bad == 2:
            raise ValueError("cross-products: every column block of A21 must end with the XY rows")
        self._xy_index: np.ndarray | None = None  # made when first needed (_schur_scalar)
        self.W = np.zeros((A.q_rest, self.nx))
        # a small trailing block: the whole update in one compiled call (linalg/fused.py)
        self.small = (
            SmallSystem(A, terms, (self.L11, self._P, self.G, self.W), grouped=grouped)
            if applies(A.m)
            else None
        )
        # the Python update's scale vectors (the compiled one of a small system has its own)
        self._scale = np.ones(A.m) if self.small is None else _NO_SCALE
        self._ones = np.ones(A.m) if self.small is None else _NO_SCALE
        self._grouped = self._setup_grouped() if grouped and self.small is None else None
        self._dense = self._setup_dense() if self._grouped is None and self.small is None else None
        self.theta: np.ndarray | None = None
        self._lams: list[np.ndarray] | None = []
        self.stats: FactorStats | None = None

    @property
    def lams(self) -> list[np.ndarray]:
        """The Λ blocks at the θ of the last update (made when first asked for, after a
        compiled update of a small system)."""
        if self._lams is None:
            assert self.theta is not None
            self._lams = lambda_blocks(self.theta, self.ks)
        return self._lams

    # ------------------------------------------------------------------ update
    def update(self, theta: np.ndarray) -> FactorStats:
        """Factor the system at θ; returns the log-determinants and r²."""
        A = self.A
        theta = np.asarray(theta, dtype=float)
        self.theta = theta.copy()
        if self.small is not None:
            self._lams = None  # made when asked for (solve, P, gradients)
            ld_z, ld_x, r, ok = self.small.factor(theta)
            self._P_stale = self.small.grouped  # the grouped update does not write P
            self.stats = (
                FactorStats(ld_z, ld_x, r * r)
                if ok
                else FactorStats(np.inf, np.inf, np.inf, ok=False)
            )
            return self.stats
        lams = self._lams = lambda_blocks(theta, self.ks)
        logdet1 = K.factor_first_block(A.A11, lams[0], self.L11)
        G = self.G
        q = A.q_rest
        if self._grouped is not None:
            # balanced first term: P P' = Σ_c θ1²/(θ1² c + 1) S_c (see _setup_grouped)
            gr = self._grouped
            t2 = lams[0][0, 0] ** 2
            wg = t2 / (t2 * gr.counts + 1.0)
            scale = self._rest_scale(lams)
            for r0, cb, S in gr.parts:
                K.grouped_fill(S, wg, r0, cb, A.A22, scale, q, G, gr.acc)
            self._P_stale = True
        elif self.scalar_rest and self.k1 == 1 and self._dense is None:
            # G = Λr'(A22 - P P')Λr + [I 0; 0 0] with Λr diagonal, filled and updated by tiles
            self._schur_scalar(lams[0][0, 0], self._rest_scale(lams))
        else:
            K.scale_first_column(A.ptr, A.vals, lams[0], self.L11, self._P)
            self._P_stale = False
            if self.scalar_rest:
                # G = Λr'(A22 - P P')Λr + [I 0; 0 0] with Λr diagonal: one fused pass each
                scale = self._rest_scale(lams)
                K.fill_scaled(A.A22, scale, q, G)
                if self._dense is not None:
                    self._schur_dense(scale)
                else:
                    K.schur_update(A.ptr, A.rows, self._P, self.nx, q, scale, G, self.W)
            else:
                K.fill_scaled(A.A22, self._ones, 0, G)
                K.schur_update(A.ptr, A.rows, self._P, self.nx, q, self._ones, G, self.W)
                self._scale_general(G, lams[1:])
        # G is C-ordered with the lower triangle filled: its transpose is a Fortran array
        # whose upper triangle holds the matrix, so LAPACK factors it in place as U = L'.
        _, info = lapack.dpotrf(G.T, lower=0, overwrite_a=1, clean=0)
        if info != 0:
            self.stats = FactorStats(np.inf, np.inf, np.inf, ok=False)
            return self.stats
        ld_z, ld_x, r = K.diag_logdets(G, q, A.p)
        self.stats = FactorStats(logdet_Lz=logdet1 + ld_z, logdet_Rx=ld_x, pwrss=r * r)
        return self.stats

    def _rest_scale(self, lams: list[np.ndarray]) -> np.ndarray:
        """Diagonal of Λr for scalar later terms (1 on the fixed-effects/response rows)."""
        scale = self._scale
        for (pos, nl, _), lam in zip(self._rest_slices, lams[1:], strict=True):
            scale[pos : pos + nl] = lam[0, 0]
        return scale

    def _setup_grouped(self, max_bytes: float = 1e9) -> _GroupedSchur | None:
        """Precompute the Schur update of a balanced scalar first term, when it pays.

        For a scalar first term (k1 = 1) the block column P has, in the column of level l,
        ``P_l = a_l θ1 / sqrt(θ1² c_l + 1)`` with a_l the column of A21 and c_l = A11[l]. So

            P P' = Σ_l θ1²/(θ1² c_l + 1) a_l a_l' = Σ_c θ1²/(θ1² c + 1) S_c,
            S_c = Σ_{l: c_l = c} a_l a_l',

        exactly, where c runs over the *distinct* values of c_l (the number of observations per
        level in an unweighted design). In balanced or nearly balanced designs there are few,
        and each evaluation becomes one weighted sum over the stored S_c instead of a scatter
        over every pair of rows in every column block. Used when that is at least 4x fewer
        operations and the S_c fit in ``max_bytes``.

        The random-effects rows of the S_c are stored as small integers when they are exact
        integers (unweighted random intercepts: a_l counts pairs of levels), which cuts the
        memory each evaluation streams through by 4 (int16) or 2 (int32) with the same values;
        the fixed-effects/response rows stay in float64.
        """
        A = self.A
        if self.k1 != 1 or not self.scalar_rest:
            return None
        counts, inv = np.unique(A.A11[:, 0, 0], return_inverse=True)
        nd = counts.size
        m, q = A.m, A.q_rest
        npacked = m * (m + 1) // 2
        nre = q * (q + 1) // 2
        r = np.diff(A.ptr).astype(np.float64)
        scatter_ops = float((r * (r + 1) / 2).sum())
        if nd * npacked * 4 > scatter_ops:
            return None
        vals = np.ascontiguousarray(A.vals[:, 0])
        re = A.rows < q
        dtype = _integer_storage(A.rows[re], vals[re], q)
        if nd * (nre * dtype.itemsize + (npacked - nre) * 8) > max_bytes:
            return None
        order = np.argsort(inv, kind="stable")
        gstart = np.zeros(nd + 1, dtype=np.int64)
        np.cumsum(np.bincount(inv, minlength=nd), out=gstart[1:])
        parts = []
        longest = 0
        for r0, r1, dt in ((0, q, dtype), (q, m, np.dtype(np.float64))):
            if r1 == r0:
                continue
            cb = _row_chunks(r0, r1)
            nent = r1 * (r1 + 1) // 2 - r0 * (r0 + 1) // 2
            S = np.empty(nd * nent, dtype=dt)
            # integer sums are accumulated in their own type (a smaller workspace, in cache)
            v = vals.astype(dt) if dt.kind == "i" else vals
            K.grouped_outer(A.ptr, A.rows, v, order, gstart, r0, cb, S, np.empty(nent, dt))
            parts.append((r0, cb, S))
            sizes = cb * (cb + 1) // 2
            longest = max(longest, int(np.diff(sizes).max()))
        return _GroupedSchur(counts, parts, np.empty(longest))

    def _setup_dense(self, min_fill: float = 0.3, max_entries: float = 4e6) -> tuple | None:
        """For a scalar first term whose block column A21 is mostly filled (crossed factors
        where most pairs of levels occur, e.g. subjects x items), the Schur update is one
        dense BLAS product: G -= S P_d P_d' S with P_d the m x n1 dense form of P."""
        A = self.A
        if self.k1 != 1 or not self.scalar_rest:
            return None
        m, n1 = A.m, self.n1
        if m * n1 > max_entries or A.rows.size < min_fill * m * n1:
            return None
        lev = np.repeat(np.arange(n1), np.diff(A.ptr))
        return A.rows.astype(np.intp), lev, np.zeros((m, n1))

    def _schur_dense(self, scale: np.ndarray) -> None:
        """G -= S P P' S by one dense product (see :meth:`_setup_dense`); only the lower
        triangle of G is read afterwards."""
        rows, lev, Pd = self._dense
        Pd[rows, lev] = self._P[:, 0]
        Sd = Pd * scale[:, None]
        self.G -= Sd @ Sd.T

    def _schur_scalar(self, lam: float, scale: np.ndarray) -> None:
        """G = S(A22 - P P')S + [I 0; 0 0] for a scalar first term (S = diag(scale)): the
        random-effects rows by one compiled pass (:func:`kernels.schur_fill_scalar`), the
        XY x XY block as one BLAS product of the gathered XY rows. The kernel leaves S P in
        P's buffer, so P is recomputed when it is next asked for."""
        A = self.A
        q, G, W = A.q_rest, self.G, self.W
        sp = self._P.reshape(-1)
        K.schur_fill_scalar(A.ptr, A.rows, A.vals, lam, self.L11, scale, A.A22, self.nx, G, W, sp)
        self._P_stale = True
        if self._xy_index is None:
            self._xy_index = A.ptr[1:, None] - self.nx + np.arange(self.nx)[None, :]
        PX = sp[self._xy_index]  # (n1, nx): the XY rows closing each column block (scale 1)
        G[q:, q:] -= PX.T @ PX  # only the lower triangle is read later
        G[q:, :q] -= W.T

    @property
    def P(self) -> np.ndarray:
        """P = A21 Λ1 L11^{-T} at the current θ (column-block storage, like A21's values)."""
        if self._P_stale and self.lams:
            K.scale_first_column(self.A.ptr, self.A.vals, self.lams[0], self.L11, self._P)
            self._P_stale = False
        return self._P

    def _scale_general(self, G: np.ndarray, lams: list[np.ndarray]) -> None:
        """G <- Λr' G Λr + [I 0; 0 0] for terms with vector-valued random effects."""
        m = G.shape[0]
        il = np.tril_indices(m, -1)
        G[il[1], il[0]] = G[il]  # symmetrize from the lower triangle
        for (pos, nl, k), lam in zip(self._rest_slices, lams, strict=True):
            sl = slice(pos, pos + nl * k)
            G[:, sl] = (G[:, sl].reshape(m, nl, k) @ lam).reshape(m, nl * k)
            G[sl, :] = (lam.T @ G[sl, :].reshape(nl, k, m)).reshape(nl * k, m)
        q = self.A.q_rest
        G[np.arange(q), np.arange(q)] += 1.0

    def blas_threads(self) -> Any:
        """A context in which to run many :meth:`update` calls.

        Multithreaded BLAS pays off only for a large dense trailing block; for small and medium
        ones its threads' wake-ups cost more than they save, and on a busy machine they can
        cost far more (spinning threads competing with the compiled kernels). Below
        ``m = 1000`` LAPACK is therefore held to one thread while optimizing.
        """
        return blas_threads_for(self.A.m)

    # --------------------------------------------------------------- solutions
    @property
    def L22(self) -> np.ndarray:
        """The dense trailing factor (lower triangular), including the response row."""
        return np.tril(self.G)

    def Rx(self) -> np.ndarray:
        """Upper-triangular Rx (p x p) with Rx'Rx = the Schur complement for β."""
        q, p = self.A.q_rest, self.A.p
        return np.tril(self.G[q : q + p, q : q + p]).T

    def vcov_unscaled(self) -> np.ndarray:
        """(R_X'R_X)⁻¹, the covariance of β̂ divided by σ², at the current θ."""
        return rx_crossprod_inverse(self.Rx())

    def conditional_variances(self) -> list[np.ndarray]:
        """Per term, the diagonal blocks of (L_Z L_Z')⁻¹ that belong to each level, shape
        (levels, k, k): the conditional covariance of the spherical random effects u given y,
        divided by σ² (lme4's ``condVar`` before Λ and σ² are applied).

        For the first term the blocks are L11⁻ᵀL11⁻¹ + W'W with W = L22⁻¹ L21 L11⁻¹ (the
        trailing random-effects rows); for later terms, the blocks of M'M with M = L22⁻¹.
        """
        A = self.A
        q = A.q_rest
        n1, k1 = self.n1, self.k1
        Linv1 = np.linalg.inv(self.L11) if k1 > 1 else 1.0 / self.L11
        V1 = np.swapaxes(Linv1, 1, 2) @ Linv1
        blocks: list[np.ndarray] = []
        Minv = np.zeros((0, 0))
        if q > 0:
            L22 = np.tril(self.G[:q, :q])
            re_mask = A.rows < q
            lev = np.repeat(np.arange(n1), np.diff(A.ptr))
            L21 = np.zeros((q, n1 * k1))
            cols = lev[re_mask][:, None] * k1 + np.arange(k1)[None, :]
            L21[A.rows[re_mask][:, None], cols] = self.P[re_mask]
            for (pos, nl, k), lam in zip(self._rest_slices, self.lams[1:], strict=True):
                sl = slice(pos, pos + nl * k)
                L21[sl] = (lam.T @ L21[sl].reshape(nl, k, -1)).reshape(nl * k, -1)
            W = triangular_solve(L22, L21, lower=True)
            W = np.einsum("rlk,lkj->rlj", W.reshape(q, n1, k1), Linv1)
            V1 = V1 + np.einsum("rli,rlj->lij", W, W)
            Minv = triangular_inverse(L22, lower=True)
        blocks.append(V1)
        for pos, nl, k in self._rest_slices:
            Mb = Minv[:, pos : pos + nl * k].reshape(q, nl, k)
            blocks.append(np.einsum("rli,rlj->lij", Mb, Mb))
        return blocks

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes u (spherical random effects) and fixed effects β at the current θ.

        Back-substitution through the factor: the response row of L holds the forward-solved
        right-hand side c; then L' [u; β] = c.
        """
        A = self.A
        q, m = A.q_rest, A.m
        G = self.G
        c2 = G[m - 1, : m - 1]
        if self.small is not None:  # a few dozen rows: compiled, without LAPACK's call
            v2 = K.lower_t_solve(G, c2, m - 1)
        else:  # LAPACK's triangular solve reads the lower triangle only
            v2 = sla.solve_triangular(
                G[: m - 1, : m - 1], c2, lower=True, trans="T", check_finite=False
            )
        beta = v2[q:].copy()
        # c1: the response row of L21; u1 = L11^{-T}(c1 - L21[:-1]' v2), L21' v = P' Λr v
        lv = np.zeros(m)
        lv[: m - 1] = self._apply_lambda_rest(v2)
        u1 = K.first_block_solve(A.ptr, A.rows, self.P, self.L11, lv)
        u = np.concatenate([u1.ravel(), v2[:q]])
        return u, beta

    def _apply_lambda_rest(self, v: np.ndarray) -> np.ndarray:
        """Λr v for a vector over the rest rows (random effects of terms 2..K, then β)."""
        out = np.array(v, dtype=float, copy=True)
        if not self._rest_slices:  # one term: nothing to scale (and no Λ blocks to make)
            return out
        for (pos, nl, k), lam in zip(self._rest_slices, self.lams[1:], strict=True):
            sl = slice(pos, pos + nl * k)
            out[sl] = (out[sl].reshape(nl, k) @ lam.T).ravel()
        return out
