"""lme4's ``allFit``: the same model fitted by every available optimizer, side by side.

A fit whose optimizer stopped early, or at a different optimum, stands out against the others:
lme4's advice for a convergence warning is to check that several optimizers agree. Each
optimizer starts where lme4's would (θ = lme4's start for linear models; stage 1's answer for
GLMMs, whose second stage it replaces) and its answer is reported as it stands (no Newton
polish), with its criterion, estimates on lme4's sd/cor scale, evaluations, time and message.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import DataError
from ..linalg.optimizer import OPTIMIZERS
from .parameters import parameter_names, theta_to_sdcor

__all__ = ["allfit", "spread"]


def allfit(engine: Any, optimizers: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per optimizer: ``objective``, ``loglik``, the sd/cor parameters and σ
    (``.sig01``, ..., ``.sigma``), the fixed effects, ``feval``, ``seconds``, ``message``
    (the optimizer's status and any warning), as lme4's ``summary(allFit(m))`` collects them.

    Parameters
    ----------
    engine : fitted engine
    optimizers : list of str, optional
        Names from :data:`mixedfx.linalg.optimizer.OPTIMIZERS` (default: all of them).
    """
    engine.require_fit()
    chosen = list(OPTIMIZERS) if optimizers is None else list(optimizers)
    bad = [o for o in chosen if o not in OPTIMIZERS]
    if bad or not chosen:
        raise DataError(f"optimizers must name some of {', '.join(OPTIMIZERS)}; got {optimizers!r}")
    names = parameter_names(engine)
    rows = []
    for name in chosen:
        e = engine.derive()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = e.reoptimize(name)
            except Exception as exc:  # an optimizer that fails is a row saying so
                rows.append({"optimizer": name, "message": f"failed: {exc}"})
                continue
        seconds = time.perf_counter() - t0
        sd = theta_to_sdcor(e.theta, e.sigma, [t.k for t in e.design.terms])
        if not e.has_dispersion:
            sd = sd[:-1]
        row: dict[str, Any] = {
            "optimizer": name,
            "objective": e.objective,
            "loglik": -0.5 * e.objective,
        }
        row.update(zip(names, [*sd.tolist(), *e.beta.tolist()], strict=True))
        msgs = [res.status, *(str(w.message) for w in caught)]
        row.update(feval=res.nfev, seconds=seconds, message="; ".join(msgs))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("optimizer")
    return out.reindex(columns=["objective", "loglik", *names, "feval", "seconds", "message"])


def spread(table: pd.DataFrame) -> pd.Series:
    """Per column, the range over the optimizers that ran: how much they disagree."""
    num = table.drop(columns=["message"]).astype(float)
    return (num.max() - num.min()).rename("range")
