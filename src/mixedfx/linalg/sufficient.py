"""Sufficient statistics of the penalized least-squares system, in pieces that add up.

The blocked cross-products A of a linear mixed model (:mod:`mixedfx.linalg.crossprod`) are sums
over observations. Held as tables keyed by level, or by pair of levels, the statistics of any
two sets of rows add: the rows can be split into chunks (the partitions of a Dask data frame),
each chunk's tables computed where the chunk lives, and the tables summed as a tree. The sum is
then laid out as the :class:`~mixedfx.linalg.crossprod.CrossProducts` the factor needs, exactly
as :class:`~mixedfx.linalg.crossprod.CrossProductPlan` lays out the cross-products of rows held
in memory.

With the terms in the model's order (term 0 has the most levels), k_t columns z_t per term,
XY = [X | y] and row weights w, the tables are (sums over the rows of a chunk):

``first``             key l (level of term 0): Σ w z_0 [z_0 | xy]'     (L, k_0, k_0 + p + 1)
``first_pairs[i]``    key l·nl_i + m, for each later term i: Σ w z_i z_0'  (P, k_i, k_0)
``rest[i]``           key m (level of later term i): Σ w z_i [z_i | xy]'  (L, k_i, k_i + p + 1)
``rest_pairs[i, j]``  key m_i·nl_j + m_j, later terms i > j: Σ w z_i z_j'  (P, k_i, k_j)
``xy``                Σ w xy xy'                                        (p + 1, p + 1)

with n and Σ log w; keys are sorted and unique, only levels (pairs) present are stored, so a
chunk's tables are no larger than its rows. Optional extras: the unweighted X'X (for the rank
check of the fixed effects) and, per level of every term, the unweighted Σ xy xy' (the method of
moments' within-level sums of squares, :mod:`mixedfx.linalg.moments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ..frame.design import Design
from . import kernels as K
from .crossprod import CrossProducts

__all__ = [
    "ChunkPlan",
    "StatsLayout",
    "SufficientStats",
    "Table",
    "concat_stats",
    "split_stats",
    "sum_stats",
]


@dataclass
class Table:
    """Rows of values keyed by sorted, unique int64 keys."""

    keys: np.ndarray
    vals: np.ndarray

    def __add__(self, other: Table) -> Table:
        return _merge([self, other])

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.vals.nbytes)


def _merge(tables: Sequence[Table]) -> Table:
    """The sum of keyed tables: values of equal keys added."""
    tables = [t for t in tables if t.keys.size] or list(tables[:1])
    if len(tables) == 1:
        return tables[0]
    keys = np.concatenate([t.keys for t in tables])
    vals = np.concatenate([t.vals for t in tables])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    if start.size == keys.size:  # no key twice: a reordering only
        return Table(keys, vals[order])
    return Table(keys[start], np.add.reduceat(vals[order], start, axis=0))


@dataclass
class SufficientStats:
    """The statistics of a set of rows (see the module docstring); ``a + b`` is those of the
    union of two disjoint sets of rows."""

    n: int
    first: Table
    first_pairs: list[Table]
    rest: list[Table]
    rest_pairs: dict[tuple[int, int], Table]
    xy: np.ndarray
    sum_log_w: float = 0.0
    xx: np.ndarray | None = None
    level_xy: list[Table] | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return sum_stats([self, other])

    @property
    def nbytes(self) -> int:
        tabs = [self.first, *self.first_pairs, *self.rest, *self.rest_pairs.values()]
        tabs += self.level_xy or []
        return sum(t.nbytes for t in tabs) + int(self.xy.nbytes)


def sum_stats(parts: Sequence[SufficientStats | None]) -> SufficientStats | None:
    """The sum of several chunks' statistics (None for a chunk without rows)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    a = parts[0]
    extra: dict[str, float] = {}
    for p in parts:
        for k, v in p.extra.items():
            if k.startswith("max_"):
                extra[k] = max(extra.get(k, -np.inf), v)
            else:
                extra[k] = extra.get(k, 0.0) + v
    return SufficientStats(
        n=sum(p.n for p in parts),
        first=_merge([p.first for p in parts]),
        first_pairs=[_merge([p.first_pairs[i] for p in parts]) for i in range(len(a.first_pairs))],
        rest=[_merge([p.rest[i] for p in parts]) for i in range(len(a.rest))],
        rest_pairs={k: _merge([p.rest_pairs[k] for p in parts]) for k in a.rest_pairs},
        xy=sum(p.xy for p in parts[1:]) + a.xy,
        sum_log_w=float(sum(p.sum_log_w for p in parts)),
        xx=None if a.xx is None else sum(p.xx for p in parts[1:]) + a.xx,
        level_xy=None
        if a.level_xy is None
        else [_merge([p.level_xy[i] for p in parts]) for i in range(len(a.level_xy))],
        extra=extra,
    )


