"""Crossed random effects beyond the dense block: the method of moments and conjugate gradients.

For y = Xβ + Σ_f Z_f a_f + e with scalar random intercepts a_f ~ N(0, σ_f² I) for R grouping
factors (crossed or nested) and e ~ N(0, σ_e² I), an exact (REML/ML) fit factors a dense block
as large as the levels of all factors but the largest; for two factors of tens of thousands of
levels each that is tens of GB and hours. This module fits such models in O(N) work and memory.

**Variance components** by the method of moments of Gao & Owen (Electronic Journal of Statistics
2017, two crossed factors; Statistica Sinica 2020, covariates), written here for any number of
factors. With r = y − Xβ̂_OLS and, for factor f, the within-level sums of squares of pairs

    U_0 = Σ_{i<i'} (r_i − r_i')²               = N Σ r² − (Σ r)²,
    U_f = Σ_{i<i' same level of f} (r_i − r_i')² = Σ_ℓ (n_ℓ Σ_{i∈ℓ} r_i² − (Σ_{i∈ℓ} r_i)²),

the expectations are linear in the variance components (E(r_i − r_i')² = 2σ_e² + 2Σ_g σ_g² for
the factors g on which i and i' differ):

    E U_0 = 2 [Σ_g σ_g² (P − P_g) + σ_e² P],
    E U_f = 2 [Σ_{g≠f} σ_g² (P_f − P_fg) + σ_e² P_f],

with P = N(N − 1)/2, P_f = Σ_ℓ n_ℓ(n_ℓ − 1)/2 (pairs sharing a level of f) and P_fg the pairs
sharing a level of f and one of g (Σ over the cells of the f × g table of c(c − 1)/2). The
R + 1 equations are solved with the components held ≥ 0 (non-negative least squares, which is
the exact solution when that is non-negative). Everything comes from the sufficient statistics
(:mod:`mixedfx.linalg.sufficient`): per-level counts and sums, the pair tables, and the
per-level Σ xy xy'. The residuals are OLS residuals (Gao & Owen's choice); the equations ignore
the O(p/N) effect of estimating β.

**Fixed effects and conditional modes** by generalized least squares at those components, as
Ghosh, Hastie & Owen (Annals of Statistics 2022) do with backfitting: the penalized normal
equations of lme4's system with λ_f = σ_e²/σ_f²,

    [Z'Z + diag(λ)  Z'X] [a]   [Z'y]
    [X'Z            X'X] [β] = [X'y],

are solved by conjugate gradients preconditioned by their diagonal blocks (diag(n_ℓ + λ_f) per
factor, (X'X)⁻¹): the block Jacobi splitting whose Gauss–Seidel form is their backfitting. Each
iteration is one product with the pair tables, O(N). β̂ is the GLS estimate and â the BLUPs;
vcov(β̂) = (X'V⁻¹X)⁻¹ = σ_e² [M⁻¹]_ββ (p more solves).

**Standard errors of the variance components** by a parametric bootstrap of the moment step
(simulate from the fitted components, recompute U, solve): O(N) per replicate, from the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import nnls

from .sufficient import SufficientStats

__all__ = [
    "MomentsFit",
    "MomentsSolver",
    "moment_components",
    "moment_equations",
    "moment_start",
    "residual_u_statistics",
]


@dataclass
class MomentsFit:
    """The answer of the approximate method, in the units of the statistics."""

    sigma2: np.ndarray
    """σ_f² per factor (model order)."""
    sigma2_e: float
    beta: np.ndarray
    vcov_beta: np.ndarray
    """(X'V⁻¹X)⁻¹ at the estimated components."""
    modes: list[np.ndarray]
    """â_f per factor (levels,)."""
    cond_var: list[np.ndarray]
    """σ_e² / (n_ℓ + λ_f): the conditional variance of each level's effect given the other
    factors' effects (the diagonal of the preconditioner, smaller than the full one)."""
    cg_iterations: list[int]
    se_sigma2: np.ndarray | None = None
    se_sigma2_e: float = float("nan")
    nboot: int = 0
    notes: list[str] = field(default_factory=list)


class MomentsSolver:
    """The method of moments and the GLS solve from a model's sufficient statistics.

    Parameters
    ----------
    stats : SufficientStats
        Unweighted statistics with ``level_xy`` (per-level Σ xy xy') and scalar intercept
        terms (z = 1), in the model's term order.
    nls : levels per term.
    """

    def __init__(self, stats: SufficientStats, nls: Sequence[int], keep: np.ndarray | None = None):
        if stats.level_xy is None:
            raise ValueError("the method of moments needs the per-level sums (level_xy)")
        p_full = stats.xy.shape[0] - 1
        xc = np.r_[np.arange(p_full) if keep is None else np.asarray(keep), p_full].astype(int)
        self.stats = stats
        self.nls = [int(x) for x in nls]
        self.R = len(self.nls)
        self.N = float(stats.n)
        xy = stats.xy[np.ix_(xc, xc)]
        self.xy = xy
        self.p = xy.shape[0] - 1
        self.XtX = xy[:-1, :-1]
        self.Xty = xy[:-1, -1]
        self.yty = float(xy[-1, -1])
        tabs = [stats.first, *stats.rest]
        self.counts = []
        self.zxy = []  # per factor: (levels, p + 1) sums of [x | y] per level
        for t, nl in zip(tabs, self.nls, strict=True):
            c = np.zeros(nl)
            c[t.keys] = t.vals[:, 0, 0]
            z = np.zeros((nl, self.p + 1))
            z[t.keys] = t.vals[:, 0, 1:][:, xc]
            self.counts.append(c)
            self.zxy.append(z)
        self.level_xy = []
        for t, nl in zip(stats.level_xy, self.nls, strict=True):
            b = np.zeros((nl, self.p + 1, self.p + 1))
            b[t.keys] = t.vals[:, xc][:, :, xc]
            self.level_xy.append(b)
        # pair tables as sparse count matrices: (f, g) with f < g in model order
        self.pairs: dict[tuple[int, int], sp.csr_matrix] = {}
        for i, t in enumerate(stats.first_pairs):
            g = 1 + i
            self.pairs[0, g] = _sparse(t.keys, t.vals[:, 0, 0], self.nls[0], self.nls[g])
        for (i, j), t in stats.rest_pairs.items():  # i > j among later terms
            a, b = 1 + i, 1 + j
            self.pairs[b, a] = _sparse(t.keys, t.vals[:, 0, 0], self.nls[a], self.nls[b]).T.tocsr()

    # ------------------------------------------------------------ moments
    def design_matrix(self) -> np.ndarray:
        """The (R+1) x (R+1) matrix of the moment equations (rows U_0, U_1..U_R; columns
        σ_1²..σ_R², σ_e²), without the factor 2."""
        R = self.R
        pair_counts = {
            (f, g): self.pairs[(min(f, g), max(f, g))].data
            for f in range(R)
            for g in range(R)
            if g != f
        }
        return moment_equations(self.N, list(self.counts), pair_counts)

    def u_statistics(self, beta: np.ndarray) -> np.ndarray:
        """U_0 and U_f of the residuals y − Xβ, from the statistics."""
        v = np.r_[-beta, 1.0]
        S1 = [z @ v for z in self.zxy]  # per-level Σ r
        s1 = float(S1[0].sum())
        s2 = float(v @ self.xy @ v)
        U = [self.N * s2 - s1 * s1]
        for c, s1f, B in zip(self.counts, S1, self.level_xy, strict=True):
            S2 = np.einsum("i,lij,j->l", v, B, v)
            U.append(float((c * S2).sum() - (s1f * s1f).sum()))
        return np.asarray(U) / 2.0

    def components(self, U: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
        """σ_1², ..., σ_R², σ_e² ≥ 0 solving M s = U (see :func:`moment_components`)."""
        return moment_components(self.design_matrix() if M is None else M, U)

    def ols(self) -> np.ndarray:
        return np.linalg.solve(self.XtX, self.Xty)

    # ------------------------------------------------------------ GLS
    def system(self, sigma2: np.ndarray, sigma2_e: float) -> tuple[spla.LinearOperator, Any]:
        """The penalized normal equations' matrix and its block-Jacobi preconditioner, over
        the factors with a positive variance (the others' effects are 0)."""
        active = [f for f in range(self.R) if sigma2[f] > 0]
        sizes = [self.nls[f] for f in active]
        offs = np.cumsum([0, *sizes])
        q = int(offs[-1])
        p = self.p
        blocks: list[list[sp.spmatrix | None]] = []
        diag = []
        for a, f in enumerate(active):
            row: list[sp.spmatrix | None] = []
            for b, g in enumerate(active):
                if a == b:
                    d = self.counts[f] + sigma2_e / sigma2[f]
                    diag.append(d)
                    row.append(sp.diags(d))
                elif f < g:
                    row.append(self.pairs[f, g])
                else:
                    row.append(self.pairs[g, f].T)
            row.append(sp.csr_matrix(self.zxy[f][:, :p]))
            blocks.append(row)
        xrow: list[sp.spmatrix | None] = [sp.csr_matrix(self.zxy[f][:, :p].T) for f in active]
        xrow.append(sp.csr_matrix(self.XtX))
        blocks.append(xrow)
        Msp = sp.bmat(blocks, format="csr")
        dinv = 1.0 / np.concatenate(diag) if diag else np.zeros(0)
        XtX_inv = np.linalg.inv(self.XtX)

        def precond(v: np.ndarray) -> np.ndarray:
            out = np.empty_like(v)
            out[:q] = dinv * v[:q]
            out[q:] = XtX_inv @ v[q:]
            return out

        P = spla.LinearOperator(Msp.shape, matvec=precond, dtype=float)
        rhs_z = np.concatenate([self.zxy[f][:, p] for f in active]) if active else np.zeros(0)
        self._active, self._offs, self._rhs = active, offs, np.r_[rhs_z, self.Xty]
        return Msp, P

    def gls(self, sigma2: np.ndarray, sigma2_e: float, rtol: float = 1e-10, maxiter: int = 2000
            ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[int], list[str]]:  # fmt: skip
        """β̂ (GLS), â per factor, (M⁻¹)_ββ, CG iterations per solve, notes."""
        Msp, P = self.system(sigma2, sigma2_e)
        active, offs, rhs = self._active, self._offs, self._rhs
        q, p = int(offs[-1]), self.p
        iters: list[int] = []
        notes: list[str] = []

        def solve(b: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
            count = [0]

            def cb(_: np.ndarray) -> None:
                count[0] += 1

            x, info = spla.cg(Msp, b, x0=x0, rtol=rtol, atol=0.0, maxiter=maxiter, M=P,
                              callback=cb)  # fmt: skip
            iters.append(count[0])
            if info != 0:
                notes.append(
                    f"conjugate gradients stopped after {count[0]} iterations without reaching "
                    f"the relative tolerance {rtol:g}"
                )
            return x

        x = solve(rhs, x0=np.r_[np.zeros(q), self.ols()])
        beta = x[q:]
        modes = [np.zeros(nl) for nl in self.nls]
        for a, f in enumerate(active):
            modes[f] = x[offs[a] : offs[a + 1]]
        Vbb = np.zeros((p, p))
        for j in range(p):
            e = np.zeros(q + p)
            e[q + j] = 1.0
            Vbb[:, j] = solve(e)[q:]
        return beta, modes, 0.5 * (Vbb + Vbb.T), iters, notes

    def fit(self) -> MomentsFit:
        """Components by moments, then GLS β̂, BLUPs and vcov(β̂)."""
        M = self.design_matrix()
        self.M = M
        beta_ols = self.ols()
        s = self.components(self.u_statistics(beta_ols), M)
        sigma2, sigma2_e = s[:-1], float(s[-1])
        notes = []
        if sigma2_e <= 0:
            raise ValueError("the residual variance is estimated as 0")
        zero = [f for f in range(self.R) if sigma2[f] <= 0]
        if zero:
            notes.append(
                "a variance component is estimated as 0 (the moment equations' solution was "
                "negative): those random effects are 0"
            )
        beta, modes, Vbb, iters, cg_notes = self.gls(sigma2, sigma2_e)
        cv = [
            sigma2_e / (c + sigma2_e / s2) if s2 > 0 else np.zeros_like(c)
            for c, s2 in zip(self.counts, sigma2, strict=True)
        ]
        return MomentsFit(
            sigma2=sigma2,
            sigma2_e=sigma2_e,
            beta=beta,
            vcov_beta=sigma2_e * Vbb,
            modes=modes,
            cond_var=cv,
            cg_iterations=iters,
            notes=notes + cg_notes,
        )

    # ------------------------------------------------------------ bootstrap
    def bootstrap(
        self,
        fit: MomentsFit,
        X: np.ndarray,
        refs: Sequence[np.ndarray],
        nboot: int,
        seed: int = 20240501,
    ) -> tuple[np.ndarray, float]:
        """Standard errors of (σ_f², σ_e²) by a parametric bootstrap of the moment step, from
        the rows (X and each factor's level codes): simulate y* from the fitted model, solve
        the moment equations of its OLS residuals; the SD over ``nboot`` replicates."""
        rng = np.random.default_rng(seed)
        n = X.shape[0]
        XtX_inv = np.linalg.inv(self.XtX)
        mean = X @ fit.beta
        sd = np.sqrt(np.r_[fit.sigma2, fit.sigma2_e])
        out = np.empty((nboot, self.R + 1))
        for b in range(nboot):
            y = mean + sd[-1] * rng.standard_normal(n)
            for f, r in enumerate(refs):
                if sd[f] > 0:
                    y += (sd[f] * rng.standard_normal(self.nls[f]))[r]
            bo = XtX_inv @ (X.T @ y)
            res = y - X @ bo
            s1 = res.sum()
            U = [self.N * float(res @ res) - s1 * s1]
            for c, r in zip(self.counts, refs, strict=True):
                S1 = np.bincount(r, weights=res, minlength=c.size)
                S2 = np.bincount(r, weights=res * res, minlength=c.size)
                U.append(float((c * S2).sum() - (S1 * S1).sum()))
            out[b] = self.components(np.asarray(U) / 2.0, self.M)
        se = out.std(axis=0, ddof=1)
        return se[:-1], float(se[-1])


def moment_equations(
    N: float, counts: list[np.ndarray], pair_counts: dict[tuple[int, int], np.ndarray]
) -> np.ndarray:
    """The (R+1) x (R+1) matrix of the moment equations (rows U_0, U_1..U_R; columns
    σ_1²..σ_R², σ_e²), without the factor 2: P − P_g and P in the first row, P_f − P_fg and
    P_f in the row of factor f (module docstring). ``counts[f]`` are the level counts of
    factor f, ``pair_counts[(f, g)]`` the non-empty cell counts of the f × g table."""
    R = len(counts)
    P = N * (N - 1.0) / 2.0
    Pf = [float((c * (c - 1.0)).sum() / 2.0) for c in counts]
    M = np.zeros((R + 1, R + 1))
    for g in range(R):
        M[0, g] = P - Pf[g]
    M[0, R] = P
    for f in range(R):
        for g in range(R):
            if g != f:
                c = np.asarray(pair_counts[(f, g)], dtype=float)
                M[1 + f, g] = Pf[f] - float((c * (c - 1.0)).sum() / 2.0)
        M[1 + f, R] = Pf[f]
    return M


def moment_components(M: np.ndarray, U: np.ndarray) -> np.ndarray:
    """σ_1², ..., σ_R², σ_e² ≥ 0 solving M s = U (non-negative least squares with rows
    scaled to unit norm)."""
    scale = np.linalg.norm(M, axis=1)
    scale[scale == 0] = 1.0
    s, _ = nnls(M / scale[:, None], U / scale)
    return s


def residual_u_statistics(
    r: np.ndarray, refs: list[np.ndarray], counts: list[np.ndarray]
) -> np.ndarray:
    """U_0 and U_f (halved, as :func:`moment_equations` is) of residuals r, for factors with
    level codes ``refs[f]`` and level counts ``counts[f]``: one bincount pass per factor."""
    N = r.size
    U = [(N * float(r @ r) - float(r.sum()) ** 2) / 2.0]
    for ref, c in zip(refs, counts, strict=True):
        s1 = np.bincount(ref, weights=r, minlength=c.size)
        s2 = np.bincount(ref, weights=r * r, minlength=c.size)
        U.append(float((c * s2).sum() - (s1 * s1).sum()) / 2.0)
    return np.asarray(U)


def moment_start(A: Any, terms: Sequence[Any], X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """θ from the moment estimates of the variance components: a starting point for the
    exact fit of crossed or nested random intercepts, near its optimum (InstEval: (0.31, 0.45,
    0) against (0.28, 0.43, 0)), so that BOBYQA starts with a small trust region.

    Everything but the residuals' per-level sums comes from the unweighted cross-products A
    (in the units of ``y``): β_OLS from X'X and X'y, the level counts from the diagonal blocks,
    the cell counts of every pair of factors from A21 (first term × later terms) and from
    A22's off-diagonal blocks (later × later). r = y − Xβ_OLS is one pass over the rows.
    None where it does not apply (a term that is not a random intercept) or the equations
    give no positive residual variance.
    """
    if any(t.k != 1 or list(t.columns) != ["(Intercept)"] for t in terms):
        return None
    q, p, m = A.q_rest, A.p, A.m
    XtX = A.A22[q : q + p, q : q + p]
    Xty = A.A22[m - 1, q : q + p]
    try:
        beta = np.linalg.solve(XtX, Xty)
    except np.linalg.LinAlgError:
        return None
    r = y - X @ beta
    R = len(terms)
    counts = [np.asarray(A.A11[:, 0, 0], dtype=float)]
    spans = []
    pos = 0
    for t in terms[1:]:
        spans.append((pos, pos + t.nlevels))
        counts.append(np.diag(A.A22)[pos : pos + t.nlevels].astype(float))
        pos += t.nlevels
    pair_counts: dict[tuple[int, int], np.ndarray] = {}
    re_rows = A.rows < q
    for g, (a, b) in enumerate(spans, start=1):
        sel = re_rows & (A.rows >= a) & (A.rows < b)
        pair_counts[(0, g)] = pair_counts[(g, 0)] = A.vals[sel, 0]
        for h, (c, e) in enumerate(spans[g:], start=g + 1):
            block = A.A22[c:e, a:b]  # the lower triangle: rows of the later term h
            pair_counts[(g, h)] = pair_counts[(h, g)] = block[block != 0.0]
    M = moment_equations(float(y.size), counts, pair_counts)
    U = residual_u_statistics(r, [t.refs for t in terms], counts)
    s = moment_components(M, U)
    if not (np.all(np.isfinite(s)) and s[R] > 0.0):
        return None
    return np.sqrt(s[:R] / s[R])


def _sparse(keys: np.ndarray, vals: np.ndarray, nrow: int, ncol: int) -> sp.csr_matrix:
    """A count table keyed by row·ncol + col as a sparse matrix."""
    return sp.csr_matrix((vals, (keys // ncol, keys % ncol)), shape=(nrow, ncol))
