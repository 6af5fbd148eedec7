"""GLMMs at the edges: separation, counts beyond double precision, far starts, rows with no
trials, and standard errors that cannot be computed (never silently wrong)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


def _data(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 200
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=n)
    eta = -0.5 + 0.8 * x + rng.normal(size=20)[g]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": g, "f": np.array(["a", "b"])[np.arange(n) % 2]})


def test_quasi_separation_warns_and_names_the_term():
    df = _data()
    df.loc[df.f == "b", "y"] = 1.0
    with pytest.warns(mfx.ConvergenceWarning, match=r"separated by fb"):
        g = mfx.glmer("y ~ f + x + (1 | g)", df)
    se = g.coefficients["std_error"]
    assert not (se.to_numpy() == 0).any()  # never a (negative) zero standard error
    assert np.isfinite(g.coefficients.loc["x", "statistic"])
    assert any("separated" in m for m in g.convergence_messages)


def test_counts_beyond_double_precision_are_refused():
    df = _data()
    rng = np.random.default_rng(2)
    df["c"] = np.round(np.exp(39 + 0.1 * df["x"] + 0.2 * rng.normal(size=20)[df["g"]]))
    with pytest.raises(mfx.DataError, match=r"'c' has counts up to .*double precision"):
        mfx.glmer("c ~ x + (1 | g)", df, family="poisson")


def test_far_fixed_effects_start_reaches_the_optimum():
    df = _data()
    best = mfx.glmer("y ~ x + (1 | g)", df)
    far = mfx.glmer("y ~ x + (1 | g)", df, start={"theta": [1.0], "fixef": [1e6, 0.0]})
    assert far.objective == pytest.approx(best.objective, rel=1e-8)
    np.testing.assert_allclose(far.beta, best.beta, atol=1e-3)


def test_rows_with_no_trials_carry_no_information():
    df = _data()
    rng = np.random.default_rng(3)
    df["t"] = 5.0
    df["s"] = rng.binomial(5, 0.4, len(df)).astype(float)
    df.loc[:9, ["t", "s"]] = 0.0
    f = "cbind(s, t - s) ~ x + (1 | g)"
    with_zero = mfx.glmer(f, df)
    without = mfx.glmer(f, df.iloc[10:])
    assert with_zero.objective == pytest.approx(without.objective, rel=1e-8)
    np.testing.assert_allclose(with_zero.beta, without.beta, rtol=1e-5)
