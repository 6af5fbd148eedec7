"""Estimated marginal means and contrasts (``m.emmeans``) against R's emmeans 1.8.4-1.

References:

* ``tests/reference/issue14.json`` (``emmeans``, made by ``make_issue14_reference.R``):
  Machines (``score ~ Machine + (1 | Worker) + (1 | Worker:Machine)``) and cake
  (``angle ~ recipe * temperature + (1 | recipe:replicate)``, means of recipe by temperature and
  averaged over temperature), each with ``lmer.df`` = kenward-roger, satterthwaite and
  asymptotic and ``pairs`` with adjust = tukey, bonferroni, holm, none; cbpp's binomial GLMM
  (fitted with PIRLS converged) on the link and the response scale.
* Values copied below from R (lme4 1.1-31, emmeans 1.8.4-1), for what the JSON does not
  cover: covariates and ``at``, the other contrast methods and adjustments, a negative
  binomial GLMM's response scale, and non-estimable means of a rank-deficient fit::

      cake <- <tests/reference/data/cake.csv with its schema's levels>
      m <- lmer(angle ~ recipe + temp + (1 | replicate), cake)
      emmeans(m, "recipe", at = list(temp = 200), lmer.df = "satterthwaite")
      e2 <- emmeans(m, "recipe")        # kenward-roger
      contrast(e2, "trt.vs.ctrl"); contrast(e2, "eff"); contrast(e2, "consec", adjust = "sidak")
      pairs(e2, adjust = "scheffe"); pairs(e2, adjust = "fdr")
      g <- glmer(count ~ mined + spp + (1 | site), Salamanders,
                 family = MASS::negative.binomial(theta = 1.5), control = <tight>)
      pairs(emmeans(g, "mined", type = "response")); pairs(emmeans(g, "spp"))
      cake2 <- cake[!(cake$recipe == "C" & cake$temperature == "225"), ]
      m2 <- lmer(angle ~ recipe * temperature + (1 | replicate), cake2)
      emmeans(m2, "recipe", lmer.df = "satterthwaite")
      pairs(emmeans(m2, "recipe", by = "temperature", lmer.df = "satterthwaite"))

Tolerances (the issue's): means, SEs, bounds and contrasts 1e-4 relative (contrasts whose
value is 0 to rounding: 1e-8 of their SE), df 2e-3, Tukey p-values 2e-3, other p-values 1e-4.
For the GLMM, SEs come from finite-difference Hessians on both sides (agreeing to ~1e-4), so its
p-values are compared to 1e-3.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.cli import main

REF = pathlib.Path(__file__).parent / "reference"
EMM = json.loads((REF / "issue14.json").read_text())["emmeans"]
ADJUSTS = ("tukey", "bonferroni", "holm", "none")
DDFS = ("kenward-roger", "satterthwaite", "asymptotic")


def load_reference_data(name: str) -> pd.DataFrame:
    """A data set of tests/reference/data with its schema's factor levels."""
    schema = json.loads((REF / "data" / f"{name}.schema.json").read_text())
    factors = [c for c in schema["columns"] if c["type"] == "factor"]
    df = pd.read_csv(REF / "data" / f"{name}.csv", dtype={c["name"]: str for c in factors})
    for c in factors:
        df[c["name"]] = pd.Categorical(df[c["name"]], categories=c["levels"])
    return df


_FITS: dict[str, object] = {}


def fit(key: str):
    if key not in _FITS:
        if key == "machines":
            _FITS[key] = mfx.lmer(
                EMM["machines"]["model"]["formula"], load_reference_data("Machines")
            )
        elif key == "cake":
            _FITS[key] = mfx.lmer(EMM["cake"]["model"]["formula"], load_reference_data("cake"))
        elif key == "cake_temp":
            _FITS[key] = mfx.lmer(
                "angle ~ recipe + temp + (1 | replicate)", load_reference_data("cake")
            )
        elif key == "cbpp":
            _FITS[key] = mfx.glmer(
                EMM["cbpp"]["model"]["formula"], mfx.datasets.load("cbpp"), family="binomial"
            )
    return _FITS[key]


def values(ref: dict, col: str) -> np.ndarray:
    return np.array(
        [np.inf if v == "Inf" else np.nan if v is None else v for v in ref["data"][col]]
    )


