"""mixedfx.ols against numpy's least squares, statsmodels' OLS/WLS and R's lm."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
SLEEP = mfx.datasets.load("sleepstudy")
FULL = mfx.ols("Reaction ~ Days + Subject", SLEEP)
SMALL = mfx.ols("Reaction ~ Days", SLEEP)
SM_FULL = smf.ols("Reaction ~ Days + Subject", SLEEP).fit()
SM_SMALL = smf.ols("Reaction ~ Days", SLEEP).fit()


def r_order(values: pd.Series | pd.DataFrame, names: list[str]):
    """statsmodels' (patsy's) results in mixedfx's column order, patsy names made R's."""

    def r(n: str) -> str:
        return "(Intercept)" if n == "Intercept" else n.replace("[T.", "").replace("]", "")

    out = values.rename(index=r)
    if isinstance(out, pd.DataFrame) and list(out.columns) == list(values.index):
        out = out.rename(columns=r).loc[names, names]
        return out.to_numpy()
    return out.loc[names].to_numpy()


def test_coefficients_equal_numpy_lstsq():
    X = FULL.design.X
    beta, rss, rank, _ = np.linalg.lstsq(X, SLEEP["Reaction"].to_numpy(float), rcond=None)
    assert rank == X.shape[1]
    np.testing.assert_allclose(FULL.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(FULL.rss, rss[0], rtol=1e-10)


def test_against_statsmodels_ols():
    c = FULL.coefficients
    assert list(c.index)[:3] == ["(Intercept)", "Days", "Subject309"]  # R's names
    np.testing.assert_allclose(c["estimate"], r_order(SM_FULL.params, list(c.index)), rtol=1e-10)
    np.testing.assert_allclose(c["std_error"], r_order(SM_FULL.bse, list(c.index)), rtol=1e-10)
    np.testing.assert_allclose(c["statistic"], r_order(SM_FULL.tvalues, list(c.index)), rtol=1e-10)
    np.testing.assert_allclose(
        c["p_value"], r_order(SM_FULL.pvalues, list(c.index)), rtol=1e-8, atol=1e-300
    )
    assert (c["df"] == SM_FULL.df_resid).all()
    np.testing.assert_allclose(
        FULL.vcov.to_numpy(), r_order(SM_FULL.cov_params(), list(c.index)), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(FULL.sigma, np.sqrt(SM_FULL.scale), rtol=1e-12)
    np.testing.assert_allclose(FULL.loglik, SM_FULL.llf, rtol=1e-12)
    np.testing.assert_allclose(FULL.aic, SM_FULL.aic + 2, rtol=1e-12)  # R counts sigma too
    np.testing.assert_allclose(FULL.bic, SM_FULL.bic + np.log(FULL.n), rtol=1e-12)
    np.testing.assert_allclose(FULL.r_squared, SM_FULL.rsquared, rtol=1e-12)
    np.testing.assert_allclose(FULL.adj_r_squared, SM_FULL.rsquared_adj, rtol=1e-12)
    np.testing.assert_allclose(FULL.fstatistic[0], SM_FULL.fvalue, rtol=1e-10)
    np.testing.assert_allclose(
        FULL.confint().to_numpy(), r_order(SM_FULL.conf_int(), list(c.index)), rtol=1e-10
    )
    np.testing.assert_allclose(FULL.residuals, SM_FULL.resid.to_numpy(), atol=1e-9)


def test_weighted_least_squares_against_statsmodels_wls():
    w = np.linspace(0.5, 2.0, len(SLEEP))
    o = mfx.ols("Reaction ~ Days", SLEEP, weights=w)
    ref = sm.WLS(
        SLEEP["Reaction"].to_numpy(float), sm.add_constant(SLEEP["Days"].to_numpy(float)), weights=w
    ).fit()
    np.testing.assert_allclose(o.beta, ref.params, rtol=1e-10)
    np.testing.assert_allclose(o.coefficients["std_error"], ref.bse, rtol=1e-10)
    np.testing.assert_allclose(o.loglik, ref.llf, rtol=1e-12)
    np.testing.assert_allclose(o.r_squared, ref.rsquared, rtol=1e-10)


def test_anova_between_fits_against_statsmodels():
    a = SMALL.anova(FULL)
    ref = anova_lm(SM_SMALL, SM_FULL)
    np.testing.assert_allclose(a.table["res_df"], ref["df_resid"])
    np.testing.assert_allclose(a.table["rss"], ref["ssr"], rtol=1e-10)
    np.testing.assert_allclose(a.table["F"].iloc[1], ref["F"].iloc[1], rtol=1e-10)
    np.testing.assert_allclose(
        a.table["p_value"].iloc[1], ref["Pr(>F)"].iloc[1], rtol=1e-8, atol=1e-300
    )
    text = str(a)
    assert "Analysis of Variance Table" in text and "Model 2: Reaction ~ Days + Subject" in text
    assert "Res.Df" in text and "Pr(>F)" in text


def test_summary_as_r_prints_it():
    text = str(SMALL.summary())
    # numbers as R's summary(lm(Reaction ~ Days, sleepstudy)) prints them
    assert "(Intercept)  251.405      6.610  38.033  < 2e-16 ***" in text
    assert "Days          10.467      1.238   8.454 9.89e-15 ***" in text
    assert "Residual standard error: 47.71 on 178 degrees of freedom" in text
    assert "Multiple R-squared:  0.2865,\tAdjusted R-squared:  0.2825" in text
    assert "F-statistic: 71.46 on 1 and 178 DF" in text


def test_predict_new_data_codes_factors_as_when_fitting():
    new = pd.DataFrame({"Days": [0.0, 3.5], "Subject": pd.Categorical(["372", "308"])})
    ref = SM_FULL.predict(new.astype({"Subject": str}))
    np.testing.assert_allclose(FULL.predict(new), ref.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(FULL.predict(), SM_FULL.fittedvalues.to_numpy(), rtol=1e-12)


def test_rank_deficient_column_dropped_as_lm_does():
    ref = json.loads((REF / "classroom.json").read_text())["balanced"]["nuisance"]
    d = pd.read_csv(REF / "data" / "classroom.csv")
    with pytest.warns(mfx.RankDeficiencyWarning, match="posters"):
        o = mfx.ols("score ~ classroom + posters + quiet", d)
    assert o.dropped == ["posters"] and ref["not_estimable"] == ["posters"]
    assert list(o.fixef.index) == ref["names"]
    np.testing.assert_allclose(o.coefficients["estimate"], ref["estimate"], rtol=1e-9)
    np.testing.assert_allclose(o.coefficients["std_error"], ref["std_error"], rtol=1e-9)
    np.testing.assert_allclose(o.coefficients["p_value"], ref["p_value"], rtol=1e-7)
    assert "1 not defined because of singularities: posters" in str(o.summary())


def test_errors_name_what_is_wrong():
    with pytest.raises(mfx.FormulaError, match="random-effects terms"):
        mfx.ols("Reaction ~ Days + (1 | Subject)", SLEEP)
    with pytest.raises(mfx.ColumnNotFoundError, match="'Dayz'"):
        mfx.ols("Reaction ~ Dayz", SLEEP)
    with pytest.raises(mfx.ColumnNotFoundError, match="predictor 'Days'"):
        SMALL.predict(pd.DataFrame({"x": [1.0]}))
    other = mfx.ols("Reaction ~ Days", SLEEP.iloc[:100])
    with pytest.raises(mfx.ModelError, match="same data"):
        SMALL.anova(other)
    with pytest.raises(mfx.ModelError, match="at least two"):
        SMALL.anova()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(mfx.ModelError, match="more observations than coefficients"):
            mfx.ols("Reaction ~ Days", SLEEP.iloc[:2])