def _cut(t: Table, bounds: np.ndarray) -> list[Table]:
    """A table split at the key bounds (increasing), one piece per interval."""
    at = np.searchsorted(t.keys, bounds)
    return [Table(t.keys[a:b], t.vals[a:b]) for a, b in pairwise(at)]


def _empty_like(t: Table) -> Table:
    return Table(t.keys[:0], t.vals[:0])


def split_stats(st: SufficientStats | None, bounds: np.ndarray, nls: Sequence[int]
                ) -> list[SufficientStats | None]:  # fmt: skip
    """A chunk's statistics in pieces by ranges of the first term's levels (``bounds``, B + 1
    increasing level numbers from 0 to n1): the tables keyed by those levels are cut, the
    others (and n, X'X, ...) go with the first piece. Pieces of different chunks with the same
    range add up; :func:`concat_stats` joins the sums."""
    B = bounds.size - 1
    if st is None:
        return [None] * B
    first = _cut(st.first, bounds)
    pairs = [_cut(t, bounds * nl) for t, nl in zip(st.first_pairs, nls[1:], strict=True)]
    lxy0 = _cut(st.level_xy[0], bounds) if st.level_xy is not None else None
    out: list[SufficientStats | None] = []
    for b in range(B):
        main = b == 0
        zero = 0.0 * st.xy
        level_xy = None
        if st.level_xy is not None and lxy0 is not None:
            level_xy = [lxy0[b]] + [t if main else _empty_like(t) for t in st.level_xy[1:]]
        out.append(
            SufficientStats(
                n=st.n if main else 0,
                first=first[b],
                first_pairs=[p[b] for p in pairs],
                rest=[t if main else _empty_like(t) for t in st.rest],
                rest_pairs={k: t if main else _empty_like(t) for k, t in st.rest_pairs.items()},
                xy=st.xy if main else zero,
                sum_log_w=st.sum_log_w if main else 0.0,
                xx=(st.xx if main else 0.0 * st.xx) if st.xx is not None else None,
                level_xy=level_xy,
                extra=dict(st.extra) if main else {},
            )
        )
    return out


def _join(tables: Sequence[Table]) -> Table:
    """Tables over disjoint, increasing key ranges, joined."""
    tables = [t for t in tables if t.keys.size] or list(tables[:1])
    if len(tables) == 1:
        return tables[0]
    return Table(np.concatenate([t.keys for t in tables]), np.concatenate([t.vals for t in tables]))


