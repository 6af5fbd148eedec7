"""The short routes of a small model's set-up give what the general routes give: the
full-rank test of the fixed-effects columns read in Python floats, the finiteness check by
one sum, ..."""

from __future__ import annotations

import numpy as np
import pytest

from mixedfx.errors import DataError
from mixedfx.frame import design as D


def _general_full_rank(X: np.ndarray, tol: float = 1e-7) -> bool:
    p = X.shape[1]
    R0 = D._qr_r(X)[:p]
    norms = np.sqrt(np.einsum("ij,ij->j", R0, R0))
    return bool((np.abs(R0.diagonal()) > tol * norms).all())


def test_small_full_rank_test_matches_the_general_one() -> None:
    rng = np.random.default_rng(7)
    seen = {True: 0, False: 0}
    for trial in range(3000):
        p = int(rng.integers(1, D._SMALL_P + 1))
        n = int(rng.integers(p, 40))
        X = rng.standard_normal((n, p))
        kind = trial % 4
        if kind == 1 and p > 1:  # exactly collinear
            X[:, -1] = 2.0 * X[:, 0] - X[:, p // 2]
        elif kind == 2 and p > 1:  # nearly collinear, around the tolerance
            X[:, -1] = X[:, 0] + rng.standard_normal(n) * 10.0 ** rng.uniform(-11, -5)
        elif kind == 3:  # a zero column
            X[:, int(rng.integers(p))] = 0.0
        got = D._full_rank_small(X, 1e-7)
        assert got == _general_full_rank(X)
        seen[got] += 1
        keep = D.drop_rank_deficient(X, [f"x{j}" for j in range(p)])
        assert (keep.size == p) == got
    assert seen[True] > 100 and seen[False] > 100


def test_drop_rank_deficient_small_and_general_routes_agree() -> None:
    X = np.column_stack([np.ones(10), np.arange(10.0), 2.0 * np.arange(10.0), np.ones(10)])
    assert D.drop_rank_deficient(X, ["a", "b", "c", "d"]).tolist() == [0, 1]
    assert D.drop_rank_deficient(X[:, :2], ["a", "b"]).tolist() == [0, 1]
    assert D.drop_rank_deficient(np.zeros((5, 1)), ["a"]).tolist() == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_reports_the_column(bad: float) -> None:
    X = np.ones((6, 3))
    X[4, 1] = bad
    with pytest.raises(DataError, match="X column 'b' has 1 infinite or undefined values"):
        D._check_finite(X, "X", ["a", "b", "c"])
    D._check_finite(np.ones((6, 3)), "X", ["a", "b", "c"])


def test_check_finite_with_an_overflowing_sum() -> None:
    y = np.full(4, 1e308)  # every value finite, their sum is not
    D._check_finite(y, "y")
    y[2] = np.nan
    with pytest.raises(DataError, match="y has 1 infinite or undefined values"):
        D._check_finite(y, "y")


def test_response_varies_whatever_its_first_values() -> None:
    from mixedfx.errors import ModelError
    from mixedfx.frame.checks import check_response_varies

    for y in ([1.0, 2.0, 2.0], [1.0, 1.0, 2.0], [[1.0, 1.0], [1.0, 3.0]], [np.nan, np.nan]):
        check_response_varies(np.asarray(y), "y")
    for y in ([1.0, 1.0, 1.0], [[2.0, 2.0], [2.0, 2.0]], [5.0]):
        with pytest.raises(ModelError, match="response 'y' is constant"):
            check_response_varies(np.asarray(y), "y")
    check_response_varies(np.zeros(0), "y")


def test_binomial_counts_short_route_and_its_errors() -> None:
    import pandas as pd

    from mixedfx.frame.data import model_frame
    from mixedfx.frame.responses import binomial_response

    def response(s: list[float], f: list[float]) -> np.ndarray:
        df = pd.DataFrame({"s": s, "f": f})
        return binomial_response(model_frame(df, ["s", "f"], warn=False), "cbind(s, f - s)")

    out = response([1.0, 0.0, 3.0], [4.0, 2.0, 3.0])
    assert out.dtype == np.float64
    assert out.tolist() == [[1.0, 3.0], [0.0, 2.0], [3.0, 0.0]]
    with pytest.raises(DataError, match=r"negative counts \(row 2\)"):
        response([1.0, 3.0, 3.0], [4.0, 2.0, 3.0])
    with pytest.raises(DataError, match="whole numbers of successes and failures; row 3"):
        response([1.0, 0.0, 2.5], [4.0, 2.0, 3.0])


def test_level_codes_and_dummies_as_before() -> None:
    import pandas as pd

    from mixedfx.frame.data import index_strings

    cat = pd.Categorical(["b", "a", "c", "b"], categories=["a", "b", "c"])
    assert D._level_codes(cat, ["a", "b", "c"], "f").tolist() == [1, 0, 2, 1]
    # the fit's levels in another order, or fewer categories: remapped by name
    assert D._level_codes(cat, ["c", "b", "a"], "f").tolist() == [1, 2, 0, 1]
    sub = pd.Categorical(["b", "b"], categories=["b"])
    assert D._level_codes(sub, ["a", "b", "c"], "f").tolist() == [1, 1]
    with pytest.raises(DataError, match="column 'f' has level 'c', which the fitted data"):
        D._level_codes(cat, ["a", "b"], "f")
    with pytest.raises(DataError, match="column 'f' has level 'NA'"):
        D._level_codes(pd.Categorical(["a", None], categories=["a", "b"]), ["a", "b"], "f")
    assert index_strings(pd.Index([1, 2, 10])) == ("1", "2", "10")
    idx = pd.Index(["x", "y"])
    assert index_strings(idx) is index_strings(idx)

    maker = D.ColumnMaker(
        names=["(Intercept)", "fb", "fc", "x"],
        intercept=True,
        pieces=[("f", ["a", "b", "c"]), ("x", None)],
    )
    frame = pd.DataFrame({"f": cat, "x": [0.5, 1.5, 2.5, 3.5]})
    X = maker.make(frame)
    expected = np.array([[1, 1, 0, 0.5], [1, 0, 0, 1.5], [1, 0, 1, 2.5], [1, 1, 0, 3.5]])
    assert np.array_equal(X, expected)
    one = D.ColumnMaker(names=["(Intercept)"], intercept=True, pieces=[("f", ["a"])])
    assert one.make(pd.DataFrame({"f": pd.Categorical(["a", "a"])})).tolist() == [[1.0], [1.0]]


@pytest.mark.parametrize(
    "rhs",
    ["(1 | g1) + (1 | g2) + (1 | g3)", "(x | g1) + (1 | g2) + (z | g3)", "(1 | g1) + (x | g2)"],
)
def test_crossproduct_pattern_scalar_and_vector_later_terms(rhs: str) -> None:
    """A21 as stored (ptr, rows, vals), made dense, is [Zr | XY]' Z1 (scalar later terms take
    the short route of CrossProductPlan, vector ones the general one)."""
    import pandas as pd

    from mixedfx.linalg.crossprod import CrossProductPlan, term_matrix

    rng = np.random.default_rng(3)
    n = 120
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n),
            "x": rng.standard_normal(n),
            "z": rng.standard_normal(n),
            "g1": rng.integers(0, 12, n).astype(str),
            "g2": rng.integers(0, 5, n).astype(str),
            "g3": rng.integers(0, 3, n).astype(str),
        }
    )
    d = D.build_design("y ~ x + " + rhs, df)
    A = CrossProductPlan(d).compute(None, d.y)
    Z1 = term_matrix(d.terms[0]).toarray()
    rest = [term_matrix(t).toarray() for t in d.terms[1:]]
    right = np.hstack([*rest, d.X, d.y[:, None]])
    expected = right.T @ Z1  # (m, n1 k1)
    got = np.zeros_like(expected)
    k1 = d.terms[0].k
    for lev in range(d.terms[0].nlevels):
        lo, hi = A.ptr[lev], A.ptr[lev + 1]
        assert np.all(np.diff(A.rows[lo:hi]) > 0)
        got[A.rows[lo:hi], lev * k1 : (lev + 1) * k1] = A.vals[lo:hi]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_grouping_factor_of_a_model_frame_after_rows_are_dropped() -> None:
    import pandas as pd

    from mixedfx.frame.data import model_frame

    df = pd.DataFrame(
        {
            "y": [1.0, 2.0, np.nan, 4.0, 5.0],
            "g": pd.Categorical(["a", "b", "c", "a", "b"], categories=["c", "a", "b", "d"]),
        }
    )
    with pytest.warns(Warning, match="1 of 5 rows dropped"):
        mf = model_frame(df, ["y", "g"])
    assert mf.cleaned
    codes, levels, _ = D.grouping_factor(mf, ("g",))
    assert levels == ["a", "b"] and codes.tolist() == [0, 1, 0, 1]
    # a raw categorical (not a model frame's) is counted: unused categories dropped
    codes, levels = D.factor_codes(df["g"], "g")
    assert levels == ["c", "a", "b"] and codes.tolist() == [1, 2, 0, 1, 2]


