"""What a model fitted to a Dask data frame does with its rows: lazily, partition by partition.

The fit itself needs the rows once (linear models) or once per PIRLS iteration (GLMMs); the
results that are one value per row (fitted values, residuals, predictions) are Dask series,
computed by one more pass when asked for, indexed like the data's rows. The summary's scaled
residuals' quantiles are exact, from two passes. What needs all rows at once in memory —
Kenward–Roger's n × n covariance, the parametric bootstrap, profiles, simulation, R² — is
refused with a message saying what to use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..engines.generalized import family_response
from ..errors import ModelError
from ..frame.dask_frame import DaskDesign, is_dask_frame
from ..frame.design import Design, FixedEffects
from ..glm.families import Family
from ..inference import predict as _predict
from ..inference.wald import ddf_name
from ..linalg.zmul import z_times
from ..report.summary import GlmerSummary, LmerSummary

__all__ = ["DaskRows"]

_QUANTILES = [0.0, 0.25, 0.5, 0.75, 1.0]


def _row_values(d: Design, what: str, beta: np.ndarray, blocks: list[np.ndarray],
                family: Family, glmm: bool, sigma: float) -> np.ndarray:  # fmt: skip
    """One partition's values: η, μ, or residuals of a type (response, pearson, deviance,
    working, scaled: what the summary's quantiles are of)."""
    eta = d.X @ beta
    if d.offset is not None:
        eta = eta + d.offset
    eta = eta + z_times(d.terms, blocks)
    if what == "eta":
        return eta
    mu = np.asarray(family.linkinv(eta), dtype=float)
    if what == "mu":
        return mu
    if glmm:
        y, wt, _ = family_response(d, family)
    else:
        y = d.y
        wt = d.weights if d.weights is not None else np.ones(d.n)
    if what == "scaled":
        if glmm:
            return (y - mu) * np.sqrt(wt) / np.sqrt(family.variance(mu)) / sigma
        return (y - mu) * np.sqrt(wt) / sigma
    if what == "response":
        return y - mu
    if what == "pearson":
        return (y - mu) * np.sqrt(wt) / np.sqrt(family.variance(mu))
    if what == "deviance":
        dv = np.maximum(family.dev_resids(y, mu, wt), 0.0)
        return np.sign(y - mu) * np.sqrt(dv)
    if what == "working":
        return (y - mu) / family.mu_eta(eta)
    raise ModelError(
        f"unknown residual type {what!r}: use 'deviance', 'pearson', 'response' or 'working'"
    )


class _Fitted:
    """What ``predict`` needs of a fitted engine, without its factor or cross-products (it
    is shipped to the workers)."""

    def __init__(self, design: Design, beta: np.ndarray, blocks: list[np.ndarray]):
        self.design, self.beta, self._blocks = design, beta, blocks

    def require_fit(self) -> None:
        return None

    def b_blocks(self) -> list[np.ndarray]:
        return self._blocks


def _predict_partition(part: pd.DataFrame, fitted: _Fitted, re_form: Any, allow: bool,
                       family: Family | None) -> pd.Series:  # fmt: skip
    eta = _predict.linear_predictor(fitted, part, re_form, allow)
    if family is not None:
        eta = np.asarray(family.linkinv(eta), dtype=float)
    return pd.Series(eta, index=part.index)


