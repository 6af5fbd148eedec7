"""lme4's ``lmer``: the user-facing linear mixed model over the linear engine."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..engines.linear import LinearEngine
from ..errors import ModelError
from ..frame.checks import check_bool, check_response_varies, check_start
from ..frame.design import Design, build_design
from .base import Call, MixedModel

__all__ = ["LinearMixedModel", "lmer"]


def _reml(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ModelError(f"REML must be True or False, got {value!r}")


class LinearMixedModel(MixedModel):
    """A linear mixed-effects model ``y = Xβ + Zb + ε``, ``b = Λθ u``, ``u ~ N(0, σ²I)``.

    Create with :func:`lmer` (which also fits), or construct and call :meth:`fit`.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : data frame (pandas, polars, ...) or dict of arrays
    REML : bool, default True
        Minimize the REML criterion (True) or the ML deviance (False).
    weights : str or array-like, optional
        Prior weights: a column name or an array with one value per row of ``data``.
    offset : str or array-like, optional
        A known term added to the linear predictor: column name or array.
    """

    _option_names: ClassVar[tuple[str, ...]] = ("REML",)
    engine: LinearEngine

    def __init__(
        self,
        formula: str,
        data: Any,
        REML: bool = True,
        weights: Any = None,
        offset: Any = None,
        *,
        design: Design | None = None,
    ):
        call = Call(formula, data, weights, offset, (("REML", _reml(REML)),))
        self._init(call, design)

    @classmethod
    def _build_design(cls, call: Call) -> Design:
        return build_design(call.formula, call.data, call.weights, call.offset)

    @classmethod
    def _make_engine(cls, design: Design, call: Call) -> LinearEngine:
        return LinearEngine(design, REML=dict(call.options)["REML"])

    def fit(self, start: Any = None, *, check_conv: bool = True) -> LinearMixedModel:
        """Fit the model: ``start`` is θ in lme4's order (or ``{"theta": θ}``); returns
        ``self``. Warns when the fit is singular or a convergence check fails.

        Raises
        ------
        DataError
            ``start`` of the wrong length or with a missing value, ``check_conv`` not a bool.
        ModelError
            A constant response (lme4: "Response is constant").
        """
        d = self.design
        start = check_start(start, d.theta_lower().size, d.fixed.p, fixef=False)
        check_conv = check_bool(check_conv, "check_conv")
        check_response_varies(self.engine.y, d.response_name)
        super().fit(start=start, check_conv=check_conv)
        return self

    @property
    def REML(self) -> bool:
        return self.engine.REML

    @property
    def family(self) -> str:
        return "gaussian"

    @property
    def residuals(self) -> np.ndarray:
        """Response residuals y − fitted."""
        return self.engine.residuals("response")

    def predict(
        self, newdata: Any = None, re_form: Any = "all", allow_new_levels: bool = False
    ) -> np.ndarray:
        """Predictions as lme4's ``predict``: Xβ̂ + Zb̂ (+ offset) for the fitted rows or for
        ``newdata``.

        Parameters
        ----------
        newdata : data frame or dict of arrays, optional
        re_form : "all" (default), None, or a formula naming random-effects terms
            ``None`` predicts at the population level (fixed effects only, R's
            ``re.form = NA``); ``"~ (1 | g)"`` includes only that term.
        allow_new_levels : bool, default False
            Grouping levels not seen in the fit get random effects 0 (True), or raise.

        Returns
        -------
        ndarray, one value per row (NaN where a needed variable is missing).
        """
        return self._predict(newdata, re_form, allow_new_levels)

    def __repr__(self) -> str:
        if not self.engine.fitted:
            return f"<LinearMixedModel {self.formula!r} (not fitted)>"
        crit = "REML criterion" if self.REML else "deviance"
        return f"<LinearMixedModel {self.formula!r}: {crit} {self.objective:.4f}, n = {self.n}>"


def lmer(
    formula: str,
    data: Any,
    REML: bool = True,
    weights: Any = None,
    offset: Any = None,
    *,
    start: np.ndarray | None = None,
    check_conv: bool = True,
) -> LinearMixedModel:
    """Fit a linear mixed-effects model, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        ``"y ~ fixed + (expr | group) + ..."`` in lme4's formula language.
    data : pandas or polars data frame, or dict of arrays
    REML : bool, default True
        REML (default) or maximum likelihood.
    weights, offset : column name or array, optional
        Prior weights and offset.
    start : array or dict, optional
        Starting θ (lme4's order), or ``{"theta": θ}``.
    check_conv : bool, default True
        Run lme4's convergence checks at the optimum.

    Returns
    -------
    LinearMixedModel
        The fitted model.

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    >>> round(m.objective, 3)
    1743.628
    """
    model = LinearMixedModel(formula, data, REML=REML, weights=weights, offset=offset)
    model.fit(start=start, check_conv=check_conv)
    return model
