"""Power (and false-positive rate) by simulation: OLS, nuisance regression and the mixed model
on data simulated from a mixed model with given parameters.

For replicate r, with the design's X, the random-effects terms' columns Z_t and level codes,

    b_{t,l} ~ N(0, Σ_t) independently for every level l of term t,
    ε ~ N(0, σ² I),
    y_r = X β + Σ_t Z_t b_t + offset + ε,

then every method is fitted to y_r and each fixed effect is tested at level ``alpha``. The
rejection rate estimates the power (true effect ≠ 0) or the false-positive rate (= 0); its
Monte Carlo uncertainty is given by the Clopper–Pearson 95% interval.

Nothing is rebuilt per replicate: OLS and nuisance regression reuse one QR of their model
matrix for all replicates at once (:class:`~mixedfx.ols.QRLeastSquares`); the mixed model is
refitted with :meth:`~mixedfx.lmm.LinearMixedModel.copy` (same design, new response), every
replicate from the same start: the θ of the parameters simulated from. Replicate r draws from
its own stream ``SeedSequence(seed).spawn(nsim)[r]`` and its fit depends on nothing else, so
the results do not depend on ``n_jobs`` (how the replicates are split between processes).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from .._threads import one_thread
from ..errors import ConvergenceWarning, DataError, FormulaError, RankDeficiencyWarning
from ..frame.checks import (
    check_bool,
    check_choice,
    check_int,
    check_names,
    check_number,
    check_seed,
)
from ..frame.data import to_pandas
from ..frame.design import Design
from ..frame.formula import parse_formula
from ..linalg.zmul import z_times
from ..models.lmer import LinearMixedModel
from ..models.ols import QRLeastSquares
from ..report.batches import power_text
from ..report.plots import plot_power
from .compare import DDF_CHOICES, mixed_inference, nuisance_columns

__all__ = ["PowerResult", "clopper_pearson", "design_frame", "power", "simulate_response"]

METHODS = ("ols", "nuisance", "mixed")


def clopper_pearson(
    k: np.ndarray, n: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for k successes in n trials:
    ``[Beta((1−level)/2; k, n−k+1), Beta((1+level)/2; k+1, n−k)]``."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    a = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(a, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - a, k + 1, n - k), 1.0)
    bad = n <= 0
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


# ------------------------------------------------------------------ the design
def design_frame(formula: str, design: Mapping[str, Any] | Any) -> pd.DataFrame:
    """A data frame of the design: taken as is, or built from a description.

    A description is a dict with, for the formula's one grouping factor g,
    ``{g: number of levels, "per_<g>": rows per level}`` and, for each predictor,
    ``"between"`` (0/1, half the levels each, alternating), ``"within"`` (0/1, half the rows of
    every level each, alternating) or a sequence of ``per_<g>`` values repeated in every level
    (e.g. ``list(range(10))`` for days). Levels are named ``<g>01``, ``<g>02``, ...

    The response column (ignored) is added with zeros when missing.
    """
    parsed = parse_formula(formula)
    if not isinstance(design, Mapping):
        frame = to_pandas(design).copy()
        if parsed.response not in frame.columns:
            frame[parsed.response] = 0.0
        return frame
    groups = list(dict.fromkeys(f for t in parsed.random for f in t.factors))
    if len(groups) != 1:
        raise DataError(
            "a design given as a dict describes one grouping factor; for "
            f"{', '.join(groups) or 'no grouping factor'} give a data frame of the design"
        )
    g = groups[0]
    if g not in design:
        raise DataError(
            f"design has no entry {g!r}: give the number of {g} levels, e.g. {{{g!r}: 20}}"
        )
    per_key = f"per_{g}"
    if per_key not in design:
        raise DataError(f"design has no entry {per_key!r}: give the number of rows per {g}")
    G, m = design[g], design[per_key]
    for key, v in ((g, G), (per_key, m)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise DataError(f"design entry {key!r} must be a positive integer, got {v!r}")
    G, m = int(G), int(m)
    if G * m > MAX_DESIGN_ROWS:
        raise DataError(
            f"the design has {G} x {m} = {G * m:,} rows, more than {MAX_DESIGN_ROWS:,}: "
            "simulate a smaller study"
        )
    if G < 2:
        raise DataError(f"design entry {g!r} must be at least 2 (a random effect needs 2 levels)")
    width = len(str(G))
    level = np.repeat(np.arange(G), m)
    cols: dict[str, Any] = {g: np.array([f"{g}{i + 1:0{width}d}" for i in range(G)])[level]}
    pos = np.tile(np.arange(m), G)
    for key, spec in design.items():
        if key in (g, per_key):
            continue
        if isinstance(spec, str):
            if spec == "between":
                cols[key] = (level % 2).astype(float)
            elif spec == "within":
                cols[key] = (pos % 2).astype(float)
            else:
                raise DataError(
                    f"design entry {key!r}: {spec!r} is not 'between', 'within' or a sequence of "
                    f"{m} values"
                )
        else:
            try:
                vals = np.asarray(spec, dtype=float).reshape(-1)
            except (TypeError, ValueError):
                raise DataError(
                    f"design entry {key!r}: {spec!r} is not 'between', 'within' or a sequence "
                    f"of {m} numbers"
                ) from None
            if vals.shape[0] != m:
                raise DataError(
                    f"design entry {key!r} has {vals.shape[0]} values; give one per row of a "
                    f"{g} ({m}), or 'between' / 'within'"
                )
            cols[key] = vals[pos]
    frame = pd.DataFrame(cols)
    frame[parsed.response] = 0.0
    return frame


def _parameters(
    d: Design, fixef: Mapping[str, float], varcorr: Mapping[str, Any], sigma: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """β in X's column order and a factor F_t (Σ_t = F_t F_t') per term, checked."""
    names = d.fixed.names
    unknown = [k for k in fixef if k not in names]
    if unknown:
        raise DataError(
            f"fixef has {unknown[0]!r}, which is not a fixed effect of the model "
            f"(fixed effects: {', '.join(names)})"
        )
    missing = [nm for nm in names if nm not in fixef]
    if missing:
        raise DataError(
            f"fixef has no value for {missing[0]!r}; give every fixed effect: {', '.join(names)}"
        )
    beta = np.array([check_number(fixef[nm], f"fixef[{nm!r}]") for nm in names])
    sigma = check_number(sigma, "sigma (the residual standard deviation)", 0.0, open_low=True)
    vc_names = [t.vc_name for t in d.terms]
    unknown = [k for k in varcorr if k not in vc_names]
    if unknown:
        raise DataError(
            f"varcorr has {unknown[0]!r}, which is not a random-effects term "
            f"(terms: {', '.join(vc_names)})"
        )
    factors = []
    for t in d.terms:
        if t.vc_name not in varcorr:
            raise DataError(
                f"varcorr has no variance for {t.vc_name!r}: give its variance (or its "
                f"{t.k} x {t.k} covariance matrix of {', '.join(t.columns)})"
            )
        try:
            S = np.atleast_2d(np.asarray(varcorr[t.vc_name], dtype=float))
        except (TypeError, ValueError):
            raise DataError(
                f"varcorr[{t.vc_name!r}] must be a variance or a covariance matrix of numbers, "
                f"got {varcorr[t.vc_name]!r}"
            ) from None
        if S.shape != (t.k, t.k):
            raise DataError(
                f"varcorr[{t.vc_name!r}] must be a {t.k} x {t.k} covariance matrix of "
                f"{', '.join(t.columns)}, got shape {S.shape}"
            )
        if not np.allclose(S, S.T) or not np.all(np.isfinite(S)):
            raise DataError(f"varcorr[{t.vc_name!r}] must be a finite symmetric matrix")
        w, V = np.linalg.eigh(S)
        if w.min() < -1e-10 * max(1.0, w.max()):
            raise DataError(
                f"varcorr[{t.vc_name!r}] is not a covariance matrix (negative eigenvalue)"
            )
        factors.append(V * np.sqrt(np.clip(w, 0.0, None)))
    return beta, factors


def _theta_of(factors: list[np.ndarray], sigma: float) -> np.ndarray:
    """θ (lme4's order: per term the lower triangle of Λ column by column) of the
    parameters simulated from: Λ_t = chol(Σ_t)/σ, Σ_t = F_t F_t' (a semi-definite Σ_t with
    its zero pivots as zeros)."""
    out = []
    for F in factors:
        S = F @ F.T
        k = S.shape[0]
        L = np.zeros((k, k))
        for j in range(k):  # k is a term's number of columns: a few
            d = S[j, j] - L[j, :j] @ L[j, :j]
            if d <= 1e-12 * max(S[j, j], 1e-300):
                continue  # a zero pivot: column j of L stays 0
            L[j, j] = np.sqrt(d)
            L[j + 1 :, j] = (S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
        out.extend(L[r, c] / sigma for c in range(k) for r in range(c, k))
    return np.array(out)


def simulate_response(
    d: Design, beta: np.ndarray, factors: list[np.ndarray], sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """One response from the mixed model with the given parameters (module docstring)."""
    y = d.X @ beta
    if d.offset is not None:
        y = y + d.offset
    blocks = [
        rng.standard_normal((t.nlevels, t.k)) @ F.T for t, F in zip(d.terms, factors, strict=True)
    ]
    y = y + z_times(d.terms, blocks)
    e = rng.standard_normal(d.n) * sigma
    if d.weights is not None:
        e = e / np.sqrt(d.weights)
    return y + e


# ------------------------------------------------------------------ the work
MAX_BLOCK_VALUES = 50_000_000
"""Simulated responses (rows x replicates) held at once by a worker (400 MB)."""

MAX_DESIGN_ROWS = 100_000_000
"""The most rows a design described by a dict may have."""


class _Job:
    """Everything one worker needs; built in each process from picklable arguments."""

    def __init__(self, formula, frame, REML, weights, fixef, varcorr, sigma, methods, terms, ddf):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankDeficiencyWarning)
            self.model = LinearMixedModel(formula, frame, REML=REML, weights=weights)
        d = self.model.design
        self.design = d
        self.beta, self.factors = _parameters(d, fixef, varcorr, sigma)
        self.sigma = float(sigma)
        self.theta0 = _theta_of(self.factors, self.sigma)
        self.methods = methods
        self.terms = terms
        self.ddf = ddf
        sqrtw = None if d.weights is None else np.sqrt(d.weights)
        self.ls: dict[str, tuple[QRLeastSquares, list[str]]] = {}
        if "ols" in methods:
            self.ls["ols"] = (QRLeastSquares(d.X, sqrtw), list(d.fixed.names))
        self.absorbed: dict[str, str] = {}
        if "nuisance" in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RankDeficiencyWarning)
                Xn, names, self.absorbed = nuisance_columns(d)
            self.ls["nuisance"] = (QRLeastSquares(Xn, sqrtw), names)

    def run(self, seeds: list[np.random.SeedSequence], tick: Any = None) -> dict[str, Any]:
        """Estimates, SEs, p-values (arrays (nrep, nterms)) per method, singular-fit flags;
        the replicates' responses are held MAX_BLOCK_VALUES numbers at a time."""
        block = max(1, MAX_BLOCK_VALUES // max(self.design.n, 1))
        if len(seeds) <= block:
            return self._run_block(seeds, tick)
        parts = [self._run_block(seeds[i : i + block], tick) for i in range(0, len(seeds), block)]
        out: dict[str, Any] = {}
        for key in parts[0]:
            if key == "df_method":
                out[key] = next((p[key] for p in parts if p[key] is not None), None)
            elif key == "singular":
                out[key] = np.concatenate([p[key] for p in parts])
            else:
                out[key] = np.concatenate([p[key] for p in parts], axis=1)
        return out

    def _run_block(self, seeds: list[np.random.SeedSequence], tick: Any = None) -> dict[str, Any]:
        d = self.design
        R, T = len(seeds), len(self.terms)
        Y = np.empty((d.n, R))
        for r, s in enumerate(seeds):
            Y[:, r] = simulate_response(
                d, self.beta, self.factors, self.sigma, np.random.default_rng(s)
            )
        yeff = Y - d.offset[:, None] if d.offset is not None else Y
        out: dict[str, np.ndarray] = {}
        for meth, (ls, names) in self.ls.items():
            est = np.full((R, T), np.nan)
            se = np.full((R, T), np.nan)
            B, S, _ = ls.fit(yeff)
            idx = [(j, names.index(t)) for j, t in enumerate(self.terms) if t in names]
            for j, k in idx:
                est[:, j], se[:, j] = B[k], S[k]
            p = 2.0 * stats.t.sf(np.abs(est / se), ls.df_resid)
            out[meth] = np.stack([est, se, p])
        if "mixed" in self.methods:
            res = np.full((3, R, T), np.nan)
            df_method = None
            singular = np.zeros(R, dtype=bool)
            rows = [self.design.fixed.names.index(t) for t in self.terms]
            base = self.model
            for r in range(R):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    try:
                        fit = base.copy(Y[:, r], start=self.theta0)
                        coef, df_method = mixed_inference(fit, self.ddf)
                    except (np.linalg.LinAlgError, FloatingPointError, ValueError):
                        # counted as a failed fit (n_valid < nsim, noted in the table)
                        if tick is not None:
                            tick()
                        continue
                c = coef.iloc[rows]
                res[0, r], res[1, r], res[2, r] = c["estimate"], c["std_error"], c["p_value"]
                singular[r] = fit.is_singular
                if tick is not None:
                    tick()
            out["mixed"] = res
            out["singular"] = singular
            out["df_method"] = df_method
        return out


def _run_chunk(args: tuple) -> dict[str, Any]:
    job_args, seeds = args
    with one_thread():
        return _Job(*job_args).run(seeds)


# ------------------------------------------------------------------ results
class PowerResult:
    """Result of :func:`power`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (method, term): true value, rejection_rate with its Monte Carlo interval
        (mc_low, mc_high; Clopper–Pearson 95%), mean_estimate, sd_estimate, mean_se, n_valid
        (replicates where the term was estimated), note.
    estimates : dict
        Per method, a DataFrame of every replicate's estimate, std_error, p_value per term.
    """

    def __init__(self, table, estimates, formula, nsim, alpha, seed, mixed_df_method, n_singular):
        self.table = table
        self.estimates = estimates
        self.formula = formula
        self.nsim = nsim
        self.alpha = alpha
        self.seed = seed
        self.mixed_df_method = mixed_df_method
        self.n_singular = n_singular

    def __str__(self) -> str:
        return power_text(self)

    __repr__ = __str__

    def plot(self, ax: Any = None) -> Any:
        """Rejection rates with their Monte Carlo intervals per method and term, ``alpha`` as a
        dashed line. Returns the matplotlib Figure (see :func:`mixedfx.plots.plot_power`)."""
        return plot_power(self, ax=ax)


def _progress_bar(total: int, progress: bool | None) -> Any:
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="power", unit="fit", file=sys.stderr)


