"""The pieces that make glmer's PIRLS cheaper must not change what it computes.

* ModePredictor: its local linear model reproduces a linear map exactly, and falls back to
  the nearest remembered mode.
* The compiled PIRLS with the trailing factor's pattern found once (nested terms, an
  observation-level term) against the iteration through BlockedFactor.
* The lean evaluator (``PIRLS.mode_evaluator``) against ``fit_u``/``fit_ub``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedfx.families import Binomial, Poisson
from mixedfx.glm.mode_predictor import ModePredictor
from mixedfx.models.glmer import GeneralizedLinearMixedModel


def test_mode_predictor_linear_map():
    rng = np.random.default_rng(0)
    A, c = rng.normal(size=(30, 4)), rng.normal(size=30)
    pred = ModePredictor(9)
    assert pred.predict(np.zeros(4)) is None
    x0 = rng.normal(size=4)
    pred.add(x0, A @ x0 + c)
    np.testing.assert_array_equal(pred.predict(x0 + 1.0), A @ x0 + c)  # one point: itself
    for _ in range(12):  # more than the capacity: the oldest are dropped
        x = x0 + rng.normal(scale=0.1, size=4)
        pred.add(x, A @ x + c)
    assert len(pred) == 9
    x = x0 + rng.normal(scale=0.1, size=4)
    np.testing.assert_allclose(pred.predict(x), A @ x + c, rtol=0, atol=1e-7)
    pred.clear()
    assert pred.predict(x) is None


def test_mode_predictor_stays_in_span():
    """Directions no remembered point spans predict no change."""
    pred = ModePredictor(5)
    pred.add(np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    pred.add(np.array([1.0, 0.0]), np.array([3.0, 2.0]))
    np.testing.assert_allclose(pred.predict(np.array([0.5, 7.0])), [2.0, 2.0], atol=1e-8)


def _nested(seed: int = 5) -> pd.DataFrame:
    """Observations within broods within locations, as grouseticks."""
    rng = np.random.default_rng(seed)
    loc = np.repeat(np.arange(15), 24)
    brood = loc * 4 + rng.integers(0, 4, loc.size)
    n = loc.size
    x = rng.normal(size=n)
    eta = 0.5 + 0.3 * x + rng.normal(0, 0.5, 15)[loc] + rng.normal(0, 0.4, 60)[brood]
    eta = eta + rng.normal(0, 0.3, n)
    return pd.DataFrame(
        {
            "loc": [f"L{i}" for i in loc],
            "brood": [f"B{i}" for i in brood],
            "obs": [f"o{i}" for i in range(n)],
            "x": x,
            "count": rng.poisson(np.exp(eta)),
            "y01": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
        }
    )


@pytest.mark.parametrize("family", [Poisson(), Binomial()])
def test_pattern_factor_matches_blocked_factor(family):
    resp = "count" if isinstance(family, Poisson) else "y01"
    m = GeneralizedLinearMixedModel(
        f"{resp} ~ x + (1 | obs) + (1 | brood) + (1 | loc)", _nested(), family=family
    )
    assert m.pirls.compiled
    theta, beta = np.array([0.4, 0.6, 0.9]), np.array([0.2, 0.3])
    q = m.design.q
    a = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=True)
    b = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=False)
    np.testing.assert_allclose(a.u, b.u, atol=1e-9)
    assert a.logdet_L == pytest.approx(b.logdet_L, rel=1e-11)
    assert a.pdev == pytest.approx(b.pdev, rel=1e-11)
    c = m.pirls.fit_ub(theta, np.zeros(q), beta, compiled=True)
    d = m.pirls.fit_ub(theta, np.zeros(q), beta, compiled=False)
    np.testing.assert_allclose(c.beta, d.beta, atol=1e-8)
    assert c.logdet_L == pytest.approx(d.logdet_L, rel=1e-10)


def test_mode_evaluator_matches_fit():
    m = GeneralizedLinearMixedModel(
        "count ~ x + (1 | obs) + (1 | brood) + (1 | loc)", _nested(), family=Poisson()
    )
    theta, beta = np.array([0.4, 0.6, 0.9]), np.array([0.2, 0.3])
    q = m.design.q
    ref = m.pirls.fit_u(theta, beta, np.zeros(q))
    ev = m.pirls.mode_evaluator(joint=False)
    assert ev is not None
    u = np.zeros(q)
    pd_, logdet = ev(theta, beta, u)
    assert pd_ == ref.pdev and logdet == ref.logdet_L
    np.testing.assert_array_equal(u, ref.u)
    ref_b = m.pirls.fit_ub(theta, np.zeros(q), beta)
    evb = m.pirls.mode_evaluator(joint=True)
    assert evb is not None
    u, b = np.zeros(q), beta.copy()
    pd_, logdet = evb(theta, b, u)
    assert pd_ == ref_b.pdev and logdet == ref_b.logdet_L
    np.testing.assert_array_equal(b, ref_b.beta)
    # stopping without the last tiny step moves the criterion by rounding only
    loose = m.pirls.mode_evaluator(joint=False, tol_stay=1e-10)
    assert loose is not None
    u = ref.u.copy()
    pd2, logdet2 = loose(theta, beta, u)
    assert pd2 + 2 * logdet2 == pytest.approx(ref.pdev + 2 * ref.logdet_L, rel=1e-12)


@pytest.mark.parametrize("formula", ["x + (1 | obs) + (1 | brood) + (1 | loc)", "x + (1 | brood)"])
def test_mode_slopes_match_finite_differences(formula):
    """∂û/∂β from the joint factor against central differences of the mode over β."""
    m = GeneralizedLinearMixedModel(f"count ~ {formula}", _nested(), family=Poisson())
    theta = np.array([0.4, 0.6, 0.9])[: m.design.theta_lower().size]
    q = m.design.q
    res = m.pirls.fit_ub(theta, np.zeros(q), np.zeros(m.p))
    J = m.pirls.mode_slopes(theta)
    assert J is not None and J.shape == (q, m.p)
    h = 1e-5
    for j in range(m.p):
        e = np.zeros(m.p)
        e[j] = h
        up = m.pirls.fit_u(theta, res.beta + e, res.u).u
        dn = m.pirls.fit_u(theta, res.beta - e, res.u).u
        np.testing.assert_allclose(J[:, j], (up - dn) / (2 * h), rtol=1e-5, atol=1e-6)


def test_fit_u_factored_matches_blocked_factor_path():
    """The installed state: the mode found compiled, factor_u made there once, as the
    iteration through BlockedFactor leaves it."""
    m = GeneralizedLinearMixedModel(
        "y01 ~ x + (1 | brood) + (1 | loc)", _nested(), family=Binomial()
    )
    theta, beta = np.array([0.7, 0.5]), np.array([0.2, 0.3])
    q = m.design.q
    a = m.pirls.fit_u_factored(theta, beta, np.zeros(q))
    L_a = m.pirls.factor_u.L11.copy()
    b = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=False)
    np.testing.assert_allclose(a.u, b.u, atol=1e-9)
    assert a.pdev == pytest.approx(b.pdev, rel=1e-11)
    assert a.logdet_L == pytest.approx(b.logdet_L, rel=1e-11)
    np.testing.assert_allclose(L_a, m.pirls.factor_u.L11, rtol=1e-9)
    np.testing.assert_allclose(a.mu, b.mu, rtol=1e-9)


@pytest.mark.parametrize("nx", [1, 3, 4, 5, 8, 9])
def test_xy_triangle_sums_as_the_row_loop(nx):
    """The compiled PIRLS's [X z]'W[X z] by columns, four entries at a time: each entry the
    row loop's sum (rows in order, (w x_c) x_d added to the entry's start), to the last bit."""
    from mixedfx.glm.pirls_kernels import _xy_triangle

    rng = np.random.default_rng(nx)
    n, q = 37, 3
    XC = rng.normal(size=(nx, n))
    w = rng.uniform(0.1, 2.0, size=n)
    A22 = np.zeros((q + nx, q + nx))
    A22[q:, q:] = np.tril(rng.normal(size=(nx, nx)))  # what the entries start from
    want = A22.copy()
    for i in range(n):
        for c in range(nx):
            wc = w[i] * XC[c, i]
            for d in range(c + 1):
                want[q + c, q + d] += wc * XC[d, i]
    _xy_triangle(XC, w, A22, q)
    np.testing.assert_array_equal(A22, want)


def test_mode_predictor_fill_is_adds_in_turn():
    """fill(xs, ms) holds what clear() and add() of each pair in turn hold: the same
    predictions, the same ring (so compiled code carries on from it alike)."""
    rng = np.random.default_rng(5)
    xs, ms = rng.normal(size=(4, 3)), rng.normal(size=(4, 6))
    a, b = ModePredictor(7), ModePredictor(7)
    a.add(rng.normal(size=3), rng.normal(size=6))  # forgotten by fill
    a.fill(xs, ms)
    for x, m in zip(xs, ms, strict=True):
        b.add(x, m)
    assert len(a) == len(b) == 4
    np.testing.assert_array_equal(a.storage(3, 6)[2], b.storage(3, 6)[2])
    for _ in range(3):
        x = rng.normal(size=3)
        np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError):
        a.fill(np.zeros((8, 3)), np.zeros((8, 6)))


@pytest.mark.parametrize("L", [1, 3, 4, 6, 9])
def test_schur_uniform_is_the_level_loop(L):
    """The Schur update for levels that all pair with the same rows, entries in registers:
    the level-by-level loop's result to the last bit; other layouts are not taken for it."""
    from mixedfx.glm.pirls_kernels import _schur_uniform, _uniform_levels

    rng = np.random.default_rng(L)
    n1, m = 13, L + 2
    rows = np.tile(np.sort(rng.choice(m, size=L, replace=False)), n1).astype(np.int64)
    ptr = np.arange(0, (n1 + 1) * L, L, dtype=np.int64)
    P = rng.normal(size=n1 * L)
    scale = rng.uniform(0.5, 2.0, size=m)
    G = np.tril(rng.normal(size=(m, m)))
    want = G.copy()
    for lev in range(n1):
        for a in range(ptr[lev], ptr[lev + 1]):
            ra = rows[a]
            pa = P[a] * scale[ra]
            for b in range(ptr[lev], a + 1):
                want[ra, rows[b]] -= pa * P[b] * scale[rows[b]]
    assert _uniform_levels(ptr, rows)
    _schur_uniform(ptr, rows, P, scale, G)
    np.testing.assert_array_equal(G, want)
    if L > 1:
        other = rows.copy()
        other[L], other[L + 1] = other[L + 1], other[L]  # the second level in another order
        assert not _uniform_levels(ptr, other)
        uneven = np.concatenate([[0, L - 1], ptr[2:]]).astype(np.int64)
        assert not _uniform_levels(uneven, rows)


