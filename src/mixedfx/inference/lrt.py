"""Likelihood-ratio tests between nested mixed models: lme4's ``anova(m0, m1, ...)``.

For models fitted by maximum likelihood to the same data, sorted by their number of
parameters, the statistic between consecutive models is

    χ² = 2 (ℓ_i − ℓ_{i−1}) = deviance_{i−1} − deviance_i,   df = npar_i − npar_{i−1},

referred to χ²(df). REML criteria of models with different fixed effects are not comparable,
so (as lme4's default ``refit = TRUE``) REML fits are refitted by ML first, on copies: the
models passed in are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..errors import DataError, ModelError

__all__ = ["check_comparable", "lrt_table"]


def check_comparable(engines: Sequence[Any], names: Sequence[str]) -> None:
    """Refuse a comparison the likelihood-ratio test cannot make: different kinds of model
    (Gaussian and not), families or links, responses, rows or prior weights."""
    kinds = {(e.gaussian, e.family.name, e.family.link.name) for e in engines}
    if len({k[0] for k in kinds}) > 1:
        raise ModelError("anova cannot compare linear (lmer) and generalized (glmer) mixed models")
    if len(kinds) > 1:
        fams = sorted((k[1], k[2]) for k in kinds)
        raise ModelError(f"anova between models of different families or links: {fams}")
    first = engines[0]
    for name, e in zip(names[1:], engines[1:], strict=True):
        r0, r1 = first.design.response_name, e.design.response_name
        if r1 != r0:
            raise DataError(
                f"models have different responses ({r0!r} in {names[0]}, {r1!r} in {name}): "
                "a likelihood-ratio test needs the same response"
            )
        if e.n != first.n:
            raise DataError(
                f"models were not all fitted to the same data: {names[0]} has {first.n} "
                f"observations, {name} has {e.n} (check for rows dropped for missing values)"
            )
        if not (
            np.array_equal(e.y, first.y) and np.array_equal(e.prior_weights, first.prior_weights)
        ):
            raise DataError(
                f"models were not all fitted to the same data: the response values of "
                f"{names[0]} and {name} differ"
            )


def lrt_table(engines: Sequence[Any], names: Sequence[str]) -> pd.DataFrame:
    """The comparison table of fitted engines, in the order given (sorted by npar by the
    caller): npar, aic, bic, loglik, deviance, chisq, df, p_value."""
    npar = np.array([e.npar for e in engines], dtype=float)
    dev = np.array([e.objective for e in engines])
    nobs = np.array([e.n for e in engines], dtype=float)
    chisq = np.full(len(engines), np.nan)
    df = np.full(len(engines), np.nan)
    chisq[1:] = np.maximum(0.0, dev[:-1] - dev[1:])
    df[1:] = np.diff(npar)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    p[0] = np.nan
    return pd.DataFrame(
        {
            "npar": npar.astype(int),
            "aic": dev + 2.0 * npar,
            "bic": dev + np.log(nobs) * npar,
            "loglik": -0.5 * dev,
            "deviance": dev,
            "chisq": chisq,
            "df": df,
            "p_value": p,
        },
        index=pd.Index(list(names), name="model"),
    )
