"""The per-level least-squares start of one-term models (linalg/starts.py) and the linear
engine's Newton route from it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.engines.linear import LinearEngine
from mixedfx.frame.design import build_design
from mixedfx.linalg.fused import SmallObjective
from mixedfx.linalg.starts import group_ols_theta, moment_theta


def _engine(df: pd.DataFrame, formula: str, weights: str | None = None) -> LinearEngine:
    return LinearEngine(build_design(formula, df, weights=weights), REML=True)


def _two_stage_reference(df: pd.DataFrame, xcols: list[str], zcols: list[str]) -> np.ndarray:
    """The two-stage estimate written out with numpy's least squares, level by level."""
    y = df["y"].to_numpy(float)
    X = np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in xcols])
    Z = np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in zcols])
    r = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    levels = sorted(df["g"].unique())
    b, inv, rss = [], [], 0.0
    for lev in levels:
        rows = (df["g"] == lev).to_numpy()
        Zl, rl = Z[rows], r[rows]
        bl = np.linalg.lstsq(Zl, rl, rcond=None)[0]
        b.append(bl)
        inv.append(np.linalg.inv(Zl.T @ Zl))
        rss += float(np.sum((rl - Zl @ bl) ** 2))
    G, k = len(levels), Z.shape[1]
    s2 = rss / (len(df) - G * k)
    S = np.cov(np.array(b).T, ddof=1).reshape(k, k) / s2 - np.mean(inv, axis=0)
    L = np.linalg.cholesky(S)
    return np.array([L[r_, c] for c in range(k) for r_ in range(c, k)])


def _random_slopes_data(seed: int, G: int, sizes: np.ndarray, sd: tuple[float, float]):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), sizes)
    n = g.size
    x = rng.standard_normal(n)
    b0 = sd[0] * rng.standard_normal(G)
    b1 = sd[1] * rng.standard_normal(G)
    y = 1.0 + 0.5 * x + b0[g] + b1[g] * x + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


@pytest.mark.parametrize("k", [1, 2])
def test_group_ols_equals_the_two_stage_estimate_level_by_level(k):
    df = _random_slopes_data(3, 12, np.arange(12) % 4 + 4, (1.5, 0.8))
    formula = "y ~ x + (1 | g)" if k == 1 else "y ~ x + (x | g)"
    e = _engine(df, formula)
    theta = group_ols_theta(e.A, k)
    assert theta is not None
    ref = _two_stage_reference(df, ["x"], [] if k == 1 else ["x"])
    np.testing.assert_allclose(theta, ref, rtol=1e-9, atol=1e-12)


def test_group_ols_is_sleepstudys_reml_estimate():
    """A balanced design: the two-stage estimate is the REML one (lme4: 0.96673, 0.01517,
    0.23091)."""
    e = _engine(mfx.datasets.load("sleepstudy"), "Reaction ~ Days + (Days | Subject)")
    theta = group_ols_theta(e.A, 2)
    assert theta is not None
    np.testing.assert_allclose(theta, [0.96673, 0.015169, 0.23091], rtol=2e-5)


def test_group_ols_does_not_exist_where_it_cannot_be_formed():
    # two terms: not a one-term system
    pen = _engine(mfx.datasets.load("Penicillin"), "diameter ~ 1 + (1 | plate) + (1 | sample)")
    assert group_ols_theta(pen.A, 1) is None
    # a level with one row cannot fit two coefficients
    df = _random_slopes_data(4, 10, np.array([1] + [5] * 9), (1.0, 0.5))
    assert group_ols_theta(_engine(df, "y ~ x + (x | g)").A, 2) is None
    # no between-level variance beyond the noise (Dyestuff2): Σ̃_b not positive definite
    dy2 = _engine(mfx.datasets.load("Dyestuff2"), "Yield ~ 1 + (1 | Batch)")
    assert group_ols_theta(dy2.A, 1) is None


def _fit_both(df: pd.DataFrame, formula: str, weights: str | None = None):
    """The fit (the Newton route where it applies) and the same fit by BOBYQA from lme4's
    start."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mfx.lmer(formula, df, weights=weights)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(LinearEngine, "_newton_from_close_start", lambda *args: None)
            b = mfx.lmer(formula, df, weights=weights)
    return a, b


def test_sleepstudy_takes_newton_steps_without_bobyqa(monkeypatch):
    df = mfx.datasets.load("sleepstudy")
    a, b = _fit_both(df, "Reaction ~ Days + (Days | Subject)")

    def fail(*args, **kwargs):
        raise AssertionError("BOBYQA ran")

    monkeypatch.setattr(SmallObjective, "bobyqa", fail)
    c = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert c.objective == a.objective
    assert a.optinfo.nfev < b.optinfo.nfev
    # no worse than BOBYQA + the same Newton steps, and the same answer
    assert a.objective <= b.objective + 1e-12 * abs(b.objective)
    assert a.objective == pytest.approx(b.objective, rel=1e-11)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    assert a.convergence_messages == []


def test_newton_route_declines_near_a_zero_variance():
    """A random slope with (almost) no variance: the start or the answer is within the
    margin of the bound, so BOBYQA's bounded search decides, as without the route."""
    df = _random_slopes_data(8, 15, np.full(15, 6), (1.0, 0.0))
    e = _engine(df, "y ~ x + (x | g)")
    small = e._small_objective()
    lower = e.design.theta_lower()
    f = small if small is not None else e._objective_fn()
    assert e._newton_from_close_start(f, lambda x, fx: small.polish(x, fx, lower), lower) is None
    a, b = _fit_both(df, "y ~ x + (x | g)")
    assert a.objective == b.objective


