"""Holding BLAS/LAPACK (and OpenMP) to one thread, cheaply.

``threadpoolctl.threadpool_limits`` scans the process's loaded libraries on every call
(0.6-3 ms measured here): more than a whole small fit. One :class:`ThreadpoolController`,
made at first use (numpy, scipy and numba are loaded by then), serves every later limit for
~20 µs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_thread"]


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def one_thread(user_api: str | None = None) -> AbstractContextManager[Any]:
    """A context in which the thread pools of ``user_api`` ("blas", "openmp"; all when
    None) use one thread."""
    return _controller().limit(limits=1, user_api=user_api)
