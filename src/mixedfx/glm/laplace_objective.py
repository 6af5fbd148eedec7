"""The Laplace criterion of a GLMM's two optimization stages, evaluated in compiled code.

For a small GLMM (cbpp: 56 rows, 15 herds) one PIRLS is a few microseconds of arithmetic,
and the Python around each of the optimizers' ~70 evaluations (the predictor of the mode,
the compiled PIRLS's 29 arguments, nlopt's call into Python) costs several times more.
:class:`LaplaceObjective` binds everything an evaluation reads once, in an int64 header of
addresses (:func:`mixedfx.glm.pirls_kernels.laplace_header`), so that the whole minimization
is one call: nlopt's BOBYQA through its C interface (:func:`mixedfx.linalg.nlopt_c.bobyqa_c`)
calling the compiled callback ``laplace_objective``, or Brent's method for a single θ
(``laplace_scalar``; ``laplace_scalar_from_start`` for stage 1's seed). An evaluation is
exactly the engine's Python one (:class:`mixedfx.engines.generalized.GeneralizedEngine`):

* stage 1 (``joint``), x = θ: (u, β) by PIRLS from the mode the predictor gives, else from
  the family's starting η; −2ℓ = Σ d_i + ‖û‖² + aic constant + 2 log|L|;
* stage 2, x = (θ, δ): β = β₁ + R_X⁻¹ δ, u by PIRLS from the predicted mode, else from the
  last mode (and from the last mode again when the predicted start fails).

The predictor's ring (:meth:`mixedfx.glm.mode_predictor.ModePredictor.storage`) and the last
mode (:attr:`LaplaceObjective.warm`) are shared with Python, which carries on from them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..linalg import nlopt_c
from ..linalg.optimizer import OptimizerResult
from ..linalg.triangular import lower_triangle
from . import pirls_kernels as PK
from .mode_predictor import ModePredictor
from .pirls import PIRLS

__all__ = ["LaplaceObjective", "available", "gradient_family"]


def available(pirls: PIRLS, const: float | None, nx: int) -> bool:
    """Whether the compiled evaluations apply: all-scalar terms and a built-in family (PIRLS
    runs compiled), a constant aic term, and nlopt's C interface for two parameters or more."""
    compiled = isinstance(pirls, PIRLS) and pirls.compiled  # not over Dask partitions
    return compiled and const is not None and (nx == 1 or nlopt_c.available())


def _static_inputs(
    pirls: PIRLS, joint: bool, inp: dict[str, Any]
) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """What a :class:`LaplaceObjective` of one stage binds from its PIRLS: the header's
    integers (the number of parameters and the predictor's capacity left to fill in), the
    data and plan as the header's first arrays, and its own buffers of μ, o + Xβ and the
    mode."""
    plan = inp["plan"]
    G, work, iwork, Sd = inp["workspace"]
    fam, link = inp["codes"]
    n, q = pirls.n, pirls.q
    X = np.ascontiguousarray(pirls.X, dtype=float)
    p = X.shape[1]
    nm = q + p if joint else q
    ints = np.array(
        [
            int(joint),
            fam,
            link,
            n,
            p,
            plan.n1,
            plan.m,
            plan.rows.size,
            plan.rrows.shape[0],
            q,
            0,  # nx
            inp["maxit"],
            inp["max_halvings"],
            Sd.shape[1],
            iwork.size,
            work.size,
            0,  # the predictor's capacity
            plan.q_rest,
            nm,
        ],
        dtype=np.int64,
    )
    f64, i64 = np.float64, np.int64
    # the data (a refit's response may be a column of a matrix) read in place or copied
    first = (
        np.ascontiguousarray(pirls.y, dtype=f64),
        np.ascontiguousarray(pirls.wt, dtype=f64),
        np.ascontiguousarray(pirls.offset, dtype=f64),
        X,
        np.ascontiguousarray(plan.r1, dtype=i64),
        np.ascontiguousarray(plan.z1, dtype=f64),
        np.ascontiguousarray(plan.rrows, dtype=i64),
        np.ascontiguousarray(plan.rz, dtype=f64),
        np.ascontiguousarray(plan.pos21, dtype=i64),
        np.ascontiguousarray(plan.ptr, dtype=i64),
        np.ascontiguousarray(plan.rows, dtype=i64),
        np.ones(plan.m),
        np.ascontiguousarray(inp["scale_index"], dtype=i64),
        np.empty(plan.n1),
        np.empty(n),
    )
    bufs = (np.empty(n), np.empty(n), np.empty(nm))
    if not all(a.flags.c_contiguous for a in first + bufs + (G, work, iwork, Sd)):
        raise ValueError("the compiled PIRLS's workspaces must be C-contiguous")
    return ints, first, bufs


