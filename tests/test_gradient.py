"""The exact gradient of the profiled criterion (mixedfx.linalg.gradient) against central
differences of the criterion (Richardson-extrapolated, error O(h⁴)), at interior θ and near a
zero variance, for ML and REML, scalar and vector-valued terms, nested and crossed factors,
prior weights."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.linalg.gradient import canonical_theta, profiled_gradient, zero_curvatures
from mixedfx.linalg.optimizer import gradient_newton


def _fd(engine, th: np.ndarray, i: int) -> float:
    h = 1e-3 * max(abs(th[i]), 1e-2)
    e = np.zeros(th.size)
    e[i] = h

    def d(s: float) -> float:
        return (engine.objective_at(th + s * e) - engine.objective_at(th - s * e)) / (2 * s * h)

    return (4.0 * d(1.0) - d(2.0)) / 3.0


def _gradient(engine, th: np.ndarray) -> np.ndarray:
    engine.objective_at(th)
    g = profiled_gradient(engine.factor, engine.n, engine.p, engine.REML)
    assert g is not None
    return g * engine.units.rc  # d/dθ = √c d/dθ'


def _check(model, thetas, rel=1e-6):
    e = model.engine
    for th in thetas:
        th = np.asarray(th, dtype=float)
        g = _gradient(e, th)
        fd = np.array([_fd(e, th, i) for i in range(th.size)])
        assert np.all(np.isfinite(g))
        assert np.max(np.abs(g - fd)) <= rel * np.max(np.abs(fd)), (th, g, fd)


def _fit(formula, data, REML, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmer(formula, data, REML=REML, **kw)


@pytest.mark.parametrize("reml", [True, False])
def test_sleepstudy_vector_term(reml):
    m = _fit("Reaction ~ Days + (Days|Subject)", mfx.datasets.load("sleepstudy"), reml)
    _check(m, [m.theta * 1.3 + 0.1, [0.5, 0.3, 0.05], [1.0, -0.4, 0.8]])


@pytest.mark.parametrize("reml", [True, False])
def test_uncorrelated_terms(reml):
    m = _fit("Reaction ~ Days + (Days||Subject)", mfx.datasets.load("sleepstudy"), reml)
    _check(m, [m.theta * 0.7 + 0.05, [1e-2, 0.2]])


@pytest.mark.parametrize("reml", [True, False])
def test_crossed_and_nested(reml):
    pen = _fit("diameter ~ 1 + (1|plate) + (1|sample)", mfx.datasets.load("Penicillin"), reml)
    _check(pen, [[1.0, 1.0], [1e-2, 2.0], [0.7, 1e-2]])
    pastes = _fit("strength ~ 1 + (1|batch/cask)", mfx.datasets.load("Pastes"), reml)
    _check(pastes, [[1.0, 1.0], [0.5, 1e-2], [2.0, 3.0]])


def test_prior_weights():
    df = mfx.datasets.load("sleepstudy").copy()
    df["w"] = 0.5 + (np.arange(len(df)) % 7) / 3.0
    for form in ("Reaction ~ Days + (Days|Subject)", "Reaction ~ Days + (1|Subject)"):
        m = _fit(form, df, True, weights=df["w"].to_numpy())
        _check(m, [m.theta * 1.2 + 0.05])


def test_instevel_subsample_three_crossed_terms():
    ie = mfx.datasets.load("InstEval")
    df = ie[ie["s"].cat.codes < 150]
    for reml in (True, False):
        m = _fit("y ~ 1 + service + (1|s) + (1|d) + (1|dept)", df, reml)
        _check(m, [[0.3, 0.4, 0.1], [0.5, 1e-2, 0.2]])


def test_gradient_vanishes_at_the_optimum_and_scales_with_units():
    df = mfx.datasets.load("sleepstudy").copy()
    base = _fit("Reaction ~ Days + (Days|Subject)", df, True)
    g0 = _gradient(base.engine, base.theta)
    assert np.max(np.abs(g0)) < 1e-3
    th = base.theta * 1.2
    g = _gradient(base.engine, th)
    for c in (1e-300, 1e300):
        df2 = df.assign(Reaction=df["Reaction"] * c)
        m = _fit("Reaction ~ Days + (Days|Subject)", df2, True)
        gc = _gradient(m.engine, th)
        assert np.all(np.isfinite(gc))
        np.testing.assert_allclose(gc, g, rtol=1e-7, atol=1e-9 * np.max(np.abs(g)))


def test_canonical_theta_keeps_the_criterion():
    m = _fit("Reaction ~ Days + (Days|Subject)", mfx.datasets.load("sleepstudy"), True)
    th = np.array([-0.9, 0.1, -0.3])
    c = canonical_theta(th, [2])
    np.testing.assert_allclose(c, [0.9, -0.1, 0.3])
    assert m.objective_at(c) == pytest.approx(m.objective_at(th), rel=1e-13)


def _zero_curvature_fd(engine, th: np.ndarray, i: int) -> float:
    """∂²d/∂θ_i² at θ_i = 0 as the limit of g_i(h)/h (g_i = 2ah + O(h³)), Richardson."""

    def r(h: float) -> float:
        t = th.copy()
        t[i] = h
        return _gradient(engine, t)[i] / h

    return (4.0 * r(1e-3) - r(2e-3)) / 3.0


@pytest.mark.parametrize("reml", [True, False])
def test_zero_curvature_matches_differences_of_the_gradient(reml):
    ie = mfx.datasets.load("InstEval")
    sleep = mfx.datasets.load("sleepstudy").copy()
    sleep["g"] = pd.Categorical(np.arange(len(sleep)) % 5)
    cases = [
        (
            _fit("diameter ~ 1 + (1|plate) + (1|sample)", mfx.datasets.load("Penicillin"), reml),
            [[1.0, 0.0], [0.5, 0.0]],
        ),
        (_fit("strength ~ 1 + (1|batch/cask)", mfx.datasets.load("Pastes"), reml), [[2.0, 0.0]]),
        (
            _fit("y ~ 1 + service + (1|s) + (1|d) + (1|dept)", ie[ie["s"].cat.codes < 150], reml),
            [[0.3, 0.4, 0.0], [0.3, 0.0, 0.1]],
        ),
        (  # a vector-valued first term
            _fit("Reaction ~ Days + (Days|Subject) + (1|g)", sleep, reml),
            [[0.9, 0.1, 0.2, 0.0]],
        ),
    ]
    seen = 0
    for m, thetas in cases:
        e = m.engine
        for th in thetas:
            th = np.asarray(th, dtype=float)
            e.objective_at(th)
            curv = zero_curvatures(e.factor, e.n, e.p, e.REML)
            assert curv is not None
            assert sorted(curv) == [int(i) for i in np.flatnonzero(th == 0.0)]
            for i, c in curv.items():
                fd = _zero_curvature_fd(e, th, i)
                assert c == pytest.approx(fd, rel=1e-5, abs=1e-6), (th, i, c, fd)
                seen += 1
    assert seen == 6


def _count_bobyqa(monkeypatch) -> list[int]:
    import mixedfx.engines.linear as linear

    calls: list[int] = []
    orig = linear.bobyqa

    def counted(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(linear, "bobyqa", counted)
    return calls


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(
    "formula",
    [
        "y ~ 1 + service + (1|s) + (1|d) + (1|dept)",
        "y ~ 1 + service*dept + (1|s) + (1|d) + (1|dept:service)",  # a zero variance
    ],
)
def test_newton_from_the_moments_reaches_the_bobyqa_optimum(monkeypatch, reml, formula):
    ie = mfx.datasets.load("InstEval")
    df = ie[ie["s"].cat.codes < 400]  # a trailing block of 400+ rows: the gradient path
    calls = _count_bobyqa(monkeypatch)
    m = _fit(formula, df, reml)
    assert m.engine.A.m >= m.engine._gradient_min_m
    # straight from the moment start, but for REML with dept:service, whose Z is in the span
    # of X: the criterion does not depend on θ3 and its zero curvature at θ3 = 0 is no minimum
    flat = reml and "dept:service" in formula
    assert bool(calls) == flat
    e = m.engine
    moments = e._moment_start()
    theta, obj = m.theta.copy(), m.objective
    # the route through BOBYQA (a given start), finished by the same gradient steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e.fit(start=moments)
    assert calls
    assert obj <= e.objective * (1 + 1e-12)
    assert obj == pytest.approx(e.objective, rel=1e-12)
    if not flat:
        np.testing.assert_allclose(theta, e.theta, atol=2e-6)


def test_a_zero_variance_that_is_not_a_minimum_goes_to_bobyqa(monkeypatch):
    ie = mfx.datasets.load("InstEval")
    df = ie[ie["s"].cat.codes < 400]
    formula = "y ~ 1 + service + (1|s) + (1|d) + (1|dept)"
    ref = _fit(formula, df, False)
    assert ref.theta[2] > 0.03  # the optimum is inside
    import mixedfx.engines.linear as linear

    orig = linear.LinearEngine._moment_start

    def zeroed(self):
        th = orig(self)
        th[2] = 0.0  # a start at a zero variance where the criterion decreases along θ3
        return th

    monkeypatch.setattr(linear.LinearEngine, "_moment_start", zeroed)
    calls = _count_bobyqa(monkeypatch)
    m = _fit(formula, df, False)
    assert calls
    assert m.objective == pytest.approx(ref.objective, rel=1e-12)
    np.testing.assert_allclose(m.theta, ref.theta, atol=2e-6)


def test_gradient_newton_with_exact_columns_and_early_stop():
    # f even in x1, f = (x0 - 1)² + x0 x1² + 3 x1² + x1⁴: a minimum along x1 at x1 = 0
    def fg(x):
        f = (x[0] - 1.0) ** 2 + x[0] * x[1] ** 2 + 3.0 * x[1] ** 2 + x[1] ** 4
        g = np.array(
            [2.0 * (x[0] - 1.0) + x[1] ** 2, 2.0 * x[0] * x[1] + 6.0 * x[1] + 4 * x[1] ** 3]
        )
        return f, g

    calls = []

    def counted(x):
        calls.append(x.copy())
        return fg(x)

    def columns(x):
        return {1: np.array([0.0, 2.0 * x[0] + 6.0])} if x[1] == 0.0 else {}

    x, f, g = gradient_newton(counted, np.array([3.0, 0.0]), columns=columns, stop_step=1e-7)
    np.testing.assert_allclose(x, [1.0, 0.0], atol=1e-7)
    assert f == pytest.approx(0.0, abs=1e-13)
    assert np.max(np.abs(g)) < 1e-6
    assert x[1] == 0.0
    assert len(calls) == 3  # the start, one difference (x0), the Newton step; then stop
    assert gradient_newton(fg, np.array([3.0, 0.0]), columns=lambda x: None) is None


def test_gradient_newton_hessian_from_values():
    # a smooth non-quadratic function with a correlated minimum at (1, -2, 0.5)
    c = np.array([1.0, -2.0, 0.5])
    A = np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.3], [0.2, 0.3, 1.5]])

    def fg(x):
        d = x - c
        q = d @ A @ d
        return q + 0.1 * q**2, (1.0 + 0.2 * q) * 2.0 * (A @ d)

    nf = []

    def f(x):
        nf.append(1)
        return fg(x)[0]

    ngrad = []

    def counted(x):
        ngrad.append(1)
        return fg(x)

    x0 = np.array([1.4, -1.7, 0.8])
    ref = gradient_newton(fg, x0, stop_step=1e-7)
    grads = {}
    # values for the whole Hessian (3 columns: 6 values), or gradients; a new Hessian from
    # values after the first step (longer than 1e-3) or BFGS updates
    for k, refresh in ((2, 1e-3), (3, np.inf), (3, 1e-3)):
        nf.clear()
        ngrad.clear()
        x, fx, g = gradient_newton(
            counted, x0, stop_step=1e-7, f=f, values_max=k, refresh_size=refresh
        )
        assert fx == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(x, c, atol=1e-7)
        np.testing.assert_allclose(x, ref[0], atol=1e-7)
        assert np.max(np.abs(g)) < 1e-6
        assert len(nf) == (0 if k == 2 else 6 if refresh == np.inf else 12)
        grads[k, refresh] = len(ngrad)
    assert grads[3, 1e-3] < grads[3, np.inf]  # Newton's convergence after the refresh
