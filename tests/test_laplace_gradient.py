"""glmer's second stage by the Laplace criterion's gradient (one scalar term, canonical link):
the compiled gradient against finite differences, the route's answer against BOBYQA's, and
the fall-back to BOBYQA where the route declines."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
import mixedfx.engines.generalized as generalized
from mixedfx.glm import pirls_kernels as PK
from mixedfx.glm.laplace_objective import LaplaceObjective, gradient_family
from mixedfx.glm.mode_predictor import ModePredictor

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _fit(formula, df, route=True, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.MonkeyPatch.context() as mp:
            if not route:
                mp.setattr(generalized.GeneralizedEngine, "_gradient_margin", np.inf)
            try:
                return mfx.glmer(formula, df, **kw)
            except mfx.errors.MixedFXError:
                return None


def _stage2(m):
    """Stage 2's compiled criterion of a fitted model (modes to full tolerance)."""
    e = m.engine
    n = e._theta.size + e.p
    obj = e._stage2_compiled(ModePredictor(2 * n + 1), e._u.copy(), n, tol_stay=0.0)
    assert isinstance(obj, LaplaceObjective)
    return obj


def _x(m):
    e = m.engine
    return np.concatenate([e._theta, e._Rx1 @ (e._beta - e._beta1)])


def _random_data(seed, family, n_groups=12, per_group=6, slope=False, offset=False, wt=False):
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.standard_normal(n)
    z = rng.uniform(0.5, 2.0, n)
    b = rng.normal(0, 0.8, n_groups)[g]
    eta = 0.2 + 0.6 * x + (z * b if slope else b)
    df = pd.DataFrame({"x": x, "z": z, "g": [f"g{k}" for k in g]})
    if offset:
        df["o"] = rng.normal(0, 0.3, n)
        eta = eta + df["o"].to_numpy()
    if family == "poisson":
        df["y"] = rng.poisson(np.exp(eta)).astype(float)
    else:
        trials = rng.integers(1, 6, n) if wt else np.ones(n, dtype=int)
        df["t"] = trials.astype(float)
        df["y"] = rng.binomial(trials, 1 / (1 + np.exp(-eta))).astype(float) / trials
    rhs = "x + (0 + z | g)" if slope else "x + (1 | g)"
    if offset:
        rhs += " + offset(o)"
    return df, f"y ~ {rhs}", ({"weights": "t"} if wt else {})


@pytest.mark.parametrize(
    "family, slope, offset, wt",
    [
        ("binomial", False, False, False),
        ("binomial", True, True, True),
        ("poisson", False, True, False),
        ("poisson", True, False, False),
    ],
)
def test_gradient_equals_finite_differences(family, slope, offset, wt):
    """The closed-form gradient against Richardson-extrapolated central differences, away
    from the optimum (where every component matters)."""
    df, f, kw = _random_data(5, family, slope=slope, offset=offset, wt=wt)
    m = _fit(f, df, family=family, **kw)
    obj = _stage2(m)
    gfam = gradient_family(m.engine.pirls)
    assert gfam == (0 if family == "binomial" else 1)
    x = _x(m) + np.array([0.2, 0.3, -0.4])
    val, grad = obj.gradient(x, gfam)
    assert val == pytest.approx(obj(x), rel=1e-13)

    def central(h):
        out = np.empty(x.size)
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = h
            out[i] = (obj(x + e) - obj(x - e)) / (2 * h)
        return out

    fd = (4 * central(1e-4) - central(2e-4)) / 3
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_cbpp_takes_the_route_and_matches_bobyqa():
    df = mfx.datasets.load("cbpp")
    a, b = _fit(CBPP, df), _fit(CBPP, df, route=False)
    assert a.engine.optinfo.status == "gradient"
    assert b.engine.optinfo.status != "gradient"
    assert a.engine.optinfo.nfev < b.engine.optinfo.nfev
    assert a.objective <= b.objective + 1e-10 * abs(b.objective)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4)
    se = np.sqrt(np.diag(b.vcov))
    assert np.all(np.abs(a.fixef - b.fixef) < 1e-4 * se)
    assert a.engine.convergence_messages == []


def test_gradient_kernel_reads_the_header_terms():
    """The header's first-term arrays are the term's levels and column, as the gradient reads
    them."""
    df, f, kw = _random_data(2, "binomial", slope=True)
    m = _fit(f, df, **kw)
    obj = _stage2(m)
    t = m.engine.design.terms[0]
    hdr = obj.hdr
    n = m.engine.n
    r1 = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_int64 * n).from_address(int(hdr[23]))).copy()
    z1 = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_double * n).from_address(int(hdr[24]))).copy()
    np.testing.assert_array_equal(r1, t.refs)
    np.testing.assert_array_equal(z1, t.Zt[:, 0])


def test_bfgs_direction_solves_the_updated_system():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    H = A @ A.T + 4 * np.eye(4)
    s, y, g = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    y = H @ s + 0.1 * y  # s'y > 0
    expect = H + np.outer(y, y) / (s @ y) - np.outer(H @ s, H @ s) / (s @ H @ s)
    step = np.empty(4)
    Hc = H.copy()
    assert PK._bfgs_direction(Hc, s, y, g, step)
    np.testing.assert_allclose(Hc, expect, rtol=1e-12)
    np.testing.assert_allclose(step, -np.linalg.solve(expect, g), rtol=1e-10)
    assert not PK._bfgs_direction(-np.eye(4), np.zeros(4), np.zeros(4), g, step)


