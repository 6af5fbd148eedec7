"""Steps 4a and 4b in one compiled call, for models with a small trailing block.

For a small model (sleepstudy, Penicillin, Pastes: a trailing block of a few dozen rows) one
criterion evaluation is a few microseconds of arithmetic, and the Python around it — building
the Λ blocks, six kernel calls, LAPACK's dpotrf through scipy, the criterion's formula — costs
several times more. :class:`SmallSystem` does the whole of
:meth:`mixedfx.linalg.factor.BlockedFactor.update` (and, for the optimizer, the criterion of
:func:`mixedfx.linalg.criterion.profiled_deviance`) in one numba function, on the same
cross-products and with the same blocked algorithm:

    L11[l] = chol(Λ1' A11[l] Λ1 + I)                       (every level l of the first term)
    P      = A21 Λ1 L11⁻ᵀ                                  (by column blocks)
    G      = Λr'(A22 − P P')Λr + [I 0; 0 0],   L22 = chol(G)   (dense, m x m)
    ML:    2(Σ log diag L11 + Σ log diag L22[:q]) + n(1 + log(2π r²/n)) − Σ log w
    REML:  ... + 2 Σ log diag L22[q:q+p], with n − p for n,

r = L22[-1, -1] (the compiled code is ``kernels.small_factor``/``small_criterion``). The dense
Cholesky of G is a plain compiled loop (O(m³/3)), which beats
LAPACK's call overhead only while m is small (:func:`applies`). BlockedFactor uses it for its
own update whenever it applies, so the criterion the optimizer sees and the factor that gives
β, u and the variances come from the same arithmetic, to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import kernels as K
from . import nlopt_c
from .crossprod import CrossProducts
from .optimizer import OptimizerResult, Probe

__all__ = ["MAX_FUSED_M", "SmallObjective", "SmallSystem", "applies"]

MAX_FUSED_M = 48
"""Largest trailing block (random effects of later terms + fixed effects + response) for
which the compiled dense Cholesky is used: beyond it LAPACK's blocked code wins."""


def applies(m: int) -> bool:
    """Whether a trailing block of m rows is small enough for the compiled dense Cholesky."""
    return m <= MAX_FUSED_M


