"""Satterthwaite denominator degrees of freedom for t and F tests of fixed effects (lmerTest).

With variance parameters φ = (θ, σ) (lmerTest's parametrization), the covariance of β̂ is
V(φ) = σ² (R_X'R_X)⁻¹(θ), and the asymptotic covariance of φ̂ is A = 2 H⁻¹, H the Hessian of
the deviance (REML criterion for REML fits) as a function of φ — not profiled over σ:

    REML:  D(θ, σ) = log|L_θ|² + log|R_X|² + (n − p) log(2πσ²) + r²(θ)/σ²
    ML:    D(θ, σ) = log|L_θ|² + n log(2πσ²) + r²(θ)/σ².

For a contrast l (a row vector), with g_i = l ∂V/∂φ_i l',

    ν = 2 (l V l')² / (g' A g).

For a q-row contrast matrix L (F test), lmerTest's ``contestMD``: eigen-decompose L V L' =
P diag(d) P', form the q one-dimensional contrasts P'L with their ν_k, then

    F = Σ_k t_k² / q,  E = Σ_k ν_k/(ν_k − 2) (over ν_k > 2),  ν = 2E/(E − q)  (E > q).

Derivatives with respect to θ are central finite differences with one Richardson
extrapolation (steps h and 2h), evaluated through the model's blocked factor; those with
respect to σ are exact. The factor is left at the fitted θ afterwards.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._lazy import stats
from ..errors import ModelError

__all__ = ["SatterthwaiteInfo", "contrast_df", "contrast_f_test", "satterthwaite_info"]


@dataclass
class SatterthwaiteInfo:
    """What Satterthwaite's df need, at the fit: V = vcov(β̂), J_i = ∂V/∂φ_i, A = cov(φ̂)."""

    V: np.ndarray
    J: np.ndarray  # (k, p, p): derivatives of V by θ_1..θ_m, σ
    A: np.ndarray  # (k, k)
    warnings: list[str]


