"""The factor's and the cross-products' fast paths give the numbers of the general ones.

* The precomputed (grouped) Schur update of a balanced scalar first term, with its sums stored
  as int16, int32 or float64, against the scatter over column blocks (``grouped=False``) and
  against a dense Cholesky factorization of the penalized system.
* The compiled pair numbering and the O(entries) layout of A21 against ``np.unique`` and
  ``np.lexsort``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.engines.linear import LinearEngine
from mixedfx.frame.design import build_design
from mixedfx.linalg import factor as factor_module
from mixedfx.linalg import kernels as K
from mixedfx.linalg.crossprod import CrossProductPlan, term_matrix
from mixedfx.linalg.factor import BlockedFactor, lambda_blocks


@pytest.fixture(autouse=True)
def _no_small_system(monkeypatch):
    """These designs have small trailing blocks, which the compiled small-model factor
    (linalg/fused.py, tested in test_fused.py) would take: test the large-model paths."""
    monkeypatch.setattr(factor_module, "applies", lambda m: False)


def _crossed(per, n1, n2, seed, n3=0, weights=None):
    """g1 with ``per`` to ``per + 2`` rows per level (few distinct counts: the balanced designs
    the grouped update is for), crossed with g2 (and g3) drawn at random."""
    rng = np.random.default_rng(seed)
    g1 = rng.permutation(np.repeat(np.arange(n1), per + rng.integers(0, 3, n1)))
    n = g1.size
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n),
            "x": rng.standard_normal(n),
            "g1": pd.Categorical(g1),
            "g2": pd.Categorical(rng.integers(0, n2, n)),
            "g3": pd.Categorical(rng.integers(0, max(n3, 1), n)),
        }
    )
    # weights constant within a level of g1 keep its weighted counts few
    if weights == "integer":
        df["w"] = np.array([1.0, 2.0])[rng.integers(0, 2, n1)][g1]
    elif weights == "real":
        df["w"] = np.array([0.5, 1.7])[rng.integers(0, 2, n1)][g1]
    return df


def _dense_stats(A, terms, theta):
    """log|Lz|, log|Rx| and r² from a dense Cholesky factor of the penalized system."""
    lams = lambda_blocks(theta, [t.k for t in terms])
    n1, k1 = A.A11.shape[:2]
    m, q = A.m, A.q_rest
    N = n1 * k1 + m
    M = np.zeros((N, N))
    for lev in range(n1):
        M[lev * k1 : (lev + 1) * k1, lev * k1 : (lev + 1) * k1] = A.A11[lev]
    lev = np.repeat(np.arange(n1), np.diff(A.ptr))
    for j in range(k1):
        M[n1 * k1 + A.rows, lev * k1 + j] = A.vals[:, j]
    M[n1 * k1 :, n1 * k1 :] = A.A22
    il = np.tril_indices(N, -1)
    M[il[1], il[0]] = M[il]
    Lam = np.eye(N)
    Lam[: n1 * k1, : n1 * k1] = np.kron(np.eye(n1), lams[0])
    pos = n1 * k1
    for t, lam in zip(terms[1:], lams[1:], strict=True):
        Lam[pos : pos + t.q, pos : pos + t.q] = np.kron(np.eye(t.nlevels), lam)
        pos += t.q
    P = Lam.T @ M @ Lam
    P[np.arange(n1 * k1 + q), np.arange(n1 * k1 + q)] += 1.0
    d = np.diag(np.linalg.cholesky(P))
    nz = n1 * k1 + q
    return np.log(d[:nz]).sum(), np.log(d[nz:-1]).sum(), d[-1] ** 2


CASES = {
    # (rows per level of g1, levels of g1, g2, g3, weights) -> the storage of the grouped sums
    "int16": ((200, 100, 30, 0, None), np.int16),
    "int32": ((100, 800, 2, 0, None), np.int32),
    # sqrt(2)² is not 2: weighted sums are not exact integers, so float64
    "integer weights": ((200, 100, 30, 0, "integer"), np.float64),
    "real weights": ((200, 100, 30, 0, "real"), np.float64),
    "three terms": ((200, 100, 20, 50, None), np.int16),
    "one term": ((100, 50, 2, 0, None), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_grouped_schur_update_matches_scatter_and_dense(name):
    (per, n1, n2, n3, weights), storage = CASES[name]
    df = _crossed(per, n1, n2, seed=len(name), n3=n3, weights=weights)
    terms = "(1 | g1)"
    if name != "one term":
        terms += " + (1 | g2)"
    if n3:
        terms += " + (1 | g3)"
    d = build_design(f"y ~ x + {terms}", df, weights="w" if weights else None)
    sqrtw = np.sqrt(d.weights) if d.weights is not None else None
    A = CrossProductPlan(d).compute(sqrtw, d.y)
    grouped = BlockedFactor(A, d.terms)
    scatter = BlockedFactor(A, d.terms, grouped=False)
    assert grouped._grouped is not None and scatter._grouped is None
    dtypes = [S.dtype for _, _, S in grouped._grouped.parts]
    assert dtypes[-1] == np.float64  # the fixed-effects/response rows
    if storage is not None:
        assert dtypes[0] == storage
    nt = len(d.terms)
    for theta in ([0.9, 0.5, 0.3], [0.05, 3.0, 1.0], [4.0, 0.01, 0.2]):
        th = np.array(theta[:nt])
        a = grouped.update(th)
        Ga = np.tril(grouped.G)
        b = scatter.update(th)
        Gb = np.tril(scatter.G)
        np.testing.assert_allclose(Ga, Gb, rtol=1e-10, atol=1e-10 * np.abs(Gb).max())
        for x, y in ((a.logdet_Lz, b.logdet_Lz), (a.logdet_Rx, b.logdet_Rx), (a.pwrss, b.pwrss)):
            assert x == pytest.approx(y, rel=1e-11, abs=1e-9)
        if n1 <= 100:
            ld_z, ld_x, r2 = _dense_stats(A, d.terms, th)
            assert a.logdet_Lz == pytest.approx(ld_z, rel=1e-10)
            assert a.logdet_Rx == pytest.approx(ld_x, rel=1e-9, abs=1e-9)
            assert a.pwrss == pytest.approx(r2, rel=1e-10)
        u_a, beta_a = grouped.solve()
        u_b, beta_b = scatter.solve()
        np.testing.assert_allclose(u_a, u_b, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(beta_a, beta_b, rtol=1e-9, atol=1e-10)


def test_grouped_fit_equals_scatter_fit():
    """A whole fit through the grouped update ends where the scatter path does."""
    df = _crossed(200, 100, 30, seed=3)
    m = mfx.lmer("y ~ x + (1 | g1) + (1 | g2)", df, REML=False)
    assert m.engine.factor._grouped is not None
    e = LinearEngine(m.design, REML=False, grouped=False)
    assert e.factor._grouped is None
    e.fit()
    np.testing.assert_allclose(e.theta, m.theta, rtol=1e-6, atol=1e-8)
    theta = np.asarray(m.theta)
    assert e.objective_at(theta) == pytest.approx(m.engine.objective_at(theta), rel=1e-12)


@pytest.mark.parametrize(
    ("n", "na", "nb"), [(1000, 10, 7), (50_000, 3000, 300), (40, 100, 90), (0, 3, 3)]
)
def test_pair_index_equals_unique(n, na, nb):
    rng = np.random.default_rng(n + na)
    a = rng.integers(0, na, n)
    b = rng.integers(0, nb, n)
    keys, inv = K.pair_index(a, b, na, nb)
    u, iv = np.unique(a * nb + b, return_inverse=True)
    np.testing.assert_array_equal(keys, u)
    np.testing.assert_array_equal(inv, iv)


@pytest.mark.parametrize(
    ("data", "formula"),
    [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject) + (1 | Days)"),
        ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
        ("InstEval", "y ~ service + (1 | s) + (1 | d) + (1 | dept)"),
    ],
)
def test_a21_layout_equals_lexsort(data, formula):
    d = build_design(formula, mfx.datasets.load(data), check_dense=False)
    plan = CrossProductPlan(d)
    t1 = d.terms[0]
    lvl_parts, row_parts = [], []
    for ti, t in enumerate(plan.rest):
        uniq = np.unique(t1.refs.astype(np.int64) * t.nlevels + t.refs)
        rows = plan.offsets[ti] + (uniq % t.nlevels)[:, None] * t.k + np.arange(t.k)[None, :]
        lvl_parts.append(np.repeat(uniq // t.nlevels, t.k))
        row_parts.append(rows.ravel())
    lvl_parts.append(np.repeat(np.arange(t1.nlevels), plan.p + 1))
    row_parts.append(np.tile(np.arange(plan.q_rest, plan.m), t1.nlevels))
    lvl, rows = np.concatenate(lvl_parts), np.concatenate(row_parts)
    order = np.lexsort((rows, lvl))
    if not plan._scalar:  # the order of the entries is kept for the general pass only
        np.testing.assert_array_equal(plan._order, order)
    np.testing.assert_array_equal(plan.rows, rows[order])
    np.testing.assert_array_equal(plan.ptr[1:], np.cumsum(np.bincount(lvl)))
    # and the values: A21 against the sparse product Z_rest|XY ' Z1
    A = plan.compute(None, d.y)
    Z1 = term_matrix(t1)
    R = sp.hstack([term_matrix(t) for t in plan.rest] + [sp.csr_matrix(d.X), d.y[:, None]])
    full = (R.T @ Z1).toarray()
    levcol = np.repeat(np.arange(t1.nlevels), np.diff(A.ptr))
    for j in range(t1.k):
        np.testing.assert_allclose(A.vals[:, j], full[A.rows, levcol * t1.k + j], atol=1e-8)


@pytest.mark.parametrize("three", [False, True])
def test_scalar_schur_matches_general_kernel_and_dense(three):
    """The Schur update of a scalar first term (a sparse block column: neither the grouped
    nor the dense path) against the general kernel and a dense factorization."""
    rng = np.random.default_rng(7)
    n, n1, n2 = 3000, 300, 150
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n),
            "x": rng.standard_normal(n),
            "g1": pd.Categorical(rng.integers(0, n1, n)),
            "g2": pd.Categorical(rng.integers(0, n2, n)),
            "g3": pd.Categorical(rng.integers(0, 12, n)),
        }
    )
    formula = "y ~ x + (1 | g1) + (1 | g2)" + (" + (1 | g3)" if three else "")
    d = build_design(formula, df)
    A = CrossProductPlan(d).compute(None, d.y)
    f = BlockedFactor(A, d.terms)
    assert f._grouped is None and f._dense is None
    q = A.q_rest
    for theta in ([0.9, 0.5, 0.3], [0.05, 3.0, 1.0]):
        th = np.array(theta[: len(d.terms)])
        lams = lambda_blocks(th, [1] * len(d.terms))
        K.factor_first_block(A.A11, lams[0], f.L11)
        f._schur_scalar(lams[0][0, 0], f._rest_scale(lams))  # G before its Cholesky
        Gt = f.G.copy()
        # the general kernel (it does the XY rows too)
        L11 = np.zeros_like(A.A11)
        K.factor_first_block(A.A11, lams[0], L11)
        P = np.zeros_like(A.vals)
        K.scale_first_column(A.ptr, A.vals, lams[0], L11, P)
        scale = f._rest_scale(lams).copy()
        G = np.zeros_like(A.A22)
        W = np.zeros((q, f.nx))
        K.fill_scaled(A.A22, scale, q, G)
        K.schur_update(A.ptr, A.rows, P, f.nx, q, scale, G, W)
        np.testing.assert_allclose(np.tril(Gt), np.tril(G), rtol=1e-12, atol=1e-12)
        st = f.update(th)
        ld_z, ld_x, r2 = _dense_stats(A, d.terms, th)
        assert st.logdet_Lz == pytest.approx(ld_z, rel=1e-10)
        assert st.logdet_Rx == pytest.approx(ld_x, rel=1e-9, abs=1e-9)
        assert st.pwrss == pytest.approx(r2, rel=1e-10)
        np.testing.assert_allclose(f.P, P, rtol=1e-15)  # recomputed after the kernel


@settings(max_examples=60, deadline=None)
@given(
    n1=st.integers(1, 25),
    sizes=st.lists(st.integers(0, 40), min_size=2, max_size=4),
    seed=st.integers(0, 10_000),
)
def test_merge_order_is_the_inverse_of_lexsort(n1, sizes, seed):
    """The compiled merge of the cross-products' parts (each sorted by level, every row of a
    part below the next part's rows) puts every entry where a sort by (level, row) would."""
    from mixedfx.linalg.crossprod import _merge_order

    rng = np.random.default_rng(seed)
    parts = [np.sort(rng.integers(0, n1, s)) for s in sizes]
    rows = []
    base = 0
    for lv in parts:  # rows increasing within a level of a part, below the next part's
        r = np.zeros(lv.size, dtype=np.int64)
        for lev in np.unique(lv):
            at = np.flatnonzero(lv == lev)
            r[at] = base + np.sort(rng.choice(50, at.size, replace=False))
        rows.append(r)
        base += 50
    lvl, row = np.concatenate(parts), np.concatenate(rows)
    dest, ptr = _merge_order(parts, n1)
    order = np.lexsort((row, lvl))
    expect = np.empty_like(order)
    expect[order] = np.arange(order.size)
    np.testing.assert_array_equal(dest, expect)
    counts = np.bincount(lvl, minlength=n1)
    np.testing.assert_array_equal(ptr, np.concatenate([[0], np.cumsum(counts)]))