def test_frame_column_by_cached_position_and_with_repeated_names() -> None:
    import pandas as pd

    from mixedfx.frame.data import frame_column

    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    assert frame_column(df, "b").tolist() == [3, 4]
    assert frame_column(df, "a").tolist() == [1.0, 2.0]
    with pytest.raises(KeyError):
        frame_column(df, "c")
    dup = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "a", "b"])
    assert frame_column(dup, "b").tolist() == [3.0]


def test_zeros_like_keeps_layout_and_units_scale() -> None:
    from mixedfx.engines.linear import Units
    from mixedfx.linalg.factor import zeros_like

    for a in (np.ones((3, 4)), np.asfortranarray(np.ones((3, 4))), np.ones((2, 3, 3))[:, ::2]):
        z = zeros_like(a)
        ref = np.zeros_like(a)
        assert z.shape == ref.shape and z.dtype == ref.dtype and not z.any()
        assert z.flags.c_contiguous == ref.flags.c_contiguous
        assert z.flags.f_contiguous == ref.flags.f_contiguous
    y = np.array([-3.5, 2.0, 1.0])
    assert Units.of(y, None).s == 3.5
    assert Units.of(np.zeros(0), None).s == 1.0
    assert Units.of(np.zeros(3), np.array([0.5, 2.0, 1.0])) == Units(1.0, 2.0)


