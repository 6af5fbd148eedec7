"""The approximate method for crossed random intercepts (method of moments + GLS by
conjugate gradients) against the exact fit where both run, and method="auto"'s choice."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.errors import ApproximateFitWarning, ModelError
from mixedfx.models import lmer as lmer_module


def _crossed(n=20000, levels=(300, 200, 20), sds=(1.0, 0.7, 0.3), seed=5):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "f": rng.integers(0, 3, n).astype(str)})
    y = 1.0 + 0.5 * df["x"].to_numpy() + rng.normal(size=n)
    for name, nl, sd in zip(("g", "h", "k"), levels, sds, strict=True):
        codes = rng.integers(0, nl, n)
        df[name] = codes
        y += sd * rng.normal(size=nl)[codes]
    df["y"] = y
    return df


DATA = _crossed()


@pytest.mark.parametrize(
    "formula",
    ["y ~ x + (1 | g) + (1 | h) + (1 | k)", "y ~ x + f + (1 | g) + (1 | h) + (1 | k)"],
)
def test_moments_estimates_within_their_standard_errors_of_the_exact_fit(formula):
    exact = mfx.lmer(formula, DATA)
    approx = mfx.lmer(formula, DATA, method="moments")
    assert approx.approximate and approx.method == "moments"
    assert not exact.approximate and exact.method == "exact"
    vc = approx.variance_components
    assert list(vc.index) == ["g", "h", "k", "Residual"]
    diff = np.abs(vc["variance"].to_numpy() - exact.varcorr["vcov"].to_numpy())
    assert np.all(diff < vc["std_error"].to_numpy())
    coef = approx.coefficients
    assert np.all(np.abs(coef["estimate"] - exact.fixef) < coef["std_error"])
    # GLS standard errors of β close to the exact fit's
    np.testing.assert_allclose(coef["std_error"], exact.coefficients["std_error"], rtol=0.05)
    # conditional modes: the BLUPs at nearly the same variances
    be = np.concatenate([b.ravel() for b in exact.engine.b_blocks()])
    ba = np.concatenate([b.ravel() for b in approx.engine.b_blocks()])
    assert np.corrcoef(be, ba)[0, 1] > 0.999


def test_moments_recovers_the_simulation_truth_on_a_large_crossed_design():
    df = _crossed(n=200_000, levels=(4000, 3000, 50), sds=(1.0, 0.5, 0.3), seed=11)
    m = mfx.lmer("y ~ x + (1 | g) + (1 | h) + (1 | k)", df, method="moments")
    vc = m.variance_components
    truth = np.array([1.0, 0.25, 0.09, 1.0])
    z = (vc["variance"].to_numpy() - truth) / vc["std_error"].to_numpy()
    assert np.all(np.abs(z) < 4)
    assert abs(m.fixef["x"] - 0.5) < 4 * m.coefficients.loc["x", "std_error"]
    assert max(m.engine.result.cg_iterations) < 200


def test_the_approximate_fit_is_labelled_and_refuses_what_needs_a_likelihood():
    m = mfx.lmer("y ~ x + (1 | g) + (1 | h)", DATA, method="moments")
    text = str(m.summary())
    assert "APPROXIMATE" in text and "method of moments" in text
    assert "Std.Err.(Var)" in text and "z value" in text
    assert np.isnan(m.objective) and np.isnan(m.aic)
    r = m.ranef()
    assert list(r.columns) == ["group", "term", "level", "condval", "condsd"]
    assert m.confint().shape == (2, 2)
    for call in (lambda: m.anova(), lambda: m.profile(), lambda: m.coefficients_kr):
        with pytest.raises(ModelError, match="method of moments"):
            call()
    with pytest.raises(ModelError, match="intercepts"):
        mfx.lmer("y ~ x + (x | g) + (1 | h)", DATA, method="moments")


def test_auto_chooses_and_says_which(monkeypatch):
    # an exact fit that does fit: exact, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ApproximateFitWarning)
        assert mfx.lmer("y ~ x + (1 | g) + (1 | h)", DATA).method == "exact"
    # pretend the machine allows 1 second: the estimate says the exact fit would not fit
    monkeypatch.setattr(lmer_module, "MAX_SECONDS", 1e-9)
    with pytest.warns(ApproximateFitWarning, match="chose the method of moments.*dense block"):
        m = mfx.lmer("y ~ x + (1 | g) + (1 | h)", DATA)
    assert m.approximate and "chose the method of moments" in str(m.summary())
    # nothing fits: random slopes cannot be fitted by moments
    with pytest.raises(ModelError, match=r"exact fit needs.*intercepts"):
        mfx.lmer("y ~ x + (x | g) + (1 | h)", DATA)


def test_exact_refused_beyond_memory_with_the_estimate(monkeypatch):
    monkeypatch.setattr(lmer_module, "MAX_BYTES", 1e3)
    with pytest.raises(ModelError, match=r"GB.*method='moments'"):
        mfx.lmer("y ~ x + (1 | g) + (1 | h)", DATA, method="exact")


def test_moments_on_dask_equals_moments_in_memory():
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    formula = "y ~ x + f + (1 | g) + (1 | h)"
    mem = mfx.lmer(formula, DATA, method="moments")
    with dask.config.set(scheduler="threads"):
        dsk = mfx.lmer(formula, dd.from_pandas(DATA, npartitions=4), method="moments")
        text = str(dsk.summary())
    np.testing.assert_allclose(
        dsk.variance_components["variance"], mem.variance_components["variance"], rtol=1e-8
    )
    np.testing.assert_allclose(dsk.fixef, mem.fixef, rtol=1e-7)
    np.testing.assert_allclose(
        dsk.coefficients["std_error"], mem.coefficients["std_error"], rtol=1e-6
    )
    assert "APPROXIMATE" in text


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1 | g) + (1 | h) + (1 | k)",
        "y ~ x + f + (1 | g) + (1 | h)",
        "y ~ x + (1 | g/f)",  # nested: f:g within g
    ],
)
def test_moment_start_equals_the_moments_fit(formula):
    """The exact fit's starting θ from the cross-products (linalg.moments.moment_start) is
    the method of moments' θ computed from the sufficient statistics."""
    from mixedfx.engines.linear import LinearEngine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approx = mfx.lmer(formula, DATA, method="moments")
        exact = mfx.lmer(formula, DATA, method="exact")
    engine = LinearEngine(exact.design, REML=False)
    start = engine._moment_start()
    np.testing.assert_allclose(start, approx.theta, rtol=1e-9, atol=1e-12)


def test_fit_from_the_moment_start_reaches_lme4s_start_optimum(monkeypatch):
    """A trailing block past the gradient path's size starts from the moments; the optimum
    is the one reached from lme4's start."""
    from mixedfx.engines.linear import LinearEngine

    formula = "y ~ x + (1 | g) + (1 | h) + (1 | k)"
    data = _crossed(n=30000, levels=(600, 400, 30), seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer(formula, data, REML=False)
        assert m.engine.A.m >= LinearEngine._gradient_min_m
        monkeypatch.setattr(LinearEngine, "_moment_start", lambda self: None)
        m0 = mfx.lmer(formula, data, REML=False)
    assert m.objective == pytest.approx(m0.objective, rel=1e-11)
    np.testing.assert_allclose(m.theta, m0.theta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.beta, m0.beta, rtol=1e-7)
