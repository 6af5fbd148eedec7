"""Kenward-Roger adjusted covariance of β̂ and denominator df (pbkrtest, as lmerTest uses it).

With the marginal covariance Σ = Σ_r γ_r G_r (γ: the elements of each term's covariance
matrix and σ²; G_r = ∂Σ/∂γ_r) and Φ = (X'Σ⁻¹X)⁻¹ = vcov(β̂) (Kenward & Roger 1997; Halekoh &
Højsgaard 2014, pbkrtest's ``vcovAdj``):

    P_r  = −X'Σ⁻¹G_rΣ⁻¹X,   Q_rs = X'Σ⁻¹G_rΣ⁻¹G_sΣ⁻¹X,
    I_rs = tr(Σ⁻¹G_rΣ⁻¹G_s) − 2 tr(Φ Q_rs) + tr(Φ P_r Φ P_s),   W = 2 I⁻¹,
    U    = Σ_rs W_rs (Q_rs − P_r Φ P_s),
    Φ_A  = Φ + 2 Φ U Φ.

For a contrast matrix L of rank q, with Θ = L'(LΦL')⁻¹L and u_r = ΘΦP_rΦ,
A1 = Σ_rs W_rs tr(u_r) tr(u_s), A2 = Σ_rs W_rs tr(u_r u_s), and the df is pbkrtest's
``Lb_ddf``: ν = 4 + (q + 2)/(qρ − 1) with ρ from A1, A2 (see :func:`kr_ddf`).

Σ is formed densely (n x n), as pbkrtest does: meant for data sets of up to a few thousand rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla

from ..errors import ModelError
from ..linalg.crossprod import term_matrix

__all__ = ["KRInfo", "kr_ddf", "kr_info"]

MAX_N = 6000


@dataclass
class KRInfo:
    Phi: np.ndarray
    PhiA: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray


def kr_info(model: Any) -> KRInfo:
    """The Kenward-Roger quantities of a fitted REML linear engine (cached on the engine)."""
    if not model.gaussian:
        raise ModelError(
            "Kenward-Roger's method is for linear mixed models fitted by REML (lmer); a glmer "
            "fit has Wald z tests (g.coefficients), or use confint(method='boot')"
        )
    if "kenward_roger" not in model.cache:
        model.cache["kenward_roger"] = _kr_info(model)
    return model.cache["kenward_roger"]


def _kr_info(model: Any) -> KRInfo:
    if not model.REML:
        raise ModelError(
            "Kenward-Roger's method needs a REML fit (as pbkrtest and lmerTest): "
            "refit with REML=True"
        )
    d = model.design
    n = d.n
    if n > MAX_N:
        raise ModelError(
            f"Kenward-Roger forms the n x n marginal covariance densely (as pbkrtest); n = {n} is "
            f"more than {MAX_N}: use ddf='satterthwaite'"
        )
    s2 = model.sigma**2
    G: list[np.ndarray] = []
    gamma: list[float] = []
    for t, S in zip(d.terms, model.covariance_matrices(), strict=True):
        Zt = term_matrix(t).toarray()  # n x (levels·k), level-major
        cols = [Zt[:, j :: t.k] for j in range(t.k)]  # Z_j: n x levels, column j of the term
        for i in range(t.k):
            for j in range(i + 1):
                M = cols[i] @ cols[j].T
                G.append(M if i == j else M + M.T)
                gamma.append(S[i, j])
    G.append(np.diag(1.0 / d.weights) if d.weights is not None else np.eye(n))
    gamma.append(s2)
    Sigma = sum(g * Gr for g, Gr in zip(gamma, G, strict=True))
    cS = sla.cho_factor(Sigma, lower=True, check_finite=False)
    Sinv = sla.cho_solve(cS, np.eye(n), check_finite=False)
    X = d.X
    Phi = s2 * model.vcov_unscaled
    H = [Gr @ Sinv for Gr in G]
    O = [h @ X for h in H]  # G_r Σ⁻¹ X
    T = Sinv @ X
    ng = len(G)
    P = [-(o.T @ T) for o in O]
    P = [0.5 * (p + p.T) for p in P]
    Q: dict[tuple[int, int], np.ndarray] = {}
    for r in range(ng):
        SO = Sinv @ O[r]
        for s in range(r, ng):
            Q[r, s] = SO.T @ O[s]
    IE = np.empty((ng, ng))
    for r in range(ng):
        PhiPr = Phi @ P[r]
        for s in range(r, ng):
            ktr = float(np.sum(H[r].T * H[s]))
            IE[r, s] = IE[s, r] = (
                ktr - 2.0 * float(np.sum(Phi * Q[r, s])) + float(np.sum(PhiPr * (P[s] @ Phi)))
            )
    ev = np.linalg.eigvalsh(IE)
    W = 2.0 * (np.linalg.inv(IE) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(IE))
    U = np.zeros_like(Phi)
    for r in range(ng):
        for s in range(r + 1, ng):
            U += W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
    U = U + U.T
    for r in range(ng):
        U += W[r, r] * (Q[r, r] - P[r] @ Phi @ P[r])
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    return KRInfo(Phi=Phi, PhiA=0.5 * (PhiA + PhiA.T), P=P, W=W)


def kr_ddf(info: KRInfo, L: np.ndarray) -> float:
    """Kenward-Roger denominator df for testing L β = 0 (pbkrtest's ``Lb_ddf``)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    Phi = info.Phi
    q = int(np.linalg.matrix_rank(L))
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TP = Theta @ Phi
    us = [TP @ p @ Phi for p in info.P]
    ng = len(us)
    A1 = A2 = 0.0
    for r in range(ng):
        for s in range(r, ng):
            e = 1.0 if r == s else 2.0
            A1 += e * info.W[r, s] * np.trace(us[r]) * np.trace(us[s])
            A2 += e * info.W[r, s] * float(np.sum(us[r] * us[s].T))
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    ratio = (1 - A2 / q) / V1 if V1 != 0 else 0.0
    rho = (ratio**2) * V0 / V2 / q
    return 4.0 + (q + 2) / (q * rho - 1) if q * rho != 1 else math.inf