def test_exact_cost_as_its_formula() -> None:
    from mixedfx.linalg.cost import FLOPS, exact_cost

    def reference(nlevels: list[int], ks: list[int], p: int, n: int) -> tuple:
        n1, k1 = nlevels[0], ks[0]
        m = sum(nl * k for nl, k in zip(nlevels[1:], ks[1:], strict=True)) + p + 1
        later = len(nlevels) - 1
        r = min(n / max(n1, 1) * later, m - p - 1) * max(ks[1:], default=1) + p + 1
        ev = 30 + 10 * sum(k * (k + 1) // 2 for k in ks)
        flops = m**3 / 3.0 + 2.0 * m * m + n1 * r * r * k1 * k1
        return m, 3.0 * m * m * 8.0 + 16.0 * n * max(later, 1) * k1 + 200.0 * n1, ev * flops / FLOPS

    rng = np.random.default_rng(5)
    for _ in range(300):
        nt = int(rng.integers(1, 5))
        nl = [int(v) for v in rng.integers(2, 3000, nt)]
        ks = [int(v) for v in rng.integers(1, 4, nt)]
        p, n = int(rng.integers(1, 6)), int(rng.integers(10, 10**6))
        c = exact_cost(nl, ks, p, n)
        assert (c.m, c.bytes, c.seconds) == reference(nl, ks, p, n)


def test_bounded_theta_and_is_singular() -> None:
    import mixedfx as mfx

    df = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert m.design.bounded_theta() == (0, 2)
    assert m.design.theta_lower().tolist() == [0.0, -np.inf, 0.0]
    assert not m.engine.is_singular
    m.engine._theta = np.array([0.9, 0.3, 1e-6])
    assert m.engine.is_singular
    m.engine._theta = np.array([0.9, 1e-6, 0.2])  # an unbounded element near 0: not singular
    assert not m.engine.is_singular


def test_response_on_the_right_warns_at_every_fit() -> None:
    import pandas as pd

    from mixedfx.errors import DataWarning

    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {"y": rng.standard_normal(30), "x": rng.standard_normal(30), "g": np.arange(30) % 5}
    )
    for _ in range(2):  # the check is cached per formula; its warning is not
        with pytest.warns(DataWarning, match="appeared on the right-hand side"):
            d = D.build_design("y ~ y + x + (1 | g)", df)
        assert d.fixed.names == ["(Intercept)", "x"]


