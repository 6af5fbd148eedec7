"""Starting points for PIRLS: the conditional mode at new parameters, predicted from recent ones.

An optimizer over x (θ, or θ and β) asks for the Laplace criterion at a sequence of points,
each needing the conditional mode m(x) (u, or u and β) by PIRLS. Fisher scoring converges
quadratically from a start within its basin, so a start closer to m(x) saves whole
iterations, each a pass over the observations: from the last mode the start is off by
O(|x − x_last|), from a local linear model of m by O(|x − x_a|²).

The model: with x_a the remembered point nearest to x and d_k = x_k − x_a, Δ_k = m_k − m_a
the other remembered points' offsets, the Jacobian J minimizing Σ_k w_k ‖Δ_k − J d_k‖²
(w_k = 1 / (‖d_k‖² + ‖x − x_a‖²): near points count more) is J = Δ' W D (D' W D)⁺, and

    m(x) ≈ m_a + J (x − x_a).

With fewer points than parameters the pseudo-inverse keeps the prediction within their span
(the component of x − x_a outside it predicts no change). Around a point the optimizer probes
(x ± h e_i, as finite differences do) the prediction is exact to O(h²), and the BOBYQA's
initial design (x₀ ± ρ e_i) gives central differences at x₀ for the steps that follow.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["ModePredictor"]


class ModePredictor:
    """The last few (x, mode) pairs of an optimization, and predictions of the mode from them.

    Parameters
    ----------
    capacity : int
        How many pairs to remember (the oldest is dropped); about 2·dim(x) + 1 lets the
        model see a full central-difference design.
    """

    def __init__(self, capacity: int):
        self.capacity = max(int(capacity), 2)
        self._xs: np.ndarray | None = None
        self._ms: np.ndarray | None = None
        self._k = 0  # pairs held
        self._next = 0  # the ring's slot for the next pair

    def __len__(self) -> int:
        return self._k

    def add(self, x: np.ndarray, mode: np.ndarray) -> None:
        """Remember the mode found at x (both copied)."""
        if self._xs is None or self._ms is None:
            self._xs = np.empty((self.capacity, np.size(x)))
            self._ms = np.empty((self.capacity, np.size(mode)))
        self._xs[self._next] = x
        self._ms[self._next] = mode
        self._next = (self._next + 1) % self.capacity
        self._k = min(self._k + 1, self.capacity)

    def clear(self) -> None:
        """Forget every pair (after a failed evaluation, say)."""
        self._k = self._next = 0

    def predict(self, x: np.ndarray) -> np.ndarray | None:
        """The predicted mode at x (a new array), or None with nothing remembered."""
        if self._k == 0 or self._xs is None or self._ms is None:
            return None
        out = np.empty(self._ms.shape[1])
        _predict(self._xs[: self._k], self._ms[: self._k], np.asarray(x, dtype=float), out)
        return out


@njit(cache=True)
def _predict(xs, ms, x, out):  # pragma: no cover - compiled
    """m_a + J (x − x_a) into ``out`` (the module's model); (D'WD + λI)⁻¹ with λ a 1e-10
    share of its trace, by Cholesky: directions no d_k spans then get no change."""
    k, nx = xs.shape
    a = 0
    best = math.inf
    for i in range(k):
        dd = 0.0
        for j in range(nx):
            t = xs[i, j] - x[j]
            dd += t * t
        if dd < best:
            best = dd
            a = i
    out[:] = ms[a]
    if k == 1 or best == 0.0:
        return
    D = np.zeros((k, nx))
    w = np.zeros(k)
    for i in range(k):
        if i == a:
            continue
        dd = 0.0
        for j in range(nx):
            t = xs[i, j] - xs[a, j]
            D[i, j] = t
            dd += t * t
        w[i] = 1.0 / (dd + best)
    M = np.zeros((nx, nx))
    for i in range(k):
        for j in range(nx):
            for l in range(j + 1):
                M[j, l] += w[i] * D[i, j] * D[i, l]
    tr = 0.0
    for j in range(nx):
        tr += M[j, j]
    lam = 1e-10 * tr
    for j in range(nx):  # Cholesky of M + λI in place (lower)
        d = M[j, j] + lam
        for l in range(j):
            d -= M[j, l] * M[j, l]
        if not d > 0.0:
            return
        d = math.sqrt(d)
        M[j, j] = d
        for i in range(j + 1, nx):
            t = M[i, j]
            for l in range(j):
                t -= M[i, l] * M[j, l]
            M[i, j] = t / d
    s = np.empty(nx)
    for j in range(nx):
        t = x[j] - xs[a, j]
        for l in range(j):
            t -= M[j, l] * s[l]
        s[j] = t / M[j, j]
    for j in range(nx - 1, -1, -1):
        t = s[j]
        for l in range(j + 1, nx):
            t -= M[l, j] * s[l]
        s[j] = t / M[j, j]
    for i in range(k):
        if i == a:
            continue
        c = 0.0
        for j in range(nx):
            c += D[i, j] * s[j]
        c *= w[i]
        if c != 0.0:
            for r in range(ms.shape[1]):
                out[r] += c * (ms[i, r] - ms[a, r])
