"""The generalized engine over rows on Dask: lme4's two stages, PIRLS by map-reduce passes.

Everything but PIRLS is :class:`~mixedfx.engines.generalized.GeneralizedEngine`'s (the two
BOBYQA stages, the whitened β of stage 2, the Laplace criterion, the Hessian for standard
errors); PIRLS is :class:`~mixedfx.glm.dask_pirls.DaskPIRLS`, one pass over the persisted
partitions per iteration (and per step halving). ``passes`` reports how many.

Families without a dispersion parameter (binomial, Poisson): their Laplace criterion needs
only the deviance and the saturated log-likelihood, both sums over the rows. Quadrature
(nAGQ > 1) needs each level's rows again at every node and is not offered on Dask.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError
from ..frame.dask_frame import DaskDesign
from ..frame.design import Design
from ..glm.dask_pirls import DaskPIRLS
from ..glm.families import Family
from .base import Engine
from .generalized import GeneralizedEngine, family_response

__all__ = ["DaskGeneralizedEngine"]


class DaskGeneralizedEngine(GeneralizedEngine):
    """A GLMM whose rows are a Dask data frame's partitions (lme4's ``glmerMod``).

    Parameters
    ----------
    design : DaskDesign
    family : Family (without a dispersion parameter)
    nAGQ : int, 0 or 1
    pirls : DaskPIRLS, optional
        Share the persisted partitions of another engine over the same design.
    """

    def __init__(
        self, design: DaskDesign, family: Family, nAGQ: int = 1, pirls: DaskPIRLS | None = None
    ):
        Engine.__init__(self, design)
        nAGQ = int(nAGQ)
        if nAGQ > 1:
            raise ModelError(
                "nAGQ > 1 (adaptive Gauss-Hermite quadrature) revisits every level's rows at "
                "every node, which a Dask data frame does not hold in one place: use nAGQ=1 "
                "(Laplace), or compute() the data and fit in memory"
            )
        if nAGQ < 0:
            raise ModelError(f"nAGQ must be 0 (PIRLS only) or 1 (Laplace) on Dask, got {nAGQ}")
        if family.has_dispersion:
            raise ModelError(
                f"the {family.name} family has a dispersion parameter, estimated from the "
                "Pearson residuals of every row after the fit; on a Dask data frame glmer "
                "offers the binomial and Poisson families: compute() the data to fit this one"
            )
        self.family = family
        self.nAGQ = nAGQ
        self._ghq = None
        empty = np.zeros(0)
        self._y, self._wt, self.ntrials = empty, empty, empty
        self._offset = empty
        self.pirls = pirls if pirls is not None else DaskPIRLS(design, family, family_response)
        self._aic_const = self.pirls.aic_const
        self.stage1 = None
        self._Rx1 = np.eye(design.fixed.p)
        self._Rx1_inv = self._Rx1
        self._beta1 = None
        self.pirls_result = None

    @property
    def passes(self) -> int:
        """Map-reduce passes over the rows so far (persisting the partitions is the first)."""
        return self.pirls.passes

    def derive(
        self,
        *,
        y: np.ndarray | None = None,
        design: Design | None = None,
        REML: bool | None = None,
    ) -> DaskGeneralizedEngine:
        if REML:
            raise ModelError(
                "REML is not defined for generalized linear mixed models: glmer fits maximize "
                "the (Laplace or quadrature) likelihood"
            )
        if y is not None or (design is not None and design is not self.design):
            raise ModelError(
                "a model fitted to a Dask data frame is refitted from its data: update() with "
                "new data or a new formula, not a new response"
            )
        return DaskGeneralizedEngine(self.design, self.family, self.nAGQ, pirls=self.pirls)

    def refitter(self) -> Callable[[np.ndarray], GeneralizedEngine]:
        raise ModelError(
            "the parametric bootstrap simulates and refits every row many times; for a model "
            "fitted to a Dask data frame use confint(method='wald')"
        )

    def _check_separation(self) -> None:
        """R's "fitted probabilities numerically 0 or 1 occurred", counted in one pass."""
        fam = self.family
        if fam.name not in ("binomial", "poisson"):
            return
        k = self.pirls.count_extreme(self._theta, self._beta, self._u)
        if k:
            what = (
                "probabilities numerically 0 or 1"
                if fam.name == "binomial"
                else ("rates numerically 0")
            )
            msg = f"fitted {what} occurred ({k} rows)"
            self.convergence_messages.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)

    def restart(self) -> dict[str, Any]:
        return {"theta": self.theta, "fixef": None}
