"""The compiled small-model factor (linalg/fused.py) against the blocked LAPACK path."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.frame.design import build_design
from mixedfx.linalg import factor as factor_module
from mixedfx.linalg.criterion import profiled_deviance
from mixedfx.linalg.crossprod import CrossProductPlan
from mixedfx.linalg.factor import BlockedFactor
from mixedfx.linalg.fused import SmallSystem


def _vector_rest_data() -> pd.DataFrame:
    """A scalar first term and a later term with two columns (k = 2): the Λr' G Λr path."""
    rng = np.random.default_rng(11)
    n = 240
    g1 = rng.integers(0, 40, n)
    g2 = rng.integers(0, 6, n)
    x = rng.standard_normal(n)
    y = 1 + 0.5 * x + rng.standard_normal(40)[g1] + (1 + x) * rng.standard_normal(6)[g2]
    y += rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)})


CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", None),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)", None),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)", "Days1"),
    ("vector_rest", "y ~ x + (1 | g1) + (x | g2)", None),
]


def _design(name: str, formula: str, weights: str | None):
    df = _vector_rest_data() if name == "vector_rest" else mfx.datasets.load(name).copy()
    if weights:
        df[weights] = 1.0 + np.arange(len(df)) % 3
    return build_design(formula, df, weights, None)


@pytest.mark.parametrize(("name", "formula", "weights"), CASES)
def test_small_system_equals_blocked_lapack_path(name, formula, weights, monkeypatch):
    d = _design(name, formula, weights)
    w = None if d.weights is None else np.sqrt(d.weights)
    A = CrossProductPlan(d).compute(w, d.y / np.max(np.abs(d.y)))
    fused = BlockedFactor(A, d.terms)
    assert fused.small is not None
    monkeypatch.setattr(factor_module, "applies", lambda m: False)
    lapack = BlockedFactor(A, d.terms)
    assert lapack.small is None
    scratch = SmallSystem(A, d.terms)
    rng = np.random.default_rng(2)
    lower = d.theta_lower()
    for _ in range(20):
        theta = rng.uniform(-1.0, 2.0, lower.size)
        theta = np.where(lower == 0.0, np.abs(theta), theta)
        a, b = fused.update(theta), lapack.update(theta)
        assert a.ok and b.ok
        assert a.logdet_Lz == pytest.approx(b.logdet_Lz, rel=1e-11, abs=1e-11)
        assert a.logdet_Rx == pytest.approx(b.logdet_Rx, rel=1e-11, abs=1e-11)
        assert a.pwrss == pytest.approx(b.pwrss, rel=1e-10)
        # the same β and u from either factor
        ua, ba = fused.solve()
        ub, bb = lapack.solve()
        np.testing.assert_allclose(ba, bb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ua, ub, rtol=1e-9, atol=1e-12)
        for va, vb in zip(
            fused.conditional_variances(), lapack.conditional_variances(), strict=True
        ):
            np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-13)
        # the optimizer's criterion (scratch buffers) is the factor's criterion, exactly
        for reml in (True, False):
            want = profiled_deviance(a, d.n, d.fixed.p, reml, A.sum_log_w)
            got = scratch.criterion(theta, reml, d.n, -A.sum_log_w)
            assert got == want or got == pytest.approx(want, rel=1e-14)
            many = scratch.criterion_many(np.vstack([theta, theta]), reml, d.n, -A.sum_log_w)
            assert np.all(many == got)


def _crossed_counts(balanced: bool) -> pd.DataFrame:
    """Crossed random intercepts, every pair of levels seen: 3 observations per cell
    (balanced) or 3 or 4 by level of g1 (its counts then take two distinct values)."""
    rng = np.random.default_rng(5)
    cells = [(a, b) for a in range(15) for b in range(5)]
    reps = np.array([3 if balanced or a % 3 else 4 for a, _ in cells])
    g1 = np.repeat([a for a, _ in cells], reps)
    g2 = np.repeat([b for _, b in cells], reps)
    x = rng.standard_normal(g1.size)
    y = 2 + x + rng.standard_normal(15)[g1] + 0.5 * rng.standard_normal(5)[g2]
    y += rng.standard_normal(g1.size)
    return pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)})


