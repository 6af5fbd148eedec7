"""compare_controls against R: lm ignoring classrooms, lm with classroom indicators, lmer with
lmerTest's Satterthwaite df (tests/reference/classroom.json, made by make_classroom_reference.R)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.workflows.compare import between_within_df, mixed_inference

REF = pathlib.Path(__file__).parent / "reference"
R = json.loads((REF / "classroom.json").read_text())
DATA = pd.read_csv(REF / "data" / "classroom.csv")
CMP = {key: mfx.compare_controls(R[key]["formula"][0], DATA) for key in ("balanced", "with_age")}


def rows(cmp: mfx.ControlComparison, approach: str) -> pd.DataFrame:
    t = cmp.table
    return t[t["approach"] == approach].set_index("term")


@pytest.mark.parametrize("key", ["balanced", "with_age"])
def test_ols_and_mixed_match_r(key):
    ref = R[key]
    for approach in ("ols", "mixed"):
        got = rows(CMP[key], approach).loc[ref[approach]["names"]]
        np.testing.assert_allclose(got["estimate"], ref[approach]["estimate"], rtol=1e-6)
        np.testing.assert_allclose(got["std_error"], ref[approach]["std_error"], rtol=1e-5)
    ols = rows(CMP[key], "ols")
    np.testing.assert_allclose(ols["p_value"], R[key]["ols"]["p_value"], rtol=1e-7)
    assert (ols["df"] == R[key]["ols"]["df_resid"][0]).all()


@pytest.mark.parametrize("key", ["balanced", "with_age"])
def test_between_batch_effect_absorbed_by_nuisance_regression(key):
    ref = R[key]["nuisance"]
    assert ref["not_estimable"] == ["posters"]
    nu = rows(CMP[key], "nuisance")
    assert np.isnan(
        nu.loc["posters", ["estimate", "std_error", "df", "p_value"]].astype(float)
    ).all()
    assert "not estimable" in nu.loc["posters", "note"]
    assert "constant within each classroom" in nu.loc["posters", "note"]
    # the within-classroom effects are estimated, as lm(score ~ classroom + ...) does
    for term in [t for t in ref["names"] if t in nu.index and t != "(Intercept)"]:
        i = ref["names"].index(term)
        np.testing.assert_allclose(nu.loc[term, "estimate"], ref["estimate"][i], rtol=1e-8)
        np.testing.assert_allclose(nu.loc[term, "std_error"], ref["std_error"][i], rtol=1e-8)
        np.testing.assert_allclose(nu.loc[term, "p_value"], ref["p_value"][i], rtol=1e-6)
        assert nu.loc[term, "df"] == R[key]["nuisance"]["df_resid"][0]
    assert CMP[key].fits["nuisance"].formula.startswith("score ~ classroom + posters")
    text = str(CMP[key])
    assert "not estimable: posters is constant within each classroom" in text
    assert "mixed model" in text and "nuisance" in text


def test_between_within_df_equal_satterthwaite_on_a_balanced_design():
    m = CMP["balanced"].fits["mixed"]
    df = between_within_df(m.design)
    sat = dict(zip(R["balanced"]["mixed"]["names"], R["balanced"]["mixed"]["df"], strict=True))
    names = m.design.fixed.names
    # posters: between classrooms (12 - 1 - 1 = 10); quiet: within (120 - 12 - 1 = 107)
    assert df[names.index("posters")] == 10 and df[names.index("quiet")] == 107
    np.testing.assert_allclose(df[names.index("posters")], sat["posters"], rtol=1e-6)
    np.testing.assert_allclose(df[names.index("quiet")], sat["quiet"], rtol=1e-6)
    coef, method = mixed_inference(m, "between-within")
    ref_p = dict(
        zip(R["balanced"]["mixed"]["names"], R["balanced"]["mixed"]["p_value"], strict=True)
    )
    np.testing.assert_allclose(coef.loc["posters", "p_value"], ref_p["posters"], rtol=1e-4)
    np.testing.assert_allclose(coef.loc["quiet", "p_value"], ref_p["quiet"], rtol=1e-4)
    assert method == "between-within"


def test_between_within_df_with_a_random_slope():
    """(Days | Subject): both columns have a random effect on Subject, df = 18 - 1 = 17
    (lmerTest's Satterthwaite: 16.9997, 16.99998)."""
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    np.testing.assert_array_equal(between_within_df(m.design), [17.0, 17.0])


def test_mixed_df_method_is_reported_and_fallbacks_are_explicit():
    m = CMP["balanced"].fits["mixed"]
    coef, method = mixed_inference(m, "normal")
    assert method == "normal (Wald z)" and np.isinf(coef["df"]).all()
    _, method = mixed_inference(m)
    assert method in ("Satterthwaite", "between-within")
    assert CMP["balanced"].mixed_df_method == method
    pen = mfx.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("Penicillin"))
    if "df" not in pen.coefficients:  # two grouping factors: no between-within rule
        _, method = mixed_inference(pen)
        assert method == "normal (Wald z)"


def test_intervals_use_each_approach_df():
    t = rows(CMP["balanced"], "mixed").loc["posters"]
    from scipy import stats

    q = stats.t.ppf(0.975, t["df"])
    np.testing.assert_allclose(t["ci_low"], t["estimate"] - q * t["std_error"], rtol=1e-12)
    np.testing.assert_allclose(t["ci_high"], t["estimate"] + q * t["std_error"], rtol=1e-12)


def test_bad_input_is_a_mixedfx_error():
    with pytest.raises(mfx.ColumnNotFoundError, match="'postrs'"):
        mfx.compare_controls("score ~ postrs + (1 | classroom)", DATA)
    with pytest.raises(mfx.FormulaError, match="random-effects"):
        mfx.compare_controls("score ~ posters", DATA)


def test_fits_predict_like_their_formulas():
    fits = CMP["balanced"].fits
    new = DATA.head(4)
    direct = mfx.ols("score ~ posters + quiet", DATA)
    np.testing.assert_allclose(fits["ols"].predict(new), direct.predict(new), rtol=1e-12)
    with pytest.raises(mfx.ModelError, match=r"mixedfx\.ols"):
        fits["nuisance"].predict(new)