def close(ours, theirs, rtol, scale=None):
    """Relative agreement; where ``scale`` is given, differences are measured against it
    (contrasts that are 0 to rounding)."""
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    denom = np.abs(b) if scale is None else np.maximum(np.abs(b), np.asarray(scale, float))
    with np.errstate(invalid="ignore"):
        err = np.where(both_inf, 0.0, np.abs(a - b) / denom)
    assert np.all(err <= rtol), (a, b, err)


def check_means(table: pd.DataFrame, ref: dict, est: str = "emmean"):
    lower, upper = ref["columns"][-2:]
    close(table[est], values(ref, est), 1e-4)
    close(table["SE"], values(ref, "SE"), 1e-4)
    close(table["df"], values(ref, "df"), 2e-3)
    close(table["lower"], values(ref, lower), 1e-4)
    close(table["upper"], values(ref, upper), 1e-4)


def check_contrasts(table: pd.DataFrame, ref: dict, adjust: str, p_rtol: float = 1e-4):
    assert list(table["contrast"]) == ref["data"]["contrast"]
    stat = "z_ratio" if "z.ratio" in ref["columns"] else "t_ratio"
    r_est = next(c for c in ("estimate", "ratio", "odds.ratio") if c in ref["columns"])
    est = r_est.replace(".", "_")
    se = values(ref, "SE")
    close(table[est], values(ref, r_est), 1e-4, scale=1e-8 * se)
    close(table["SE"], se, 1e-4)
    close(table["df"], values(ref, "df"), 2e-3)
    close(table[stat], values(ref, stat.replace("_", ".")), 1e-4, scale=1e-8)
    close(table["p_value"], values(ref, "p.value"), 2e-3 if adjust == "tukey" else p_rtol)


# ----------------------------------------------------------------- lmer
@pytest.mark.parametrize("ddf", DDFS)
def test_machines(ddf):
    spec = EMM["machines"]["specs"]["Machine"]["dfs"][ddf]
    e = fit("machines").emmeans("Machine", ddf=ddf)
    assert list(e.table.columns) == ["Machine", "emmean", "SE", "df", "lower", "upper"]
    assert list(e.table["Machine"]) == spec["emmeans"]["data"]["Machine"]
    check_means(e.table, spec["emmeans"])
    assert e.notes == spec["emmeans"]["mesg"]
    for adjust in ADJUSTS:
        ref = spec["pairs"][adjust]
        p = e.pairs(adjust=adjust)
        check_contrasts(p.table, ref, adjust)
        assert p.notes == ref["mesg"]


@pytest.mark.parametrize("ddf", DDFS)
def test_cake_by_temperature(ddf):
    spec = EMM["cake"]["specs"]["recipe_by_temperature"]["dfs"][ddf]
    e = fit("cake").emmeans("recipe", by="temperature", ddf=ddf)
    ref = spec["emmeans"]
    assert list(e.table["recipe"]) == ref["data"]["recipe"]
    assert list(e.table["temperature"]) == ref["data"]["temperature"]
    check_means(e.table, ref)
    assert e.notes == ref["mesg"]
    for adjust in ADJUSTS:
        ref_p = spec["pairs"][adjust]
        p = e.pairs(adjust=adjust)
        assert list(p.table["temperature"]) == ref_p["data"]["temperature"]
        check_contrasts(p.table, ref_p, adjust)
        assert p.notes == ref_p["mesg"]
    text = str(e)
    assert "temperature = 175:" in text and " recipe emmean" in text


@pytest.mark.parametrize("ddf", DDFS)
def test_cake_averaged_over_temperature(ddf):
    spec = EMM["cake"]["specs"]["recipe"]["dfs"][ddf]
    e = fit("cake").emmeans("~ recipe", ddf=ddf)
    check_means(e.table, spec["emmeans"])
    # emmeans' annotations and its message about the interaction
    assert set(e.notes) == set(spec["emmeans"]["mesg"]) | set(spec["emmeans_messages"])
    for adjust in ADJUSTS:
        p = e.pairs(adjust=adjust)
        check_contrasts(p.table, spec["pairs"][adjust], adjust)
        assert p.notes == spec["pairs"][adjust]["mesg"]


def test_default_ddf_is_kenward_roger_for_a_reml_fit():
    assert fit("machines").emmeans("Machine").ddf == "kenward-roger"
    assert fit("cbpp").emmeans("period").ddf == "asymptotic"


