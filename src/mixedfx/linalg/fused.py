"""Steps 4a and 4b in one compiled call, for models with a small trailing block.

For a small model (sleepstudy, Penicillin, Pastes: a trailing block of a few dozen rows) one
criterion evaluation is a few microseconds of arithmetic, and the Python around it — building
the Λ blocks, six kernel calls, LAPACK's dpotrf through scipy, the criterion's formula — costs
several times more. :class:`SmallSystem` does the whole of
:meth:`mixedfx.linalg.factor.BlockedFactor.update` (and, for the optimizer, the criterion of
:func:`mixedfx.linalg.criterion.profiled_deviance`) in one numba function, on the same
cross-products and with the same blocked algorithm:

    L11[l] = chol(Λ1' A11[l] Λ1 + I)                       (every level l of the first term)
    P      = A21 Λ1 L11⁻ᵀ                                  (by column blocks)
    G      = Λr'(A22 − P P')Λr + [I 0; 0 0],   L22 = chol(G)   (dense, m x m)
    ML:    2(Σ log diag L11 + Σ log diag L22[:q]) + n(1 + log(2π r²/n)) − Σ log w
    REML:  ... + 2 Σ log diag L22[q:q+p], with n − p for n,

r = L22[-1, -1]. The dense Cholesky of G is a plain compiled loop (O(m³/3)), which beats
LAPACK's call overhead only while m is small (:func:`applies`). BlockedFactor uses it for its
own update whenever it applies, so the criterion the optimizer sees and the factor that gives
β, u and the variances come from the same arithmetic, to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from . import kernels as K
from .crossprod import CrossProducts

__all__ = ["MAX_FUSED_M", "SmallSystem", "applies"]

_LOG_2PI = math.log(2.0 * math.pi)

MAX_FUSED_M = 48
"""Largest trailing block (random effects of later terms + fixed effects + response) for
which the compiled dense Cholesky is used: beyond it LAPACK's blocked code wins."""


@njit(cache=True)
def _factor(theta, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale):  # pragma: no cover
    """Factor the system at θ into L11, P and G (lower triangle = L22, as
    :meth:`BlockedFactor.update` leaves them); returns (log|Lz|, log|Rx|, r, ok), ok False
    when L22 is not positive definite.

    ``rest`` (nterms-1, 4) holds for each later term: first row in G, levels, k, first θ
    index.
    """
    # Λ1 from θ: lower triangle, column by column
    lam = np.zeros((k1, k1))
    t = 0
    for j in range(k1):
        for i in range(j, k1):
            lam[i, j] = theta[t]
            t += 1
    logdet1 = K.factor_first_block(A11, lam, L11)
    K.scale_first_column(ptr, vals, lam, L11, P)
    m = A22.shape[0]
    nx = m - q
    nrest = rest.shape[0]
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
        K.fill_scaled(A22, scale, q, G)
        K.schur_update(ptr, rows, P, nx, q, scale, G, W)
    else:
        for i in range(m):
            scale[i] = 1.0
        K.fill_scaled(A22, scale, 0, G)
        K.schur_update(ptr, rows, P, nx, q, scale, G, W)
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
    # in-place Cholesky of the lower triangle of G
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
def _criterion(  # pragma: no cover - compiled
    theta, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, n, reml, const
):
    """The profiled criterion at θ (NaN when L22 is not positive definite, +inf when r² is
    not positive); ``const`` is added (−Σ log w plus the units' shift)."""
    ld_z, ld_x, r, ok = _factor(theta, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale)
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
def _criterion_many(  # pragma: no cover - compiled
    thetas, k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, n, reml, const
):
    """:func:`_criterion` at every row of ``thetas``."""
    out = np.empty(thetas.shape[0])
    for i in range(thetas.shape[0]):
        out[i] = _criterion(
            thetas[i], k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, n, reml, const
        )
    return out


def applies(m: int) -> bool:
    """Whether a trailing block of m rows is small enough for the compiled dense Cholesky."""
    return m <= MAX_FUSED_M


class SmallSystem:
    """The blocked factor of a small model computed by one compiled call.

    Parameters
    ----------
    A : CrossProducts
    terms : list of RandomEffectsTerm
        In the order of the cross-products.
    buffers : (L11, P, G, W), optional
        Where the factor is written (a :class:`BlockedFactor`'s own, so that its solutions
        read it); fresh scratch arrays when not given.

    The same compiled arithmetic serves :meth:`factor` and :meth:`criterion`, so a criterion
    value seen by the optimizer is exactly what the factor gives at that θ.
    """

    def __init__(self, A: CrossProducts, terms: Sequence[Any], buffers: tuple | None = None):
        self.A = A
        k1 = int(terms[0].k)
        rest = []
        t0 = k1 * (k1 + 1) // 2
        pos = 0
        for term in terms[1:]:
            rest.append((pos, term.nlevels, term.k, t0))
            pos += term.q
            t0 += term.k * (term.k + 1) // 2
        if buffers is None:
            buffers = (
                np.zeros_like(A.A11),
                np.zeros_like(A.vals),
                np.zeros_like(A.A22),
                np.zeros((A.q_rest, A.p + 1)),
            )
        L11, P, G, W = buffers
        self._args = (
            k1,
            A.A11,
            np.ascontiguousarray(A.ptr, dtype=np.int64),
            np.ascontiguousarray(A.rows, dtype=np.int64),
            A.vals,
            A.A22,
            np.array(rest, dtype=np.int64).reshape(-1, 4),
            A.q_rest,
            L11,
            P,
            G,
            W,
            np.ones(A.m),
        )

    def factor(self, theta: np.ndarray) -> tuple[float, float, float, bool]:
        """(log|Lz|, log|Rx|, r, ok) at θ, the factor written into the buffers."""
        return _factor(np.asarray(theta, dtype=float), *self._args)

    def criterion(self, theta: np.ndarray, reml: bool, n: int, const: float) -> float:
        """The profiled criterion at θ plus ``const`` (NaN: no factor; inf: r² ≤ 0)."""
        return _criterion(theta, *self._args, n, reml, const)

    def criterion_many(self, thetas: np.ndarray, reml: bool, n: int, const: float) -> np.ndarray:
        """:meth:`criterion` at every row of ``thetas``, in one compiled call."""
        return _criterion_many(
            np.ascontiguousarray(thetas, dtype=float), *self._args, n, reml, const
        )
