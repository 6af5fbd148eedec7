"""nlopt's C interface (:mod:`mixedfx.linalg.nlopt_c`): the library it calls takes exactly the
steps of nlopt's Python module."""

from __future__ import annotations

import ctypes

import nlopt
import numpy as np
import pytest

from mixedfx.linalg import nlopt_c
from mixedfx.linalg.optimizer import bobyqa


def _module_library() -> ctypes.CDLL:
    return nlopt_c._configure(ctypes.CDLL(nlopt._nlopt.__file__))


@pytest.mark.skipif(not nlopt_c.available(), reason="nlopt's C interface is not exported")
def test_chosen_library_takes_the_modules_steps():
    """Whichever library is used (the system's or the module's), its BOBYQA evaluates the
    same points as the module's on the check problems."""
    lib, module = nlopt_c._library(), _module_library()
    assert lib is not None
    for nx in (2, 3, 5):
        trace = nlopt_c._trace(lib, nx)
        assert len(trace) > 20
        assert trace == nlopt_c._trace(module, nx)


@pytest.mark.skipif(not nlopt_c.available(), reason="nlopt's C interface is not exported")
def test_check_trace_is_the_python_modules():
    """The check problem through the C interface is the module's bobyqa through Python: the
    same evaluations and answer."""
    lib = nlopt_c._library()
    assert lib is not None
    nx = 4
    trace = nlopt_c._trace(lib, nx)
    seen: list[tuple[float, ...]] = []

    def f(x: np.ndarray) -> float:
        v = nlopt_c._check_value(list(x))
        seen.append((*x.tolist(), v))
        return v

    lower = np.full(nx, -np.inf)
    lower[0], lower[-1] = 0.0, 0.5
    res = bobyqa(f, np.linspace(1.0, 0.6, nx), lower, initial_step=np.linspace(0.05, 1.0, nx))
    assert seen == trace[:-1]
    assert res.fun == trace[-1][1]
    np.testing.assert_array_equal(res.x, trace[-1][2:])


def test_system_library_needs_the_same_steps(monkeypatch):
    """A library whose steps differ from the module's is not used; the environment switch
    keeps the module's library."""
    module = _module_library()
    assert nlopt_c._same_steps(module, module)
    monkeypatch.setattr(nlopt_c, "_trace", lambda lib, nx: [(float(id(lib)),)] * 30)
    assert not nlopt_c._same_steps(module, _module_library())
    monkeypatch.setenv("MIXEDFX_SYSTEM_NLOPT", "0")
    assert nlopt_c._system_library(module) is None
