"""Parametric bootstrap of a fitted mixed model (lme4's ``bootMer``, type "parametric").

Each replicate simulates a response from the fitted model (``use.u = FALSE``: new random
effects and new noise) and refits the same design to it. The design, the cross-products'
pattern and the blocked factor's buffers are built once: a replicate refills the
cross-products with the new response (one compiled pass), then runs BOBYQA from the fitted θ.
All responses are simulated up front from ``seed``, so the replicates (and the table) are the
same for any ``n_jobs``; with ``n_jobs > 1`` they are refitted in forked worker processes,
each held to one BLAS thread.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._threads import one_thread
from ..errors import DataError, MixedFXWarning
from ..frame.checks import check_seed
from .parameters import parameter_names, theta_to_sdcor
from .simulate import check_nsim, simulate

__all__ = ["BootstrapResult", "bootstrap", "default_statistics", "percent_label"]


class BootstrapWarning(MixedFXWarning):
    """Some bootstrap replicates could not be refitted."""


def default_statistics(engine: Any) -> dict[str, float]:
    """What ``confint(m, method="boot")`` needs: the sd/cor parameters (``.sig01``, ...),
    ``.sigma`` (when the model has one) and the fixed effects, named as lme4's confint rows."""
    names = parameter_names(engine)
    vals = theta_to_sdcor(engine.theta, engine.sigma, [t.k for t in engine.design.terms])
    if not engine.has_dispersion:
        vals = vals[:-1]
    return dict(zip(names, [*vals.tolist(), *engine.beta.tolist()], strict=True))


@dataclass
class BootstrapResult:
    """Replicates of a parametric bootstrap.

    Attributes
    ----------
    t0 : pandas.Series
        The statistics of the fitted model.
    table : pandas.DataFrame
        One row per replicate (``replicate`` index), one column per statistic; failed
        replicates are rows of NaN.
    nfailed : int
    seed : Any
    """

    t0: pd.Series
    table: pd.DataFrame
    nfailed: int
    seed: Any

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Percentile intervals (R's ``boot.ci(type = "perc")`` as lme4's confint uses)."""
        a = (1.0 - level) / 2.0
        lo = self.table.quantile(a)
        hi = self.table.quantile(1.0 - a)
        return pd.DataFrame({percent_label(a): lo, percent_label(1 - a): hi})

    def summary(self) -> pd.DataFrame:
        """original, bootstrap bias and standard error of each statistic (R's print(bootMer))."""
        return pd.DataFrame(
            {
                "original": self.t0,
                "bias": self.table.mean() - self.t0,
                "std_error": self.table.std(),
            }
        )


def percent_label(p: float) -> str:
    """R's label of a quantile column: ``2.5 %``."""
    return f"{100 * p:.10g} %"


_STATE: dict[str, Any] = {}


def _run_chunk(cols: list[int]) -> list[tuple[int, dict[str, float] | None]]:
    refit, Y, stat = _STATE["refit"], _STATE["Y"], _STATE["stat"]
    out = []
    with one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in cols:
            try:
                out.append((j, dict(stat(refit(Y[:, j])))))
            except Exception:  # a replicate that cannot be fitted counts as failed
                out.append((j, None))
    return out


def bootstrap(
    model: Any,
    nsim: int = 1000,
    seed: Any = None,
    n_jobs: int = 1,
    progress: bool | None = None,
    statistics: Callable[[Any], dict[str, float]] | None = None,
) -> BootstrapResult:
    """Parametric bootstrap of a fitted engine (linear or generalized).

    Parameters
    ----------
    model : fitted engine
    nsim : int
        Number of replicates.
    seed : int or numpy seed, optional
        Makes the replicates reproducible (whatever ``n_jobs``).
    n_jobs : int
        Worker processes (forked; 1 = in this process; -1 = one per CPU).
    progress : bool, optional
        Show a progress bar (tqdm); default: only when stderr is a terminal.
    statistics : callable, optional
        ``f(fitted_replicate) -> dict`` of named numbers; default
        :func:`default_statistics`.

    Returns
    -------
    BootstrapResult
    """
    model.require_fit()
    nsim = check_nsim(nsim)
    seed = check_seed(seed)
    stat = statistics or default_statistics
    if not callable(stat):
        raise DataError(f"statistics must be a function of a fitted model, got {stat!r}")
    first = stat(model)
    if not isinstance(first, Mapping):
        raise DataError(
            f"statistics must return a dict of named numbers, got {type(first).__name__}"
        )
    try:
        t0 = pd.Series(dict(first), dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"statistics must return numbers, got {first!r}") from None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer):
        raise DataError(f"n_jobs must be a whole number of processes or -1, got {n_jobs!r}")
    if progress is not None and not isinstance(progress, bool):
        raise DataError(f"progress must be True, False or None, got {progress!r}")
    Y = simulate(model, nsim=nsim, seed=seed)
    refit: Callable[[np.ndarray], Any] = model.refitter()
    n_jobs = int(n_jobs)
    if n_jobs == -1:
        n_jobs = mp.cpu_count()
    if n_jobs < 1:
        raise DataError(f"n_jobs must be a positive number of processes or -1, got {n_jobs}")
    show = sys.stderr.isatty() if progress is None else bool(progress)
    from tqdm.auto import tqdm

    bar = tqdm(total=nsim, disable=not show, desc="bootstrap", unit="fit")
    _STATE.update(refit=refit, Y=Y, stat=stat)
    results: dict[int, dict[str, float] | None] = {}
    try:
        if n_jobs == 1 or nsim < 2 * n_jobs or "fork" not in mp.get_all_start_methods():
            step = max(1, nsim // 100)
            for start in range(0, nsim, step):
                for j, r in _run_chunk(list(range(start, min(nsim, start + step)))):
                    results[j] = r
                bar.update(min(step, nsim - start))
        else:
            chunk = max(1, math.ceil(nsim / (n_jobs * 8)))
            chunks = [list(range(s, min(nsim, s + chunk))) for s in range(0, nsim, chunk)]
            with mp.get_context("fork").Pool(n_jobs) as pool:
                for part in pool.imap_unordered(_run_chunk, chunks):
                    for j, r in part:
                        results[j] = r
                    bar.update(len(part))
    finally:
        bar.close()
        _STATE.clear()
    cols = list(t0.index)
    rows = [
        [results[j].get(c, np.nan) for c in cols]
        if results[j] is not None
        else [np.nan] * len(cols)
        for j in range(nsim)
    ]
    table = pd.DataFrame(rows, columns=cols, index=pd.RangeIndex(nsim, name="replicate"))
    nfailed = sum(r is None for r in results.values())
    if nfailed:
        warnings.warn(
            f"{nfailed} of {nsim} bootstrap replicates could not be refitted (rows of NaN)",
            BootstrapWarning,
            stacklevel=2,
        )
    return BootstrapResult(t0=t0, table=table, nfailed=nfailed, seed=seed)
