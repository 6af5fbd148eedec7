"""Kenward-Roger (pbkrtest) and lmerTest's type III F tests against R
(tests/reference/lmm_inference.json: sleepstudy, Penicillin, Pastes, cake)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
CASES = {c["id"]: c for c in json.loads((REF / "lmm_inference.json").read_text())["cases"]}
DATA = {"sleepstudy": "sleepstudy", "penicillin": "Penicillin", "pastes": "Pastes", "cake": "cake"}
_FITS: dict[str, mfx.LinearMixedModel] = {}
ANOVA_COLS = {
    "Sum Sq": "sum_sq",
    "Mean Sq": "mean_sq",
    "NumDF": "num_df",
    "DenDF": "den_df",
    "F value": "f_value",
    "Pr(>F)": "p_value",
}


def fit(cid: str) -> mfx.LinearMixedModel:
    if cid not in _FITS:
        _FITS[cid] = mfx.lmer(CASES[cid]["formula"], mfx.datasets.load(DATA[cid]))
    return _FITS[cid]


@pytest.mark.parametrize("cid", sorted(CASES))
def test_kenward_roger_coefficients(cid):
    c, m = CASES[cid], fit(cid)
    ref = c["coef_kenward_roger"]
    got = m.coefficients_kr
    assert list(got.index) == ref["names"]
    np.testing.assert_allclose(got["estimate"], ref["Estimate"], rtol=1e-6)
    np.testing.assert_allclose(got["std_error"], ref["Std. Error"], rtol=1e-4)
    np.testing.assert_allclose(got["df"], ref["df"], rtol=1e-4)
    np.testing.assert_allclose(got["statistic"], ref["t value"], rtol=1e-4)
    np.testing.assert_allclose(-np.log10(got["p_value"]), -np.log10(ref["Pr(>|t|)"]), rtol=1e-4)
    V = np.asarray(c["vcov_kenward_roger"]["values"])
    np.testing.assert_allclose(m.vcov_kr.to_numpy(), V, rtol=2e-4, atol=1e-9 * np.abs(V).max())


@pytest.mark.parametrize("cid", sorted(CASES))
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward_roger"])
def test_type3_anova(cid, ddf):
    c, m = CASES[cid], fit(cid)
    ref = c["anova_satterthwaite" if ddf == "satterthwaite" else "anova_kenward_roger"]
    got = m.anova(ddf=ddf)
    assert list(got.index) == [r["term"] for r in ref]
    for r in ref:
        for rc, col in ANOVA_COLS.items():
            assert got.loc[r["term"], col] == pytest.approx(r[rc], rel=1e-4), (r["term"], rc)
    text = str(got)
    assert text.startswith("Type III Analysis of Variance Table with")
    assert ("Kenward-Roger" in text) == (ddf == "kenward_roger")


def test_type3_is_coding_invariant():
    """The type III F of a term does not depend on the reference level of a factor."""
    df = mfx.datasets.load("cake")
    a = mfx.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", df).anova()
    df2 = df.assign(recipe=pd.Categorical(df["recipe"].astype(str), categories=["C", "A", "B"]))
    b = mfx.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", df2).anova()
    np.testing.assert_allclose(a["f_value"], b["f_value"], rtol=1e-6)
    np.testing.assert_allclose(a["den_df"], b["den_df"], rtol=1e-4)


def test_unbalanced_kr_differs_from_satterthwaite_but_close():
    """On unbalanced data the two methods differ a little (an independent sanity check that
    they are not the same computation)."""
    df = mfx.datasets.load("sleepstudy").iloc[np.r_[0:170:1]]
    df = df[~((df["Subject"].astype(str) == "308") & (df["Days"] > 6))]
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", df)
    s, k = m.coefficients["df"], m.coefficients_kr["df"]
    assert not np.allclose(s, k, rtol=1e-6)
    np.testing.assert_allclose(s, k, rtol=0.1)


def test_errors():
    m = fit("sleepstudy")
    with pytest.raises(mfx.ModelError, match="unknown ddf 'Welch'"):
        m.anova(ddf="Welch")
    with pytest.raises(mfx.ModelError, match="unknown ddf"):
        m.summary(ddf="containment")
    ml = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"), REML=False)
    with pytest.raises(mfx.ModelError, match="needs a REML fit"):
        _ = ml.coefficients_kr
    g = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp")
    )
    with pytest.raises(mfx.ModelError, match=r"mixedfx\.anova\(g0, g\)"):
        g.anova()
