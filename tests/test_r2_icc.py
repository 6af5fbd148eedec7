"""Nakagawa's R² and the ICC agree with R's performance (0.10.2, insight 0.19.0).

References:

* ``tests/reference/issue14.json`` ("performance"): ``r2_nakagawa(m)``, ``icc(m)`` and
  ``insight::get_variance(m)`` for sleepstudy and Penicillin (lmer, REML), cbpp (binomial) and
  grouseticks (Poisson) fitted by lme4 with PIRLS converged (``tolPwrss = 1e-12``, as mixedfx
  fits), and two negative binomial fits (``glmer.nb``'s defaults).
* ``EXTRA`` below: the same functions on more families and links, computed with
  ``Rscript`` (lme4 1.1.31, the same tight ``glmerControl``) on the CSV files of
  ``tests/reference/data`` — e.g. for the probit fit
  ``r2_nakagawa(glmer(y01 ~ x + (1 | g), probit_binary, family = binomial("probit"),
  control = glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"))))``.

Tolerance 1e-4 (absolute on R² and ICC, relative on the variance parts), the issue's.
"""

from __future__ import annotations

import json
import math
import pathlib
import types
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.inference import r2 as r2_mod

REF = pathlib.Path(__file__).parent / "reference"
PERF = json.loads((REF / "issue14.json").read_text())["performance"]["cases"]
TOL = 1e-4

_FITS: dict[str, object] = {}


def _csv(name: str) -> pd.DataFrame:
    """A reference data set with its factor levels in R's order (from NAME.schema.json)."""
    df = pd.read_csv(REF / "data" / f"{name}.csv")
    schema = json.loads((REF / "data" / f"{name}.schema.json").read_text())
    for col in schema["columns"]:
        if col["type"] == "factor":
            df[col["name"]] = pd.Categorical(df[col["name"]].astype(str), col["levels"])
    return df


def _glmer(formula: str, data: pd.DataFrame, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)
        return mfx.glmer(formula, data, family=family, **kw)


def _lmer(formula: str, data: pd.DataFrame, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)
        return mfx.lmer(formula, data, **kw)


FAM = mfx.families
MODELS = {
    "sleepstudy": lambda: _lmer(
        "Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy")
    ),
    "penicillin": lambda: _lmer(
        "diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("Penicillin")
    ),
    "cbpp_binomial": lambda: _glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        mfx.datasets.load("cbpp"),
        "binomial",
    ),
    "grouseticks_poisson": lambda: _glmer(
        "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", mfx.datasets.load("grouseticks"), "poisson"
    ),
    "probit": lambda: _glmer(
        "y01 ~ x + (1 | g)", _csv("probit_binary"), FAM.Binomial(link="probit")
    ),
    "cloglog": lambda: _glmer(
        "y01 ~ x + (1 | g)", _csv("probit_binary"), FAM.Binomial(link="cloglog")
    ),
    "gamma_log": lambda: _glmer("y ~ x + (1 | g)", _csv("gamma_log"), FAM.Gamma(link="log")),
    "invgauss_log": lambda: _glmer(
        "y ~ x + (1 | g)", _csv("invgauss_log"), FAM.InverseGaussian(link="log")
    ),
    "poisson_offset": lambda: _glmer(
        "deaths ~ uvb + (1 | region) + offset(log(expected))", _csv("poisson_offset"), "poisson"
    ),
    "sleepstudy_ml": lambda: _lmer(
        "Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"), REML=False
    ),
    "machines_nested": lambda: _lmer(
        "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", _csv("Machines")
    ),
    "machines_unstructured": lambda: _lmer(
        "score ~ Machine + (0 + Machine | Worker)", _csv("Machines")
    ),
    "sleepstudy_uncorr": lambda: _lmer(
        "Reaction ~ Days + (Days || Subject)", mfx.datasets.load("sleepstudy")
    ),
}