# ---------------------------------------------------------------- glmer
def test_cbpp_link_scale():
    c = EMM["cbpp"]
    e = fit("cbpp").emmeans("period")
    ref = c["emmeans_link"]
    close(e.table["emmean"], values(ref, "emmean"), 1e-4)
    close(e.table["SE"], values(ref, "SE"), 1e-4)
    close(e.table["lower"], values(ref, "asymp.LCL"), 1e-4)
    close(e.table["upper"], values(ref, "asymp.UCL"), 1e-4)
    assert np.all(np.isinf(e.table["df"]))
    assert e.notes == ref["mesg"]
    for adjust in ADJUSTS:
        p = e.pairs(adjust=adjust)
        check_contrasts(p.table, c["pairs_link"][adjust], adjust, p_rtol=1e-3)
        assert p.notes == c["pairs_link"][adjust]["mesg"]


def test_cbpp_response_scale():
    c = EMM["cbpp"]
    e = fit("cbpp").emmeans("period", type="response")
    ref = c["emmeans_response"]
    assert list(e.table.columns) == ["period", "prob", "SE", "df", "lower", "upper"]
    close(e.table["prob"], values(ref, "prob"), 1e-4)
    close(e.table["SE"], values(ref, "SE"), 1e-4)  # delta method
    close(e.table["lower"], values(ref, "asymp.LCL"), 1e-4)  # back-transformed
    close(e.table["upper"], values(ref, "asymp.UCL"), 1e-4)
    assert e.notes == ref["mesg"]
    for adjust in ADJUSTS:
        p = e.pairs(adjust=adjust)  # odds ratios
        ref_p = c["pairs_response"][adjust]
        check_contrasts(p.table, ref_p, adjust, p_rtol=1e-3)
        assert np.all(p.table["null"] == 1.0)
        assert p.notes == ref_p["mesg"]
    assert "odds.ratio" in str(p) and "period1 / period2" in str(p)


def test_negative_binomial_response_scale():
    sal = load_reference_data("Salamanders")
    g = mfx.glmer(
        "count ~ mined + spp + (1 | site)", sal, family=mfx.families.NegativeBinomial(1.5)
    )
    e = g.emmeans("mined", type="response")
    close(e.table["response"], [0.183842385717935, 1.759641059359887], 1e-4)
    close(e.table["SE"], [0.0416474014427366, 0.3032357697761757], 2e-3)
    close(e.table["lower"], [0.117927643214411, 1.255272633159952], 5e-4)
    close(e.table["upper"], [0.286599662854381, 2.466664671873427], 5e-4)
    p = e.pairs()
    assert list(p.table["contrast"]) == ["yes / no"]
    close(p.table["ratio"], [0.104477208428412], 1e-4)
    close(p.table["SE"], [0.0294294373072016], 2e-3)
    close(p.table["z_ratio"], [-8.0188991721245], 2e-3)
    p = g.emmeans("spp").pairs()
    assert list(p.table["contrast"][:3]) == ["GP - PR", "GP - DM", "GP - (EC-A)"]
    close(p.table["estimate"][:3], [1.33954631061929, -0.329673571292325, 0.728205545088275], 1e-4)
    close(
        p.table["p_value"][:3], [7.17888912682429e-06, 0.621022373364508, 0.0223897305956079], 2e-3
    )


# ------------------------------------------- covariates, methods, adjustments
def test_covariate_at_a_value():
    e = fit("cake_temp").emmeans("recipe", at={"temp": 200}, ddf="satterthwaite")
    close(e.table["emmean"], [33.1222222222222, 31.6444444444444, 31.6], 1e-4)
    close(e.table["SE"], [1.69443471932698] * 3, 1e-4)
    close(e.table["df"], [15.8325852362314, 15.8325852349568, 15.8325852349501], 2e-3)
    close(e.table["lower"], [29.5270916697129, 28.0493138919113, 28.0048694474668], 1e-4)
    # at its mean (the default) the covariate gives the same means here (temp is balanced)
    e2 = fit("cake_temp").emmeans("recipe")
    close(e2.table["emmean"], e.table["emmean"], 1e-10)
    close(e2.table["df"], [15.8325853809253] * 3, 2e-3)


