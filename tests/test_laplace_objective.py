"""glmer's two stages with every evaluation compiled (:mod:`mixedfx.glm.laplace_objective`)
give what the same evaluations through Python give.

The compiled evaluations are the engine's f1/f2 step for step (the same PIRLS kernel, the
same mode predictor, the same optimizers from the same values), so whole fits agree to the
last bit; the tests allow rounding only where a BLAS library might sum in another order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedfx as mfx
import mixedfx.engines.generalized as generalized
from mixedfx.glm.laplace_objective import LaplaceObjective
from mixedfx.glm.mode_predictor import ModePredictor


def _fit_both(formula, df, **kw):
    """The fit with the compiled stages and the fit through Python (None: the fit failed),
    both with stage 2 by BOBYQA: the route by the criterion's gradient (one scalar term,
    canonical link) runs only compiled, and tests/test_laplace_gradient.py checks it."""

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m = mfx.glmer(formula, df, **kw)
            except mfx.errors.MixedFXError:
                return None
            m.engine.hessian  # noqa: B018 - cached: made by this route
            return m

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generalized.GeneralizedEngine, "_gradient_margin", np.inf)
        a = fit()
        mp.setattr(generalized, "laplace_available", lambda *args: False)
        b = fit()
    return a, b


def _assert_same_fit(a, b):
    assert (a is None) == (b is None)
    if a is None:
        return
    ea, eb = a.engine, b.engine
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ea._u, eb._u, rtol=1e-8, atol=1e-11)
    assert ea.optinfo.nfev == eb.optinfo.nfev
    assert ea.optinfo.status == eb.optinfo.status
    assert (ea.stage1 is None) == (eb.stage1 is None)
    if ea.stage1 is not None:
        assert ea.stage1.nfev == eb.stage1.nfev
    assert ea.convergence_messages == eb.convergence_messages
    np.testing.assert_allclose(ea.hessian, eb.hessian, rtol=1e-8, atol=1e-8)


def test_cbpp_compiled_route_is_taken_and_equals_python():
    df = mfx.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    calls = []
    real = LaplaceObjective.__init__

    def spy(self, *args, **kwargs):
        calls.append(args[1])  # joint: stage 1
        real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LaplaceObjective, "__init__", spy)
        a, b = _fit_both(f, df, family="binomial")
    assert calls[:2] == [True, False]  # both stages compiled, then none through Python
    _assert_same_fit(a, b)
    assert a.objective == b.objective  # to the last bit here


@pytest.mark.parametrize("nagq", [0, 1, 5])
def test_nagq_variants(nagq):
    """nAGQ = 0 (stage 1 is the fit, PIRLS to full tolerance), Laplace, and AGQ (stage 1
    compiled, stage 2 through Python)."""
    df = mfx.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    _assert_same_fit(*_fit_both(f, df, family="binomial", nAGQ=nagq))


@pytest.mark.parametrize("start", [None, 0.0, 0.3, 5.0, 300.0])
def test_single_theta_seed_from_any_start(start):
    """Stage 1's single θ (a seed: a bracket grown from the start, then Brent's method) takes
    the same steps compiled and through Python from starts at the bound, below and far above
    θ̂, and ends near the full-tolerance nAGQ = 0 optimum (0.6418)."""
    df = mfx.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    a, b = _fit_both(f, df, family="binomial", start=None if start is None else [start])
    assert a is not None
    _assert_same_fit(a, b)
    assert a.engine.stage1.x[0] == b.engine.stage1.x[0]
    assert abs(a.engine.stage1.x[0] - 0.641815) < 1e-3
    assert a.objective == pytest.approx(184.0525637, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2])
def test_single_theta_seed_at_the_bound(seed):
    """Data with no group effect: stage 1's θ is the bound itself, by both routes."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 6).astype(str), "x": rng.standard_normal(60)})
    df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df["x"]))
    a, b = _fit_both("y ~ x + (1 | g)", df, family="poisson")
    assert a is not None
    _assert_same_fit(a, b)
    assert a.engine.stage1.x[0] == 0.0
    assert a.theta[0] == 0.0