def gradient_family(pirls: PIRLS) -> int:
    """Whether stage 2's criterion has a compiled gradient here
    (:meth:`LaplaceObjective.quasi_newton`): its family code, 0 binomial-logit or 1
    Poisson-log (canonical links: the observed information is the expected one), for one
    scalar random-effects term; −1 otherwise."""
    if len(pirls.terms) != 1 or pirls.terms[0].k != 1:
        return -1
    return {(0, 0): 0, (1, 3): 1}.get(getattr(pirls, "codes", None) or (-1, -1), -1)


class LaplaceObjective:
    """The Laplace criterion of one stage, bound to its settings for compiled minimization.

    Parameters
    ----------
    pirls : PIRLS
        Its compiled PIRLS's plan and workspaces are used (and overwritten).
    joint : bool
        Stage 1 (u and β by PIRLS, x = θ) or stage 2 (x = (θ, δ)).
    const : float
        The family's aic constant.
    tol_stay : float
        PIRLS stops without its last Fisher step below this (relative); see
        :meth:`mixedfx.glm.pirls.PIRLS.mode_evaluator`.
    predictor : ModePredictor
        Its ring is read and extended in place.
    nx : int
        Number of parameters.
    eta_start : ndarray, optional
        Stage 1: the family's starting η.
    beta1, rx1_inv, warm : ndarray, optional
        Stage 2: β₁, R_X⁻¹ (δ = R_X (β − β₁)) and the mode to start from when none is predicted.
    """

    def __init__(
        self,
        pirls: PIRLS,
        joint: bool,
        const: float,
        tol_stay: float,
        predictor: ModePredictor,
        nx: int,
        *,
        eta_start: np.ndarray | None = None,
        beta1: np.ndarray | None = None,
        rx1_inv: np.ndarray | None = None,
        warm: np.ndarray | None = None,
    ):
        inp = pirls.kernel_inputs(joint)
        if inp is None:
            raise ValueError("PIRLS does not run compiled for this model")
        plan = inp["plan"]
        G, work, iwork, Sd = inp["workspace"]
        n, q = pirls.n, pirls.q
        ints0, first, bufs = _static_inputs(pirls, joint, inp)
        X = first[3]
        p = X.shape[1]
        nm = q + p if joint else q
        pxs, pms, ring = predictor.storage(nx, nm)
        self.nx = nx
        self.warm = np.zeros(q) if warm is None else np.array(warm, dtype=float)
        eta0 = np.zeros(n) if eta_start is None else np.array(eta_start, dtype=float)
        b1 = np.zeros(p) if beta1 is None else np.array(beta1, dtype=float)
        rinv = np.eye(p) if rx1_inv is None else np.array(rx1_inv, dtype=float, order="C")
        self.state = np.zeros(6 + nx)
        self.state[:3] = (inp["tol"], tol_stay, const)
        self.state[5] = math.inf
        ints = ints0.copy()
        ints[10], ints[16] = nx, pxs.shape[0]
        mu, fixed, ub = bufs
        second = (
            mu,
            G,
            work,
            iwork,
            Sd,
            eta0,
            self.warm,
            fixed,
            ub,
            b1,
            rinv,
            pxs,
            pms,
            ring,
            self.state,
        )
        # (the bound data, workspaces and buffers were checked when first made; the arrays
        # made above are C-ordered)
        if not (pxs.flags.c_contiguous and pms.flags.c_contiguous and ring.flags.c_contiguous):
            raise ValueError("the mode predictor's ring must be C-contiguous")
        self.hdr = PK.laplace_header(ints, first, second)
        assert self.hdr.size == PK.LAPLACE_HEADER
        self._keep = first + second  # the addresses in hdr stay valid while self lives
        self._pirls, self._joint, self._q, self._p = pirls, joint, q, p
        self._G, self._L11, self._mode = G, first[13], ub
        self._q_rest = plan.q_rest

    @property
    def nevals(self) -> int:
        return int(self.state[3])

    @property
    def tol_stay(self) -> float:
        return float(self.state[1])

    @tol_stay.setter
    def tol_stay(self, value: float) -> None:
        self.state[1] = value

    def __call__(self, x: np.ndarray) -> float:
        """The criterion at x (+inf where PIRLS finds no mode)."""
        # through laplace_many: one compiled entry point fewer to load
        pts = np.ascontiguousarray(x, dtype=float).reshape(1, -1)
        return float(PK.laplace_many(pts, self.hdr)[0])

    def many(self, pts: np.ndarray) -> np.ndarray:
        """The criterion at every row of ``pts`` (in order), in one compiled call."""
        return PK.laplace_many(np.ascontiguousarray(pts, dtype=float), self.hdr)

    def polish(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
        """The mode at x by PIRLS to its full tolerance, from the mode the predictor gives
        (else from the family's start, stage 1, or the last mode, stage 2): what
        :meth:`~mixedfx.glm.pirls.PIRLS.fit_ub` (stage 1) or ``fit_u`` (stage 2) computes from
        that start. Returns (criterion, u, β, R_X): β is the mode's for stage 1 and empty for
        stage 2; R_X that of the joint factor at the mode (stage 1, finite criterion; else
        None). For stage 1 the factor stays in the PIRLS's workspace, as after ``fit_ub``,
        for :meth:`~mixedfx.glm.pirls.PIRLS.mode_slopes`."""
        pts = np.ascontiguousarray(x, dtype=float).reshape(1, -1)
        val = float(PK.laplace_polish(pts[0], self.hdr))
        q, p = self._q, self._p
        mode = self._mode
        u = mode[:q].copy()
        beta = mode[q:].copy() if self._joint else np.empty(0)
        Rx = None
        if self._joint:
            ok = math.isfinite(val)
            self._pirls._last_L11 = self._L11.copy() if ok else None
            if ok:
                r = self._q_rest
                Rx = lower_triangle(self._G[r : r + p, r : r + p]).T
        return val, u, beta, Rx

    def bobyqa(self, x0: np.ndarray, lower: np.ndarray, **options: Any) -> OptimizerResult:
        """:func:`mixedfx.linalg.optimizer.bobyqa` (two parameters or more) in compiled code;
        ``options`` are its tolerances and ``initial_step``."""
        start = self.nevals
        x, fval, status = nlopt_c.bobyqa_best(
            PK.laplace_objective.address, self.hdr, self.state, 5, x0, lower, **options
        )
        return OptimizerResult(x=x, fun=fval, nfev=self.nevals - start, status=status)

    def gradient(self, x: np.ndarray, gfam: int) -> tuple[float, np.ndarray]:
        """Stage 2's criterion at x and its gradient (``gfam`` of :func:`gradient_family`),
        in one compiled call; +inf where either is not computable (the gradient then NaN
        where the criterion clamps μ)."""
        grad = np.empty(self.nx)
        xx = np.array(x, dtype=float)
        val = float(PK.laplace_gradient(self.hdr, gfam, xx, grad))
        return val, grad

    def quasi_newton(
        self,
        x0: np.ndarray,
        lower: np.ndarray,
        gfam: int,
        ntheta: int = 1,
        xtol: float = 1e-8,
        max_iter: int = 40,
        h: float = 1e-4,
    ) -> tuple[OptimizerResult, np.ndarray, bool]:
        """Stage 2 by BFGS with the criterion's gradient
        (:func:`mixedfx.glm.pirls_kernels.laplace_quasi_newton`) in one compiled call, from
        x₀; returns the answer, the gradient there and whether the search converged (a step
        below ``xtol``)."""
        start = self.nevals
        x = np.array(x0, dtype=float)
        lo = np.array(lower, dtype=float)
        grad = np.empty(x.size)
        fx, ok = PK.laplace_quasi_newton(
            self.hdr, gfam, x, lo, ntheta, float(xtol), int(max_iter), float(h), grad
        )
        res = OptimizerResult(x=x, fun=float(fx), nfev=self.nevals - start, status="gradient")
        return res, grad, bool(ok)

    def scalar(self, x0: np.ndarray, lower: np.ndarray, xtol_abs: float = 1e-8) -> OptimizerResult:
        """:func:`mixedfx.linalg.optimizer.bobyqa` for a single θ (bracketing and Brent's
        bounded method, as its ``_scalar``) in one compiled call."""
        start = self.nevals
        lo = float(lower[0]) if math.isfinite(lower[0]) else -50.0
        x, fx = PK.laplace_scalar(self.hdr, float(x0[0]), lo, float(xtol_abs))
        return OptimizerResult(
            x=np.array([x]), fun=float(fx), nfev=self.nevals - start, status="success"
        )

    def scalar_from_start(
        self, x0: np.ndarray, lower: np.ndarray, xtol: float = 1e-4, step: float = 0.25
    ) -> OptimizerResult:
        """:func:`mixedfx.linalg.optimizer.scalar_from_start` (stage 1's single θ, a seed:
        a bracket grown from the start, then Brent's method) in one compiled call."""
        start = self.nevals
        lo = float(lower[0]) if math.isfinite(lower[0]) else -50.0
        x, fx, _ = PK.laplace_scalar_from_start(
            self.hdr, float(x0[0]), lo, float(xtol), float(step)
        )
        return OptimizerResult(
            x=np.array([x]), fun=float(fx), nfev=self.nevals - start, status="success"
        )