def _original_drop_rank_deficient(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """drop_rank_deficient's general route (the QR of X, then of R0's columns)."""
    import scipy.linalg as sla

    p = X.shape[1]
    R0 = D._qr_r(X)[:p]
    norms = np.sqrt(np.einsum("ij,ij->j", R0, R0))
    if (np.abs(R0.diagonal()) > tol * norms).all():
        return list(range(p))
    keep = [j for j in range(p) if norms[j] > 0]
    while keep:
        R = sla.qr(R0[:, keep], mode="r", check_finite=False)[0]
        bad = np.flatnonzero(np.abs(np.diag(R)[: len(keep)]) <= tol * norms[keep])
        if bad.size == 0:
            break
        del keep[int(bad[0])]
    return keep


def test_one_column_rank_test_as_the_qr() -> None:
    cases = [np.ones(5), np.zeros(4), np.array([0.0, 1e-300, 0.0]), np.array([-3.0, 2.0])]
    cases += [np.full(3, 1e149), np.array([1e-320, 0.0]), np.full(3, 1e200)]
    cases += [np.array([1.0, np.nan]), np.array([np.inf, 1.0])]
    with np.errstate(invalid="ignore", over="ignore"):
        for x in cases:
            got = D.drop_rank_deficient(x[:, None], ["a"]).tolist()
            assert got == _original_drop_rank_deficient(x[:, None])


def test_categorical_columns_in_the_model_frame() -> None:
    import pandas as pd

    from mixedfx.frame.data import _categorical_missing, clean_column, missing_mask, model_frame

    cases = [
        pd.Categorical(["a", "b", "a"]),
        pd.Categorical(["a", "b", "a"], categories=["c", "a", "b"]),
        pd.Categorical(["a", None, "b"], categories=["a", "b"]),
        pd.Categorical(["a", None, "a"], categories=["a", "b"]),
    ]
    for cat in cases:
        miss, all_used = _categorical_missing(cat)
        ref = missing_mask(cat)
        if miss is None:
            assert not ref.any()
        else:
            assert np.array_equal(miss, ref)
        if all_used:
            assert clean_column("g", cat) is cat
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "g": pd.Categorical(["b", "a", "b", "a"])})
    mf = model_frame(df, ["y", "g"])
    assert mf["g"] is df["g"].array and mf.n_dropped == 0
    df["h"] = pd.Categorical(["b", "a", "b", "b"], categories=["a", "b", "z"])
    assert list(model_frame(df, ["y", "h"])["h"].categories) == ["a", "b"]
    df["k"] = pd.Categorical(["b", None, "b", "b"], categories=["a", "b"])
    with pytest.warns(Warning, match="1 of 4 rows dropped"):
        mf = model_frame(df, ["y", "k"])
    assert list(mf["k"].categories) == ["b"] and mf.rows.tolist() == [0, 2, 3]


def test_plain_columns_of_numbers_ints_and_booleans() -> None:
    import pandas as pd

    from mixedfx.frame.data import model_frame

    df = pd.DataFrame(
        {
            "x": [0.5, 1.5, -2.0],
            "i": np.array([3, -1, 7], dtype=np.int32),
            "b": [True, False, True],
            "u": np.array([1, 2, 3], dtype=np.uint8),
        }
    )
    mf = model_frame(df, ["x", "i", "b", "u"])
    maker, X = D.ColumnMaker.build("x + `i` + u", mf, "fixed")
    assert maker.plain == ["x", "i", "u"] and maker.names == ["(Intercept)", "x", "i", "u"]
    expected = np.column_stack([np.ones(3), df["x"], df["i"].astype(float), df["u"].astype(float)])
    assert np.array_equal(X, expected)
    assert np.array_equal(maker.make(df), expected)  # new data as a pandas frame
    maker, X = D.ColumnMaker.build("0 + x", mf, "fixed")
    assert maker.names == ["x"] and X.tolist() == [[0.5], [1.5], [-2.0]]


def test_theta_bounds_as_the_terms_give_them() -> None:
    import pandas as pd

    rng = np.random.default_rng(8)
    n = 90
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n),
            "x": rng.standard_normal(n),
            "z": rng.standard_normal(n),
            "g": np.arange(n) % 9,
            "h": np.arange(n) % 5,
        }
    )
    d = D.build_design("y ~ x + (x + z | g) + (1 | h) + (0 + x | h)", df, check_nobs_vs_nre=False)
    lower = np.concatenate([t.theta_lower() for t in d.terms])
    assert np.array_equal(d.theta_lower(), lower)
    assert np.array_equal(d.theta_start(), np.where(lower == 0.0, 1.0, 0.0))
    assert d.bounded_theta() == tuple(np.flatnonzero(lower == 0.0).tolist())
    assert d.theta_lower().dtype == np.float64 and d.theta_lower() is not d.theta_lower()