def test_other_contrast_methods_and_adjustments():
    e = fit("cake_temp").emmeans("recipe")
    se = 0.717440105105549
    t = e.contrast("trt.vs.ctrl").table  # dunnettx
    assert list(t["contrast"]) == ["B - A", "C - A"]
    close(t["estimate"], [-1.47777777777775, -1.5222222222222], 1e-4)
    close(t["SE"], [se, se], 1e-4)
    close(t["df"], [252, 252], 2e-3)
    close(t["p_value"], [0.0758979595446077, 0.0656768708690394], 2e-3)
    t = e.contrast("eff").table  # fdr
    assert list(t["contrast"]) == ["A effect", "B effect", "C effect"]
    close(t["estimate"], [1.0, -0.477777777777765, -0.52222222222221], 1e-4)
    close(t["SE"], [0.414214237810122] * 3, 1e-4)
    close(t["p_value"], [0.0494482687026023, 0.249816221109322, 0.249816221109322], 1e-4)
    t = e.contrast("consec", adjust="sidak").table
    assert list(t["contrast"]) == ["B - A", "C - B"]
    close(t["p_value"], [0.0792551822817485, 0.997564856942366], 1e-4)
    t = e.pairs(adjust="scheffe").table
    close(t["p_value"], [0.122002641995183, 0.107418389635894, 0.99808303684884], 1e-4)
    t = e.pairs(adjust="fdr").table
    close(t["p_value"], [0.060668266220026, 0.060668266220026, 0.950652831310861], 1e-4)
    # tukey for non-pairwise contrasts becomes sidak, with emmeans' note
    c = e.contrast("trt.vs.ctrl", adjust="tukey")
    assert c.adjust == "sidak" and any('changed to "sidak"' in n for n in c.notes)
    # custom weights and reversed pairs
    c = e.contrast({"A vs rest": [1, -0.5, -0.5]})
    means = e.table["emmean"].to_numpy()
    close(c.table["estimate"], [means[0] - 0.5 * (means[1] + means[2])], 1e-12)
    close(c.table["estimate"], [1.5 * 1.0], 1e-4)  # 3/2 of R's "A effect" (1.0)
    r = e.pairs(reverse=True).table
    assert list(r["contrast"]) == ["B - A", "C - A", "C - B"]


def test_non_estimable_means_of_a_rank_deficient_fit():
    cake = load_reference_data("cake")
    cake = cake[~((cake["recipe"] == "C") & (cake["temperature"] == "225"))]
    with pytest.warns(mfx.RankDeficiencyWarning):
        m = mfx.lmer("angle ~ recipe * temperature + (1 | replicate)", cake)
    e = m.emmeans("recipe", ddf="satterthwaite")
    close(e.table["emmean"][:2], [33.1222222222224, 31.6444444444447], 1e-4)
    close(e.table["df"][:2], [15.7744404179145, 15.7744404193617], 2e-3)
    assert np.isnan(e.table["emmean"][2]) and np.isnan(e.table["SE"][2])
    p = m.emmeans("recipe", by="temperature", ddf="satterthwaite").pairs().table
    last = p[p["temperature"] == "225"]
    close(last["estimate"][:1], [-0.2], 1e-4)
    close(last["df"][:1], [224.0], 2e-3)
    # Tukey over the family of 3 means, the non-estimable contrasts counted (emmeans)
    close(last["p_value"][:1], [0.992454693730464], 2e-3)
    assert last["p_value"][1:].isna().all()


# ------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    m, g = fit("machines"), fit("cbpp")
    with pytest.raises(mfx.ModelError, match="specs: 'Machin' is not a variable"):
        m.emmeans("Machin")
    with pytest.raises(mfx.ModelError, match="by: 'Worker' is not a variable"):
        m.emmeans("Machine", by="Worker")
    with pytest.raises(mfx.ModelError, match="unknown adjust 'tukee'"):
        m.emmeans("Machine").pairs(adjust="tukee")
    with pytest.raises(mfx.ModelError, match="unknown ddf 'kr2'"):
        m.emmeans("Machine", ddf="kr2")
    for level in (0, 1, 1.5, -0.1, "0.9"):
        with pytest.raises(mfx.DataError, match="level"):
            m.emmeans("Machine", level=level)
    with pytest.raises(mfx.ModelError, match="ddf='asymptotic'"):
        g.emmeans("period", ddf="kenward-roger")
    with pytest.raises(mfx.ModelError, match="ddf='asymptotic'"):
        g.emmeans("period", ddf="satterthwaite")
    with pytest.raises(mfx.ModelError, match="type"):
        g.emmeans("period", type="prob")
    with pytest.raises(mfx.ModelError, match="at: 'D' is not a level"):
        m.emmeans("Machine", at={"Machine": ["A", "D"]})
    with pytest.raises(mfx.ModelError, match="unknown contrast method"):
        m.emmeans("Machine").contrast("poly")
    with pytest.raises(mfx.ModelError, match="3 means"):
        m.emmeans("Machine").contrast({"x": [1, -1]})
    ml = mfx.lmer(EMM["machines"]["model"]["formula"], load_reference_data("Machines"), REML=False)
    with pytest.raises(mfx.ModelError, match="REML"):
        ml.emmeans("Machine", ddf="kenward-roger")
    assert ml.emmeans("Machine").ddf == "satterthwaite"


