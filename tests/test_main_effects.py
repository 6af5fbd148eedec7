"""The direct treatment-contrast path of ColumnMaker against formulaic's."""

from __future__ import annotations

import formulaic
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.errors import DataError
from mixedfx.frame.data import model_frame
from mixedfx.frame.design import ColumnMaker, r_name


def _frame(seed: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.standard_normal(n),
            "k": rng.integers(0, 5, n),
            "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["mid", "lo", "hi"]),
            "s": rng.choice(["b", "a", "c d"], n).astype(object),
            "i": pd.Categorical(rng.integers(1, 4, n)),
            "w": rng.standard_normal(n),
        }
    )


def _formulaic(rhs: str, mf) -> tuple[list[str], np.ndarray]:
    """The same columns by formulaic itself (the general path's engine)."""
    mm = formulaic.model_matrix(rhs, mf.frame, na_action="ignore")
    return [r_name(str(c)) for c in mm.columns], np.asarray(mm, dtype=float)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    cols=st.lists(
        st.sampled_from(["x", "k", "f", "s", "i", "w"]), min_size=1, max_size=5, unique=True
    ),
    explicit_one=st.booleans(),
)
def test_main_effects_equal_formulaic(seed, cols, explicit_one):
    df = _frame(seed)
    rhs = ("1 + " if explicit_one else "") + " + ".join(cols)
    mf = model_frame(df, [rhs])
    maker, values = ColumnMaker.build(rhs, mf, "fixed-effects")
    if any(c in ("f", "s", "i") for c in cols):
        assert maker.pieces is not None  # the direct path was taken
    names, want = _formulaic(rhs, mf)
    assert maker.names == names
    np.testing.assert_array_equal(values, want)
    # the same coding for new data (a subset of the rows, some levels absent)
    new = df.iloc[[3, 1, 4]].reset_index(drop=True)
    np.testing.assert_array_equal(maker.make(new), want[[3, 1, 4]])


def test_ordered_factors_and_no_intercept_go_to_formulaic():
    df = _frame(1)
    df["o"] = pd.Categorical(df["f"].astype(str), categories=["lo", "mid", "hi"], ordered=True)
    mf = model_frame(df, ["o + x", "0 + f", "f + x:w"])
    assert ColumnMaker.build("o + x", mf, "x")[0].spec is not None
    assert ColumnMaker.build("0 + f", mf, "x")[0].spec is not None
    assert ColumnMaker.build("f + x:w", mf, "x")[0].spec is not None


def test_new_level_is_named():
    df = _frame(2)
    mf = model_frame(df, ["x + f"])
    maker, _ = ColumnMaker.build("x + f", mf, "fixed-effects")
    new = pd.DataFrame({"x": [0.0], "f": pd.Categorical(["top"])})
    with pytest.raises(DataError, match="'top'"):
        maker.make(new)
    with pytest.raises(DataError, match="'top'"):
        maker.make(pd.DataFrame({"x": [0.0], "f": ["top"]}))


def test_glmer_and_lmer_names_and_predictions_through_the_direct_path():
    cbpp = mfx.datasets.load("cbpp")
    m = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    assert m.design.fixed.maker.pieces is not None
    assert list(m.fixef.index) == ["(Intercept)", "period2", "period3", "period4"]
    np.testing.assert_allclose(m.predict(cbpp.iloc[:7]), m.predict()[:7], rtol=1e-12)
