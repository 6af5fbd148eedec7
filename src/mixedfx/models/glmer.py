"""lme4's ``glmer``: the user-facing generalized linear mixed model over the generalized
engine (:mod:`mixedfx.engines.generalized`)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ..engines.dask_generalized import DaskGeneralizedEngine
from ..engines.generalized import GeneralizedEngine
from ..errors import DataWarning, FormulaError, ModelError
from ..frame.dask_frame import DaskDesign, dask_design, is_dask_frame
from ..frame.design import Design, build_design
from ..frame.formula import parse_formula
from ..frame.responses import CBIND, binomial_response
from ..glm.families import Binomial, Family, get_family
from .base import Call, MixedModel
from .dask_rows import DaskRows

__all__ = ["GeneralizedLinearMixedModel", "glmer"]


def _nagq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if not (isinstance(value, float) and value.is_integer()):
            raise ModelError(f"nAGQ must be a whole number (0, 1, or more nodes), got {value!r}")
    if not 0 <= int(value) <= MAX_NAGQ:
        raise ModelError(
            f"nAGQ must be 0 (PIRLS only), 1 (Laplace) or a number of quadrature nodes up to "
            f"{MAX_NAGQ} (as lme4), got {int(value)}"
        )
    return int(value)


MAX_NAGQ = 100
"""The most quadrature nodes lme4's ``GHrule`` offers."""


class GeneralizedLinearMixedModel(MixedModel):
    """A generalized linear mixed model, fitted by :func:`glmer`.

    Has the members of every mixed model (theta, fixef, coefficients, vcov, varcorr, ranef(),
    objective, loglik, aic, bic, ...) with GLMM meanings: ``objective`` is the Laplace (or
    AGQ) approximation of −2 log-likelihood, ``coefficients`` carries Wald z tests, ``fitted``
    is on the response scale.

    Parameters
    ----------
    formula : str
        lme4 formula; for binomial data the response may be ``cbind(successes, failures)``.
    data : data frame or dict of arrays
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"`` or a
        :class:`mixedfx.families.Family` (e.g. ``Binomial(link="probit")``, or a user's own
        subclass defining R's family methods).
    weights, offset : column name or array, optional
        Prior weights (for a binomial proportion: the number of trials) and offset.
    nAGQ : int, default 1
        1: Laplace approximation. >1: adaptive Gauss–Hermite quadrature with that many nodes
        (one scalar random-effects term only). 0: PIRLS for β (lme4's nAGQ = 0).
    """

    _option_names: ClassVar[tuple[str, ...]] = ("family", "nAGQ")
    _start_with_fixef: ClassVar[bool] = True
    engine: GeneralizedEngine

    def __init__(
        self,
        formula: str,
        data: Any,
        family: str | Family = "binomial",
        weights: Any = None,
        offset: Any = None,
        nAGQ: int = 1,
        *,
        design: Design | None = None,
    ):
        call = Call(
            formula, data, weights, offset, (("family", get_family(family)), ("nAGQ", _nagq(nAGQ)))
        )
        self._init(call, design)

    @classmethod
    def _build_design(cls, call: Call) -> Design:
        fam = dict(call.options)["family"]
        parsed = parse_formula(call.formula)
        maker = binomial_response if isinstance(fam, Binomial) else None
        if maker is None and CBIND.match(parsed.response):
            raise FormulaError(
                f"cbind() responses are for the binomial family, not {fam.name}: {call.formula!r}"
            )
        if is_dask_frame(call.data):
            return dask_design(
                parsed,
                call.data,
                call.weights,
                call.offset,
                check_nobs_vs_nre=False,
                response_maker=maker,
            )
        design = build_design(
            parsed,
            call.data,
            call.weights,
            call.offset,
            check_nobs_vs_nre=False,
            response_maker=maker,
        )
        y = design.y
        if maker is not None and y.ndim == 1 and design.weights is None:
            frac = (y > 0) & (y < 1)
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                warnings.warn(
                    f"non-integer #successes in a binomial glm (lme4's warning): response "
                    f"{design.response_name!r} has proportions (row {i + 1}: {y[i]:g}) but no "
                    "weights, so each row counts as one trial; give the number of trials as "
                    "weights, or cbind(successes, failures)",
                    DataWarning,
                    stacklevel=4,
                )
        return design

    @classmethod
    def _make_engine(cls, design: Design, call: Call) -> GeneralizedEngine:
        opts = dict(call.options)
        if isinstance(design, DaskDesign):  # PIRLS by passes over the partitions
            return DaskGeneralizedEngine(design, get_family(opts["family"]), _nagq(opts["nAGQ"]))
        return GeneralizedEngine(design, get_family(opts["family"]), _nagq(opts["nAGQ"]))

    def _init(self, call: Call, design: Design | None, engine: Any = None) -> None:
        super()._init(call, design, engine)
        if isinstance(self.engine.design, DaskDesign):
            self.__class__ = DaskGeneralizedLinearMixedModel

    @property
    def family(self) -> Family:
        return self.engine.family

    @property
    def nAGQ(self) -> int:
        return self.engine.nAGQ

    @property
    def REML(self) -> bool:
        return False

    @property
    def pirls(self) -> Any:
        return self.engine.pirls

    @property
    def prior_weights(self) -> np.ndarray:
        """Prior weights as the family uses them (binomial: number of trials x weights)."""
        return self.engine.prior_weights

    @property
    def residuals(self) -> np.ndarray:
        """Deviance residuals (R's default for GLMMs); see :meth:`resid` for other types."""
        return self.engine.residuals("deviance")

    def resid(self, type: str = "deviance") -> np.ndarray:
        """Residuals as R's ``residuals(m, type)``: ``deviance`` (default), ``pearson``,
        ``response`` or ``working``."""
        return self.engine.residuals(type)

    @property
    def vcov_conditional(self) -> np.ndarray:
        """σ² (R_X'R_X)⁻¹ with β held fixed in PIRLS (lme4's ``vcov(m, use.hessian = FALSE)``)."""
        return self.engine.vcov_conditional()

    @property
    def conditional_deviance(self) -> float:
        """Σ d_i(y_i, μ̂_i): the deviance of the fitted means given the conditional modes."""
        e = self.engine
        return float(e.family.dev_resids(e.y, self.fitted, e.prior_weights).sum())

    def predict(
        self,
        newdata: Any = None,
        type: str = "link",
        re_form: Any = "all",
        allow_new_levels: bool = False,
    ) -> np.ndarray:
        """Predictions as lme4's ``predict``: on the link scale (``type="link"``, lme4's
        default) or the response scale (``type="response"``: μ = g⁻¹(η)). ``newdata``,
        ``re_form`` and ``allow_new_levels`` are as for :meth:`LinearMixedModel.predict`."""
        if type not in ("link", "response"):
            raise ModelError(f"type must be 'link' or 'response', got {type!r}")
        eta = self._predict(newdata, re_form, allow_new_levels)
        return self.family.linkinv(eta) if type == "response" else eta

    def __repr__(self) -> str:
        if not self.engine.fitted:
            return f"<GeneralizedLinearMixedModel {self.formula!r} (not fitted)>"
        return (
            f"<GeneralizedLinearMixedModel {self.formula!r} ({self.family.name}, "
            f"{self.family.link.name}): -2 log-likelihood {self.objective:.4f}, n = {self.n}>"
        )


