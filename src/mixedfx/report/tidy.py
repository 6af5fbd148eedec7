"""Tidy tables of a fitted mixed model, as broom.mixed's ``tidy`` and ``glance`` make them.

``tidy`` gives one row per parameter with broom.mixed's column names — ``effect, group,
level, term, estimate, std.error, statistic, df, p.value, conf.low, conf.high`` (those that
apply) — for three kinds of effects:

* ``"fixed"``: β̂ with its standard error and test, as ``coef(summary(m))``. Linear mixed
  models follow lmerTest (what ``mixedfx.lmer`` is): t statistics with Satterthwaite df (or
  Kenward–Roger, ``ddf="kenward-roger"``), and Wald intervals with t quantiles,
  β̂ ± t_{df, (1+level)/2} SE; with ``ddf="lme4"`` the table of an lme4 ``lmerMod``: no df or
  p-value, intervals β̂ ± z_{(1+level)/2} SE. GLMMs: Wald z tests, p = 2Φ(−|z|) (also for
  families with a dispersion parameter, as lme4's ``summary`` gives ``Pr(>|z|)``), normal
  intervals.
* ``"ran_pars"``: the random-effects parameters on the standard-deviation / correlation scale,
  term by term in the order of θ (lower triangle column by column): ``sd__(Intercept)``,
  ``cor__(Intercept).Days``, ``sd__Days``, then ``sd__Observation`` of the ``Residual`` when
  the model has a dispersion parameter. Wald intervals do not exist for these (NaN, as broom's
  NA); ``conf_method="profile"`` gives lme4's profile intervals.
* ``"ran_vals"``: the conditional modes b̂ with their conditional standard deviations
  (``ranef(m, condVar = TRUE)``), intervals b̂ ± z_{(1+level)/2} sd.

Rows come in that order (fixed, ran_pars, ran_vals), whatever the order of ``effects``.
``glance`` gives one row: ``nobs, sigma, logLik, AIC, BIC``, then ``REMLcrit`` for a REML fit
or ``deviance`` otherwise (for a GLMM lme4's ``deviance``: Σ d_i(y_i, μ̂_i), the deviance
residuals at the conditional modes), and ``df.residual`` = n − number of parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..errors import DataError, ModelError
from ..frame.design import tril_indices_colmajor
from ..inference import wald

__all__ = ["COLUMNS", "EFFECTS", "glance", "tidy"]

EFFECTS = ("fixed", "ran_pars", "ran_vals")
COLUMNS = (
    "effect",
    "group",
    "level",
    "term",
    "estimate",
    "std.error",
    "statistic",
    "df",
    "p.value",
    "conf.low",
    "conf.high",
)
"""broom.mixed's column order (its ``reorder_cols``)."""

_CONF_METHODS = {"wald": "wald", "profile": "profile"}


def _effects(effects: Any) -> list[str]:
    chosen = [effects] if isinstance(effects, str) else effects
    if not isinstance(chosen, Sequence) or isinstance(chosen, bytes) or not chosen:
        raise ModelError(
            f"effects must be one of {', '.join(map(repr, EFFECTS))} or a list of them, "
            f"got {effects!r}"
        )
    for e in chosen:
        if e not in EFFECTS:
            raise ModelError(
                f"unknown effects value {e!r}: use {', '.join(map(repr, EFFECTS))} "
                "(or a list of them)"
            )
    return [e for e in EFFECTS if e in chosen]


