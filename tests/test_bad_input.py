"""Never silently wrong (issue 11, the input half): every kind of input a user meets gets the
right answer, or a mixedfx error or warning whose one-line message names the argument, column,
term or value at fault. What lme4 does is the guide (R 4.2, lme4 1.1-31, checked by hand)."""

from __future__ import annotations

import math
import pathlib
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.cli import main
from mixedfx.errors import DataWarning
from mixedfx.frame.design import drop_rank_deficient
from mixedfx.inference.bootstrap import bootstrap

N = 60


def frame(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(list("abcdef"), 10)
    b = rng.normal(size=6)[np.repeat(np.arange(6), 10)]
    x = rng.normal(size=N)
    return pd.DataFrame(
        {
            "y": 1.0 + 0.5 * x + b + rng.normal(size=N),
            "x": x,
            "z": rng.normal(size=N),
            "g": g,
            "k": rng.binomial(10, 0.3, N),
            "size": np.full(N, 10),
        }
    )


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        warnings.simplefilter("ignore", mfx.MissingValuesWarning)
        return fn(*args, **kwargs)


def same_fit(a, b, rtol=1e-7):
    assert list(a.fixef.index) == list(b.fixef.index)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-9)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def df():
    return frame()


@pytest.fixture(scope="module")
def m(df):
    return quiet(mfx.lmer, "y ~ x + (1 | g)", df)


@pytest.fixture(scope="module")
def gm(df):
    return quiet(mfx.glmer, "cbind(k, size - k) ~ x + (1 | g)", df, family="binomial")


# ------------------------------------------------------------------ 1. formulas
def test_dot_is_every_column_but_the_response_as_in_r(df):
    d = df[["y", "x", "g"]]
    dot = quiet(mfx.lmer, "y ~ . + (1 | g)", d)
    assert "y" not in dot.fixef.index  # was fitted as a predictor of itself (sigma 2e-8)
    same_fit(dot, quiet(mfx.lmer, "y ~ x + g + (1 | g)", d))  # lme4: g is a fixed effect too
    minus = quiet(mfx.lmer, "y ~ . - z - g + (1 | g)", df[["y", "x", "z", "g"]])
    same_fit(minus, quiet(mfx.lmer, "y ~ x + (1 | g)", df))


def test_dot_leaves_out_every_variable_of_a_cbind_response(df):
    d = df[["k", "size", "x", "g"]]
    dot = quiet(mfx.glmer, "cbind(k, size - k) ~ . + (1 | g)", d, family="binomial")
    ref = quiet(mfx.glmer, "cbind(k, size - k) ~ x + g + (1 | g)", d, family="binomial")
    assert list(dot.fixef.index) == list(ref.fixef.index)
    np.testing.assert_allclose(dot.objective, ref.objective, rtol=1e-9)


def test_dot_outside_the_fixed_part_is_refused(df):
    with pytest.raises(mfx.FormulaError, match="fixed-effects part only"):
        mfx.lmer("y ~ x + (. | g)", df)


def test_names_in_any_alphabet(df, m):
    d = df.rename(columns={"x": "déjà"})
    fit = quiet(mfx.lmer, "y ~ déjà + (1 | g)", d)  # was read as a variable 'd'
    np.testing.assert_allclose(fit.fixef["déjà"], m.fixef["x"], rtol=1e-8)


def test_numbers_with_exponents_are_not_names(df, m):
    fit = quiet(mfx.lmer, "y ~ I(x * 1e3) + (1 | g)", df)  # asked for a variable 'e3'
    np.testing.assert_allclose(fit.fixef.iloc[1] * 1e3, m.fixef["x"], rtol=1e-7)


def test_back_quoted_grouping_factor_with_a_space(df, m):
    d = df.rename(columns={"g": "my group"})
    fit = quiet(mfx.lmer, "y ~ x + (1 | `my group`)", d)
    same_fit(fit, m)
    assert fit.ngroups == {"my group": 6}
    np.testing.assert_allclose(fit.predict(d), m.predict(df), rtol=1e-8)
    upd = quiet(fit.update, ". ~ . + z")  # update re-writes the term with its quotes
    assert "z" in upd.fixef.index


