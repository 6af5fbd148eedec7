"""Arithmetic of columns evaluated directly (frame/expressions.py) against formulaic's I()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedfx.frame.data import model_frame
from mixedfx.frame.design import ColumnMaker, numeric_column
from mixedfx.frame.expressions import evaluate_arithmetic


@pytest.fixture
def mf():
    rng = np.random.default_rng(4)
    df = pd.DataFrame(
        {
            "size": rng.integers(1, 30, 50),
            "inc": rng.integers(0, 5, 50),
            "x": rng.standard_normal(50),
            "g": pd.Categorical(rng.choice(["a", "b"], 50)),
        }
    )
    return model_frame(df, ["size", "inc", "x", "g"])


@pytest.mark.parametrize(
    "text", ["size - inc", "2 * x + 1", "-(size - inc) / 4", "size + inc * x - 0.5", "+x"]
)
def test_arithmetic_equals_formulaic(mf, text):
    got = evaluate_arithmetic(text, lambda name: numeric_column(mf, name))
    _, want = ColumnMaker.build(f"0 + I({text})", mf, "response")
    np.testing.assert_allclose(got, want[:, 0], rtol=1e-15)


@pytest.mark.parametrize("text", ["log(x)", "x ** 2", "x > 0", "g - x", "nope - x", "x -"])
def test_anything_else_is_left_to_formulaic(mf, text):
    assert evaluate_arithmetic(text, lambda name: numeric_column(mf, name)) is None


def test_cbind_response_with_arithmetic():
    import mixedfx as mfx

    cbpp = mfx.datasets.load("cbpp")
    m = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
    )
    np.testing.assert_array_equal(
        m.design.y, np.column_stack([cbpp["incidence"], cbpp["size"] - cbpp["incidence"]])
    )