def glmer(
    formula: str,
    data: Any,
    family: str | Family = "binomial",
    weights: Any = None,
    offset: Any = None,
    nAGQ: int = 1,
    *,
    start: np.ndarray | dict | None = None,
    check_conv: bool = True,
) -> GeneralizedLinearMixedModel:
    """Fit a generalized linear mixed model, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        ``"y ~ fixed + (expr | group)"``; binomial responses may be 0/1, booleans, a two-level
        factor, proportions with the number of trials as ``weights``, or
        ``cbind(successes, failures)``.
    data : pandas or polars data frame, or dict of arrays
    family : str or Family, default "binomial"
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"``, or a Family
        object such as ``mixedfx.families.Binomial(link="probit")``.
    weights, offset : column name or array, optional
    nAGQ : int, default 1
        Laplace (1) or adaptive Gauss–Hermite quadrature with nAGQ nodes (one scalar term);
        0 stops after the first stage (β from PIRLS, as lme4's nAGQ = 0).
    start : array or dict, optional
        Starting θ, or ``{"theta": ..., "fixef": ...}``.
    check_conv : bool, default True

    Returns
    -------
    GeneralizedLinearMixedModel

    Examples
    --------
    >>> import mixedfx as mfx
    >>> cbpp = mfx.datasets.load("cbpp")
    >>> g = mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    >>> round(g.objective, 2)
    184.05
    """
    model = GeneralizedLinearMixedModel(
        formula, data, family=family, weights=weights, offset=offset, nAGQ=nAGQ
    )
    model.fit(start=start, check_conv=check_conv)
    return model


class DaskGeneralizedLinearMixedModel(DaskRows, GeneralizedLinearMixedModel):
    """A GLMM fitted to a Dask data frame: PIRLS by one pass per iteration over the persisted
    partitions (``passes`` counts them); fitted values and residuals are lazy Dask series."""