def power(
    formula: str,
    design: Mapping[str, Any] | Any,
    fixef: Mapping[str, float],
    varcorr: Mapping[str, Any],
    sigma: float,
    nsim: int = 1000,
    seed: int | None = None,
    methods: Sequence[str] = METHODS,
    *,
    alpha: float = 0.05,
    terms: Sequence[str] | None = None,
    REML: bool = True,
    weights: Any = None,
    ddf: str | None = None,
    n_jobs: int = 1,
    progress: bool | None = None,
) -> PowerResult:
    """Power or false-positive rate of OLS, nuisance regression and the mixed model, by
    simulating from the mixed model with the given parameters.

    Parameters
    ----------
    formula : str
        The mixed model that generates the data and is fitted, e.g.
        ``"score ~ posters + (1 | classroom)"``.
    design : dict or data frame
        The design: a data frame with the predictors and grouping factors (the response column
        is ignored), or a dict as described in :func:`design_frame`, e.g.
        ``{"classroom": 20, "per_classroom": 25, "posters": "between"}``.
    fixef : dict
        True fixed effects by lme4 name, every one: ``{"(Intercept)": 70, "posters": 0.0}``.
    varcorr : dict
        Per random-effects term (by its VarCorr name, usually the grouping factor), the variance
        (one column) or the covariance matrix (several): ``{"classroom": 16.0}``.
    sigma : float
        Residual standard deviation.
    nsim : int
        Number of simulated data sets.
    seed : int, optional
        Makes the run reproducible (independently of ``n_jobs``).
    methods : sequence of {"ols", "nuisance", "mixed"}
        Methods to compare (see :func:`mixedfx.compare_controls`).
    alpha : float
        Level of the two-sided tests.
    terms : sequence of str, optional
        Fixed effects to test; default every one but the intercept.
    REML : bool
        REML (default) or ML for the mixed model.
    weights : column name or array, optional
        Prior weights (the residual variance of row i is σ²/w_i).
    ddf : {None, "satterthwaite", "between-within", "normal"}
        Mixed-model df (:func:`mixedfx.compare.mixed_inference`).
    n_jobs : int
        Worker processes (-1: one per CPU).
    progress : bool, optional
        Show a tqdm progress bar; default only when stderr is a terminal.

    Returns
    -------
    PowerResult
    """
    methods = tuple(check_names(methods, "methods", METHODS, "method"))
    nsim = check_int(nsim, "nsim", low=1)
    seed = check_seed(seed)
    alpha = check_number(alpha, "alpha", 0.0, 1.0, open_low=True, open_high=True)
    if ddf is not None:
        ddf = check_choice(ddf, "ddf", DDF_CHOICES)
    REML = check_bool(REML, "REML")
    n_jobs = check_int(n_jobs, "n_jobs", low=-1)
    if n_jobs == 0:
        raise DataError("n_jobs must be a positive number of processes or -1 (one per CPU)")
    if progress is not None:
        progress = check_bool(progress, "progress")
    for arg, value in (("fixef", fixef), ("varcorr", varcorr)):
        if not isinstance(value, Mapping):
            raise DataError(f"{arg} must be a dict by name, got {type(value).__name__}")
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(
            f"power needs a mixed-model formula with a random-effects term: {formula!r}"
        )
    frame = design_frame(formula, design)
    probe = _Job(formula, frame, REML, weights, fixef, varcorr, sigma, methods, [], ddf)
    names = probe.design.fixed.names
    if terms is None:
        terms = [t for t in names if t != "(Intercept)"] or list(names)
    terms = check_names(terms, "terms", names, "term")
    probe.terms = terms
    seeds = np.random.SeedSequence(seed).spawn(int(nsim))
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    n_jobs = max(1, min(int(n_jobs), int(nsim)))

    bar = _progress_bar(int(nsim), progress)
    try:
        if n_jobs == 1:
            tick = (lambda: bar.update(1)) if bar is not None else None
            if "mixed" not in methods and bar is not None:
                bar.update(int(nsim))
            parts = [probe.run(seeds, tick)]
        else:
            nchunks = min(int(nsim), 4 * n_jobs)
            bounds = np.linspace(0, int(nsim), nchunks + 1).astype(int)
            job_args = (
                formula,
                frame,
                REML,
                weights,
                dict(fixef),
                dict(varcorr),
                sigma,
                methods,
                terms,
                ddf,
            )
            chunks = [(job_args, seeds[a:b]) for a, b in itertools.pairwise(bounds)]
            parts_by = {}
            # fork: workers inherit the imported, compiled modules, and scripts need no
            # ``if __name__ == "__main__"`` guard (mixedfx runs no threads of its own)
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(n_jobs, mp_context=mp.get_context(method)) as ex:
                futs = {ex.submit(_run_chunk, c): i for i, c in enumerate(chunks)}
                for fut in as_completed(futs):
                    parts_by[futs[fut]] = fut.result()
                    if bar is not None:
                        bar.update(len(chunks[futs[fut]][1]))
            parts = [parts_by[i] for i in range(len(chunks))]
    finally:
        if bar is not None:
            bar.close()

    methods_used = {p.get("df_method") for p in parts} - {None}
    df_method = ", ".join(sorted(methods_used)) if methods_used else "not used"
    true = dict(zip(names, probe.beta, strict=True))
    rows = []
    estimates = {}
    for meth in methods:
        arr = np.concatenate([p[meth] for p in parts], axis=1)  # (3, nsim, T)
        est, se, pv = arr
        frames = []
        for j, t in enumerate(terms):
            ok = np.isfinite(pv[:, j])
            nv = int(ok.sum())
            k = int((pv[ok, j] < alpha).sum())
            lo, hi = clopper_pearson(k, nv)
            note = probe.absorbed.get(t, "") if meth == "nuisance" else ""
            if meth == "mixed" and nv < nsim:
                note = f"{nsim - nv} fits failed"
            rows.append(
                {
                    "method": meth,
                    "term": t,
                    "true_value": true[t],
                    "rejection_rate": k / nv if nv else np.nan,
                    "mc_low": float(lo),
                    "mc_high": float(hi),
                    "mean_estimate": float(np.mean(est[ok, j])) if nv else np.nan,
                    "sd_estimate": float(np.std(est[ok, j], ddof=1)) if nv > 1 else np.nan,
                    "mean_se": float(np.mean(se[ok, j])) if nv else np.nan,
                    "n_valid": nv,
                    "note": note,
                }
            )
            frames.append(
                pd.DataFrame(
                    {
                        "term": t,
                        "replicate": np.arange(nsim),
                        "estimate": est[:, j],
                        "std_error": se[:, j],
                        "p_value": pv[:, j],
                    }
                )
            )
        estimates[meth] = pd.concat(frames, ignore_index=True)
    n_singular = int(sum(p["singular"].sum() for p in parts)) if "mixed" in methods else 0
    table = pd.DataFrame(rows)
    return PowerResult(table, estimates, formula, int(nsim), alpha, seed, df_method, n_singular)