class DaskRows:
    """Members of :class:`~mixedfx.LinearMixedModel` and
    :class:`~mixedfx.GeneralizedLinearMixedModel` for rows on Dask (mixed in first)."""

    engine: Any
    design: DaskDesign

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Fit as in memory (see the model's ``fit``), after lme4's constant-response check
        on the first pass's range of the response."""
        self.check_response()
        return super().fit(*args, **kwargs)  # type: ignore[misc]

    # ------------------------------------------------------------------ rows
    def _rows(self, what: str, name: str) -> Any:
        e = self.engine
        e.require_fit()
        return self.design.map_series(
            _row_values, what, e.beta, e.b_blocks(), e.family, not e.gaussian, e.sigma, name=name
        )

    @property
    def linear_predictor(self) -> Any:
        """η̂ = o + Xβ̂ + ZΛû per row: a lazy Dask series."""
        return self._rows("eta", "eta")

    @property
    def fitted(self) -> Any:
        """Fitted values μ̂ per row: a lazy Dask series (``.compute()`` gathers them)."""
        return self._rows("mu", "fitted")

    @property
    def residuals(self) -> Any:
        """Residuals per row (response residuals for lmer, deviance residuals for glmer): a
        lazy Dask series."""
        return self._rows("response" if self.engine.gaussian else "deviance", "residuals")

    def resid(self, type: str | None = None) -> Any:
        """Residuals of a type (R's ``residuals(m, type)``) per row: a lazy Dask series."""
        if type is None:
            type = "response" if self.engine.gaussian else "deviance"
        return self._rows(type, "residuals")

    def predict(self, newdata: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Predictions as in memory; for a Dask data frame (or ``newdata=None``, the fitted
        rows) a lazy Dask series, otherwise an array. glmer's ``type="response"`` gives μ."""
        e = self.engine
        e.require_fit()
        if e.gaussian:
            names = ["re_form", "allow_new_levels"]
            opts = {
                "re_form": "all",
                "allow_new_levels": False,
                **dict(zip(names, args, strict=False)),
                **kwargs,
            }
            family = None
        else:
            names = ["type", "re_form", "allow_new_levels"]
            opts = {"type": "link", "re_form": "all", "allow_new_levels": False,
                    **dict(zip(names, args, strict=False)), **kwargs}  # fmt: skip
            if opts["type"] not in ("link", "response"):
                raise ModelError(f"type must be 'link' or 'response', got {opts['type']!r}")
            family = e.family if opts["type"] == "response" else None
        if newdata is None:
            chosen = _predict.select_terms(e, opts["re_form"])
            blocks = e.b_blocks()
            kept = [b if i in chosen else np.zeros_like(b) for i, b in enumerate(blocks)]
            what = "mu" if family is not None else "eta"
            return self.design.map_series(
                _row_values, what, e.beta, kept, e.family, not e.gaussian, e.sigma, name="fit"
            )
        fitted = _Fitted(_light_design(self.design), e.beta, e.b_blocks())
        if is_dask_frame(newdata):
            import dask

            fd = dask.delayed(fitted, pure=False)
            return newdata.map_partitions(
                _predict_partition, fd, opts["re_form"], bool(opts["allow_new_levels"]), family,
                meta=pd.Series([], dtype=float),
            )  # fmt: skip
        eta = _predict.linear_predictor(fitted, newdata, opts["re_form"], opts["allow_new_levels"])
        return np.asarray(family.linkinv(eta)) if family is not None else eta

    # -------------------------------------------------------------- summary
    def scaled_residual_quantiles(self) -> np.ndarray:
        """Min, quartiles and max of the scaled (Pearson) residuals, exactly (two passes:
        :meth:`mixedfx.frame.dask_frame.DaskDesign.quantiles`)."""
        e = self.engine
        e.require_fit()
        return self.design.quantiles(
            _row_values, _QUANTILES, "scaled", e.beta, e.b_blocks(), e.family, not e.gaussian,
            e.sigma,
        )  # fmt: skip

    def summary(self, ddf: str = "satterthwaite") -> Any:
        """lme4's summary, as in memory (see :meth:`MixedModel.summary`); Kenward–Roger is
        not available for rows on Dask."""
        self.engine.require_fit()
        q = self.scaled_residual_quantiles()
        if getattr(self.engine, "approximate", False):  # the approximate fit's own summary
            return super().summary(scaled_residuals=q)  # type: ignore[misc]
        if self.engine.gaussian:
            key = ddf_name(ddf)
            if key == "kenward-roger":
                self._require("Kenward-Roger's df (an n x n covariance)", rows=True)
            return LmerSummary(self, ddf=key, scaled_residuals=q)
        return GlmerSummary(self, scaled_residuals=q)

    @property
    def passes(self) -> int:
        """Passes over the data so far: the first pass (levels, counts), the cross-products'
        pass, for glmer one per PIRLS iteration and step halving (and one to persist the
        partitions), and two per summary (exact residual quantiles). Lazy series computed by
        the user are not counted."""
        return self.design.passes + int(getattr(self.engine, "passes", 0))

    def check_response(self) -> None:
        """lme4's "Response is constant", from the first pass's range."""
        lo, hi = self.design.source.yrange
        if np.isfinite(lo) and lo == hi:
            raise ModelError(
                f"response {self.design.response_name!r} is constant (every value is {lo:g}): "
                "a mixed model cannot be fitted to it (lme4: 'Response is constant')"
            )


def _light_design(d: DaskDesign) -> Design:
    """The design without its rows or its Dask source, for shipping to workers."""
    fx = FixedEffects(
        X=np.zeros((0, d.fixed.p)), names=d.fixed.names, maker=d.fixed.maker,
        dropped=d.fixed.dropped,
    )  # fmt: skip
    return Design(
        formula=d.formula,
        y=np.zeros(0),
        fixed=fx,
        terms=d.terms,
        weights=d.weights,
        offset=d.offset,
        frame=d.frame,
        response_name=d.response_name,
        offset_name=d.offset_name,
    )
