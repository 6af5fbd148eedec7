"""Exceptions and warnings raised by mixedfx.

Every error a user can provoke with bad input is a subclass of :class:`MixedFXError`
and also of the built-in exception a Python user would expect (``ValueError`` for bad
values and formulas, ``KeyError`` for unknown columns), so ``except ValueError`` works.
"""

from __future__ import annotations


class MixedFXError(Exception):
    """Base class of all mixedfx errors."""


class FormulaError(MixedFXError, ValueError):
    """The model formula cannot be parsed or names an unusable term."""

    def __init__(self, message: str, formula: str | None = None, position: int | None = None):
        self.formula = formula
        self.position = position
        if formula is not None and position is not None:
            message = f"{message}\n    {formula}\n    {' ' * position}^"
        super().__init__(message)


class ColumnNotFoundError(MixedFXError, KeyError):
    """A column named in the formula (or as weights/offset) is not in the data."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message plainly
        return str(self.args[0]) if self.args else ""


class DataError(MixedFXError, ValueError):
    """The data cannot be used for this model (non-numeric response, infinite values, ...)."""


class ModelError(MixedFXError, ValueError):
    """The model is not identifiable or not estimable with these data (lme4's checks)."""


class MixedFXWarning(UserWarning):
    """Base class of mixedfx warnings."""


class ConvergenceWarning(MixedFXWarning):
    """The optimizer's result failed a convergence check."""


class RankDeficiencyWarning(MixedFXWarning):
    """Fixed-effects columns were dropped because the model matrix is rank deficient."""


class MissingValuesWarning(MixedFXWarning):
    """Rows with missing values were dropped before fitting."""


class SingularFitWarning(MixedFXWarning):
    """The fit is singular: a variance is (near) zero or a correlation is (near) +-1."""


class DataWarning(MixedFXWarning):
    """The data are usable but not what the model expects (lme4 warns too): e.g. binomial
    proportions without the number of trials as weights."""


class ApproximateFitWarning(MixedFXWarning):
    """The model was fitted by an approximate method (``method="auto"`` chose the method of
    moments because the exact fit would not fit in memory or time)."""
