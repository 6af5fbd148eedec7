"""mixedfx: linear and generalized linear mixed-effects models with lme4's formula language.

>>> import mixedfx as mfx
>>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
>>> print(m.summary())  # doctest: +SKIP
"""

from __future__ import annotations

from . import datasets, families
from .compare import ControlComparison, compare_controls
from .errors import (
    ColumnNotFoundError,
    ConvergenceWarning,
    DataError,
    FormulaError,
    MissingValuesWarning,
    MixedFXError,
    MixedFXWarning,
    ModelError,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .formula import parse_formula
from .glmm import GeneralizedLinearMixedModel, glmer
from .lmm import LinearMixedModel, lmer
from .ols import OLSModel, ols
from .power import PowerResult, power

__version__ = "0.1.0"

__all__ = [
    "ColumnNotFoundError",
    "ControlComparison",
    "ConvergenceWarning",
    "DataError",
    "GeneralizedLinearMixedModel",
    "FormulaError",
    "LinearMixedModel",
    "MissingValuesWarning",
    "MixedFXError",
    "MixedFXWarning",
    "ModelError",
    "OLSModel",
    "PowerResult",
    "RankDeficiencyWarning",
    "SingularFitWarning",
    "__version__",
    "compare_controls",
    "datasets",
    "families",
    "glmer",
    "lmer",
    "ols",
    "parse_formula",
    "power",
]
