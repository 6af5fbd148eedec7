"""Estimated marginal means and their contrasts (R's ``emmeans``) for fitted mixed models.

The **reference grid** is every combination of the levels of the factors of the fixed part,
with each numeric covariate at its mean over the rows used by the fit (a covariate with at most
two distinct values at both, emmeans' ``cov.keep``; ``at`` overrides either). Each grid row g
gives a row x_g of the fixed-effects model matrix, built by the fit's own column maker (same
contrasts, same levels, same transforms), so that the prediction there is x_g β̂ + ō, ō the
mean of the model's offset over the data (emmeans' ``.offset.``; 0 without an offset).

A **marginal mean** for a combination c of the levels of the ``specs`` (and ``by``) variables
averages the grid rows with that combination over the other factors, with equal weights:

    l_c = (1/|G_c|) Σ_{g ∈ G_c} x_g,       emmean_c = l_c β̂,       SE_c = √(l_c V l_c'),

V the covariance of β̂: σ² (R_X'R_X)⁻¹ (or the Hessian-based one of a GLMM), or for
Kenward–Roger the adjusted covariance Φ_A of pbkrtest. The degrees of freedom of l_c are
Satterthwaite's (lmerTest's ``calcSatterth``), Kenward–Roger's (pbkrtest's ``Lb_ddf``) or ∞
("asymptotic", the only choice for GLMMs), and the interval is emmean ± t_{df, 1−α/2} SE.

A **contrast** of the means of one ``by`` group, with coefficients w (Σ w = 0 for a true
contrast), is the linear function (Σ_c w_c l_c) β̂ with its own SE and df, tested by
t = estimate / SE; p-values of a family of contrasts are adjusted as emmeans does: Tukey's
studentized range for pairwise differences of k means (P(Q_{k,df} > √2 |t|)), Šidák,
Bonferroni, Holm, Hochberg, Benjamini–Hochberg ("fdr") and –Yekutieli, Scheffé (rank r:
P(F_{r,df} > t²/r)), emmeans' "dunnettx" approximation, or none.

On the response scale (``type="response"``, GLMMs with a non-identity link) a mean is
μ = g⁻¹(η) with the delta-method SE |dμ/dη| SE_η and the back-transformed interval
[g⁻¹(lower), g⁻¹(upper)]; contrasts of log-link means become ratios (logit: odds ratios)
exp(estimate) with SE exp(estimate) SE, tested on the log scale; contrasts under other links
stay on the link scale.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..errors import DataError, ModelError
from ..frame.data import column_names_in
from ..frame.design import ColumnMaker
from .kenward_roger import kr_ddf, kr_info
from .satterthwaite import contrast_df, satterthwaite_info

__all__ = [
    "ADJUST_METHODS",
    "CONTRAST_METHODS",
    "DDF_METHODS",
    "Contrasts",
    "GridVariable",
    "MarginalMeans",
    "adjust_pvalues",
    "emmeans",
    "reference_grid",
]

DDF_METHODS = ("kenward-roger", "satterthwaite", "asymptotic")
ADJUST_METHODS = (
    "tukey",
    "sidak",
    "bonferroni",
    "holm",
    "hochberg",
    "fdr",
    "BH",
    "BY",
    "scheffe",
    "dunnettx",
    "none",
)
CONTRAST_METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl", "consec", "eff")
KR_LIMIT = 3000
"""emmeans' ``pbkrtest.limit``: above this many observations the default ddf is Satterthwaite."""
COV_KEEP = 2
"""emmeans' ``cov.keep``: numeric covariates with at most this many distinct values enter the
grid at each value (averaged over with equal weights) instead of at their mean."""
ESTIMABILITY_TOL = 1e-8
"""emmeans' ``estble.tol``."""

_DDF_ALIASES = {
    "kenward-roger": "kenward-roger",
    "kr": "kenward-roger",
    "kenwardroger": "kenward-roger",
    "satterthwaite": "satterthwaite",
    "satt": "satterthwaite",
    "asymptotic": "asymptotic",
    "z": "asymptotic",
}
_PADJUST = ("bonferroni", "holm", "hochberg", "fdr", "BH", "BY")


