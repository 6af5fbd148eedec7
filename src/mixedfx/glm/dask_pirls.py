"""PIRLS over rows on Dask: one map-reduce pass per iteration over persisted partitions.

The algorithm is :class:`mixedfx.glm.pirls.PIRLS`'s (Fisher scoring with step halving, for u
alone or u and β together); what changes is where the rows are. Each partition is turned once
into the model's rows on the global levels with its table keys worked out
(:class:`~mixedfx.linalg.sufficient.ChunkPlan`), and kept on the workers (``dask.persist``).
Then every evaluation of the penalized deviance at a point (θ, β, u) is one pass: each
partition computes η, μ, the working weights and residuals and its deviance, and forms its
sufficient statistics with those weights; the tree-summed statistics are laid out as the
cross-products of the whole data (the same layout every time) and factored on the client.
A step that is accepted therefore brings the next iteration's system with it: one pass per
iteration, one more per halving.

The conditional mode, log|L| and the penalized deviance are those of the in-memory PIRLS up to
the order of summation. ``passes`` counts the passes made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..frame.dask_frame import DaskDesign, DaskSource
from ..linalg.factor import BlockedFactor, lambda_blocks
from ..linalg.sufficient import ChunkPlan, StatsLayout, SufficientStats, sum_stats
from ..linalg.zmul import b_blocks, z_times
from .families import Binomial, Family, kernel_codes
from .pirls import PirlsResult
from .pirls_kernels import glm_working

__all__ = ["DaskPIRLS"]


class _Chunk:
    """One partition's rows, response and table keys, kept on a worker."""

    def __init__(self, source: DaskSource, part: Any, family: Family, response: Callable,
                 any_trials: bool):  # fmt: skip
        d = source.design(part)
        self.n = 0
        if d is None:
            return
        y, wt, trials = response(d, family)
        self.n = d.n
        self.y, self.wt = np.asarray(y, dtype=float), np.asarray(wt, dtype=float)
        self.off = d.offset if d.offset is not None else np.zeros(d.n)
        self.X = d.X
        self.terms = d.terms
        self.plan = ChunkPlan(d)
        self.codes = kernel_codes(family)
        if isinstance(family, Binomial) and any_trials and not np.any(trials > 1):
            # Binomial.aic counts trials when any row of the *data* has more than one: one
            # row without weight (y = 0 of 2 trials) makes this chunk's test say so too
            yy, tt, ww = np.r_[self.y, 0.0], np.r_[trials, 2.0], np.r_[self.wt, 0.0]
            self.aic_const = family.saturated_aic(yy, tt, ww)
        else:
            self.aic_const = family.saturated_aic(self.y, trials, self.wt)

    def evaluate(self, family: Family, eta: np.ndarray):
        """μ, √(working weights), working residuals and Σ deviance residuals at η."""
        if self.codes is None:
            with np.errstate(all="ignore"):
                mu = np.asarray(family.linkinv(eta), dtype=float)
                d = np.asarray(family.mu_eta(eta), dtype=float)
                sw = np.sqrt(self.wt * d * d / np.asarray(family.variance(mu), dtype=float))
                wr = (self.y - mu) / d
                dev = float(np.sum(family.dev_resids(self.y, mu, self.wt)))
            return mu, sw, wr, dev
        n = self.n
        mu, sw, wr = np.empty(n), np.empty(n), np.empty(n)
        dev = glm_working(*self.codes, eta, self.y, self.wt, mu, sw, wr, True)
        return mu, sw, wr, float(dev)


def _make_chunk(part: Any, source: DaskSource, family: Family, response: Callable,
                any_trials: bool) -> _Chunk:  # fmt: skip
    return _Chunk(source, part, family, response, any_trials)


def _chunk_pass(chunk: _Chunk, family: Family, mode: str, params: dict[str, Any]) -> Any:
    """One partition's part of a pass (see :meth:`DaskPIRLS._pass`)."""
    if chunk.n == 0:
        return None
    if mode == "aic":
        return {"aic": float(chunk.aic_const or 0.0)}
    joint = mode in ("start", "joint")
    if mode == "start":
        eta = np.asarray(family.linkfun(family.mustart(chunk.y, chunk.wt)), dtype=float)
        zu = None
    else:
        lams = lambda_blocks(params["theta"], [t.k for t in chunk.terms])
        zu = z_times(chunk.terms, b_blocks(chunk.terms, lams, params["u"]))
        eta = chunk.off + chunk.X @ params["beta"] + zu
    mu, sw, wr, dev = chunk.evaluate(family, eta)
    if mode == "extreme":
        eps = 10.0 * np.finfo(float).eps
        bad = (mu < eps) | (mu > 1.0 - eps) if family.name == "binomial" else mu < eps
        return {"extreme": float(bad.sum())}
    if joint:
        ywork, X = eta - chunk.off + wr, chunk.X
    else:
        ywork, X = zu + wr, np.empty((chunk.n, 0))
    st = chunk.plan.stats(sw, ywork, X)
    st.extra = {"dev": dev}
    return st


