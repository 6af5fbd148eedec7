"""The PLS criterion equals the dense marginal log-likelihood (an independent computation).

For small random designs, y ~ N(Xβ + offset, σ² V) with V = W⁻¹ + Z Λ Λ' Z' can be evaluated
directly. Profiling β (GLS) and σ out of it gives, with r = y - offset - Xβ̂,

    ML:   -2ℓ  = n log(2π σ̂²) + log|V| + n,                        σ̂² = r'V⁻¹r / n
    REML: -2ℓR = (n-p) log(2π σ̂²) + log|V| + log|X'V⁻¹X| + (n-p),  σ̂² = r'V⁻¹r / (n-p)

The test draws designs with scalar and vector terms, nested and crossed grouping factors,
weights and offsets, and random θ, and compares the two for REML and ML.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.linalg.crossprod import term_matrix
from mixedfx.linalg.factor import lambda_blocks


def dense_criterion(model: mfx.LinearMixedModel, theta: np.ndarray, reml: bool) -> float:
    d = model.design
    X = d.X
    n, p = X.shape
    y = d.y - (d.offset if d.offset is not None else 0.0)
    Z = np.hstack([term_matrix(t).toarray() for t in d.terms])
    lams = lambda_blocks(theta, [t.k for t in d.terms])
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    pos = 0
    for t, lam in zip(d.terms, lams, strict=True):
        Lam[pos : pos + t.q, pos : pos + t.q] = np.kron(np.eye(t.nlevels), lam)
        pos += t.q
    w = d.weights if d.weights is not None else np.ones(n)
    V = np.diag(1.0 / w) + Z @ Lam @ Lam.T @ Z.T
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    rss = float(r @ Vi @ r)
    _, logdetV = np.linalg.slogdet(V)
    if reml:
        s2 = rss / (n - p)
        return (n - p) * np.log(2 * np.pi * s2) + logdetV + np.linalg.slogdet(XtViX)[1] + (n - p)
    s2 = rss / n
    return n * np.log(2 * np.pi * s2) + logdetV + n


@st.composite
def designs(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    structure = draw(st.sampled_from(["one", "crossed", "nested", "three"]))
    n1 = draw(st.integers(2, 6))
    n2 = draw(st.integers(2, 5))
    per = draw(st.integers(2, 4))
    vector1 = draw(st.booleans())
    vector2 = draw(st.booleans())
    uncorrelated = draw(st.booleans())
    use_weights = draw(st.booleans())
    use_offset = draw(st.booleans())
    n = n1 * n2 * per
    g1 = np.repeat(np.arange(n1), n2 * per)
    g2 = np.tile(np.repeat(np.arange(n2), per), n1)
    if structure == "crossed":
        g2 = rng.integers(0, n2, n)
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n) * 2 + 1,
            "x": rng.standard_normal(n),
            "z": rng.uniform(-1, 1, n),
            "g1": [f"a{v}" for v in g1],
            "g2": [f"b{v}" for v in g2],
            "g3": rng.integers(0, 3, n),
            "w": rng.uniform(0.5, 2.0, n),
            "o": rng.standard_normal(n) * 0.3,
        }
    )
    e1 = "x" if vector1 else "1"
    bar = "||" if uncorrelated else "|"
    terms = [f"({e1} {bar} g1)"]
    if structure == "crossed":
        terms.append(f"({'z' if vector2 else '1'} | g2)")
    elif structure == "nested":
        terms = ["(1 | g1/g2)"]
        if vector1:
            terms.append("(0 + x | g1)")
    elif structure == "three":
        terms += ["(1 | g2)", "(1 | g3)"]
    formula = "y ~ x + z + " + " + ".join(terms)
    return df, formula, use_weights, use_offset, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(), st.booleans())
def test_pls_criterion_equals_dense_likelihood(case, reml):
    df, formula, use_weights, use_offset, seed = case
    try:
        model = mfx.LinearMixedModel(
            formula,
            df,
            REML=reml,
            weights="w" if use_weights else None,
            offset="o" if use_offset else None,
        )
    except mfx.ModelError:
        return  # more random effects than observations for this draw: lme4 refuses too
    rng = np.random.default_rng(seed + 1)
    lower = model.design.theta_lower()
    theta = np.where(lower == 0, rng.uniform(0.05, 2.0, lower.size), rng.uniform(-1, 1, lower.size))
    got = model.objective_at(theta)
    want = dense_criterion(model, theta, reml)
    assert np.isfinite(got)
    assert abs(got - want) <= 1e-8 * max(1.0, abs(want))


def test_dense_check_at_the_boundary():
    """θ = 0 (a singular fit) is handled by the factor: the criterion is that of OLS."""
    df = mfx.datasets.load("sleepstudy")
    m = mfx.LinearMixedModel("Reaction ~ Days + (Days | Subject)", df)
    theta = np.array([0.0, 0.0, 0.0])
    assert m.objective_at(theta) == pytest.approx(dense_criterion(m, theta, True), rel=1e-10)