# performance::r2_nakagawa / icc and insight::get_variance (var.fixed, var.random,
# var.distribution) in R, as the module docstring says
EXTRA = {
    "probit": (0.317174728683564, 0.567781206899083, 0.367014064567892, 0.250606478215519,
               0.73382910171032, 0.579813932701917, 1.0),
    "cloglog": (0.265681321774823, 0.474608103078913, 0.284517863292077, 0.208926781304089,
                0.83181385109621, 0.654122726402962, 1.64493406684823),
    "gamma_log": (0.449215242004218, 0.620219301676097, 0.310473478413121, 0.17100405967188,
                  0.257148152803363, 0.0978893277759419, 0.217401138502433),
    "invgauss_log": (0.285267895122643, 0.374640603667997, 0.125043646333321,
                     0.0893727085453543, 0.112628084194603, 0.0352856985130359,
                     0.24690135814858),
    "poisson_offset": (0.0657267841086834, 0.15925959634068, 0.100112911984493,
                       0.0935328122319961, 0.0609602669803087, 0.0867497973984746,
                       0.779769772144285),
    "sleepstudy_ml": (0.28761588940202, 0.792758573300399, 0.709087522283953,
                      0.505142683898379, 908.953362623054, 1596.4039472523, 654.945705764191),
    "machines_nested": (0.467700118502382, 0.986942234223404, 0.975469155206538,
                        0.519242115721022, 33.1181761006374, 36.7679013688956,
                        0.924629627751505),
}  # fmt: skip


def fit(cid: str):
    if cid not in _FITS:
        _FITS[cid] = MODELS[cid]()
    return _FITS[cid]


def _r2_icc(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)
        return m.r2(), m.icc()


@pytest.mark.parametrize(
    "cid", ["sleepstudy", "penicillin", "cbpp_binomial", "grouseticks_poisson"]
)
def test_r2_and_icc_match_performance(cid):
    ref = PERF[cid]
    r2, icc = _r2_icc(fit(cid))
    assert r2.marginal == pytest.approx(ref["r2_marginal"], abs=TOL)
    assert r2.conditional == pytest.approx(ref["r2_conditional"], abs=TOL)
    assert icc.adjusted == pytest.approx(ref["icc_adjusted"], abs=TOL)
    assert icc.unadjusted == pytest.approx(ref["icc_unadjusted"], abs=TOL)
    assert icc.conditional == icc.unadjusted
    gv, v = ref["get_variance"], r2.variances
    assert v.fixed == pytest.approx(gv["var.fixed"], rel=TOL, abs=1e-12)
    assert v.random == pytest.approx(gv["var.random"], rel=TOL)
    assert v.distribution == pytest.approx(gv["var.distribution"], rel=TOL)
    assert v.residual == pytest.approx(gv["var.residual"], rel=TOL)
    assert v.dispersion == gv["var.dispersion"] == 0


@pytest.mark.parametrize("cid", sorted(EXTRA))
def test_other_families_links_and_ml_match_performance(cid):
    m2, c2, adj, unadj, vf, vr, vd = EXTRA[cid]
    r2, icc = _r2_icc(fit(cid))
    assert [r2.marginal, r2.conditional, icc.adjusted, icc.unadjusted] == pytest.approx(
        [m2, c2, adj, unadj], abs=TOL
    )
    v = r2.variances
    assert [v.fixed, v.random, v.distribution] == pytest.approx([vf, vr, vd], rel=TOL)


@pytest.mark.parametrize("cid", ["grouseticks_nb", "salamanders_nb"])
def test_negative_binomial_matches_performance(cid):
    """The lognormal approximation log(1 + 1/μ + 1/θ) with μ from the refitted null model.
    R's fits are glmer.nb's defaults (its PIRLS tolerance, also in the null model insight
    refits), which moves σ²_d by up to 5e-4 relative: tolerance 3e-4 here."""
    nb = getattr(FAM, "NegativeBinomial", None)
    if nb is None:
        pytest.skip("no negative binomial family yet")
    ref = PERF[cid]
    data = mfx.datasets.load("grouseticks") if cid == "grouseticks_nb" else _csv("Salamanders")
    m = _glmer(ref["model"]["formula"], data, nb(ref["model"]["nb_theta"]))
    r2, icc = _r2_icc(m)
    got = [r2.marginal, r2.conditional, icc.adjusted, icc.unadjusted]
    want = [ref[k] for k in ("r2_marginal", "r2_conditional", "icc_adjusted", "icc_unadjusted")]
    assert got == pytest.approx(want, abs=3e-4)
    theta = ref["model"]["nb_theta"]
    mu = math.exp(r2_mod.null_model_intercept(m.engine))
    assert r2.variances.distribution == pytest.approx(math.log1p(1 / mu + 1 / theta), rel=1e-12)


