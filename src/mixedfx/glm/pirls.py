"""Penalized iteratively reweighted least squares (PIRLS) and the Laplace/AGQ deviance of a GLMM.

For a generalized linear mixed model with linear predictor η = o + Xβ + ZΛu, u ~ N(0, I),
conditional density p(y | u) from an exponential family, PIRLS finds the conditional mode

    û = argmin_u  Σ_i d_i(y_i, μ_i) + ‖u‖²,      μ = g⁻¹(η),

(d_i the deviance residuals) by Fisher scoring: at the current u, with working weights
w = wt (dμ/dη)² / V(μ) and working residual r = (y − μ) / (dμ/dη), solve the penalized
weighted least-squares problem

    (Λ'Z'WZΛ + I) u⁺ = Λ'Z'W (ZΛu + r)

through the same blocked Cholesky factor as lmer (the cross-products are refilled with the
new weights each iteration, their pattern is fixed), then halve the step u⁺ − u until the
penalized deviance decreases. With β in the iteration as well (lme4's nAGQ = 0 stage), the
system is the full one, [u; β] solved together.

At the mode, with L the Cholesky factor of Λ'Z'WZΛ + I, the Laplace approximation of
−2 log-likelihood is (lme4's definition)

    −2 ℓ(θ, β) ≈ Σ_i −2 log p(y_i | μ̂_i) + ‖û‖² + log|L|²,

where the first sum is the family's ``aic``. For a single scalar random-effects term the
integral over each level's u_j is one-dimensional and adaptive Gauss–Hermite quadrature
refines it (:func:`agq_correction`).

Everything here is vectorized over observations; the few loops are over PIRLS iterations,
step halvings and quadrature nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..frame.design import Design
from ..linalg.crossprod import CrossProductPlan
from ..linalg.factor import BlockedFactor, blas_threads_for, lambda_blocks
from ..linalg.triangular import lower_triangle
from ..linalg.zmul import b_blocks, z_times
from . import pirls_kernels as PK
from .families import Family, kernel_codes

__all__ = ["PIRLS", "PirlsResult", "agq_correction", "gauss_hermite"]


@dataclass
class PirlsResult:
    """State at the conditional mode for given (θ, β)."""

    u: np.ndarray
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    pdev: float
    """Σ d_i + ‖u‖² at the mode."""
    logdet_L: float
    """log|L| (half of log|L|²) at the working weights of the mode."""
    iterations: int
    converged: bool
    L11: np.ndarray | None = None
    """Diagonal of the first term's factor blocks (scalar first term), for AGQ."""
    Rx: np.ndarray | None = None
    """R_X of the joint (u, β) system at the mode, when the compiled PIRLS made it."""
    passes: int = 0
    """Passes over the observations the compiled PIRLS made (0 when not compiled)."""


