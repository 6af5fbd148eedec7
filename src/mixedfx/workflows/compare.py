"""Three ways to "control for" batches (classrooms, subjects, plates, sites), side by side.

For a mixed-model formula ``y ~ x + w + (1 | g)``, :func:`compare_controls` fits

``ols``       ignore the batch: ``y ~ x + w`` by least squares. Observations of one batch share
              the batch's effect, so they are not independent: the standard error of a
              between-batch effect is too small and its test gives too many false positives.
``nuisance``  nuisance regression: ``y ~ g + x + w`` with g as treatment-coded fixed covariates
              (indicators of every batch but the first). A predictor that is constant within
              each batch is then a linear combination of the indicators: it is *absorbed* and
              cannot be estimated at all. Within-batch effects are estimated free of batch
              differences.
``mixed``     the linear mixed model itself: batch effects as random, b_g ~ N(0, σ_g²). Between-
              batch effects are tested against the batch-to-batch variation.

and reports, for every fixed effect, estimate, standard error, df, p-value and a 95% interval
per approach, with a note where an effect cannot be estimated.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..errors import ModelError, RankDeficiencyWarning
from ..frame.checks import check_choice, check_level
from ..frame.design import Design, FixedEffects, drop_rank_deficient
from ..models.lmer import LinearMixedModel
from ..models.ols import OLSModel
from ..report.batches import comparison_text
from ..report.plots import plot_comparison

__all__ = [
    "APPROACHES",
    "ControlComparison",
    "compare_controls",
    "mixed_inference",
    "nuisance_columns",
]

DDF_CHOICES = ("satterthwaite", "between-within", "normal")
"""The mixed model's denominator df methods (see :func:`mixed_inference`)."""

APPROACHES = {
    "ols": "ignore the batch (OLS)",
    "nuisance": "nuisance regression (batch as fixed covariates)",
    "mixed": "mixed model (batch as random effect)",
}


# ----------------------------------------------------------------- batch indicators
MAX_NUISANCE_BYTES = 2 * 2**30
"""The largest matrix of batch indicators nuisance regression builds (2 GiB)."""