def _state(model: Any, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(log|L|² + [REML] log|R_X|², r², (R_X'R_X)⁻¹) at θ."""
    st = model.state_at(theta)
    ld = 2.0 * st.logdet_Lz + (2.0 * st.logdet_Rx if model.REML else 0.0)
    return ld, st.pwrss, model.current_vcov_unscaled()


def satterthwaite_info(model: Any, h: float = 1e-3) -> SatterthwaiteInfo:
    """Derivatives and covariances for Satterthwaite's df of a fitted linear engine
    (cached on the engine until it is refitted)."""
    if not model.gaussian:
        raise ModelError(
            "Satterthwaite's df are for linear mixed models (lmer); a glmer fit has Wald z "
            "tests (g.coefficients), or use confint(method='boot')"
        )
    if "satterthwaite" not in model.cache:
        model.cache["satterthwaite"] = _satterthwaite_info(model, h)
    return model.cache["satterthwaite"]


def _satterthwaite_info(model: Any, h: float) -> SatterthwaiteInfo:
    theta = model.theta
    sigma = model.sigma
    m = theta.size
    n, p = model.n, model.p
    c = (n - p) if model.REML else n
    s2 = sigma * sigma
    steps = h * np.maximum(1.0, np.abs(theta))

    cache: dict[tuple, tuple[float, float, np.ndarray]] = {}

    def at(offsets: tuple[tuple[int, int], ...]) -> tuple[float, float, np.ndarray]:
        """State at θ + Σ k·h_i e_i for the (i, k) in ``offsets``."""
        key = tuple(sorted(offsets))
        if key not in cache:
            th = theta.copy()
            for i, k in offsets:
                th[i] += k * steps[i]
            cache[key] = _state(model, th)
        return cache[key]

    def g(state: tuple[float, float, np.ndarray]) -> float:
        ld, r2, _ = state
        return ld + r2 / s2  # the θ-dependent part of D at σ̂

    try:
        f0 = at(())
        _, r0, Vu0 = f0
        H = np.zeros((m + 1, m + 1))
        dr = np.zeros(m)
        dVu = np.zeros((m, p, p))
        for i in range(m):
            fp1, fm1 = at(((i, 1),)), at(((i, -1),))
            fp2, fm2 = at(((i, 2),)), at(((i, -2),))
            hi = steps[i]
            d2_h = (g(fp1) - 2 * g(f0) + g(fm1)) / hi**2
            d2_2h = (g(fp2) - 2 * g(f0) + g(fm2)) / (2 * hi) ** 2
            H[i, i] = (4 * d2_h - d2_2h) / 3
            d1 = (fp1[1] - fm1[1]) / (2 * hi)
            d2 = (fp2[1] - fm2[1]) / (4 * hi)
            dr[i] = (4 * d1 - d2) / 3
            v1 = (fp1[2] - fm1[2]) / (2 * hi)
            v2 = (fp2[2] - fm2[2]) / (4 * hi)
            dVu[i] = (4 * v1 - v2) / 3
        for i in range(m):
            for j in range(i):
                hi, hj = steps[i], steps[j]

                def cross(k: int, i=i, j=j, hi=hi, hj=hj) -> float:
                    pp = g(at(((i, k), (j, k))))
                    pm = g(at(((i, k), (j, -k))))
                    mp = g(at(((i, -k), (j, k))))
                    mm = g(at(((i, -k), (j, -k))))
                    return (pp - pm - mp + mm) / (4 * k * k * hi * hj)

                H[i, j] = H[j, i] = (4 * cross(1) - cross(2)) / 3
    finally:
        model.state_at(theta)  # leave the factor at the fit
    # σ parts, exact: D = ... + c log σ² + r²/σ²
    H[:m, m] = H[m, :m] = -2.0 * dr / sigma**3
    H[m, m] = -2.0 * c / s2 + 6.0 * r0 / s2**2
    msgs: list[str] = []
    try:
        np.linalg.cholesky(H)
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        msgs.append(
            "Model may not have converged: the Hessian of the deviance with respect to the "
            "variance parameters is not positive definite (a variance at 0?); Satterthwaite "
            "df use its pseudo-inverse"
        )
        A = 2.0 * np.linalg.pinv(H)
    J = np.empty((m + 1, p, p))
    J[:m] = s2 * dVu
    J[m] = 2.0 * sigma * Vu0
    return SatterthwaiteInfo(V=s2 * Vu0, J=J, A=A, warnings=msgs)


def contrast_df(info: SatterthwaiteInfo, L: np.ndarray) -> np.ndarray:
    """Satterthwaite df of each row l of L: 2 (l V l')² / (g' A g), g_i = l J_i l'."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    var = np.einsum("ij,jk,ik->i", L, info.V, L)
    grad = np.einsum("ij,mjk,ik->im", L, info.J, L)  # (rows, k)
    denom = np.einsum("im,mn,in->i", grad, info.A, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var**2 / denom
    return np.where(denom > 0, df, np.inf)


def contrast_f_test(info: SatterthwaiteInfo, L: np.ndarray, beta: np.ndarray) -> dict[str, float]:
    """F test of L β = 0 with Satterthwaite's denominator df (lmerTest's ``contestMD``).

    Returns ``{"num_df", "den_df", "f_value", "p_value", "sum_sq", "mean_sq"}``; the sums of
    squares as lmerTest reports them (F·σ²·q and F·σ²) need σ², so those two are filled by the
    caller when wanted.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    VLL = L @ info.V @ L.T
    d, P = np.linalg.eigh(VLL)
    tol = max(1e-8 * d.max(), 0.0) if d.size else 0.0
    keep = d > tol
    q = int(keep.sum())
    if q == 0:
        return {"num_df": 0, "den_df": math.nan, "f_value": math.nan, "p_value": math.nan}
    P, d = P[:, keep], d[keep]
    PL = P.T @ L
    t2 = (PL @ beta) ** 2 / d
    F = float(t2.sum() / q)
    nu = contrast_df(info, PL)
    if q == 1:
        den = float(nu[0])
    else:
        ok = nu > 2
        E = float(np.sum(nu[ok] / (nu[ok] - 2)))
        den = 2 * E / (E - q) if E > q else math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pval = float(stats.f.sf(F, q, den)) if math.isfinite(den) else math.nan
    return {"num_df": q, "den_df": den, "f_value": F, "p_value": pval}
