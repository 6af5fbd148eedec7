"""The compiled PIRLS's passes over the observations: the vectorized exp, log and
binomial-logit formulas against libm and R's per-observation formulas (equal to rounding, NaN
kept NaN); the phased cross-products of many rows against the iteration through
BlockedFactor."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mixedfx.families import Binomial, Poisson
from mixedfx.glm import pirls_kernels as PK
from mixedfx.models.glmer import GeneralizedLinearMixedModel


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.spacing(np.abs(b))


def test_vexp_within_one_ulp_of_libm():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-700, 700, 5000), rng.uniform(-1, 1, 5000), [0.0, -30, 30]])
    out, bits = np.empty_like(x), np.empty(x.size, dtype=np.int64)
    PK.vexp(x, out, bits)
    ref = np.array([math.exp(v) for v in x])
    assert _ulps(out, ref).max() <= 1.0
    PK.vexp(np.array([np.nan, 1.0]), out[:2], bits[:2])
    assert np.isnan(out[0]) and abs(out[1] - math.e) <= np.spacing(math.e)


def test_vlog_within_one_ulp_of_libm():
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            np.exp(rng.uniform(-700, 700, 5000)),
            rng.uniform(0.5, 2.0, 5000),
            [1.0, 2.0, 0.5, math.sqrt(2.0), 1.0 + 1e-12, 1.0 - 1e-12, 2.2e-16],
        ]
    )
    out = np.empty_like(x)
    PK.vlog(x, out)
    ref = np.array([math.log(v) for v in x])
    assert np.all(np.abs(out - ref) <= np.spacing(np.maximum(np.abs(ref), 1e-300)))
    assert out[x.size - 7] == 0.0  # log 1
    PK.vlog(np.array([np.nan, 1.0]), out[:2])
    assert np.isnan(out[0]) and out[1] == 0.0


@pytest.mark.parametrize("binary", [True, False])
def test_binomial_logit_pass_matches_r_formulas(binary):
    """Weights, residuals, μ and the deviance of the vectorized pass against _glm_obs (R's
    arithmetic), at ordinary η, beyond R's clamp at |η| = 30, with weights, and with y all
    0 or 1 (one log per row) or some proportions (two)."""
    rng = np.random.default_rng(3)
    n = 4001
    eta = rng.normal(0.0, 3.0, n)
    eta[:6] = [-40.0, 40.0, 30.5, -30.5, 29.9, -29.9]
    y = (rng.random(n) < 0.4).astype(float)
    if not binary:
        y[10:30] = rng.uniform(0.0, 1.0, 20)
    wt = np.ones(n)
    wt[10:30] = rng.integers(1, 20, 20)
    mu, scratch = np.empty(n), np.zeros((5, n))
    total = PK._binomial_logit_obs(eta, y, wt, mu, scratch)
    mu0, sw0, wr0 = np.empty(n), np.empty(n), np.empty(n)
    total0 = PK.glm_working(0, 0, eta, y, wt, mu0, sw0, wr0, True)
    assert abs(total - total0) <= 1e-13 * abs(total0)
    np.testing.assert_allclose(mu, mu0, rtol=1e-15, atol=0)
    np.testing.assert_allclose(scratch[0], sw0**2, rtol=1e-14, atol=0)
    np.testing.assert_allclose(scratch[1], wr0, rtol=1e-14, atol=0)
    eta[5] = np.nan
    assert np.isnan(PK._binomial_logit_obs(eta, y, wt, mu, scratch))


def _crossed(n: int = 3000, seed: int = 4) -> pd.DataFrame:
    """Two crossed factors, three covariates (one a factor), binary, count and proportion
    responses: n (p + 1)² above the size where X's cross-products go through BLAS."""
    rng = np.random.default_rng(seed)
    g1, g2, g3 = rng.integers(0, 150, n), rng.integers(0, 20, n), rng.integers(0, 8, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    f = rng.integers(0, 3, n)
    eta = -0.3 + 0.5 * x - 0.2 * z + 0.3 * f + rng.normal(0, 0.8, 150)[g1]
    eta = eta + rng.normal(0, 0.5, 20)[g2] + rng.normal(0, 0.3, 8)[g3]
    trials = rng.integers(1, 6, n)
    return pd.DataFrame(
        {
            "g1": [f"a{i}" for i in g1],
            "g2": [f"b{i}" for i in g2],
            "g3": [f"d{i}" for i in g3],
            "x": x,
            "z": z,
            "f": [f"c{i}" for i in f],
            "y01": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
            "prop": rng.binomial(trials, 1 / (1 + np.exp(-eta))) / trials,
            "trials": trials.astype(float),
            "count": rng.poisson(np.exp(eta)),
        }
    )


@pytest.mark.parametrize(
    ("terms", "by"),
    [
        ("(1 | g1) + (1 | g2)", None),
        ("(1 | g1) + (1 | g2)", "g2"),
        ("(1 | g1)", None),
        ("(1 | g1) + (1 | g2) + (1 | g3)", None),
    ],
)
@pytest.mark.parametrize(
    ("resp", "family", "weights"),
    [("y01", Binomial(), None), ("prop", Binomial(), "trials"), ("count", Poisson(), None)],
)
def test_many_rows_passes_match_blocked_factor(resp, family, weights, terms, by):
    """u alone and (u, β) jointly, compiled against the iteration through BlockedFactor; one,
    two or three terms, rows in random order or sorted by the second term (its sums then run
    in registers)."""
    df = _crossed()
    if by is not None:
        df = df.sort_values(by, kind="stable").reset_index(drop=True)
    kw = {"weights": weights} if weights else {}
    m = GeneralizedLinearMixedModel(f"{resp} ~ x + z + f + {terms}", df, family=family, **kw)
    assert m.pirls.compiled
    n, p = m.design.X.shape
    assert n * (p + 1) ** 2 >= 20_000  # the phased cross-products with BLAS
    ntheta = m.design.theta_lower().size
    theta = np.array([0.8, 0.5, 0.4])[:ntheta]
    beta = np.array([-0.2, 0.4, -0.1, 0.2, 0.3])
    q = m.design.q
    a = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=True)
    b = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=False)
    np.testing.assert_allclose(a.u, b.u, atol=1e-9)
    assert a.logdet_L == pytest.approx(b.logdet_L, rel=1e-11)
    assert a.pdev == pytest.approx(b.pdev, rel=1e-11)
    c = m.pirls.fit_ub(theta, np.zeros(q), beta, compiled=True)
    d = m.pirls.fit_ub(theta, np.zeros(q), beta, compiled=False)
    np.testing.assert_allclose(c.beta, d.beta, atol=1e-8)
    np.testing.assert_allclose(c.u, d.u, atol=1e-8)
    assert c.logdet_L == pytest.approx(d.logdet_L, rel=1e-10)
    assert c.pdev == pytest.approx(d.pdev, rel=1e-11)
    assert c.Rx is not None
    np.testing.assert_allclose(np.abs(c.Rx), np.abs(m.pirls.factor_b.Rx()), rtol=1e-8)


