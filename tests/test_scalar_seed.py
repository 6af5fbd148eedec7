"""scalar_from_start: stage 1's search over a single θ (a GLMM's seed for stage 2), a bracket
grown from the start and Brent's method, on criteria whose minimum is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixedfx.linalg.optimizer import bobyqa, scalar_from_start


def _tol(x: float, xtol: float) -> float:
    # Brent's bracket ends within 2·tol₁ of its best point, tol₁ = √ε|x| + xtol/3
    return 4.0 * (math.sqrt(2.2e-16) * abs(x) + xtol / 3.0)


@pytest.mark.parametrize("m", [0.02, 0.3, 0.64, 1.0, 1.3, 5.0, 100.0, 1e4])
@pytest.mark.parametrize("xtol", [1e-4, 1e-8])
def test_minimum_found_from_the_start(m, xtol):
    def f(x):
        return (math.sqrt(x[0]) - math.sqrt(m)) ** 2 + 0.1 * math.log1p(x[0])

    # f' = 0 at sqrt(x) = sqrt(m) - 0.1 sqrt(x) / (1 + x): by bisection on f'
    def fp(x):
        return (math.sqrt(x) - math.sqrt(m)) / math.sqrt(x) + 0.1 / (1.0 + x)

    a, b = 1e-12, 2.0 * m + 1.0
    for _ in range(200):
        c = 0.5 * (a + b)
        a, b = (c, b) if fp(c) < 0.0 else (a, c)
    xstar = 0.5 * (a + b)
    r = scalar_from_start(f, np.array([1.0]), np.array([0.0]), xtol)
    assert abs(r.x[0] - xstar) <= _tol(xstar, xtol)
    assert r.fun == f(r.x)
    if 0.3 <= m <= 1.3 and xtol == 1e-4:  # near the start: far fewer values than from [0, 16]
        old = bobyqa(f, np.array([1.0]), np.array([0.0]), xtol_abs=xtol)
        assert r.nfev < 0.7 * old.nfev


@pytest.mark.parametrize("x0", [0.0, 0.5, 1.0, 40.0])
def test_the_bound_is_returned_exactly(x0):
    """A criterion rising from the bound (a singular fit): the bound itself, from any start."""
    r = scalar_from_start(lambda x: (x[0] + 1.0) ** 2, np.array([x0]), np.array([0.0]))
    assert r.x[0] == 0.0
    assert r.fun == 1.0


def test_non_finite_values_are_avoided():
    """PIRLS failing beyond a θ (+inf): the minimum below it is found, from either side."""

    def f(x):
        return math.inf if x[0] > 1.1 else (x[0] - 0.5) ** 2

    for x0 in (0.2, 1.0):
        r = scalar_from_start(f, np.array([x0]), np.array([0.0]))
        assert abs(r.x[0] - 0.5) <= _tol(0.5, 1e-4)


def test_unbounded_parameter():
    r = scalar_from_start(lambda x: (x[0] + 3.0) ** 2, np.array([1.0]), np.array([-np.inf]))
    assert abs(r.x[0] + 3.0) <= _tol(3.0, 1e-4)


def test_minimum_beyond_the_growth_of_the_bracket():
    """A criterion decreasing to very large θ: the bracket stops growing near 1e15."""
    r = scalar_from_start(lambda x: 1.0 / (1.0 + x[0]), np.array([1.0]), np.array([0.0]))
    assert r.x[0] > 1e14
    assert r.nfev < 200
