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

from ..frame.design import Design, RandomEffectsTerm
from . import kernels as K

__all__ = ["CrossProductPlan", "CrossProducts", "crossproducts", "term_matrix"]


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
    """Unique (a, b) level pairs as keys a·nb + b (sorted by a, then b) and each row's pair
    index: ``np.unique(a * nb + b, return_inverse=True)``, by a compiled bucket pass."""
    return K.pair_index(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64), na, nb)


def _merge_order(lvl_parts: list[np.ndarray], n1: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each entry of the concatenated parts goes when sorted by (level, row), and the
    column pointers of the result.

    Each part holds its entries sorted by level and, within a level, by increasing rows, and
    every row of a part is below every row of the next part (the later terms in order, then
    the XY rows), so within a level the sorted order is part after part: entry i of part p
    goes to ptr[l] + (entries of level l in the parts before p) + (its rank within part p's
    level l). This is ``np.lexsort((rows, lvl))``'s inverse in O(entries).
    """
    if len(lvl_parts) == 1:  # one part (a single term): already in order
        lv = lvl_parts[0]
        ptr = np.zeros(n1 + 1, dtype=np.int64)
        np.cumsum(np.bincount(lv, minlength=n1), out=ptr[1:])
        return np.arange(lv.size, dtype=np.int64), ptr
    lv = np.concatenate(lvl_parts).astype(np.int64, copy=False)
    return K.merge_order(lv, n1)


class CrossProductPlan:
    """The sparsity pattern of a design's blocked cross-products, worked out once.

    :meth:`compute` then fills in the values for any weights and response with one compiled
    pass per block (:func:`mixedfx._kernels.grouped_cross`) and no sorting: lmer calls it once,
    PIRLS (glmer) once per iteration with new working weights and working response.

    Parameters
    ----------
    design : Design
    X : ndarray (n, p), optional
        Fixed-effects columns to carry in the XY rows. Default: the design's X. PIRLS for the
        random effects alone (β held fixed) passes an (n, 0) array.
    """

    def __init__(self, design: Design, X: np.ndarray | None = None):
        terms = design.terms
        self.design = design
        self.n = design.n
        self.X = design.X if X is None else np.ascontiguousarray(X, dtype=float)
        self.p = self.X.shape[1]
        self._XY: np.ndarray | None = None
        self._ones: np.ndarray | None = None
        t1 = terms[0]
        self.n1, self.k1 = t1.nlevels, t1.k
        self.rest = terms[1:]
        qs = [0]
        for t in self.rest:
            qs.append(qs[-1] + t.q)
        offsets = np.array(qs, dtype=np.int64)
        self.offsets = offsets
        self.q_rest = qs[-1]
        self.m = self.q_rest + self.p + 1
        p, m, n1 = self.p, self.m, self.n1
        # A21, random-effects rows: the (level1, level_i) pairs that occur, per later term
        self._a21_pairs: list[tuple[np.ndarray, int]] = []
        if not self.rest:  # one term: each level's column holds the XY rows 0..p, in order
            self.ptr = np.arange(0, n1 * (p + 1) + 1, p + 1, dtype=np.int64)
            self.rows = np.empty((n1, p + 1), dtype=np.int64)
            self.rows[:] = np.arange(p + 1)
            self.rows = self.rows.reshape(-1)
            dest = None  # the entries are in order: no merge (and no reordering in compute)
        else:
            lvl_parts: list[np.ndarray] = []
            row_parts: list[np.ndarray] = []
            for ti, t in enumerate(self.rest):
                uniq, inv = _pairs(t1.refs, n1, t.refs, t.nlevels)
                lev1, levi = np.divmod(uniq, t.nlevels)
                k = t.k
                if k == 1:  # a scalar term: one row per pair (the general lines below, k = 1)
                    rows = levi + qs[ti]
                    lvl_parts.append(lev1)
                else:
                    rows = (offsets[ti] + levi[:, None] * k + np.arange(k)[None, :]).ravel()
                    lvl_parts.append(lev1.repeat(k))
                self._a21_pairs.append((inv.astype(np.intp, copy=False), uniq.shape[0]))
                row_parts.append(rows)
            # A21, XY rows: present for every level of the first term
            lvl_parts.append(np.arange(n1).repeat(p + 1))  # (the method: no numpy wrapper)
            xy_rows = np.empty((n1, p + 1), dtype=np.int64)
            xy_rows[:] = np.arange(self.q_rest, m)
            row_parts.append(xy_rows.reshape(-1))
            dest, self.ptr = _merge_order(lvl_parts, n1)
            del lvl_parts
            self.rows = np.empty(dest.size, dtype=np.int64)
            self.rows[dest] = np.concatenate(row_parts)
            del row_parts
        # all terms scalar: one fused pass (K.scalar_crossprods) needs, per observation, the
        # A22 row of each later term and the position in vals of its pair with the first term;
        # the general pass (grouped_cross per block) needs the order of the stored entries and
        # the pairs' indices instead, which the scalar path does not keep (big data, memory)
        self._scalar = all(t.Zt.shape[1] == 1 for t in terms)
        self._order = np.empty(0, dtype=np.int64)
        self._a22_pairs: list[tuple[int, int, np.ndarray, int, np.ndarray, np.ndarray]] = []
        if not self._scalar:
            if dest is not None:  # later terms: compute reorders the stacked blocks
                self._order = np.empty_like(dest)
                self._order[dest] = np.arange(dest.size)
            self._plan_a22(offsets)
        else:
            invorder = dest if dest is not None else np.arange(self.rows.size, dtype=np.int64)
            start = 0
            K = len(self.rest)  # one row per later term, filled in place
            self.rrows = np.empty((K, self.n), dtype=np.int64)
            self.rz = np.empty((K, self.n))
            self.pos21 = np.empty((K, self.n), dtype=np.int64)
            for ti, (t, (inv, npairs)) in enumerate(zip(self.rest, self._a21_pairs, strict=True)):
                self.pos21[ti] = invorder[start + inv]
                np.add(t.refs, qs[ti], out=self.rrows[ti], casting="unsafe")
                self.rz[ti] = t.Zt[:, 0]
                start += npairs
            self.r1 = t1.refs.astype(np.int64, copy=False)
            self.z1 = np.ascontiguousarray(t1.Zt[:, 0])
            self._a21_pairs = []

    def _plan_a22(self, offsets: np.ndarray) -> None:
        """A22, random-effects block: per pair of later terms (i >= j), the level pairs."""
        for i, ti in enumerate(self.rest):
            for j in range(i + 1):
                tj = self.rest[j]
                if i == j:
                    inv, npairs = ti.refs.astype(np.intp, copy=False), ti.nlevels
                    li = lj = np.arange(ti.nlevels)
                else:
                    uniq, inv = _pairs(ti.refs, ti.nlevels, tj.refs, tj.nlevels)
                    npairs = uniq.shape[0]
                    li, lj = uniq // tj.nlevels, uniq % tj.nlevels
                    inv = inv.astype(np.intp, copy=False)
                r = offsets[i] + li[:, None, None] * ti.k + np.arange(ti.k)[None, :, None]
                c = offsets[j] + lj[:, None, None] * tj.k + np.arange(tj.k)[None, None, :]
                r, c = np.broadcast_arrays(r, c)
                self._a22_pairs.append((i, j, inv, npairs, r.ravel(), c.ravel()))

    def empty(self) -> CrossProducts:
        """A CrossProducts with this plan's pattern and zero values, for :meth:`compute`."""
        return CrossProducts(
            A11=np.zeros((self.n1, self.k1, self.k1)),
            ptr=self.ptr,
            rows=self.rows,
            vals=np.zeros((self.rows.shape[0], self.k1)),
            A22=np.zeros((self.m, self.m)),
            q_rest=self.q_rest,
            p=self.p,
            n=self.n,
            sum_log_w=0.0,
        )

    def compute(
        self,
        sqrtw: np.ndarray | None,
        y: np.ndarray,
        out: CrossProducts | None = None,
        sum_log_w: bool = True,
    ) -> CrossProducts:
        """The cross-products of ``[Z | X | y]`` with row weights ``sqrtw²``.

        Parameters
        ----------
        sqrtw : ndarray (n,) or None
            Square roots of the weights (None: unweighted).
        y : ndarray (n,)
            The response column (offset already taken off).
        out : CrossProducts, optional
            Overwrite the values of this object (made by :meth:`empty`) instead of allocating:
            a factor holding it then sees the new values.
        sum_log_w : bool
            Also compute Σ log w (lmer's criterion needs it; PIRLS does not).
        """
        A = self.empty() if out is None else out
        n, p, q = self.n, self.p, self.q_rest
        terms = self.design.terms
        if sqrtw is None:
            if self._ones is None:
                self._ones = np.empty(n)
                self._ones.fill(1.0)
            w = self._ones
        else:
            w = sqrtw * sqrtw
        if sum_log_w:
            A.sum_log_w = float(2.0 * np.log(sqrtw).sum()) if sqrtw is not None else 0.0
        if self._XY is None:  # X's columns are copied once; only y changes between calls
            self._XY = np.empty((n, p + 1))
            self._XY[:, :p] = self.X
        XY = self._XY
        XY[:, p] = y
        if self._scalar:
            K.scalar_crossprods(
                self.r1,
                self.z1,
                self.rrows,
                self.rz,
                self.pos21,
                w,
                XY,
                self.ptr,
                A.A11,
                A.vals,
                A.A22,
            )
            XYw = XY * sqrtw[:, None] if sqrtw is not None else XY
            A.A22[q:, q:] = XYw.T @ XYw
            return A
        t1 = terms[0]
        Z1 = t1.Zt
        K.grouped_cross(t1.refs, Z1, w, Z1, A.A11)
        parts: list[np.ndarray] = []
        for t, (inv, npairs) in zip(self.rest, self._a21_pairs, strict=True):
            blk = np.empty((npairs, t.k, self.k1))
            K.grouped_cross(inv, t.Zt, w, Z1, blk)
            parts.append(blk.reshape(npairs * t.k, self.k1))
        bx = np.empty((self.n1, self.k1, p + 1))
        K.grouped_cross(t1.refs, Z1, w, XY, bx)
        if parts:
            parts.append(bx.transpose(0, 2, 1).reshape(self.n1 * (p + 1), self.k1))
            A.vals[:] = np.concatenate(parts)[self._order]
        elif A.vals.flags.c_contiguous:  # one term: the XY rows alone, already in order
            A.vals.reshape(self.n1, p + 1, self.k1)[...] = bx.transpose(0, 2, 1)
        else:
            A.vals[:] = bx.transpose(0, 2, 1).reshape(self.n1 * (p + 1), self.k1)
        A22 = A.A22
        for i, j, inv, npairs, r, c in self._a22_pairs:
            ti, tj = self.rest[i], self.rest[j]
            blk = np.empty((npairs, ti.k, tj.k))
            K.grouped_cross(inv, ti.Zt, w, tj.Zt, blk)
            v = blk.ravel()
            A22[r, c] = v
            A22[c, r] = v
        for ti, t in enumerate(self.rest):
            blk = np.empty((t.nlevels, t.k, p + 1))
            K.grouped_cross(t.refs, t.Zt, w, XY, blk)
            zxy = blk.reshape(t.q, p + 1)
            sl = slice(int(self.offsets[ti]), int(self.offsets[ti + 1]))
            A22[q:, sl] = zxy.T
            A22[sl, q:] = zxy
        XYw = XY * np.sqrt(w)[:, None] if sqrtw is not None else XY
        A22[q:, q:] = XYw.T @ XYw
        return A


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
    if y is None:
        y = design.y - design.offset if design.offset is not None else design.y
    if sqrtw is None and design.weights is not None:
        sqrtw = np.sqrt(design.weights)
    return CrossProductPlan(design).compute(sqrtw, np.asarray(y, dtype=float))
