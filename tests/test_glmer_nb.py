"""Negative binomial GLMMs: the family (MASS's ``negative.binomial``), glmer at a fixed θ and
glmer_nb (lme4's ``glmer.nb``) against R.

References: ``tests/reference/issue14.json`` (``glmer_nb``, made by
``make_issue14_reference.R``, lme4 1.1-31). For each case (grouseticks with centred and raw
HEIGHT, Salamanders):

* ``fixed_theta.tight``: ``glmer(..., family = MASS::negative.binomial(1.5))`` with PIRLS run
  to convergence (``tolPwrss = 1e-12``), the fit mixedfx's fully converged PIRLS reproduces;
* ``profile_tight``: θ profiled to high precision (``optimize(tol = 1e-9)`` over log θ, inner
  glmer tight), the lowest −2 log L reachable, with its θ, β and SEs;
* ``default``: lme4's ``glmer.nb`` itself (its −2 log L, AIC, df, family line).

Tolerances (the issue's): −2 log L within 1e-5 relative of the best reference *or lower*, the
NB shape and the random-effect θ within 1e-3 relative, β within 1e-3 of a standard error;
standard errors within 2e-3 relative (finite-difference Hessians on both sides).
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from mixedfx.cli import main
from mixedfx.families import NegativeBinomial

REF = pathlib.Path(__file__).parent / "reference"
NB = json.loads((REF / "issue14.json").read_text())["glmer_nb"]
CASES = {c["id"]: c for c in NB["cases"]}


def load_reference_data(name: str) -> pd.DataFrame:
    """A data set of tests/reference/data with its schema's factor levels."""
    schema = json.loads((REF / "data" / f"{name}.schema.json").read_text())
    factors = [c for c in schema["columns"] if c["type"] == "factor"]
    df = pd.read_csv(REF / "data" / f"{name}.csv", dtype={c["name"]: str for c in factors})
    for c in factors:
        df[c["name"]] = pd.Categorical(df[c["name"]], categories=c["levels"])
    return df


def data_for(case: dict) -> pd.DataFrame:
    if case["dataset"] == "grouseticks":
        return mfx.datasets.load("grouseticks")
    return load_reference_data(case["dataset"])


_NB_FITS: dict[str, mfx.NegativeBinomialMixedModel] = {}


def nb_fit(cid: str) -> mfx.NegativeBinomialMixedModel:
    if cid not in _NB_FITS:
        c = CASES[cid]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.ConvergenceWarning)  # raw HEIGHT: lme4 warns too
            _NB_FITS[cid] = mfx.glmer_nb(c["formula"], data_for(c))
    return _NB_FITS[cid]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


# ------------------------------------------------------------------ the family
def test_family_formulas():
    fam = NegativeBinomial(2.5)
    y = np.array([0.0, 1.0, 3.0, 10.0])
    mu = np.array([0.5, 1.2, 2.0, 7.0])
    wt = np.array([1.0, 2.0, 1.0, 0.5])
    th = 2.5
    assert np.allclose(fam.variance(mu), mu + mu**2 / th)
    # MASS: 2 wt (y log(pmax(1, y)/mu) - (y + th) log((y + th)/(mu + th)))
    dev = 2 * wt * (y * np.log(np.maximum(1, y) / mu) - (y + th) * np.log((y + th) / (mu + th)))
    assert np.allclose(fam.dev_resids(y, mu, wt), dev)
    # aic is -2 log-likelihood: scipy's nbinom with n = θ, p = θ/(θ + μ)
    ll = stats.nbinom.logpmf(y, th, th / (th + mu))
    assert fam.aic(y, np.ones(4), mu, wt, 0.0) == pytest.approx(-2 * np.sum(wt * ll), rel=1e-12)
    # aic − Σ d_i does not depend on μ (the saturated constant the engine uses)
    c0 = fam.saturated_aic(y, np.ones(4), wt)
    for m in (mu, 2 * mu + 0.3):
        total = fam.aic(y, np.ones(4), m, wt, 0.0) - fam.dev_resids(y, m, wt).sum()
        assert total == pytest.approx(c0, rel=1e-12)
    assert np.allclose(fam.mustart(y, wt), y + (y == 0) / 6)
    assert fam.name == "negative.binomial"
    assert not fam.canonical  # log is not NB's canonical link: PIRLS iterates tightly
    assert fam == NegativeBinomial(2.5) and fam != NegativeBinomial(2.6)
    assert NegativeBinomial(1.5, link="sqrt").link.name == "sqrt"


