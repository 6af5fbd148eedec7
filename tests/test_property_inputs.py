"""Property-based tests of the input half of "never silently wrong" (issue 11).

Hypothesis draws data frames whose columns have random types (numpy, pandas' nullable types,
Arrow, categoricals with unused categories, object columns, booleans, datetimes), random
missing values and random column names (other alphabets, spaces, dots, keywords), and formulas
over those columns (listed terms or R's ``.``, random slopes). Every call must either

* return a fit equal to the fit on the *cleaned equivalent* data — the rows with a missing
  value in a used column removed by hand, numbers as float64, booleans as bool, strings as
  object arrays, categoricals without their unused categories — whose numbers are finite (or
  come with a warning), and predict the same; or
* raise a :class:`mixedfx.MixedFXError` (and then so does the cleaned data),

never another exception.

In CI the examples are derandomized (the same every run) and few enough for the whole file to
take well under a minute on two cores. For a longer search run by hand, e.g.::

    MIXEDFX_PROPERTY_EXAMPLES=2000 .venv/bin/python -m pytest -q tests/test_property_inputs.py

(``MIXEDFX_PROPERTY_SEED=<n>`` draws other examples than CI's, still reproducibly.)
"""

from __future__ import annotations

import keyword
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import mixedfx as mfx

EXAMPLES = int(os.environ.get("MIXEDFX_PROPERTY_EXAMPLES", "0")) or None
SEED = os.environ.get("MIXEDFX_PROPERTY_SEED")