@pytest.mark.parametrize("formula", ["x + z + f + (1 | g1) + (1 | g2)", "x + (1 | g2)"])
def test_theta_slopes_match_finite_differences(formula):
    """∂(û, β̂)/∂θ of the joint mode from its factor against central differences over θ."""
    m = GeneralizedLinearMixedModel(f"y01 ~ {formula}", _crossed(), family=Binomial())
    ntheta = m.design.theta_lower().size
    theta = np.array([0.9, 0.6])[:ntheta]
    q = m.design.q
    res = m.pirls.fit_ub(theta, np.zeros(q), np.zeros(m.p))
    J = m.pirls.theta_slopes(theta, res.u)
    assert J is not None and J.shape == (q + m.p, ntheta)
    h = 1e-5
    for j in range(ntheta):
        e = np.zeros(ntheta)
        e[j] = h
        up = m.pirls.fit_ub(theta + e, res.u, res.beta)
        dn = m.pirls.fit_ub(theta - e, res.u, res.beta)
        fd = (np.r_[up.u, up.beta] - np.r_[dn.u, dn.beta]) / (2 * h)
        np.testing.assert_allclose(J[:, j], fd, rtol=1e-5, atol=1e-6)
    # a θ on its bound gets slope 0; no joint factor, no slopes
    m.pirls.fit_ub(np.r_[0.0, theta[1:]], res.u, res.beta)
    assert np.all(m.pirls.theta_slopes(np.r_[0.0, theta[1:]], res.u)[:, 0] == 0.0)
    fresh = GeneralizedLinearMixedModel(f"y01 ~ {formula}", _crossed(), family=Binomial())
    assert fresh.pirls.theta_slopes(theta, res.u) is None
