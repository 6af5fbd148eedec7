"""One way to copy a model (refit, update, anova's ML refits, profiles, the bootstrap keep the
whole call), and a user's own Family through the generic (non-compiled) path."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedfx as mfx
from mixedfx.families import Family, Poisson


@pytest.fixture(scope="module")
def sleep():
    df = mfx.datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(4)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["o"] = rng.normal(0.0, 5.0, len(df))
    return df


F = "Reaction ~ Days + (Days | Subject)"


def test_refit_then_update_keeps_ml_weights_and_offset(sleep):
    m = mfx.lmer(F, sleep, REML=False, weights="w", offset="o")
    y = sleep["Reaction"].to_numpy() + 1.0
    r = m.refit(y)
    assert not r.REML
    # update with the same data re-evaluates the call: ML, the same weights and offset
    u = r.update(data=sleep)
    assert not u.REML
    assert u.objective == pytest.approx(m.objective, rel=1e-10)
    np.testing.assert_allclose(u.beta, m.beta, rtol=1e-6)
    u2 = r.update(". ~ .")
    assert not u2.REML
    assert u2.objective == pytest.approx(m.objective, rel=1e-10)
    # a refit to y + 1 with an intercept moves only the intercept, by 1
    np.testing.assert_allclose(r.beta, m.beta + np.array([1.0, 0.0]), atol=1e-5)
    assert r.objective == pytest.approx(m.objective, rel=1e-8)


def test_refit_keeps_weights_and_offset_against_a_fresh_fit(sleep):
    m = mfx.lmer(F, sleep, weights="w", offset="o")
    rng = np.random.default_rng(1)
    y = sleep["Reaction"].to_numpy() + rng.normal(0, 10, len(sleep))
    fresh = mfx.lmer(F, sleep.assign(Reaction=y), weights="w", offset="o")
    r = m.refit(y)
    assert r.REML
    assert r.objective == pytest.approx(fresh.objective, rel=1e-10)
    # θ is determined by the data only as far as the criterion's flatness allows
    np.testing.assert_allclose(r.theta, fresh.theta, atol=2e-5)


def test_update_changes_one_argument_and_keeps_the_others(sleep):
    m = mfx.lmer(F, sleep, weights="w", offset="o")
    ml = m.update(REML=False)
    want = mfx.lmer(F, sleep, REML=False, weights="w", offset="o")
    assert ml.objective == pytest.approx(want.objective, rel=1e-10)
    now = m.update(weights=None)
    want = mfx.lmer(F, sleep, offset="o")
    assert now.objective == pytest.approx(want.objective, rel=1e-10)


def test_anova_ml_copies_keep_weights(sleep):
    m0 = mfx.lmer("Reaction ~ 1 + (Days | Subject)", sleep, weights="w")
    m1 = mfx.lmer(F, sleep, weights="w")
    t = mfx.anova(m0, m1).table
    ml1 = mfx.lmer(F, sleep, REML=False, weights="w")
    assert t["deviance"].iloc[1] == pytest.approx(ml1.objective, rel=1e-9)
    assert m1.REML  # the models passed in are unchanged


def test_glmer_refit_keeps_family_weights_and_nagq():
    cbpp = mfx.datasets.load("cbpp").copy()
    cbpp["prop"] = cbpp["incidence"] / cbpp["size"]
    g = mfx.glmer("prop ~ period + (1 | herd)", cbpp, family="binomial", weights="size", nAGQ=5)
    r = g.refit(g.y)
    assert r.nAGQ == 5 and r.family == g.family
    np.testing.assert_allclose(r.prior_weights, g.prior_weights)
    assert r.objective == pytest.approx(g.objective, rel=1e-7)
    u = r.update(data=cbpp)
    assert u.nAGQ == 5
    assert u.objective == pytest.approx(g.objective, rel=1e-7)


class UserPoisson(Family):
    """Poisson with the log link written with R's family methods only."""

    name = "my.poisson"
    links = ("log",)
    default_link = "log"

    def linkfun(self, mu):
        return np.log(mu)

    def linkinv(self, eta):
        return np.maximum(np.exp(eta), np.finfo(float).eps)

    def mu_eta(self, eta):
        return np.maximum(np.exp(eta), np.finfo(float).eps)

    def variance(self, mu):
        return mu

    def dev_resids(self, y, mu, wt):
        return 2.0 * wt * (special.xlogy(y, y / mu) - (y - mu))

    def aic(self, y, n, mu, wt, dev):
        return float(-2.0 * np.sum((special.xlogy(y, mu) - mu - special.gammaln(y + 1.0)) * wt))

    def mustart(self, y, wt):
        return y + 0.1

    def simulate(self, mu, wt, rng, sigma=1.0):
        return rng.poisson(mu).astype(float)


def test_user_family_equals_the_builtin_it_imitates():
    gt = mfx.datasets.load("grouseticks")
    f = "TICKS ~ YEAR + (1 | BROOD)"
    mine = mfx.glmer(f, gt, family=UserPoisson())
    builtin = mfx.glmer(f, gt, family="poisson")
    assert not mine.pirls.compiled and mine.pirls.codes is None
    assert mine.objective == pytest.approx(builtin.objective, rel=1e-8)
    se = builtin.coefficients["std_error"].to_numpy()
    assert np.all(np.abs(mine.beta - builtin.beta) <= 1e-4 * se)
    np.testing.assert_allclose(mine.theta, builtin.theta, rtol=1e-4)
    assert math.isfinite(mine.coefficients["std_error"].sum())


def test_subclass_of_a_builtin_family_does_not_use_its_kernel():
    class Shifted(Poisson):
        def variance(self, mu):  # a different variance: must be used, not Poisson's kernel
            return 2.0 * mu

    gt = mfx.datasets.load("grouseticks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.ConvergenceWarning)
        g = mfx.glmer("TICKS ~ YEAR + (1 | BROOD)", gt, family=Shifted())
    assert g.pirls.codes is None
    p = mfx.glmer("TICKS ~ YEAR + (1 | BROOD)", gt, family="poisson")
    assert not np.allclose(g.theta, p.theta, rtol=1e-3)


def test_methods_that_do_not_apply_say_what_to_use():
    cbpp = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    with pytest.raises(mfx.ModelError, match=r"Kenward-Roger.*glmer.*Wald"):
        g.coefficients_kr  # noqa: B018
    with pytest.raises(mfx.ModelError, match=r"REML is not defined.*glmer"):
        g.update(REML=True)
    with pytest.raises(mfx.ModelError, match=r"mixedfx\.anova\(g0, g\)"):
        g.anova()
    with pytest.raises(mfx.ModelError, match="method='wald'"):
        g.profile()
    assert isinstance(pd.DataFrame(g.coefficients), pd.DataFrame)