@pytest.mark.parametrize(
    ("theta", "label"),
    [(0.941908855837496, "Negative Binomial(0.9419)"), (1.5, "Negative Binomial(1.5)"),
     (3.30752079852123, "Negative Binomial(3.3075)"), (100.0, "Negative Binomial(100)")],
)  # fmt: skip
def test_family_label_is_r_s(theta, label):
    assert NegativeBinomial(theta).label == label


def test_family_simulate_and_theta_ml():
    rng = np.random.default_rng(1)
    mu = np.full(200_000, 3.0)
    y = NegativeBinomial(2.0).simulate(mu, np.ones_like(mu), rng)
    assert y.mean() == pytest.approx(3.0, rel=0.01)
    assert y.var() == pytest.approx(3.0 + 9.0 / 2.0, rel=0.02)
    assert np.all(y == np.round(y))
    # MASS::theta.ml recovers the shape from known means
    assert NegativeBinomial.theta_ml(y, mu) == pytest.approx(2.0, rel=0.03)


@pytest.mark.parametrize("theta", [0, -1.0, math.inf, math.nan, "a", None, True])
def test_family_rejects_a_bad_theta(theta):
    with pytest.raises(mfx.ModelError, match="theta"):
        NegativeBinomial(theta)


def test_family_rejects_a_bad_link_and_bad_counts():
    with pytest.raises(mfx.ModelError, match="link 'logit'"):
        NegativeBinomial(1.0, link="logit")
    fam = NegativeBinomial(1.0)
    with pytest.raises(mfx.DataError, match="negative values"):
        fam.check_response(np.array([1.0, -1.0]), "y")
    with pytest.raises(mfx.DataError, match="whole numbers"):
        fam.check_response(np.array([1.0, 1.5]), "y")


# ------------------------------------------------------------ glmer at fixed θ
@pytest.mark.parametrize("cid", ["grouseticks_cHEIGHT", "salamanders"])
def test_glmer_with_theta_fixed_matches_lme4(cid):
    c = CASES[cid]
    ref = c["fixed_theta"]["tight"]
    m = mfx.glmer(c["formula"], data_for(c), family=NegativeBinomial(c["fixed_theta"]["nb_theta"]))
    assert m.objective <= ref["minus2logLik"] * (1 + 1e-5)
    assert m.objective == pytest.approx(ref["minus2logLik"], rel=1e-8)
    assert rel(m.theta, ref["theta"]) < 1e-3
    se = np.array(ref["fixef"]["std_error"])
    assert np.max(np.abs(m.beta - ref["fixef"]["estimate"]) / se) < 1e-3
    assert rel(m.coefficients["std_error"], se) < 2e-3
    assert m.family.label == ref["family"]
    assert f"Family: {ref['family']}  ( log )" in str(m.summary())


# ------------------------------------------------------------------- glmer_nb
@pytest.mark.parametrize("cid", ["grouseticks_cHEIGHT", "grouseticks_HEIGHT", "salamanders"])
def test_glmer_nb_reaches_lme4_s_optimum(cid):
    c = CASES[cid]
    best, default = c["profile_tight"], c["default"]
    m = nb_fit(cid)
    assert isinstance(m, mfx.GeneralizedLinearMixedModel)
    # −2 log L: as low as the tightest profile of θ, and below lme4's own glmer.nb
    assert m.objective <= best["minus2logLik"] * (1 + 1e-5)
    assert m.objective <= default["minus2logLik"] + 1e-6
    assert m.family.theta == pytest.approx(best["nb_theta"], rel=1e-3)
    assert m.nb_theta == m.family.theta
    assert m.family.theta == pytest.approx(default["nb_theta"], rel=1e-3)
    assert rel(m.theta, best["theta"]) < 1e-3
    se = np.array(best["fixef"]["std_error"])
    assert np.max(np.abs(m.beta - best["fixef"]["estimate"]) / se) < 1e-3
    assert rel(m.coefficients["std_error"], se) < 2e-3
    # lme4 counts the NB shape among the parameters (logLik df, AIC)
    assert m.npar == default["logLik_df"]
    assert m.aic == pytest.approx(m.objective + 2 * default["logLik_df"])
    assert m.aic <= default["AIC"] + 1e-6
    assert m.theta_search.nevals >= 3
    assert m.theta_search.table["deviance"].min() == pytest.approx(m.objective, abs=1e-6)


