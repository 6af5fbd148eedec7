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

import numpy as np

from .pirls_kernels import predict_mode

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
        # [pairs held, the ring's slot for the next pair]: an array, so that compiled code
        # (:func:`mixedfx.glm.pirls_kernels.laplace_eval`) can add pairs too
        self._ring = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._ring[0])

    def storage(self, nx: int, nm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ring's arrays (points, modes, [held, next]), allocated for points of nx and
        modes of nm values if not yet: compiled code reads and extends them in place."""
        if self._xs is None or self._ms is None:
            self._xs = np.empty((self.capacity, nx))
            self._ms = np.empty((self.capacity, nm))
        if self._xs.shape[1] != nx or self._ms.shape[1] != nm:
            raise ValueError("the predictor holds points or modes of another size")
        return self._xs, self._ms, self._ring

    def add(self, x: np.ndarray, mode: np.ndarray) -> None:
        """Remember the mode found at x (both copied)."""
        xs, ms, ring = self.storage(np.size(x), np.size(mode))
        k, nxt = ring
        xs[nxt] = x
        ms[nxt] = mode
        ring[1] = (nxt + 1) % self.capacity
        ring[0] = min(k + 1, self.capacity)

    def fill(self, xs: np.ndarray, modes: np.ndarray) -> None:
        """Remember exactly the pairs (rows of ``xs``, rows of ``modes``), in order: what
        :meth:`clear` and :meth:`add` of each pair in turn leave (at most ``capacity``)."""
        k = xs.shape[0]
        if k > self.capacity or modes.shape[0] != k:
            raise ValueError("fill needs as many modes as points, at most the capacity")
        pxs, pms, ring = self.storage(xs.shape[1], modes.shape[1])
        pxs[:k] = xs
        pms[:k] = modes
        ring[0] = k
        ring[1] = k % self.capacity

    def clear(self) -> None:
        """Forget every pair (after a failed evaluation, say)."""
        self._ring[:] = 0

    def predict(self, x: np.ndarray) -> np.ndarray | None:
        """The predicted mode at x (a new array), or None with nothing remembered."""
        k = int(self._ring[0])
        if k == 0 or self._xs is None or self._ms is None:
            return None
        out = np.empty(self._ms.shape[1])
        predict_mode(self._xs[:k], self._ms[:k], np.asarray(x, dtype=float), out)
        return out
