"""lme4's ``lmer``: the user-facing linear mixed model over the linear engine."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ..engines.linear import LinearEngine, Units
from ..engines.moments import MomentsEngine, check_moments_model
from ..errors import ApproximateFitWarning, ModelError
from ..frame.dask_frame import DaskDesign, dask_design, is_dask_frame, release_memory
from ..frame.design import Design, build_design
from ..linalg.cost import MAX_BYTES, MAX_SECONDS, exact_cost
from ..linalg.dask_crossprod import dask_crossproducts
from .approximate import Approximate
from .base import Call, MixedModel
from .dask_rows import DaskRows

__all__ = ["LinearMixedModel", "lmer"]


def _reml(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ModelError(f"REML must be True or False, got {value!r}")


METHODS = ("auto", "exact", "moments")


def _method(value: Any) -> str:
    if isinstance(value, str) and value.lower() in METHODS:
        return value.lower()
    raise ModelError(f"method must be 'auto', 'exact' or 'moments', got {value!r}")


def choose_method(design: Design, method: str) -> tuple[str, str]:
    """The method a fit uses and why (``method="auto"``: exact when its estimated cost fits
    :data:`mixedfx.linalg.cost.MAX_BYTES` and ``MAX_SECONDS``, else the method of moments,
    with an :class:`ApproximateFitWarning`)."""
    if method == "moments":
        check_moments_model(design)
        return "moments", "method='moments' (as asked)"
    terms = design.terms
    cost = exact_cost([t.nlevels for t in terms], [t.k for t in terms], design.fixed.p, design.n)
    if method == "exact" or cost.fits(MAX_BYTES, MAX_SECONDS):
        if cost.bytes > MAX_BYTES:
            sizes = ", ".join(f"{t.group}: {t.q}" for t in terms[1:])
            raise ModelError(
                f"the exact fit needs {cost.describe()} ({sizes}), more than the "
                f"{MAX_BYTES / 1e9:.0f} GB it may use: mixedfx puts the term with the most "
                "levels first and holds the others in a dense block. Use method='moments' "
                "(approximate: crossed random intercepts) or fewer levels"
            )
        return "exact", ""
    try:
        check_moments_model(design)
    except ModelError as exc:
        raise ModelError(
            f"the exact fit needs {cost.describe()} (limits: {MAX_BYTES / 1e9:.0f} GB, "
            f"{MAX_SECONDS:.0f} s), and {exc}"
        ) from None
    note = (
        f"method='auto' chose the method of moments (approximate): an exact fit would need "
        f"{cost.describe()} (limits {MAX_BYTES / 1e9:.0f} GB, {MAX_SECONDS:.0f} s)"
    )
    warnings.warn(note, ApproximateFitWarning, stacklevel=5)
    return "moments", note


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

    _option_names: ClassVar[tuple[str, ...]] = ("REML", "method")
    engine: LinearEngine

    def __init__(
        self,
        formula: str,
        data: Any,
        REML: bool = True,
        weights: Any = None,
        offset: Any = None,
        *,
        method: str = "auto",
        design: Design | None = None,
    ):
        opts = (("REML", _reml(REML)), ("method", _method(method)))
        call = Call(formula, data, weights, offset, opts)
        self._init(call, design)

    def _init(self, call: Call, design: Design | None, engine: Any = None) -> None:
        super()._init(call, design, engine)
        # rows on Dask, an approximate fit: the same model with those members replaced
        dask = isinstance(self.engine.design, DaskDesign)
        approx = bool(getattr(self.engine, "approximate", False))
        self.__class__ = _VARIANTS[dask, approx]

    @classmethod
    def _build_design(cls, call: Call) -> Design:
        if is_dask_frame(call.data):
            return dask_design(call.formula, call.data, call.weights, call.offset)
        return build_design(call.formula, call.data, call.weights, call.offset, check_dense=False)

    @classmethod
    def _make_engine(cls, design: Design, call: Call) -> Any:
        opts = dict(call.options)
        method, note = choose_method(design, opts.get("method", "auto"))
        dask = isinstance(design, DaskDesign)
        if method == "moments":
            if dask:
                cp = dask_crossproducts(design, level_xy=True)
                engine: Any = MomentsEngine(design, cp.stats, cp.s, rows=False, keep=cp.layout.keep)
            else:
                engine = MomentsEngine(design)
            engine.method_note = note
            return engine
        if dask:
            cp = dask_crossproducts(design)
            A, units = cp.A, Units(cp.s, cp.c)
            del cp  # the summed tables: not kept while the factor is set up
            release_memory()
            return LinearEngine(design, REML=opts["REML"], units=units, A=A)
        return LinearEngine(design, REML=opts["REML"])

    @property
    def approximate(self) -> bool:
        """Whether the estimates are approximate (the method of moments, see :attr:`method`)."""
        return False

    @property
    def method(self) -> str:
        """How the model was fitted: "exact" (REML/ML) or "moments" (approximate)."""
        return str(getattr(self.engine, "method", "exact"))

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
    method: str = "auto",
    start: np.ndarray | None = None,
    check_conv: bool = True,
) -> LinearMixedModel:
    """Fit a linear mixed-effects model, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        ``"y ~ fixed + (expr | group) + ..."`` in lme4's formula language.
    data : pandas or polars data frame, dict of arrays, or a Dask data frame
        A Dask data frame is read partition by partition and never gathered: one pass for its
        levels and counts, one for the cross-products (exact fits); fitted values and
        residuals are then lazy Dask series.
    REML : bool, default True
        REML (default) or maximum likelihood.
    weights, offset : column name or array, optional
        Prior weights and offset.
    start : array or dict, optional
        Starting θ (lme4's order), or ``{"theta": θ}``.
    check_conv : bool, default True
        Run lme4's convergence checks at the optimum.
    method : "auto" (default), "exact" or "moments"
        "exact": lme4's REML/ML fit. "moments": crossed random intercepts by the method of
        moments and GLS (approximate, O(N); see :mod:`mixedfx.engines.moments`). "auto":
        exact while its estimated memory and time fit (:mod:`mixedfx.linalg.cost`), else
        moments with an :class:`~mixedfx.errors.ApproximateFitWarning` saying why.

    Returns
    -------
    LinearMixedModel
        The fitted model (``m.method``, ``m.approximate`` say how).

    Examples
    --------
    >>> import mixedfx as mfx
    >>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    >>> round(m.objective, 3)
    1743.628
    """
    model = LinearMixedModel(
        formula, data, REML=REML, weights=weights, offset=offset, method=method
    )
    model.fit(start=start, check_conv=check_conv)
    return model


class DaskLinearMixedModel(DaskRows, LinearMixedModel):
    """A linear mixed model fitted to a Dask data frame (exact): fitted values, residuals
    and predictions are lazy Dask series (see :mod:`mixedfx.models.dask_rows`)."""


class ApproximateLinearMixedModel(Approximate, LinearMixedModel):
    """A linear mixed model fitted by the method of moments (approximate; see
    :mod:`mixedfx.models.approximate`)."""

    def __repr__(self) -> str:
        if not self.engine.fitted:
            return f"<LinearMixedModel {self.formula!r} (not fitted)>"
        return f"<LinearMixedModel {self.formula!r}: method of moments (approximate), n = {self.n}>"


class DaskApproximateLinearMixedModel(DaskRows, ApproximateLinearMixedModel):
    """A linear mixed model fitted by the method of moments to a Dask data frame."""


_VARIANTS: dict[tuple[bool, bool], type[LinearMixedModel]] = {
    (False, False): LinearMixedModel,
    (True, False): DaskLinearMixedModel,
    (False, True): ApproximateLinearMixedModel,
    (True, True): DaskApproximateLinearMixedModel,
}