def concat_stats(pieces: Sequence[SufficientStats | None]) -> SufficientStats | None:
    """The statistics of the whole data from the sums of :func:`split_stats`'s pieces."""
    ps = [p for p in pieces if p is not None]
    if not ps:
        return None
    a = ps[0]
    return SufficientStats(
        n=sum(p.n for p in ps),
        first=_join([p.first for p in ps]),
        first_pairs=[_join([p.first_pairs[i] for p in ps]) for i in range(len(a.first_pairs))],
        rest=[_join([p.rest[i] for p in ps]) for i in range(len(a.rest))],
        rest_pairs={k: _join([p.rest_pairs[k] for p in ps]) for k in a.rest_pairs},
        xy=sum(p.xy for p in ps[1:]) + a.xy,
        sum_log_w=float(sum(p.sum_log_w for p in ps)),
        xx=None if a.xx is None else sum(p.xx for p in ps[1:]) + a.xx,
        level_xy=None
        if a.level_xy is None
        else [_join([p.level_xy[i] for p in ps]) for i in range(len(a.level_xy))],
        extra=dict(a.extra),
    )


def _group(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and each row's index among them."""
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq.astype(np.int64), inv.astype(np.intp).reshape(-1)


class ChunkPlan:
    """The keys of one chunk's tables, worked out once from its level codes: then
    :meth:`stats` fills the tables for any weights, response and fixed-effects columns with
    one compiled pass per table (PIRLS calls it once per iteration).

    Parameters
    ----------
    design : Design
        The chunk's rows; the terms' ``refs`` are codes on the *global* levels (every chunk of
        a data set uses the same levels and order).
    """

    def __init__(self, design: Design):
        terms = design.terms
        self.n = design.n
        self.nls = [t.nlevels for t in terms]
        self.ks = [t.k for t in terms]
        self.Zs = [np.ascontiguousarray(t.Zt, dtype=float) for t in terms]
        refs = [t.refs.astype(np.int64) for t in terms]
        self.single = [_group(r) for r in refs]
        r0 = refs[0]
        self.first_pairs = [
            _group(r0 * nl + r) for r, nl in zip(refs[1:], self.nls[1:], strict=True)
        ]
        self.rest_pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        rest = refs[1:]
        for i in range(len(rest)):
            for j in range(i):
                self.rest_pairs[i, j] = _group(rest[i] * self.nls[1 + j] + rest[j])

    def stats(
        self,
        sqrtw: np.ndarray | None,
        y: np.ndarray,
        X: np.ndarray,
        *,
        xx: bool = False,
        level_xy: bool = False,
    ) -> SufficientStats:
        """The chunk's tables for row weights ``sqrtw²`` (None: 1), response column ``y`` and
        fixed-effects columns ``X`` (n, p); ``xx``: also the unweighted X'X; ``level_xy``: also
        the unweighted per-level Σ xy xy' of every term."""
        n = self.n
        w = np.ones(n) if sqrtw is None else sqrtw * sqrtw
        XY = np.empty((n, X.shape[1] + 1))
        XY[:, :-1] = X
        XY[:, -1] = y
        p1 = XY.shape[1]

        def cross(keys_inv: tuple[np.ndarray, np.ndarray], A: np.ndarray, B: np.ndarray,
                  ww: np.ndarray = w) -> Table:  # fmt: skip
            keys, inv = keys_inv
            out = np.empty((keys.size, A.shape[1], B.shape[1]))
            K.grouped_cross(inv, A, ww, B, out)
            return Table(keys, out)

        Z0 = self.Zs[0]
        first = cross(self.single[0], Z0, np.hstack([Z0, XY]))
        first_pairs = [
            cross(g, Zi, Z0) for g, Zi in zip(self.first_pairs, self.Zs[1:], strict=True)
        ]
        rest = [
            cross(g, Zi, np.hstack([Zi, XY]))
            for g, Zi in zip(self.single[1:], self.Zs[1:], strict=True)
        ]
        rest_pairs = {
            (i, j): cross(g, self.Zs[1 + i], self.Zs[1 + j])
            for (i, j), g in self.rest_pairs.items()
        }
        XYw = XY * sqrtw[:, None] if sqrtw is not None else XY
        out = SufficientStats(
            n=n,
            first=first,
            first_pairs=first_pairs,
            rest=rest,
            rest_pairs=rest_pairs,
            xy=XYw.T @ XYw,
            sum_log_w=float(2.0 * np.log(sqrtw).sum()) if sqrtw is not None else 0.0,
        )
        if xx:
            out.xx = X.T @ X
        if level_xy:
            ones = np.ones(n)
            out.level_xy = []
            for keys, inv in self.single:
                blk = np.empty((keys.size, p1, p1))
                K.grouped_cross(inv, XY, ones, XY, blk)
                out.level_xy.append(Table(keys, blk))
        return out


class StatsLayout:
    """Where each table entry goes in the :class:`CrossProducts` of the whole data, worked out
    once from the summed tables' keys (they do not change with the weights): :meth:`fill`
    then writes the values of any sum with the same keys (PIRLS: every iteration).

    The layout is :class:`~mixedfx.linalg.crossprod.CrossProductPlan`'s: A11 per level of
    term 0; A21 column block by column block, rows increasing (the later terms' levels in
    order, then the XY rows); A22 dense.

    Parameters
    ----------
    stats : SufficientStats
        The summed statistics.
    nls, ks : levels and columns of each term (model order).
    keep : ndarray of int, optional
        The fixed-effects columns to keep (the others, rank-deficient, are dropped).
    """

    def __init__(
        self,
        stats: SufficientStats,
        nls: Sequence[int],
        ks: Sequence[int],
        keep: np.ndarray | None = None,
    ):
        self.nls, self.ks = list(nls), list(ks)
        p_full = stats.xy.shape[0] - 1
        keep = np.arange(p_full) if keep is None else np.asarray(keep, dtype=np.intp)
        self.keep = keep
        self.xycols = np.r_[keep, p_full].astype(np.intp)
        p = keep.size
        self.p = p
        self.n = stats.n
        n1, k1 = self.nls[0], self.ks[0]
        self.n1, self.k1 = n1, k1
        rest_q = [nl * k for nl, k in zip(self.nls[1:], self.ks[1:], strict=True)]
        self.offsets = np.cumsum([0, *rest_q]).astype(np.int64)
        q = int(self.offsets[-1])
        self.q_rest = q
        m = q + p + 1
        self.m = m
        nx = p + 1
        if stats.first.keys.size != n1:
            raise ValueError("every level of the first term must have rows")
        # entries per column block (level l of term 0): pairs with each later term, then XY
        counts = [
            np.bincount(t.keys // nl, minlength=n1) * k
            for t, nl, k in zip(stats.first_pairs, self.nls[1:], self.ks[1:], strict=True)
        ]
        per_level = np.full(n1, nx, dtype=np.int64)
        for c in counts:
            per_level += c
        ptr = np.zeros(n1 + 1, dtype=np.int64)
        np.cumsum(per_level, out=ptr[1:])
        self.ptr = ptr
        nnz = int(ptr[-1])
        rows = np.empty(nnz, dtype=np.int64)
        start = ptr[:-1].copy()
        # A21, random-effects rows: term i's pairs, in key order (= level of term 0, then row)
        self._pair_at: list[tuple[np.ndarray, np.ndarray]] = []
        for ti, t in enumerate(stats.first_pairs):
            first_of = np.zeros(n1 + 1, dtype=np.int64)
            np.cumsum(np.bincount(t.keys // self.nls[1 + ti], minlength=n1), out=first_of[1:])
            self._pair_at.append((first_of, start.copy()))
            k = self.ks[1 + ti]
            for _, pos, levi in self._pair_chunks(ti, t):
                rows[pos] = self.offsets[ti] + levi[:, None] * k + np.arange(k)[None, :]
            start += counts[ti]
        xpos = start[:, None] + np.arange(nx)[None, :]  # (n1, nx)
        rows[xpos] = q + np.arange(nx)[None, :]
        self._xy_pos = xpos
        self.rows = rows
        # A22 positions of the later terms' diagonal blocks, their XY columns, their pairs
        self._rest_idx: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for ti, (t, k) in enumerate(zip(stats.rest, self.ks[1:], strict=True)):
            base = self.offsets[ti] + t.keys * k  # (L,)
            r = base[:, None, None] + np.arange(k)[None, :, None]
            c = base[:, None, None] + np.arange(k)[None, None, :]
            r, c = np.broadcast_arrays(r, c)
            rx = np.broadcast_to(
                base[:, None, None] + np.arange(k)[None, :, None], (base.size, k, nx)
            )
            cx = np.broadcast_to(q + np.arange(nx)[None, None, :], (base.size, k, nx))
            self._rest_idx.append((r.ravel(), c.ravel(), rx.ravel(), cx.ravel()))
        self._pair_idx: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for (i, j), t in stats.rest_pairs.items():
            nlj, ki, kj = self.nls[1 + j], self.ks[1 + i], self.ks[1 + j]
            li, lj = t.keys // nlj, t.keys % nlj
            r = self.offsets[i] + li[:, None, None] * ki + np.arange(ki)[None, :, None]
            c = self.offsets[j] + lj[:, None, None] * kj + np.arange(kj)[None, None, :]
            r, c = np.broadcast_arrays(r, c)
            self._pair_idx[i, j] = (r.ravel(), c.ravel())

    def _pair_chunks(self, ti: int, t: Table, chunk: int = 1 << 22):
        """(slice of the table, positions in A21's storage (rows, k_i), later level) of the
        pairs of term 0 with later term ``ti``, a few million at a time (bounded
        temporaries)."""
        nl, k = self.nls[1 + ti], self.ks[1 + ti]
        first_of, start = self._pair_at[ti]
        for a in range(0, t.keys.size, chunk):
            keys = t.keys[a : a + chunk]
            lev0 = keys // nl
            rank = np.arange(a, a + keys.size, dtype=np.int64) - first_of[lev0]
            pos = (start[lev0] + rank * k)[:, None] + np.arange(k)[None, :]
            yield slice(a, a + keys.size), pos, keys % nl

    def empty(self) -> CrossProducts:
        return CrossProducts(
            A11=np.zeros((self.n1, self.k1, self.k1)),
            ptr=self.ptr,
            rows=self.rows,
            vals=np.zeros((self.rows.size, self.k1)),
            A22=np.zeros((self.m, self.m)),
            q_rest=self.q_rest,
            p=self.p,
            n=self.n,
            sum_log_w=0.0,
        )

    def fill(self, stats: SufficientStats, out: CrossProducts | None = None) -> CrossProducts:
        """The cross-products of the summed statistics (written into ``out`` if given)."""
        A = self.empty() if out is None else out
        k1 = self.k1
        xc = self.xycols
        f = stats.first.vals
        A.A11[:] = f[:, :, :k1]
        vals = A.vals
        for ti, t in enumerate(stats.first_pairs):
            for sl, pos, _ in self._pair_chunks(ti, t):
                vals[pos] = t.vals[sl]  # (P, k_i, k1) onto rows (P, k_i)
        vals[self._xy_pos] = np.swapaxes(f[:, :, k1 + xc], 1, 2)
        A22 = A.A22
        A22[:] = 0.0
        for (r, c, rx, cx), t, k in zip(self._rest_idx, stats.rest, self.ks[1:], strict=True):
            v = t.vals
            A22[r, c] = v[:, :, :k].ravel()
            zxy = v[:, :, k + xc].ravel()
            A22[rx, cx] = zxy
            A22[cx, rx] = zxy
        for key, (r, c) in self._pair_idx.items():
            v = stats.rest_pairs[key].vals.ravel()
            A22[r, c] = v
            A22[c, r] = v
        q = self.q_rest
        A22[q:, q:] = stats.xy[np.ix_(xc, xc)]
        A.n = stats.n
        A.sum_log_w = stats.sum_log_w
        return A
