"""Confidence intervals for a fitted mixed model (lme4's ``confint``).

* ``"wald"``: β̂ ± z SE for the fixed effects; the variance parameters get NaN (R's NA).
* ``"profile"``: where the profile ζ crosses ±z (:mod:`mixedfx.profile`), for the variance
  parameters on the sd/cor scale and the fixed effects.
* ``"boot"``: percentiles of a parametric bootstrap (:mod:`mixedfx.bootstrap`).

Rows are named as lme4 names them (``.sig01``, ..., ``.sigma``, then the fixed effects) and
the columns as R labels them (``2.5 %``, ``97.5 %``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import _pct, bootstrap
from .errors import DataError, ModelError

__all__ = ["confint"]

METHODS = ("profile", "wald", "boot")


def _names(model: Any) -> list[str]:
    from .glmm import GeneralizedLinearMixedModel
    from .profile import sdcor_names

    names = sdcor_names(model)
    if isinstance(model, GeneralizedLinearMixedModel) and not model.family.has_dispersion:
        names = names[:-1]
    return names + list(model.design.fixed.names)


def confint(
    model: Any,
    parm: list[str] | str | None = None,
    level: float = 0.95,
    method: str = "profile",
    nsim: int = 1000,
    seed: Any = None,
    n_jobs: int = 1,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Confidence intervals, one row per parameter.

    Parameters
    ----------
    model : fitted LinearMixedModel (all methods) or GeneralizedLinearMixedModel ("wald",
        "boot")
    parm : list of str, optional
        Parameters to report (default: all), by lme4's names.
    level : float
        Confidence level, strictly between 0 and 1.
    method : {"profile", "wald", "boot"}
    nsim, seed, n_jobs, progress : for ``method="boot"`` (see :func:`mixedfx.bootstrap.bootstrap`)
    """
    from .glmm import GeneralizedLinearMixedModel

    model._require_fit()
    key = str(method).strip().lower()
    if key not in METHODS:
        raise ModelError(f"unknown confint method {method!r}: use 'profile', 'wald' or 'boot'")
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise DataError(f"level must be a number between 0 and 1, got {level!r}") from None
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be strictly between 0 and 1, got {level}")
    names = _names(model)
    if parm is None:
        chosen = names
    else:
        chosen = [parm] if isinstance(parm, str) else list(parm)
        bad = [p for p in chosen if p not in names]
        if bad:
            raise DataError(f"unknown parameter {bad[0]!r}; parameters: {', '.join(names)}")
    a = (1.0 - level) / 2.0
    cols = [_pct(a), _pct(1.0 - a)]
    z = float(stats.norm.ppf(1.0 - a))
    out = pd.DataFrame(np.nan, index=pd.Index(chosen), columns=cols)
    if key == "wald":
        est = model.fixef
        se = model.coefficients["std_error"]
        for p in chosen:
            if p in est.index:
                out.loc[p] = [est[p] - z * se[p], est[p] + z * se[p]]
        return out
    if key == "boot":
        res = bootstrap(model, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)
        ci = res.confint(level)
        return ci.loc[chosen].set_axis(cols, axis=1)
    if isinstance(model, GeneralizedLinearMixedModel):
        raise ModelError(
            "profile intervals are implemented for linear mixed models (lmer) only; for a "
            "glmer fit use method='wald' or method='boot'"
        )
    from .profile import Profiler

    prof = Profiler(model)
    for p in chosen:
        out.loc[p] = prof.interval(p, z)
    return out
