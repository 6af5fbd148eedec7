"""The exact gradient of the profiled criterion (mixedfx.linalg.gradient) against central
differences of the criterion (Richardson-extrapolated, error O(h⁴)), at interior θ and near a
zero variance, for ML and REML, scalar and vector-valued terms, nested and crossed factors,
prior weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.linalg.gradient import canonical_theta, profiled_gradient


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