# ---------------------------------------------------------------------- arguments
def ddf_method(engine: Any, ddf: Any) -> str:
    """The df method for ``ddf`` (None: emmeans' default), or a ModelError naming ``ddf``.

    Defaults: linear mixed models fitted by REML with at most 3000 observations use
    Kenward–Roger (emmeans' default and its ``pbkrtest.limit``), other linear mixed models
    Satterthwaite; GLMMs are asymptotic (z).
    """
    if ddf is None:
        if not engine.gaussian:
            return "asymptotic"
        if engine.REML and engine.n <= KR_LIMIT:
            return "kenward-roger"
        return "satterthwaite"
    key = (
        str(ddf).strip().lower().replace("_", "-").replace(" ", "-") if isinstance(ddf, str) else ""
    )
    key = _DDF_ALIASES.get(key, _DDF_ALIASES.get(key.replace("-", ""), ""))
    if not key:
        raise ModelError(
            f"unknown ddf {ddf!r}: use 'kenward-roger', 'satterthwaite' or 'asymptotic'"
        )
    if key != "asymptotic" and not engine.gaussian:
        raise ModelError(
            f"ddf={ddf!r} is for linear mixed models (lmer); marginal means of a generalized "
            "model (glmer) are asymptotic (z tests, as emmeans): use ddf='asymptotic'"
        )
    if key == "kenward-roger" and not engine.REML:
        raise ModelError(
            "ddf='kenward-roger' needs a REML fit (pbkrtest's method): refit with REML=True or "
            "use ddf='satterthwaite'"
        )
    return key


def check_level(level: Any) -> float:
    """A confidence level strictly between 0 and 1, or a DataError naming ``level``."""
    if isinstance(level, bool) or not isinstance(level, int | float | np.number):
        raise DataError(f"level must be a number between 0 and 1, got {level!r}")
    value = float(level)
    if not 0.0 < value < 1.0:
        raise DataError(f"level must be strictly between 0 and 1, got {level!r}")
    return value


def check_adjust(adjust: Any) -> str:
    """An adjustment name of :data:`ADJUST_METHODS` (any case), or a ModelError naming it."""
    if isinstance(adjust, str):
        low = adjust.strip().lower()
        for name in ADJUST_METHODS:
            if name.lower() == low:
                return name
        if low == "bh":
            return "BH"
    raise ModelError(f"unknown adjust {adjust!r}: use one of {', '.join(ADJUST_METHODS)}")


def _names(value: Any, what: str) -> list[str]:
    """A list of variable names from a string (``"a"``, ``"a + b"``, ``"a * b"``, ``"a:b"``)
    or a sequence of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = [p.strip() for p in re.split(r"[+*:]", value)]
        out = [p for p in parts if p]
        if not out:
            raise ModelError(f"{what}: no variable named in {value!r}")
        return out
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise ModelError(f"{what} must be a variable name or a list of names, got {value!r}")


def parse_specs(specs: Any, by: Any) -> tuple[list[str], list[str]]:
    """(specs variables, by variables) from ``specs`` (a name, a list of names, or a formula
    ``"~ a"``, ``"~ a | b"``) and ``by``."""
    by_names = _names(by, "by")
    if isinstance(specs, str) and ("~" in specs or "|" in specs):
        text = specs.strip()
        if not text.startswith("~"):
            if "~" in text:
                raise ModelError(
                    f"specs: {specs!r} has a left-hand side; emmeans' 'pairwise ~ a' is "
                    "m.emmeans('a').pairs() here"
                )
        text = text.lstrip("~")
        left, _, right = text.partition("|")
        spec_names = _names(left, "specs")
        if right.strip():
            by_names = by_names + [n for n in _names(right, "specs") if n not in by_names]
    else:
        spec_names = _names(specs, "specs")
    if not spec_names:
        raise ModelError("specs: name at least one variable, e.g. m.emmeans('treatment')")
    both = [n for n in spec_names if n in by_names]
    if both:
        raise ModelError(f"{both[0]!r} is in both specs and by")
    return spec_names, by_names


# ------------------------------------------------------------------ the grid
@dataclass
class GridVariable:
    """One variable of the reference grid: a factor over its levels or a numeric covariate
    at its mean (or at the values of ``at``)."""

    name: str
    factor: bool
    values: list[Any]
    """The grid's values (level values as the data hold them; numbers for covariates)."""
    labels: list[str]
    """The values as printed."""
    dtype: Any = None
    """The data's dtype (a pandas CategoricalDtype for categoricals), kept for the grid frame."""


def _is_factor(col: pd.Series, name: str, fixed_text: str) -> bool:
    if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind in "bOSU":
        return True
    if pd.api.types.is_string_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        return True
    # numeric variables made factors in the formula: C(x)
    return re.search(rf"\bC\(\s*`?{re.escape(name)}`?\s*[,)]", fixed_text) is not None


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating):
        v = float(value)
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.7g}"
    return str(value)


