"""tidy and glance agree with broom.mixed 0.2.9.4 (tests/reference/issue14.json, "broom_mixed").

Columns (names and order) and strings exactly. Numbers to 1e-6 relative where they do not
depend on where the optimizer stopped; otherwise to the agreement of the fits themselves:

* sleepstudy: broom's tables are of lme4's *default* fit, which stops 1e-5 (relative) from the
  optimum in θ; mixedfx's θ, σ and standard errors are lme4's tightly refitted ones
  (tests/reference/lme4_tight.json) to 1e-7, checked here to 1e-6. So standard errors and
  statistics are compared with broom's to 1e-5, conditional modes to 1e-4, Satterthwaite df to
  1e-4 and their p-values to 1e-3 (lmerTest differentiates numerically; see
  tests/reference/README.md).
* cbpp: lme4 fitted with PIRLS converged, as mixedfx; θ agrees to 2e-6 (a flat criterion:
  mixedfx's is 1e-8 lower). Fixed-effect standard errors come from finite-difference Hessians
  in both (2e-3, as in test_glmer_reference.py), hence also z, p and the intervals.

Further broom.mixed outputs (k = 3 correlations, ``||`` terms, an ML fit, a Gamma GLMM, combined
effects, ``conf.level``) were computed with Rscript on the same CSV files and are copied below.
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedfx as mfx
from mixedfx.report.tidy import COLUMNS

REF = pathlib.Path(__file__).parent / "reference"
BROOM = json.loads((REF / "issue14.json").read_text())["broom_mixed"]["cases"]
TIGHT = {c["id"]: c for c in json.loads((REF / "lme4_tight.json").read_text())["cases"]}

_FITS: dict[str, object] = {}


def _csv(name: str) -> pd.DataFrame:
    df = pd.read_csv(REF / "data" / f"{name}.csv")
    path = REF / "data" / f"{name}.schema.json"
    if path.exists():
        for col in json.loads(path.read_text())["columns"]:
            if col["type"] == "factor":
                df[col["name"]] = pd.Categorical(df[col["name"]].astype(str), col["levels"])
    return df


def sleep():
    if "sleep" not in _FITS:
        _FITS["sleep"] = mfx.lmer(
            "Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy")
        )
    return _FITS["sleep"]


def cbpp():
    if "cbpp" not in _FITS:
        _FITS["cbpp"] = mfx.glmer(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            mfx.datasets.load("cbpp"),
            family="binomial",
        )
    return _FITS["cbpp"]


SLEEP_RTOL = {"std.error": 1e-5, "statistic": 1e-5, "df": 1e-4, "p.value": 1e-3}
CBPP_RTOL = {"std.error": 2e-3, "statistic": 2e-3, "p.value": 2e-2, "conf.low": 2e-3}
CBPP_RTOL["conf.high"] = 2e-3


def _check(got: pd.DataFrame, want: dict, rtol: dict, default: float = 1e-6, atol=0.0):
    assert list(got.columns) == want["columns"]
    assert len(got) == want["nrow"]
    for col in want["columns"]:
        w = want["data"][col]
        if isinstance(w[0], str):
            assert got[col].tolist() == w, col
        else:
            np.testing.assert_allclose(
                got[col].to_numpy(float), np.asarray(w, float), rtol=rtol.get(col, default),
                atol=atol, err_msg=col,
            )  # fmt: skip


@pytest.mark.parametrize(
    ("cid", "ddf"), [("sleepstudy_lme4", "lme4"), ("sleepstudy_lmerTest", "satterthwaite")]
)
def test_lmer_tidy_and_glance_match_broom(cid, ddf):
    m, ref = sleep(), BROOM[cid]
    _check(m.tidy("fixed", conf_int=True, ddf=ddf), ref["tidy_fixed"], SLEEP_RTOL)
    _check(m.tidy("ran_pars"), ref["tidy_ran_pars"], {"estimate": 1e-5})
    _check(m.tidy("ran_vals"), ref["tidy_ran_vals"], {"estimate": 1e-4}, atol=1e-3)
    _check(m.glance(), ref["glance"], {})


def test_lmer_tidy_at_lme4s_tight_optimum():
    m, tight = sleep(), TIGHT["sleepstudy_slope_reml"]
    fixed = m.tidy("fixed")
    np.testing.assert_allclose(fixed["std.error"], tight["fixef"]["std_error"], rtol=1e-6)
    # Λ = [[θ₁, 0], [θ₂, θ₃]], Σ = σ²ΛΛ': sd₁ = σθ₁, sd₂ = σ‖(θ₂, θ₃)‖, cor = θ₂/‖(θ₂, θ₃)‖
    th, s = tight["theta"], tight["sigma"]
    want = [s * th[0], th[1] / math.hypot(th[1], th[2]), s * math.hypot(th[1], th[2]), s]
    np.testing.assert_allclose(m.tidy("ran_pars")["estimate"], want, rtol=1e-6)


def test_glmer_tidy_and_glance_match_broom():
    g, ref = cbpp(), BROOM["cbpp"]
    _check(g.tidy("fixed", conf_int=True), ref["tidy_fixed"], CBPP_RTOL, default=1e-5)
    _check(g.tidy("ran_pars"), ref["tidy_ran_pars"], {"estimate": 1e-5})
    _check(g.tidy("ran_vals"), ref["tidy_ran_vals"], {"estimate": 1e-3}, atol=1e-5)
    _check(g.glance(), ref["glance"], {})


def test_tidy_is_the_models_own_numbers():
    m = sleep()
    t = m.tidy(["fixed", "ran_pars", "ran_vals"], conf_int=True)
    coef = m.coefficients
    fixed = t[t["effect"] == "fixed"]
    np.testing.assert_array_equal(fixed["estimate"], coef["estimate"])
    np.testing.assert_array_equal(fixed["df"], coef["df"])
    q = stats.t.ppf(0.975, coef["df"].to_numpy())
    np.testing.assert_allclose(fixed["conf.low"], coef["estimate"] - q * coef["std_error"])
    kr = m.tidy("fixed", ddf="kenward-roger")
    np.testing.assert_array_equal(kr["df"], m.coefficients_kr["df"])
    vals = t[t["effect"] == "ran_vals"]
    re = m.ranef()
    np.testing.assert_array_equal(vals["estimate"], re["condval"])
    np.testing.assert_allclose(
        vals["conf.high"] - vals["estimate"], 1.959963984540054 * re["condsd"]
    )
    pars = t[t["effect"] == "ran_pars"]
    assert pars["conf.low"].isna().all()  # no Wald intervals for variance parameters
    assert pars["statistic"].isna().all()


def test_combined_effects_rows_and_columns_as_broom():
    """R: tidy(lmer(Reaction ~ Days + (Days || Subject), REML = FALSE),
    effects = c("ran_vals", "fixed", "ran_pars"), conf.int = TRUE): rows fixed, ran_pars,
    ran_vals whatever the order asked; broom.mixed's column order."""
    m = mfx.lmer("Reaction ~ Days + (Days || Subject)", mfx.datasets.load("sleepstudy"), REML=False)
    t = m.tidy(["ran_vals", "fixed", "ran_pars"], conf_int=True, ddf="lme4")
    assert list(t.columns) == [
        "effect", "group", "level", "term", "estimate", "std.error", "statistic", "conf.low",
        "conf.high",
    ]  # fmt: skip
    assert t["effect"].tolist() == ["fixed"] * 2 + ["ran_pars"] * 3 + ["ran_vals"] * 36
    pars = t[t["effect"] == "ran_pars"]
    assert pars["group"].tolist() == ["Subject", "Subject.1", "Residual"]
    assert pars["term"].tolist() == ["sd__(Intercept)", "sd__Days", "sd__Observation"]
    # lme4's default fit (θ 1e-5 from the optimum)
    np.testing.assert_allclose(pars["estimate"], [24.171588, 5.799366, 25.556123], rtol=5e-5)
    fixed = t[t["effect"] == "fixed"]
    np.testing.assert_allclose(fixed["std.error"], [6.707737, 1.519305], rtol=1e-5)
    np.testing.assert_allclose(fixed["conf.low"], [238.2581810, 7.4895021], rtol=1e-5)
    vals = t[t["effect"] == "ran_vals"]
    assert vals["group"].unique().tolist() == ["Subject"]
    np.testing.assert_allclose(vals["conf.low"].iloc[:2], [-21.847641, -63.725050], rtol=1e-4)
    assert fixed["level"].isna().all() and fixed["group"].isna().all()
    g = m.glance()
    assert list(g.columns) == [
        "nobs", "sigma", "logLik", "AIC", "BIC", "deviance", "df.residual",
    ]  # fmt: skip
    np.testing.assert_allclose(
        g.iloc[0, :6].to_numpy(float),
        [180, 25.55612, -876.0016, 1762.003, 1777.968, 1752.003],
        rtol=1e-6,
    )
    assert g["df.residual"].iloc[0] == 175