@pytest.mark.parametrize("rhs", ["(x | g1)", "(1 | g1)", "(x + z | g1)"])
def test_crossproducts_of_one_term(rhs: str) -> None:
    """One term: A21 holds the XY rows of every level, written in place (or into a copy
    when the values array given is not contiguous)."""
    import pandas as pd

    from mixedfx.linalg.crossprod import CrossProductPlan, term_matrix

    rng = np.random.default_rng(9)
    n = 80
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n),
            "x": rng.standard_normal(n),
            "z": rng.standard_normal(n),
            "g1": rng.integers(0, 7, n),
        }
    )
    d = D.build_design("y ~ x + " + rhs, df)
    plan = CrossProductPlan(d)
    A = plan.compute(None, d.y)
    Z1 = term_matrix(d.terms[0]).toarray()
    right = np.column_stack([d.X, d.y])
    k1 = d.terms[0].k
    got = np.zeros((right.shape[1], Z1.shape[1]))
    for lev in range(d.terms[0].nlevels):
        lo, hi = A.ptr[lev], A.ptr[lev + 1]
        got[A.rows[lo:hi], lev * k1 : (lev + 1) * k1] = A.vals[lo:hi]
    np.testing.assert_allclose(got, right.T @ Z1, rtol=1e-12, atol=1e-12)
    out = plan.empty()
    out.vals = np.zeros((A.vals.shape[0], 2 * k1))[:, ::2]  # not contiguous
    B = plan.compute(None, d.y, out=out)
    assert np.array_equal(B.vals, A.vals) and np.array_equal(B.A22, A.A22)


def test_infinite_values_reported_where_first_met() -> None:
    import pandas as pd

    rng = np.random.default_rng(6)
    n = 40
    df = pd.DataFrame(
        {
            "y": rng.standard_normal(n),
            "x": rng.standard_normal(n),
            "z": rng.standard_normal(n),
            "g": np.arange(n) % 5,
        }
    )
    df.loc[3, "z"] = np.inf
    # z only in the random part: that term's check reports it
    with pytest.raises(DataError, match=r"random-effects term \(z \| g\) column 'z' has 1"):
        D.build_design("y ~ x + (z | g)", df)
    # z in both parts: the fixed part's check reports it first (its columns are then known
    # finite, and a term made of them is not checked again)
    with pytest.raises(DataError, match="fixed-effects model matrix column 'z' has 1"):
        D.build_design("y ~ z + (z | g)", df)
    d = D.build_design("y ~ x + z0 + (x | g)", df.assign(z0=df["x"] ** 2))
    assert d.terms[0].columns == ["(Intercept)", "x"]


def _old_main_effects(maker: D.ColumnMaker, frame: object, n: int) -> np.ndarray:
    """The main-effects columns as made before the treatment tables: zeros, a column of
    ones, numbers as floats and each factor's dummies by comparing its codes with 1..K-1."""
    assert maker.pieces is not None
    ncol = 1 + sum(len(lv) - 1 if lv is not None else 1 for _, lv in maker.pieces)
    out = np.zeros((n, ncol))
    out[:, 0] = 1.0
    j = 1
    for c, levels in maker.pieces:
        col = frame[c]
        if levels is None:
            out[:, j] = D._floats(col)
            j += 1
            continue
        codes = D._level_codes(col, levels, c)
        out[:, j : j + len(levels) - 1] = codes[:, None] == np.arange(1, len(levels))
        j += len(levels) - 1
    return out if maker.keep is None else out[:, maker.keep]


@pytest.mark.parametrize("nlevels", [1, 2, 4, 64, 65, 130, 300])  # tables; int8, int16 codes
@pytest.mark.parametrize("with_x", [False, True])
def test_treatment_tables_give_the_dummies_as_before(nlevels: int, with_x: bool) -> None:
    import pandas as pd

    rng = np.random.default_rng(nlevels)
    n = max(3 * nlevels, 50)
    levels = [f"l{i}" for i in range(nlevels)]
    codes = np.concatenate([np.arange(nlevels), rng.integers(0, nlevels, n - nlevels)])
    cat = pd.Categorical.from_codes(codes, categories=levels)
    frame = pd.DataFrame({"f": cat, "x": rng.standard_normal(n), "s": cat.astype(str)})
    pieces: list = [("f", levels)] + ([("x", None), ("s", levels)] if with_x else [])
    names = ["(Intercept)"] + [f"f{lv}" for lv in levels[1:]]
    if with_x:
        names += ["x"] + [f"s{lv}" for lv in levels[1:]]
    maker = D.ColumnMaker(names=names, intercept=True, pieces=pieces)
    for data in (frame, {c: frame[c].array for c in frame}):  # Series or the arrays
        X = maker.make(data if isinstance(data, pd.DataFrame) else _Cols(data, n))
        old = _old_main_effects(maker, data, n)
        assert X.dtype == old.dtype and X.flags.c_contiguous
        assert np.array_equal(X, old)
    # a kept subset of the columns (after a rank-deficient drop)
    maker.keep = np.arange(0, len(names), 2)
    assert np.array_equal(maker.make(frame), _old_main_effects(maker, frame, n))