def test_two_terms_stage1_by_bobyqa():
    """Two θ: stage 1 by BOBYQA through nlopt's C interface too."""
    df = mfx.datasets.load("grouseticks")
    f = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)"
    _assert_same_fit(*_fit_both(f, df, family="poisson"))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    n_groups=st.integers(3, 15),
    per_group=st.integers(1, 8),
    family=st.sampled_from(["binomial", "poisson", "probit", "Gamma"]),
    second=st.booleans(),
    offset=st.booleans(),
    p=st.integers(0, 3),
    sd_group=st.sampled_from([0.0, 0.3, 1.5, 6.0]),
    seed=st.integers(0, 10_000),
)
def test_compiled_fit_equals_python_fit_on_random_small_designs(
    n_groups, per_group, family, second, offset, p, sd_group, seed
):
    """A whole glmer fit of a random small design (one or two scalar terms, 0-3 predictors
    besides the intercept, an offset, near-separated or singular or not) gives the same
    answer with the stages compiled as through Python."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    g = np.repeat(np.arange(n_groups), per_group)
    h = rng.integers(0, 4, n)
    X = rng.standard_normal((n, 3))
    eta = 0.3 + X[:, :p] @ rng.normal(0, 0.7, p) + sd_group * rng.standard_normal(n_groups)[g]
    eta = eta + (0.5 * rng.standard_normal(4)[h] if second else 0.0)
    df = pd.DataFrame({"g": g.astype(str), "h": h.astype(str)})
    for j in range(3):
        df[f"x{j}"] = X[:, j]
    fam: str | mfx.families.Family = family
    if family in ("binomial", "probit"):
        df["size"] = rng.integers(1, 12, n)
        df["y"] = rng.binomial(df["size"], 1.0 / (1.0 + np.exp(-eta)))
        response = "cbind(y, size - y)"
        if family == "probit":
            fam = mfx.families.Binomial(link="probit")
    elif family == "poisson":
        df["y"] = rng.poisson(np.exp(eta))
        response = "y"
    else:
        df["y"] = rng.gamma(2.0, np.exp(np.clip(eta, -5, 5)) / 2.0)
        response = "y"
        fam = mfx.families.Gamma(link="log")
    fixed = " + ".join(["1"] + [f"x{j}" for j in range(p)])
    formula = f"{response} ~ {fixed} + (1 | g)" + (" + (1 | h)" if second else "")
    off = np.log(1.0 + np.arange(n) % 3) if offset else None
    _assert_same_fit(*_fit_both(formula, df, family=fam, offset=off))


def test_objective_evaluations_match_python_criterion():
    """LaplaceObjective's single evaluations and ``many`` against the engine's Python f2, and
    the predictor's ring shared with Python."""
    df = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, "binomial")
    e = m.engine
    x0 = np.concatenate([e._theta1, np.zeros(e.p)])
    rng = np.random.default_rng(3)
    pts = x0 + rng.normal(scale=0.05, size=(12, x0.size))
    pts[:, 0] = np.abs(pts[:, 0])
    pred_c, pred_p = ModePredictor(11), ModePredictor(11)
    obj = LaplaceObjective(
        e.pirls, False, e._aic_const, 0.0, pred_c, x0.size,
        beta1=e._beta1, rx1_inv=e._Rx1_inv, warm=e._u,
    )  # fmt: skip
    f2, _ = e._stage2_criterion([e._u.copy()], predictor=pred_p)
    got = np.array([obj(pts[0]), *obj.many(pts[1:])])
    want = np.array([f2(x) for x in pts])
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert obj.nevals == len(pts)
    assert len(pred_c) == len(pred_p) == 11
    np.testing.assert_allclose(pred_c.predict(x0), pred_p.predict(x0), rtol=1e-10, atol=1e-12)


def test_refit_to_a_strided_response():
    """A refit's response may be a column of a matrix (the bootstrap's): read as the data."""
    df = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, "binomial")
    Y = np.repeat(m.engine.y[:, None], 3, axis=1)
    assert not Y[:, 1].flags.c_contiguous
    a = m.engine.refit(Y[:, 1])
    b = m.engine.refit(np.ascontiguousarray(Y[:, 1]))
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.theta, b.theta)


@pytest.mark.parametrize("predicted", [True, False])
def test_polish_is_fit_ub_from_the_predicted_mode(predicted):
    """Stage 1's polish at θ: PIRLS's fit_ub from the predicted mode (or, with nothing
    predicted, from the family's start), to the last bit, R_X and the slopes of the mode
    from the factor it leaves included."""
    df = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, "binomial")
    e = m.engine
    pirls, q = e.pirls, e.design.q
    fam = e.family
    eta0 = np.asarray(fam.linkfun(fam.mustart(e._y, e._wt)), dtype=float)
    pred = ModePredictor(3)
    theta = e._theta1 * 1.1
    if predicted:  # a mode nearby, not at θ: the polish iterates
        near = pirls.fit_ub(e._theta1, None, None, eta0)
        pred.add(e._theta1, np.concatenate([near.u, near.beta]))
    ub = pred.predict(theta)
    want = pirls.fit_ub(theta, None if ub is None else ub[:q], None if ub is None else ub[q:], eta0)
    J_want = pirls.mode_slopes(theta)
    obj = LaplaceObjective(pirls, True, e._aic_const, 1e-7, pred, 1, eta_start=eta0)
    val, u, beta, Rx = obj.polish(theta)
    np.testing.assert_array_equal(u, want.u)
    np.testing.assert_array_equal(beta, want.beta)
    np.testing.assert_array_equal(Rx, want.Rx)
    np.testing.assert_array_equal(pirls.mode_slopes(theta), J_want)
    assert val == pytest.approx(e.laplace(want), rel=1e-13)
