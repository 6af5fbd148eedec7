"""Step 3 of the pipeline: design -> blocked cross-products A (computed once).

With the random-effects terms sorted by decreasing number of levels, write Z = [Z1 | Zr] where
Z1 is the first term and Zr the remaining terms, and let XY = [X | y] (after the prior weights
√w have multiplied every row and the offset has been taken off y). The penalized system's
cross-products are then held in three pieces:

``A11``  Z1'Z1, block diagonal: one k1 x k1 block per level of the first term, shape (n1, k1, k1).

``A21``  [Zr | XY]' Z1, stored column-block by column-block (one column block per level l of
         the first term): the rows with a non-zero entry (``rows[ptr[l]:ptr[l+1]]``, increasing)
         and their k1 values (``vals[ptr[l]:ptr[l+1]]``). Rows of XY are present for every level.

``A22``  [Zr | XY]'[Zr | XY], dense m x m with m = q_rest + p + 1.

Nothing here is touched again while θ is optimized (ARCHITECTURE.md, step 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .design import Design, RandomEffectsTerm

__all__ = ["CrossProducts", "crossproducts", "term_matrix"]


@dataclass
class CrossProducts:
    """The blocked cross-products of the penalized least-squares system.

    Attributes
    ----------
    A11 : ndarray (n1, k1, k1)
    ptr, rows, vals : the column-block storage of A21 (see module docstring)
    A22 : ndarray (m, m), C-contiguous
    q_rest : int
        Number of random effects in terms 2..K (rows of A22 before the XY rows).
    p : int
        Number of fixed-effects columns.
    n : int
        Number of observations.
    sum_log_w : float
        Σ log w of the prior weights (0 without weights).
    """

    A11: np.ndarray
    ptr: np.ndarray
    rows: np.ndarray
    vals: np.ndarray
    A22: np.ndarray
    q_rest: int
    p: int
    n: int
    sum_log_w: float

    @property
    def m(self) -> int:
        return self.A22.shape[0]


def term_matrix(term: RandomEffectsTerm, Zt: np.ndarray | None = None) -> sp.csr_matrix:
    """The sparse n x (levels·k) block of Z for one term (columns level-major, as lme4)."""
    Zt = term.Zt if Zt is None else Zt
    n, k = Zt.shape
    cols = (term.refs[:, None] * k + np.arange(k)[None, :]).ravel()
    indptr = np.arange(0, n * k + 1, k)
    return sp.csr_matrix((Zt.ravel(), cols, indptr), shape=(n, term.nlevels * k))


def _pairs(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique (a, b) level pairs (sorted by a, then b) and each row's pair index."""
    key = a.astype(np.int64) * nb + b
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, inv


def crossproducts(
    design: Design,
    sqrtw: np.ndarray | None = None,
    y: np.ndarray | None = None,
) -> CrossProducts:
    """Form the blocked cross-products of a design.

    Parameters
    ----------
    design : Design
    sqrtw : ndarray (n,), optional
        Square roots of the weights (prior weights for lmer, working weights for PIRLS).
        Default: the design's prior weights, or none.
    y : ndarray (n,), optional
        The response to use instead of ``design.y - offset`` (GLMM working response, refit).
    """
    terms = design.terms
    n = design.n
    X = design.X
    if y is None:
        y = design.y - design.offset if design.offset is not None else design.y
    if sqrtw is None and design.weights is not None:
        sqrtw = np.sqrt(design.weights)
    sum_log_w = float(2.0 * np.log(sqrtw).sum()) if sqrtw is not None else 0.0

    XY = np.empty((n, X.shape[1] + 1))
    XY[:, :-1] = X
    XY[:, -1] = y
    Zts = [t.Zt for t in terms]
    if sqrtw is not None:
        XY *= sqrtw[:, None]
        Zts = [Zt * sqrtw[:, None] for Zt in Zts]

    t1, Z1t = terms[0], Zts[0]
    n1, k1 = t1.nlevels, t1.k
    r1 = t1.refs

    # A11: per level, sum of z z' (vectorized with one bincount per (a, b) pair)
    A11 = np.empty((n1, k1, k1))
    for a in range(k1):
        for b in range(a + 1):
            v = np.bincount(r1, weights=Z1t[:, a] * Z1t[:, b], minlength=n1)
            A11[:, a, b] = v
            A11[:, b, a] = v

    # Offsets of terms 2..K in the "rest" index space
    rest_terms = terms[1:]
    offsets = np.cumsum([0] + [t.q for t in rest_terms])
    q_rest = int(offsets[-1])
    p = X.shape[1]
    m = q_rest + p + 1

    # A21, random-effects rows: for each later term, the (level1, level_i) pairs that occur
    lvl_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    for ti, (t, Zit) in enumerate(zip(rest_terms, Zts[1:], strict=True)):
        ki = t.k
        uniq, inv = _pairs(r1, n1, t.refs, t.nlevels)
        npairs = uniq.shape[0]
        lev1 = uniq // t.nlevels
        levi = uniq % t.nlevels
        blocks = np.empty((npairs, ki, k1))
        for a in range(ki):
            for b in range(k1):
                blocks[:, a, b] = np.bincount(inv, weights=Zit[:, a] * Z1t[:, b], minlength=npairs)
        rows = offsets[ti] + levi[:, None] * ki + np.arange(ki)[None, :]
        lvl_parts.append(np.repeat(lev1, ki))
        row_parts.append(rows.ravel())
        val_parts.append(blocks.reshape(npairs * ki, k1))
    # A21, XY rows: dense, present for every level of the first term
    Z1 = term_matrix(t1, Z1t)
    AX1 = np.asarray(Z1.T @ XY).reshape(n1, k1, p + 1).transpose(0, 2, 1)  # (n1, p+1, k1)
    lvl_parts.append(np.repeat(np.arange(n1), p + 1))
    row_parts.append(np.tile(np.arange(q_rest, m), n1))
    val_parts.append(AX1.reshape(n1 * (p + 1), k1))

    lvl = np.concatenate(lvl_parts)
    rows_all = np.concatenate(row_parts)
    vals_all = np.concatenate(val_parts)
    order = np.lexsort((rows_all, lvl))
    rows_all = np.ascontiguousarray(rows_all[order], dtype=np.int64)
    vals_all = np.ascontiguousarray(vals_all[order])
    ptr = np.zeros(n1 + 1, dtype=np.int64)
    np.cumsum(np.bincount(lvl, minlength=n1), out=ptr[1:])

    # A22: dense cross-products of the rest
    A22 = np.zeros((m, m))
    if rest_terms:
        Zr = sp.hstack(
            [term_matrix(t, Zit) for t, Zit in zip(rest_terms, Zts[1:], strict=True)], format="csr"
        )
        A22[:q_rest, :q_rest] = (Zr.T @ Zr).toarray()
        ZXY = np.asarray(Zr.T @ XY)
        A22[q_rest:, :q_rest] = ZXY.T
        A22[:q_rest, q_rest:] = ZXY
    A22[q_rest:, q_rest:] = XY.T @ XY
    return CrossProducts(
        A11=A11,
        ptr=ptr,
        rows=rows_all,
        vals=vals_all,
        A22=np.ascontiguousarray(A22),
        q_rest=q_rest,
        p=p,
        n=n,
        sum_log_w=sum_log_w,
    )
