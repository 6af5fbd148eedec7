"""Probe.at (the convergence check's central differences) on Python floats: the points, steps
and coordinates numpy's vectorized construction gives, to the last bit."""

from __future__ import annotations

import numpy as np
import pytest

from mixedfx.linalg.optimizer import Probe


def _numpy_points(x, lower, boundary_tol=1e-5, h=1e-4):
    free = ~((x - lower) < boundary_tol)
    idx = np.flatnonzero(free)
    steps = np.minimum(h, (x[idx] - lower[idx]) / 2.0)
    k = idx.size
    pts = np.repeat(x[None, :], 2 * k, axis=0)
    pts[np.arange(k), idx] += steps
    pts[k + np.arange(k), idx] -= steps
    return idx, steps, pts


@pytest.mark.parametrize("seed", range(4))
def test_probe_points_are_numpys(seed):
    rng = np.random.default_rng(seed)
    nx = 6
    x = rng.normal(size=nx) * 10.0 ** rng.integers(-6, 2, size=nx)
    lower = np.full(nx, -np.inf)
    lower[:3] = 0.0
    x[:3] = np.abs(x[:3])
    x[0] = 0.0  # on its bound
    x[1] = 3e-6  # within the boundary tolerance
    x[2] = 1.5e-4  # free, its step cut to half the distance
    seen = []

    def many(pts):
        seen.append(pts.copy())
        return pts.sum(axis=1)

    p = Probe.at(lambda v: float(v.sum()), x, lower, f0=1.0, many=many)
    idx, steps, pts = _numpy_points(x, lower)
    np.testing.assert_array_equal(p.idx, idx)
    assert p.idx.dtype == idx.dtype
    np.testing.assert_array_equal(p.steps, steps)
    np.testing.assert_array_equal(seen[0], pts)
    np.testing.assert_array_equal(np.concatenate([p.fp, p.fm]), pts.sum(axis=1))


def test_probe_with_every_coordinate_on_its_bound():
    x = np.zeros(3)
    p = Probe.at(lambda v: 0.0, x, np.zeros(3), f0=0.0)
    assert p.idx.size == 0 and p.steps.size == 0 and p.fp.size == 0