@pytest.mark.parametrize(
    "data", ["Penicillin", "Dyestuff", "balanced", "unbalanced"], ids=lambda s: s
)
def test_grouped_schur_update_equals_the_scatter(data):
    """The grouped Schur update of a small system (P P' as a weighted sum of fixed S_g) gives
    the scatter's factor: criterion, log-determinants, β, u and P itself."""
    if data in ("balanced", "unbalanced"):
        d = build_design("y ~ x + (1 | g1) + (1 | g2)", _crossed_counts(data == "balanced"))
    elif data == "Dyestuff":
        d = build_design("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("Dyestuff"))
    else:
        d = build_design(
            "diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("Penicillin")
        )
    A = CrossProductPlan(d).compute(None, d.y / np.max(np.abs(d.y)))
    grouped = BlockedFactor(A, d.terms)
    scatter = BlockedFactor(A, d.terms, grouped=False)
    assert grouped.small is not None and grouped.small.grouped
    assert scatter.small is not None and not scatter.small.grouped
    rng = np.random.default_rng(3)
    lower = d.theta_lower()
    for scale in (1e-4, 1.0, 30.0):
        theta = scale * rng.uniform(0.0, 2.0, lower.size)
        a, b = grouped.update(theta), scatter.update(theta)
        assert a.ok and b.ok
        # the same subtraction A22 - P P' rounded in another order: at θ ~ 60 the Schur
        # complement cancels ~4 digits of A22's, so agreement to ~1e-10 of the values
        assert a.logdet_Lz == pytest.approx(b.logdet_Lz, rel=1e-10, abs=1e-10)
        assert a.logdet_Rx == pytest.approx(b.logdet_Rx, rel=1e-9, abs=1e-10)
        assert a.pwrss == pytest.approx(b.pwrss, rel=1e-9)
        np.testing.assert_allclose(grouped.P, scatter.P, rtol=1e-12, atol=1e-14)
        ua, ba = grouped.solve()
        ub, bb = scatter.solve()
        np.testing.assert_allclose(ba, bb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ua, ub, rtol=1e-8, atol=1e-12)


def test_grouped_schur_update_needs_fixed_values():
    """A system whose values will be refilled (PIRLS, the bootstrap: grouped=False) and one
    with weights (every level's weight sum distinct) use the scatter."""
    d = build_design("diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("Penicillin"))
    A = CrossProductPlan(d).compute(None, d.y)
    assert not SmallSystem(A, d.terms, grouped=False).grouped
    assert SmallSystem(A, d.terms).grouped
    w = np.sqrt(1.0 + np.arange(d.n) % 7 / 3.0)
    Aw = CrossProductPlan(d).compute(w, d.y)
    assert not SmallSystem(Aw, d.terms).grouped


def test_small_system_reports_a_failed_factor():
    """θ that makes the trailing block indefinite cannot occur (G is PD for any θ), so
    break the cross-products instead: a negative diagonal in A22's response row."""
    d = _design("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None)
    A = CrossProductPlan(d).compute(None, d.y)
    A.A22[-1, -1] = -1.0
    s = SmallSystem(A, d.terms)
    _, _, _, ok = s.factor(np.array([1.0, 1.0]))
    assert not ok
    assert np.isnan(s.criterion(np.array([1.0, 1.0]), True, d.n, 0.0))


@pytest.mark.parametrize(("name", "formula", "weights"), CASES)
def test_compiled_minimization_equals_python_route(name, formula, weights):
    """BOBYQA through nlopt's C interface with the compiled callback takes the steps of the
    Python route (nlopt's Python module calling the criterion) to the bit, and the compiled
    Newton steps end where :func:`newton_polish` ends."""
    pytest.importorskip("nlopt")
    from mixedfx.engines.linear import LinearEngine
    from mixedfx.linalg import nlopt_c
    from mixedfx.linalg.optimizer import bobyqa, newton_polish

    if not nlopt_c.available():
        pytest.skip("nlopt's C interface is not exported by this build")
    e = LinearEngine(_design(name, formula, weights), REML=True)
    small = e._small_objective()
    assert small is not None
    lower, x0 = e.design.theta_lower(), e.design.theta_start()
    f = e._objective_fn()
    for opts in ({}, e._bobyqa_options, {"initial_step": np.full(x0.size, 0.3)}):
        py = bobyqa(f, x0, lower, **opts)
        small.reset()
        c = small.bobyqa(x0, lower, **opts)
        np.testing.assert_array_equal(c.x, py.x)
        assert c.fun == py.fun
        assert c.nfev == py.nfev == small.nevals
        assert c.status == py.status
    xp, fp, probe_p = newton_polish(f, py.x, py.fun, lower, many=e._criterion_many)
    xc, fc, probe_c = small.polish(py.x, py.fun, lower)
    np.testing.assert_allclose(xc, xp, rtol=1e-9, atol=1e-9)
    assert fc == pytest.approx(fp, rel=1e-13)
    np.testing.assert_array_equal(probe_c.idx, probe_p.idx)
    np.testing.assert_allclose(probe_c.gradient, probe_p.gradient, atol=1e-6)


def test_compiled_objective_counts_failures_as_inf():
    d = _design("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", None)
    A = CrossProductPlan(d).compute(None, d.y)
    A.A22[-1, -1] = -1.0
    small = SmallSystem(A, d.terms).objective(True, d.n, 0.0)
    if small is None:
        pytest.skip("nlopt's C interface is not exported by this build")
    small.reset()
    assert small(np.array([1.0, 1.0])) == np.inf
    assert small.nevals == 1 and small.nfailed == 1


def test_fit_without_nlopt_c_interface_is_the_same(monkeypatch):
    """Where nlopt's C interface is missing the engine keeps the Python route: same answer."""
    from mixedfx.linalg import nlopt_c

    df = mfx.datasets.load("sleepstudy")
    a = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    monkeypatch.setattr(nlopt_c, "available", lambda: False)
    b = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert b.engine._small_objective() is None
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-12)
    assert a.objective == b.objective
    assert a.optinfo.nfev == b.optinfo.nfev


@pytest.mark.parametrize(
    ("name", "formula", "weights"),
    [
        ("Dyestuff", "Yield ~ 1 + (1 | Batch)", None),
        ("Dyestuff2", "Yield ~ 1 + (1 | Batch)", None),  # singular: the bound wins
        ("sleepstudy", "Reaction ~ Days + (1 | Subject)", "Days1"),
    ],
)
def test_compiled_scalar_minimization_equals_python_route(name, formula, weights):
    """One θ: bracketing and Brent's bounded method in compiled code take scipy's steps."""
    from mixedfx.engines.linear import LinearEngine
    from mixedfx.linalg.optimizer import bobyqa

    e = LinearEngine(_design(name, formula, weights), REML=True)
    small = e._small_objective()
    if small is None:
        pytest.skip("nlopt's C interface is not exported by this build")
    lower, x0 = e.design.theta_lower(), e.design.theta_start()
    for opts in ({}, e._bobyqa_options):
        py = bobyqa(e._objective_fn(), x0, lower, **opts)
        small.reset()
        c = small.scalar(x0, lower, opts.get("xtol_abs", 1e-8))
        np.testing.assert_array_equal(c.x, py.x)
        assert c.fun == py.fun
        assert c.nfev == py.nfev


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    n_groups=st.integers(3, 12),
    per_group=st.integers(2, 8),
    slope=st.booleans(),
    second=st.booleans(),
    weighted=st.booleans(),
    sd_group=st.sampled_from([0.0, 0.05, 1.0, 30.0]),
    scale=st.sampled_from([1e-3, 1.0, 1e4]),
    seed=st.integers(0, 10_000),
)
def test_compiled_fit_equals_python_fit_on_random_small_designs(
    n_groups, per_group, slope, second, weighted, sd_group, scale, seed
):
    """A whole lmer fit of a random small design (one or two terms, k = 1 or 2, weights,
    singular or not, any units) gives the same answer whether the minimization runs compiled
    or through Python."""
    from mixedfx.linalg import nlopt_c

    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    g = np.repeat(np.arange(n_groups), per_group)
    h = rng.integers(0, 3, n)
    x = rng.standard_normal(n)
    y = scale * (1 + 0.5 * x + sd_group * rng.standard_normal(n_groups)[g] + rng.standard_normal(n))
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": h.astype(str)})
    df["w"] = 1.0 + (np.arange(n) % 3) if weighted else 1.0
    re = "(x | g)" if slope else "(1 | g)"
    formula = f"y ~ x + {re}" + (" + (1 | h)" if second else "")
    w = "w" if weighted else None

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return mfx.lmer(formula, df, weights=w)
            except mfx.errors.MixedFXError:
                return None

    a = fit()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nlopt_c, "available", lambda: False)
        b = fit()
    assert (a is None) == (b is None)
    if a is None:
        return
    # BOBYQA takes the same steps (tested above); the Newton steps solve with a Cholesky
    # factor where the Python route inverts, so along a flat direction of the criterion θ may
    # differ by what the criterion cannot resolve, the objective only by rounding. At a
    # singular fit θ itself is not identified (λ11 = 0 leaves only λ21² + λ22²): the
    # covariances ΛΛ' are compared
    assert a.objective == pytest.approx(b.objective, rel=1e-11, abs=1e-11)
    for la, lb in zip(a.engine.lambdas(), b.engine.lambdas(), strict=True):
        ca, cb = la @ la.T, lb @ lb.T
        np.testing.assert_allclose(ca, cb, rtol=1e-5, atol=1e-7 * max(1.0, np.abs(cb).max()))


