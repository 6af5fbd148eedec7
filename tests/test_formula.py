"""lme4's formula language: parsing, expansions, R names, and the fits they lead to."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame.formula import parse_formula


def exprs(text):
    return [(t.expr, t.factors) for t in parse_formula(text).random]


def test_random_terms_and_fixed_part():
    f = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert f.response == "Reaction"
    assert f.fixed == "1 + Days"
    assert exprs("y ~ x + (x | g)") == [("x", ("g",))]


def test_double_bar_splits_into_one_term_per_column():
    assert exprs("y ~ x + (x || g)") == [("1", ("g",)), ("0 + x", ("g",))]
    assert exprs("y ~ (1 + x + z || g)") == [("1", ("g",)), ("0 + x", ("g",)), ("0 + z", ("g",))]
    assert exprs("y ~ (0 + x + z || g)") == [("0 + x", ("g",)), ("0 + z", ("g",))]


def test_nesting_and_interaction_grouping():
    assert exprs("y ~ 1 + (1 | a/b)") == [("1", ("a",)), ("1", ("b", "a"))]
    assert exprs("y ~ 1 + (1 | a/b/c)") == [
        ("1", ("a",)),
        ("1", ("b", "a")),
        ("1", ("c", "b", "a")),
    ]
    assert exprs("y ~ 1 + (1 | a:b)") == [("1", ("a", "b"))]


def test_intercept_removal_and_transforms():
    assert parse_formula("y ~ 0 + x + (1 | g)").fixed == "0 + x"
    assert parse_formula("y ~ x - 1 + (1 | g)").fixed == "0 + x"
    assert parse_formula("y ~ I(x^2) + log(z) + (1 | g)").fixed == "1 + I(x**2) + log(z)"
    assert parse_formula("y ~ x + offset(log(z)) + (1 | g)").offsets == ("log(z)",)


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("y x + (1 | g)", "no '~'"),
        ("y ~ x + (1 | g", "unclosed bracket"),
        ("y ~ x + (1 | g))", "unbalanced"),
        ("y ~ x + ( | g)", "nothing before '|'"),
        ("y ~ x + (1 | )", "no grouping factor"),
        ("y ~ x + + z", "empty term"),
        ("~ x + (1 | g)", "no response"),
        ("y ~ x | g", "outside a bracketed"),
        ("y ~ x + (1 | log(g))", "must be a column name"),
    ],
)
def test_unparsable_formulas_say_where(formula, fragment):
    with pytest.raises(mfx.FormulaError) as err:
        parse_formula(formula)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_error_position_is_marked():
    with pytest.raises(mfx.FormulaError) as err:
        parse_formula("y ~ x + (1 | g")
    lines = str(err.value).splitlines()
    assert lines[-2].strip() == "y ~ x + (1 | g"
    assert lines[-1].index("^") - lines[-2].index("y") == len("y ~ x + ")


@pytest.fixture(scope="module")
def cake():
    return mfx.datasets.load("cake")


def test_r_coefficient_names(cake):
    m = mfx.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", cake)
    names = list(m.fixef.index)
    assert names[:4] == ["(Intercept)", "recipeB", "recipeC", "temperature185"]
    assert "recipeB:temperature185" in names
    assert m.ranef()["level"].iloc[0] == "A:1"


def test_transforms_in_fixed_part_match_precomputed_columns():
    df = mfx.datasets.load("sleepstudy")
    df["Days2"] = df["Days"] ** 2
    df["logD"] = np.log(df["Days"] + 1)
    a = mfx.lmer("Reaction ~ I(Days^2) + np.log(Days + 1) + (1 | Subject)", df)
    b = mfx.lmer("Reaction ~ Days2 + logD + (1 | Subject)", df)
    assert list(a.fixef.index) == ["(Intercept)", "I(Days^2)", "np.log(Days + 1)"]
    assert np.allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-8)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    c = mfx.lmer("Reaction ~ log(Days + 1) + (1 | Subject)", df)
    d = mfx.lmer("Reaction ~ logD + (1 | Subject)", df)
    assert c.objective == pytest.approx(d.objective, rel=1e-12)


def test_no_intercept_fixed_part():
    df = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ 0 + Days + (1 | Subject)", df)
    assert list(m.fixef.index) == ["Days"]


def test_category_order_and_grouping_types_are_respected():
    rng = np.random.default_rng(3)
    n = 120
    g = rng.integers(0, 8, n)
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n) + g * 0.3,
            "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["mid", "lo", "hi"]),
            "g_int": g,
            "g_str": [f"s{v}" for v in g],
            "g_cat": pd.Categorical([f"s{v}" for v in g]),
        }
    )
    fits = [mfx.lmer(f"y ~ f + (1 | {col})", df) for col in ("g_int", "g_str", "g_cat")]
    assert list(fits[0].fixef.index) == ["(Intercept)", "flo", "fhi"]
    for m in fits[1:]:
        assert m.objective == pytest.approx(fits[0].objective, rel=1e-10)
    assert fits[0].ranef()["level"].tolist() == [str(v) for v in range(8)]


def test_nested_slash_equals_explicit_interaction():
    pastes = mfx.datasets.load("Pastes")
    a = mfx.lmer("strength ~ 1 + (1 | batch/cask)", pastes, REML=False)
    b = mfx.lmer("strength ~ 1 + (1 | batch) + (1 | cask:batch)", pastes, REML=False)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert set(a.varcorr["group"]) == {"cask:batch", "batch", "Residual"}


def test_polars_frame_gives_the_same_fit():
    pl = pytest.importorskip("polars")
    df = mfx.datasets.load("sleepstudy")
    a = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    b = mfx.lmer("Reaction ~ Days + (Days | Subject)", pl.from_pandas(df))
    assert b.objective == pytest.approx(a.objective, rel=1e-12)
    assert b.ranef()["level"].tolist() == a.ranef()["level"].tolist()


def test_dict_of_arrays_is_accepted():
    df = mfx.datasets.load("Dyestuff")
    m = mfx.lmer("Yield ~ 1 + (1 | Batch)", {c: df[c].to_numpy() for c in df.columns})
    assert m.objective == pytest.approx(319.654276842257, rel=1e-8)


def test_uncorrelated_factor_names_as_lme4():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmer("Reaction ~ Days + (Days || Subject)", mfx.datasets.load("sleepstudy"))
    assert list(m.varcorr["group"]) == ["Subject", "Subject.1", "Residual"]