class SmallSystem:
    """The blocked factor of a small model computed by one compiled call.

    Parameters
    ----------
    A : CrossProducts
    terms : list of RandomEffectsTerm
        In the order of the cross-products.
    buffers : (L11, P, G, W), optional
        Where the factor is written (a :class:`BlockedFactor`'s own, so that its solutions
        read it); fresh scratch arrays when not given.
    grouped : bool, default True
        Allow the grouped Schur update (below), worked out from the values of ``A`` at
        construction: pass False when they will be overwritten (PIRLS, bootstrap refills).

    The same compiled arithmetic serves :meth:`factor` and :meth:`criterion`, so a criterion
    value seen by the optimizer is exactly what the factor gives at that θ.

    With scalar terms only, P P' = Σ_l θ1²/(θ1² c_l + 1) a_l a_l' (a_l the column of A21 for
    level l of the first term, c_l = A11[l]) is Σ_g θ1²/(θ1² c_g + 1) S_g over the distinct
    values c_g, with S_g = Σ_{l: c_l = c_g} a_l a_l' worked out once. In a balanced design
    (Penicillin: every plate has 6 observations) there is one group, and an evaluation forms
    G from one weighted m x m sum instead of a scatter over every pair of entries in every
    level's column: used when that is at least 4x fewer operations. P itself is then not
    written by :meth:`factor` (:attr:`grouped`: the factor computes it when asked).
    """

    #: most groups (distinct values of A11) for the grouped Schur update
    MAX_GROUPS = 8

    def __init__(
        self,
        A: CrossProducts,
        terms: Sequence[Any],
        buffers: tuple | None = None,
        grouped: bool = True,
    ):
        self.A = A
        k1 = int(terms[0].k)
        rest = []
        t0 = k1 * (k1 + 1) // 2
        pos = 0
        for term in terms[1:]:
            rest.append((pos, term.nlevels, term.k, t0))
            pos += term.q
            t0 += term.k * (term.k + 1) // 2
        if buffers is None:
            buffers = (
                np.zeros_like(A.A11),
                np.zeros_like(A.vals),
                np.zeros_like(A.A22),
                np.zeros((A.q_rest, A.p + 1)),
            )
        L11, P, G, W = buffers
        self._args = (
            k1,
            A.A11,
            np.ascontiguousarray(A.ptr, dtype=np.int64),
            np.ascontiguousarray(A.rows, dtype=np.int64),
            A.vals,
            A.A22,
            np.array(rest, dtype=np.int64).reshape(-1, 4),
            A.q_rest,
            L11,
            P,
            G,
            W,
            np.ones(A.m),
            *self._groups(A, terms, grouped),
        )

    @property
    def grouped(self) -> bool:
        """Whether :meth:`factor` uses the grouped Schur update (and leaves P unwritten)."""
        return self._args[-2].shape[0] > 0

    @classmethod
    def _groups(
        cls, A: CrossProducts, terms: Sequence[Any], allowed: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(S, c): the S_g (nd, m, m) and distinct c_g of the grouped Schur update; nd = 0
        where it does not apply or does not pay."""
        m = A.m
        if not allowed or any(int(t.k) != 1 for t in terms):
            return np.zeros((0, m, m)), np.zeros(0)
        return K.small_groups(A.A11, A.ptr, A.rows, A.vals, m, cls.MAX_GROUPS, 4.0)

    def scratch(self) -> SmallSystem:
        """The same system writing its factor into fresh buffers of its own (the pattern and
        values of the cross-products shared)."""
        new = SmallSystem.__new__(SmallSystem)
        new.A = self.A
        args = list(self._args)
        for i in (8, 9, 10, 11):  # L11, P, G, W (C-contiguous: np.zeros_like's result)
            a = args[i]
            args[i] = np.zeros(a.shape, a.dtype) if a.flags.c_contiguous else np.zeros_like(a)
        new._args = tuple(args)
        return new

    def factor(self, theta: np.ndarray) -> tuple[float, float, float, bool]:
        """(log|Lz|, log|Rx|, r, ok) at θ, the factor written into the buffers."""
        return K.small_factor(np.asarray(theta, dtype=float), *self._args)

    def criterion(self, theta: np.ndarray, reml: bool, n: int, const: float) -> float:
        """The profiled criterion at θ plus ``const`` (NaN: no factor; inf: r² ≤ 0)."""
        return K.small_criterion(theta, *self._args, n, reml, const)

    def criterion_many(self, thetas: np.ndarray, reml: bool, n: int, const: float) -> np.ndarray:
        """:meth:`criterion` at every row of ``thetas``, in one compiled call."""
        return K.small_criterion_many(
            np.ascontiguousarray(thetas, dtype=float), *self._args, n, reml, const
        )

    def objective(self, reml: bool, n: int, const: float) -> SmallObjective | None:
        """The criterion bound to its settings for a minimization in compiled code (None where
        nlopt's C interface is not available or an array is not contiguous)."""
        if not nlopt_c.available():
            return None
        try:
            return SmallObjective(self, reml, n, const)
        except NotContiguousError:
            return None


class NotContiguousError(ValueError):
    """An array of a small system is not C-contiguous (the compiled header needs them so)."""


class SmallObjective:
    """The criterion of a :class:`SmallSystem` (with ``reml``, ``n`` and the constant fixed)
    minimized without Python per evaluation: BOBYQA by nlopt's C code calling the compiled
    callback ``kernels.small_objective``, then the Newton steps of ``kernels.small_polish``.
    Non-finite values count as +inf (a failure: the factor does not exist at that θ)."""

    def __init__(self, system: SmallSystem, reml: bool, n: int, const: float):
        k1, A11, ptr, rows, vals, A22, rest, q, L11, P, G, W, scale, S, cg = system._args
        arrays = (A11, ptr, rows, vals, A22, rest, L11, P, G, W, scale)
        # the header's layout needs them so (SmallSystem.objective falls back to Python)
        if not all(a.flags.c_contiguous for a in (*arrays, S, cg)):
            raise NotContiguousError("the small system's arrays must be C-contiguous")
        ks = [k1, *rest[:, 2].tolist()]
        self.nx = sum(k * (k + 1) // 2 for k in ks)
        self.state = np.zeros(4 + self.nx)
        self.state[0] = const
        self.hdr = K.small_header(k1, q, n, bool(reml), self.nx, *arrays, self.state, S, cg)
        assert self.hdr.size == K.SMALL_HEADER
        self._keep = (*arrays, S, cg)  # the addresses in hdr stay valid while self lives

    def reset(self) -> None:
        """Zero the counts of evaluations and failures and forget the best point."""
        self.state[1:4] = (0.0, 0.0, np.inf)

    @property
    def nevals(self) -> int:
        return int(self.state[1])

    @property
    def nfailed(self) -> int:
        return int(self.state[2])

    def __call__(self, theta: np.ndarray) -> float:
        """The criterion at θ (+inf where it cannot be computed)."""
        return float(K.small_eval(np.ascontiguousarray(theta, dtype=float), self.hdr))

    def bobyqa(self, x0: np.ndarray, lower: np.ndarray, **options: Any) -> OptimizerResult:
        """:func:`mixedfx.linalg.optimizer.bobyqa` (two parameters or more) in compiled code;
        ``options`` are its tolerances and ``initial_step``."""
        start = self.nevals
        x, fval, status = nlopt_c.bobyqa_best(
            K.small_objective.address, self.hdr, self.state, 3, x0, lower, **options
        )
        return OptimizerResult(x=x, fun=fval, nfev=self.nevals - start, status=status)

    def scalar(self, x0: np.ndarray, lower: np.ndarray, xtol_abs: float = 1e-8) -> OptimizerResult:
        """:func:`mixedfx.linalg.optimizer.bobyqa` for a single θ (bracketing and Brent's
        bounded method, as its ``_scalar``) in one compiled call; lower bound finite."""
        start = self.nevals
        self.state[3] = np.inf
        x, fx = K.small_scalar(self.hdr, float(x0[0]), float(lower[0]), float(xtol_abs))
        return OptimizerResult(
            x=np.array([x]), fun=float(fx), nfev=self.nevals - start, status="success"
        )

    def polish(
        self,
        x: np.ndarray,
        fx: float,
        lower: np.ndarray,
        xtol: float = 1e-9,
        max_iter: int = 12,
        last_step: float = 1e-8,
        h: float = 1e-4,
    ) -> tuple[np.ndarray, float, Probe]:
        """:func:`mixedfx.linalg.optimizer.newton_polish` in one compiled call."""
        xo, fo, px, idx, steps, f0, fp, fm, done = K.small_polish(
            self.hdr,
            np.ascontiguousarray(x, dtype=float),
            float(fx),
            np.ascontiguousarray(lower, dtype=float),
            xtol,
            max_iter,
            last_step,
            h,
        )
        return xo, float(fo), Probe(px, idx, steps, float(f0), fp, fm, bool(done))