def test_polish_reaches_the_minimum_on_a_flat_ridge():
    """Between-group SD 30x the residual SD (θ ~ 35, the criterion flat along it): BOBYQA stops
    ~0.07 above the minimum; the Newton steps, with a new Hessian when the old one's steps
    stop shrinking fast, finish the job, compiled and through Python alike."""
    from mixedfx.linalg import nlopt_c
    from mixedfx.linalg.optimizer import newton_polish

    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(5), 5)
    h = rng.integers(0, 3, 25)
    x = rng.standard_normal(25)
    y = 1 + 0.5 * x + 30.0 * rng.standard_normal(5)[g] + rng.standard_normal(25)
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": h.astype(str)})
    df["w"] = 1.0 + np.arange(25) % 3
    formula = "y ~ x + (x | g) + (1 | h)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mfx.lmer(formula, df, weights="w")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nlopt_c, "available", lambda: False)
            b = mfx.lmer(formula, df, weights="w")
    e = a.engine
    lower = e.design.theta_lower()
    f = e._objective_fn()
    x0 = a.theta * e.units.rc
    # more Newton steps (each with a fresh Hessian) from the answer gain nothing
    best = a.objective
    for _ in range(3):
        x0, fx, _ = newton_polish(f, x0, f(x0), lower, max_iter=30)
        best = min(best, fx)
    assert a.objective == pytest.approx(best, rel=1e-12, abs=1e-12)
    assert b.objective == pytest.approx(best, rel=1e-12, abs=1e-12)
