"""rePCA agrees with lme4's ``rePCA`` (lme4 1.1.31; tests/reference/issue14.json, "rePCA").

sdev to 1e-4 relative (they are in units of σ; 1e-6 absolute for a zero), proportions to 1e-4,
rotations up to the sign of each column (any SVD's choice) to 5e-4. lme4's default fit of the
Machines model stops 2e-5 (relative) away from its optimum in θ, which moves its rotation by
2e-4; mixedfx's θ is lme4's tightly refitted θ (tests/reference/lme4_tight.json) to 1e-7, and
its sdev are those of that θ's Λ to 1e-5. The cake fit is singular: lme4 puts the last θ
exactly on 0, mixedfx's BOBYQA stops within 1e-6 of it.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
CASES = json.loads((REF / "issue14.json").read_text())["rePCA"]["cases"]
TOL = 1e-4


def _data(name: str) -> pd.DataFrame:
    if name != "Machines":
        return mfx.datasets.load(name)
    df = pd.read_csv(REF / "data" / "Machines.csv")
    schema = json.loads((REF / "data" / "Machines.schema.json").read_text())
    for col in schema["columns"]:
        if col["type"] == "factor":
            df[col["name"]] = pd.Categorical(df[col["name"]].astype(str), col["levels"])
    return df


def _fit(cid: str):
    c = CASES[cid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmer(c["formula"], _data(c["dataset"]), REML=c["REML"])


@pytest.mark.parametrize("cid", sorted(CASES))
def test_repca_matches_lme4(cid):
    c = CASES[cid]
    pca = _fit(cid).repca()
    assert [t.group for t in pca] == [t["group"] for t in c["terms"]]
    for got, want in zip(pca, c["terms"], strict=True):
        np.testing.assert_allclose(got.sdev, want["sdev"], rtol=TOL, atol=1e-6)
        np.testing.assert_allclose(got.proportion, want["proportion_of_variance"], atol=TOL)
        np.testing.assert_allclose(got.cumulative, want["cumulative_proportion"], atol=TOL)
        R = np.asarray(want["rotation"])
        signs = np.sign(np.sum(got.rotation * R, axis=0))
        np.testing.assert_allclose(got.rotation * signs, R, atol=5e-4)
    if c["singular"]:
        assert pca.terms[0].sdev[-1] < 1e-5


def test_repca_at_lme4s_tight_optimum():
    tight = json.loads((REF / "lme4_tight.json").read_text())["cases"]
    theta = next(c for c in tight if c["id"] == "machines_unstructured_reml")["theta"]
    L = np.zeros((3, 3))
    L[np.triu_indices(3)[::-1]] = theta  # θ fills the lower triangle column by column
    want = np.linalg.svd(L, compute_uv=False)
    np.testing.assert_allclose(_fit("machines").repca()["Worker"].sdev, want, rtol=1e-5)


def test_repca_is_the_svd_of_lambda():
    """σ² U D² U' is the random effects' covariance; the rotation is orthogonal."""
    m = _fit("machines")
    t = m.repca()["Worker"]
    S = m.covariance_matrices()[0]
    recon = m.sigma**2 * (t.rotation * t.sdev**2) @ t.rotation.T
    np.testing.assert_allclose(recon, S, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(t.rotation.T @ t.rotation, np.eye(3), atol=1e-12)
    assert t.columns == ["MachineA", "MachineB", "MachineC"]
    assert np.all(np.diff(t.sdev) <= 0)


def test_uncorrelated_terms_of_one_factor_are_one_entry():
    """lme4 binds the Λ blocks of ``(Days || Subject)``'s two terms into one factor's."""
    m = mfx.lmer("Reaction ~ Days + (Days || Subject)", mfx.datasets.load("sleepstudy"))
    pca = m.repca()
    assert len(pca) == 1
    t = pca["Subject"]
    assert t.columns == ["(Intercept)", "Days"]
    np.testing.assert_allclose(t.sdev, np.sort(m.theta)[::-1], rtol=1e-12)
    np.testing.assert_allclose(np.abs(t.rotation), np.eye(2), atol=1e-12)


def test_table_and_print():
    pca = _fit("sleepstudy").repca()
    tab = pca.table
    assert list(tab.columns) == ["group", "component", "sdev", "proportion", "cumulative"]
    assert tab["component"].tolist() == [1, 2]
    text = str(pca)
    assert text.splitlines()[:3] == [
        "$Subject",
        "Importance of components:",
        "                         [,1]    [,2]",
    ]
    assert "Standard deviation     0.9669 0.23088" in text
    assert "Cumulative Proportion" in text
    with pytest.raises(KeyError, match="no grouping factor"):
        pca["Days"]


def test_glmm_repca():
    g = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        mfx.datasets.load("cbpp"),
        family="binomial",
    )
    t = g.repca()["herd"]
    np.testing.assert_allclose(t.sdev, g.theta, rtol=1e-12)
    assert t.proportion.tolist() == [1.0]