def _bytes(size: float) -> str:
    """A size in bytes in binary units: ``14.6 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def _batches(design: Design) -> list[tuple[str, np.ndarray, list[str]]]:
    """Distinct grouping factors of the random-effects terms: (name, codes, levels)."""
    seen: dict[str, tuple[str, np.ndarray, list[str]]] = {}
    for t in design.terms:
        seen.setdefault(t.group, (t.group, t.refs, t.levels))
    return list(seen.values())


def _constant_within(x: np.ndarray, refs: np.ndarray, nlevels: int) -> bool:
    """Whether column x takes one value within every level of the factor with codes refs."""
    lo = np.full(nlevels, np.inf)
    hi = np.full(nlevels, -np.inf)
    np.minimum.at(lo, refs, x)
    np.maximum.at(hi, refs, x)
    scale = max(float(np.max(np.abs(x))), 1.0)
    return bool(np.all(hi - lo <= 1e-10 * scale))


def nuisance_columns(design: Design) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """The nuisance-regression model matrix for a mixed-model design.

    Columns, in this order: the intercept (if the model has one), the treatment-coded
    indicators of every grouping factor (all levels but the first; all levels of the first
    factor when there is no intercept), then the other fixed-effects columns. Columns that are
    linear combinations of earlier ones are dropped, so batch indicators come first and a
    fixed effect that does not vary within batches is the one dropped: it is absorbed.

    Returns
    -------
    X : ndarray (n, p')
    names : list of str
        Column names; indicators are named ``<factor><level>`` as R names them.
    absorbed : dict
        Fixed effects that cannot be estimated, with the reason.
    """
    fixed = design.fixed
    names0 = fixed.names
    X0 = fixed.X
    n = design.n
    has_int = "(Intercept)" in names0
    cols: list[np.ndarray] = []
    names: list[str] = []
    if has_int:
        j = names0.index("(Intercept)")
        cols.append(X0[:, j : j + 1])
        names.append("(Intercept)")
    ncols = len(names0) + sum(len(lev) for _, _, lev in _batches(design))
    if n * ncols * 8 > MAX_NUISANCE_BYTES:
        sizes = ", ".join(f"{g}: {len(lev)} levels" for g, _, lev in _batches(design))
        raise ModelError(
            f"nuisance regression needs a {n} x {ncols} matrix of batch indicators "
            f"({_bytes(n * ncols * 8)}; {sizes}): too large to fit. The mixed model "
            "needs no indicators: leave 'nuisance' out (power(methods=('ols', 'mixed')))"
        )
    first = not has_int
    for group, refs, levels in _batches(design):
        start = 0 if first else 1
        first = False
        D = np.zeros((n, len(levels) - start))
        rows = np.flatnonzero(refs >= start)
        D[rows, refs[rows] - start] = 1.0
        cols.append(D)
        names.extend(f"{group}{lev}" for lev in levels[start:])
    nbatch_cols = len(names)
    others = [j for j, nm in enumerate(names0) if nm != "(Intercept)"]
    cols.append(X0[:, others])
    names.extend(names0[j] for j in others)
    X = np.hstack(cols)
    keep = drop_rank_deficient(X, names)
    kept = set(keep.tolist())
    absorbed: dict[str, str] = {}
    for pos, j in enumerate(others):
        col = nbatch_cols + pos
        if col in kept:
            continue
        nm = names0[j]
        within = [
            g for g, refs, lev in _batches(design) if _constant_within(X0[:, j], refs, len(lev))
        ]
        if within:
            absorbed[nm] = (
                f"not estimable: {nm} is constant within each {within[0]}, so the {within[0]} "
                "indicators absorb it"
            )
        else:
            absorbed[nm] = (
                f"not estimable: {nm} is a linear combination of the batch indicators and the "
                "other columns"
            )
    return X[:, keep], [names[j] for j in keep], absorbed


def _ols_from(
    design: Design, X: np.ndarray, names: list[str], formula: str, same_columns: bool = True
) -> OLSModel:
    """An OLS fit on the mixed model's rows; ``same_columns``: X is the mixed model's X (so new
    data can be coded by its column maker for ``predict``)."""
    maker = design.fixed.maker if same_columns else None
    fixed = FixedEffects(X=np.ascontiguousarray(X), names=names, maker=maker)  # type: ignore[arg-type]
    d = dataclasses.replace(design, fixed=fixed, terms=[])
    return OLSModel(formula, d)


def _rhs(design: Design) -> str:
    """The fixed part as the user wrote it (the parser's explicit ``1 +`` removed)."""
    rhs = design.formula.fixed.strip()
    return rhs[4:] if rhs.startswith("1 + ") else rhs


def _fixed_text(design: Design) -> str:
    return f"{design.formula.response} ~ {_rhs(design)}"


# ---------------------------------------------------------------- mixed-model df
def between_within_df(design: Design) -> np.ndarray | None:
    """Denominator df of each fixed effect by the "between-within" (containment) rule, or
    None when the model has more than one grouping factor.

    With one grouping factor of G levels, a column is tested at the group level when it is
    constant within every group (a between-group predictor) or has a random effect on the
    group (the intercept under ``(1 | g)``, x under ``(x | g)``), with
    ``df = G − 1 − p_b``, p_b the number of between-group columns other than the intercept;
    every other column is tested at the residual level, ``df = n − G − p_w``, p_w the number of
    such columns. For balanced designs these are the exact df of the t tests (and what
    Satterthwaite's approximation gives); the rule is used only when Satterthwaite df are not
    available.
    """
    batches = _batches(design)
    if len(batches) != 1:
        return None
    _, refs, levels = batches[0]
    G = len(levels)
    re_cols = {c for t in design.terms for c in t.columns}
    X = design.X
    names = design.fixed.names
    constant = np.array([_constant_within(X[:, j], refs, G) for j in range(len(names))])
    is_int = np.array([nm == "(Intercept)" for nm in names])
    group_level = constant | np.array([nm in re_cols for nm in names])
    pb = int((constant & ~is_int).sum())
    pw = int((~group_level).sum())
    return np.where(group_level, max(G - 1 - pb, 1), max(design.n - G - pw, 1)).astype(float)


def mixed_inference(model: LinearMixedModel, ddf: str | None = None) -> tuple[pd.DataFrame, str]:
    """The mixed model's coefficient table with df and p_value columns, and the method used.

    ``ddf=None`` takes Satterthwaite df from ``model.coefficients`` when that table has df and
    p_value columns (mixedfx's lmerTest-style inference), else the between-within rule
    (:func:`between_within_df`), else the normal approximation. ``ddf`` may force
    ``"satterthwaite"``, ``"between-within"`` or ``"normal"``.
    """
    coef = model.coefficients
    if ddf in (None, "satterthwaite") and {"df", "p_value"} <= set(coef.columns):
        return coef, "Satterthwaite"
    if ddf == "satterthwaite":
        raise ModelError(
            "Satterthwaite df are not available for this model (coefficients has no df column)"
        )
    out = coef[["estimate", "std_error", "statistic"]].copy()
    t = out["statistic"].to_numpy()
    df = between_within_df(model.design) if ddf in (None, "between-within") else None
    if df is not None:
        out["df"] = df
        out["p_value"] = 2.0 * stats.t.sf(np.abs(t), df)
        return out, "between-within"
    out["df"] = np.inf
    out["p_value"] = 2.0 * stats.norm.sf(np.abs(t))
    return out, "normal (Wald z)"


# ---------------------------------------------------------------- the comparison
class ControlComparison:
    """Result of :func:`compare_controls`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (term, approach): estimate, std_error, df, statistic, p_value, ci_low,
        ci_high, note.
    fits : dict
        The fitted models: ``{"ols": OLSModel, "nuisance": OLSModel, "mixed": LinearMixedModel}``.
    mixed_df_method : str
        How the mixed model's df were obtained (Satterthwaite, between-within, normal).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        fits: dict[str, Any],
        formula: str,
        mixed_df_method: str,
        level: float,
    ):
        self.table = table
        self.fits = fits
        self.formula = formula
        self.mixed_df_method = mixed_df_method
        self.level = level
        self.labels = APPROACHES

    def __str__(self) -> str:
        return comparison_text(self)

    __repr__ = __str__

    def plot(self, terms: list[str] | None = None, ax: Any = None) -> Any:
        """The estimates with their intervals, one panel per term, approaches side by side.
        Returns the matplotlib Figure (see :func:`mixedfx.plots.plot_comparison`)."""
        return plot_comparison(self, terms=terms, ax=ax)


def compare_controls(
    formula: str,
    data: Any,
    REML: bool = True,
    weights: Any = None,
    offset: Any = None,
    *,
    level: float = 0.95,
    ddf: str | None = None,
) -> ControlComparison:
    """Fit a mixed model, OLS ignoring its batches, and nuisance regression; compare.

    Parameters
    ----------
    formula : str
        A mixed-model formula, e.g. ``"score ~ posters + age + (1 | classroom)"``. Its
        grouping factors are the batches.
    data : data frame or dict of arrays
    REML : bool
        REML (default) or ML for the mixed model.
    weights, offset : column name or array, optional
        Used by all three fits.
    level : float
        Confidence level of the intervals (t intervals with each approach's df).
    ddf : {None, "satterthwaite", "between-within", "normal"}
        The mixed model's denominator df (see :func:`mixed_inference`).

    Returns
    -------
    ControlComparison
        Print it, ``.plot()`` it, or read ``.table`` and ``.fits``.

    Notes
    -----
    Nuisance regression adds indicators for the levels of each grouping factor, not per-batch
    slopes: under ``(x | g)`` it removes batch differences in level only.
    """
    level = check_level(level)
    if ddf is not None:
        ddf = check_choice(ddf, "ddf", DDF_CHOICES)
    mixed = LinearMixedModel(formula, data, REML=REML, weights=weights, offset=offset).fit()
    design = mixed.design
    fixed_text = _fixed_text(design)
    ols_fit = _ols_from(design, design.X, list(design.fixed.names), fixed_text)
    Xn, names_n, absorbed = nuisance_columns(design)
    groups = " + ".join(g for g, _, _ in _batches(design))
    rhs = _rhs(design)
    nuis_text = (
        f"{design.formula.response} ~ {groups} + {rhs}"
        if rhs.strip() not in ("1", "")
        else (f"{design.formula.response} ~ {groups}")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        nuis_fit = _ols_from(design, Xn, names_n, nuis_text, same_columns=False)
    mixed_coef, method = mixed_inference(mixed, ddf)

    rows = []
    q = 0.5 + level / 2.0
    for term in design.fixed.names:
        for approach, coef, note in (
            ("ols", ols_fit.coefficients, ""),
            ("nuisance", nuis_fit.coefficients, absorbed.get(term, "")),
            ("mixed", mixed_coef, ""),
        ):
            if term in coef.index:
                r = coef.loc[term]
                df = float(r["df"])
                crit = stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df)
                est, se = float(r["estimate"]), float(r["std_error"])
                rows.append(
                    (
                        term,
                        approach,
                        est,
                        se,
                        df,
                        float(r["statistic"]),
                        float(r["p_value"]),
                        est - crit * se,
                        est + crit * se,
                        note,
                    )
                )
            else:
                rows.append((term, approach, *([np.nan] * 7), note or "not estimable"))
    if "(Intercept)" in design.fixed.names:
        rows = [
            (*r[:9], r[9] or "intercept: reference batch's level, not the population mean")
            if r[0] == "(Intercept)" and r[1] == "nuisance"
            else r
            for r in rows
        ]
    table = pd.DataFrame(
        rows,
        columns=[
            "term",
            "approach",
            "estimate",
            "std_error",
            "df",
            "statistic",
            "p_value",
            "ci_low",
            "ci_high",
            "note",
        ],
    )
    return ControlComparison(
        table, {"ols": ols_fit, "nuisance": nuis_fit, "mixed": mixed}, formula, method, level
    )