@pytest.mark.parametrize(
    "formula",
    ["y ~ x + (1 | g) # a note", "y ~ x + ((1 | g))", "y ~ x + (((1 | g)))", "y ~ x + (1|g)\n#"],
)
def test_comments_and_extra_brackets_are_r_syntax(df, m, formula):
    same_fit(quiet(mfx.lmer, formula, df), m)


def test_response_on_the_right_is_dropped_with_r_warning(df, m):
    with pytest.warns(DataWarning, match="appeared on the right-hand side"):
        fit = quiet_singular(mfx.lmer, "y ~ y + x + (1 | g)", df)
    same_fit(fit, m)


def test_powers_of_sums_are_expanded_as_r(df):
    # formulaic's own expansion of (a + ... )^k takes time exponential in k
    rng = np.random.default_rng(7)
    d = df.assign(a=rng.normal(size=N), b=rng.normal(size=N))
    big = quiet(mfx.lmer, "y ~ (x + z + a + b)^40 + (1 | g)", d)
    ref = quiet(mfx.lmer, "y ~ x * z * a * b + (1 | g)", d)
    assert list(big.fixef.index[:7]) == ["(Intercept)", "x", "z", "a", "b", "x:z", "x:a"]
    np.testing.assert_allclose(big.fixef, ref.fixef[big.fixef.index], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(big.objective, ref.objective, rtol=1e-9)
    same_fit(
        quiet(mfx.lmer, "y ~ .^2 + (1 | g)", df[["y", "x", "z", "g"]]),
        quiet(mfx.lmer, "y ~ (x + z + g)^2 + (1 | g)", df),
    )


def test_ordered_factors_get_polynomial_contrasts_as_r(df):
    o = pd.Categorical(
        np.tile(["lo", "mid", "hi"], 20), categories=["lo", "mid", "hi"], ordered=True
    )
    fit = quiet(mfx.lmer, "y ~ o * x + (1 | g)", df.assign(o=o), REML=False)
    assert list(fit.fixef.index) == ["(Intercept)", "o.L", "o.Q", "x", "o.L:x", "o.Q:x"]
    # the same model in another parametrization (lme4 1.1-31 gives these names and values)
    unordered = quiet(mfx.lmer, "y ~ o * x + (1 | g)", df.assign(o=o.as_unordered()), REML=False)
    np.testing.assert_allclose(fit.objective, unordered.objective, rtol=1e-9)
    np.testing.assert_allclose(fit.predict(df.assign(o=o)), unordered.predict(), rtol=1e-8)


def test_a_column_named_like_the_intercept_is_refused(df):
    d = df.assign(**{"1": df["g"]})
    with pytest.raises(mfx.FormulaError, match="column named '1'"):
        mfx.lmer("y ~ `1` + (1 | g)", d)
    fit = quiet(mfx.lmer, "y ~ `0` + (1 | g)", df.assign(**{"0": df["x"]}))
    assert list(fit.fixef.index) == ["(Intercept)", "0"]


def test_two_tildes_are_a_formula_error(df):
    with pytest.raises(mfx.FormulaError, match="more than one '~'") as err:
        mfx.lmer("y ~ x ~ z + (1 | g)", df)
    assert err.value.position == 6


def test_unclosed_quote_is_a_formula_error(df):
    with pytest.raises(mfx.FormulaError, match="unclosed"):
        mfx.lmer("y ~ x + (1 | `g)", df)


# ------------------------------------------------- 2. missing values, pandas and Arrow types
def dropped_fit(formula, d, rows, **kwargs):
    """The fit on the data with ``rows`` removed by hand."""
    return quiet(mfx.lmer, formula, d.drop(index=rows).reset_index(drop=True), **kwargs)


def test_na_in_a_nullable_boolean_is_missing(df):
    d = df.copy()
    d["b"] = pd.array(np.arange(N) % 2 == 0, dtype="boolean")
    d.loc[3, "b"] = pd.NA
    with pytest.warns(mfx.MissingValuesWarning, match="1 of 60 rows dropped.*b"):
        fit = quiet_singular(mfx.lmer, "y ~ b + (1 | g)", d)
    assert fit.nobs == 59  # was coded False and kept
    ref = df.drop(index=3).assign(b=(np.arange(N) % 2 == 0)[np.arange(N) != 3])
    same_fit(fit, quiet(mfx.lmer, "y ~ b + (1 | g)", ref.reset_index(drop=True)))


def quiet_singular(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("dtype", ["Int64", "int64[pyarrow]", "UInt8", "Float64"])
def test_na_in_a_nullable_integer_grouping_factor_is_missing(df, dtype):
    d = df.copy()
    d["h"] = pd.array(np.repeat(np.arange(6), 10), dtype=dtype)
    d.loc[3, "h"] = pd.NA
    fit = quiet(mfx.lmer, "y ~ x + (1 | h)", d)
    assert fit.ngroups == {"h": 6}  # NA was an extra level
    ref = df.drop(index=3).assign(h=np.repeat(np.arange(6), 10)[np.arange(N) != 3])
    same_fit(fit, quiet(mfx.lmer, "y ~ x + (1 | h)", ref.reset_index(drop=True)))


@pytest.mark.parametrize("dtype", ["Int64", "int32[pyarrow]", "Float64", "double[pyarrow]"])
def test_na_in_a_nullable_predictor_is_missing(df, dtype):
    d = df.copy()
    d["w"] = pd.array(np.arange(N) % 5, dtype=dtype)
    d.loc[[3, 7], "w"] = pd.NA
    fit = quiet(mfx.lmer, "y ~ w + (1 | g)", d)  # Int64 NA was refused as "infinite"
    assert fit.design.frame.n_dropped == 2
    ref = df.assign(w=(np.arange(N) % 5).astype(float)).drop(index=[3, 7])
    same_fit(fit, quiet(mfx.lmer, "y ~ w + (1 | g)", ref.reset_index(drop=True)))


def test_nan_from_arithmetic_in_a_nullable_float_is_missing(df):
    d = df.copy()
    num = pd.array(np.arange(N, dtype=float), dtype="Float64")
    d["w"] = num / num * pd.array(df["z"], dtype="Float64")  # 0/0: NaN (not NA) in Float64
    fit = quiet(mfx.lmer, "y ~ w + (1 | g)", d)
    assert fit.nobs == 59
    same_fit(fit, quiet(mfx.lmer, "y ~ w + (1 | g)", df.iloc[1:].rename(columns={"z": "w"})))


@pytest.mark.parametrize("dtype", ["string", "string[pyarrow]", "str", "category", object])
def test_strings_of_any_storage_are_categories(df, dtype):
    rng = np.random.default_rng(2)
    s = rng.choice(["u", "v", "w"], N)
    ref = quiet(mfx.lmer, "y ~ s + (1 | g)", df.assign(s=s.astype(object)))
    fit = quiet(mfx.lmer, "y ~ s + (1 | g)", df.assign(s=pd.array(s, dtype=dtype)))
    same_fit(fit, ref)  # "string" failed: could not convert string to float
    new = df.assign(s=pd.array(s, dtype=dtype)).iloc[:10]
    np.testing.assert_allclose(fit.predict(new), ref.predict(new), rtol=1e-10)


def test_arrow_strings_and_dictionaries(df):
    pa = pytest.importorskip("pyarrow")
    s = np.where(np.arange(N) % 3 == 0, "p", "q")
    ref = quiet(mfx.lmer, "y ~ s + (1 | g)", df.assign(s=s.astype(object)))
    arr = pd.array(s, dtype=pd.ArrowDtype(pa.string()))
    same_fit(quiet(mfx.lmer, "y ~ s + (1 | g)", df.assign(s=arr)), ref)
    dic = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(s).dictionary_encode()))
    same_fit(quiet(mfx.lmer, "y ~ s + (1 | g)", df.assign(s=dic)), ref)
    groups = pd.array(df["g"], dtype=pd.ArrowDtype(pa.string()))
    same_fit(
        quiet(mfx.lmer, "y ~ x + (1 | g)", df.assign(g=groups)),
        quiet(mfx.lmer, "y ~ x + (1 | g)", df),
    )


