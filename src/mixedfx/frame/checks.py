"""Checks of the arguments of the public functions: type, range and length, each failing with a
:class:`~mixedfx.errors.DataError` that names the argument, the value given and what is
expected. Every public entry point (``lmer``, ``glmer``, ``ols``, the methods of a fitted model,
``anova``, ``compare_controls``, ``power``) reads its arguments through these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError, ModelError

__all__ = [
    "check_bool",
    "check_choice",
    "check_finite_fit",
    "check_int",
    "check_level",
    "check_names",
    "check_number",
    "check_response_varies",
    "check_seed",
    "check_start",
    "check_vector",
]


def _shown(value: Any) -> str:
    """A value for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a bool; True, False (or numpy's) only."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise DataError(f"{name} must be True or False, got {_shown(value)}")


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; whole floats (``1000.0``) are accepted, booleans,
    NaN, infinities and strings are not."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not ok and isinstance(value, float | np.floating) and math.isfinite(value):
        ok = float(value).is_integer()
    if not ok:
        raise DataError(f"{name} must be a whole number, got {_shown(value)}")
    k = int(value)
    if low is not None and k < low:
        raise DataError(f"{name} must be at least {low}, got {k}")
    if high is not None and k > high:
        raise DataError(f"{name} must be at most {high}, got {k}")
    return k


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (open or closed
    at each end)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise DataError(f"{name} must be a number, got {_shown(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise DataError(f"{name} must be a finite number, got {x}")
    too_low = low is not None and (x <= low if open_low else x < low)
    too_high = high is not None and (x >= high if open_high else x > high)
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        left = "(" if open_low or low is None else "["
        right = ")" if open_high or high is None else "]"
        raise DataError(f"{name} must be in {left}{lo}, {hi}{right}, got {x:g}")
    return x


def check_level(value: Any, name: str = "level") -> float:
    """A confidence level strictly between 0 and 1."""
    return check_number(value, name, 0.0, 1.0, open_low=True, open_high=True)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` as one of ``choices`` (case and surrounding spaces ignored)."""
    if isinstance(value, str):
        key = value.strip().lower()
        for c in choices:
            if c.lower() == key:
                return c
    shown = ", ".join(repr(c) for c in choices)
    raise DataError(f"{name} must be one of {shown}; got {_shown(value)}")


def check_names(value: Any, name: str, allowed: Sequence[str], what: str = "name") -> list[str]:
    """A name or a list of names, each one of ``allowed`` (``what``: what a name is, for the
    message)."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise DataError(f"{name} must be a name or a list of names, got {_shown(value)}")
    out = list(items)
    if not out:
        raise DataError(f"{name} is empty: give at least one of {', '.join(allowed)}")
    for item in out:
        if not isinstance(item, str):
            raise DataError(f"{name} must hold names (strings), got {_shown(item)}")
        if item not in allowed:
            raise DataError(f"{name}: unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return out


def check_seed(seed: Any, name: str = "seed") -> Any:
    """A seed for ``numpy.random.default_rng``: None, a non-negative whole number, a
    SeedSequence, a BitGenerator or a Generator."""
    if seed is None or isinstance(
        seed, np.random.Generator | np.random.SeedSequence | np.random.BitGenerator
    ):
        return seed
    return check_int(seed, name, low=0)


def check_vector(value: Any, name: str, n: int | None = None, *, finite: bool = True) -> np.ndarray:
    """``value`` as a one-dimensional float array (of length ``n``), every value finite."""
    if isinstance(value, str | bytes | Mapping) or np.ndim(value) == 0:
        raise DataError(f"{name} must be an array of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be an array of numbers, got {_shown(value)}") from None
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got an array of shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        k = arr.shape[0]
        raise DataError(f"{name} has {k} value{'' if k == 1 else 's'}; the model needs {n}")
    if finite and not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(
            f"{name} has a missing or infinite value ({arr[i]} at position {i + 1}); "
            "every value must be a finite number"
        )
    return arr


def check_start(start: Any, ntheta: int, p: int, *, fixef: bool) -> Any:
    """A ``start`` for a fit: None, θ (``ntheta`` finite values), or a dict with ``"theta"``
    (and, for GLMMs, ``"fixef"``: ``p`` values). Returns θ as an array for linear models (a
    dict with theta only is lme4's ``start = list(theta = ...)``) and the dict, checked, for
    GLMMs."""
    if start is None:
        return None
    allowed = ("theta", "fixef") if fixef else ("theta",)
    if isinstance(start, Mapping):
        unknown = [k for k in start if k not in allowed]
        if unknown:
            raise DataError(
                f"start has an entry {unknown[0]!r}; a start may give "
                + " and ".join(repr(a) for a in allowed)
            )
        theta = start.get("theta")
        theta = None if theta is None else check_vector(theta, "start['theta']", ntheta)
        if not fixef:
            return theta
        beta = start.get("fixef")
        beta = None if beta is None else check_vector(beta, "start['fixef']", p)
        return {"theta": theta, "fixef": beta} if theta is not None else {"fixef": beta}
    theta = check_vector(start, "start (θ in lme4's order)", ntheta)
    return theta


def check_response_varies(y: np.ndarray, name: str) -> None:
    """lme4's "Response is constant": a response that takes one value only gives no
    information about any variance (nor, for GLMMs, about the fixed effects)."""
    if y.size > 1 and y.flat[0] != y.flat[1]:  # two values differ (the usual answer)
        return
    if y.size and np.all(y == y.flat[0]):
        raise ModelError(
            f"response {name!r} is constant (every value is {y.flat[0]:g}): a mixed model "
            "cannot be fitted to it (lme4: 'Response is constant')"
        )


def check_finite_fit(engine: Any, name: str) -> None:
    """A fitted engine's σ̂, θ̂ and β̂ are finite, or a ModelError: a response that the model's
    columns reproduce exactly (a perfect fit) leaves no variance to estimate."""
    values = [
        float(engine.sigma),
        *np.asarray(engine.theta).ravel().tolist(),
        *np.asarray(engine.beta).ravel().tolist(),
    ]
    if not all(map(math.isfinite, values)):
        raise ModelError(
            f"the fit to {name!r} is degenerate (its estimates are not finite): the response is "
            "an exact function of the model's columns (a perfect fit), so no variance can be "
            "estimated; check that no predictor repeats the response"
        )
