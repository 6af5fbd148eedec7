"""lme4's allFit: every optimizer reaches lme4's optimum (lme4 run to rhoend = 1e-12,
tests/reference/lme4_tight.json) on well-posed models, and the table has lme4's pieces."""

from __future__ import annotations

import json
import pathlib

import pytest

import mixedfx as mfx

TIGHT = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_tight.json").read_text())


def _tight(dataset: str, formula: str, reml: bool | None = None) -> dict:
    for c in TIGHT["cases"]:
        if (
            c["dataset"] == dataset
            and c["formula"] == formula
            and (reml is None or c["REML"] == reml)
        ):
            return c
    raise KeyError(formula)


CLOSE = ["bobyqa", "nelder_mead", "sbplx", "lbfgsb"]


@pytest.mark.parametrize(
    ("dataset", "formula"),
    [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
        ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ],
)
def test_lmer_optimizers_agree_with_lme4(dataset, formula):
    m = mfx.lmer(formula, mfx.datasets.load(dataset))
    t = m.allfit()
    ref = _tight(dataset, formula, True)["objective"]
    assert list(t.index) == ["bobyqa", "nelder_mead", "sbplx", "lbfgsb", "powell"]
    assert t.loc[CLOSE, "objective"].sub(ref).abs().max() < 1e-6 * ref
    assert (t["objective"] >= ref * (1 - 1e-9)).all()  # none below the optimum
    assert t["objective"].sub(ref).abs().max() < 1e-4 * ref
    assert set(m.fixef.index) <= set(t.columns) and ".sigma" in t.columns
    assert (t["loglik"] == -0.5 * t["objective"]).all()
    assert t.loc["bobyqa", ".sigma"] == pytest.approx(m.sigma, rel=1e-5)


def test_glmer_optimizers_agree_with_lme4():
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    g = mfx.glmer(f, mfx.datasets.load("cbpp"))
    t = g.allfit(["bobyqa", "nelder_mead", "lbfgsb"])
    ref = _tight("cbpp", f)["objective"]
    assert t["objective"].sub(ref).abs().max() < 1e-7 * ref
    assert ".sigma" not in t.columns  # binomial: no dispersion
    assert t.loc["bobyqa", "period2"] == pytest.approx(g.fixef["period2"], abs=1e-3)


def test_unknown_optimizer_is_refused():
    m = mfx.lmer("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("Dyestuff"))
    with pytest.raises(mfx.DataError, match="optimizers must name some of bobyqa"):
        m.allfit(["nloptwrap"])