def test_lognormal_approximation_uses_the_null_model_and_warns_for_small_mu():
    m = fit("grouseticks_poisson")
    null = _glmer("TICKS ~ 1 + (1 | BROOD)", mfx.datasets.load("grouseticks"), "poisson")
    beta0 = r2_mod.null_model_intercept(m.engine)
    assert beta0 == pytest.approx(float(null.fixef.iloc[0]), abs=1e-6)
    with pytest.warns(mfx.MixedFXWarning, match="mu of 1.7 is too close to zero"):
        sigma2_d = r2_mod.distribution_variance(m.engine)
    assert sigma2_d == pytest.approx(math.log1p(math.exp(-beta0)), rel=1e-12)
    with pytest.warns(mfx.MixedFXWarning, match="mu of 1.7 is too close to zero"):
        m.r2()


def test_random_variance_counts_every_term_and_column():
    """insight leaves out a random-effect column that is not a column of X and all but the
    first ``||`` term of a factor; mixedfx counts them (module docstring). The other terms
    agree: insight's numbers are what is left when the left-out parts are removed."""
    m = fit("machines_unstructured")
    v = _r2_icc(m)[0].variances
    S = m.covariance_matrices()[0]
    share = m.data["Machine"].value_counts(normalize=True).reindex(["A", "B", "C"]).to_numpy()
    assert v.random == pytest.approx(float(share @ np.diag(S)), rel=1e-12)
    insight_value = 31.2217036770415  # R: get_variance(m)$var.random, MachineA left out
    assert v.random - share[0] * S[0, 0] == pytest.approx(insight_value, rel=TOL)
    # the same total as the compound-symmetry parametrization, within the two fits' difference
    assert v.random == pytest.approx(EXTRA["machines_nested"][5], rel=TOL)

    u = fit("sleepstudy_uncorr")
    v = _r2_icc(u)[0].variances
    s_int, s_days = (float(S[0, 0]) for S in u.covariance_matrices())
    days2 = float(np.mean(u.data["Days"].to_numpy(float) ** 2))
    assert v.random == pytest.approx(s_int + s_days * days2, rel=1e-12)
    assert s_int == pytest.approx(627.569050835732, rel=TOL)  # insight's var.random


def test_singular_fit_gives_nan_and_the_marginal_r2_of_performance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        m = mfx.lmer(
            "angle ~ recipe * temperature + (recipe | replicate)", mfx.datasets.load("cake")
        )
    with pytest.warns(mfx.MixedFXWarning, match="singular"):
        r2 = m.r2()
    assert math.isnan(r2.conditional) and math.isnan(r2.variances.random)
    assert r2.marginal == pytest.approx(0.308083190976452, abs=TOL)  # performance 0.10.2
    with pytest.warns(mfx.MixedFXWarning, match="singular"):
        icc = m.icc()
    assert math.isnan(icc.adjusted) and math.isnan(icc.unadjusted)
    assert "NA" in str(icc)
    # a tolerance below the smallest θ forces the computation, as in performance
    forced = m.r2(tolerance=0.0)
    assert math.isfinite(forced.conditional)


def test_printed_as_performance():
    r2, icc = _r2_icc(fit("sleepstudy"))
    assert str(r2) == ("# R2 for Mixed Models\n\n  Conditional R2: 0.799\n     Marginal R2: 0.279")
    assert str(icc) == (
        "# Intraclass Correlation Coefficient\n\n    Adjusted ICC: 0.722\n  Unadjusted ICC: 0.521"
    )


def test_slopes_without_fixed_effects_warn():
    m = _lmer("Reaction ~ 1 + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    with pytest.warns(mfx.MixedFXWarning, match="random slopes not present as fixed effects"):
        m.r2()


def test_bad_input():
    m = fit("sleepstudy")
    for bad in (-1.0, "0.1", True, math.nan):
        with pytest.raises(mfx.DataError, match="tolerance"):
            m.r2(tolerance=bad)
    with pytest.raises(mfx.DataError, match="tolerance"):
        m.icc(tolerance=-1)
    fake = types.SimpleNamespace(family=FAM.Binomial(link="log"))
    with pytest.raises(mfx.ModelError, match="link 'log'"):
        r2_mod.distribution_variance(fake)
    fake = types.SimpleNamespace(family=FAM.Poisson(link="identity"))
    with pytest.raises(mfx.ModelError, match="link 'identity'"):
        r2_mod.distribution_variance(fake)
    unfitted = mfx.LinearMixedModel(
        "Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy")
    )
    with pytest.raises(mfx.ModelError, match="not been fitted"):
        unfitted.r2()
