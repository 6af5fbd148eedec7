"""What a linear mixed model fitted by the method of moments offers (approximate, labelled).

The engine (:mod:`mixedfx.engines.moments`) has estimates, standard errors of the fixed effects
(GLS) and of the variance components (bootstrap) and conditional modes, but no likelihood: the
members that need one (REML criterion, logLik, AIC, BIC, Satterthwaite and Kenward–Roger df,
F tests, profiles, likelihood-ratio tests, the parametric bootstrap of the fit) are NaN or
refused with a message. The fixed effects are tested by Wald z tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._lazy import stats
from ..report.approximate import ApproximateSummary

__all__ = ["Approximate"]


class Approximate:
    """Members of :class:`~mixedfx.LinearMixedModel` for fits by the method of moments
    (mixed in first)."""

    engine: Any

    @property
    def approximate(self) -> bool:
        """True: the estimates are the method of moments' (see :attr:`method`)."""
        return True

    @property
    def coefficients(self) -> pd.DataFrame:
        """Fixed effects: GLS estimate, standard error (X'V̂⁻¹X)^{-1/2}, Wald z and its
        normal p-value."""
        e = self.engine
        e.require_fit()
        beta = e.beta
        var = np.diag(e.sigma**2 * e.vcov_unscaled)
        se = np.where(var > 0, np.sqrt(np.where(var > 0, var, 1.0)), np.nan)
        z = beta / se
        return pd.DataFrame(
            {"estimate": beta, "std_error": se, "statistic": z,
             "p_value": 2.0 * stats.norm.sf(np.abs(z))},
            index=pd.Index(e.design.fixed.names, name="term"),
        )  # fmt: skip

    @property
    def variance_components(self) -> pd.DataFrame:
        """Variances of each grouping factor's intercepts and of the residual, with their
        (bootstrap) standard errors."""
        return self.engine.variance_components()

    def summary(self, ddf: Any = None, scaled_residuals: Any = None) -> ApproximateSummary:
        """The summary, labelled approximate (``ddf`` does not apply: z tests)."""
        self.engine.require_fit()
        return ApproximateSummary(self, scaled_residuals=scaled_residuals)

    def confint(self, parm: Any = None, level: float = 0.95, method: str = "wald",
                *args: Any, **kwargs: Any) -> pd.DataFrame:  # fmt: skip
        """Wald intervals of the fixed effects (the only ones defined)."""
        if str(method).lower() != "wald":
            self._require(f"confint(method={method!r})", likelihood=True)
        coef = self.coefficients
        z = float(stats.norm.ppf(0.5 + level / 2))
        lo = coef["estimate"] - z * coef["std_error"]
        hi = coef["estimate"] + z * coef["std_error"]
        a = (1 - level) / 2
        out = pd.DataFrame({f"{100 * a:g} %": lo, f"{100 * (1 - a):g} %": hi})
        return out.loc[parm] if parm is not None else out
