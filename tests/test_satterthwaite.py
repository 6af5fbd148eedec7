"""Satterthwaite df and p-values (lmerTest) for every linear case of the shared reference.

lmerTest differentiates numerically (numDeriv); mixedfx uses Richardson-extrapolated central
differences of its own factor. The df must agree within 1e-3 relative (the issue's tolerance).
A p-value of 1e-18 moves by 2e-3 relative when the t statistic moves by 2e-5, or the df by
6e-5 (lmerTest's own error: 18.0011 for an exact 18) — less than the fits' own agreement. So
p-values above 1e-4 must agree within 1e-3 relative (ours, and R's t statistic with our df),
and all p-values within 1e-3 relative on the -log10 scale.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from conftest import CASES

LINEAR = [c for c in CASES if c["family"] == "gaussian" and c["id"] != "insteval_full_reml"]
# lme4 stopped early on this case (see test_lmer_reference.py): estimates agree at 1e-2
EARLY_STOP = {"insteval_small_ml"}
_FITS: dict[str, mfx.LinearMixedModel] = {}


def fit(c: dict) -> mfx.LinearMixedModel:
    if c["id"] not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.SingularFitWarning)
            _FITS[c["id"]] = mfx.lmer(c["formula"], mfx.datasets.load(c["dataset"]), REML=c["REML"])
    return _FITS[c["id"]]


@pytest.mark.parametrize("c", LINEAR, ids=[c["id"] for c in LINEAR])
def test_satterthwaite_against_lmertest(c):
    m = fit(c)
    coef = m.coefficients
    fe = c["fixef"]
    tol = 1e-2 if c["id"] in EARLY_STOP else 1e-3
    np.testing.assert_allclose(coef["df"], fe["df_satterthwaite"], rtol=tol)
    p_r = np.asarray(fe["p_satterthwaite"])
    t_r = np.asarray(fe["estimate"]) / np.asarray(fe["std_error"])
    p_from_r_t = 2 * stats.t.sf(np.abs(t_r), coef["df"].to_numpy())
    moderate = p_r > 1e-4
    np.testing.assert_allclose(p_from_r_t[moderate], p_r[moderate], rtol=tol)
    np.testing.assert_allclose(coef["p_value"][moderate], p_r[moderate], rtol=tol)
    pos = p_r > 0  # R's p-value underflows to 0 for t of several hundred
    np.testing.assert_allclose(-np.log10(coef["p_value"][pos]), -np.log10(p_r[pos]), rtol=tol)
    assert np.all(coef["p_value"][~pos] < 1e-300)
    assert list(coef.columns) == ["estimate", "std_error", "df", "statistic", "p_value"]


def test_balanced_design_exact_df():
    """sleepstudy's random-slope model is balanced: the df of both coefficients are exactly
    n_subjects − 1 = 17 (REML), which Kenward-Roger also gives."""
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    np.testing.assert_allclose(m.coefficients["df"], [17.0, 17.0], rtol=2e-5)


def test_df_of_a_between_group_effect_in_a_one_way_design():
    """Balanced one-way random intercepts: the df of the intercept is groups − 1 exactly."""
    df = mfx.datasets.load("Dyestuff")
    m = mfx.lmer("Yield ~ 1 + (1 | Batch)", df)
    assert m.coefficients["df"].iloc[0] == pytest.approx(5.0, rel=1e-5)


def test_summary_prints_lmertest_header_and_columns():
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    text = str(m.summary())
    assert "t-tests use Satterthwaite's method" in text
    assert "Estimate Std. Error" in text and "df t value Pr(>|t|)" in text
    assert "Signif. codes" in text
    lme4_style = str(m.summary(ddf="lme4"))
    assert "Satterthwaite" not in lme4_style and "Pr(>|t|)" not in lme4_style


def test_factor_state_restored():
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    before = (m.objective, m.beta.copy(), m.vcov.to_numpy().copy())
    _ = m.coefficients
    assert m.objective_at(m.theta) == pytest.approx(before[0], rel=1e-14)
    beta_now = m.engine.factor.solve()[1] * m.engine.units.s  # the factor works in scaled units
    np.testing.assert_allclose(beta_now, before[1], rtol=1e-12)
    np.testing.assert_allclose(m.vcov.to_numpy(), before[2], rtol=1e-12)
    assert isinstance(m.coefficients, pd.DataFrame)
