"""glmer's user-facing API: response forms, families as objects, weights and offsets,
simulate, refit, summary, and clear errors for bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import mixedfx as mfx
from mixedfx.families import Binomial, Gamma, Poisson, get_family

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return mfx.datasets.load("cbpp")


@pytest.fixture(scope="module")
def g_cbpp(cbpp):
    return mfx.glmer(CBPP, cbpp, family="binomial")


def _binary(seed=0, n=300):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 20, n)
    x = rng.normal(size=n)
    b = rng.normal(scale=0.8, size=20)
    p = 1 / (1 + np.exp(-(-0.3 + 0.8 * x + b[g])))
    return pd.DataFrame(
        {"y": (rng.uniform(size=n) < p).astype(int), "x": x, "g": [f"s{i}" for i in g]}
    )


def test_proportions_with_weights_equal_cbind(cbpp, g_cbpp):
    """lme4's two ways of giving binomial counts give the same fit."""
    df = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    g2 = mfx.glmer("prop ~ period + (1 | herd)", df, family="binomial", weights="size")
    assert g2.objective == pytest.approx(g_cbpp.objective, rel=1e-10)
    np.testing.assert_allclose(g2.beta, g_cbpp.beta, rtol=1e-6)
    np.testing.assert_allclose(g2.fitted, g_cbpp.fitted, rtol=1e-6)


def test_binary_response_forms():
    df = _binary()
    g_int = mfx.glmer("y ~ x + (1 | g)", df, family="binomial")
    g_bool = mfx.glmer("y ~ x + (1 | g)", df.assign(y=df["y"].astype(bool)), family="binomial")
    fac = pd.Categorical(np.where(df["y"] == 1, "yes", "no"), categories=["no", "yes"])
    g_fac = mfx.glmer("y ~ x + (1 | g)", df.assign(y=fac), family="binomial")
    g_pl = mfx.glmer("y ~ x + (1 | g)", pl.from_pandas(df), family=Binomial())
    for other in (g_bool, g_fac, g_pl):
        assert other.objective == pytest.approx(g_int.objective, rel=1e-12)
        np.testing.assert_allclose(other.beta, g_int.beta, rtol=1e-8)
    # a factor's first level is "failure", as in R: reversing the levels flips the signs
    rev = pd.Categorical(fac.astype(str), categories=["yes", "no"])
    g_rev = mfx.glmer("y ~ x + (1 | g)", df.assign(y=rev), family="binomial")
    np.testing.assert_allclose(g_rev.beta, -g_int.beta, rtol=1e-5, atol=1e-7)


def test_family_objects_and_links():
    df = _binary()
    a = mfx.glmer("y ~ x + (1 | g)", df, family=Binomial(link="probit"))
    b = mfx.glmer("y ~ x + (1 | g)", df, family=mfx.families.get_family("binomial", "probit"))
    assert a.objective == b.objective
    assert a.family == Binomial("probit") and a.family != Binomial()
    assert "binomial  ( probit )" in str(a.summary())


def test_offset_column_array_and_formula():
    rng = np.random.default_rng(5)
    n = 200
    g = rng.integers(0, 15, n)
    expo = rng.uniform(1, 10, n)
    lam = expo * np.exp(0.2 + rng.normal(scale=0.5, size=15)[g])
    df = pd.DataFrame({"y": rng.poisson(lam), "g": g.astype(str), "logE": np.log(expo)})
    a = mfx.glmer("y ~ 1 + (1 | g)", df, family="poisson", offset="logE")
    b = mfx.glmer("y ~ 1 + (1 | g)", df, family="poisson", offset=np.log(expo))
    c = mfx.glmer("y ~ 1 + offset(logE) + (1 | g)", df, family="poisson")
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    assert a.objective == pytest.approx(c.objective, rel=1e-12)
    np.testing.assert_allclose(a.linear_predictor, c.linear_predictor, rtol=1e-9)


def test_simulate_reproducible_and_moments(g_cbpp):
    s1 = g_cbpp.simulate(nsim=400, seed=11)
    s2 = g_cbpp.simulate(nsim=400, seed=11)
    assert s1.shape == (g_cbpp.nobs, 400)
    np.testing.assert_array_equal(s1, s2)
    # proportions of whole numbers of trials
    trials = g_cbpp.prior_weights
    k = s1 * trials[:, None]
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    # with the conditional modes fixed (use_u), the mean is the fitted probability
    s3 = g_cbpp.simulate(nsim=4000, seed=3, use_u=True)
    p = g_cbpp.fitted
    se = np.sqrt(p * (1 - p) / trials / 4000)
    assert np.all(np.abs(s3.mean(axis=1) - p) < 5 * se + 1e-12)


def test_refit_same_response_same_fit(g_cbpp):
    g2 = g_cbpp.refit(g_cbpp.y)
    assert g2.objective == pytest.approx(g_cbpp.objective, rel=1e-9)
    np.testing.assert_allclose(
        g2.beta, g_cbpp.beta, atol=1e-4 * g_cbpp.coefficients["std_error"].max()
    )
    sim = g_cbpp.simulate(1, seed=2)[:, 0]
    g3 = g_cbpp.refit(sim)
    fresh = mfx.glmer(
        "prop ~ period + (1 | herd)",
        mfx.datasets.load("cbpp").assign(prop=sim),
        family="binomial",
        weights=g_cbpp.prior_weights,
    )
    assert g3.objective == pytest.approx(fresh.objective, rel=1e-8)


