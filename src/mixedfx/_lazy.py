"""Modules imported on first use, so that ``import mixedfx`` (and the command line's start-up)
does not pay for them: ``scipy.stats`` alone costs about a third of a second."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "formulaic", "narwhals", "stats"]


class LazyModule:
    """Stands for a module; imports it when an attribute is first read."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


stats = LazyModule("scipy.stats")
formulaic = LazyModule("formulaic")
narwhals = LazyModule("narwhals.stable.v2")
