"""The short routes of a GLMM fit's glue give what the general routes give, to the last bit:
the small triangular inverse, ZΛu for scalar terms, the binomial and Poisson aic constants,
the binomial response without weights; a second LaplaceObjective of a stage equals a fresh
engine's; the factor over u made lazily equals the factored install's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special

import mixedfx as mfx
from mixedfx.engines.generalized import GeneralizedEngine, family_response
from mixedfx.glm.families import Binomial, Poisson
from mixedfx.glm.laplace_objective import LaplaceObjective
from mixedfx.glm.mode_predictor import ModePredictor
from mixedfx.linalg.factor import lambda_blocks
from mixedfx.linalg.triangular import SMALL, lower_triangle, triangular_inverse
from mixedfx.linalg.zmul import b_blocks, z_times


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal to the bit, the sign of zeros included."""
    return bool(np.array_equal(a, b) and np.array_equal(np.signbit(a), np.signbit(b)))


def test_small_triangular_inverse_is_numpys() -> None:
    rng = np.random.default_rng(11)
    for trial in range(600):
        n = int(rng.integers(1, SMALL))
        R = np.triu(rng.standard_normal((n, n))) + np.diag(rng.uniform(0.1, 5.0, n))
        if trial % 3 == 0:
            R *= 10.0 ** rng.uniform(-8, 8)
        assert _same(triangular_inverse(R, lower=False), np.triu(np.linalg.inv(R)))
        assert _same(triangular_inverse(R.T, lower=True), np.tril(np.linalg.inv(R.T)))
    assert _same(
        triangular_inverse(np.array([[2, 1], [0, 4]]), False), np.array([[0.5, -0.125], [0, 0.25]])
    )
    with pytest.raises(np.linalg.LinAlgError):
        triangular_inverse(np.array([[1.0, 2.0], [0.0, 0.0]]), lower=False)


def test_lower_triangle_is_tril_of_a_view() -> None:
    rng = np.random.default_rng(8)
    G = rng.standard_normal((12, 12))
    for a, b in ((0, 12), (3, 7), (5, 6), (4, 4)):
        M = G[a:b, a:b]
        want, got = np.tril(M), lower_triangle(M)
        assert _same(got, want) and got.flags.c_contiguous and got.strides == want.strides
        assert _same(got.T, want.T) and got.T.strides == want.T.strides


def _aic_binomial_general(y, n, mu, wt):
    m = n if np.any(n > 1) else wt
    k = np.round(m * y)
    mm = np.round(m)
    logd = (
        special.gammaln(mm + 1.0)
        - special.gammaln(k + 1.0)
        - special.gammaln(mm - k + 1.0)
        + special.xlogy(k, mu)
        + special.xlog1py(mm - k, -mu)
    )
    f = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
    return float(-2.0 * np.sum(f * logd))


def test_binomial_and_poisson_aic_are_the_general_formulas() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(1, 300))
        trials = rng.integers(0, 30, n).astype(float)
        y = np.where(trials > 0, rng.integers(0, 31, n) % (trials + 1) / np.maximum(trials, 1), 0)
        mu = rng.uniform(0.01, 0.99, n)
        ones = np.ones(n)
        assert Binomial().aic(y, trials, mu, trials, 0.0) == _aic_binomial_general(
            y, trials, mu, trials
        )
        yb = (rng.uniform(size=n) < 0.4).astype(float)
        w = rng.uniform(0.5, 3.0, n)
        assert Binomial().aic(yb, ones, mu, w, 0.0) == _aic_binomial_general(yb, ones, mu, w)
        counts = rng.poisson(3.0, n).astype(float)
        lam = rng.uniform(0.5, 6.0, n)
        want = float(
            -2.0 * np.sum((special.xlogy(counts, lam) - lam - special.gammaln(counts + 1.0)) * w)
        )
        assert Poisson().aic(counts, ones, lam, w, 0.0) == want


def test_binomial_trials_without_weights_are_the_weights() -> None:
    cbpp = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    d = m.engine.design
    assert d.weights is None
    y, wt, trials = family_response(d, m.family)
    assert _same(wt, 1.0 * trials) and wt is not trials
    np.testing.assert_array_equal(y * trials, cbpp["incidence"].to_numpy())