def test_correlations_in_lme4_order():
    """R: tidy(lmer(score ~ Machine + (0 + Machine | Worker), Machines), "ran_pars")."""
    m = mfx.lmer("score ~ Machine + (0 + Machine | Worker)", _csv("Machines"))
    t = m.tidy("ran_pars")
    assert t["term"].tolist() == [
        "sd__MachineA", "cor__MachineA.MachineB", "cor__MachineA.MachineC", "sd__MachineB",
        "cor__MachineB.MachineC", "sd__MachineC", "sd__Observation",
    ]  # fmt: skip
    want = [4.0792267, 0.8027271, 0.6225119, 8.6252429, 0.7708805, 4.3897946, 0.9615753]
    np.testing.assert_allclose(t["estimate"], want, rtol=1e-4)  # lme4's default fit
    f = m.tidy("fixed", conf_int=True, conf_level=0.9, ddf="lme4")
    np.testing.assert_allclose(f["conf.low"], [49.591068, 3.984642, 11.383360], rtol=5e-5)
    np.testing.assert_allclose(f["conf.high"], [55.12004, 11.94869, 16.44997], rtol=5e-5)


def test_gamma_glmm_has_residual_sd_and_z_pvalues():
    """R: tidy(glmer(y ~ x + (1 | g), gamma_log, Gamma("log")), conf.int = TRUE), glance."""
    g = mfx.glmer("y ~ x + (1 | g)", _csv("gamma_log"), family=mfx.families.Gamma(link="log"))
    t = g.tidy(conf_int=True)
    assert list(t.columns) == [
        "effect", "group", "term", "estimate", "std.error", "statistic", "p.value", "conf.low",
        "conf.high",
    ]  # fmt: skip
    assert t["term"].tolist() == ["(Intercept)", "x", "sd__(Intercept)", "sd__Observation"]
    # far tails: z differs by 1e-4 (finite-difference Hessians), p by 1%
    np.testing.assert_allclose(t["p.value"].iloc[:2], [1.180800e-18, 3.419998e-81], rtol=2e-2)
    np.testing.assert_allclose(t["estimate"].iloc[2:], [0.3128548, 0.4662565], rtol=1e-4)
    gl = g.glance()
    np.testing.assert_allclose(gl["deviance"], [58.82229], rtol=1e-4)
    assert gl["df.residual"].iloc[0] == 296


