"""glmer agrees with lme4 1.1-31.

Three sets of lme4 values:

* ``tests/data/lme4_cases.json``: the shared reference fits (lme4's defaults) of cbpp (Laplace
  and nAGQ = 9), grouseticks and VerbAgg.
* ``tests/reference/glmm_small.json``: simulated Poisson-with-offset, probit, cloglog, logit,
  Gamma and inverse Gaussian data sets, and cbpp, with lme4's defaults.
* ``tests/reference/glmm_tight.json`` (made by ``make_glmm_tight.R``): the same models refitted
  by lme4 with PIRLS iterated to convergence (``tolPwrss = 1e-12``).

lme4's default PIRLS tolerance (a relative change of 1e-7 in the penalized deviance) leaves its
Laplace criterion off by up to ~5e-4 (cbpp), which moves its optimum by ~1.4e-3 standard errors
and its finite-difference standard errors by ~1%. mixedfx converges PIRLS fully, so its criterion
is lme4's with ``tolPwrss = 1e-12``, to rounding. Hence: against lme4's defaults, the objective
within 1e-5 relative *or lower* and θ within 1e-3 relative (the issue's tolerances); fixed
effects within 1e-3 of a standard error where lme4's default fit is not moved by its PIRLS
tolerance, and otherwise against the converged lme4 fit, which also checks the standard errors
(2e-3 relative: both are finite-difference Hessians) and σ.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import case

REF = pathlib.Path(__file__).parent / "reference"
SMALL = {f["id"]: f for f in json.loads((REF / "glmm_small.json").read_text())["fits"]}
TIGHT = {f["id"]: f for f in json.loads((REF / "glmm_tight.json").read_text())["fits"]}
SHARED = ["cbpp_binomial", "cbpp_binomial_agq", "grouseticks_poisson", "verbagg_binomial"]
# lme4's default fit of these is moved by its PIRLS tolerance by more than 1e-3 SE: compare
# their fixed effects with the converged lme4 fit instead
MOVED_BY_TOLPWRSS = {
    "cbpp_binomial",
    "verbagg_binomial",
    "logit_binary",
    "cbpp_binomial_null",
    "gamma_log",
}

_FITS: dict[str, mfx.GeneralizedLinearMixedModel] = {}


def _spec(cid: str) -> dict:
    if cid in SMALL:
        return SMALL[cid]
    return case(cid)


def _data(spec: dict) -> pd.DataFrame:
    ds = spec["dataset"]
    if ds in ("cbpp", "grouseticks", "VerbAgg"):
        return mfx.datasets.load(ds)
    return pd.read_csv(REF / "data" / f"{ds}.csv")


def fit(cid: str) -> mfx.GeneralizedLinearMixedModel:
    if cid not in _FITS:
        spec = _spec(cid)
        df = _data(spec)
        fam = mfx.families.get_family(spec["family"], spec.get("link"))
        offset = np.log(df["expected"]) if spec.get("offset") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.SingularFitWarning)
            _FITS[cid] = mfx.glmer(
                spec["formula"], df, family=fam, nAGQ=spec["nAGQ"], offset=offset
            )
    return _FITS[cid]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.abs(b)


@pytest.mark.parametrize("cid", SHARED)
def test_shared_cases_objective_and_theta(cid):
    c = case(cid)
    g = fit(cid)
    assert g.nobs == c["nobs"]
    assert g.ngroups == c["ngroups"]
    assert g.theta_names == c["theta_names"]
    # within 1e-5 relative, or lower (lme4's default PIRLS tolerance leaves its value high)
    assert g.objective <= c["objective"] * (1 + 1e-5)
    assert g.objective >= c["objective"] * (1 - 1e-5)
    assert np.all(rel(g.theta, c["theta"]) < 1e-3)
    assert g.loglik == pytest.approx(-0.5 * g.objective)
    assert g.aic - g.objective == pytest.approx(c["AIC"] - c["objective"])
    assert g.bic - g.objective == pytest.approx(c["BIC"] - c["objective"])
    assert g.is_singular == c["singular"]


def test_verbagg_as_low_as_lme4():
    """lme4's default fit of VerbAgg stops with a higher criterion (its PIRLS tolerance);
    mixedfx's must be as low or lower, and equal to lme4's converged fit."""
    g = fit("verbagg_binomial")
    assert g.objective <= case("verbagg_binomial")["objective"]
    assert g.objective == pytest.approx(TIGHT["verbagg_binomial"]["objective"], rel=1e-9)


@pytest.mark.parametrize("cid", SHARED + sorted(set(SMALL) - {"invgauss_log_on_gamma_data"}))
def test_fixed_effects_against_lme4_defaults(cid):
    spec = _spec(cid)
    g = fit(cid)
    fe = spec["fixef"]
    assert list(g.fixef.index) == fe["names"]
    se = np.asarray(fe["std_error"])
    tol = 3e-3 if cid in MOVED_BY_TOLPWRSS else 1e-3
    if cid == "logit_binary":
        tol = 1e-2  # lme4's default stops 2.6e-3 above the optimum here (converged fit below)
    assert np.all(np.abs(g.beta - np.asarray(fe["estimate"])) < tol * se)
    assert g.objective <= spec["objective"] * (1 + 1e-5)


@pytest.mark.parametrize("cid", [k for k in TIGHT if k != "grouseticks_poisson"])
def test_against_converged_lme4(cid):
    """lme4 with tolPwrss = 1e-12: the same criterion, so the same optimum to rounding.
    (grouseticks is left out: lme4's bobyqa stage 2 does not converge on it with that
    tolerance; its default fit is compared above.)"""
    t = TIGHT[cid]
    g = fit(cid)
    assert g.objective == pytest.approx(t["objective"], rel=1e-7)
    assert np.all(rel(g.theta, t["theta"]) < 1e-4)
    se = np.asarray(t["fixef"]["std_error"])
    assert np.all(np.abs(g.beta - np.asarray(t["fixef"]["estimate"])) < 1e-3 * se)
    assert np.all(rel(g.coefficients["std_error"], se) < 2e-3)
    assert g.sigma == pytest.approx(t["sigma"], rel=1e-5)


@pytest.mark.parametrize("cid", ["gamma_log", "invgauss_log"])
def test_dispersion_families(cid):
    """Gamma and inverse Gaussian: σ from the Pearson residuals and ‖u‖² (lme4's
    convention), VarCorr's sd = θ σ, and σ counted as a parameter."""
    s = SMALL[cid]
    g = fit(cid)
    assert g.sigma == pytest.approx(s["sigma"], rel=1e-3)
    vc = g.varcorr
    assert list(vc["group"]) == ["g", "Residual"]
    assert vc["sdcor"].iloc[0] == pytest.approx(s["varcorr"][0]["stddev"][0], rel=1e-3)
    assert vc["sdcor"].iloc[0] == pytest.approx(g.theta[0] * g.sigma)
    assert g.npar == s["logLik_df"]
    assert g.aic == pytest.approx(g.objective + 2 * s["logLik_df"])


