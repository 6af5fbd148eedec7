"""Likelihood-ratio tests (lme4's anova(m0, m1)) against R: tests/reference/lmm_lrt.json and
glmm_small.json's cbpp_anova; and the errors for models that cannot be compared."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
LRT = json.loads((REF / "lmm_lrt.json").read_text())["cases"]
CBPP = json.loads((REF / "glmm_small.json").read_text())["cbpp_anova"]
COLS = {
    "npar": "npar",
    "AIC": "aic",
    "BIC": "bic",
    "logLik": "loglik",
    "deviance": "deviance",
    "Chisq": "chisq",
    "Df": "df",
    "Pr(>Chisq)": "p_value",
}


def _check_table(res, ref_rows, rtol):
    t = res.table
    assert list(t.index) == [r["model"] for r in ref_rows]
    for r in ref_rows:
        for rc, col in COLS.items():
            want = r[rc]
            got = t.loc[r["model"], col]
            if want is None:
                assert np.isnan(got)
            elif col == "p_value":
                assert got == pytest.approx(want, rel=1e-3)
            else:
                assert got == pytest.approx(want, rel=rtol, abs=1e-6)


@pytest.mark.parametrize("case", LRT, ids=[c["id"] for c in LRT])
def test_lrt_against_lme4(case):
    df = mfx.datasets.load(case["dataset"])
    m0 = mfx.lmer(case["formula_m0"], df)
    m1 = mfx.lmer(case["formula_m1"], df)
    obj0 = m0.objective
    res = mfx.anova(m1, m0, names=["m1", "m0"])  # given in either order: sorted by npar
    _check_table(res, case["table"], rtol=1e-6)
    assert res.notes == ["refitting model(s) with ML (instead of REML)"]
    assert m0.REML and m0.objective == obj0  # the user's models are not refitted in place
    text = str(res)
    assert "refitting model(s) with ML (instead of REML)" in text
    assert f"m0: {case['formula_m0']}" in text
    assert "Pr(>Chisq)" in text


def test_glmm_lrt_against_lme4():
    df = mfx.datasets.load("cbpp")
    g0 = mfx.glmer(CBPP["formula_g0"], df)
    g = mfx.glmer(CBPP["formula_g"], df)
    res = mfx.anova(g0, g, names=["g0", "g"])
    assert res.notes == []
    # lme4's default PIRLS tolerance leaves its deviances ~5e-4 high (test_glmer_reference)
    _check_table(res, CBPP["table"], rtol=1e-5)


def test_three_models_and_default_names():
    df = mfx.datasets.load("sleepstudy")
    ms = [
        mfx.lmer(f, df, REML=False)
        for f in (
            "Reaction ~ 1 + (1 | Subject)",
            "Reaction ~ Days + (1 | Subject)",
            "Reaction ~ Days + (Days | Subject)",
        )
    ]
    res = mfx.anova(*ms)
    assert list(res.table.index) == ["model1", "model2", "model3"]
    assert list(res.table["df"][1:]) == [1, 2]
    chisq = ms[1].objective - ms[2].objective
    assert res.table["chisq"].iloc[2] == pytest.approx(chisq)
    from scipy import stats

    assert res.table["p_value"].iloc[2] == pytest.approx(stats.chi2.sf(chisq, 2))


def test_errors():
    df = mfx.datasets.load("sleepstudy")
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    with pytest.raises(mfx.ModelError, match=r"two or more models.*model\.anova\(\)"):
        mfx.anova(m)
    other = mfx.lmer("Reaction ~ Days + (Days | Subject)", df.iloc[:170])
    with pytest.raises(
        mfx.DataError,
        match="not all fitted to the same data: model1 has 180 observations, model2 has 170",
    ):
        mfx.anova(m, other)
    shuffled = df.assign(Reaction=np.random.default_rng(0).permutation(df["Reaction"]))
    with pytest.warns(mfx.SingularFitWarning):
        m2 = mfx.lmer("Reaction ~ 1 + (Days | Subject)", shuffled)
    with pytest.raises(mfx.DataError, match="response values of model1 and model2 differ"):
        mfx.anova(m, m2)
    df2 = df.assign(logR=np.log(df["Reaction"]))
    m3 = mfx.lmer("logR ~ Days + (1 | Subject)", df2)
    with pytest.raises(mfx.DataError, match=r"different responses .'Reaction'.*'logR'"):
        mfx.anova(m, m3)
    g = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp")
    )
    with pytest.raises(mfx.ModelError, match=r"linear .lmer. and generalized"):
        mfx.anova(m, g)
    with pytest.raises(mfx.ModelError, match="names has 1 entries for 2 models"):
        mfx.anova(m, m2, names=["a"])
    assert isinstance(pd.DataFrame(mfx.anova(m, m).table), pd.DataFrame)
