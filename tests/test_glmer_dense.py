"""glmer's criterion against independent dense computations.

* The Laplace approximation at arbitrary (θ, β): the conditional mode found by a dense Newton
  iteration on the penalized deviance, then aic + ‖û‖² + log det(Λ'Z'WZΛ + I).
* Adaptive Gauss–Hermite quadrature against the exact integrals by ``scipy.integrate.quad``.
* The compiled GLM kernel against the numpy family methods, the families against scipy.stats.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import mixedfx as mfx
from mixedfx.families import Binomial, Gamma, InverseGaussian, Link, Poisson
from mixedfx.glm.pirls_kernels import glm_working
from mixedfx.linalg.crossprod import term_matrix
from mixedfx.linalg.factor import lambda_blocks
from mixedfx.models.glmer import GeneralizedLinearMixedModel


def _data(seed: int = 3, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    bg = rng.normal(scale=0.7, size=12)
    sg = rng.normal(scale=0.3, size=12)
    bh = rng.normal(scale=0.4, size=5)
    eta = 0.3 + 0.5 * x + bg[g] + sg[g] * x + bh[h]
    return pd.DataFrame(
        {
            "g": [f"g{i:02d}" for i in g],
            "h": [f"h{i}" for i in h],
            "x": x,
            "count": rng.poisson(np.exp(eta)),
            "y01": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
            "pos": rng.gamma(4.0, np.exp(eta) / 4.0),
        }
    )


def dense_laplace(model: GeneralizedLinearMixedModel, theta, beta) -> float:
    """−2 log-likelihood by Laplace, computed densely from scratch."""
    d = model.design
    lams = lambda_blocks(np.asarray(theta, float), [t.k for t in d.terms])
    ZL = np.hstack(
        [
            term_matrix(t).toarray() @ np.kron(np.eye(t.nlevels), lam)
            for t, lam in zip(d.terms, lams, strict=True)
        ]
    )
    fam, y, wt = model.family, model.y, model.prior_weights
    fixed = d.X @ beta + (d.offset if d.offset is not None else 0.0)
    u = np.zeros(ZL.shape[1])
    for _ in range(100):  # Fisher scoring on the penalized deviance, dense
        eta = fixed + ZL @ u
        mu, dmu = fam.linkinv(eta), fam.mu_eta(eta)
        var = fam.variance(mu)
        H = ZL.T @ ((wt * dmu * dmu / var)[:, None] * ZL) + np.eye(u.size)
        grad = ZL.T @ (wt * (y - mu) * dmu / var) - u
        step = np.linalg.solve(H, grad)
        u = u + step
        if np.max(np.abs(step)) < 1e-13:
            break
    eta = fixed + ZL @ u
    mu, dmu = fam.linkinv(eta), fam.mu_eta(eta)
    H = ZL.T @ ((wt * dmu * dmu / fam.variance(mu))[:, None] * ZL) + np.eye(u.size)
    dev = fam.dev_resids(y, mu, wt).sum()
    aic = fam.aic(y, np.ones_like(y), mu, wt, dev)
    return aic + u @ u + np.linalg.slogdet(H)[1]


@pytest.mark.parametrize(
    ("formula", "family"),
    [
        ("count ~ x + (1 + x | g) + (1 | h)", Poisson()),
        ("y01 ~ x + (1 | g) + (1 | h)", Binomial()),
        ("y01 ~ x + (1 | g) + (0 + x | g)", Binomial(link="probit")),
        ("pos ~ x + (1 | g)", Gamma(link="log")),
    ],
)
def test_laplace_matches_dense(formula, family):
    df = _data()
    m = GeneralizedLinearMixedModel(formula, df, family=family)
    rng = np.random.default_rng(1)
    lower = m.design.theta_lower()
    for _ in range(3):
        theta = np.where(
            lower == 0, rng.uniform(0.2, 1.5, lower.size), rng.normal(0, 0.3, lower.size)
        )
        beta = rng.normal(0, 0.3, m.p)
        res = m.pirls.fit_u(theta, beta, np.zeros(m.design.q))
        assert res.converged
        assert m.engine.criterion(theta, res) == pytest.approx(
            dense_laplace(m, theta, beta), rel=1e-10
        )


def test_agq_matches_quadrature():
    """nAGQ = 25 reproduces the exact marginal likelihood (1-D integrals by quad); nAGQ = 1 is
    the Laplace approximation."""
    df = _data(n=150)
    m25 = GeneralizedLinearMixedModel("y01 ~ x + (1 | g)", df, nAGQ=25)
    m1 = GeneralizedLinearMixedModel("y01 ~ x + (1 | g)", df, nAGQ=1)
    theta, beta = np.array([0.9]), np.array([0.2, 0.6])
    t = m25.design.terms[0]
    fixed = m25.design.X @ beta
    y = m25.y
    exact = 0.0
    for j in range(t.nlevels):
        rows = t.refs == j

        def integrand(u, rows=rows):
            p = 1 / (1 + np.exp(-(fixed[rows] + theta[0] * u)))
            return np.prod(np.where(y[rows] == 1, p, 1 - p)) * stats.norm.pdf(u)

        val, _ = integrate.quad(integrand, -12, 12, epsabs=1e-14, epsrel=1e-12, limit=200)
        exact += -2 * math.log(val)
    res = m25.pirls.fit_u(theta, beta, np.zeros(m25.design.q))
    assert m25.engine.criterion(theta, res) == pytest.approx(exact, rel=1e-9)
    res1 = m1.pirls.fit_u(theta, beta, np.zeros(m1.design.q))
    laplace = m1.engine.criterion(theta, res1)
    assert laplace == pytest.approx(dense_laplace(m1, theta, beta), rel=1e-10)
    assert abs(laplace - exact) > 1e-3  # the quadrature does change the value


def test_nagq0_stage_is_joint_mode():
    """nAGQ = 0: β and u jointly minimize the penalized deviance at θ (gradient zero)."""
    df = _data()
    g = mfx.glmer("count ~ x + (1 | g) + (1 | h)", df, family="poisson", nAGQ=0)
    d = g.design
    lams = lambda_blocks(g.theta, [t.k for t in d.terms])
    ZL = np.hstack(
        [term_matrix(t).toarray() * lam[0, 0] for t, lam in zip(d.terms, lams, strict=True)]
    )
    mu = np.exp(d.X @ g.beta + ZL @ g.engine.u)
    grad_b = d.X.T @ (g.y - mu)
    grad_u = ZL.T @ (g.y - mu) - g.engine.u
    assert np.max(np.abs(grad_b)) < 1e-6
    assert np.max(np.abs(grad_u)) < 1e-6
    full = mfx.glmer("count ~ x + (1 | g) + (1 | h)", df, family="poisson")
    assert full.objective <= g.objective + 1e-9


FAMILY_LINKS = [
    (Binomial, "logit"),
    (Binomial, "probit"),
    (Binomial, "cloglog"),
    (Binomial, "log"),
    (Poisson, "log"),
    (Poisson, "identity"),
    (Poisson, "sqrt"),
    (Gamma, "inverse"),
    (Gamma, "log"),
    (Gamma, "identity"),
    (InverseGaussian, "1/mu^2"),
    (InverseGaussian, "log"),
    (InverseGaussian, "inverse"),
]


def _family_data(cls, rng, n=200):
    if cls is Binomial:
        return rng.integers(0, 2, n).astype(float), rng.uniform(0.05, 0.95, n)
    if cls is Poisson:
        return rng.poisson(3.0, n).astype(float), rng.uniform(0.5, 6, n)
    return rng.gamma(3.0, 1.0, n), rng.uniform(0.5, 6, n)


@pytest.mark.parametrize(("cls", "link"), FAMILY_LINKS)
def test_kernel_matches_family_methods(cls, link):
    rng = np.random.default_rng(7)
    fam = cls(link=link)
    y, mu0 = _family_data(cls, rng)
    if cls is Binomial and link == "log":
        mu0 = mu0 * 0.9
    eta = fam.linkfun(mu0)
    wt = rng.uniform(0.5, 2.0, y.size)
    mu, sw, wr = np.empty_like(y), np.empty_like(y), np.empty_like(y)
    dev = glm_working(fam.code, fam.link.code, eta, y, wt, mu, sw, wr, True)
    np.testing.assert_allclose(mu, fam.linkinv(eta), rtol=1e-14)
    np.testing.assert_allclose(mu, mu0, rtol=1e-12)
    dmu = fam.mu_eta(eta)
    np.testing.assert_allclose(sw**2, wt * dmu**2 / fam.variance(mu), rtol=1e-12)
    np.testing.assert_allclose(wr, (y - mu) / dmu, rtol=1e-12)
    assert dev == pytest.approx(fam.dev_resids(y, mu, wt).sum(), rel=1e-12)
    # dμ/dη by central differences
    h = 1e-6
    num = (fam.linkinv(eta + h) - fam.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(dmu, num, rtol=1e-6)


def test_family_log_densities_against_scipy():
    rng = np.random.default_rng(2)
    n = 50
    trials = rng.integers(1, 20, n).astype(float)
    k = rng.binomial(trials.astype(int), 0.3)
    mu = rng.uniform(0.1, 0.9, n)
    b = Binomial()
    aic = b.aic(k / trials, trials, mu, trials, 0.0)
    assert aic == pytest.approx(-2 * stats.binom.logpmf(k, trials, mu).sum(), rel=1e-12)
    yc = rng.poisson(4, n).astype(float)
    lam = rng.uniform(1, 8, n)
    assert Poisson().aic(yc, np.ones(n), lam, np.ones(n), 0.0) == pytest.approx(
        -2 * stats.poisson.logpmf(yc, lam).sum(), rel=1e-12
    )
    yg = rng.gamma(2.0, 1.5, n)
    mg = rng.uniform(1, 5, n)
    gam = Gamma()
    dev = gam.dev_resids(yg, mg, np.ones(n)).sum()
    disp = dev / n
    ref = -2 * stats.gamma.logpdf(yg, 1 / disp, scale=mg * disp).sum() + 2
    assert gam.aic(yg, np.ones(n), mg, np.ones(n), dev) == pytest.approx(ref, rel=1e-12)
    # binomial deviance residuals: 2 (log p(y | y) − log p(y | μ)) per observation
    sat = stats.binom.logpmf(k, trials, k / trials)
    np.testing.assert_allclose(
        b.dev_resids(k / trials, mu, trials),
        2 * (sat - stats.binom.logpmf(k, trials, mu)),
        rtol=1e-10,
    )


def test_saturated_constant():
    """aic = Σ d_i + C for binomial and Poisson, with C computed once."""
    rng = np.random.default_rng(4)
    y = rng.poisson(2, 40).astype(float)
    mu = rng.uniform(0.5, 4, 40)
    wt = np.ones(40)
    p = Poisson()
    c = p.saturated_aic(y, wt, wt)
    assert p.aic(y, wt, mu, wt, 0.0) == pytest.approx(p.dev_resids(y, mu, wt).sum() + c, rel=1e-12)
    assert Gamma().saturated_aic(y + 1, wt, wt) is None


def test_links_round_trip():
    for name in Link.NAMES:
        link = Link(name)
        mu = (
            np.linspace(0.05, 0.95, 19)
            if name in ("logit", "probit", "cloglog")
            else np.linspace(0.2, 5, 19)
        )
        np.testing.assert_allclose(link.linkinv(link.linkfun(mu)), mu, rtol=1e-12)


@pytest.mark.parametrize("family", [Binomial(), Poisson(), Binomial(link="cloglog")])
def test_compiled_pirls_matches_blocked_factor_path(family):
    """All-scalar models run PIRLS compiled end to end; it must agree with the iteration
    through BlockedFactor (u alone, and u with β)."""
    df = _data()
    resp = "count" if isinstance(family, Poisson) else "y01"
    m = GeneralizedLinearMixedModel(f"{resp} ~ x + (1 | g) + (1 | h)", df, family=family)
    assert m.pirls.compiled
    theta, beta = np.array([0.8, 0.5]), np.array([0.1, 0.4])
    q = m.design.q
    a = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=True)
    b = m.pirls.fit_u(theta, beta, np.zeros(q), compiled=False)
    np.testing.assert_allclose(a.u, b.u, atol=1e-9)
    assert a.logdet_L == pytest.approx(b.logdet_L, rel=1e-11)
    assert a.pdev == pytest.approx(b.pdev, rel=1e-11)
    np.testing.assert_allclose(a.L11, b.L11 if b.L11 is not None else m.pirls.factor_u.L11[:, 0, 0])
    c = m.pirls.fit_ub(theta, np.zeros(q), beta, compiled=True)
    d = m.pirls.fit_ub(theta, np.zeros(q), beta, compiled=False)
    np.testing.assert_allclose(c.beta, d.beta, atol=1e-8)
    np.testing.assert_allclose(c.u, d.u, atol=1e-8)
    assert c.logdet_L == pytest.approx(d.logdet_L, rel=1e-10)
