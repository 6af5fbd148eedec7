"""mixedfx: linear and generalized linear mixed-effects models with lme4's formula language.

>>> import mixedfx as mfx
>>> m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
>>> print(m.summary())  # doctest: +SKIP
"""

from __future__ import annotations

from . import datasets, families
from ._version import __version__
from .errors import (
    ApproximateFitWarning,
    ColumnNotFoundError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    MissingValuesWarning,
    MixedFXError,
    MixedFXWarning,
    ModelError,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .frame.formula import parse_formula
from .models.anova import anova
from .models.glmer import GeneralizedLinearMixedModel, glmer
from .models.glmer_nb import NegativeBinomialMixedModel, glmer_nb
from .models.lmer import LinearMixedModel, lmer
from .models.lmlist import LmList, lmlist
from .models.ols import OLSModel, ols
from .report.tables import AnovaResult
from .workflows.compare import ControlComparison, compare_controls
from .workflows.power import PowerResult, power

__all__ = [
    "AnovaResult",
    "ApproximateFitWarning",
    "ColumnNotFoundError",
    "ControlComparison",
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "FormulaError",
    "GeneralizedLinearMixedModel",
    "LinearMixedModel",
    "LmList",
    "MissingValuesWarning",
    "MixedFXError",
    "MixedFXWarning",
    "ModelError",
    "NegativeBinomialMixedModel",
    "OLSModel",
    "PowerResult",
    "RankDeficiencyWarning",
    "SingularFitWarning",
    "__version__",
    "anova",
    "compare_controls",
    "datasets",
    "families",
    "glmer",
    "glmer_nb",
    "lmer",
    "lmlist",
    "ols",
    "parse_formula",
    "power",
]
