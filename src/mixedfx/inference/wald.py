"""Tables of the fixed effects with their tests, as lmerTest and lme4 print them.

For β̂ with standard errors from the engine's covariance, the statistic β̂_j / SE_j is

* for linear mixed models a t statistic with Satterthwaite's df (lmerTest's default) or, with
  ``ddf="kenward-roger"``, with pbkrtest's adjusted SEs and df;
* for GLMMs a Wald z statistic with normal p-values (lme4's ``summary.glmerMod``); for families
  with a dispersion parameter lme4 prints a t value without a p-value, and so does this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..errors import ModelError
from .kenward_roger import kr_ddf, kr_info
from .satterthwaite import contrast_df, satterthwaite_info

__all__ = ["coefficient_table", "ddf_name"]

_DDF = {
    "satterthwaite": "satterthwaite",
    "kenward-roger": "kenward-roger",
    "kr": "kenward-roger",
    "lme4": "lme4",
}


def ddf_name(ddf: Any) -> str:
    """Normalize a ddf name: Satterthwaite, Kenward-Roger (any case, - or _) or lme4."""
    key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-")
    if not isinstance(ddf, str) or key not in _DDF:
        raise ModelError(f"unknown ddf {ddf!r}: use 'satterthwaite', 'kenward-roger' or 'lme4'")
    return _DDF[key]


def coefficient_table(engine: Any, ddf: str = "satterthwaite") -> pd.DataFrame:
    """estimate, std_error, (df,) statistic, (p_value) per fixed effect, lme4's names.

    ``ddf`` applies to linear mixed models: "satterthwaite", "kenward-roger", or "lme4" (t
    values without df and p-values).
    """
    engine.require_fit()
    key = ddf_name(ddf)
    beta = engine.beta
    index = pd.Index(engine.design.fixed.names, name="term")
    p = beta.size
    if key == "kenward-roger":
        kr = kr_info(engine)
        se = np.sqrt(np.diag(kr.PhiA))
        df = np.array([kr_ddf(kr, np.eye(p)[[j]]) for j in range(p)])
    else:
        var = np.diag(engine.sigma**2 * engine.vcov_unscaled)
        # a variance that is not positive (rounding at a boundary, a divergent estimate) has no
        # standard error: NaN, never −0.0 and an infinite statistic
        se = np.where(var > 0, np.sqrt(np.where(var > 0, var, 1.0)), np.nan)
        df = None
    stat = beta / se
    out = pd.DataFrame({"estimate": beta, "std_error": se}, index=index)
    if not engine.gaussian:
        out["statistic"] = stat
        if not engine.has_dispersion:
            out["p_value"] = 2.0 * stats.norm.sf(np.abs(stat))
        return out
    if key == "lme4":
        out["statistic"] = stat
        return out
    if df is None:
        df = contrast_df(satterthwaite_info(engine), np.eye(p))
    out["df"] = df
    out["statistic"] = stat
    out["p_value"] = 2.0 * stats.t.sf(np.abs(stat), df)
    return out