class _Cols(dict):
    """Columns by name with a row count (as a model frame offers them)."""

    def __init__(self, cols: dict, n: int) -> None:
        super().__init__(cols)
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_treatment_tables_new_data_errors_as_before() -> None:
    import pandas as pd

    maker = D.ColumnMaker(
        names=["(Intercept)", "fb", "fc"], intercept=True, pieces=[("f", ["a", "b", "c"])]
    )
    two = D.ColumnMaker(
        names=["(Intercept)", "fb", "fc", "x"],
        intercept=True,
        pieces=[("f", ["a", "b", "c"]), ("x", None)],
    )
    x = [1.0, 2.0, 3.0]
    for m in (maker, two):
        # a missing value, in int8 and in int16 codes
        for cats in (["a", "b", "c"], ["a", "b", "c"] + [f"z{i}" for i in range(200)]):
            frame = pd.DataFrame({"f": pd.Categorical(["a", None, "c"], categories=cats), "x": x})
            with pytest.raises(DataError, match="column 'f' has level 'NA'"):
                m.make(frame)
        # a level the fit did not see, categories in another order, strings
        frame = pd.DataFrame({"f": pd.Categorical(["a", "d", "c"]), "x": x})
        with pytest.raises(DataError, match="column 'f' has level 'd', which the fitted"):
            m.make(frame)
        frame = pd.DataFrame({"f": pd.Categorical(["c", "a", "b"], categories=["c", "b", "a"])})
        frame["x"] = x
        assert np.array_equal(m.make(frame), _old_main_effects(m, frame, 3))
        frame = pd.DataFrame({"f": np.array(["c", "a", "b"], dtype=object), "x": x})
        assert np.array_equal(m.make(frame), _old_main_effects(m, frame, 3))
    # int64 codes (wider than the unsigned view allows) take the general route
    cat = pd.Categorical(["b", "a", "c", "b"], categories=["a", "b", "c"])
    wide = pd.Categorical.from_codes(np.asarray(cat.codes, dtype=np.int64), dtype=cat.dtype)
    rows = D._treatment_rows(wide, ["a", "b", "c"], "f", True)
    assert rows.tolist() == [[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 0]]
    assert D._treatment_rows(wide, ["a", "b", "c"], "f", False).tolist() == [
        [1, 0],
        [0, 0],
        [0, 1],
        [1, 0],
    ]


def _old_binomial_counts(frame: object, text: str) -> np.ndarray:
    """binomial_response's cbind() as before the whole-number route: every part evaluated
    under np.errstate, every check made."""
    from mixedfx.frame.design import has_column, numeric_column, response_values
    from mixedfx.frame.expressions import evaluate_arithmetic
    from mixedfx.frame.formula import split_top_level, unquote
    from mixedfx.frame.responses import CBIND

    m = CBIND.match(text)
    assert m is not None
    cols = []
    for _, p, _ in split_top_level(m.group(1), ","):
        p = p.strip()
        if has_column(frame, unquote(p)):
            cols.append(response_values(frame, unquote(p)))
            continue
        value = evaluate_arithmetic(p, lambda name: numeric_column(frame, name))
        if value is not None and np.ndim(value) == 1:
            cols.append(np.asarray(value, dtype=float))
            continue
        _, v = D.ColumnMaker.build(f"0 + I({p})", frame, "response")
        cols.append(v[:, 0])
    out = np.column_stack(cols).astype(float)
    ok = np.isfinite(out).all(axis=1)
    if np.any(out[ok] < 0):
        i = int(np.flatnonzero(ok & (out < 0).any(axis=1))[0])
        raise DataError(f"cbind(successes, failures) in {text!r} has negative counts (row {i + 1})")
    frac = ok[:, None] & (np.abs(out - np.round(out)) > 1e-7 * np.maximum(1.0, np.abs(out)))
    if frac.any():
        i = int(np.flatnonzero(frac.any(axis=1))[0])
        raise DataError(
            f"cbind(successes, failures) in {text!r} must be whole numbers of successes and "
            f"failures; row {i + 1} has {out[i, 0]:g} and {out[i, 1]:g}. For proportions "
            "give the proportion as the response and the number of trials as weights"
        )
    return out