def _scalars(parts: list[dict[str, float] | None]) -> dict[str, float]:
    """Tree sum of passes that carry only numbers."""
    out: dict[str, float] = {}
    for p in parts:
        for k, v in (p or {}).items():
            out[k] = out.get(k, 0.0) + v
    return out


class DaskPIRLS:
    """PIRLS over a Dask-backed design, with :class:`~mixedfx.glm.pirls.PIRLS`'s interface
    (``fit_u``, ``fit_ub``, ``factor_u``, ``factor_b``) for the generalized engine.

    Parameters
    ----------
    design : DaskDesign
    family : Family
    response : callable
        ``response(design, family) -> (y, prior weights, trials)`` for a partition's rows
        (the generalized engine's ``family_response``).
    """

    def __init__(self, design: DaskDesign, family: Family, response: Callable):
        import dask

        self.design = design
        self.family = family
        self.terms = design.terms
        self.ks = [t.k for t in self.terms]
        self.n = design.n
        self.q = design.q
        self.p = design.fixed.p
        self.tol = 1e-6 if family.canonical else 1e-10
        self.maxit = 60
        self.max_halvings = 30
        self.passes = 0
        src = design.source
        src_d = dask.delayed(src, pure=False)
        any_trials = bool(src.max_trials > 1)
        chunks = [
            dask.delayed(_make_chunk, pure=False)(p, src_d, family, response, any_trials)
            for p in design.ddf.to_delayed()
        ]
        self._chunks = list(dask.persist(*chunks))
        self.passes += 1
        self.aic_const = float(self._pass("aic", None)["aic"])
        nls = [t.nlevels for t in self.terms]
        # the layouts (u alone; u and β) from a first pass of each kind, at u = 0, β = 0
        theta0 = design.theta_start()
        st_u = self._pass("u", {"theta": theta0, "beta": np.zeros(self.p), "u": np.zeros(self.q)})
        self._layout_u = StatsLayout(st_u, nls, self.ks)
        self._A_u = self._layout_u.fill(st_u)
        self.factor_u = BlockedFactor(self._A_u, self.terms, grouped=False)
        self._layout_b: StatsLayout | None = None
        self.factor_b: BlockedFactor | None = None
        self._nls = nls

    # ------------------------------------------------------------------ passes
    def _pass(self, mode: str, params: dict[str, Any] | None) -> Any:
        """One map-reduce pass over the persisted partitions: "u" (statistics for u alone at
        (θ, β, u)), "joint" (for u and β), "start" (joint, at the family's starting μ),
        "aic" (the saturated log-likelihood), "extreme" (rows with μ at 0 or 1)."""
        import dask

        self.passes += 1
        fam = dask.delayed(self.family, pure=False)
        prm = dask.delayed(params, pure=False) if params is not None else None
        tasks = [dask.delayed(_chunk_pass, pure=False)(c, fam, mode, prm) for c in self._chunks]
        comb = _scalars if mode in ("aic", "extreme") else sum_stats
        combine = dask.delayed(comb, pure=False)
        while len(tasks) > 1:
            tasks = [combine(tasks[i : i + 8]) for i in range(0, len(tasks), 8)]
        return tasks[0].compute()

    def _ensure_joint(self, st: SufficientStats) -> tuple[StatsLayout, BlockedFactor]:
        if self._layout_b is None:
            self._layout_b = StatsLayout(st, self._nls, self.ks)
            self._A_b = self._layout_b.fill(st)
            self.factor_b = BlockedFactor(self._A_b, self.terms, grouped=False)
        assert self.factor_b is not None
        return self._layout_b, self.factor_b

    def count_extreme(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> int:
        """Rows whose fitted μ is numerically 0 (or 1 for binomial)."""
        st = self._pass("extreme", {"theta": theta, "beta": beta, "u": u})
        return int(st.get("extreme", 0.0))

    # ------------------------------------------------------------ iterations
    def blas_threads(self) -> Any:
        """:meth:`BlockedFactor.blas_threads` of the factor over u."""
        return self.factor_u.blas_threads()

    def fit_u_factored(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray) -> PirlsResult:
        """:meth:`fit_u` (its factor is ``factor_u``, at the mode it returns)."""
        return self.fit_u(theta, beta, u0)

    def mode_slopes(self, theta: np.ndarray) -> None:
        """None: the slopes of the mode are offered by the compiled PIRLS only
        (:meth:`mixedfx.glm.pirls.PIRLS.mode_slopes`)."""
        return None

    def theta_slopes(self, theta: np.ndarray, u: np.ndarray) -> None:
        """None: the slopes of the joint mode over θ are offered by the compiled PIRLS only
        (:meth:`mixedfx.glm.pirls.PIRLS.theta_slopes`)."""
        return None

    def mode_evaluator(self, joint: bool, tol_stay: float = 0.0) -> None:
        """None: PIRLS over partitions has no lean compiled form (the engine then calls
        :meth:`fit_u` and :meth:`fit_ub`, as :meth:`mixedfx.glm.pirls.PIRLS.mode_evaluator`
        explains)."""
        return None

    def fit_u(
        self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray, compiled: bool = True
    ) -> PirlsResult:
        """The conditional mode û for fixed (θ, β), starting from ``u0`` (as
        :meth:`mixedfx.glm.pirls.PIRLS.fit_u`; ``compiled`` is ignored)."""
        theta = np.asarray(theta, dtype=float)
        u = np.array(u0, dtype=float, copy=True)
        return self._iterate(theta, False, u, np.asarray(beta, dtype=float))

    def fit_ub(
        self,
        theta: np.ndarray,
        u0: np.ndarray | None,
        beta0: np.ndarray | None,
        eta_start: np.ndarray | None = None,
        compiled: bool = True,
    ) -> PirlsResult:
        """Conditional modes of u and β together for fixed θ (lme4's nAGQ = 0 stage); without
        a warm start, from the family's starting μ (``eta_start`` is not used: each partition
        forms its own)."""
        theta = np.asarray(theta, dtype=float)
        if u0 is None or beta0 is None:
            st = self._pass("start", {})
            layout, f = self._ensure_joint(st)
            layout.fill(st, out=self._A_b)
            if not f.update(theta).ok:
                nan = np.zeros(0)
                return PirlsResult(np.zeros(self.q), np.zeros(self.p), nan, nan, np.inf, np.inf,
                                   0, False)  # fmt: skip
            u, beta = f.solve()
        else:
            u, beta = np.array(u0, float, copy=True), np.array(beta0, float, copy=True)
        return self._iterate(theta, True, u, beta)

    def _iterate(self, theta: np.ndarray, joint: bool, u: np.ndarray, beta: np.ndarray
                 ) -> PirlsResult:  # fmt: skip
        """Fisher scoring with step halving, as :meth:`mixedfx.glm.pirls.PIRLS._iterate`;
        each evaluation of the penalized deviance is one pass that also brings the
        statistics of the point evaluated."""
        mode = "joint" if joint else "u"

        def at(uu: np.ndarray, bb: np.ndarray) -> tuple[SufficientStats, float]:
            st = self._pass(mode, {"theta": theta, "beta": bb, "u": uu})
            dev = st.extra["dev"]
            return st, (dev + float(uu @ uu)) if np.isfinite(dev) else np.inf

        st, pd = at(u, beta)
        if joint:
            layout, f = self._ensure_joint(st)
            A = self._A_b
        else:
            layout, f, A = self._layout_u, self.factor_u, self._A_u
        if not np.isfinite(pd) and not joint:
            u = np.zeros_like(u)
            st, pd = at(u, beta)
        converged = False
        logdet = np.inf
        it = 0
        empty = np.zeros(0)
        for it in range(1, self.maxit + 1):
            layout.fill(st, out=A)
            s = f.update(theta)
            if not s.ok:
                return PirlsResult(u, beta, empty, empty, np.inf, np.inf, it, False)
            logdet = s.logdet_Lz
            u_new, b_new = f.solve()
            du = u_new - u
            size = np.max(np.abs(du), initial=0.0)
            scale = 1.0 + np.max(np.abs(u), initial=0.0)
            db = b_new - beta if joint else None
            if joint:
                size = max(size, np.max(np.abs(db), initial=0.0))
                scale = max(scale, 1.0 + np.max(np.abs(beta), initial=0.0))
            if size <= self.tol * scale:
                converged = True
                u = u_new
                beta = b_new if joint else beta
                st, pd = at(u, beta)
                layout.fill(st, out=A)
                logdet = f.update(theta).logdet_Lz
                break
            step, moved = 1.0, False
            for _ in range(self.max_halvings):
                un = u + step * du
                bn = beta + step * db if joint else beta
                cst, cpd = at(un, bn)
                if cpd <= pd + 1e-11 * abs(pd):
                    u, beta, st, pd = un, bn, cst, cpd
                    moved = True
                    break
                step *= 0.5
            if not moved:
                converged = True
                layout.fill(st, out=A)
                logdet = f.update(theta).logdet_Lz
                break
        return PirlsResult(u, beta, empty, empty, pd, logdet, it, converged)