def test_glmer_nb_summary_prints_r_s_family_line():
    c = CASES["salamanders"]
    text = str(nb_fit("salamanders").summary())
    assert c["default"]["family_line"] in text  # Family: Negative Binomial(0.9419)  ( log )
    assert "Laplace Approximation" in text
    assert "Negative Binomial(0.9419)" in repr(nb_fit("salamanders"))


def test_glmer_nb_methods_keep_theta():
    """predict, simulate, confint (Wald), the bootstrap, refit and update: every copy keeps
    the family, hence θ̂ (lme4's refit/update/bootMer of a glmer.nb fit do the same)."""
    m = nb_fit("grouseticks_cHEIGHT")
    th = m.family.theta
    g = mfx.datasets.load("grouseticks")
    eta = m.predict(g.head(5), re_form=None)
    X = m.design.X[:5]
    assert np.allclose(eta, X @ m.beta)
    assert np.allclose(m.predict(g.head(5), type="response"), np.exp(m.predict(g.head(5))))
    y = m.simulate(nsim=3, seed=1)
    assert y.shape == (m.n, 3) and np.all(y == np.round(y)) and np.all(y >= 0)
    assert np.array_equal(y, m.simulate(nsim=3, seed=1))
    ci = m.confint(method="wald")
    se = m.coefficients["std_error"].to_numpy()
    assert np.allclose(ci.iloc[1:, 1] - ci.iloc[1:, 0], 2 * 1.959963984540054 * se)
    r = m.refit(y[:, 0])
    assert r.family.theta == th and r.npar == m.npar
    u = m.update(". ~ . - cHEIGHT")
    assert isinstance(u, mfx.NegativeBinomialMixedModel) and u.family.theta == th
    b = m.bootstrap(nsim=2, seed=3)
    assert b.table.shape == (2, 5) and b.nfailed == 0


def test_glmer_nb_anova_counts_the_shape():
    m1 = nb_fit("grouseticks_cHEIGHT")
    m0 = mfx.glmer_nb("TICKS ~ YEAR + (1 | BROOD)", mfx.datasets.load("grouseticks"))
    a = mfx.anova(m0, m1)
    assert list(a.table["npar"]) == [5, 6]  # lme4: β, θ and the NB shape
    assert a.table["chisq"].iloc[1] == pytest.approx(m0.objective - m1.objective)
    assert a.table["aic"].iloc[1] == pytest.approx(m1.aic)


def test_glmer_nb_bad_input():
    g = mfx.datasets.load("grouseticks")
    f = "TICKS ~ YEAR + (1 | BROOD)"
    with pytest.raises(mfx.ModelError, match="tol"):
        mfx.glmer_nb(f, g, tol=0)
    with pytest.raises(mfx.ModelError, match="theta_start"):
        mfx.glmer_nb(f, g, theta_start=-1)
    with pytest.raises(mfx.ModelError, match="interval"):
        mfx.glmer_nb(f, g, theta_start=1.0, interval=(1.0, 0.0))
    with pytest.raises(mfx.ModelError, match="link"):
        mfx.glmer_nb(f, g, link="logit")
    g2 = g.assign(TICKS=g["TICKS"] + 0.5)
    with pytest.raises(mfx.DataError, match="counts"):
        mfx.glmer_nb(f, g2)


def test_command_line_fit_negbin(capsys, tmp_path):
    out = tmp_path / "nb.json"
    c = CASES["grouseticks_cHEIGHT"]
    code = main(["fit", "grouseticks", c["formula"], "--family", "negbin", "--json", str(out)])
    assert code == 0
    assert c["default"]["family_line"] in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["family"] == "negative.binomial"
    assert payload["nb_theta"] == pytest.approx(c["profile_tight"]["nb_theta"], rel=1e-3)
    assert payload["objective"] <= c["profile_tight"]["minus2logLik"] * (1 + 1e-5)