def test_profile_intervals():
    m = mfx.lmer("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("Dyestuff"))
    t = m.tidy(conf_int=True, conf_method="profile")
    ci = m.confint()
    np.testing.assert_allclose(t["conf.low"], ci.iloc[[2, 0, 1], 0], rtol=1e-10)
    np.testing.assert_allclose(t["conf.high"], ci.iloc[[2, 0, 1], 1], rtol=1e-10)


def test_bad_input():
    m = sleep()
    for bad in ("random", ["fixed", "ran_coef"], [], None, 3):
        with pytest.raises(mfx.ModelError, match="effects"):
            m.tidy(bad)
    for bad in (0, 1, 1.5, -0.1, "0.95", True, math.nan):
        with pytest.raises(mfx.DataError, match="conf_level"):
            m.tidy(conf_int=True, conf_level=bad)
    with pytest.raises(mfx.ModelError, match="conf_method"):
        m.tidy(conf_int=True, conf_method="boot")
    with pytest.raises(mfx.ModelError, match="ddf"):
        m.tidy(ddf="residual")
    with pytest.raises(mfx.DataError, match="conf_int"):
        m.tidy(conf_int="yes")
    with pytest.raises(mfx.ModelError, match="Wald"):
        m.tidy("ran_vals", conf_int=True, conf_method="profile")
    unfitted = mfx.LinearMixedModel(
        "Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(mfx.ModelError, match="not been fitted"):
            unfitted.glance()


def test_column_vocabulary():
    assert COLUMNS[:4] == ("effect", "group", "level", "term")
