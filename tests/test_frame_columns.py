"""The model frame reads a column's values without building a Series (frame_column): the
same values, missing-value masks and cleaned columns as through ``df[name]``, for every kind
of column a user may pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedfx.frame.data import clean_column, column_values, frame_column, missing_mask


def _frame() -> pd.DataFrame:
    n = 6
    return pd.DataFrame(
        {
            "f": np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0]),
            "i": np.arange(n),
            "b": np.array([True, False] * 3),
            "Int64": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "Float64": pd.array([1.0, 2.0, None, 4.0, 5.0, 6.0], dtype="Float64"),
            "boolean": pd.array([True, None, False, True, False, True], dtype="boolean"),
            "str": pd.array(["a", "b", None, "a", "c", "b"], dtype="string"),
            "obj": np.array(["x", None, "y", "x", "y", "z"], dtype=object),
            "cat": pd.Categorical(["u", "v", None, "u", "v", "v"], categories=["w", "u", "v"]),
            "date": pd.to_datetime(
                ["2020-01-01", None, "2020-01-03", "2020-01-04"] + ["2020-01-05"] * 2
            ),
            "arrow": pd.array([1.5, None, 2.5, 3.5, 4.5, 5.5], dtype="float64[pyarrow]"),
        }
    )


@pytest.mark.parametrize("name", list(_frame().columns))
def test_frame_column_reads_what_a_series_holds(name):
    df = _frame()
    got = frame_column(df, name)
    want = column_values(df[name])
    assert type(got) is type(want)
    assert got.dtype == want.dtype
    m_got, m_want = missing_mask(got), missing_mask(df[name])
    if m_want is None:
        assert m_got is None
    else:
        np.testing.assert_array_equal(m_got, m_want)
        keep = np.flatnonzero(~m_want)
        a = clean_column(name, got[keep])
        b = clean_column(name, df[name].iloc[keep])
        np.testing.assert_array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))


def test_a_repeated_column_name_is_refused_by_name():
    from mixedfx.errors import DataError
    from mixedfx.frame.data import model_frame

    df = pd.DataFrame(np.ones((3, 3)), columns=["a", "a", "g"])
    with pytest.raises(DataError, match="more than one column named 'a'"):
        model_frame(df, ["a", "g"])


@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_a_repeated_weights_or_offset_column_is_refused_by_name(arg):
    import mixedfx as mfx
    from mixedfx.errors import DataError

    df = mfx.datasets.load("sleepstudy").copy()
    df["w"] = 1.0
    df = pd.concat([df, df[["w"]]], axis=1)
    with pytest.raises(DataError, match="more than one column named 'w'"):
        mfx.lmer("Reaction ~ Days + (Days | Subject)", df, **{arg: "w"})
