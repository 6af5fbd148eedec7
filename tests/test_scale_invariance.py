"""A fit does not depend on the units of the data (property tests, c anywhere in
[1e-300, 1e300]): the response times c gives the same θ, β·c and σ·c; all weights times c give
the same β and the same variance components (lme4's θ/√c and σ·√c). Equal weights of any size
give the unweighted fit."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx

F = "Reaction ~ Days + (Days | Subject)"
SLEEP = mfx.datasets.load("sleepstudy")
W = np.random.default_rng(7).uniform(0.5, 2.0, len(SLEEP))
BASE = {reml: mfx.lmer(F, SLEEP, REML=reml) for reml in (True, False)}
BASE_W = mfx.lmer(F, SLEEP.assign(w=W), weights="w")

scales = st.floats(min_value=-300.0, max_value=300.0).map(lambda e: 10.0**e)
SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _close(a, b, rel=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    assert np.all(np.isfinite(a))
    assert np.max(np.abs(a - b)) <= rel * scale


@SETTINGS
@given(c=scales, reml=st.booleans())
def test_response_units(c, reml):
    base = BASE[reml]
    m = mfx.lmer(F, SLEEP.assign(Reaction=SLEEP["Reaction"] * c), REML=reml)
    _close(m.theta, base.theta)
    _close(m.beta / c, base.beta)
    assert m.sigma / c == pytest.approx(base.sigma, rel=1e-8)
    n = m.nobs - (m.p if reml else 0)
    assert math.isfinite(m.objective)
    assert m.objective - 2 * n * math.log(c) == pytest.approx(base.objective, rel=1e-8, abs=1e-6)


@SETTINGS
@given(c=scales)
def test_weight_units(c):
    m = mfx.lmer(F, SLEEP.assign(w=W * c), weights="w")
    _close(m.beta, BASE_W.beta)
    _close(m.theta * math.sqrt(c), BASE_W.theta)
    assert m.sigma / math.sqrt(c) == pytest.approx(BASE_W.sigma, rel=1e-8)
    vc, vc0 = m.varcorr, BASE_W.varcorr
    _close(vc["vcov"].iloc[:-1], vc0["vcov"].iloc[:-1])


@SETTINGS
@given(c=scales)
def test_equal_weights_are_no_weights(c):
    base = BASE[True]
    m = mfx.lmer(F, SLEEP.assign(w=c), weights="w")
    _close(m.beta, base.beta)
    vc, vc0 = m.varcorr, base.varcorr
    _close(vc["vcov"].iloc[:-1], vc0["vcov"].iloc[:-1])
    # the residual variance of an observation, σ²/w, is the unweighted σ²
    assert m.sigma**2 / c == pytest.approx(base.sigma**2, rel=1e-8)
    assert m.is_singular == base.is_singular  # the weights' units do not make a fit singular


def test_variance_ratio_beyond_double_precision_is_not_silent():
    """A group sd of 1e7 and a residual sd of 1e-3: the criterion cannot be computed near the
    optimum (θ ~ 1e10); the fit says so instead of reporting a zero variance silently."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 10)
    y = 1e7 * rng.standard_normal(30)[g] + 1e-3 * rng.standard_normal(g.size)
    # where the rounding in the Schur complement A22 − PP' lands decides which of the two
    # warnings appears (the factor fails near the optimum, or it survives with no digits left)
    untrusted = "beyond double precision|16 of 16 significant digits are lost"
    with pytest.warns(mfx.ConvergenceWarning, match=untrusted):
        m = mfx.lmer("y ~ 1 + (1 | g)", {"y": y, "g": g})
    assert any(re.search(untrusted, msg) for msg in m.convergence_messages)
    assert math.isfinite(m.objective)


def test_large_but_representable_variance_ratio():
    """Group sd 1e4, residual sd 1e-2 (θ ~ 1e6, ratio of variances 1e12): the fit is finite
    and close, and it warns that digits were lost."""
    rng = np.random.default_rng(5)
    b = 1e4 * rng.standard_normal(40)
    g = np.repeat(np.arange(40), 8)
    e = 1e-2 * rng.standard_normal(g.size)
    with pytest.warns(mfx.ConvergenceWarning, match="significant digits are lost"):
        m = mfx.lmer("y ~ 1 + (1 | g)", {"y": b[g] + e, "g": g})
    resid = e - np.bincount(g, e)[g] / 8
    assert m.sigma == pytest.approx(np.sqrt(np.sum(resid**2) / (g.size - 40)), rel=1e-2)
    assert m.varcorr["sdcor"].iloc[0] == pytest.approx(np.std(b, ddof=1), rel=1e-2)


def test_far_start_reaches_the_optimum():
    dy = mfx.datasets.load("Dyestuff")
    m = mfx.lmer("Yield ~ 1 + (1 | Batch)", dy, REML=False)
    far = mfx.lmer("Yield ~ 1 + (1 | Batch)", dy, REML=False, start=np.array([1e10]))
    assert far.objective == pytest.approx(m.objective, rel=1e-10)