@pytest.mark.parametrize("cid", ["poisson_offset", "probit_binary", "cbpp_binomial"])
def test_conditional_modes_and_fitted(cid):
    s = SMALL[cid]
    g = fit(cid)
    head = s["ranef_head"]
    k = len(head["condval"])
    r = g.ranef()
    assert list(r["level"][:k]) == head["level"]
    np.testing.assert_allclose(r["condval"][:k], head["condval"], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(r["condsd"][:k], head["condsd"], rtol=2e-3)
    nf = len(s["fitted_head"])
    np.testing.assert_allclose(g.fitted[:nf], s["fitted_head"], rtol=2e-3)
    np.testing.assert_allclose(
        g.linear_predictor[:nf], s["predict_link_head"], rtol=2e-3, atol=2e-3
    )


@pytest.mark.parametrize("cid", ["poisson_offset", "probit_binary", "cbpp_binomial", "gamma_log"])
def test_conditional_deviance(cid):
    """lme4's ``deviance()`` of a GLMM: the sum of the deviance residuals at the fitted means."""
    s = SMALL[cid]
    assert fit(cid).conditional_deviance == pytest.approx(s["deviance_lme4"], rel=2e-4)


def test_conditional_vcov():
    """vcov(m, use.hessian = FALSE): σ²(RX'RX)⁻¹ with β in PIRLS, at lme4's estimates."""
    s = SMALL["poisson_offset"]
    g = fit("poisson_offset")
    ref = np.asarray(s["vcov_rx"]["values"])
    np.testing.assert_allclose(g.vcov_conditional, ref, rtol=2e-3)


def test_cbpp_ranef_against_shared_reference():
    c = case("cbpp_binomial_agq")
    g = fit("cbpp_binomial_agq")
    r = g.ranef()
    k = len(c["ranef"]["condval"])
    np.testing.assert_allclose(r["condval"][:k], c["ranef"]["condval"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["condsd"][:k], c["ranef"]["condsd"], rtol=1e-4)
    np.testing.assert_allclose(g.fitted[:5], c["fitted_head"], rtol=3e-5)
