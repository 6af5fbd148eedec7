"""Profile and Wald confidence intervals against lme4's confint
(tests/reference/lmm_inference.json).

lme4 interpolates a spline through its profile; mixedfx solves ζ = ±z by Brent's method. The
ends agree within 1e-4 relative (observed: 5e-5 at worst, .sig01 of Pastes), the fixed
effects within 1e-5 relative (observed: 3.4e-6, cake).
"""

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


def fit(cid: str) -> mfx.LinearMixedModel:
    if cid not in _FITS:
        _FITS[cid] = mfx.lmer(CASES[cid]["formula"], mfx.datasets.load(DATA[cid]))
    return _FITS[cid]


def _ref_frame(ci: dict) -> pd.DataFrame:
    lo = [np.nan if v is None else v for v in ci["lower"]]
    hi = [np.nan if v is None else v for v in ci["upper"]]
    return pd.DataFrame({"2.5 %": lo, "97.5 %": hi}, index=ci["names"])


@pytest.mark.parametrize("cid", sorted(CASES))
def test_profile_intervals_against_lme4(cid):
    m = fit(cid)
    ref = _ref_frame(CASES[cid]["confint_profile"])
    got = m.confint()
    assert list(got.index) == list(ref.index)
    assert list(got.columns) == ["2.5 %", "97.5 %"]
    var = [n for n in ref.index if n.startswith(".")]
    fix = [n for n in ref.index if not n.startswith(".")]
    np.testing.assert_allclose(got.loc[var], ref.loc[var], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.loc[fix], ref.loc[fix], rtol=1e-5)


@pytest.mark.parametrize("cid", sorted(CASES))
def test_wald_intervals_against_lme4(cid):
    m = fit(cid)
    ref = _ref_frame(CASES[cid]["confint_wald"])
    got = m.confint(method="wald")
    assert list(got.index) == list(ref.index)
    var = [n for n in ref.index if n.startswith(".")]
    assert got.loc[var].isna().all().all()
    fix = [n for n in ref.index if not n.startswith(".")]
    np.testing.assert_allclose(got.loc[fix], ref.loc[fix], rtol=1e-5)


def test_profile_table_and_zeta():
    """ζ is 0 at the (ML) estimate, signed, and crosses ±1.96 at the 95% interval's ends."""
    m = fit("sleepstudy")
    prof = m.profile(which=[".sigma", "Days"])
    assert list(prof.columns) == ["parameter", "value", "zeta"]
    assert set(prof["parameter"]) == {".sigma", "Days"}
    for name, g in prof.groupby("parameter"):
        g = g.sort_values("value")
        assert np.all(np.diff(g["zeta"]) > 0), name  # increasing through the estimate
        assert g["zeta"].min() < -2.5 and g["zeta"].max() > 2.5
        assert np.min(np.abs(g["zeta"])) < 1e-3  # 0 at the estimate: each point fully optimized
    # a fixed effect's profile of a linear mixed model is nearly a straight line
    dz = np.diff(prof[prof["parameter"] == "Days"].sort_values("value")["zeta"])
    assert dz.max() / dz.min() < 1.3
    ci = m.confint(parm=["Days"], level=0.9)
    assert list(ci.columns) == ["5 %", "95 %"]
    from mixedfx.inference.profile import Profiler

    p = Profiler(m)
    assert p.zeta("Days", ci.iloc[0, 0]) == pytest.approx(-1.6448536, abs=1e-6)
    assert p.zeta("Days", ci.iloc[0, 1]) == pytest.approx(1.6448536, abs=1e-6)
    # the model's own state is left as fitted
    assert m.objective_at(m.theta) == pytest.approx(m.objective, rel=1e-14)


def test_profile_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from mixedfx.plots import plot_profile

    m = fit("penicillin")
    fig = plot_profile(m.profile())
    assert len([a for a in fig.axes if a.has_data()]) == 4
    assert fig.axes[0].get_ylabel() == "ζ"


def test_confint_errors():
    m = fit("sleepstudy")
    with pytest.raises(mfx.ModelError, match="unknown confint method 'bayes'"):
        m.confint(method="bayes")
    with pytest.raises(mfx.DataError, match="level must be strictly between 0 and 1"):
        m.confint(level=1.5)
    with pytest.raises(mfx.DataError, match="unknown parameter 'Dayz'"):
        m.confint(parm=["Dayz"])
    g = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", mfx.datasets.load("cbpp")
    )
    with pytest.raises(mfx.ModelError, match="method='wald' or method='boot'"):
        g.confint()
    w = g.confint(method="wald")
    assert list(w.index) == [".sig01", "(Intercept)", "period2", "period3", "period4"]
    se = g.coefficients["std_error"]
    assert w.loc["period2", "97.5 %"] == pytest.approx(
        g.fixef["period2"] + 1.959964 * se["period2"], rel=1e-6
    )


def test_refit_from_a_start_near_zero_reaches_the_optimum():
    """A start with a θ component near 0 must not trap BOBYQA there (the step from a given
    start is at least 0.05)."""
    df = mfx.datasets.load("sleepstudy")
    fresh = mfx.lmer("Reaction ~ Days + (Days | Subject)", df, REML=False)
    m = mfx.LinearMixedModel("Reaction ~ Days + (Days | Subject)", df, REML=False)
    m.fit(start=np.array([0.93, 1e-4, 0.28]))
    assert m.objective == pytest.approx(fresh.objective, abs=1e-7)
