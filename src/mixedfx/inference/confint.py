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

from .._lazy import stats
from ..errors import DataError, ModelError
from ..frame.checks import check_bool, check_int, check_names, check_seed
from .bootstrap import bootstrap, percent_label
from .parameters import parameter_names
from .profile import Profiler

__all__ = ["confint"]

METHODS = ("profile", "wald", "boot")


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
    model : fitted engine: linear (all methods) or generalized ("wald", "boot")
    parm : list of str, optional
        Parameters to report (default: all), by lme4's names.
    level : float
        Confidence level, strictly between 0 and 1.
    method : {"profile", "wald", "boot"}
    nsim, seed, n_jobs, progress : for ``method="boot"`` (see :func:`mixedfx.bootstrap.bootstrap`)
    """
    model.require_fit()
    key = str(method).strip().lower() if isinstance(method, str) else ""
    if key not in METHODS:
        raise ModelError(f"unknown confint method {method!r}: use 'profile', 'wald' or 'boot'")
    if isinstance(level, bool) or not isinstance(level, int | float | np.number):
        raise DataError(f"level must be a number between 0 and 1, got {level!r}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be strictly between 0 and 1, got {level}")
    nsim = check_int(nsim, "nsim", low=1)
    seed = check_seed(seed)
    n_jobs = check_int(n_jobs, "n_jobs", low=-1)
    if progress is not None:
        progress = check_bool(progress, "progress")
    names = parameter_names(model)
    if parm is None:
        chosen = names
    else:
        chosen = check_names(parm, "parm", names, "parameter")
    a = (1.0 - level) / 2.0
    cols = [percent_label(a), percent_label(1.0 - a)]
    z = float(stats.norm.ppf(1.0 - a))
    out = pd.DataFrame(np.nan, index=pd.Index(chosen), columns=cols)
    if key == "wald":
        fixed = list(model.design.fixed.names)
        est = model.beta
        se = model.sigma * np.sqrt(np.diag(model.vcov_unscaled))
        for p in chosen:
            if p in fixed:
                j = fixed.index(p)
                out.loc[p] = [est[j] - z * se[j], est[j] + z * se[j]]
        return out
    if key == "boot":
        res = bootstrap(model, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)
        ci = res.confint(level)
        return ci.loc[chosen].set_axis(cols, axis=1)
    prof = Profiler(model)
    for p in chosen:
        out.loc[p] = prof.interval(p, z)
    return out