def test_declined_route_leaves_bobyqa_unchanged():
    """Where the search does not converge, the fit is BOBYQA's from the same state, to the
    last bit."""
    df = mfx.datasets.load("cbpp")
    b = _fit(CBPP, df, route=False)
    with pytest.MonkeyPatch.context() as mp:
        real = LaplaceObjective.quasi_newton

        def fails(self, *args, **kwargs):
            res, grad, _ = real(self, *args, **kwargs)
            return res, grad, False

        mp.setattr(LaplaceObjective, "quasi_newton", fails)
        a = _fit(CBPP, df)
    assert a.engine.optinfo.status == b.engine.optinfo.status
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.fixef, b.fixef)
    assert a.engine.optinfo.nfev == b.engine.optinfo.nfev


def test_route_not_taken_off_its_scope():
    """Probit (not canonical), two terms, AGQ: BOBYQA, as before."""
    df, f, _ = _random_data(3, "binomial")
    for fam in (mfx.families.Binomial(link="probit"),):
        m = _fit(f, df, family=fam)
        assert m.engine.optinfo.status != "gradient"
    m = _fit(f, df, nAGQ=5)
    assert m.engine.optinfo.status != "gradient"
    df["h"] = np.arange(len(df)) % 4
    m = _fit(f + " + (1 | h)", df)
    assert m.engine.optinfo.status != "gradient"


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    n_groups=st.integers(3, 20),
    per_group=st.integers(1, 10),
    family=st.sampled_from(["binomial", "poisson"]),
    slope=st.booleans(),
    offset=st.booleans(),
    wt=st.booleans(),
    sd=st.sampled_from([0.0, 0.2, 1.0, 4.0]),
    seed=st.integers(0, 10_000),
)
# a separated design whose criterion has two local minima (θ ≈ 18 and θ ≈ 65): BFGS from
# lme4's start θ₀ = 1 (without stage 1) ends in the higher one
@example(
    n_groups=11, per_group=1, family="binomial", slope=True, offset=False, wt=True, sd=4.0,
    seed=24,
)  # fmt: skip
def test_route_never_worse_than_bobyqa(n_groups, per_group, family, slope, offset, wt, sd, seed):
    """On random small designs (singular, separated or not) the fit with the route is never
    worse than BOBYQA's by more than 1e-10 relative, and where it declines it is BOBYQA's."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    g = np.repeat(np.arange(n_groups), per_group)
    x = rng.standard_normal(n)
    z = rng.uniform(0.5, 2.0, n)
    b = sd * rng.standard_normal(n_groups)[g]
    eta = 0.3 + 0.5 * x + (z * b if slope else b)
    df = pd.DataFrame({"x": x, "z": z, "g": g.astype(str), "o": rng.normal(0, 0.2, n)})
    if offset:
        eta = eta + df["o"].to_numpy()
    kw = {}
    if family == "poisson":
        df["y"] = rng.poisson(np.exp(np.clip(eta, -20, 5))).astype(float)
    else:
        trials = rng.integers(1, 5, n) if wt else np.ones(n, dtype=int)
        df["t"] = trials.astype(float)
        df["y"] = rng.binomial(trials, 1 / (1 + np.exp(-eta))) / trials
        if wt:
            kw["weights"] = "t"
    f = "y ~ x + " + ("(0 + z | g)" if slope else "(1 | g)") + (" + offset(o)" if offset else "")
    a = _fit(f, df, family=family, **kw)
    bb = _fit(f, df, family=family, route=False, **kw)
    assert (a is None) == (bb is None)
    if a is None:
        return
    if a.engine.optinfo.status == "gradient":
        # (on a flat criterion, e.g. a separated design, it may end lower than BOBYQA)
        assert a.objective <= bb.objective + 1e-10 * max(1.0, abs(bb.objective))
    else:
        assert a.objective == bb.objective


def test_a_wrong_gradient_is_caught_by_the_differences():
    """The answer is confirmed along two directions by central differences: a gradient off
    by 1e-3 in any one component sends the fit to BOBYQA (bit for bit its fit)."""
    df = mfx.datasets.load("cbpp")
    b = _fit(CBPP, df, route=False)
    real = LaplaceObjective.quasi_newton
    for k in range(5):

        def off(self, *args, k=k, **kwargs):
            res, grad, ok = real(self, *args, **kwargs)
            grad = grad.copy()
            grad[k] += 1e-3
            return res, grad, ok

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(LaplaceObjective, "quasi_newton", off)
            a = _fit(CBPP, df)
        assert a.engine.optinfo.status == b.engine.optinfo.status != "gradient"
        assert a.objective == b.objective


def test_gradient_is_nan_where_the_criterion_clamps_mu():
    """Binomial |η| > 30 and Poisson μ ≤ ε, where R's formulas clamp μ (the closed form is
    not the criterion's derivative there): NaN, and the fit is BOBYQA's (bit for bit)."""
    for family, far in (("binomial", 120.0), ("poisson", -150.0)):
        df, f, kw = _random_data(4, family)
        df.loc[0, "x"] = far  # one row's η beyond the clamp at the estimates
        df.loc[0, "y"] = 1.0 if family == "binomial" else 0.0
        m = _fit(f, df, family=family, **kw)
        e = m.engine
        eta = e.linear_predictor()
        assert (abs(eta[0]) > 30.0) if family == "binomial" else (np.exp(eta[0]) < 2.2e-16)
        obj = _stage2(m)
        assert np.isfinite(obj(_x(m)))
        val, grad = obj.gradient(_x(m), gradient_family(e.pirls))
        assert val == np.inf and np.isnan(grad).all()  # not computable: the search stops
        assert e.optinfo.status != "gradient"
        b = _fit(f, df, family=family, route=False, **kw)
        assert m.objective == b.objective
