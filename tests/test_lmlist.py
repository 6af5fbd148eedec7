"""lmlist agrees with lme4's ``lmList`` (lme4 1.1.31; tests/reference/issue14.json, "lmList").

Coefficients, per-group and pooled σ̂, both kinds of confidence intervals (``confint(l)``: each
group's own σ̂ and df; ``confint(l, pool = TRUE)``: the pooled ones) and ``summary(l)``'s pooled
standard errors, to 1e-8 (least squares has no optimizer: the numbers agree to rounding).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
CASES = json.loads((REF / "issue14.json").read_text())["lmList"]["cases"]
TOL = 1e-8


def _csv(name: str) -> pd.DataFrame:
    """A reference data set with its factor levels in R's order (from NAME.schema.json)."""
    df = pd.read_csv(REF / "data" / f"{name}.csv")
    schema = json.loads((REF / "data" / f"{name}.schema.json").read_text())
    for col in schema["columns"]:
        if col["type"] == "factor":
            df[col["name"]] = pd.Categorical(df[col["name"]].astype(str), col["levels"])
    return df


def _close(got, want):
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("cid", sorted(CASES))
def test_lmlist_matches_lme4(cid):
    c = CASES[cid]
    fit = mfx.lmlist(c["formula"], _csv(c["dataset"]))
    assert fit.groups == c["coef"]["groups"]  # the factor's level order (Orthodont: M16, ...)
    assert list(fit.coef.columns) == c["coef_names"]
    for name in c["coef_names"]:
        _close(fit.coef[name], c["coef"][name])
    _close(fit.sigma, c["group_sigma"])
    assert fit.df_resid.tolist() == c["group_df_residual"]
    _close(fit.pooled_sigma, c["pooled_sigma"])
    assert fit.pooled_df == c["pooled_df"]
    for pool, key in ((False, "confint_default"), (True, "confint_pool")):
        ci, want = fit.confint(pool=pool), c[key]
        assert list(ci.index) == want["groups"]
        assert list(ci.columns.levels[1]) == want["bounds"]
        for name in want["coefficients"]:
            _close(ci[(name, "2.5 %")], want["lower"][name])
            _close(ci[(name, "97.5 %")], want["upper"][name])
    tab = fit.coefficients
    for name in c["coef_names"]:
        _close(tab.loc[tab["term"] == name, "std_error"], c["summary_se_pooled"][name])


def test_each_group_is_its_own_ols_fit():
    df = mfx.datasets.load("sleepstudy")
    fit = mfx.lmlist("Reaction ~ Days | Subject", df)
    one = mfx.ols("Reaction ~ Days", df[df["Subject"] == "309"])
    _close(fit.coef.loc["309"], one.fixef)
    _close(fit.sigma["309"], one.sigma)
    ci = fit.confint(level=0.9)
    _close(ci.loc["309"].to_numpy().reshape(2, 2), one.confint(level=0.9).to_numpy())
    assert list(ci.columns.levels[1]) == ["5 %", "95 %"]
    tab = fit.coefficients
    assert list(tab.columns) == [
        "Subject",
        "term",
        "estimate",
        "std_error",
        "statistic",
        "df",
        "p_value",
    ]
    assert (tab["df"] == 144).all()


def test_print_and_summary():
    fit = mfx.lmlist("Reaction ~ Days | Subject", mfx.datasets.load("sleepstudy"))
    text = str(fit)
    assert text.startswith("Call: lmList(formula = Reaction ~ Days | Subject)\nCoefficients:")
    assert "308    244.1927 21.764702" in text
    assert text.endswith(
        "Degrees of freedom: 180 total; 144 residual\nResidual standard error: 25.59182"
    )
    s = fit.summary()
    assert "Residual standard error: 25.59182 on 144 degrees of freedom" in s
    assert "Pr(>|t|)" in s


def test_missing_values_are_dropped_and_a_b_groups():
    df = mfx.datasets.load("sleepstudy").copy()
    df.loc[0, "Reaction"] = np.nan
    with pytest.warns(mfx.MissingValuesWarning, match="1 of 180 rows"):
        fit = mfx.lmlist("Reaction ~ Days | Subject", df)
    assert fit.nobs == 179 and fit.df_resid["308"] == 7
    cake = mfx.datasets.load("cake")
    fit = mfx.lmlist("angle ~ temp | recipe:replicate", cake)
    assert len(fit.groups) == 45 and fit.groups[0] == "A:1"


def test_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = mfx.lmlist("Reaction ~ Days | Subject", mfx.datasets.load("sleepstudy"))
    fig = fit.plot()
    assert len(fig.axes) == 2
    assert [a.get_title() for a in fig.axes] == ["(Intercept)", "Days"]
    plt.close(fig)
    fig, axs = plt.subplots(1, 2)
    assert fit.plot(pool=True, ax=axs) is fig
    with pytest.raises(mfx.DataError, match="2 panels"):
        fit.plot(ax=axs[0])
    plt.close(fig)


def test_bad_input():
    df = mfx.datasets.load("sleepstudy")
    with pytest.raises(mfx.FormulaError, match=r"\| group"):
        mfx.lmlist("Reaction ~ Days", df)
    with pytest.raises(mfx.FormulaError, match=r"\| group"):
        mfx.lmlist("Reaction ~ Days |", df)
    with pytest.raises(mfx.FormulaError, match="no random-effects terms"):
        mfx.lmlist("Reaction ~ Days + (1 | Subject) | Subject", df)
    small = df[(df["Subject"] != "308") | (df["Days"] < 2)]
    with pytest.raises(mfx.DataError, match="group '308' of 'Subject' has 2 rows for 2"):
        mfx.lmlist("Reaction ~ Days | Subject", small)
    flat = df.assign(x=np.where(df["Subject"] == "310", 1.0, df["Days"]))
    with pytest.raises(mfx.DataError, match="in group '310' of 'Subject' the column 'x'"):
        mfx.lmlist("Reaction ~ x | Subject", flat)
    with pytest.raises(mfx.ColumnNotFoundError):
        mfx.lmlist("Reaction ~ Days | Nobody", df)
    fit = mfx.lmlist("Reaction ~ Days | Subject", df)
    for bad in (0, 1, 1.5, "0.95", True):
        with pytest.raises(mfx.DataError, match="level"):
            fit.confint(level=bad)
    with pytest.raises(mfx.DataError, match="pool"):
        fit.confint(pool="yes")