@pytest.mark.parametrize("which", ["cbpp", "grouse"])
def test_scalar_zlam_u_is_z_times(which: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if which == "cbpp":
            df = mfx.datasets.load("cbpp")
            m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df)
        else:
            df = mfx.datasets.load("grouseticks")
            m = mfx.glmer(
                "TICKS ~ YEAR + (1|BROOD) + (1|INDEX) + (1|LOCATION)", df, family="poisson"
            )
    pirls = m.engine.pirls
    assert pirls._scalar_z() is not None
    rng = np.random.default_rng(2)
    for _ in range(50):
        theta = rng.uniform(0.0, 3.0, len(pirls.ks))
        u = rng.standard_normal(pirls.q) * 10.0 ** rng.uniform(-6, 6)
        lams = lambda_blocks(theta, pirls.ks)
        assert _same(pirls.zlam_u(lams, u), z_times(pirls.terms, b_blocks(pirls.terms, lams, u)))
    # vector-valued terms take the general route
    df = mfx.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 + size | herd)", df)
    assert v.engine.pirls._scalar_z() is None


def test_a_second_laplace_objective_equals_a_fresh_engines() -> None:
    """A second objective of a stage on one PIRLS (after the fit's own): its evaluations and
    polish equal a fresh engine's."""
    cbpp = mfx.datasets.load("cbpp")
    m = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    e = m.engine
    fresh = GeneralizedEngine(e.design, e.family)
    fresh._beta1, fresh._Rx1_inv = e._beta1, e._Rx1_inv
    x0 = np.concatenate([e._theta1, np.zeros(e.p)])
    rng = np.random.default_rng(4)
    pts = x0 + rng.normal(scale=0.05, size=(6, x0.size))
    pts[:, 0] = np.abs(pts[:, 0])
    vals = []
    for eng in (e, fresh):
        obj = eng._stage2_compiled(ModePredictor(11), e._u, x0.size, tol_stay=0.0)
        assert obj is not None
        vals.append((obj.many(pts), obj.polish(pts[0])[:2]))
    (va, (pa, ua)), (vb, (pb, ub)) = vals
    assert _same(va, vb) and pa == pb and _same(ua, ub)
    # stage 1 twice on one PIRLS: the same values again
    eta0 = np.asarray(e.family.linkfun(e.family.mustart(e._y, e._wt)), dtype=float)
    got = [
        LaplaceObjective(
            e.pirls, True, e._aic_const, 1e-7, ModePredictor(3), 1, eta_start=eta0
        ).many(np.array([[0.5], [0.7]]))
        for _ in range(2)
    ]
    assert _same(got[0], got[1])


@pytest.mark.parametrize(
    ("formula", "family", "kw"),
    [
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", {}),
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", {"nAGQ": 0}),
        ("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", "poisson", {}),
        ("T1 ~ YEAR + (1 | BROOD)", "Gamma", {}),
    ],
)
def test_lazy_factor_equals_the_factored_install(formula, family, kw) -> None:
    """With compiled PIRLS the fit installs the compiled mode and makes factor_u only when
    conditional variances ask: the same modes, the criterion to rounding, and the factor a
    factored install (PIRLS.fit_u_factored at the fitted state) leaves."""
    data = mfx.datasets.load("cbpp" if "herd" in formula else "grouseticks")
    if "T1" in formula:
        data = data.assign(T1=data["TICKS"] + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.glmer(formula, data, family=family, **kw)
    e = m.engine
    assert e.pirls.compiled and not e._factored  # the lazy route is taken
    cv = [c.copy() for c in e.cond_var]
    assert e._factored
    res = e.pirls.fit_u_factored(e._theta, e._beta, e._u)  # one more step from the mode
    np.testing.assert_allclose(res.u, e._u, rtol=1e-12, atol=1e-14)
    obj = e.laplace(res) if e.nAGQ == 0 else e.criterion(e._theta, res)
    assert e.objective == pytest.approx(obj, rel=1e-14)
    if e.family.has_dispersion:
        pearson = float(np.sum(e._wt * (e._y - res.mu) ** 2 / e.family.variance(res.mu)))
        assert e.sigma == pytest.approx(np.sqrt((pearson + res.u @ res.u) / e.n), rel=1e-14)
    s2 = e.sigma**2
    blocks = e.factor.conditional_variances()
    for c, lam, V in zip(cv, e.lambdas(), blocks, strict=True):
        assert _same(c, s2 * (lam @ V @ lam.T))
