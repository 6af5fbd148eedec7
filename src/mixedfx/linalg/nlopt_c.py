"""BOBYQA through nlopt's C interface, for an objective compiled to a C callback.

:func:`mixedfx.linalg.optimizer.bobyqa` goes through nlopt's Python module: every evaluation
is a call from C into Python and back (~3 µs, on top of the criterion's own 2-5 µs for a small
model). Here the objective is a numba ``cfunc`` (``nlopt_func``: ``double f(unsigned n, const
double *x, double *grad, void *data)``), so nlopt's C code calls compiled code directly and the
whole minimization is one call. It is the same algorithm with the same settings: from the same
objective values it takes the same steps and returns the same answer.

nlopt's Python extension module exports the C interface (``nlopt_create``,
``nlopt_optimize``, ...); where it does not (another build of nlopt), :func:`available` is
False and callers keep the Python route.

Some builds of the extension module are compiled without optimization (the wheel of nlopt
2.11 is: its BOBYQA keeps every loop counter in memory, ~7 µs of BOBYQA's own arithmetic per
evaluation for five parameters, more than a small GLMM's criterion). The system's shared
nlopt library (``libnlopt``, R's nloptr links it) is then used instead when it takes exactly
the module's steps: both run the same check problems (bounds, an active bound, initial steps,
the stopping tolerances) and the system library is used only if every evaluated point, value
and status agree bit for bit. ``MIXEDFX_SYSTEM_NLOPT=0`` in the environment keeps the
module's library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
from functools import cache
from typing import Any

import nlopt
import numpy as np

__all__ = ["available", "bobyqa_best", "bobyqa_c"]

_LN_BOBYQA = 34  # nlopt_algorithm NLOPT_LN_BOBYQA
_STATUS = {
    1: "success",
    2: "stopval reached",
    3: "ftol reached",
    4: "xtol reached",
    5: "maximum number of evaluations reached",
    6: "maximum time reached",
    -4: "roundoff limited",
}

_dp = ctypes.POINTER(ctypes.c_double)


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Set the signatures of the C functions used here (AttributeError where one is
    missing)."""
    vp, d, i, u = ctypes.c_void_p, ctypes.c_double, ctypes.c_int, ctypes.c_uint
    sigs = {
        "nlopt_create": (vp, [i, u]),
        "nlopt_destroy": (None, [vp]),
        "nlopt_set_min_objective": (i, [vp, vp, vp]),
        "nlopt_set_lower_bounds": (i, [vp, vp]),
        "nlopt_set_upper_bounds": (i, [vp, vp]),
        "nlopt_set_ftol_abs": (i, [vp, d]),
        "nlopt_set_ftol_rel": (i, [vp, d]),
        "nlopt_set_xtol_abs1": (i, [vp, d]),
        "nlopt_set_maxeval": (i, [vp, i]),
        "nlopt_set_initial_step": (i, [vp, vp]),
        "nlopt_optimize": (i, [vp, vp, _dp]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_uint, _dp, _dp, ctypes.c_void_p)


def _check_value(x: list[float]) -> float:
    """The check problems' objective: a quadratic valley with a sine ripple and a quartic,
    whose minimum lies below the last coordinate's lower bound."""
    s = 0.0
    for i, xi in enumerate(x):
        s += (i + 1.0) * (xi - 0.3 * i) ** 2 + 0.1 * xi * x[0] + 0.05 * math.sin(3.0 * xi)
    return s + (x[-1] + 1.0) ** 4


def _trace(lib: ctypes.CDLL, nx: int) -> list[tuple[float, ...]]:
    """Every point BOBYQA evaluates on the check problem in ``nx`` parameters (the values
    with them), then (status, f, x): what two builds must agree on to take the same steps."""
    seen: list[tuple[float, ...]] = []

    def f(n: int, x: Any, grad: Any, data: Any) -> float:
        pt = [x[i] for i in range(n)]
        v = _check_value(pt)
        seen.append((*pt, v))
        return v

    cb = _CALLBACK(f)
    buf = np.empty((4, nx))
    buf[0] = np.linspace(1.0, 0.6, nx)
    buf[1] = -np.inf
    buf[1, 0] = 0.0
    buf[1, -1] = 0.5  # active at the minimum
    buf[2] = np.inf
    buf[3] = np.linspace(0.05, 1.0, nx)
    base, row = _ptr(buf), 8 * nx
    opt = lib.nlopt_create(_LN_BOBYQA, nx)
    if not opt:
        return []
    try:
        lib.nlopt_set_min_objective(opt, ctypes.cast(cb, ctypes.c_void_p), None)
        lib.nlopt_set_lower_bounds(opt, base + row)
        lib.nlopt_set_upper_bounds(opt, base + 2 * row)
        lib.nlopt_set_ftol_abs(opt, 1e-8)
        lib.nlopt_set_ftol_rel(opt, 1e-12)
        lib.nlopt_set_xtol_abs1(opt, 1e-8)
        lib.nlopt_set_maxeval(opt, 500)
        lib.nlopt_set_initial_step(opt, base + 3 * row)
        fval = ctypes.c_double(math.inf)
        code = lib.nlopt_optimize(opt, base, ctypes.byref(fval))
    finally:
        lib.nlopt_destroy(opt)
    return [*seen, (float(code), fval.value, *buf[0].tolist())]


def _same_steps(lib: ctypes.CDLL, ref: ctypes.CDLL) -> bool:
    """Whether ``lib``'s BOBYQA evaluates exactly the points ``ref``'s does (and stops the
    same) on the check problems in 2 and 5 parameters."""
    for nx in (2, 5):
        mine, theirs = _trace(lib, nx), _trace(ref, nx)
        if len(mine) < 20 or mine != theirs:
            return False
    return True


_SYSTEM_NAMES = ("libnlopt.so.0", "libnlopt.so", "libnlopt.0.dylib", "libnlopt.dylib")


def _system_library(module: ctypes.CDLL) -> ctypes.CDLL | None:
    """The system's nlopt library when it takes exactly the module's steps (see the module's
    docstring), else None."""
    if os.environ.get("MIXEDFX_SYSTEM_NLOPT", "1") == "0":
        return None
    lib = None
    for name in _SYSTEM_NAMES:  # the loader's own search first: no ldconfig subprocess
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    try:
        if lib is None:
            path = ctypes.util.find_library("nlopt")
            if path is None:
                return None
            lib = ctypes.CDLL(path)
        lib = _configure(lib)
        return lib if _same_steps(lib, module) else None
    except (OSError, AttributeError, TypeError, ValueError):
        return None


@cache
def _library() -> ctypes.CDLL | None:
    """nlopt's C interface with the signatures set: the system library where it takes the
    module's steps, else the Python extension module's; None where the module does not
    export it."""
    try:
        if int(nlopt.LN_BOBYQA) != _LN_BOBYQA:
            return None
        module = _configure(ctypes.CDLL(nlopt._nlopt.__file__))
    except (OSError, AttributeError, TypeError, ValueError):
        return None
    system = _system_library(module)
    return module if system is None else system


def available() -> bool:
    """Whether nlopt's C interface can be called (see the module's docstring)."""
    return _library() is not None


def _ptr(a: np.ndarray) -> int:
    """The address of a C-contiguous float64 array's data (``a.ctypes`` costs ~2 µs)."""
    assert a.dtype == np.float64 and a.flags.c_contiguous
    return int(a.__array_interface__["data"][0])


def bobyqa_c(
    address: int,
    data: int,
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    ftol_abs: float = 1e-8,
    ftol_rel: float = 1e-12,
    xtol_abs: float = 1e-8,
    maxeval: int = 100_000,
    initial_step: np.ndarray | None = None,
) -> tuple[np.ndarray, float, str]:
    """Minimize the compiled objective at ``address`` (an ``nlopt_func``, called with
    ``data``) from ``x0`` above ``lower`` by nlopt's BOBYQA, with the options of
    :func:`mixedfx.linalg.optimizer.bobyqa`. Returns (x, f(x), status); at "roundoff
    limited" x is the best point nlopt had. Needs two parameters or more (BOBYQA's own
    limit) and :func:`available`."""
    lib = _library()
    if lib is None:
        raise RuntimeError("nlopt's C interface is not available")
    x0 = np.asarray(x0, dtype=float).reshape(-1)
    nx = x0.size
    if nx < 2:
        raise ValueError("BOBYQA needs at least two parameters")
    # x, the lower and upper bounds and the initial step in one buffer: one address to read
    buf = np.empty((4, nx))
    buf[0] = x0
    buf[1] = lower
    buf[2] = np.inf
    if initial_step is not None:
        buf[3] = initial_step
    base = _ptr(buf)
    row = 8 * nx  # bytes per row
    opt = lib.nlopt_create(_LN_BOBYQA, nx)
    if not opt:
        raise MemoryError("nlopt could not create an optimizer")
    try:
        lib.nlopt_set_min_objective(opt, address, data)
        lib.nlopt_set_lower_bounds(opt, base + row)
        lib.nlopt_set_upper_bounds(opt, base + 2 * row)
        lib.nlopt_set_ftol_abs(opt, ftol_abs)
        lib.nlopt_set_ftol_rel(opt, ftol_rel)
        lib.nlopt_set_xtol_abs1(opt, xtol_abs)
        lib.nlopt_set_maxeval(opt, maxeval)
        if initial_step is not None:
            lib.nlopt_set_initial_step(opt, base + 3 * row)
        fval = ctypes.c_double(math.inf)
        code = lib.nlopt_optimize(opt, base, ctypes.byref(fval))
    finally:
        lib.nlopt_destroy(opt)
    if code < 0 and code != -4:
        raise RuntimeError(f"nlopt failed (code {code})")
    return buf[0].copy(), float(fval.value), _STATUS.get(code, str(code))


def bobyqa_best(
    address: int,
    hdr: np.ndarray,
    state: np.ndarray,
    best: int,
    x0: np.ndarray,
    lower: np.ndarray,
    **options: Any,
) -> tuple[np.ndarray, float, str]:
    """:func:`bobyqa_c` on a compiled objective that records the best point it saw in
    ``state`` (its value at ``state[best]``, the point after it; the header ``hdr`` is the
    callback's data): nlopt's answer, or that best point where nlopt's is worse (as
    :func:`mixedfx.linalg.optimizer.bobyqa` does through Python)."""
    state[best] = math.inf
    x, fval, status = bobyqa_c(address, hdr.ctypes.data, x0, lower, **options)
    if state[best] < fval:
        x, fval = state[best + 1 : best + 1 + x.size].copy(), float(state[best])
    return x, fval, status