class PIRLS:
    """PIRLS for one GLMM design: factors and cross-product plans allocated once.

    Parameters
    ----------
    design : Design
    family : Family
    y : ndarray (n,)
        Response on the family's scale (proportions for binomial).
    wt : ndarray (n,)
        Prior weights (for binomial: the number of trials times any prior weight).
    offset : ndarray (n,)
        The known part of η (zeros when there is none).
    """

    def __init__(
        self, design: Design, family: Family, y: np.ndarray, wt: np.ndarray, offset: np.ndarray
    ):
        self.design = design
        self.family = family
        self.y = y
        self.wt = wt
        self.offset = offset
        self.X = design.X
        self.terms = design.terms
        self.ks = [t.k for t in self.terms]
        n = design.n
        self.n = n
        self.q = design.q
        # u alone (β held fixed): X has no columns
        self._plan_u = CrossProductPlan(design, X=np.empty((n, 0)))
        # (the factor over u, _A_u and factor_u, is made when first read: compiled PIRLS
        # needs it only for the fitted state's conditional variances)
        # u and β together (the nAGQ = 0 stage), made when first needed
        self._plan_b: CrossProductPlan | None = None
        self.factor_b: BlockedFactor | None = None
        # Convergence: the last step is taken and the factor recomputed there ("polish").
        # With a canonical link Fisher scoring is Newton's method, which converges
        # quadratically: after a step of relative size 1e-6 the distance to the mode is
        # ~1e-12, so that step can be the last. Other links converge linearly: 1e-10.
        self.tol = 1e-6 if family.canonical else 1e-10
        self.maxit = 60
        self.max_halvings = 30
        # built-in families run their per-observation work compiled; a user's family runs
        # through its own methods (kernel_codes is None)
        self.codes = kernel_codes(family)
        # all-scalar terms: PIRLS runs compiled end to end (pirls_kernels.pirls_scalar)
        self.compiled = self.codes is not None and all(t.k == 1 for t in self.terms)
        self._scale_index = (
            np.repeat(
                np.arange(1, len(self.terms), dtype=np.intp), [t.nlevels for t in self.terms[1:]]
            )
            if len(self.terms) > 1
            else np.empty(0, dtype=np.intp)  # one term: no later random effects
        )
        self._X0 = np.empty((self.n, 0))
        self._last_L11: np.ndarray | None = None  # of the last compiled joint PIRLS
        self._ws: dict[int, tuple[np.ndarray, ...]] = {}
        self._zs: list[tuple[int, int, np.ndarray, np.ndarray]] | bool | None = None

    # ------------------------------------------------------------------ pieces
    @cached_property
    def _A_u(self) -> Any:
        """The cross-products over u alone (β held fixed), filled by the factored routes."""
        return self._plan_u.empty()

    @cached_property
    def factor_u(self) -> BlockedFactor:
        """The blocked factor over u alone: at the mode after :meth:`fit_u_factored` (and
        after :meth:`fit_u` through Python)."""
        return BlockedFactor(self._A_u, self.terms, grouped=False)

    def blas_threads(self) -> Any:
        """The BLAS threading context for many evaluations (:meth:`BlockedFactor.blas_threads`
        of the factor over u, without making it)."""
        return blas_threads_for(self._plan_u.m)

    def zlam_u(self, lams: list[np.ndarray], u: np.ndarray) -> np.ndarray:
        """ZΛu, the random-effects part of η."""
        scalar = self._scalar_z()
        if scalar and u.ndim == 1:
            # all-scalar terms: Σ_t z_t ∘ (λ_t u_t)[refs_t], the products and sums of
            # z_times(b_blocks(...)) in their order, without their per-term reshapes
            out: np.ndarray | None = None
            for (pos, nl, z, refs), lam in zip(scalar, lams, strict=True):
                part = z * (u[pos : pos + nl] * lam[0, 0])[refs]
                out = part if out is None else out + part
            assert out is not None
            return out
        return z_times(self.terms, b_blocks(self.terms, lams, u))

    def _scalar_z(self) -> list[tuple[int, int, np.ndarray, np.ndarray]] | None:
        """Per scalar term (start in u, levels, its column, level of each row), when every
        term is scalar and every row has a level (as in a fitted design); else None. Made on
        first use."""
        if self._zs is None:
            zs: list[tuple[int, int, np.ndarray, np.ndarray]] | bool = False
            if all(k == 1 for k in self.ks) and all(t.refs.min(initial=0) >= 0 for t in self.terms):
                zs, pos = [], 0
                for t in self.terms:
                    zs.append((pos, t.nlevels, t.Zt[:, 0], t.refs))
                    pos += t.q
            self._zs = zs
        return self._zs or None

    def evaluate(
        self, eta: np.ndarray, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """μ, √(working weights), working residuals and the penalized deviance
        Σ d_i + ‖u‖² at η: one compiled pass for the built-in families
        (:func:`mixedfx.glm.pirls_kernels.glm_working`), the family's own methods otherwise."""
        fam = self.family
        if self.codes is None:
            with np.errstate(all="ignore"):
                mu = np.asarray(fam.linkinv(eta), dtype=float)
                d = np.asarray(fam.mu_eta(eta), dtype=float)
                sw = np.sqrt(self.wt * d * d / np.asarray(fam.variance(mu), dtype=float))
                wr = (self.y - mu) / d
                dev = float(np.sum(fam.dev_resids(self.y, mu, self.wt)))
            return mu, sw, wr, float(dev + u @ u)
        n = self.n
        mu, sw, wr = np.empty(n), np.empty(n), np.empty(n)
        dev = PK.glm_working(*self.codes, eta, self.y, self.wt, mu, sw, wr, True)
        return mu, sw, wr, float(dev + u @ u)

    def _joint_plan(self) -> CrossProductPlan:
        """The cross-product plan of [ZΛ | X | z] (u and β together), made when first needed."""
        if self._plan_b is None:
            self._plan_b = CrossProductPlan(self.design)
        return self._plan_b

    def _ensure_joint(self) -> tuple[CrossProductPlan, BlockedFactor]:
        """The joint plan and its BlockedFactor (the compiled PIRLS needs only the plan)."""
        plan = self._joint_plan()
        if self.factor_b is None:
            self._A_b = plan.empty()
            self.factor_b = BlockedFactor(self._A_b, self.terms, grouped=False)
        return plan, self.factor_b

    # ------------------------------------------------------------ iterations
    def fit_u(
        self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray, compiled: bool = True
    ) -> PirlsResult:
        """The conditional mode û for fixed (θ, β), starting from ``u0``.

        Iterates until the Fisher-scoring step is below ``tol`` (relative), takes that last
        step and refactors there, so the factor (and log|L|) belong to the returned u. With
        all-scalar terms the loop runs compiled (``compiled=False`` runs it through
        :class:`BlockedFactor`, leaving ``factor_u`` at the mode, as conditional variances need).
        """
        fixed = self.offset + self.X @ beta
        u = np.array(u0, dtype=float, copy=True)
        beta = np.asarray(beta, dtype=float)
        if self.compiled and compiled:
            return self._fit_u_compiled(np.asarray(theta, dtype=float), fixed, u, beta)
        lams = lambda_blocks(theta, self.ks)
        return self._iterate(theta, lams, fixed, u, beta)

    def fit_u_factored(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray) -> PirlsResult:
        """:meth:`fit_u` leaving ``factor_u`` at the mode (conditional variances read it).

        With compiled PIRLS the mode is found compiled and ``factor_u`` made once there (one
        pass, one factorization); otherwise the iteration runs through ``factor_u`` itself.
        """
        theta = np.asarray(theta, dtype=float)
        if self.compiled:
            # fit_u compiled, with o + Xβ made once for the mode and η at the mode
            fixed = self.offset + self.X @ beta
            beta = np.asarray(beta, dtype=float)
            r = self._fit_u_compiled(theta, fixed, np.array(u0, dtype=float, copy=True), beta)
            if np.isfinite(r.pdev):
                lams = lambda_blocks(theta, self.ks)
                zu = self.zlam_u(lams, r.u)
                eta = fixed + zu
                mu, sw, wr, pd = self.evaluate(eta, r.u)
                self._plan_u.compute(sw, zu + wr, out=self._A_u, sum_log_w=False)
                st = self.factor_u.update(theta)
                if st.ok and np.isfinite(pd):
                    return PirlsResult(r.u, r.beta, eta, mu, pd, st.logdet_Lz, r.iterations, True)
        return self.fit_u(theta, beta, u0, compiled=False)

    def _fit_u_compiled(
        self, theta: np.ndarray, fixed: np.ndarray, u: np.ndarray, beta: np.ndarray
    ) -> PirlsResult:
        res = self._compiled(self._plan_u, theta, fixed, self._X0, np.empty(0), u)
        res.beta = beta
        return res

    def _workspace(self, plan: CrossProductPlan) -> tuple[np.ndarray, ...]:
        """The compiled PIRLS's buffers for one plan, made on first use: the trailing factor
        G (m × m), the float and index workspaces, and the dense Schur workspace (m × n1 when
        the first block column is mostly filled and not tiny, else empty)."""
        ws = self._ws.get(id(plan))
        if ws is None:
            m, n1, npair = plan.m, plan.n1, plan.rows.size
            dense = npair * 3 >= n1 * m and 1024 <= n1 * m <= 4_000_000
            size = PK.workspace_sizes(self.n, n1, npair, m, self.q, plan.p)
            iwork = np.zeros(m, dtype=np.int64)
            if not dense and m <= 4000:  # the sparse columns' pattern, once
                pattern = PK.trailing_pattern(m, plan.p + 1, plan.rrows, plan.ptr, plan.rows)
                if pattern[0] > 0:
                    iwork = np.concatenate([iwork, pattern])
            ws = (np.zeros((m, m)), np.zeros(size), iwork, np.zeros((m, n1 if dense else 0)))
            self._ws[id(plan)] = ws
        return ws

    def _compiled(
        self,
        plan: CrossProductPlan,
        theta: np.ndarray,
        fixed: np.ndarray,
        X: np.ndarray,
        beta: np.ndarray,
        u: np.ndarray,
        eta: np.ndarray | None = None,
    ) -> PirlsResult:
        """One call of the compiled PIRLS (:func:`mixedfx.glm.pirls_kernels.pirls_scalar`);
        with ``eta`` given, a cold start from that η (u and β are then outputs only)."""
        G, work, iwork, Sd = self._workspace(plan)
        scale = np.ones(plan.m)
        scale[: plan.q_rest] = theta[self._scale_index]
        L11 = np.empty(plan.n1)
        cold = eta is not None
        eta = np.array(eta, dtype=float) if cold else np.empty(self.n)
        mu = np.empty(self.n)
        assert self.codes is not None
        pd, logdet, it, conv, npass = PK.pirls_scalar(
            self.codes[0],
            self.codes[1],
            self.y,
            self.wt,
            fixed,
            X,
            beta,
            plan.r1,
            plan.z1,
            plan.rrows,
            plan.rz,
            plan.pos21,
            plan.ptr,
            plan.rows,
            float(theta[0]),
            scale,
            u,
            cold,
            self.tol,
            0.0,
            self.maxit,
            self.max_halvings,
            eta,
            mu,
            L11,
            G,
            work,
            iwork,
            Sd,
        )
        res = PirlsResult(u, beta, eta, mu, pd, logdet, it, conv, L11, passes=npass)
        p = X.shape[1]
        if p:
            self._last_L11 = L11 if np.isfinite(pd) else None
        if p and np.isfinite(pd):
            q = plan.q_rest
            res.Rx = lower_triangle(G[q : q + p, q : q + p]).T
        return res

    def mode_slopes(self, theta: np.ndarray) -> np.ndarray | None:
        """∂û/∂β (q × p) at the mode the last compiled :meth:`fit_ub` found at θ (its factor
        is still in the workspace), or None where PIRLS does not run compiled."""
        if not self.compiled or self._plan_b is None or id(self._plan_b) not in self._ws:
            return None
        plan = self._plan_b
        G, work, _, _ = self._ws[id(plan)]
        if self._last_L11 is None:
            return None
        scale = np.ones(plan.m)
        scale[: plan.q_rest] = np.asarray(theta, dtype=float)[self._scale_index]
        J = np.empty((self.q, plan.p))
        PK.mode_slopes(G, work, self._last_L11, plan.ptr, plan.rows, scale, plan.p + 1, J)
        return J

    def theta_slopes(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray | None:
        """∂(û, β̂)/∂θ ((q + p) × len θ) at the joint mode (u, β) the last compiled joint PIRLS
        found at θ (its factor is still in the workspace), or None where there is none.

        At the mode, g = [Λ'Z'W r − u; X'W r] = 0 (r the working residuals) and −∂g/∂(u, β)
        is H, the penalized system's matrix. θ_j scales the u of its term, ũ_j (u with the
        other terms' entries zeroed): ∂η/∂θ_j = ZΛũ_j/θ_j, and with Λ'Z'W r = u at the mode,
        ∂g/∂θ_j = (2 [ũ_j; 0] − H [ũ_j; 0]) / θ_j, so by the implicit function theorem

            ∂(û, β̂)/∂θ_j = H⁻¹ ∂g/∂θ_j = (2 H⁻¹ [ũ_j; 0] − [ũ_j; 0]) / θ_j,

        one solve through the factor per θ_j (exact for canonical links, where the Fisher
        matrix is the Hessian; a θ_j of 0 gets slope 0).
        """
        plan = self._plan_b
        if not self.compiled or plan is None or id(plan) not in self._ws:
            return None
        L11 = self._last_L11
        if L11 is None:
            return None
        G, work, _, _ = self._ws[id(plan)]
        theta = np.asarray(theta, dtype=float)
        scale = np.ones(plan.m)
        scale[: plan.q_rest] = theta[self._scale_index]
        q, p = self.q, plan.p
        owner = np.concatenate([np.zeros(plan.n1, dtype=np.intp), self._scale_index])
        J = np.zeros((q + p, theta.size))
        b, x = np.zeros(q + p), np.empty(q + p)
        for j in range(theta.size):
            if theta[j] == 0.0:
                continue
            b[:q] = np.where(owner == j, u, 0.0)
            PK.joint_solve(G, work, L11, plan.ptr, plan.rows, scale, p + 1, b, x)
            J[:, j] = (2.0 * x - b) / theta[j]
        return J

    def mode_evaluator(
        self, joint: bool, tol_stay: float = 0.0
    ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, float]] | None:
        """A lean compiled PIRLS for an optimizer's many evaluations, or None where PIRLS
        does not run compiled (vector-valued terms, a user's family).

        The returned function ``(θ, β, u) ↦ (penalized deviance Σ d_i + ‖û‖², log|L|)`` finds
        the mode from (u, β) as a warm start and leaves it in ``u`` (and, with ``joint``,
        β iterated too and left in ``beta``; otherwise β is held fixed): what
        :meth:`fit_u`/:meth:`fit_ub` compute, without a :class:`PirlsResult` (its η, μ and
        factor diagonal land in buffers the next call overwrites) and with every argument
        that does not change between calls bound once.
        """
        if not self.compiled or self.codes is None:
            return None
        plan = self._joint_plan() if joint else self._plan_u
        G, work, iwork, Sd = self._workspace(plan)
        scale = np.ones(plan.m)
        qr, idx = plan.q_rest, self._scale_index
        L11, eta, mu = np.empty(plan.n1), np.empty(self.n), np.empty(self.n)
        fbuf = np.empty(self.n)
        kern, (fam, link) = PK.pirls_scalar, self.codes
        y, wt, X, off = self.y, self.wt, self.X, self.offset
        X0, b0 = self._X0, np.empty(0)
        pl = (plan.r1, plan.z1, plan.rrows, plan.rz, plan.pos21, plan.ptr, plan.rows)
        opts = (self.tol, tol_stay, self.maxit, self.max_halvings)

        def evaluate(theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> tuple[float, float]:
            scale[:qr] = theta[idx]
            if joint:
                fixed, XX, bb = off, X, beta
            else:  # o + Xβ into a buffer of its own
                fixed, XX, bb = np.add(np.matmul(X, beta, out=fbuf), off, out=fbuf), X0, b0
            pd, logdet, _, _, _ = kern(
                fam, link, y, wt, fixed, XX, bb, *pl, theta[0], scale, u, False, *opts,
                eta, mu, L11, G, work, iwork, Sd,
            )  # fmt: skip
            if joint:  # the workspace's factor is now this mode's (theta_slopes reads it)
                self._last_L11 = L11 if math.isfinite(pd) else None
            return pd, logdet

        return evaluate

    def kernel_inputs(self, joint: bool) -> dict[str, Any] | None:
        """What the compiled PIRLS reads for u alone or (``joint``) u and β together, for a
        compiled caller that binds it once (:mod:`mixedfx.glm.laplace_objective`), or None
        where PIRLS does not run compiled: the family's codes, the cross-product plan, the
        workspaces (G, work, iwork, Sd; the caller's evaluations overwrite them), the index of
        each later random effect's θ, and the iteration's settings. With ``joint`` the
        factor of the last :meth:`fit_ub` is forgotten (:meth:`mode_slopes` needs a new one).
        """
        if not self.compiled or self.codes is None:
            return None
        plan = self._joint_plan() if joint else self._plan_u
        if joint:
            self._last_L11 = None
        return {
            "codes": self.codes,
            "plan": plan,
            "workspace": self._workspace(plan),
            "scale_index": self._scale_index,
            "tol": self.tol,
            "maxit": self.maxit,
            "max_halvings": self.max_halvings,
        }

    def fit_ub(
        self,
        theta: np.ndarray,
        u0: np.ndarray | None,
        beta0: np.ndarray | None,
        eta_start: np.ndarray | None = None,
        compiled: bool = True,
    ) -> PirlsResult:
        """Conditional modes of u and β together for fixed θ (lme4's nAGQ = 0 stage).

        Parameters
        ----------
        u0, beta0 : arrays or None
            Warm start. When None, the first iteration starts from ``eta_start`` (the
            family's starting μ on the link scale, as glm does) and takes the full step.
        compiled : bool
            With all-scalar terms, run compiled; False runs through ``factor_b``, leaving it
            (and its R_X) at the mode.
        """
        if self.compiled and compiled:
            plan = self._joint_plan()
            th = np.asarray(theta, dtype=float)
            if u0 is None or beta0 is None:
                assert eta_start is not None
                u, beta = np.zeros(self.q), np.zeros(self.X.shape[1])
                return self._compiled(plan, th, self.offset, self.X, beta, u, eta_start)
            u, beta = np.array(u0, float, copy=True), np.array(beta0, float, copy=True)
            return self._compiled(plan, th, self.offset, self.X, beta, u)
        plan, f = self._ensure_joint()
        lams = lambda_blocks(theta, self.ks)
        if u0 is None or beta0 is None:
            assert eta_start is not None
            _, sw, wr, _ = self.evaluate(eta_start, np.zeros(0))
            plan.compute(sw, eta_start - self.offset + wr, out=self._A_b, sum_log_w=False)
            if not f.update(theta).ok:
                nan = np.full(self.n, np.nan)
                return PirlsResult(
                    np.zeros(self.q), np.zeros(self.X.shape[1]), nan, nan, np.inf, np.inf, 0, False
                )
            u, beta = f.solve()
        else:
            u, beta = np.array(u0, float, copy=True), np.array(beta0, float, copy=True)
        return self._iterate(theta, lams, None, u, beta)

    def _iterate(
        self,
        theta: np.ndarray,
        lams: list[np.ndarray],
        fixed: np.ndarray | None,
        u: np.ndarray,
        beta: np.ndarray,
    ) -> PirlsResult:
        """Fisher scoring with step halving, for u alone (``fixed`` = o + Xβ given, ``beta``
        carried along) or for u and β together (``fixed`` None, ``beta`` the start)."""
        joint = fixed is None
        if joint:
            plan, A, f = self._plan_b, self._A_b, self.factor_b
            X, off = self.X, self.offset
        else:
            plan, A, f = self._plan_u, self._A_u, self.factor_u

        def at(uu: np.ndarray, bb: np.ndarray | None):
            zu = self.zlam_u(lams, uu)
            base = off + X @ bb if joint else fixed
            eta = base + zu
            mu, sw, wr, pd = self.evaluate(eta, uu)
            return zu, eta, mu, sw, wr, pd

        zu, eta, mu, sw, wr, pd = at(u, beta)
        if not np.isfinite(pd) and not joint:  # a start the family cannot take: u = 0
            u = np.zeros_like(u)
            zu, eta, mu, sw, wr, pd = at(u, beta)
        converged = False
        logdet = np.inf
        it = 0
        for it in range(1, self.maxit + 1):
            # working response: what ZΛu (and Xβ) should explain, the offset taken off
            ywork = (eta - off if joint else zu) + wr
            plan.compute(sw, ywork, out=A, sum_log_w=False)
            st = f.update(theta)
            if not st.ok:  # the system cannot be factored (in double precision): no mode
                return PirlsResult(u, beta, eta, mu, np.inf, np.inf, it, False)
            logdet = st.logdet_Lz
            u_new, b_new = f.solve()
            du = u_new - u
            size = np.max(np.abs(du), initial=0.0)
            scale = 1.0 + np.max(np.abs(u), initial=0.0)
            if joint:
                db = b_new - beta
                size = max(size, np.max(np.abs(db), initial=0.0))
                scale = max(scale, 1.0 + np.max(np.abs(beta), initial=0.0))
            if size <= self.tol * scale:
                # take the last (tiny) step and refactor there: log|L| depends on u to first
                # order, so this keeps the criterion smooth to rounding (finite differences)
                converged = True
                u = u_new
                beta = b_new if joint else beta
                zu, eta, mu, sw, wr, pd = at(u, beta)
                plan.compute(sw, (eta - off if joint else zu) + wr, out=A, sum_log_w=False)
                logdet = f.update(theta).logdet_Lz
                break
            s, moved = 1.0, False
            for _ in range(self.max_halvings):
                un = u + s * du
                bn = beta + s * db if joint else beta
                cand = at(un, bn)
                if cand[-1] <= pd + 1e-11 * abs(pd):
                    u, beta = un, bn
                    zu, eta, mu, sw, wr, pd = cand
                    moved = True
                    break
                s *= 0.5
            if not moved:  # no decrease possible: at the mode to rounding
                converged = True
                plan.compute(sw, (eta - off if joint else zu) + wr, out=A, sum_log_w=False)
                logdet = f.update(theta).logdet_Lz
                break
        return PirlsResult(u, beta, eta, mu, pd, logdet, it, converged)


def gauss_hermite(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w of the k-point Gauss–Hermite rule for the standard normal
    density: Σ w f(z) ≈ E f(Z), Z ~ N(0, 1) (lme4's ``GHrule``)."""
    z, w = np.polynomial.hermite_e.hermegauss(k)
    return z, w / w.sum()


def agq_correction(
    pirls: PIRLS,
    theta: np.ndarray,
    res: PirlsResult,
    nodes: np.ndarray,
    weights: np.ndarray,
) -> float:
    """Adaptive Gauss–Hermite quadrature for one scalar random-effects term.

    With one scalar term the levels' random effects are independent given y, and each
    level's integral is one-dimensional. Centering the rule at the mode û_j and scaling it
    by the conditional standard deviation 1/L_j (L_j the level's diagonal of the factor):

        −2 log ∫ p(y_j | u) φ(u) du  ≈  D_j(û_j) + c_j + 2 log L_j
                − 2 log Σ_k w_k exp(z_k²/2 − (D_j(û_j + z_k/L_j) − D_j(û_j))/2),

    D_j(u) = Σ_{i in j} d_i + u². The Laplace approximation is the one-node case, so this
    returns the quantity to add to the Laplace value: −2 Σ_j log Σ_k (...).
    """
    t = pirls.terms[0]
    lam = float(theta[0])
    refs, zt = t.refs, t.Zt[:, 0]
    nl = t.nlevels
    Lj = res.L11 if res.L11 is not None else pirls.factor_u.L11[:, 0, 0]
    uj = res.u
    fixed = res.eta - lam * zt * uj[refs]
    fam, y, wt = pirls.family, pirls.y, pirls.wt
    d0 = np.bincount(refs, weights=fam.dev_resids(y, res.mu, wt), minlength=nl) + uj * uj
    acc = np.zeros((nodes.size, nl))
    for k, (z, w) in enumerate(zip(nodes, weights, strict=True)):
        if z == 0.0:
            acc[k] = np.log(w)
            continue
        uk = uj + z / Lj
        mu = fam.linkinv(fixed + lam * zt * uk[refs])
        dk = np.bincount(refs, weights=fam.dev_resids(y, mu, wt), minlength=nl) + uk * uk
        acc[k] = np.log(w) + 0.5 * z * z - 0.5 * (dk - d0)
    mx = acc.max(axis=0)
    lse = mx + np.log(np.exp(acc - mx).sum(axis=0))
    return float(-2.0 * lse.sum())