@given(
    seed=st.integers(0, 10_000),
    G=st.integers(4, 14),
    # at least 3 rows per group: (x | g) has 2 random effects per group, and lme4 (as
    # mixedfx) refuses a model with no more rows than random effects
    sizes=st.lists(st.integers(3, 9), min_size=14, max_size=14),
    sd0=st.sampled_from([0.05, 0.3, 1.0, 4.0]),
    sd1=st.sampled_from([0.0, 0.2, 1.0]),
    slope=st.booleans(),
    weighted=st.booleans(),
)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
def test_newton_route_reaches_bobyqas_minimum_on_random_designs(
    seed, G, sizes, sd0, sd1, slope, weighted
):
    """Balanced or not, weighted or not, large or tiny variances: where the route is taken
    its answer is BOBYQA's (to the polish's accuracy) or better; where it declines the fit is
    BOBYQA's exactly."""
    df = _random_slopes_data(seed, G, np.array(sizes[:G]), (sd0, sd1))
    df["w"] = 1.0 + (np.arange(len(df)) % 3) if weighted else 1.0
    formula = "y ~ x + (x | g)" if slope else "y ~ x + (1 | g)"
    a, b = _fit_both(df, formula, weights="w" if weighted else None)
    tol = 1e-10 * max(1.0, abs(b.objective))
    assert a.objective <= b.objective + tol
    assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-9)
    for la, lb in zip(a.engine.lambdas(), b.engine.lambdas(), strict=True):
        ca, cb = la @ la.T, lb @ lb.T
        scale = max(1.0, float(np.abs(cb).max()))
        np.testing.assert_allclose(ca, cb, rtol=1e-4, atol=1e-6 * scale)
    assert math.isfinite(a.objective)


def _crossed_data(seed: int, n: int, levels: tuple[int, ...], sds: tuple[float, ...]):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = 1.0 + 0.5 * x + rng.standard_normal(n)
    cols = {}
    for j, (L, sd) in enumerate(zip(levels, sds, strict=True)):
        g = rng.integers(0, L, n)
        y += sd * rng.standard_normal(L)[g]
        cols[f"g{j}"] = [f"l{v:02d}" for v in g]
    return pd.DataFrame({"y": y, "x": x, **cols})


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
        ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
        ("crossed3", "y ~ x + (1 | g0) + (1 | g1) + (1 | g2)"),
    ],
)
def test_moment_theta_equals_the_numpy_moment_start(name, formula):
    from mixedfx.linalg.moments import moment_start

    if name == "crossed3":
        df = _crossed_data(1, 300, (30, 8, 4), (2.0, 1.0, 0.7))
    else:
        df = mfx.datasets.load(name)
    e = _engine(df, formula)
    d = e.design
    y = e._yeff(e._y) / e.units.s
    got = moment_theta(e.A, d.terms, d.X, y)
    assert got is not None
    np.testing.assert_allclose(got, moment_start(e.A, d.terms, d.X, y), rtol=1e-10)


def test_moment_theta_declines_a_zero_variance_and_slopes():
    from mixedfx.linalg.moments import moment_start

    df = _crossed_data(2, 200, (20, 6), (1.0, 0.0))
    e = _engine(df, "y ~ x + (1 | g0) + (1 | g1)")
    d = e.design
    y = e._yeff(e._y) / e.units.s
    ref = moment_start(e.A, d.terms, d.X, y)
    if ref is not None and np.all(ref > 0):  # NNLS's answer has no zero: the same here
        np.testing.assert_allclose(moment_theta(e.A, d.terms, d.X, y), ref, rtol=1e-10)
    else:
        assert moment_theta(e.A, d.terms, d.X, y) is None
    slopes = _engine(df, "y ~ x + (x | g0) + (1 | g1)")
    sd = slopes.design
    assert moment_theta(slopes.A, sd.terms, sd.X, slopes._y) is None


def test_penicillin_takes_newton_steps_without_bobyqa(monkeypatch):
    df = mfx.datasets.load("Penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    a, b = _fit_both(df, formula)
    monkeypatch.setattr(SmallObjective, "bobyqa", lambda *args, **kw: 1 / 0)
    assert mfx.lmer(formula, df).objective == a.objective
    assert a.objective <= b.objective + 1e-12 * abs(b.objective)
    assert a.objective == pytest.approx(b.objective, rel=1e-11)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)


@given(
    seed=st.integers(0, 10_000),
    n=st.integers(40, 300),
    levels=st.tuples(st.integers(3, 30), st.integers(2, 10)),
    sds=st.tuples(st.sampled_from([0.1, 0.5, 2.0, 8.0]), st.sampled_from([0.0, 0.3, 1.0])),
    nested=st.booleans(),
)
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
def test_newton_route_on_random_crossed_and_nested_intercepts(seed, n, levels, sds, nested):
    df = _crossed_data(seed, n, levels, sds)
    if df["g0"].nunique() < 2 or df["g1"].nunique() < 2:
        return
    formula = "y ~ x + (1 | g1/g0)" if nested else "y ~ x + (1 | g0) + (1 | g1)"
    a, b = _fit_both(df, formula)
    assert a.objective <= b.objective + 1e-10 * max(1.0, abs(b.objective))
    assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(
        a.theta, b.theta, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b.theta).max()))
    )