@pytest.mark.parametrize(
    "text",
    [
        "cbind(s, n - s)",
        "cbind(s, f)",
        "cbind(s, (n - s) + 0)",
        "cbind(s, -(s - n))",
        "cbind(s, n - s + 2.0)",
        "cbind(s, n - s - 3)",  # negative counts
        "cbind(s, n - s + 0.5)",  # not whole
        "cbind(s, n - s + 1e300)",  # huge constant: the checks made
        "cbind(s, 2 * n - s)",  # products: the checks made
        "cbind(s, n / 2)",
        "cbind(u, big - u)",
        "cbind(b, 1 - b)",
        "cbind(s, x - s)",  # float column with whole values
        "cbind(s, y - s)",  # float column with fractions
        "cbind(s, z - s)",  # float column with an infinity
        "cbind(s, big + big)",
        "cbind(s, k - s)",  # nullable integers (a missing value dropped)
    ],
)
def test_binomial_counts_as_before(text: str) -> None:
    import warnings

    import pandas as pd

    from mixedfx.frame.data import model_frame
    from mixedfx.frame.responses import binomial_response

    n = np.array([5, 3, 4, 6, 2])
    s = np.array([1, 0, 4, 2, 2])
    df = pd.DataFrame(
        {
            "n": n,
            "s": s,
            "f": n - s,
            "u": s.astype(np.uint8),
            "big": np.full(5, 2**62, dtype=np.uint64),
            "b": np.array([True, False, True, True, False]),
            "x": (n + 0.0),
            "y": n + 0.25,
            "z": np.array([5.0, np.inf, 4.0, 6.0, 2.0]),
            "k": pd.array([5, 3, None, 6, 2], dtype="Int64"),
        }
    )
    mf = model_frame(df, [text], warn=False)

    def run(fn: object) -> tuple[object, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                got: object = fn(mf, text)  # type: ignore[operator]
            except DataError as exc:
                got = str(exc)
        return got, [f"{w.category.__name__}: {w.message}" for w in caught]

    new, new_warnings = run(binomial_response)
    old, old_warnings = run(_old_binomial_counts)
    assert new_warnings == old_warnings
    if isinstance(old, str):
        assert new == old
    else:
        assert isinstance(new, np.ndarray) and new.dtype == old.dtype and new.shape == old.shape
        assert np.array_equal(new, old, equal_nan=True)


def test_one_factor_columns_are_full_rank() -> None:
    """An intercept and one factor's dummies (every level present) pass the QR's full-rank
    test, however unbalanced the levels, and are finite (their finiteness check is skipped)."""
    import pandas as pd

    from mixedfx.frame.data import model_frame

    rng = np.random.default_rng(11)
    checked = 0
    for trial in range(400):
        k = int(rng.integers(1, 65))
        n = int(rng.integers(k, min(9_999 // k, 400) + 1))
        codes = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
        if trial % 3 == 0:  # one level holds nearly every row
            codes = np.concatenate([np.arange(k), np.zeros(n - k, dtype=int)])
        elif trial % 3 == 1:
            codes = np.concatenate([np.arange(k), np.full(n - k, k - 1)])
        df = pd.DataFrame({"f": pd.Categorical.from_codes(rng.permutation(codes), range(k))})
        mf = model_frame(df, ["f"], warn=False)
        maker, X = D.ColumnMaker.build("f", mf, "fixed-effects")
        names = list(maker.names)
        assert D.drop_rank_deficient(X, names).tolist() == list(range(X.shape[1]))
        assert np.isfinite(X).all()
        checked += 1
    assert checked == 400


def test_confounded_factors_still_dropped() -> None:
    import warnings

    import pandas as pd

    from mixedfx.errors import RankDeficiencyWarning

    df = pd.DataFrame(
        {
            "y": np.arange(12.0) % 5,
            "f": pd.Categorical(["a", "b", "c"] * 4),
            "g": pd.Categorical(["u", "v", "w"] * 4),
            "h": pd.Categorical(["p", "q"] * 6),
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = D.build_design("y ~ f + g + (1 | h)", df, check_nobs_vs_nre=False)
    assert d.fixed.names == ["(Intercept)", "fb", "fc"]
    assert d.fixed.dropped == ["gv", "gw"]
    assert any(issubclass(w.category, RankDeficiencyWarning) for w in caught)
    d = D.build_design("y ~ f + (1 | h)", df, check_nobs_vs_nre=False)
    assert d.fixed.names == ["(Intercept)", "fb", "fc"] and d.fixed.dropped == []


def _old_categorical_missing(cat: object) -> tuple[object, bool]:
    codes = cat.codes  # type: ignore[attr-defined]
    counts = np.bincount(np.add(codes, 1, dtype=np.intp), minlength=len(cat.categories) + 1)  # type: ignore[attr-defined]
    if counts[0]:
        return np.asarray(codes) < 0, False
    return None, codes.size > 0 and bool(np.logical_and.reduce(counts[1:]))


@pytest.mark.parametrize("ncat", [0, 1, 3, 126, 127, 200])  # int8 and int16 codes
def test_categorical_missing_as_before(ncat: int) -> None:
    import pandas as pd

    from mixedfx.frame.data import _categorical_missing

    rng = np.random.default_rng(ncat)
    cats = [f"c{i}" for i in range(ncat)]
    for n in (0, 1, 5, 300):
        for missing in (0.0, 0.1, 1.0):
            for unused in (False, True):
                hi = max(ncat - int(unused), 0)
                codes = rng.integers(0, hi, n) if hi else np.full(n, -1)
                codes = np.where(rng.random(n) < missing, -1, codes)
                if not unused and ncat and n >= ncat and missing == 0.0:
                    codes[:ncat] = np.arange(ncat)
                cat = pd.Categorical.from_codes(codes, categories=cats)
                got, want = _categorical_missing(cat), _old_categorical_missing(cat)
                assert got[1] == want[1]
                assert (got[0] is None) == (want[0] is None)
                if want[0] is not None:
                    assert np.array_equal(got[0], want[0])


def test_frame_columns_as_frame_column() -> None:
    import pandas as pd

    from mixedfx.frame.data import frame_column, frame_columns

    n = 4
    df = pd.DataFrame(
        {
            "x": np.arange(n, dtype=float),
            "i": np.arange(n),
            "b": [True, False, True, True],
            "I": pd.array([1, None, 3, 4], dtype="Int64"),
            "s": ["a", "b", None, "d"],
            "o": np.array(["a", 1, None, 2.5], dtype=object),
            "c": pd.Categorical(["u", "v", "u", None]),
            "t": pd.date_range("2024-01-01", periods=n),
            "td": pd.to_timedelta(np.arange(n), unit="D"),
            "tz": pd.date_range("2024-01-01", periods=n, tz="UTC"),
        }
    )
    names = list(df.columns)
    got = frame_columns(df, names)
    assert list(got) == names
    for name in names:
        want = frame_column(df, name)
        assert type(got[name]) is type(want) and got[name].dtype == want.dtype
        assert pd.Series(got[name]).equals(pd.Series(want)), name
    dup = pd.DataFrame(np.ones((3, 3)), columns=["a", "a", "b"])
    assert np.array_equal(frame_columns(dup, ["b"])["b"], frame_column(dup, "b"))


@pytest.mark.parametrize("ks", [(1,), (2,), (1, 1, 1), (3, 1, 2), (4, 2)])
def test_theta_bounds_per_term_sizes_as_each_term_gives_them(ks: tuple[int, ...]) -> None:
    """The bounds made once per list of term sizes equal the terms' own, concatenated; the
    design hands out copies, so a caller's change reaches neither the cache nor another
    design."""
    import pandas as pd

    rng = np.random.default_rng(len(ks))
    n = 60
    cols = {f"x{j}": rng.standard_normal(n) for j in range(max(ks))}
    cols.update({f"g{i}": rng.integers(0, 6, n).astype(str) for i in range(len(ks))})
    cols["y"] = rng.standard_normal(n)
    df = pd.DataFrame(cols)
    parts = []
    for i, k in enumerate(ks):
        expr = " + ".join(["1", *[f"x{j}" for j in range(k - 1)]])
        parts.append(f"({expr} | g{i})")
    formula = "y ~ 1 + " + " + ".join(parts)
    d1 = D.build_design(formula, df, check_nobs_vs_nre=False)
    d2 = D.build_design(formula, df, check_nobs_vs_nre=False)
    want_lower = np.concatenate([t.theta_lower() for t in d1.terms])
    assert np.array_equal(d1.theta_lower(), want_lower)
    want_start = np.where(want_lower == 0.0, 1.0, 0.0)
    assert np.array_equal(d1.theta_start(), want_start)
    assert d1.bounded_theta() == tuple(np.flatnonzero(want_lower == 0.0).tolist())
    lower = d1.theta_lower()
    lower[:] = 5.0
    start = d1.theta_start()
    start[:] = 7.0
    assert np.array_equal(d1.theta_lower(), want_lower)
    assert np.array_equal(d2.theta_lower(), want_lower)
    assert np.array_equal(d2.theta_start(), want_start)