def test_summary_layout(g_cbpp):
    text = str(g_cbpp.summary())
    assert text.startswith(
        "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)"
    )
    assert " Family: binomial  ( logit )" in text
    assert re.search(r"AIC\s+BIC\s+logLik\s+deviance\s+df.resid", text)
    assert "Residual" not in text  # no dispersion parameter
    assert re.search(r"Estimate Std. Error z value Pr\(>\|z\|\)", text)
    assert "Number of obs: 56, groups:  herd, 15" in text
    agq = mfx.glmer(CBPP, mfx.datasets.load("cbpp"), nAGQ=9)
    assert "(Adaptive Gauss-Hermite Quadrature, nAGQ = 9)" in str(agq.summary())


def test_gamma_summary_has_residual_and_t():
    rng = np.random.default_rng(8)
    g = rng.integers(0, 10, 150)
    mu = np.exp(1 + rng.normal(scale=0.3, size=10)[g])
    df = pd.DataFrame({"y": rng.gamma(5, mu / 5), "g": g.astype(str)})
    m = mfx.glmer("y ~ 1 + (1 | g)", df, family=Gamma(link="log"))
    text = str(m.summary())
    assert "Residual" in text and "t value" in text
    assert "p_value" not in m.coefficients.columns  # lme4 prints no p-value for these


def test_residual_types(g_cbpp):
    r = g_cbpp.resid("pearson")
    p = g_cbpp.fitted
    np.testing.assert_allclose(
        r, (g_cbpp.y - p) * np.sqrt(g_cbpp.prior_weights) / np.sqrt(p * (1 - p)), rtol=1e-12
    )
    d = g_cbpp.residuals
    assert np.sum(d**2) == pytest.approx(g_cbpp.conditional_deviance, rel=1e-10)
    with pytest.raises(mfx.ModelError, match="unknown residual type 'raw'"):
        g_cbpp.resid("raw")


# ---------------------------------------------------------------- bad input
def test_binomial_response_outside_unit_interval():
    df = _binary().assign(y=lambda d: d["y"] * 2.0)
    with pytest.raises(mfx.DataError, match=r"binomial response 'y' must be 0/1.*row \d+ has 2"):
        mfx.glmer("y ~ x + (1 | g)", df, family="binomial")


def test_non_integer_successes(cbpp):
    df = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"] * 0.97)
    with pytest.raises(mfx.DataError, match="whole numbers of successes; row 1"):
        mfx.glmer("prop ~ period + (1 | herd)", df, family="binomial", weights="size")


def test_negative_counts_poisson():
    df = pd.DataFrame({"y": [1, 2, -1, 3] * 10, "g": list("abcde") * 8})
    with pytest.raises(
        mfx.DataError, match=r"negative values are not allowed for the poisson family.*row 3 has -1"
    ):
        mfx.glmer("y ~ 1 + (1 | g)", df, family="poisson")


def test_non_integer_counts_poisson():
    df = pd.DataFrame({"y": [1, 2.5, 1, 3] * 10, "g": list("abcde") * 8})
    with pytest.raises(mfx.DataError, match=r"must be counts.*row 2 has 2\.5"):
        mfx.glmer("y ~ 1 + (1 | g)", df, family="poisson")


def test_negative_cbind_counts(cbpp):
    with pytest.raises(mfx.DataError, match="negative counts"):
        mfx.glmer("cbind(incidence, incidence - size) ~ period + (1 | herd)", cbpp)


def test_gamma_non_positive():
    df = pd.DataFrame({"y": [1.0, 0.0, 2.0, 3.0] * 10, "g": list("abcde") * 8})
    with pytest.raises(
        mfx.DataError, match="non-positive values are not allowed for the Gamma family"
    ):
        mfx.glmer("y ~ 1 + (1 | g)", df, family="Gamma")


def test_nagq_needs_one_scalar_term(cbpp):
    df = _binary()
    with pytest.raises(
        mfx.ModelError, match=r"nAGQ > 1 .* single scalar random-effects term.*\(1 \+ x \| g\)"
    ):
        mfx.glmer("y ~ x + (1 + x | g)", df, nAGQ=5)
    df["h"] = np.arange(len(df)) % 7
    with pytest.raises(mfx.ModelError, match="single scalar"):
        mfx.glmer("y ~ x + (1 | g) + (1 | h)", df, nAGQ=3)
    with pytest.raises(mfx.ModelError, match="nAGQ must be"):
        mfx.glmer(CBPP, cbpp, nAGQ=-1)


def test_unknown_family_and_link(cbpp):
    with pytest.raises(mfx.ModelError, match="unknown family 'binomal'"):
        mfx.glmer(CBPP, cbpp, family="binomal")
    with pytest.raises(
        mfx.ModelError, match="link 'inverse' is not available for the binomial family"
    ):
        Binomial(link="inverse")
    with pytest.raises(mfx.ModelError, match=r"use mixedfx\.lmer"):
        get_family("gaussian")
    with pytest.raises(mfx.FormulaError, match="cbind"):
        mfx.glmer(CBPP, cbpp, family=Poisson())


def test_factor_response_needs_two_levels():
    df = _binary().assign(y="yes")
    with pytest.raises(mfx.DataError, match="factor with 1 level"):
        mfx.glmer("y ~ x + (1 | g)", df)


def test_no_warnings_on_clean_fit(cbpp):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mfx.glmer(CBPP, cbpp)
