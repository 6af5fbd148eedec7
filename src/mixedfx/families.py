"""Exponential families for :func:`mixedfx.glmer` (public name of :mod:`mixedfx.glm.families`)."""

from .glm.families import *  # noqa: F403
from .glm.families import __all__  # noqa: F401
