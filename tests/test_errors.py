"""Bad input gives a clear mixedfx error naming what is wrong, never a numpy traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture()
def sleep():
    return mfx.datasets.load("sleepstudy")


def test_unknown_column_is_named_with_a_suggestion(sleep):
    with pytest.raises(mfx.ColumnNotFoundError) as err:
        mfx.lmer("Reaction ~ Dayz + (1 | Subject)", sleep)
    assert "'Dayz'" in str(err.value) and "did you mean 'Days'" in str(err.value)
    assert isinstance(err.value, KeyError)


def test_unknown_grouping_factor(sleep):
    with pytest.raises(mfx.ColumnNotFoundError, match="'Subj'"):
        mfx.lmer("Reaction ~ Days + (1 | Subj)", sleep)


def test_unknown_weights_column(sleep):
    with pytest.raises(mfx.ColumnNotFoundError, match="weights column 'wt'"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights="wt")


def test_non_numeric_response(sleep):
    sleep["r"] = sleep["Reaction"].astype(str)
    with pytest.raises(mfx.DataError, match="response 'r' is not numeric"):
        mfx.lmer("r ~ Days + (1 | Subject)", sleep)


def test_infinite_values_are_named(sleep):
    sleep["Days"] = sleep["Days"].astype(float)
    sleep.loc[3, "Days"] = np.inf
    with pytest.raises(mfx.DataError, match="'Days'"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    sleep.loc[3, "Days"] = 1
    sleep.loc[5, "Reaction"] = -np.inf
    with pytest.raises(mfx.DataError, match="response 'Reaction'"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep)


def test_no_random_effects(sleep):
    with pytest.raises(mfx.FormulaError, match="no random-effects terms"):
        mfx.lmer("Reaction ~ Days", sleep)


def test_grouping_factor_with_one_level(sleep):
    sleep["one"] = "a"
    with pytest.raises(mfx.ModelError, match="'one' has only 1 level"):
        mfx.lmer("Reaction ~ Days + (1 | one)", sleep)


def test_as_many_levels_as_observations(sleep):
    sleep["row"] = np.arange(len(sleep))
    with pytest.raises(mfx.ModelError, match="180 levels for 180 observations"):
        mfx.lmer("Reaction ~ Days + (1 | row)", sleep)


def test_more_random_effects_than_observations():
    df = pd.DataFrame(
        {
            "y": np.arange(12.0),
            "x": np.tile([0.0, 1.0, 2.0], 4),
            "z": np.arange(12.0) ** 2,
            "g": np.repeat(["a", "b", "c", "d", "e", "f"], 2),
        }
    )
    with pytest.raises(mfx.ModelError, match="number of observations"):
        mfx.lmer("y ~ 1 + (x + z | g)", df)


def test_missing_values_are_dropped_counted_and_reported(sleep):
    sleep.loc[[0, 7, 20], "Reaction"] = np.nan
    sleep["Days"] = sleep["Days"].astype(float)
    sleep.loc[40, "Days"] = np.nan
    with pytest.warns(mfx.MissingValuesWarning, match="4 of 180 rows dropped"):
        m = mfx.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    assert m.nobs == 176
    assert m.design.frame.n_dropped == 4
    assert "Rows dropped for missing values: 4 of 180" in str(m.summary())
    # same fit as on the data with those rows removed beforehand
    clean = sleep.dropna(subset=["Reaction", "Days"])
    m2 = mfx.lmer("Reaction ~ Days + (Days | Subject)", clean)
    assert m.objective == pytest.approx(m2.objective, rel=1e-12)


def test_empty_data_after_dropping(sleep):
    sleep["Reaction"] = np.nan
    with pytest.raises(mfx.DataError, match="no rows left"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep)


def test_negative_or_wrong_length_weights(sleep):
    with pytest.raises(mfx.DataError, match="negative"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=-np.ones(len(sleep)))
    with pytest.raises(mfx.DataError, match="length 3"):
        mfx.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=np.ones(3))


def test_rank_deficient_fixed_effects_are_dropped_with_a_warning(sleep):
    sleep["Days2"] = 2 * sleep["Days"]
    with pytest.warns(mfx.RankDeficiencyWarning, match="dropping 1 column / coefficient: Days2"):
        m = mfx.lmer("Reaction ~ Days + Days2 + (Days | Subject)", sleep)
    assert list(m.fixef.index) == ["(Intercept)", "Days"]
    assert m.objective == pytest.approx(1743.62827195995, rel=1e-6)


def test_not_a_data_frame():
    with pytest.raises(mfx.DataError, match="data must be a data frame"):
        mfx.lmer("y ~ 1 + (1 | g)", [1, 2, 3])


def test_formula_not_a_string(sleep):
    with pytest.raises(mfx.FormulaError, match="must be a string"):
        mfx.lmer(42, sleep)


def test_unknown_dataset():
    with pytest.raises(KeyError, match="no bundled data set named 'sleeptsudy'"):
        mfx.datasets.load("sleeptsudy")


def test_convergence_warning_on_a_bad_start(sleep):
    """A fit stopped far from the optimum is flagged by the gradient check."""
    m = mfx.LinearMixedModel("Reaction ~ Days + (Days | Subject)", sleep)
    from mixedfx.linalg.optimizer import check_convergence

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        msgs = check_convergence(m.objective_at, np.array([2.0, 0.5, 1.0]), m.design.theta_lower())
    assert msgs and "failed to converge" in msgs[0]
    assert any(issubclass(r.category, mfx.ConvergenceWarning) for r in rec)


def test_too_many_levels_for_the_dense_block(monkeypatch):
    # method="exact" beyond the memory an exact fit may use: refused with the estimate and
    # the alternative (method="auto" would choose the method of moments: tests/test_moments.py)
    import mixedfx.models.lmer as lmer_module

    monkeypatch.setattr(lmer_module, "MAX_BYTES", 1e3)
    with pytest.raises(mfx.ModelError, match=r"dense block.*method='moments'"):
        mfx.lmer(
            "diameter ~ 1 + (1 | plate) + (1 | sample)",
            mfx.datasets.load("Penicillin"),
            method="exact",
        )
