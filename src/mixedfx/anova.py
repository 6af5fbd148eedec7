"""Likelihood-ratio tests between nested mixed models: lme4's ``anova(m0, m1, ...)``.

For models fitted by maximum likelihood to the same data, sorted by their number of
parameters, the statistic between consecutive models is

    χ² = 2 (ℓ_i − ℓ_{i−1}) = deviance_{i−1} − deviance_i,   df = npar_i − npar_{i−1},

referred to χ²(df). REML criteria of models with different fixed effects are not comparable,
so (as lme4's default ``refit = TRUE``) REML fits are refitted by ML first, on copies: the
models passed in are left as they are.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, ModelError, SingularFitWarning

__all__ = ["AnovaResult", "anova"]


def _ml_copy(m: Any) -> Any:
    """The same linear mixed model refitted by ML (same design, starting from its θ)."""
    from .lmm import LinearMixedModel

    new = LinearMixedModel(m.formula, None, REML=False, design=m.design)
    new.data_name = m.data_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        new.fit(start=m.theta, check_conv=False)
    return new


class AnovaResult:
    """The table of a likelihood-ratio comparison; print it for R's layout.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model (sorted by npar): npar, aic, bic, loglik, deviance, chisq, df,
        p_value.
    formulas : dict
        Model name -> formula.
    notes : list of str
        E.g. that REML fits were refitted by ML.
    models : list
        The (ML) models compared, in the table's order.
    """

    def __init__(
        self, table: pd.DataFrame, formulas: dict[str, str], notes: list[str], models: list
    ):
        self.table = table
        self.formulas = formulas
        self.notes = notes
        self.models = models

    def __getitem__(self, key: str) -> pd.Series:
        return self.table[key]

    def __str__(self) -> str:
        from .summary import _decimals_for, _signif_stars, format_pvalue

        t = self.table
        lines = [*self.notes, "Models:"]
        lines += [f"{name}: {f}" for name, f in self.formulas.items()]
        cols: list[tuple[str, list[str]]] = [("npar", [str(int(v)) for v in t["npar"]])]
        for key, head in (
            ("aic", "AIC"),
            ("bic", "BIC"),
            ("loglik", "logLik"),
            ("deviance", "deviance"),
        ):
            v = t[key].to_numpy(dtype=float)
            dec = _decimals_for(v, 5)
            cols.append((head, [f"{x:.{dec}f}" for x in v]))
        chis = t["chisq"].to_numpy(dtype=float)
        dec = _decimals_for(chis[np.isfinite(chis)], 5) if np.isfinite(chis).any() else 0
        cols.append(("Chisq", ["" if not math.isfinite(x) else f"{x:.{dec}f}" for x in chis]))
        cols.append(
            ("Df", ["" if not math.isfinite(x) else str(int(x)) for x in t["df"].to_numpy(float)])
        )
        pv = t["p_value"].to_numpy(dtype=float)
        cols.append(("Pr(>Chisq)", ["" if not math.isfinite(x) else format_pvalue(x) for x in pv]))
        cols.append(("", [_signif_stars(x) if math.isfinite(x) else "" for x in pv]))
        names = [str(i) for i in t.index]
        w0 = max(len(n) for n in names)
        widths = [max(len(h), *(len(s) for s in vals)) for h, vals in cols]
        out = [" " * w0 + "".join(" " + h.rjust(w) for (h, _), w in zip(cols, widths, strict=True))]
        for r, name in enumerate(names):
            out.append(
                name.ljust(w0)
                + "".join(" " + vals[r].rjust(w) for (_, vals), w in zip(cols, widths, strict=True))
            )
        lines += [line.rstrip() for line in out]
        if np.isfinite(pv).any():
            lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def anova(*models: Any, names: list[str] | None = None, refit: bool = True) -> AnovaResult:
    """Likelihood-ratio tests between nested models fitted to the same data (lme4's
    ``anova(m0, m1, ...)``).

    Parameters
    ----------
    *models : fitted LinearMixedModel or GeneralizedLinearMixedModel objects (two or more)
    names : list of str, optional
        Row names, in the order the models are given (default ``model1``, ``model2``, ...).
    refit : bool, default True
        Refit REML fits by ML first (lme4's default); with False, REML fits are compared
        as they are (only meaningful when their fixed effects are the same).

    Returns
    -------
    AnovaResult
        ``.table`` with npar, aic, bic, loglik, deviance, chisq, df, p_value.

    Raises
    ------
    ModelError
        Fewer than two models, or linear and generalized models mixed, or different families.
    DataError
        Models fitted to different responses or different data.
    """
    from scipy import stats

    from .glmm import GeneralizedLinearMixedModel

    if len(models) < 2:
        raise ModelError(
            "anova compares two or more models; for the F tests of one model's fixed effects "
            "use model.anova()"
        )
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(models))]
    if len(names) != len(models):
        raise ModelError(f"names has {len(names)} entries for {len(models)} models")
    for m in models:
        m._require_fit()
    kinds = {isinstance(m, GeneralizedLinearMixedModel) for m in models}
    if len(kinds) > 1:
        raise ModelError("anova cannot compare linear (lmer) and generalized (glmer) mixed models")
    if True in kinds:
        fams = {(m.family.name, m.family.link.name) for m in models}
        if len(fams) > 1:
            raise ModelError(f"anova between models of different families or links: {sorted(fams)}")
    first = models[0]
    for name, m in zip(names[1:], models[1:], strict=True):
        if m.design.response_name != first.design.response_name:
            raise DataError(
                f"models have different responses ({first.design.response_name!r} in "
                f"{names[0]}, {m.design.response_name!r} in {name}): a likelihood-ratio test "
                "needs the same response"
            )
        if m.nobs != first.nobs:
            raise DataError(
                f"models were not all fitted to the same data: {names[0]} has {first.nobs} "
                f"observations, {name} has {m.nobs} (check for rows dropped for missing values)"
            )
        same = np.array_equal(m.y, first.y)
        if same and isinstance(m, GeneralizedLinearMixedModel):
            same = np.array_equal(m.prior_weights, first.prior_weights)
        if not same:
            raise DataError(
                f"models were not all fitted to the same data: the response values of "
                f"{names[0]} and {name} differ"
            )
    notes: list[str] = []
    fits = list(models)
    if refit and any(getattr(m, "REML", False) for m in fits):
        fits = [_ml_copy(m) if m.REML else m for m in fits]
        notes.append("refitting model(s) with ML (instead of REML)")
    order = sorted(range(len(fits)), key=lambda i: (fits[i].npar, i))
    fits = [fits[i] for i in order]
    rownames = [names[i] for i in order]
    npar = np.array([m.npar for m in fits], dtype=float)
    dev = np.array([m.objective for m in fits])
    loglik = -0.5 * dev
    chisq = np.full(len(fits), np.nan)
    df = np.full(len(fits), np.nan)
    chisq[1:] = np.maximum(0.0, dev[:-1] - dev[1:])
    df[1:] = np.diff(npar)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    p[0] = np.nan
    table = pd.DataFrame(
        {
            "npar": npar.astype(int),
            "aic": [m.aic for m in fits],
            "bic": [m.bic for m in fits],
            "loglik": loglik,
            "deviance": dev,
            "chisq": chisq,
            "df": df,
            "p_value": p,
        },
        index=pd.Index(rownames, name="model"),
    )
    if not refit and any(getattr(m, "REML", False) for m in fits):
        notes.append(
            "REML fits compared as fitted (refit=False): valid only for equal fixed effects"
        )
    formulas = {n: m.formula for n, m in zip(rownames, fits, strict=True)}
    return AnovaResult(table, formulas, notes, fits)