def test_level_and_at_restrict():
    m = fit("machines")
    e90 = m.emmeans("Machine", level=0.9, ddf="asymptotic")
    assert e90.notes[-1] == "Confidence level used: 0.9"
    half = (e90.table["upper"] - e90.table["lower"]) / 2
    close(half, 1.6448536269514722 * e90.table["SE"], 1e-10)
    sub = m.emmeans("Machine", at={"Machine": ["A", "C"]})
    assert list(sub.table["Machine"]) == ["A", "C"]


# ---------------------------------------------------------- command line
def test_command_line_emmeans(capsys, tmp_path):
    csv = REF / "data" / "Machines.csv"
    out = tmp_path / "emm.json"
    code = main(
        [
            "emmeans",
            "cake",
            "angle ~ recipe * temperature + (1 | recipe:replicate)",
            "recipe",
            "--pairs",
            "--adjust",
            "holm",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert " recipe emmean" in text and "P value adjustment: holm method for 3 tests" in text
    payload = json.loads(out.read_text())
    ref = EMM["cake"]["specs"]["recipe"]["dfs"]["kenward-roger"]
    close([r["emmean"] for r in payload["emmeans"]], values(ref["emmeans"], "emmean"), 1e-4)
    close([r["p_value"] for r in payload["pairs"]], values(ref["pairs"]["holm"], "p.value"), 1e-4)
    assert main(["emmeans", str(csv), "score ~ Machine + (1 | Worker)", "Machin"]) == 2
    assert "specs: 'Machin'" in capsys.readouterr().err
    assert main(["emmeans", str(csv), "score ~ Machine + (1 | Worker)", "Machine", "--pairs",
                 "--adjust", "nope"]) == 2  # fmt: skip
    assert "unknown adjust 'nope'" in capsys.readouterr().err


def test_offsets_and_two_valued_covariates_as_emmeans():
    """emmeans' grid: the offset at its mean over the data (an offset() term or the offset
    argument alike), a numeric covariate with two values at both (``cov.keep``)::

        g <- glmer(incidence ~ period + offset(log(size)) + (1 | herd), cbpp, family = poisson)
        emmeans(g, "period", type = "response")
        ss$grp <- ifelse(ss$Days > 4, "late", "early"); ss$b01 <- ss$Days %% 2
        m <- lmer(Reaction ~ grp + b01 + log(Days + 1) + (1 | Subject), sleepstudy)
        emmeans(m, "grp", lmer.df = "satterthwaite")
    """
    cbpp = mfx.datasets.load("cbpp")
    rate = [2.4339104627, 1.0464912292, 0.9260829064, 0.6056029208]
    g1 = mfx.glmer("incidence ~ period + offset(log(size)) + (1 | herd)", cbpp, family="poisson")
    g2 = mfx.glmer(
        "incidence ~ period + (1 | herd)", cbpp, family="poisson", offset=np.log(cbpp["size"])
    )
    for g in (g1, g2):
        e = g.emmeans("period", type="response")
        close(e.table["rate"], rate, 1e-4)
        close(e.table["SE"], [0.4718359625, 0.2903573417, 0.2768748252, 0.2442553904], 2e-3)
    ss = mfx.datasets.load("sleepstudy")
    ss["grp"] = np.where(ss["Days"] > 4, "late", "early")
    ss["b01"] = ss["Days"] % 2
    m = mfx.lmer("Reaction ~ grp + b01 + log(Days + 1) + (1 | Subject)", ss)
    e = m.emmeans("grp", ddf="satterthwaite")
    close(e.table["emmean"], [290.548509865, 316.252559930], 1e-4)
    close(e.table["SE"], [10.29883232290, 9.59509253201], 1e-4)
    close(e.table["df"], [28.2484980022, 21.4461303610], 2e-3)
    assert e.notes[0] == "Results are averaged over the levels of: b01"
