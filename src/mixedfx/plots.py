"""Plots of fitted models (public name of :mod:`mixedfx.report.plots`; matplotlib is optional)."""

from .report.plots import *  # noqa: F403
from .report.plots import __all__  # noqa: F401