def test_object_column_with_none(df):
    rng = np.random.default_rng(3)
    d = df.copy()
    d["o"] = pd.Series(rng.choice(["u", "v", "w"], N), dtype=object)
    d.loc[3, "o"] = None
    fit = quiet(mfx.lmer, "y ~ o + (1 | g)", d)
    assert fit.nobs == 59
    d["n"] = pd.Series(np.arange(N, dtype=float), dtype=object)
    d.loc[5, "n"] = None  # numbers in an object column are numbers
    fit = quiet(mfx.lmer, "y ~ n + (1 | g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "n"] and fit.nobs == 59


def test_dates_as_predictors_are_refused_and_as_groups_are_levels(df):
    d = df.assign(
        t=pd.date_range("2020-01-01", periods=N),
        day=pd.to_datetime(np.repeat(pd.date_range("2021-01-01", periods=6), 10)),
    )
    with pytest.raises(mfx.DataError, match="'t' holds dates or times"):
        mfx.lmer("y ~ t + (1 | g)", d)
    fit = quiet(mfx.lmer, "y ~ x + (1 | day)", d)
    assert fit.ngroups == {"day": 6}


def test_na_in_weights_and_offset_rows_are_dropped(df, m):
    w = np.ones(N)
    w[4] = np.nan
    fit = quiet(mfx.lmer, "y ~ x + (1 | g)", df, weights=w)
    assert fit.nobs == 59


def test_all_rows_missing(df):
    d = df.assign(w=pd.array([pd.NA] * N, dtype="Int64"))
    with pytest.raises(mfx.DataError, match=r"no rows left.*w"):
        mfx.lmer("y ~ w + (1 | g)", d)


# -------------------------------------------------------------------- 3. arguments
@pytest.mark.parametrize("value", ["no", None, 1, "FALSE"])
def test_reml_must_be_a_bool(df, value):
    with pytest.raises(mfx.ModelError, match="REML"):
        mfx.lmer("y ~ x + (1 | g)", df, REML=value)


@pytest.mark.parametrize("value", [1.5, None, "1", -1, 101, True])
def test_nagq_must_be_a_whole_number_of_nodes(df, value):
    with pytest.raises(mfx.ModelError, match="nAGQ"):
        mfx.glmer("cbind(k, size - k) ~ x + (1 | g)", df, nAGQ=value)


@pytest.mark.parametrize(
    ("start", "match"),
    [
        ([np.nan], "missing or infinite"),
        ([1.0, 2.0], "has 2 values; the model needs 1"),
        ({"theta": [np.inf]}, "missing or infinite"),
        ({"fixef": [0.0, 0.0]}, "entry 'fixef'"),
        ("1", "array of numbers"),
    ],
)
def test_lmer_start_is_checked_before_the_optimizer(df, start, match):
    with pytest.raises(mfx.DataError, match=match) as err:
        mfx.lmer("y ~ x + (1 | g)", df, start=start)
    assert "start" in str(err.value)


def test_lmer_start_as_lme4_list(df, m):
    fit = quiet(mfx.lmer, "y ~ x + (1 | g)", df, start={"theta": [0.5]})
    np.testing.assert_allclose(fit.objective, m.objective, rtol=1e-8)


@pytest.mark.parametrize(
    ("start", "match"),
    [
        ([np.nan], "missing or infinite"),
        ({"theta": [1.0], "fixef": [0.0]}, "start\\['fixef'\\] has 1 value;"),
        ({"theta": [1.0], "beta": [0.0, 0.0]}, "entry 'beta'"),
        ({"fixef": [np.nan, 0.0]}, "missing or infinite"),
    ],
)
def test_glmer_start_is_checked(df, start, match):
    with pytest.raises(mfx.DataError, match=match):
        mfx.glmer("cbind(k, size - k) ~ x + (1 | g)", df, start=start)


def test_weights_of_strings_name_the_column(df):
    with pytest.raises(mfx.DataError, match="weights must be numbers; column 'g'"):
        mfx.lmer("y ~ x + (1 | g)", df, weights="g")
    with pytest.raises(mfx.DataError, match="offset must be numbers"):
        mfx.lmer("y ~ x + (1 | g)", df, offset=["a"] * N)
    with pytest.raises(mfx.DataError, match="weights must be a column name or an array"):
        mfx.lmer("y ~ x + (1 | g)", df, weights={"a": 1.0})


def test_bootstrap_profile_anova_arguments(m):
    with pytest.raises(mfx.DataError, match="seed"):
        m.bootstrap(nsim=2, seed="abc")
    with pytest.raises(mfx.DataError, match="which: unknown parameter 'nope'"):
        m.profile(which=["nope"])
    with pytest.raises(mfx.ModelError, match="argument 2 is str"):
        mfx.anova(m, "x")


def power_args(**kw):
    args = dict(
        formula="y ~ x + (1 | g)",
        design={"g": 10, "per_g": 4, "x": "between"},
        fixef={"(Intercept)": 0.0, "x": 0.0},
        varcorr={"g": 1.0},
        sigma=1.0,
        nsim=2,
        seed=1,
        methods=("ols",),
    )
    args.update(kw)
    return args


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(fixef={"(Intercept)": np.nan, "x": 0.0}), r"fixef\['\(Intercept\)'\]"),
        (dict(varcorr={"g": np.nan}), r"varcorr\['g'\]"),
        (dict(varcorr={"g": "big"}), r"varcorr\['g'\]"),
        (dict(sigma=math.inf), "sigma"),
        (dict(sigma=True), "sigma"),
        (dict(alpha=math.nan), "alpha"),
        (dict(nsim=2.5), "nsim"),
        (dict(seed="abc"), "seed"),
        (dict(n_jobs=0), "n_jobs"),
        (dict(REML="yes"), "REML"),
        (dict(progress="no"), "progress"),
        (dict(methods="ols, mixed"), "methods"),
        (dict(terms=[1]), "terms"),
        (dict(fixef=[0.0, 0.0]), "fixef must be a dict"),
        (dict(design={"g": 10, "per_g": 4, "x": {"a": 1}}), "design entry 'x'"),
        (dict(design={"g": 10**5, "per_g": 10**4, "x": "between"}), "rows"),
    ],
)
def test_power_arguments(kw, match):
    with pytest.raises(mfx.DataError, match=match):
        mfx.power(**power_args(**kw))