@pytest.mark.parametrize("sorted_rows", [True, False])
def test_level_sums_are_the_row_loop(sorted_rows):
    """The first term's per-level sums in registers over runs of rows sharing a level: the
    row loop's read-modify-writes to the last bit, whether a level's rows are one run or
    scattered (then each run carries on from the entry's value)."""
    from mixedfx.glm.pirls_kernels import _level_sums

    rng = np.random.default_rng(11)
    n, n1, nc, extra = 41, 6, 3, 2
    r1 = rng.integers(0, n1, size=n).astype(np.int64)
    if sorted_rows:
        r1 = np.sort(r1)
    ptr = np.arange(0, (n1 + 1) * (extra + nc), extra + nc, dtype=np.int64)
    z1 = rng.normal(size=n)
    a = rng.normal(size=n)
    XC = rng.normal(size=(nc, n))
    A11 = rng.normal(size=n1)
    vals = rng.normal(size=ptr[-1])
    want_A11, want_vals = A11.copy(), vals.copy()
    for i in range(n):
        lev = r1[i]
        want_A11[lev] += a[i] * z1[i]
        for c in range(nc):
            want_vals[ptr[lev + 1] - nc + c] += a[i] * XC[c, i]
    _level_sums(r1, z1, ptr, a, XC, A11, vals)
    np.testing.assert_array_equal(A11, want_A11)
    np.testing.assert_array_equal(vals, want_vals)
