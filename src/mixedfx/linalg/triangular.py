"""Inverses and solves with triangular factors, safe for small matrices on busy machines.

scipy's ``solve_triangular`` with a matrix right-hand side calls OpenBLAS's ``dtrsm``, which
hands even a 4 x 4 problem to its thread pool; on a machine whose cores are busy, waking
the parked threads costs a scheduler quantum, measured here at 2-18 ms for a 4 x 4 inverse
(against microseconds on an idle machine). Below :data:`SMALL` rows the inverse is taken by
numpy's LU (``np.linalg.inv``: no pivoting happens on a triangular matrix, so it is
back-substitution to rounding) and the products by numpy; larger problems go to scipy.

The small inverse zeroes the other triangle by a cached index (``np.triu``/``np.tril`` build
their mask every call): the same numbers for a few µs less, which counts where a small model's
fit takes a millisecond.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.linalg as sla

__all__ = ["SMALL", "lower_triangle", "triangular_inverse", "triangular_solve"]

SMALL = 64
"""Problems with fewer rows than this avoid scipy's threaded triangular solve."""


def triangular_inverse(T: np.ndarray, lower: bool) -> np.ndarray:
    """T⁻¹ of a square triangular T (lower or upper)."""
    n = T.shape[0]
    if n == 0:
        return np.zeros((0, 0))
    if n < SMALL:
        inv = np.linalg.inv(T)
        inv[_other_triangle(n, lower)] = 0.0  # as np.tril / np.triu: +0.0 there
        return inv
    return sla.solve_triangular(T, np.eye(n), lower=lower, check_finite=False)


def lower_triangle(M: np.ndarray) -> np.ndarray:
    """``np.tril(M)`` of a square 2-d M (a new C-ordered array, +0.0 above the diagonal),
    by a cached index rather than tril's mask made every call."""
    out = np.array(M, order="C")
    out[_other_triangle(M.shape[0], True)] = 0.0
    return out


@cache
def _other_triangle(n: int, lower: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the strictly upper (``lower``) or strictly lower triangle of n x n."""
    return np.triu_indices(n, 1) if lower else np.tril_indices(n, -1)


def triangular_solve(T: np.ndarray, B: np.ndarray, lower: bool) -> np.ndarray:
    """T⁻¹ B for a square triangular T and a matrix B."""
    if T.shape[0] < SMALL:
        return triangular_inverse(T, lower) @ B
    return sla.solve_triangular(T, B, lower=lower, check_finite=False)