def _factor_levels(col: pd.Series) -> list[Any]:
    """The levels of a factor that occur in the fit's rows, in the fit's order (category
    order for categoricals; sorted otherwise, as R's ``factor``)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(pd.unique(col.dropna()))
        return [c for c in col.cat.categories if c in present]
    values = pd.unique(col.dropna())
    try:
        return sorted(values.tolist())
    except TypeError:
        return sorted(values.tolist(), key=str)


def reference_grid(engine: Any, at: dict[str, Any] | None = None) -> list[GridVariable]:
    """The variables of the fixed part's reference grid, in the formula's order.

    Parameters
    ----------
    engine : fitted engine
    at : dict, optional
        Variable -> value or list of values: covariates at these values instead of their
        mean; factors restricted to these levels.
    """
    d = engine.design
    frame = d.frame.frame
    parsed = d.formula
    names = [c for c in column_names_in([parsed.fixed], frame.columns) if not c.startswith("(")]
    at = {} if at is None else at
    if not isinstance(at, dict):
        raise ModelError(f"at must be a dict of variable -> value(s), got {at!r}")
    unknown = [k for k in at if k not in names]
    if unknown:
        raise ModelError(
            f"at: {unknown[0]!r} is not a variable of the fixed effects "
            f"(variables: {', '.join(names) or 'none'})"
        )
    out: list[GridVariable] = []
    for name in names:
        col = frame[name]
        if _is_factor(col, name, parsed.fixed):
            levels = _factor_levels(col)
            if name in at:
                want = at[name] if isinstance(at[name], list | tuple | np.ndarray) else [at[name]]
                by_label = {_label(v): v for v in levels}
                chosen = []
                for w in want:
                    key = _label(w)
                    if key not in by_label:
                        raise ModelError(
                            f"at: {w!r} is not a level of {name!r} (levels: {', '.join(by_label)})"
                        )
                    chosen.append(by_label[key])
                levels = chosen
            out.append(
                GridVariable(name, True, list(levels), [_label(v) for v in levels], col.dtype)
            )
        else:
            if name in at:
                raw = at[name] if isinstance(at[name], list | tuple | np.ndarray) else [at[name]]
                try:
                    vals = [float(v) for v in raw]
                except (TypeError, ValueError):
                    raise ModelError(
                        f"at: values of the covariate {name!r} must be numbers"
                    ) from None
            else:
                x = col.to_numpy(dtype=float)
                uniq = np.unique(x)
                # emmeans' cov.keep = 2: a covariate with at most two values keeps them
                vals = uniq.tolist() if uniq.size <= COV_KEEP else [float(np.mean(x))]
            out.append(GridVariable(name, False, vals, [_label(v) for v in vals], col.dtype))
    return out


def grid_frame(variables: list[GridVariable], order: list[str]) -> pd.DataFrame:
    """Every combination of the variables' values, the first name of ``order`` varying
    fastest (R's ``expand.grid``), as a data frame with the data's column types."""
    by_name = {v.name: v for v in variables}
    ordered = [by_name[n] for n in order]
    combos = list(itertools.product(*[range(len(v.values)) for v in reversed(ordered)]))
    cols: dict[str, Any] = {}
    for j, v in enumerate(reversed(ordered)):
        idx = [c[j] for c in combos]
        values = [v.values[i] for i in idx]
        if v.factor and isinstance(v.dtype, pd.CategoricalDtype):
            cols[v.name] = pd.Categorical(values, categories=v.dtype.categories)
        elif v.factor:
            cols[v.name] = pd.array(values, dtype=object) if v.dtype.kind == "O" else values
        else:
            cols[v.name] = np.asarray(values, dtype=float)
    return pd.DataFrame({n: cols[n] for n in order})


def _term_variables(maker: ColumnMaker, names: list[str]) -> list[set[str]]:
    """The variables in each term of the fixed part (for emmeans' interaction note)."""
    return maker.term_variables(names)


# -------------------------------------------------------------- p-values
def _tukey_sf(q: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    out = np.empty(q.shape)
    for i, (qi, di) in enumerate(zip(q.tolist(), df.tolist(), strict=True)):
        out[i] = float(stats.studentized_range.sf(qi, k, di)) if math.isfinite(qi) else math.nan
    return np.clip(out, 0.0, 1.0)


def _p_adjust(p: np.ndarray, method: str) -> np.ndarray:
    """R's ``p.adjust(p, method, n = length(p))`` for one family: NaN (non-estimable)
    p-values stay NaN and still count in n, as in emmeans."""
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    n = p.size
    m = q.size
    if m == 0:
        return out
    if method == "bonferroni":
        adj = np.minimum(1.0, n * q)
    elif method == "holm":
        o = np.argsort(q, kind="stable")
        adj_sorted = np.minimum(1.0, np.maximum.accumulate((n - np.arange(m)) * q[o]))
        adj = np.empty(m)
        adj[o] = adj_sorted
    else:
        o = np.argsort(q, kind="stable")[::-1]  # decreasing
        i = np.arange(m, 0, -1)
        if method == "hochberg":
            vals = (n - i + 1) * q[o]
        elif method in ("fdr", "BH"):
            vals = n / i * q[o]
        else:  # BY
            vals = np.sum(1.0 / np.arange(1, n + 1)) * n / i * q[o]
        adj_sorted = np.minimum(1.0, np.minimum.accumulate(vals))
        adj = np.empty(m)
        adj[o] = adj_sorted
    out[ok] = adj
    return out


def adjust_pvalues(
    t: np.ndarray,
    df: np.ndarray,
    adjust: str,
    fam_size: int,
    rank: int = 1,
) -> np.ndarray:
    """Adjusted two-sided p-values of one family of contrasts with statistics ``t``.

    ``fam_size`` is the number of means compared (Tukey's k); ``rank`` the rank of the
    family's contrast matrix (Scheffé).
    """
    t = np.asarray(t, dtype=float)
    df = np.where(np.isnan(df), np.inf, np.asarray(df, dtype=float))
    p = 2.0 * stats.t.sf(np.abs(t), df)
    n = t.size  # the family's size, non-estimable contrasts included (emmeans' n.contr)
    if adjust == "none" or (n <= 1 and adjust != "scheffe"):
        return p
    if adjust in _PADJUST:
        return _p_adjust(p, adjust)
    if adjust == "sidak":
        return 1.0 - (1.0 - p) ** n
    if adjust == "tukey":
        return _tukey_sf(math.sqrt(2.0) * np.abs(t), fam_size, df)
    if adjust == "scheffe":
        return stats.f.sf(t * t / rank, rank, df)
    # emmeans' dunnettx: a weighted mix of Tukey and Šidák
    kk = (1.0 + math.sqrt(1.0 + 8.0 * n)) / 2.0
    tukey = 1.0 - _tukey_sf(math.sqrt(2.0) * np.abs(t), kk, df)  # type: ignore[arg-type]
    sidak = stats.f.cdf(t * t, 1, df) ** n
    twt = (n - 1.0) / n
    return 1.0 - (twt * tukey + (1.0 - twt) * sidak)


# ---------------------------------------------------------------- results
def _needs_parens(label: str) -> bool:
    return re.search(r"-|\+|/|\*", label) is not None


def _is_number(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return False
    return True


def _link_info(engine: Any) -> tuple[str | None, str]:
    """(link name or None for identity / linear models, name of the response-scale column)."""
    fam = engine.family
    link = fam.link.name
    if engine.gaussian or link == "identity":
        return None, "emmean"
    name = {"binomial": "prob", "poisson": "rate"}.get(fam.name, "response")
    return link, name


@dataclass
class Contrasts:
    """Contrasts of marginal means (R's ``contrast`` / ``pairs`` of an emmGrid).

    Attributes
    ----------
    table : pandas.DataFrame
        ``contrast``, the ``by`` columns, ``estimate`` (or ``ratio`` / ``odds_ratio`` on the
        response scale), ``SE``, ``df``, (``null``,) ``t_ratio`` or ``z_ratio``, ``p_value``.
    L : ndarray (m, p)
        Each contrast as a linear function of β.
    coefficients : ndarray (m, number of means)
        Each contrast's weights on the marginal means.
    notes : list of str
        emmeans' annotations (df method, p-value adjustment, scale).
    """

    table: pd.DataFrame
    L: np.ndarray
    coefficients: np.ndarray
    adjust: str
    ddf: str
    by: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class MarginalMeans:
    """Estimated marginal means over a reference grid (R's ``emmeans``); see
    :func:`emmeans`.

    Attributes
    ----------
    table : pandas.DataFrame
        The specs and by columns, then ``emmean`` (or ``prob`` / ``rate`` / ``response`` on
        the response scale), ``SE``, ``df``, ``lower``, ``upper``.
    L : ndarray (m, p)
        The linear functions of β: row c is l_c, the grid rows' average.
    offset : ndarray (m,)
        The mean of the model's offset over the data (0 without any), as emmeans.
    V : ndarray (p, p)
        Covariance of β̂ used (Kenward–Roger: the adjusted one).
    notes : list of str
        emmeans' annotations (averaging, df method, confidence level, scale).
    """

    table: pd.DataFrame
    L: np.ndarray
    offset: np.ndarray
    V: np.ndarray
    specs: list[str]
    by: list[str]
    ddf: str
    level: float
    type: str
    estimable: np.ndarray
    notes: list[str]
    link: str | None
    response_name: str
    labels: list[str]
    """Each mean's label in contrasts (spec levels joined by a space; numeric levels
    prefixed by the variable's name, labels with - + / * in parentheses: emmeans')."""
    groups: list[np.ndarray]
    """Row positions of each by group (one group without ``by``)."""
    estimate_link: np.ndarray
    se_link: np.ndarray
    linear: bool
    """A linear mixed model (emmeans then names the df method in its notes)."""
    df_fun: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    inverse_link: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    mu_eta: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def pairs(self, adjust: str = "tukey", reverse: bool = False) -> Contrasts:
        """Pairwise differences of the means within each ``by`` group (R's ``pairs``):
        "A - B" for each pair, A before B (``reverse=True``: "B - A", emmeans'
        ``revpairwise``), Tukey-adjusted by default."""
        return self.contrast("revpairwise" if reverse else "pairwise", adjust=adjust)

    def contrast(
        self,
        method: str | dict[str, Sequence[float]] = "eff",
        adjust: str | None = None,
        ref: int | str = 1,
    ) -> Contrasts:
        """Contrasts of the means within each ``by`` group (R's ``contrast``).

        Parameters
        ----------
        method : str or dict
            ``"pairwise"``, ``"revpairwise"``, ``"trt.vs.ctrl"`` (each level minus the
            reference ``ref``), ``"consec"`` (each level minus the previous one), ``"eff"``
            (each level minus the average of all), or a dict name -> weights on the means of
            a group (in the table's order).
        adjust : str, optional
            P-value adjustment (:data:`ADJUST_METHODS`); default emmeans': Tukey for
            pairwise, dunnettx for trt.vs.ctrl, fdr for eff, none for custom. emmeans'
            "mvt" (the default for consec) is not available: Šidák is used for consec.
        ref : int or str
            The reference level for trt.vs.ctrl: a position (1-based) or a label.
        """
        return _contrast(self, method, adjust, ref)


def _contrast_matrix(
    method: Any, labels: list[str], ref: Any
) -> tuple[np.ndarray, list[str], str, bool]:
    """(weights (contrasts × means), contrast names, default adjust, pairwise family)."""
    k = len(labels)
    rows: list[np.ndarray] = []
    names: list[str] = []
    if isinstance(method, dict):
        for name, w in method.items():
            wv = np.asarray(w, dtype=float).reshape(-1)
            if wv.size != k:
                raise ModelError(f"method: contrast {name!r} has {wv.size} weights for {k} means")
            rows.append(wv)
            names.append(str(name))
        return np.array(rows).reshape(len(rows), k), names, "none", False
    if not isinstance(method, str) or method not in CONTRAST_METHODS:
        raise ModelError(
            f"unknown contrast method {method!r}: use one of {', '.join(CONTRAST_METHODS)} "
            "or a dict of weights"
        )
    if method == "pairwise":
        for i in range(k - 1):
            for j in range(i + 1, k):
                w = np.zeros(k)
                w[i], w[j] = 1.0, -1.0
                rows.append(w)
                names.append(f"{labels[i]} - {labels[j]}")
        adjust, pairs = "tukey", True
    elif method == "revpairwise":
        for i in range(1, k):
            for j in range(i):
                w = np.zeros(k)
                w[i], w[j] = 1.0, -1.0
                rows.append(w)
                names.append(f"{labels[i]} - {labels[j]}")
        adjust, pairs = "tukey", True
    elif method == "trt.vs.ctrl":
        if isinstance(ref, str):
            raw = [lab.strip("()") for lab in labels]
            if ref in labels:
                r = labels.index(ref)
            elif ref in raw:
                r = raw.index(ref)
            else:
                raise ModelError(f"ref: {ref!r} is not a level (levels: {', '.join(labels)})")
        elif isinstance(ref, int | np.integer) and not isinstance(ref, bool) and 1 <= ref <= k:
            r = int(ref) - 1
        else:
            raise ModelError(f"ref must be a level or a position from 1 to {k}, got {ref!r}")
        for i in range(k):
            if i == r:
                continue
            w = np.zeros(k)
            w[i], w[r] = 1.0, -1.0
            rows.append(w)
            names.append(f"{labels[i]} - {labels[r]}")
        adjust, pairs = "dunnettx", False
    elif method == "consec":
        for i in range(1, k):
            w = np.zeros(k)
            w[i], w[i - 1] = 1.0, -1.0
            rows.append(w)
            names.append(f"{labels[i]} - {labels[i - 1]}")
        adjust, pairs = "sidak", False
    else:  # eff
        for i in range(k):
            w = np.full(k, -1.0 / k)
            w[i] += 1.0
            rows.append(w)
            names.append(f"{labels[i]} effect")
        adjust, pairs = "fdr", False
    return np.array(rows).reshape(len(rows), k), names, adjust, pairs


def _contrast(mm: MarginalMeans, method: Any, adjust: str | None, ref: Any) -> Contrasts:
    first = mm.groups[0]
    labels = [mm.labels[i] for i in first]
    W, names, default_adjust, pairwise = _contrast_matrix(method, labels, ref)
    adj = check_adjust(adjust) if adjust is not None else default_adjust
    notes: list[str] = []
    if adj == "tukey" and not pairwise:
        notes.append(
            'Note: adjust = "tukey" was changed to "sidak" because "tukey" is only '
            "appropriate for one set of pairwise comparisons"
        )
        adj = "sidak"
    nc = W.shape[0]
    true_con = bool(np.all(np.abs(W.sum(axis=1)) / (1e-6 + np.abs(W).max(axis=1)) < 1e-6))
    Ls, est_ok = [], []
    by_rows: list[dict[str, Any]] = []
    for g in mm.groups:
        Ls.append(W @ mm.L[g])
        est_ok.append(np.array([bool(np.all(mm.estimable[g][w != 0])) for w in W]))
        for _ in range(nc):
            by_rows.append({b: mm.table[b].iloc[g[0]] for b in mm.by})
    L = np.vstack(Ls)
    ok = np.concatenate(est_ok)
    # the means on the link scale, offsets included (emmeans' contrasts keep .offset.)
    means = np.where(mm.estimable, mm.estimate_link, 0.0)
    est = np.concatenate([W @ means[g] for g in mm.groups])
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", L, mm.V, L), 0.0))
    df = mm.df_fun(L)
    est = np.where(ok, est, np.nan)
    se = np.where(ok, se, np.nan)
    df = np.where(ok, df, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = est / se
    p = np.empty(tval.size)
    ranks = []
    for gi in range(len(mm.groups)):
        sl = slice(gi * nc, (gi + 1) * nc)
        rank = int(np.linalg.matrix_rank(W)) if W.size else 1
        ranks.append(rank)
        fam = len(labels)
        p[sl] = adjust_pvalues(tval[sl], df[sl], adj if nc > 1 else "none", fam, rank)
    asym = mm.ddf == "asymptotic"
    stat_name = "z_ratio" if asym else "t_ratio"
    out = pd.DataFrame({"contrast": names * len(mm.groups)})
    for b in mm.by:
        out[b] = [r[b] for r in by_rows]
    ratio = mm.type == "response" and mm.link in ("log", "logit") and true_con
    if ratio:
        col = "odds_ratio" if mm.link == "logit" else "ratio"
        out["contrast"] = [n.replace(" - ", " / ") for n in out["contrast"]]
        out[col] = np.exp(est)
        out["SE"] = np.exp(est) * se
        out["df"] = df
        out["null"] = 1.0
    else:
        out["estimate"] = est
        out["SE"] = se
        out["df"] = df
    out[stat_name] = tval
    out["p_value"] = p
    if mm.type == "response" and mm.link is not None and not ratio:
        notes.insert(0, f"Note: contrasts are still on the {mm.link} scale")
    elif mm.type == "link" and mm.link is not None:
        scale = {"logit": "log odds ratio"}.get(mm.link, mm.link)
        notes.insert(0, f"Results are given on the {scale} (not the response) scale.")
    notes.extend(n for n in mm.notes if n.startswith("Results are averaged"))
    if mm.linear:  # linear mixed models (emmeans names the df method, even asymptotic)
        notes.append(f"Degrees-of-freedom method: {mm.ddf}")
    fam_size = len(labels)
    show = adj != "none" and nc > 1 and not (adj == "tukey" and fam_size < 3)
    if show:
        if adj == "tukey":
            notes.append(
                f"P value adjustment: tukey method for comparing a family of {fam_size} estimates"
            )
        elif adj == "scheffe":
            notes.append(f"P value adjustment: scheffe method with rank {ranks[0]}")
        else:
            notes.append(f"P value adjustment: {adj} method for {nc} tests")
    if ratio:
        scale = "log odds ratio" if mm.link == "logit" else "log"
        notes.append(f"Tests are performed on the {scale} scale")
    if not ok.all():
        notes.append("Non-estimable contrasts are NaN")
    return Contrasts(
        table=out,
        L=L,
        coefficients=W,
        adjust=adj,
        ddf=mm.ddf,
        by=list(mm.by),
        notes=notes,
    )


# ------------------------------------------------------------------ emmeans
def _df_function(engine: Any, ddf: str) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """(L ↦ df of each row, the covariance of β̂ to use)."""
    V = engine.sigma**2 * engine.vcov_unscaled
    if ddf == "asymptotic":
        return (lambda L: np.full(np.atleast_2d(L).shape[0], np.inf)), V
    if ddf == "satterthwaite":
        info = satterthwaite_info(engine)
        return (lambda L: contrast_df(info, np.atleast_2d(L))), V
    kr = kr_info(engine)

    def kr_df(L: np.ndarray) -> np.ndarray:
        L = np.atleast_2d(L)
        out = np.empty(L.shape[0])
        for i, row in enumerate(L):
            if not np.any(row) or float(row @ kr.Phi @ row) <= 0.0:
                out[i] = np.nan
                continue
            out[i] = kr_ddf(kr, row[None, :])
        return out

    return kr_df, kr.PhiA


def emmeans(
    engine: Any,
    specs: Any,
    by: Any = None,
    at: dict[str, Any] | None = None,
    ddf: str | None = None,
    level: float = 0.95,
    type: str = "link",
) -> MarginalMeans:
    """Estimated marginal means of a fitted engine (R's ``emmeans(m, specs, by, at)``).

    Parameters
    ----------
    engine : fitted engine (linear or generalized)
    specs : str or list of str
        The factor(s) whose means are wanted: ``"Machine"``, ``["A", "B"]``, ``"A * B"`` or a
        formula ``"~ A"`` / ``"~ A | B"`` (``| B``: by B).
    by : str or list of str, optional
        Means (and contrasts) are computed within each combination of these variables.
    at : dict, optional
        Covariates at these values instead of their means; factors restricted to these
        levels.
    ddf : {"kenward-roger", "satterthwaite", "asymptotic"}, optional
        Degrees of freedom (linear mixed models; GLMMs are asymptotic). Default: Kenward–Roger
        for REML fits of up to 3000 observations, otherwise Satterthwaite.
    level : float, default 0.95
        Confidence level of the intervals.
    type : {"link", "response"}
        GLMMs: means on the link scale (default) or back-transformed (delta-method SEs).

    Returns
    -------
    MarginalMeans
    """
    engine.require_fit()
    key = ddf_method(engine, ddf)
    level = check_level(level)
    if type not in ("link", "response"):
        raise ModelError(f"type must be 'link' or 'response', got {type!r}")
    spec_names, by_names = parse_specs(specs, by)
    variables = reference_grid(engine, at)
    known = [v.name for v in variables]
    for what, names in (("specs", spec_names), ("by", by_names)):
        for n in names:
            if n not in known:
                raise ModelError(
                    f"{what}: {n!r} is not a variable of the fixed effects "
                    f"(variables: {', '.join(known) or 'none'})"
                )
    d = engine.design
    maker = d.fixed.maker
    by_name = {v.name: v for v in variables}
    kept = spec_names + by_names
    others = [n for n in known if n not in kept]
    order = kept + others  # first varies fastest
    grid = grid_frame(variables, order)
    Lfull = maker.make(grid)
    # emmeans' .offset.: the mean over the data of the model's offset (offset() terms and the
    # offset argument alike)
    mean_offset = float(np.mean(d.offset)) if d.offset is not None else 0.0
    offset = np.full(len(grid), mean_offset)
    m = int(np.prod([len(by_name[n].values) for n in kept])) if kept else 1
    reps = len(grid) // m
    # rows are ordered with the kept variables fastest: cell c has rows c, c + m, c + 2m, ...
    L = Lfull.reshape(reps, m, -1).mean(axis=0)
    off = offset.reshape(reps, m).mean(axis=0)
    # estimability (rank-deficient fits): l must lie in the row space of the full X
    estimable = np.ones(m, dtype=bool)
    if d.fixed.dropped:
        full = dataclasses.replace(maker, keep=None)
        Xf = full.make(d.frame.frame)
        Lf = full.make(grid).reshape(reps, m, -1).mean(axis=0)
        _, s, vt = np.linalg.svd(Xf, full_matrices=True)
        rank = int(np.sum(s > s[0] * max(Xf.shape) * np.finfo(float).eps)) if s.size else 0
        N = vt[rank:].T
        num = np.sum((Lf @ N) ** 2, axis=1)
        den = np.maximum(np.sum(Lf**2, axis=1), np.finfo(float).tiny)
        estimable = num / den <= ESTIMABILITY_TOL
    df_fun, V = _df_function(engine, key)
    beta = engine.beta
    est = L @ beta + off
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", L, V, L), 0.0))
    df = df_fun(L)
    est = np.where(estimable, est, np.nan)
    se = np.where(estimable, se, np.nan)
    df = np.where(estimable, df, np.nan)
    q = np.where(np.isinf(df), stats.norm.ppf(0.5 + level / 2), stats.t.ppf(0.5 + level / 2, df))
    lower, upper = est - q * se, est + q * se
    link, resp_name = _link_info(engine)
    fam = engine.family
    # the table: level columns, first spec fastest
    cells = list(itertools.product(*[range(len(by_name[n].values)) for n in reversed(kept)]))
    table = pd.DataFrame()
    for j, n in enumerate(reversed(kept)):
        v = by_name[n]
        col = [v.labels[c[j]] for c in cells]
        table[n] = (
            pd.Categorical(col, categories=v.labels)
            if v.factor
            else np.asarray([v.values[c[j]] for c in cells], dtype=float)
        )
    table = table[kept] if kept else table
    if type == "response" and link is not None:
        mu = fam.linkinv(est)
        table[resp_name] = mu
        table["SE"] = np.abs(fam.mu_eta(est)) * se
        lo, hi = fam.linkinv(lower), fam.linkinv(upper)
        table["df"] = df
        table["lower"] = np.minimum(lo, hi)
        table["upper"] = np.maximum(lo, hi)
    else:
        table["emmean"] = est
        table["SE"] = se
        table["df"] = df
        table["lower"] = lower
        table["upper"] = upper
    # labels for contrasts (emmeans' enhance.levels and parens)
    spec_vars = [by_name[n] for n in spec_names]
    labels = []
    for c in cells:
        parts = []
        for n, v in zip(spec_names, spec_vars, strict=True):
            j = list(reversed(kept)).index(n)
            lab = v.labels[c[j]]
            if all(_is_number(x) for x in v.labels):
                lab = f"{n}{lab}"
            parts.append(lab)
        text = " ".join(parts)
        labels.append(f"({text})" if _needs_parens(text) else text)
    ns = int(np.prod([len(by_name[n].values) for n in spec_names]))
    groups = [np.arange(g * ns, (g + 1) * ns) for g in range(m // ns)]
    notes: list[str] = []
    averaged = [n for n in others if len(by_name[n].values) > 1]
    if averaged:
        notes.append(f"Results are averaged over the levels of: {', '.join(averaged)}")
        terms = _term_variables(maker, known)
        if any(t & set(kept) and t & set(averaged) for t in terms):
            notes.append("NOTE: Results may be misleading due to involvement in interactions")
    if not estimable.all():
        notes.append("Non-estimable means are NaN")
    if engine.gaussian:
        notes.append(f"Degrees-of-freedom method: {key}")
    if link is not None and type == "link":
        notes.append(f"Results are given on the {link} (not the response) scale.")
    notes.append(f"Confidence level used: {level:g}")
    if link is not None and type == "response":
        notes.append(f"Intervals are back-transformed from the {link} scale")
    return MarginalMeans(
        table=table,
        L=L,
        offset=off,
        V=V,
        specs=spec_names,
        by=by_names,
        ddf=key,
        level=level,
        type=type,
        estimable=estimable,
        notes=notes,
        link=link,
        response_name=resp_name if (type == "response" and link is not None) else "emmean",
        labels=labels,
        groups=groups,
        estimate_link=est,
        se_link=se,
        linear=bool(engine.gaussian),
        df_fun=df_fun,
        inverse_link=fam.linkinv,
        mu_eta=fam.mu_eta,
    )
