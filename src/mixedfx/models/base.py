"""What every fitted mixed model offers its user, over an engine (:mod:`mixedfx.engines`).

A model is three things: the call (formula, data and every argument, :class:`Call`), the
design built from it, and an engine fitted on that design. The classes here are thin: each
member reads the engine or hands it to the inference or report layer. Copies go one way,
:meth:`MixedModel.copy`: a new response or start keeps the design and the call; new data, a
new formula or new arguments rebuild the design from the call with those changes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..engines.base import Engine
from ..errors import FormulaError, ModelError
from ..frame import checks
from ..frame.dask_frame import RowsNotHeldError
from ..frame.design import Design
from ..frame.formula import parse_formula
from ..frame.formula_update import update_formula
from ..inference import allfit as _allfit
from ..inference import bootstrap as _bootstrap
from ..inference import confint as _confint
from ..inference import emmeans as _emmeans
from ..inference import ftests, kenward_roger, predict, simulate, wald
from ..inference import r2 as _r2
from ..inference import repca as _repca
from ..inference.profile import Profiler
from ..report import emmeans as _emmeans_report
from ..report import html as _html
from ..report import plots, summary
from ..report import tidy as _tidy
from ..report.tables import AnovaTable

__all__ = ["Call", "MixedModel"]


@dataclasses.dataclass(frozen=True)
class Call:
    """Everything the user passed: what :meth:`MixedModel.copy` and ``update`` keep.

    ``options`` holds the model kind's own arguments (``REML`` for lmer; ``family`` and
    ``nAGQ`` for glmer).
    """

    formula: str
    data: Any
    weights: Any = None
    offset: Any = None
    options: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return {"weights": self.weights, "offset": self.offset, **dict(self.options)}


class MixedModel:
    """Shared members of :class:`~mixedfx.LinearMixedModel` and
    :class:`~mixedfx.GeneralizedLinearMixedModel`; not created directly."""

    _option_names: ClassVar[tuple[str, ...]] = ()

    call: Call
    engine: Engine

    # --------------------------------------------------------- construction
    @classmethod
    def _build_design(cls, call: Call) -> Design:
        raise NotImplementedError

    @classmethod
    def _make_engine(cls, design: Design, call: Call) -> Engine:
        raise NotImplementedError

    def _init(self, call: Call, design: Design | None, engine: Engine | None = None) -> None:
        self.call = call
        d = design if design is not None else self._build_design(call)
        self.engine = engine if engine is not None else self._make_engine(d, call)
        data = call.data
        self.data_name = getattr(data, "name", None) if not isinstance(data, pd.DataFrame) else None

    @classmethod
    def _from(cls, call: Call, engine: Engine, data_name: str | None) -> MixedModel:
        new = cls.__new__(cls)
        new.call = call
        new.engine = engine
        new.data_name = data_name
        return new

    _start_with_fixef: ClassVar[bool] = False
    """Whether ``start`` may hold fixed effects (``{"theta": θ, "fixef": β}``: glmer)."""

    def fit(self, start: Any = None, *, check_conv: bool = True) -> MixedModel:
        """Fit the model: ``start`` is θ in lme4's order or ``{"theta": θ}`` (for glmer also
        ``{"theta": θ, "fixef": β}``, which skips the first stage); returns ``self``. Warns
        when the fit is singular or a convergence check fails.

        Raises
        ------
        DataError
            ``start`` of the wrong length or with a missing value, ``check_conv`` not a bool.
        ModelError
            A constant response (lme4: "Response is constant"), or a fit without finite
            estimates (e.g. no residual variance left to estimate).
        """
        d = self.design
        start = checks.check_start(
            start, d.theta_lower().size, d.fixed.p, fixef=self._start_with_fixef
        )
        check_conv = checks.check_bool(check_conv, "check_conv")
        checks.check_response_varies(self.engine.y, d.response_name)
        self.engine.fit(start=start, check_conv=check_conv)
        self.engine.warn_if_singular(stacklevel=3)
        checks.check_finite_fit(self.engine, d.response_name)
        return self

    def copy(
        self,
        y: np.ndarray | None = None,
        *,
        start: Any = None,
        formula: str | None = None,
        data: Any = None,
        check_conv: bool = False,
        **options: Any,
    ) -> MixedModel:
        """The one way a fitted model is copied: the same call with the changes given, fitted.

        A new response ``y`` (same rows) or ``start`` reuses the design; a new ``formula``
        (R's ``update`` shorthand allowed), ``data`` or arguments (``REML``, ``weights``,
        ``offset``, ``family``, ``nAGQ``) rebuild it. Every argument not named is kept.
        """
        unknown = set(options) - {"weights", "offset", "REML", *self._option_names}
        if unknown:
            raise ModelError(f"unknown argument(s): {', '.join(sorted(unknown))}")
        if "REML" in options:
            options["REML"] = checks.check_bool(options["REML"], "REML")
        check_conv = checks.check_bool(check_conv, "check_conv")
        if formula is not None and not isinstance(formula, str):
            raise FormulaError(
                f"formula must be a string such as '. ~ . + x', got {type(formula).__name__}"
            )
        if y is not None:
            y = checks.check_vector(y, "y (the new response)", self.n)
            checks.check_response_varies(y, "y (the new response)")
        call = self.call
        new_formula = update_formula(call.formula, formula) if formula else call.formula
        parse_formula(new_formula)
        opts = dict(call.options)
        opts.update({k: v for k, v in options.items() if k in self._option_names})
        call = dataclasses.replace(
            call,
            formula=new_formula,
            data=call.data if data is None else data,
            weights=options.get("weights", call.weights),
            offset=options.get("offset", call.offset),
            options=tuple(opts.items()),
        )
        rebuild = formula is not None or data is not None or "weights" in options
        rebuild = rebuild or any(k != "REML" for k in options)
        if rebuild:
            if call.data is None:
                raise ModelError("this model does not hold its data: pass data=")
            if y is not None:
                raise ModelError("a new response and a new design cannot be given together")
            new = type(self).__new__(type(self))
            new._init(call, None)
            new.data_name = new.data_name if data is not None else self.data_name
            return new.fit(start=start, check_conv=check_conv)
        d = self.design
        start = checks.check_start(
            start, d.theta_lower().size, d.fixed.p, fixef=not self.engine.gaussian
        )
        engine = self.engine.refit(y, start=start, check_conv=check_conv, REML=options.get("REML"))
        return self._from(call, engine, self.data_name)

    def _require(self, what: str, *, rows: bool = False, likelihood: bool = False) -> None:
        """Refuse, saying why and what to use, what this fit cannot give: ``rows`` when the
        rows are not in memory (a fit on Dask), ``likelihood`` when the fit has none (the
        method of moments)."""
        if likelihood and getattr(self.engine, "approximate", False):
            raise ModelError(
                f"{what} needs the likelihood, which a fit by the method of moments "
                "(approximate) does not have: fit with method='exact' where the model fits in "
                "memory and time"
            )
        if rows and not self.design.has_rows:
            raise RowsNotHeldError(
                f"{what} needs the model's rows in memory, and they are on Dask: use "
                "Satterthwaite's t tests (m.coefficients), confint(method='wald') and "
                "likelihood-ratio tests (mfx.anova(m0, m)), or compute() the data and fit in "
                "memory"
            )

    def refit(self, y: np.ndarray | None = None, *, check_conv: bool = False) -> MixedModel:
        """Refit with a new response (same rows, same design, same call), starting from the
        current estimates; returns a new model, ``self`` is unchanged (lme4's ``refit``).
        For a binomial model ``y`` is on the fitted scale (proportions of the trials)."""
        self._require("refit() with a new response", rows=True)
        return self.copy(y, check_conv=check_conv)

    def update(self, formula: str | None = None, data: Any = None, **kwargs: Any) -> MixedModel:
        """A new model fitted with a changed formula, data or arguments (R's ``update``).

        ``formula`` uses R's ``update.formula`` shorthand: ``". ~ . + x2"``, ``"~ . - Days"``,
        ``". ~ . - (1 | g) + (1 | h)"``; a formula without ``~`` changes the right-hand side
        (``"... + x2"`` or ``"+ x2"``). Arguments not given (``REML``, ``weights``,
        ``offset``, ``family``, ``nAGQ``) keep the original call's; ``start`` and
        ``check_conv`` are passed to the fit.
        """
        self.engine.require_fit()
        start = kwargs.pop("start", None)
        check_conv = kwargs.pop("check_conv", True)
        return self.copy(formula=formula, data=data, start=start, check_conv=check_conv, **kwargs)

    # ------------------------------------------------------------ the fit
    @property
    def formula(self) -> str:
        return self.call.formula

    @property
    def data(self) -> Any:
        """The data the model was built from (kept for ``update``)."""
        return self.call.data

    @property
    def design(self) -> Design:
        return self.engine.design

    @property
    def n(self) -> int:
        return self.engine.n

    @property
    def p(self) -> int:
        return self.engine.p

    @property
    def nobs(self) -> int:
        return self.engine.n

    @property
    def y(self) -> np.ndarray:
        """The response the model was fitted to (proportions for binomial)."""
        return self.engine.y

    @property
    def optinfo(self) -> Any:
        return self.engine.optinfo

    @property
    def convergence_messages(self) -> list[str]:
        return self.engine.convergence_messages

    def _require_fit(self) -> None:
        self.engine.require_fit()

    def objective_at(self, theta: np.ndarray, *args: Any, **kwargs: Any) -> float:
        """The criterion at θ (see the engine's ``objective_at``)."""
        return self.engine.objective_at(theta, *args, **kwargs)

    # ------------------------------------------------------------ parameters
    @property
    def theta(self) -> np.ndarray:
        """θ in lme4's order: per term, the lower triangle of Λ column by column."""
        return self.engine.theta

    @property
    def theta_names(self) -> list[str]:
        return self.design.theta_names()

    @property
    def objective(self) -> float:
        """The minimized criterion: REML criterion, or −2 log-likelihood (ML, Laplace, AGQ)."""
        return self.engine.objective

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ̂ (the dispersion's square root; 1 for binomial and
        Poisson)."""
        return self.engine.sigma

    @property
    def npar(self) -> int:
        """Number of parameters: fixed effects, θ, and σ where it is estimated."""
        return self.engine.npar

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for REML fits), as lme4's ``logLik``."""
        return -0.5 * self.objective

    @property
    def deviance(self) -> float:
        """−2 log-likelihood (the REML criterion for REML fits), the quantity compared
        between models."""
        return self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return self.objective + math.log(self.n) * self.npar

    @property
    def df_resid(self) -> int:
        return self.n - self.npar

    @property
    def beta(self) -> np.ndarray:
        return self.engine.beta

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates β̂, named as lme4 names them."""
        return pd.Series(self.engine.beta, index=self.design.fixed.names, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of β̂."""
        e = self.engine
        names = self.design.fixed.names
        return pd.DataFrame(e.sigma**2 * e.vcov_unscaled, index=names, columns=names)

    @property
    def coefficients(self) -> pd.DataFrame:
        """Fixed effects with their tests: estimate, std_error, statistic, and df and p_value
        (lmerTest's Satterthwaite t tests for lmer; Wald z tests for glmer)."""
        return wald.coefficient_table(self.engine)

    @property
    def vcov_kr(self) -> pd.DataFrame:
        """Kenward-Roger adjusted covariance of β̂ (pbkrtest's ``vcovAdj``; REML lmer fits)."""
        self._require("Kenward-Roger's covariance (n x n)", rows=True, likelihood=True)
        names = self.design.fixed.names
        kr = kenward_roger.kr_info(self.engine)
        return pd.DataFrame(kr.PhiA, index=names, columns=names)

    @property
    def coefficients_kr(self) -> pd.DataFrame:
        """Fixed effects with Kenward-Roger t tests, as lmerTest's
        ``summary(m, ddf = "Kenward-Roger")`` (REML lmer fits)."""
        self._require("Kenward-Roger's df (an n x n covariance)", rows=True, likelihood=True)
        return wald.coefficient_table(self.engine, ddf="kenward-roger")

    def anova(self, ddf: str = "satterthwaite") -> AnovaTable:
        """Type III F tests of the fixed-effect terms, as lmerTest's ``anova(m)`` (linear
        mixed models). For likelihood-ratio tests between models use :func:`mixedfx.anova`."""
        self._require("type III F tests", rows=True, likelihood=True)
        key = wald.ddf_name(ddf)
        if key == "lme4":
            raise ModelError("anova(ddf=...) takes 'satterthwaite' or 'kenward-roger'")
        return AnovaTable.from_frame(*ftests.type3_anova(self.engine, key))

    def lambdas(self) -> list[np.ndarray]:
        """The k x k lower-triangular Λ block of each term."""
        return self.engine.lambdas()

    def covariance_matrices(self) -> list[np.ndarray]:
        """Covariance matrix of each term's random effects."""
        return self.engine.covariance_matrices()

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components, like R's ``as.data.frame(VarCorr(m))``: columns ``group,
        var1, var2, vcov, sdcor``, one row per variance (``sdcor`` the standard deviation)
        and per covariance (``sdcor`` the correlation), then the residual where the model has
        a dispersion parameter."""
        rows = []
        for t, S in zip(self.design.terms, self.covariance_matrices(), strict=True):
            sd = np.sqrt(np.diag(S))
            for i, name in enumerate(t.columns):
                rows.append((t.vc_name, name, None, S[i, i], sd[i]))
            for i in range(t.k):
                for j in range(i + 1, t.k):
                    corr = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((t.vc_name, t.columns[i], t.columns[j], S[i, j], corr))
        if self.engine.has_dispersion:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    @property
    def is_singular(self) -> bool:
        """lme4's ``isSingular``: a θ on its lower bound 0 (within 1e-4)."""
        return self.engine.is_singular

    @property
    def ngroups(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.design.terms:
            out.setdefault(t.group, t.nlevels)
        return out

    # ------------------------------------------------------- random effects
    def ranef(self, condvar: bool = True) -> pd.DataFrame:
        """Conditional modes of the random effects, like R's
        ``as.data.frame(ranef(m, condVar=TRUE))``: ``group, term, level, condval, condsd``."""
        e = self.engine
        e.require_fit()
        cv = e.cond_var if condvar else None
        frames = []
        for i, (t, b) in enumerate(zip(self.design.terms, e.b_blocks(), strict=True)):
            for j, col in enumerate(t.columns):
                d = {"group": t.group, "term": col, "level": t.levels, "condval": b[:, j]}
                if cv is not None:
                    d["condsd"] = np.sqrt(cv[i][:, j, j])
                frames.append(pd.DataFrame(d))
        return pd.concat(frames, ignore_index=True)

    def ranef_dict(self) -> dict[str, pd.DataFrame]:
        """Conditional modes as R's ``ranef(m)`` prints them: one frame per grouping factor,
        levels as rows and the terms' columns side by side."""
        self.engine.require_fit()
        out: dict[str, pd.DataFrame] = {}
        for t, b in zip(self.design.terms, self.engine.b_blocks(), strict=True):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.columns)
            out[t.group] = out[t.group].join(df, how="outer") if t.group in out else df
        return out

    # ------------------------------------------------------ fitted values
    @property
    def linear_predictor(self) -> np.ndarray:
        """η̂ = o + Xβ̂ + ZΛû."""
        return self.engine.linear_predictor()

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values on the response scale, μ̂ = g⁻¹(η̂) (R's ``fitted``)."""
        return self.engine.fitted_values()

    def resid(self, type: str = "response") -> np.ndarray:
        """Residuals as R's ``residuals(m, type)``: ``response``, ``deviance``, ``pearson`` or
        ``working``."""
        return self.engine.residuals(type)

    def _predict(self, newdata: Any, re_form: Any, allow_new_levels: bool) -> np.ndarray:
        return predict.linear_predictor(self.engine, newdata, re_form, allow_new_levels)

    def simulate(self, nsim: int = 1, seed: Any = None, use_u: bool = False) -> np.ndarray:
        """Responses simulated from the fitted model, as lme4's ``simulate``: an (n, nsim)
        array reproducible from ``seed`` (binomial: proportions of the trials). See
        :func:`mixedfx.inference.simulate.simulate`."""
        self._require("simulate()", rows=True)
        return simulate.simulate(self.engine, nsim, seed, use_u)

    def bootstrap(
        self,
        nsim: int = 1000,
        seed: Any = None,
        n_jobs: int = 1,
        progress: bool | None = None,
    ) -> _bootstrap.BootstrapResult:
        """Parametric bootstrap, as lme4's ``bootMer``: simulate, refit, collect
        (``.table``: one row per replicate). See :func:`mixedfx.inference.bootstrap.bootstrap`."""
        self._require("the parametric bootstrap", rows=True, likelihood=True)
        return _bootstrap.bootstrap(
            self.engine, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress
        )

    def profile(self, which: list[str] | None = None, level_max: float = 0.99) -> pd.DataFrame:
        """The profile likelihood (lme4's ``profile``; linear mixed models): parameter, value
        and ζ from −z to +z for ``level_max``. See :mod:`mixedfx.inference.profile`."""
        self._require("the profile likelihood", rows=True, likelihood=True)
        return Profiler(self.engine).table(which=which, level_max=level_max)

    def confint(
        self,
        parm: list[str] | None = None,
        level: float = 0.95,
        method: str = "profile",
        nsim: int = 1000,
        seed: Any = None,
        n_jobs: int = 1,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Confidence intervals as lme4's ``confint``: ``method`` "profile" (default; linear
        mixed models), "wald" or "boot". Rows ``.sig01``..., ``.sigma`` and the fixed effects;
        columns as R labels them (``2.5 %``, ``97.5 %``)."""
        if not (isinstance(method, str) and method.strip().lower() == "wald"):
            self._require(f"confint(method={method!r})", rows=True, likelihood=True)
        return _confint.confint(
            self.engine,
            parm=parm,
            level=level,
            method=method,
            nsim=nsim,
            seed=seed,
            n_jobs=n_jobs,
            progress=progress,
        )

    # ---------------------------------------------------------- display
    def summary(self, ddf: str = "satterthwaite") -> Any:
        """lme4's summary (with lmerTest's t tests for linear mixed models): criterion,
        scaled residuals, random effects, fixed effects, correlations. ``ddf``:
        "satterthwaite", "kenward-roger" or "lme4" (no df, no p-values); glmer fits print
        Wald tests whatever ``ddf``."""
        self.engine.require_fit()
        return summary.model_summary(self, wald.ddf_name(ddf))

    def plot_ranef(self, level: float = 0.95, ax: Any = None) -> Any:
        """Caterpillar plot of the conditional modes (lme4's ``dotplot(ranef(m, condVar=TRUE))``);
        returns the matplotlib Figure."""
        return plots.plot_ranef(self, level=level, ax=ax)

    def plot_residuals(self, ax: Any = None) -> Any:
        """Residuals vs fitted and normal QQ plots of residuals and conditional modes;
        returns the matplotlib Figure."""
        self._require("the residual plots", rows=True)
        return plots.plot_residuals(self, ax=ax)

    # ------------------------------------------------ what lme4 users reach for next
    # (R² and ICC, rePCA, tidy/glance, HTML display)

    def r2(self, tolerance: float = 1e-5) -> Any:
        """Nakagawa's marginal and conditional R², as ``performance::r2_nakagawa(m)``.

        R²_m = σ²_f / (σ²_f + σ²_r + σ²_e) and R²_c = (σ²_f + σ²_r) / (σ²_f + σ²_r + σ²_e),
        σ²_f the variance of Xβ̂, σ²_r the random effects' (slopes included), σ²_e the
        distribution-specific variance (see :mod:`mixedfx.inference.r2`). Returns an object
        with ``marginal``, ``conditional`` and ``variances``. ``tolerance``: below it a
        variance parameter counts as zero (singular fit: conditional R² NaN)."""
        self._require("R² (the variance of Xβ̂ over the rows)", rows=True)
        return _r2.r2_nakagawa(self.engine, tolerance)

    def icc(self, tolerance: float = 1e-5) -> Any:
        """Intraclass correlation, as ``performance::icc(m)``: ``adjusted`` σ²_r / (σ²_r +
        σ²_e) and ``unadjusted`` σ²_r / (σ²_f + σ²_r + σ²_e)."""
        self._require("the ICC (the variance of Xβ̂ over the rows)", rows=True)
        return _r2.icc(self.engine, tolerance)

    def allfit(self, optimizers: list[str] | None = None) -> pd.DataFrame:
        """The model fitted by every available optimizer, as lme4's ``allFit(m)``: one row per
        optimizer with ``objective``, ``loglik``, the sd/cor parameters, the fixed effects,
        ``feval``, ``seconds`` and ``message``. Agreement across optimizers is lme4's check of
        a doubtful convergence. See :func:`mixedfx.inference.allfit.allfit`."""
        return _allfit.allfit(self.engine, optimizers)

    def repca(self) -> Any:
        """Principal components of each grouping factor's relative covariance factor Λ, as
        lme4's ``rePCA(m)``: per factor ``sdev`` (singular values of Λ, in units of σ),
        ``proportion``, ``cumulative`` and ``rotation``; ``.table`` for all at once."""
        return _repca.repca(self.engine)

    def tidy(
        self,
        effects: str | list[str] | tuple[str, ...] = ("fixed", "ran_pars"),
        conf_int: bool = False,
        conf_level: float = 0.95,
        conf_method: str = "Wald",
        ddf: str = "satterthwaite",
    ) -> pd.DataFrame:
        """One row per parameter, as broom.mixed's ``tidy(m, effects, conf.int, conf.level)``:
        ``effects`` "fixed", "ran_pars", "ran_vals" or a list of them; broom.mixed's columns
        (``effect, group, level, term, estimate, std.error, statistic, df, p.value,
        conf.low, conf.high``). See :func:`mixedfx.report.tidy.tidy`."""
        return _tidy.tidy(
            self,
            effects=effects,
            conf_int=conf_int,
            conf_level=conf_level,
            conf_method=conf_method,
            ddf=ddf,
        )

    def glance(self) -> pd.DataFrame:
        """One row of fit statistics, as broom.mixed's ``glance(m)``: ``nobs, sigma, logLik,
        AIC, BIC, REMLcrit`` (or ``deviance``) ``, df.residual``."""
        return _tidy.glance(self)

    def _repr_html_(self) -> str:
        """The summary as HTML tables, for notebooks."""
        return _html.model_html(self)

    # ------------------------------------------------ marginal means
    # (emmeans)

    def emmeans(
        self,
        specs: Any,
        ddf: str | None = None,
        by: Any = None,
        at: dict[str, Any] | None = None,
        level: float = 0.95,
        type: str = "link",
    ) -> Any:
        """Estimated marginal means over the reference grid, as R's ``emmeans``.

        Factors at all their levels, numeric covariates at their means (``at`` overrides),
        means of ``specs`` averaged over the other factors with equal weights; see
        :mod:`mixedfx.inference.emmeans`. ``e.table`` holds the means, ``e.pairs()`` and
        ``e.contrast()`` their contrasts.

        Parameters
        ----------
        specs : str or list of str
            ``"Machine"``, ``["A", "B"]``, ``"A * B"``, or ``"~ A | B"``.
        ddf : {"kenward-roger", "satterthwaite", "asymptotic"}, optional
            Linear mixed models; default Kenward–Roger (REML fits up to 3000 rows), else
            Satterthwaite. Generalized models are asymptotic (z).
        by : str or list of str, optional
            Means and contrasts within each combination of these variables.
        at : dict, optional
            Covariate values (instead of means) or factor levels to use.
        level : float, default 0.95
            Confidence level.
        type : {"link", "response"}
            glmer: link scale (default) or back-transformed (delta method).
        """
        self.engine.require_fit()
        result = _emmeans.emmeans(self.engine, specs, by=by, at=at, ddf=ddf, level=level, type=type)
        return _emmeans_report.EmmeansResult(result)