def _settings(ci_examples: int):
    s = settings(
        max_examples=EXAMPLES or ci_examples,
        deadline=None,
        derandomize=EXAMPLES is None and SEED is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    def wrap(fn):
        fn = s(fn)
        return seed(int(SEED))(fn) if SEED is not None else fn

    return wrap


NUMERIC = ["float", "Float64", "Int64", "int64", "int32[pyarrow]", "double[pyarrow]", "obj-num"]
LOGICAL = ["bool", "boolean", "bool[pyarrow]"]
STRINGS = ["str", "string", "string[pyarrow]", "obj-str", "category", "category-unused", "dict"]
TIMES = ["datetime"]
GROUPS = ["int64", "Int64", "int64[pyarrow]", "float", *STRINGS, "datetime"]

PREDICTOR_NAMES = ["x", "déjà", "my x", "x.1", "größe", "class", "z_2", "Ω", "a-b", "if"]
GROUP_NAMES = ["g", "my group", "grüppe", "g.1"]
RESPONSE_NAMES = ["y", "réponse", "y 1"]


def q(name: str) -> str:
    """A column name as written in a formula (back-quoted unless a plain identifier)."""
    ok = re.fullmatch(r"[^\W\d][\w.]*", name) and not keyword.iskeyword(name)
    return name if ok else f"`{name}`"


@dataclass
class Column:
    """A generated column: what mixedfx gets (``raw``) and its cleaned equivalent (``kind``:
    num, bool, str, cat or time; ``values`` with ``missing`` marked; ``categories``)."""

    raw: object
    kind: str
    values: np.ndarray
    missing: np.ndarray
    categories: list | None = None

    def clean(self, keep: np.ndarray) -> object:
        v = self.values[keep]
        if self.kind == "num":
            return v.astype(float)
        if self.kind == "bool":
            return v.astype(bool)
        if self.kind == "str":
            return np.array([str(s) for s in v], dtype=object)
        if self.kind == "cat":
            return pd.Categorical(v, categories=self.categories).remove_unused_categories()
        return pd.to_datetime(pd.Series(v)).to_numpy()


def with_none(values, missing) -> list:
    """The values as a list, None where missing."""
    return [None if m else v for v, m in zip(values, missing, strict=True)]


def make_column(kind: str, base: np.ndarray, missing: np.ndarray, rng) -> Column:
    """A column of type ``kind`` holding ``base`` (integers: codes), missing where
    ``missing`` (only for types that can hold a missing value)."""
    n = base.shape[0]
    if kind in ("int64", "bool"):
        missing = np.zeros(n, dtype=bool)
    if kind in NUMERIC or kind in ("Int64", "int64[pyarrow]"):
        nums = base.astype(float)
        if kind == "float":
            raw = np.where(missing, np.nan, nums)
        elif kind == "int64":
            raw = base.astype(np.int64)
        elif kind == "obj-num":
            raw = np.array(with_none(nums.tolist(), missing), dtype=object)
        else:
            dtype = kind
            vals = base.astype(np.int64) if "int" in kind.lower() else nums
            arr = pd.array(vals, dtype=dtype)
            arr[missing] = pd.NA
            raw = arr
        return Column(raw, "num", nums, missing)
    if kind in LOGICAL:
        b = base % 2 == 1
        if kind == "bool":
            raw = b
        else:
            arr = pd.array(b, dtype=kind)
            arr[missing] = pd.NA
            raw = arr
        return Column(raw, "bool", b, missing)
    if kind in STRINGS:
        labels = np.array([f"L{v}" for v in base], dtype=object)
        if kind in ("category", "category-unused"):
            cats = sorted(set(labels.tolist()))
            rng.shuffle(cats)
            if kind == "category-unused":
                cats = ["unused0", *cats, "unused1"]
            raw = pd.Categorical(np.where(missing, None, labels), categories=cats)
            return Column(raw, "cat", labels, missing, cats)
        if kind == "dict":
            pa = pytest.importorskip("pyarrow")
            arr = pa.array(with_none(labels, missing)).dictionary_encode()
            raw = pd.Series(pd.arrays.ArrowExtensionArray(arr))
            cats = arr.dictionary.to_pylist()
            return Column(raw, "cat", labels, missing, cats)
        if kind == "obj-str":
            raw = np.array(with_none(labels, missing), dtype=object)
        else:
            arr = pd.array(labels.tolist(), dtype=kind)
            arr[missing] = pd.NA if kind != "str" else np.nan
            raw = arr
        return Column(raw, "str", labels, missing)
    # datetime
    days = pd.Timestamp("2020-01-01").to_datetime64() + base.astype("timedelta64[D]")
    raw = np.where(missing, np.datetime64("NaT"), days).astype("datetime64[ns]")
    return Column(raw, "time", days.astype("datetime64[ns]"), missing)


@st.composite
def problems(draw, glmm: bool = False):
    """(raw data, clean data builder, formula, used column names)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(12, 40))
    p_na = draw(st.sampled_from([0.0, 0.0, 0.03, 0.1, 0.3]))

    def na() -> np.ndarray:
        return rng.random(n) < p_na

    cols: dict[str, Column] = {}
    # grouping factor
    gname = draw(st.sampled_from(GROUP_NAMES))
    nlev = draw(st.integers(2, 6))
    codes = rng.integers(0, nlev, n)
    gkind = draw(st.sampled_from(GROUPS))
    cols[gname] = make_column(gkind, codes + 10, na(), rng)
    effect = rng.normal(size=nlev)[codes]
    # predictors
    npred = draw(st.integers(0, 3))
    pnames = draw(
        st.lists(st.sampled_from(PREDICTOR_NAMES), min_size=npred, max_size=npred, unique=True)
    )
    for name in pnames:
        kind = draw(st.sampled_from(NUMERIC + LOGICAL + STRINGS + TIMES))
        base = rng.integers(-3, 4, n) if kind not in STRINGS else rng.integers(0, 3, n)
        cols[name] = make_column(kind, base, na(), rng)
    # response
    rname = draw(st.sampled_from(RESPONSE_NAMES))
    if glmm:
        rkind = draw(st.sampled_from([*LOGICAL, "Int64", "float", "category", "string"]))
        y01 = (rng.random(n) < 1 / (1 + np.exp(-effect))).astype(int)
        if rkind in ("category", "string"):
            col = make_column(rkind if rkind == "string" else "obj-str", y01, na(), rng)
            if rkind == "category":
                raw = pd.Categorical(col.raw, categories=["L0", "L1"])
                col = Column(raw, "str", col.values, col.missing)
            col = Column(col.raw, "num", (col.values == "L1").astype(float), col.missing)
        else:
            col = make_column(rkind, y01, na(), rng)
            col = Column(col.raw, "num", col.values.astype(float), col.missing)
        cols[rname] = col
    else:
        rkind = draw(st.sampled_from(["float", "Float64", "Int64", "double[pyarrow]", "obj-num"]))
        yv = np.round(10 * (effect + rng.normal(size=n)))
        cols[rname] = make_column(rkind, yv.astype(np.int64), na(), rng)
    # prior weights by column name (positive; missing values drop rows as anywhere else)
    weights = None
    if draw(st.integers(0, 3)) == 0:
        wkind = draw(st.sampled_from(["float", "Float64", "Int64", "double[pyarrow]"]))
        weights = "wts"
        cols[weights] = make_column(wkind, rng.integers(1, 5, n), na(), rng)
    # formula
    dot = npred > 0 and draw(st.booleans())
    joiner = draw(st.sampled_from([" + ", " + ", " * "]))  # main effects or interactions
    rhs = "." if dot else joiner.join(q(c) for c in pnames) or "1"
    numeric_preds = [c for c in pnames if cols[c].kind == "num"]
    slope = bool(numeric_preds) and not glmm and draw(st.booleans())
    rterm = f"({q(numeric_preds[0])} | {q(gname)})" if slope else f"(1 | {q(gname)})"
    formula = f"{q(rname)} ~ {rhs} + {rterm}"
    order = draw(st.permutations(list(cols)))
    used = list(cols) if dot else [rname, gname, *pnames, *([weights] if weights else [])]
    container = draw(st.sampled_from(["pandas", "pandas", "dict"]))
    raw = {c: cols[c].raw for c in order}
    data = pd.DataFrame(raw) if container == "pandas" else raw
    return data, cols, order, used, formula, rname, weights


def clean_frame(cols: dict[str, Column], order: list[str], used: list[str]):
    """The cleaned equivalent: rows with a missing value in a used column removed by hand."""
    n = cols[order[0]].values.shape[0]
    missing = np.zeros(n, dtype=bool)
    for c in used:
        missing |= cols[c].missing
    keep = ~missing
    frame = pd.DataFrame({c: cols[c].clean(keep) for c in order})
    return frame, keep


def fit_or_error(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(*args, **kwargs), None, caught
        except mfx.MixedFXError as exc:
            return None, exc, caught


def check_same(raw_fit, clean_fit, caught):
    assert list(raw_fit.fixef.index) == list(clean_fit.fixef.index)
    np.testing.assert_allclose(raw_fit.objective, clean_fit.objective, rtol=1e-10)
    np.testing.assert_allclose(raw_fit.fixef, clean_fit.fixef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(raw_fit.theta, clean_fit.theta, rtol=1e-8, atol=1e-10)
    numbers = np.concatenate([[raw_fit.objective, raw_fit.sigma], raw_fit.fixef, raw_fit.theta])
    if not np.all(np.isfinite(numbers)):
        assert any(issubclass(w.category, mfx.MixedFXWarning) for w in caught), (
            "NaN or inf without a warning"
        )


def check_problem(problem, fit_fn):
    data, cols, order, used, formula, rname, weights = problem
    raw_fit, raw_err, caught = fit_or_error(fit_fn, formula, data, weights=weights)
    clean, keep = clean_frame(cols, order, used)
    if raw_err is not None:
        if keep.any():
            _, clean_err, _ = fit_or_error(fit_fn, formula, clean, weights=weights)
            assert clean_err is not None, f"{formula}: raw data refused ({raw_err}), clean fits"
        return
    clean_fit, clean_err, _ = fit_or_error(fit_fn, formula, clean, weights=weights)
    assert clean_err is None, f"{formula}: raw data fit, clean refused: {clean_err}"
    assert raw_fit.nobs == int(keep.sum())
    check_same(raw_fit, clean_fit, caught)
    # predictions on the raw rows: the fitted values where complete, NaN where a predictor or
    # grouping factor is missing (R's na.pass)
    frame = pd.DataFrame(data) if isinstance(data, dict) else data
    pred_missing = np.zeros(len(keep), dtype=bool)
    for c in used:
        if c not in (rname, weights):
            pred_missing |= cols[c].missing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = raw_fit.predict(frame.iloc[np.flatnonzero(keep)])
        ref = clean_fit.predict()
        np.testing.assert_allclose(p, ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(ref).max()))
        if pred_missing.any():
            assert np.isnan(raw_fit.predict(frame.iloc[np.flatnonzero(pred_missing)])).all()


@_settings(ci_examples=300)
@given(problems())
def test_lmer_on_any_column_types_is_the_fit_on_the_cleaned_data(problem):
    check_problem(problem, mfx.lmer)


def _glmer(formula, data, weights=None):
    return mfx.glmer(formula, data, family="binomial", weights=weights)


@_settings(ci_examples=80)
@given(problems(glmm=True))
def test_glmer_on_any_column_types_is_the_fit_on_the_cleaned_data(problem):
    check_problem(problem, _glmer)


@_settings(ci_examples=80)
@given(problems())
def test_polars_and_arrow_tables_are_read_as_pandas(problem):
    """The same data as a polars frame or an Arrow table: the same fit, or the same error."""
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    _, cols, order, used, formula, _, weights = problem
    clean, keep = clean_frame(cols, order, used)
    if not keep.any():
        return
    # what the other libraries hold without loss: numbers, booleans, strings, datetimes
    # (missing values as nulls)
    table = {}
    for c in order:
        col = cols[c]
        vals = col.values.astype(object)
        vals[col.missing] = None
        if col.kind == "cat":
            vals = with_none([str(v) for v in col.values], col.missing)
        elif col.kind == "time":
            vals = with_none([pd.Timestamp(v) for v in col.values], col.missing)
        else:
            vals = vals.tolist()
        table[c] = pa.array(vals)
    arrow = pa.table(table)
    ref, ref_err, _ = fit_or_error(mfx.lmer, formula, clean, weights=weights)
    for other in (pl.from_arrow(arrow), arrow):
        fit, err, caught = fit_or_error(mfx.lmer, formula, other, weights=weights)
        if ref_err is not None:
            assert err is not None, f"{formula}: clean data refused ({ref_err}), this fits"
            continue
        if any(cols[c].kind == "cat" for c in used):
            # categories become strings: the same fit unless the category order mattered
            assert err is None, err
            continue
        assert err is None, f"{formula}: {err}"
        check_same(fit, ref, caught)


TOKENS = [
    "y", "x", "g", "h", "`my x`", "déjà", "~", "~", "+", "+", "-", "*", ":", "/", "|", "||",
    "(", "(", ")", ")", "1", "0", ".", "#", "I(", "log(", "^2", "**", "1e3", "'", '"', "`",
    ",", "cbind(", "offset(", "C(", "np.", "[", "]", "=", " ",
]  # fmt: skip


def _formula_data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 24
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "my x": rng.normal(size=n),
            "déjà": rng.integers(0, 3, n),
            "g": np.repeat(list("abcd"), 6),
            "h": np.tile(list("pqr"), 8),
        }
    )


FORMULA_DATA = _formula_data()


FIXED_TERMS = [
    "x", "`my x`", "déjà", "h", "log(x + 5)", "I(x^2)", "x:h", "x*h", ".", "(x + h)^3",
    "C(h)", "0", "1", "-1", "offset(x)", "I(x * 1e3)", "y", "(x + `my x` + déjà)^2", ".^2",
]  # fmt: skip
RANDOM_TERMS = [
    "(1 | g)", "(x | g)", "(x || g)", "(1 | g/h)", "(1 | g:h)", "((1 | g))", "(0 + x | g)",
    "(1 | `g`)", "(déjà | g)", "(1 | h)", "(x + `my x` || g)",
]  # fmt: skip


@st.composite
def formula_texts(draw) -> str:
    """Formulas from lme4's grammar, sometimes with a stray token inserted."""
    fixed = draw(st.lists(st.sampled_from(FIXED_TERMS), max_size=4))
    ops = [draw(st.sampled_from([" + ", " + ", " - ", " * "])) for _ in fixed]
    rand = draw(st.lists(st.sampled_from(RANDOM_TERMS), min_size=0, max_size=2))
    rhs = "".join(op + t for op, t in zip(ops, fixed, strict=True)).lstrip(" +")
    rhs = " + ".join(t for t in [rhs, *rand] if t) or "1"
    text = f"y ~ {rhs}" + draw(st.sampled_from(["", "", " # a note"]))
    if draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
    return text


@_settings(ci_examples=300)
@given(
    formula_texts()
    | st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map("".join)
    | st.builds(
        lambda a, b: f"y ~ {a} + ({b} | g)",
        st.lists(st.sampled_from(TOKENS), max_size=6).map("".join),
        st.lists(st.sampled_from(TOKENS), max_size=4).map("".join),
    )
)
def test_any_formula_text_fits_or_is_a_mixedfx_error(text):
    """Whatever the formula text: a fit, or a mixedfx error (never another exception)."""
    fit, _, caught = fit_or_error(mfx.lmer, text, FORMULA_DATA)
    if fit is not None:
        numbers = np.concatenate([[fit.objective], fit.fixef, fit.theta])
        if not np.all(np.isfinite(numbers)):
            assert any(issubclass(w.category, mfx.MixedFXWarning) for w in caught)