def test_power_with_too_many_groups_for_nuisance_regression_says_so():
    # 10^6 groups tried to allocate 14.6 TiB of batch indicators; refused before allocating
    args = power_args(design={"g": 20000, "per_g": 2, "x": "between"}, methods=("nuisance",))
    with pytest.raises(mfx.ModelError, match=r"40000 x 20002 .*GiB.*leave 'nuisance' out"):
        mfx.power(**args)


# ------------------------------------------------------- 4. what cannot be estimated
def test_constant_response_is_refused_as_lme4(df):
    d = df.assign(c=3.0)
    with pytest.raises(mfx.ModelError, match="response 'c' is constant"):
        mfx.lmer("c ~ x + (1 | g)", d)
    with pytest.raises(mfx.ModelError, match="is constant"):
        mfx.glmer("c ~ x + (1 | g)", d.assign(c=0), family="binomial")
    with pytest.raises(mfx.ModelError, match="is constant"):
        mfx.glmer("c ~ x + (1 | g)", d.assign(c=2), family="poisson")


def test_a_perfect_fit_is_refused_or_flagged(df):
    d = df.assign(y2=2.0 * df["x"] + 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = mfx.lmer("y2 ~ x + (1 | g)", d)
        except mfx.ModelError as exc:
            assert "perfect fit" in str(exc)
            return
    assert np.all(np.isfinite([fit.objective, fit.sigma, *fit.fixef, *fit.theta]))
    assert any(issubclass(w.category, mfx.ConvergenceWarning) for w in caught)


def test_ols_warns_of_an_essentially_perfect_fit(df):
    with pytest.warns(DataWarning, match="essentially perfect fit"):
        mfx.ols("c ~ x", df.assign(c=3.0))


def test_more_fixed_effects_than_observations(df):
    small = df.iloc[:8].copy()
    rng = np.random.default_rng(4)
    for j in range(10):
        small[f"z{j}"] = rng.normal(size=8)
    small["g"] = list("aabbccdd")
    rhs = " + ".join(f"z{j}" for j in range(10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.RankDeficiencyWarning)
        with pytest.raises(mfx.ModelError, match="8 fixed-effects coefficients for 8"):
            mfx.lmer(f"y ~ {rhs} + (1 | g)", small)
        with pytest.raises(mfx.ModelError, match="more observations than coefficients"):
            mfx.ols(f"y ~ {rhs}", small)


def test_more_columns_than_rows_keeps_the_first_independent_ones():

    X = np.random.default_rng(5).normal(size=(5, 8))
    X[:, 1] = X[:, 0]  # a repeated column is dropped first
    np.testing.assert_array_equal(
        drop_rank_deficient(X, [str(j) for j in range(8)]), [0, 2, 3, 4, 5]
    )


def test_predict_after_a_numeric_column_was_dropped_as_rank_deficient(df):
    # found by the property tests: the dropped column was still made for new data
    d = df.assign(x2=2.0 * df["x"])
    with pytest.warns(mfx.RankDeficiencyWarning, match="x2"):
        fit = quiet_singular(mfx.lmer, "y ~ x + x2 + (1 | g)", d)
    np.testing.assert_allclose(fit.predict(d), fit.predict(), rtol=1e-12)


def test_refit_with_missing_values_in_the_response(m, gm):
    y = m.y.copy()
    y[2] = np.nan
    with pytest.raises(mfx.DataError, match="y \\(the new response\\) has a missing"):
        m.refit(y)
    yb = gm.y.copy()
    yb[5] = np.nan
    with pytest.raises(mfx.DataError, match="missing or infinite value \\(nan at position 6"):
        gm.refit(yb)
    with pytest.raises(mfx.DataError, match="has 3 values; the model needs 60"):
        gm.refit(np.ones(3))


# ------------------------------------------------------------------ 5. GLMM input
def test_fractional_binomial_counts_are_an_error(df):
    with pytest.raises(mfx.DataError, match="whole numbers of successes and failures; row 1"):
        mfx.glmer("cbind(kf, size - kf) ~ x + (1 | g)", df.assign(kf=df.k + 0.5))
    with pytest.raises(mfx.DataError, match="whole numbers of successes"):
        mfx.glmer("p ~ x + (1 | g)", df.assign(p=(df.k + 0.5) / df["size"]), weights="size")


def test_proportions_without_weights_warn_as_lme4(df):
    d = df.assign(p=df.k / df["size"])
    with pytest.warns(DataWarning, match="non-integer #successes.*'p'.*weights"):
        quiet_singular(mfx.glmer, "p ~ x + (1 | g)", d, family="binomial")


def test_rows_with_zero_trials_carry_no_information(df):
    d = df.copy()
    d.loc[:4, "size"] = 0
    d.loc[:4, "k"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = quiet(mfx.glmer, "cbind(k, size - k) ~ x + (1 | g)", d, family="binomial")
    ref = quiet(mfx.glmer, "cbind(k, size - k) ~ x + (1 | g)", d.iloc[5:].reset_index(drop=True))
    assert fit.nobs == N  # lme4 counts them
    assert np.isfinite(fit.objective)
    np.testing.assert_allclose(fit.objective, ref.objective, rtol=1e-8)
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=1e-6)


def test_all_trials_zero_is_refused(df):
    d = df.assign(k=0, size=0)
    with pytest.raises(mfx.ModelError, match="constant"):
        mfx.glmer("cbind(k, size - k) ~ x + (1 | g)", d)


# ------------------------------------------------------------------ 7. elsewhere
def test_unused_levels_are_dropped_as_r_model_frame(df):
    d = df.assign(
        h=pd.Categorical(np.where(np.arange(N) % 2 == 0, "b", "c"), categories=["a", "b", "c"]),
        gc=pd.Categorical(df["g"], categories=["zz", *"abcdef"]),
    )
    fit = quiet(mfx.lmer, "y ~ h + (1 | gc)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "hc"]  # lme4: the reference is b
    assert fit.ngroups == {"gc": 6}
    assert not fit.design.fixed.dropped


def test_pickled_models_predict_the_same(m, gm, df):
    for model in (m, gm):
        back = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(back.predict(df), model.predict(df))
        np.testing.assert_array_equal(back.fixef, model.fixef)


def run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_directory_and_device_are_not_missing_files(tmp_path, capsys):
    code, _, err = run_cli(["fit", str(tmp_path), "y ~ x + (1 | g)"], capsys)
    assert code == 2 and "no such file" not in err and str(tmp_path) in err
    if pathlib.Path("/dev/null").exists():
        code, _, err = run_cli(["fit", "/dev/null", "y ~ x + (1 | g)"], capsys)
        assert code == 2 and "cannot read /dev/null: it is empty" in err


def test_cli_prints_no_terminal_escapes(capsys):
    code, _, err = run_cli(["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject')"], capsys)
    assert code == 2 and "unclosed string" in err
    assert "\\'" not in err
    code, _, err = run_cli(["fit", "sleepstudy", "Reaction ~ Days + \x1b[31m(1 | Subject)"], capsys)
    assert code == 2 and "\x1b" not in err and "\\x1b" in err


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--link", "probit"], "--link applies"), (["--nagq", "3"], "--nagq applies")],
)
def test_cli_glmm_options_need_a_family(extra, match, capsys):
    code, _, err = run_cli(["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject)", *extra], capsys)
    assert code == 2 and match in err and "--family" in err


# --------------------------------------- every public entry point checks its arguments
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: mfx.lmer(5, d), "formula must be a string"),
        (lambda d: mfx.lmer("y ~ x + (1 | g)", None), "data must be a data frame"),
        (lambda d: mfx.lmer("y ~ x + (1 | g)", d, check_conv="yes"), "check_conv"),
        (lambda d: mfx.lmer("y ~ x + (1 | g)", d, weights=2.0), "weights"),
        (lambda d: mfx.lmer("y ~ x + (1 | g)", d, offset=np.ones((N, 2))), "offset"),
        (lambda d: mfx.lmer("y ~ x + (1 | g)", d, weights=np.ones(3)), "weights has length 3"),
        (lambda d: mfx.glmer("k ~ x + (1 | g)", d, family=3), "family"),
        (lambda d: mfx.glmer("k ~ x + (1 | g)", d, family="poison"), "family"),
        (lambda d: mfx.ols(None, d), "formula must be a string"),
        (lambda d: mfx.ols("y ~ x", d, weights="g"), "weights"),
        (lambda d: mfx.ols("y ~ x", d).confint(level=95), "level"),
        (lambda d: mfx.compare_controls("y ~ x + (1 | g)", d, level=95), "level"),
        (lambda d: mfx.compare_controls("y ~ x + (1 | g)", d, ddf="kr"), "ddf"),
        (lambda d: mfx.compare_controls("y ~ x + (1 | g)", d, REML=None), "REML"),
    ],
)
def test_fitting_functions_name_the_bad_argument(df, call, match):
    with pytest.raises(mfx.MixedFXError, match=match):
        quiet(call, df)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, d: m.predict(5), "data must be a data frame"),
        (lambda m, d: m.predict(d, allow_new_levels="yes"), "allow_new_levels"),
        (lambda m, d: m.predict(d, re_form=3), "re_form"),
        (lambda m, d: m.predict(d.drop(columns="x")), "newdata: variable 'x'"),
        (lambda m, d: m.simulate(0), "nsim"),
        (lambda m, d: m.simulate("3"), "nsim"),
        (lambda m, d: m.simulate(1, use_u=1), "use_u"),
        (lambda m, d: m.simulate(1, seed=-1), "seed"),
        (lambda m, d: m.simulate(10**8), "nsim"),
        (lambda m, d: m.refit("y"), "y \\(the new response\\)"),
        (lambda m, d: m.refit(np.ones((N, 2))), "one-dimensional"),
        (lambda m, d: m.refit(np.full(N, 2.0)), "is constant"),
        (lambda m, d: m.refit(d["y"], check_conv="no"), "check_conv"),
        (lambda m, d: m.update(3), "formula must be a string"),
        (lambda m, d: m.update(REML="no"), "REML"),
        (lambda m, d: m.update(foo=1), "unknown argument"),
        (lambda m, d: m.update(start=[np.nan]), "start"),
        (lambda m, d: m.update(". ~ . + z", start=[1.0, 1.0]), "start"),
        (lambda m, d: m.confint(method="wald", level=2), "level"),
        (lambda m, d: m.confint(method="x"), "method"),
        (lambda m, d: m.confint(method="wald", parm=["nope"]), "parameter 'nope'"),
        (lambda m, d: m.confint(method="wald", parm=3), "parm"),
        (lambda m, d: bootstrap(m.engine, nsim=2, statistics=lambda e: [1.0]), "statistics"),
        (lambda m, d: m.confint(method="wald", nsim=-1), "nsim"),
        (lambda m, d: m.confint(method="wald", seed="a"), "seed"),
        (lambda m, d: m.confint(method="wald", n_jobs=1.5), "n_jobs"),
        (lambda m, d: m.profile(level_max=1.5), "level_max"),
        (lambda m, d: m.profile(which=3), "which"),
        (lambda m, d: m.bootstrap(nsim=0), "nsim"),
        (lambda m, d: m.bootstrap(nsim=2, n_jobs=0), "n_jobs"),
        (lambda m, d: m.bootstrap(nsim=2, progress="x"), "progress"),
        (lambda m, d: mfx.anova(m), "two or more models"),
        (lambda m, d: mfx.anova(m, m, names=[1, 2]), "names"),
        (lambda m, d: mfx.anova(m, m, names=["a"]), "names"),
        (lambda m, d: mfx.anova(m, m, refit="no"), "refit"),
    ],
)
def test_methods_name_the_bad_argument(m, df, call, match):
    with pytest.raises(mfx.MixedFXError, match=match):
        quiet(call, m, df)


def test_glmer_methods_name_the_bad_argument(gm, df):
    with pytest.raises(mfx.ModelError, match="type"):
        gm.predict(df, type="probability")
    with pytest.raises(mfx.ModelError, match="REML"):
        gm.update(REML=True)
    with pytest.raises(mfx.ModelError, match="nAGQ"):
        gm.update(nAGQ=0.5)
    with pytest.raises(mfx.DataError, match="start"):
        gm.copy(start={"theta": [np.nan]})


def test_command_line_checks_its_numbers(capsys):
    argv = ["fit", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)"]
    code, _, err = run_cli([*argv, "--family", "binomial", "--nagq", "-2"], capsys)
    assert code == 2 and "--nagq" in err and "Traceback" not in err
