"""power(): simulation from given parameters, rejection rates with Monte Carlo intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from mixedfx.workflows.power import _Job, clopper_pearson, design_frame, simulate_response

FORMULA = "score ~ posters + (1 | classroom)"
DESIGN = {"classroom": 20, "per_classroom": 25, "posters": "between"}
VC = {"classroom": 4.0**2}
NULL = mfx.power(
    FORMULA,
    DESIGN,
    fixef={"(Intercept)": 70, "posters": 0.0},
    varcorr=VC,
    sigma=10.0,
    nsim=300,
    seed=5,
)


def rate(sim: mfx.PowerResult, method: str, term: str = "posters") -> pd.Series:
    t = sim.table
    return t[(t["method"] == method) & (t["term"] == term)].iloc[0]


def test_ols_ignoring_classrooms_gives_far_too_many_false_positives():
    ols = rate(NULL, "ols")
    assert ols["true_value"] == 0 and ols["n_valid"] == 300
    assert ols["mc_low"] > 0.25  # the nominal level is 0.05
    mixed = rate(NULL, "mixed")
    assert mixed["mc_low"] <= 0.05 <= mixed["mc_high"]
    assert mixed["mc_high"] < ols["mc_low"]
    # OLS's standard error is far too small; the mixed model's matches the estimates' spread
    assert ols["mean_se"] < 0.6 * ols["sd_estimate"]
    assert abs(mixed["mean_se"] / mixed["sd_estimate"] - 1) < 0.15


def test_nuisance_regression_cannot_estimate_a_between_classroom_effect():
    nu = rate(NULL, "nuisance")
    assert nu["n_valid"] == 0 and np.isnan(nu["rejection_rate"])
    assert "constant within each classroom" in nu["note"]
    assert "not estimable" in str(NULL)


def test_mixed_model_test_is_the_exact_t_test_on_classroom_means():
    """Balanced design: the REML t test of a between-classroom effect (df 18) is the two-sample
    t test on the classroom means; replicate by replicate, with the same simulated data."""
    frame = design_frame(FORMULA, DESIGN)
    job = _Job(
        FORMULA,
        frame,
        True,
        None,
        {"(Intercept)": 70, "posters": 0.0},
        VC,
        10.0,
        ("ols",),
        ["posters"],
        None,
    )
    d = job.design
    refs = d.terms[0].refs
    counts = np.bincount(refs)
    post = np.bincount(refs, d.X[:, 1]) / counts == 1
    seeds = np.random.SeedSequence(5).spawn(300)
    p_means = []
    for s in seeds[:60]:
        y = simulate_response(d, job.beta, job.factors, job.sigma, np.random.default_rng(s))
        means = np.bincount(refs, y) / counts
        p_means.append(stats.ttest_ind(means[post], means[~post]).pvalue)
    est = NULL.estimates["mixed"]
    np.testing.assert_allclose(est["p_value"].to_numpy()[:60], p_means, rtol=1e-4)


def test_power_matches_the_noncentral_t():
    """Power of the between-classroom test: t with df G - 2 = 18 and noncentrality
    δ / sqrt(4 (σ_c² + σ²/m) / G) = 5 / 2."""
    sim = mfx.power(
        FORMULA,
        DESIGN,
        fixef={"(Intercept)": 70, "posters": 5.0},
        varcorr=VC,
        sigma=10.0,
        nsim=300,
        seed=11,
        methods=("mixed",),
    )
    exact = stats.nct.sf(stats.t.ppf(0.975, 18), 18, 2.5) + stats.nct.cdf(
        -stats.t.ppf(0.975, 18), 18, 2.5
    )
    r = rate(sim, "mixed")
    assert r["mc_low"] <= exact <= r["mc_high"]
    assert abs(r["mean_estimate"] - 5.0) < 3 * 2.0 / np.sqrt(300)
    assert list(sim.table["method"]) == ["mixed"]


def test_generator_moments():
    """y = Xβ + Zb + ε: Var(y_i) = σ_c² + σ², Cov within a classroom = σ_c², across = 0."""
    frame = design_frame(FORMULA, {"classroom": 4, "per_classroom": 2, "posters": "between"})
    job = _Job(
        FORMULA,
        frame,
        True,
        None,
        {"(Intercept)": 1.0, "posters": 2.0},
        {"classroom": 9.0},
        2.0,
        ("ols",),
        ["posters"],
        None,
    )
    rng = np.random.default_rng(3)
    Y = np.stack(
        [simulate_response(job.design, job.beta, job.factors, 2.0, rng) for _ in range(20000)]
    )
    np.testing.assert_allclose(Y.mean(0), 1.0 + 2.0 * frame["posters"].to_numpy(), atol=0.1)
    C = np.cov(Y, rowvar=False)
    np.testing.assert_allclose(np.diag(C), 13.0, rtol=0.05)
    assert abs(C[0, 1] - 9.0) < 0.6 and abs(C[0, 2]) < 0.6


def test_within_effect_and_vector_terms_from_a_design_frame():
    """Design as a data frame; (Days | Subject) with a 2 x 2 covariance; nuisance regression
    estimates a within-subject effect."""
    frame = mfx.datasets.load("sleepstudy")
    sim = mfx.power(
        "Reaction ~ Days + (Days | Subject)",
        frame,
        fixef={"(Intercept)": 250, "Days": 10.0},
        varcorr={"Subject": [[600.0, 10.0], [10.0, 35.0]]},
        sigma=25.0,
        nsim=40,
        seed=2,
        methods=("ols", "nuisance", "mixed"),
    )
    for meth in ("ols", "nuisance", "mixed"):
        r = rate(sim, meth, "Days")
        assert r["n_valid"] == 40 and abs(r["mean_estimate"] - 10.0) < 3.0


def test_reproducible_and_independent_of_n_jobs():
    kw = dict(fixef={"(Intercept)": 70, "posters": 0.0}, varcorr=VC, sigma=10.0, nsim=40, seed=7)
    a = mfx.power(FORMULA, DESIGN, **kw)
    b = mfx.power(FORMULA, DESIGN, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    np.testing.assert_array_equal(
        a.estimates["mixed"]["estimate"], b.estimates["mixed"]["estimate"]
    )
    c = mfx.power(FORMULA, DESIGN, **{**kw, "seed": 8})
    assert not np.array_equal(a.estimates["ols"]["estimate"], c.estimates["ols"]["estimate"])


def test_no_progress_bar_off_a_terminal(capsys):
    mfx.power(
        FORMULA,
        DESIGN,
        fixef={"(Intercept)": 70, "posters": 0.0},
        varcorr=VC,
        sigma=10.0,
        nsim=5,
        seed=1,
        methods=("ols",),
    )
    assert capsys.readouterr().err == ""


def test_clopper_pearson_against_scipy_binomtest():
    for k, n in ((0, 20), (3, 20), (20, 20), (57, 300)):
        lo, hi = clopper_pearson(k, n)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        np.testing.assert_allclose([lo, hi], [ci.low, ci.high], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(fixef={"(Intercept)": 70}), "fixef has no value for 'posters'"),
        (dict(fixef={"(Intercept)": 70, "posters": 0, "age": 1}), "fixef has 'age'"),
        (dict(varcorr={"school": 1.0}), "varcorr has 'school'"),
        (dict(varcorr={"classroom": [[1.0, 0.0], [0.0, 1.0]]}), "1 x 1 covariance"),
        (dict(varcorr={"classroom": -1.0}), "not a covariance matrix"),
        (dict(sigma=0.0), "sigma"),
        (dict(methods=("anova",)), "unknown method 'anova'"),
        (dict(design={"classroom": 20, "posters": "between"}), "per_classroom"),
        (dict(design={"classroom": 20, "per_classroom": 25, "posters": "sideways"}), "'sideways'"),
        (dict(design={"classroom": 1, "per_classroom": 25, "posters": "between"}), "at least 2"),
        (dict(terms=["poster"]), "term 'poster'"),
        (dict(nsim=0), "nsim"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = dict(
        design=DESIGN,
        fixef={"(Intercept)": 70, "posters": 0.0},
        varcorr=VC,
        sigma=10.0,
        nsim=3,
        seed=1,
    )
    args.update(kwargs)
    with pytest.raises(mfx.MixedFXError, match=match):
        mfx.power(FORMULA, **args)


def test_design_missing_a_predictor_names_it():
    with pytest.raises(mfx.ColumnNotFoundError, match="'posters'"):
        mfx.power(
            FORMULA, {"classroom": 20, "per_classroom": 25}, fixef={}, varcorr=VC, sigma=1.0, nsim=2
        )


def test_progress_bar_when_asked(capsys):
    mfx.power(
        FORMULA,
        DESIGN,
        fixef={"(Intercept)": 70, "posters": 0.0},
        varcorr=VC,
        sigma=10.0,
        nsim=5,
        seed=1,
        methods=("mixed",),
        progress=True,
    )
    assert "5/5" in capsys.readouterr().err


def test_uncorrelated_terms_by_name_and_ml():
    """(Days || Subject) has two terms, named Subject and Subject.1 as in VarCorr."""
    sim = mfx.power(
        "Reaction ~ Days + (Days || Subject)",
        mfx.datasets.load("sleepstudy"),
        fixef={"(Intercept)": 250, "Days": 0.0},
        varcorr={"Subject": 600.0, "Subject.1": 35.0},
        sigma=25.0,
        nsim=10,
        seed=1,
        REML=False,
        methods=("mixed",),
    )
    assert rate(sim, "mixed", "Days")["n_valid"] == 10


def test_replicates_start_from_the_simulated_theta():
    """Every replicate's fit starts from the θ simulated from (so no replicate depends on
    another): Λ = chol(Σ)/σ in lme4's order, a semi-definite Σ with zero columns."""
    from mixedfx.workflows.power import _theta_of

    S = np.array([[4.0, 1.2], [1.2, 0.9]])
    L = np.linalg.cholesky(S)
    w, V = np.linalg.eigh(S)
    got = _theta_of([np.array([[3.0]]), V * np.sqrt(w)], 2.0)
    np.testing.assert_allclose(got, [1.5, L[0, 0] / 2, L[1, 0] / 2, L[1, 1] / 2], rtol=1e-12)
    # perfectly correlated: the second pivot is zero
    np.testing.assert_allclose(_theta_of([np.array([[1.0, 0.0], [2.0, 0.0]])], 1.0), [1, 2, 0])
