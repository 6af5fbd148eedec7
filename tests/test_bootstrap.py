"""simulate and the parametric bootstrap (lme4's simulate / bootMer / confint(method="boot")).

R's random numbers cannot be reproduced, so bootstrap numbers are compared within Monte Carlo
error: the standard error of a sample p-quantile from nsim draws is
sqrt(p(1-p)/nsim) / f(q_p), with the density f(q_p) taken from a normal fitted to the draws,
φ(z_p)/sd. Two independent bootstraps differ by sqrt(2) of that; we allow 4 of those.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
BOOT = json.loads((REF / "boot_sleepstudy.json").read_text())
NSIM = 1000


@pytest.fixture(scope="module")
def sleep():
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def boot(sleep):
    return sleep.bootstrap(nsim=NSIM, seed=1)


def _mc_se(table: pd.DataFrame, p: float) -> pd.Series:
    sd = table.std()
    return np.sqrt(p * (1 - p) / len(table)) * sd / stats.norm.pdf(stats.norm.ppf(p))


def test_bootstrap_table(sleep, boot):
    assert boot.table.shape == (NSIM, 6)
    assert list(boot.table.columns) == [
        ".sig01",
        ".sig02",
        ".sig03",
        ".sigma",
        "(Intercept)",
        "Days",
    ]
    assert boot.nfailed == 0
    np.testing.assert_allclose(boot.t0[["(Intercept)", "Days"]], sleep.beta)
    assert boot.t0[".sigma"] == pytest.approx(sleep.sigma)
    # bootMer's summary: the means and sds of the fixed effects and sigma
    s = BOOT["bootmer_summary"]
    for name, col in zip(s["names"], ["(Intercept)", "Days", ".sigma"], strict=True):
        i = s["names"].index(name)
        assert boot.table[col].mean() == pytest.approx(
            s["mean"][i], abs=4 * s["sd"][i] / np.sqrt(NSIM) * np.sqrt(2)
        )
        assert boot.table[col].std() == pytest.approx(s["sd"][i], rel=0.12)


def test_percentile_intervals_agree_with_bootmer(boot):
    ref = BOOT["confint_boot_perc"]
    got = boot.confint(0.95)
    assert list(got.columns) == ["2.5 %", "97.5 %"]
    for k, (col, p) in enumerate((("2.5 %", 0.025), ("97.5 %", 0.975))):
        se = _mc_se(boot.table, p)
        want = pd.Series(ref["lower" if k == 0 else "upper"], index=ref["names"])
        diff = (got[col] - want).abs()
        assert (diff <= 4 * np.sqrt(2) * se).all(), (diff / se).to_dict()


def test_percentile_intervals_agree_with_profile(sleep, boot):
    """For the fixed effects and σ, the percentile bootstrap and the profile intervals agree
    within the Monte Carlo error (4 standard errors of the bootstrap quantile). The random-effect
    sds are left out: their percentile intervals are shifted by the downward bias of variance
    estimates in small samples (R's bootMer shows the same: .sig01 12.3 vs 14.4)."""
    prof = sleep.confint()
    got = boot.confint(0.95)
    for col, p in (("2.5 %", 0.025), ("97.5 %", 0.975)):
        se = _mc_se(boot.table, p)
        for name in (".sigma", "(Intercept)", "Days"):
            assert abs(got.loc[name, col] - prof.loc[name, col]) <= 4 * se[name], name


def test_reproducible_and_parallel(sleep):
    once = sleep.bootstrap(nsim=40, seed=1)
    again = sleep.bootstrap(nsim=40, seed=1)
    pd.testing.assert_frame_equal(once.table, again.table)
    par = sleep.bootstrap(nsim=40, seed=1, n_jobs=2)
    pd.testing.assert_frame_equal(par.table, once.table)
    other = sleep.bootstrap(nsim=40, seed=2)
    assert not np.allclose(other.table.to_numpy(), once.table.to_numpy())
    ci = sleep.confint(method="boot", nsim=40, seed=1)
    pd.testing.assert_frame_equal(ci, once.confint(0.95))


def test_bootstrap_refit_equals_fresh_fit(sleep):
    """A replicate's statistics are those of lmer fitted afresh to the simulated response."""
    y = sleep.simulate(nsim=3, seed=5)
    b = sleep.bootstrap(nsim=3, seed=5)
    df = mfx.datasets.load("sleepstudy")
    for j in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.SingularFitWarning)
            fresh = mfx.lmer("Reaction ~ Days + (Days | Subject)", df.assign(Reaction=y[:, j]))
        np.testing.assert_allclose(b.table.iloc[j][["(Intercept)", "Days"]], fresh.beta, rtol=1e-6)
        assert b.table.iloc[j][".sigma"] == pytest.approx(fresh.sigma, rel=1e-5)


def test_simulate_moments(sleep):
    """Simulated responses have mean Xβ and covariance σ²(ZΛΛ'Z' + I)."""
    from mixedfx.linalg.crossprod import term_matrix

    y = sleep.simulate(nsim=4000, seed=2)
    d = sleep.design
    mean = d.X @ sleep.beta
    lam = sleep.lambdas()[0]
    Z = term_matrix(d.terms[0]).toarray() @ np.kron(np.eye(d.terms[0].nlevels), lam)
    cov = sleep.sigma**2 * (Z @ Z.T + np.eye(d.n))
    sd = np.sqrt(np.diag(cov))
    z = (y.mean(axis=1) - mean) / (sd / np.sqrt(4000))
    assert np.max(np.abs(z)) < 4.5
    emp = np.cov(y[:10])
    assert np.allclose(emp, cov[:10, :10], rtol=0.15, atol=0.15 * sleep.sigma**2)
    np.testing.assert_array_equal(sleep.simulate(3, seed=9), sleep.simulate(3, seed=9))
    cond = sleep.simulate(2000, seed=3, use_u=True)
    assert np.max(np.abs(cond.mean(axis=1) - sleep.fitted)) < 5 * sleep.sigma / np.sqrt(2000)


def test_glmm_bootstrap():
    g = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp")
    )
    b = g.bootstrap(nsim=20, seed=3)
    assert list(b.table.columns) == [".sig01", "(Intercept)", "period2", "period3", "period4"]
    assert b.nfailed == 0 and np.isfinite(b.table.to_numpy()).all()


def test_errors(sleep):
    with pytest.raises(mfx.DataError, match="nsim must be a whole number of at least 1"):
        sleep.bootstrap(nsim=0)
    with pytest.raises(mfx.DataError, match="nsim must be a whole number"):
        sleep.simulate(nsim=2.5)
    with pytest.raises(mfx.DataError, match="n_jobs must be"):
        sleep.bootstrap(nsim=5, n_jobs=0)


def test_progress_bar_when_asked(sleep, capsys):
    sleep.bootstrap(nsim=5, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "5/5" in err
    sleep.bootstrap(nsim=5, seed=1)  # not a terminal: no bar
    assert "bootstrap" not in capsys.readouterr().err