def _conf_level(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise DataError(f"conf_level must be a number strictly between 0 and 1, got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise DataError(f"conf_level must be strictly between 0 and 1, got {value!r}")
    return float(value)


def _conf_method(value: Any) -> str:
    key = value.strip().lower() if isinstance(value, str) else ""
    if key not in _CONF_METHODS:
        raise ModelError(f"conf_method must be 'Wald' or 'profile', got {value!r}")
    return _CONF_METHODS[key]


# ----------------------------------------------------------------- the parts
def _fixed(model: Any, ddf: str, conf_int: bool, level: float, method: str) -> pd.DataFrame:
    e = model.engine
    if e.gaussian:
        key = wald.ddf_name(ddf)
        coef = model.coefficients_kr if key == "kenward-roger" else model.coefficients
        if key == "lme4":
            coef = coef[["estimate", "std_error", "statistic"]]
    else:
        coef = model.coefficients
        if "p_value" not in coef:  # lme4's summary gives Pr(>|z|) for every GLMM
            coef = coef.assign(p_value=2.0 * stats.norm.sf(np.abs(coef["statistic"])))
    out = pd.DataFrame(
        {
            "effect": "fixed",
            "term": list(coef.index),
            "estimate": coef["estimate"].to_numpy(),
            "std.error": coef["std_error"].to_numpy(),
            "statistic": coef["statistic"].to_numpy(),
        }
    )
    if "df" in coef:
        out["df"] = coef["df"].to_numpy()
    if "p_value" in coef:
        out["p.value"] = coef["p_value"].to_numpy()
    if conf_int:
        if method == "profile":
            ci = model.confint(parm=list(coef.index), level=level, method="profile")
            lo, hi = ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy()
        else:
            a = (1.0 + level) / 2.0
            q = stats.t.ppf(a, out["df"].to_numpy()) if "df" in out else stats.norm.ppf(a)
            half = q * out["std.error"].to_numpy()
            lo, hi = out["estimate"].to_numpy() - half, out["estimate"].to_numpy() + half
        out["conf.low"], out["conf.high"] = lo, hi
    return out


def _ran_pars(model: Any, conf_int: bool, level: float, method: str) -> pd.DataFrame:
    rows: list[tuple[str, str, float]] = []
    for t, S in zip(model.design.terms, model.covariance_matrices(), strict=True):
        sd = np.sqrt(np.diag(S))
        for r, c in zip(*tril_indices_colmajor(t.k), strict=True):
            if r == c:
                rows.append((t.vc_name, f"sd__{t.columns[r]}", float(sd[r])))
            else:
                den = sd[r] * sd[c]
                corr = float(S[r, c] / den) if den > 0 else math.nan
                rows.append((t.vc_name, f"cor__{t.columns[c]}.{t.columns[r]}", corr))
    if model.engine.has_dispersion:
        rows.append(("Residual", "sd__Observation", float(model.sigma)))
    out = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    out.insert(0, "effect", "ran_pars")
    if conf_int:
        if method == "profile":
            ci = model.confint(level=level, method="profile")
            ci = ci.loc[[n for n in ci.index if str(n).startswith(".sig")]]
            out["conf.low"], out["conf.high"] = ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy()
        else:  # no Wald intervals for variance parameters (lme4's confint gives NA)
            out["conf.low"] = out["conf.high"] = math.nan
    return out


def _ran_vals(model: Any, conf_int: bool, level: float, method: str) -> pd.DataFrame:
    re = model.ranef()
    out = pd.DataFrame(
        {
            "effect": "ran_vals",
            "group": re["group"].to_numpy(),
            "level": re["level"].astype(str).to_numpy(),
            "term": re["term"].to_numpy(),
            "estimate": re["condval"].to_numpy(),
            "std.error": re["condsd"].to_numpy(),
        }
    )
    if conf_int:
        if method != "wald":
            raise ModelError("only Wald intervals exist for the conditional modes (ran_vals)")
        half = stats.norm.ppf((1.0 + level) / 2.0) * out["std.error"].to_numpy()
        out["conf.low"] = out["estimate"].to_numpy() - half
        out["conf.high"] = out["estimate"].to_numpy() + half
    return out


# ------------------------------------------------------------------- public
def tidy(
    model: Any,
    effects: str | Sequence[str] = ("fixed", "ran_pars"),
    conf_int: bool = False,
    conf_level: float = 0.95,
    conf_method: str = "Wald",
    ddf: str = "satterthwaite",
) -> pd.DataFrame:
    """One row per parameter, as broom.mixed's ``tidy(m, effects, conf.int, conf.level)``.

    Parameters
    ----------
    model : fitted LinearMixedModel or GeneralizedLinearMixedModel
    effects : str or list of str
        ``"fixed"``, ``"ran_pars"``, ``"ran_vals"``, or several (default: fixed and ran_pars,
        broom.mixed's default).
    conf_int : bool
        Add ``conf.low`` and ``conf.high``.
    conf_level : float
        Interval level, strictly between 0 and 1.
    conf_method : {"Wald", "profile"}
        Wald intervals (see the module's notes) or lme4's profile intervals (linear mixed
        models; fixed effects and ran_pars).
    ddf : {"satterthwaite", "kenward-roger", "lme4"}
        Denominator df of the fixed-effects t tests of a linear mixed model (``"lme4"``: no df
        or p-value and normal intervals, as for an lme4 ``lmerMod``); ignored for GLMMs.

    Returns
    -------
    pandas.DataFrame
        Columns among ``effect, group, level, term, estimate, std.error, statistic, df,
        p.value, conf.low, conf.high`` (broom.mixed's names and order).
    """
    chosen = _effects(effects)
    if not isinstance(conf_int, bool | np.bool_):
        raise DataError(f"conf_int must be True or False, got {conf_int!r}")
    level = _conf_level(conf_level)
    method = _conf_method(conf_method)
    key = wald.ddf_name(ddf)
    model.engine.require_fit()
    parts = []
    if "fixed" in chosen:
        parts.append(_fixed(model, key, bool(conf_int), level, method))
    if "ran_pars" in chosen:
        parts.append(_ran_pars(model, bool(conf_int), level, method))
    if "ran_vals" in chosen:
        parts.append(_ran_vals(model, bool(conf_int), level, method))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return out[[c for c in COLUMNS if c in out.columns]]


def glance(model: Any) -> pd.DataFrame:
    """One row of fit statistics, as broom.mixed's ``glance(m)``.

    Columns ``nobs, sigma, logLik, AIC, BIC``, then ``REMLcrit`` (REML fits) or ``deviance``
    (ML fits: −2 log-likelihood; GLMMs: lme4's ``deviance``, Σ d_i(y_i, μ̂_i)), then
    ``df.residual`` (n − parameters).
    """
    e = model.engine
    e.require_fit()
    row: dict[str, Any] = {
        "nobs": int(model.nobs),
        "sigma": float(model.sigma),
        "logLik": float(model.loglik),
        "AIC": float(model.aic),
        "BIC": float(model.bic),
    }
    if e.gaussian:
        row["REMLcrit" if e.REML else "deviance"] = float(model.objective)
    else:
        dev = e.family.dev_resids(e.y, e.fitted_values(), e.prior_weights)
        row["deviance"] = float(np.sum(dev))
    row["df.residual"] = int(model.df_resid)
    return pd.DataFrame([row])
