"""lme4's ``anova(m0, m1, ...)``: likelihood-ratio tests between nested fitted models.

REML criteria of models with different fixed effects are not comparable, so (as lme4's
default ``refit = TRUE``) REML fits are refitted by ML first, on copies
(:meth:`MixedModel.copy`): the models passed in are left as they are.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from ..inference.lrt import check_comparable, lrt_table
from ..report.tables import AnovaResult

__all__ = ["anova"]


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
        Fewer than two models, something that is not a fitted mixed model, or linear and
        generalized models mixed, or different families.
    DataError
        Models fitted to different responses or different data.
    """
    if len(models) < 2:
        raise ModelError(
            "anova compares two or more models; for the F tests of one model's fixed effects "
            "use model.anova()"
        )
    for i, m in enumerate(models):
        if not hasattr(m, "engine") or not hasattr(m, "copy"):
            raise ModelError(
                f"anova compares fitted mixed models (lmer, glmer); argument {i + 1} is "
                f"{type(m).__name__}"
            )
        m.engine.require_fit()
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(models))]
    if len(names) != len(models):
        raise ModelError(f"names has {len(names)} entries for {len(models)} models")
    if not all(isinstance(n, str) for n in names):
        raise ModelError(f"names must be strings, one per model, got {names!r}")
    if not isinstance(refit, bool):
        raise ModelError(f"refit must be True or False, got {refit!r}")
    check_comparable([m.engine for m in models], names)
    notes: list[str] = []
    fits = list(models)
    if refit and any(m.REML for m in fits):
        fits = [m.copy(REML=False) if m.REML else m for m in fits]
        notes.append("refitting model(s) with ML (instead of REML)")
    order = sorted(range(len(fits)), key=lambda i: (fits[i].npar, i))
    fits = [fits[i] for i in order]
    rownames = [names[i] for i in order]
    table = lrt_table([m.engine for m in fits], rownames)
    if not refit and any(m.REML for m in fits):
        notes.append(
            "REML fits compared as fitted (refit=False): valid only for equal fixed effects"
        )
    formulas = {n: m.formula for n, m in zip(rownames, fits, strict=True)}
    return AnovaResult(table, formulas, notes, fits)
