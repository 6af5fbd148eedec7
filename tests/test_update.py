"""update(): R's update.formula shorthand, refits equal to fresh fits."""

from __future__ import annotations

import numpy as np
import pytest

import mixedfx as mfx
from mixedfx.frame.formula_update import update_formula

OLD = "Reaction ~ Days + (Days | Subject)"


@pytest.mark.parametrize(
    ("new", "want"),
    [
        (". ~ . + x2", "Reaction ~ Days + x2 + (Days | Subject)"),
        ("... + x2", "Reaction ~ Days + x2 + (Days | Subject)"),
        ("+ x2", "Reaction ~ Days + x2 + (Days | Subject)"),
        ("~ . - Days", "Reaction ~ 1 + (Days | Subject)"),
        (". ~ . - (Days | Subject) + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
        ("log(.) ~ .", "log(Reaction) ~ Days + (Days | Subject)"),
        (". ~ . - 1", "Reaction ~ Days + 0 + (Days | Subject)"),
        ("y ~ x + (1 | g)", "y ~ x + (1 | g)"),
    ],
)
def test_update_formula(new, want):
    assert update_formula(OLD, new) == want


def test_update_formula_expanded_terms():
    old = "y ~ x + (x || g) + offset(o)"
    assert update_formula(old, ". ~ . - (x || g)") == "y ~ x + offset(o)"
    with pytest.raises(mfx.FormulaError, match="cannot remove z"):
        update_formula(old, ". ~ . - z")


def test_update_refits_like_a_fresh_fit():
    df = mfx.datasets.load("sleepstudy").assign(x2=lambda d: np.sin(d["Days"]))
    m = mfx.lmer(OLD, df)
    m2 = m.update("... + x2")
    fresh = mfx.lmer("Reaction ~ Days + x2 + (Days | Subject)", df)
    assert m2.formula == fresh.formula
    assert m2.objective == pytest.approx(fresh.objective, rel=1e-12)
    ml = m.update(REML=False)
    assert not ml.REML and ml.objective == pytest.approx(mfx.lmer(OLD, df, REML=False).objective)
    assert m.REML  # the original is unchanged
    smaller = m.update(data=df.iloc[:100])
    assert smaller.nobs == 100
    with pytest.raises(mfx.ModelError, match="unknown argument"):
        m.update(famly="poisson")


def test_update_glmer():
    cbpp = mfx.datasets.load("cbpp")
    g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    g0 = g.update(". ~ . - period")
    assert g0.formula == "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"
    assert g0.objective == pytest.approx(mfx.glmer(g0.formula, cbpp).objective, rel=1e-10)
    g9 = g.update(nAGQ=9)
    assert g9.nAGQ == 9
