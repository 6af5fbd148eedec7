"""Compiled PIRLS (numba, cached to disk) for GLMMs whose random-effects terms are all scalar.

The common GLMM, random intercepts of one or more grouping factors, runs its whole PIRLS
iteration here (:func:`pirls_scalar`): no Python between iterations, no allocation per
iteration. Each iteration is

* one pass over the observations (:func:`_pass`) that computes η = o + Xβ + ZΛu, μ, the
  deviance residuals and, at the same time, the blocked cross-products of [ZΛ | X | z] with
  the working weights w and working response z = η − o + (y − μ)/(dμ/dη);
* the blocked Cholesky factor of the penalized system (:func:`_factor`): the first term's
  diagonal block level by level, its Schur complement into the trailing block, then the
  trailing block column by column while its columns are sparse (a later term nested in the
  first, e.g. an observation-level effect beside its groups, leaves its block diagonal) and
  densely (LAPACK when large) for the rest;
* back-substitution for the Fisher-scoring step (:func:`_solve`), then step halving on the
  penalized deviance Σ d_i + ‖u‖², every trial point's pass also giving the next system.

The algebra is :class:`mixedfx.linalg.factor.BlockedFactor`'s; the per-observation formulas
are :func:`_glm_obs` (R's families and links), also behind :func:`glm_working`, the pass that
PIRLS in Python (a design with vector-valued terms) and PIRLS over Dask partitions use.
"""

from __future__ import annotations

import math

import numpy as np
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "LAPLACE_HEADER",
    "glm_working",
    "joint_solve",
    "laplace_eval",
    "laplace_header",
    "laplace_many",
    "laplace_objective",
    "laplace_polish",
    "laplace_scalar",
    "laplace_scalar_from_start",
    "mode_slopes",
    "pirls_scalar",
    "predict_mode",
    "trailing_pattern",
    "workspace_sizes",
]

_EPS = 2.220446049250313e-16
_SQRT2 = 1.4142135623730951
_INV_SQRT_2PI = 0.3989422804014327
_PROBIT_THRESH = 8.125890664701908
_BLAS_ROWS = 20_000  # n (p + 1)² from which X'WX is one BLAS product rather than per-row sums


@njit(cache=True, inline="always")
def _glm_obs(fam, link, e, yi, wi):  # pragma: no cover - compiled
    """(μ, working weight, working residual, deviance residual) of one observation at η = e.

    fam: 0 binomial, 1 poisson, 2 Gamma, 3 inverse Gaussian; link: 0 logit, 1 probit,
    2 cloglog, 3 log, 4 identity, 5 inverse, 6 1/mu^2, 7 sqrt. The formulas and the clamping of
    μ and dμ/dη are R's (``make.link``, ``binomial()``, ``poisson()``, ``Gamma()``,
    ``inverse.gaussian()``), as in :mod:`mixedfx.families`.

    Poisson-log (μ above R's floor) takes a shortcut that is R's formulas in exact arithmetic
    and agrees with them to rounding: the weight wt (dμ/dη)²/V(μ) is wt μ and
    log(y/μ) = log y − η. (Binomial-logit keeps R's arithmetic: its 1 − μ loses digits for
    |η| beyond ~10, and lme4's criterion is made with those digits.)
    """
    if fam == 1 and link == 3:
        m = math.exp(e)
        if m > _EPS:
            dev = (yi * (math.log(yi) - e) if yi > 0.0 else 0.0) - (yi - m)
            return m, wi * m, (yi - m) / m, 2.0 * wi * dev
    if link == 0:
        if e < -30.0:
            t = _EPS
            d = _EPS
        elif e > 30.0:
            t = 1.0 / _EPS
            d = _EPS
        else:
            t = math.exp(e)
            d = t / ((1.0 + t) * (1.0 + t))
        m = t / (1.0 + t)
    elif link == 1:
        ec = min(max(e, -_PROBIT_THRESH), _PROBIT_THRESH)
        m = 0.5 * math.erfc(-ec / _SQRT2)
        d = max(_INV_SQRT_2PI * math.exp(-0.5 * e * e), _EPS)
    elif link == 2:
        ee = math.exp(min(e, 700.0))
        m = min(max(-math.expm1(-ee), _EPS), 1.0 - _EPS)
        d = max(ee * math.exp(-ee), _EPS)
    elif link == 3:
        m = max(math.exp(e), _EPS)
        d = m
    elif link == 4:
        m = e
        d = 1.0
    elif link == 5:
        m = 1.0 / e
        d = -1.0 / (e * e)
    elif link == 6:
        m = 1.0 / math.sqrt(e)
        d = -1.0 / (2.0 * e**1.5)
    else:
        m = e * e
        d = 2.0 * e
    if fam == 0:
        v = m * (1.0 - m)
        dev = 0.0
        if yi > 0.0:
            dev += yi * math.log(yi / m)
        if yi < 1.0:
            dev += (1.0 - yi) * math.log((1.0 - yi) / (1.0 - m))
        dev *= 2.0 * wi
    elif fam == 1:
        v = m
        dev = 2.0 * wi * ((yi * math.log(yi / m) if yi > 0.0 else 0.0) - (yi - m))
    elif fam == 2:
        v = m * m
        r = 1.0 if yi == 0.0 else yi / m
        dev = -2.0 * wi * (math.log(r) - (yi - m) / m)
    else:
        v = m * m * m
        dev = wi * (yi - m) * (yi - m) / (yi * m * m)
    return m, wi * d * d / v, (yi - m) / d, dev


@njit(cache=True)
def glm_working(fam, link, eta, y, wt, mu, sqrtw, wres, want_weights):  # pragma: no cover
    """One pass of a GLM's per-observation quantities at η; returns Σ deviance residuals.

    Fills μ = g⁻¹(η) and, when ``want_weights``, the square roots of the working weights
    w = wt (dμ/dη)² / V(μ) and the working residuals (y − μ)/(dμ/dη) (:func:`_glm_obs`).
    """
    total = 0.0
    for i in range(eta.shape[0]):
        m, w, r, dev = _glm_obs(fam, link, eta[i], y[i], wt[i])
        mu[i] = m
        total += dev
        if want_weights:
            sqrtw[i] = math.sqrt(w)
            wres[i] = r
    return total


# ----------------------------------------------------------------------------------------
# Vectorized binomial-logit observations. numba calls libm's exp and log one value at a
# time; these are fdlibm's algorithms (e_exp.c, e_log.c: error below one ulp) written with
# the float's bits as integers and selects instead of branches, so that LLVM vectorizes the
# loops (numpy's error model: a division by zero is IEEE's, not an exception branch).

_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_INVLN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@njit(cache=True, error_model="numpy")
def vexp(x, out, bits):  # pragma: no cover - compiled
    """out = eˣ elementwise for |x| ≤ 700 (``bits`` int64 scratch; arrays apart, or the
    loops do not vectorize).

    x = k ln 2 + r, |r| ≤ ln 2 / 2 (ln 2 in two parts, so r is exact to rounding);
    eʳ = 1 + r + r c / (2 − c) with c = r − r² P(r²) (fdlibm's minimax P); then 2ᵏ from
    its bits. A NaN stays NaN.
    """
    n = x.shape[0]
    for i in range(n):
        xi = x[i]
        k = math.floor(xi * _INVLN2 + 0.5)
        hi = xi - k * _LN2HI
        lo = k * _LN2LO
        r = hi - lo
        t = r * r
        c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
        out[i] = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
        bits[i] = (np.int64(k) + 1023) << 52
    scale = bits.view(np.float64)
    for i in range(n):
        out[i] *= scale[i]


@njit(cache=True, error_model="numpy")
def vlog(x, out):  # pragma: no cover - compiled
    """out = log x elementwise for positive normal x (``out`` apart from ``x``; NaN stays NaN).

    x = 2ᵏ (1 + f), 1 + f in [√2/2, √2) from the bits; with s = f / (2 + f),
    log(1 + f) = f − s (f − R(s²)) (fdlibm's minimax R, its two ways of rounding chosen by a
    select), plus k ln 2 in two parts.
    """
    n = x.shape[0]
    xb = x.view(np.int64)
    ob = out.view(np.int64)
    for i in range(n):  # the mantissa, scaled into [√2/2, √2), into out's bits
        b = xb[i]
        j = (((b >> 32) & 0x000FFFFF) + 0x95F64) & 0x100000
        ob[i] = (b & 0x000FFFFFFFFFFFFF) | ((j ^ 0x3FF00000) << 32)
    for i in range(n):
        b = xb[i]
        hx = (b >> 32) & 0x000FFFFF
        j = (hx + 0x95F64) & 0x100000
        dk = float((b >> 52) - 1023 + (j >> 20))
        xi = x[i]
        f = out[i] - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        R = t2 + t1
        hfsq = 0.5 * f * f
        a = dk * _LN2HI - ((hfsq - (s * (hfsq + R) + dk * _LN2LO)) - f)
        c = dk * _LN2HI - ((s * (f - R) - dk * _LN2LO) - f)
        out[i] = (a if ((hx - 0x6147A) | (0x6B851 - hx)) > 0 else c) + (xi - xi)


@njit(cache=True, error_model="numpy")
def _binomial_logit_obs(eta, y, wt, mu, wr2):  # pragma: no cover - compiled
    """:func:`_glm_obs` for binomial-logit over all observations; returns Σ deviance residuals.

    R's formulas (``make.link("logit")``, ``binomial()``) as selects: μ = t / (1 + t),
    dμ/dη = t / (1 + t)² with t = eᵉ (ε and 1/ε, dμ/dη = ε, beyond |η| = 30), working weight
    wt (dμ/dη)² / (μ (1 − μ)) into ``wr2[0]``, working residual (y − μ) / (dμ/dη) into
    ``wr2[1]``, deviance residual 2 wt (y log(y/μ) + (1 − y) log((1 − y)/(1 − μ))) with the
    logs of rows 2 and 3 (a term with y = 0, or 1 − y = 0, is 0; with every y 0 or 1, one log of
    their product); rows 2 to 4 are scratch (exp's argument, its 2ᵏ's bits, the logs), each
    loop's arrays apart so that it vectorizes.
    """
    n = eta.shape[0]
    w = wr2[0]
    r = wr2[1]
    a1 = wr2[2]
    a2 = wr2[3]
    bits = wr2[4].view(np.int64)
    for i in range(n):
        a1[i] = min(max(eta[i], -30.0), 30.0)
    vexp(a1, mu, bits)
    l1 = wr2[4]
    if _logit_working(eta, y, wt, mu, w, r, a1, a2, l1) == 0:
        # y all 0 or 1: one of the two logs is log 1 = 0, so one log of their product
        vlog(l1, a1)
        for i in range(n):
            a2[i] = a1[i] * (2.0 * wt[i])
    else:
        vlog(a1, l1)
        vlog(a2, a1)
        for i in range(n):
            yi = y[i]
            a2[i] = (yi * l1[i] + (1.0 - yi) * a1[i]) * (2.0 * wt[i])
    return _sum4(a2)


@njit(cache=True, error_model="numpy")
def _sum4(x):  # pragma: no cover - compiled
    """Σ x with four running sums (four independent chains of additions, not one)."""
    n = x.shape[0]
    n4 = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, n4, 4):
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
    for i in range(n4, n):
        s0 += x[i]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def _logit_working(eta, y, wt, mu, w, r, a1, a2, a12):  # pragma: no cover - compiled
    """The loop of :func:`_binomial_logit_obs` between exp and log (``mu`` holds eᵉ): the
    logs' arguments into ``a1``, ``a2`` and their product into ``a12``; returns how many y
    are neither 0 nor 1."""
    frac = 0
    for i in range(eta.shape[0]):
        e = eta[i]
        lo = e < -30.0
        hi = e > 30.0
        t = _EPS if lo else (1.0 / _EPS if hi else mu[i])
        opt = 1.0 + t
        d = _EPS if (lo or hi) else t / (opt * opt)
        m = t / opt
        yi = y[i]
        wi = wt[i]
        mu[i] = m
        w[i] = wi * d * d / (m * (1.0 - m))
        r[i] = (yi - m) / d
        g1 = yi / m if yi > 0.0 else 1.0
        g2 = (1.0 - yi) / (1.0 - m) if yi < 1.0 else 1.0
        a1[i] = g1
        a2[i] = g2
        a12[i] = g1 * g2
        frac += (yi != 0.0) & (yi != 1.0)
    return frac


@njit(cache=True, error_model="numpy")
def _linear_predictor(  # pragma: no cover - compiled
    fixed, X, beta, r1, z1, rrows, rz, theta1, scale, u, n1, eta
):
    """η = Xβ + fixed + ZΛu into ``eta``, one term at a time: Xβ by BLAS, the random effects
    b = Λu per level first (so each row's term is one gather and one product); ``n1`` the
    first term's levels, ``scale`` the later terms' θ per level (then the XY rows' ones)."""
    n = eta.shape[0]
    K = rrows.shape[0]
    b = np.empty(u.shape[0])
    for lev in range(n1):
        b[lev] = theta1 * u[lev]
    for r in range(u.shape[0] - n1):
        b[n1 + r] = scale[r] * u[n1 + r]
    if X.shape[1] > 0:
        np.dot(X, beta, eta)
    else:
        eta[:] = 0.0
    if K == 1:  # two terms: one loop
        r2, z2 = rrows[0], rz[0]
        for i in range(n):
            eta[i] = ((eta[i] + fixed[i]) + z1[i] * b[r1[i]]) + z2[i] * b[n1 + r2[i]]
        return
    for i in range(n):
        eta[i] = (eta[i] + fixed[i]) + z1[i] * b[r1[i]]
    for t in range(K):
        rt = rrows[t]
        zt = rz[t]
        for i in range(n):
            eta[i] += zt[i] * b[n1 + rt[i]]


@njit(cache=True)
def _pass(  # pragma: no cover - compiled
    fam, link, data, theta1, scale, beta, u, given_eta, system, out, scratch
):
    """One pass over the observations; returns Σ deviance residuals.

    η = fixed + Xβ + ZΛu into ``eta`` (or ``eta`` taken as given when ``given_eta``), μ into
    ``mu``; when ``system``, the cross-products with the working weights: ``A11`` (first
    term, per level), ``vals`` (first term's levels against the later rows and the XY rows,
    in the plan's order) and the lower triangle of ``A22`` (later terms, X, working response);
    ``data`` = (y, prior weights, fixed part of η, X, and the plan's r1, z1, rrows, rz, pos21,
    ptr), ``scratch`` = (``XW`` (n × (p + 1), or empty: then summed per row) the rows of
    √w [X z] for one BLAS cross-product, ``wr2`` (5 × n) the working weights and residuals
    between the loops (rows 0 and 1; rows 2 to 4 scratch of :func:`_binomial_logit_obs`,
    then w z₁), ``XC`` ((p + 1) × n when X has columns and ``XW`` is empty, else empty) the
    columns of [X z] for :func:`_level_sums` and :func:`_xy_triangle`).
    Three loops (η; the family's formulas; the sums) rather than one: each is short enough
    for the processor to overlap its iterations.
    """
    y, wt, fixed, X, r1, z1, rrows, rz, pos21, ptr = data
    eta, mu, A11, vals, A22 = out
    XW, wr2, XC = scratch
    n = y.shape[0]
    n1 = A11.shape[0]
    K = rrows.shape[0]
    p = X.shape[1]
    nx = p + 1
    q = A22.shape[0] - nx
    if system:
        A11[:] = 0.0
        vals[:] = 0.0
        A22[:, :] = 0.0
    total = 0.0
    zz = 0.0
    if not given_eta:
        _linear_predictor(fixed, X, beta, r1, z1, rrows, rz, theta1, scale, u, n1, eta)
    if fam == 0 and link == 0:  # binomial-logit: vectorized (exp and log of this module)
        total = _binomial_logit_obs(eta, y, wt, mu, wr2)
    else:
        for i in range(n):
            m, w, wr, dev = _glm_obs(fam, link, eta[i], y[i], wt[i])
            mu[i] = m
            total += dev
            wr2[0, i] = w
            wr2[1, i] = wr
    if system and p == 0 and K == 1:  # u alone, two terms: in phases
        zz = _system_u2(data, eta, A11, vals, A22, wr2)
    elif system and p == 0:  # u alone: the working response is the only XY row
        # the working response z (into wr2[1]) and w z₁ (wr2[2]) per row, then the sums
        for i in range(n):
            wr2[1, i] = eta[i] - fixed[i] + wr2[1, i]
            wr2[2, i] = wr2[0, i] * z1[i]
        _level_sums(r1, z1, ptr, wr2[2], wr2[1:2], A11, vals)
        for i in range(n):
            w = wr2[0, i]
            zw = wr2[1, i]
            a = wr2[2, i]
            for t in range(K):
                zt = rz[t, i]
                bt = w * zt
                rt = rrows[t, i]
                vals[pos21[t, i]] += a * zt
                for s in range(t + 1):
                    A22[rt, rrows[s, i]] += bt * rz[s, i]
                A22[q, rt] += bt * zw
            zz += w * zw * zw
    elif system and XW.shape[0] > 0:  # many rows: phases, [X z]'W[X z] by BLAS
        _system_rows(data, eta, A11, vals, A22, XW, wr2)
    elif system:
        # the columns of [X z] (z the working response) and w z₁ per row, then the sums
        for i in range(n):
            for j in range(p):
                XC[j, i] = X[i, j]
            XC[p, i] = eta[i] - fixed[i] + wr2[1, i]
            wr2[2, i] = wr2[0, i] * z1[i]
        _level_sums(r1, z1, ptr, wr2[2], XC, A11, vals)
        for i in range(n if K > 0 else 0):  # the later terms
            w = wr2[0, i]
            a = wr2[2, i]
            for t in range(K):
                zt = rz[t, i]
                bt = w * zt
                rt = rrows[t, i]
                vals[pos21[t, i]] += a * zt
                for s in range(t + 1):
                    A22[rt, rrows[s, i]] += bt * rz[s, i]
                for c in range(nx):
                    A22[q + c, rt] += bt * XC[c, i]
        # few rows: the lower triangle of [X z]'W[X z] directly, from the columns of [X z]
        _xy_triangle(XC, wr2[0], A22, q)
    if system and p == 0:
        A22[q, q] = zz
    return total


@njit(cache=True, error_model="numpy")
def _level_sums(r1, z1, ptr, a, XC, A11, vals):  # pragma: no cover - compiled
    """The first term's sums of :func:`_pass` per level: A11 += Σ a_i z1_i and, for each
    row c of ``XC`` (the columns of [X z], or z alone), its entry of the level's block
    column (the last ``len(XC)`` of the level's pairs) += Σ a_i XC[c, i], a_i = w_i z1_i.
    Each sum runs over the rows in order from the entry's value, in a register while
    consecutive rows share the level (the row loop's additions, without a read-modify-write
    of memory per row)."""
    n = r1.shape[0]
    nc = XC.shape[0]
    cur = -1
    s = 0.0
    for i in range(n):
        lev = r1[i]
        if lev != cur:
            if cur >= 0:
                A11[cur] = s
            cur = lev
            s = A11[lev]
        s += a[i] * z1[i]
    if cur >= 0:
        A11[cur] = s
    for c in range(nc):
        xc = XC[c]
        cur = -1
        e = 0
        s = 0.0
        for i in range(n):
            lev = r1[i]
            if lev != cur:
                if cur >= 0:
                    vals[e] = s
                cur = lev
                e = ptr[lev + 1] - nc + c
                s = vals[e]
            s += a[i] * xc[i]
        if cur >= 0:
            vals[e] = s


@njit(cache=True, error_model="numpy")
def _xy_triangle(XC, w, A22, q):  # pragma: no cover - compiled
    """The lower triangle of [X z]'W[X z] into ``A22[q:, q:]`` (its zeros added to) from the
    columns of [X z] (``XC``, (p + 1) × n): each entry Σ_i (w_i x_ic) x_id over the rows in
    order, as :func:`_pass`'s row loop adds it, four entries of a row at a time (four
    independent chains of additions, not one)."""
    nx, n = XC.shape
    for c in range(nx):
        xc = XC[c]
        d = 0
        while d + 4 <= c + 1:
            x0 = XC[d]
            x1 = XC[d + 1]
            x2 = XC[d + 2]
            x3 = XC[d + 3]
            s0 = A22[q + c, q + d]
            s1 = A22[q + c, q + d + 1]
            s2 = A22[q + c, q + d + 2]
            s3 = A22[q + c, q + d + 3]
            for i in range(n):
                wc = w[i] * xc[i]
                s0 += wc * x0[i]
                s1 += wc * x1[i]
                s2 += wc * x2[i]
                s3 += wc * x3[i]
            A22[q + c, q + d] = s0
            A22[q + c, q + d + 1] = s1
            A22[q + c, q + d + 2] = s2
            A22[q + c, q + d + 3] = s3
            d += 4
        while d <= c:
            x0 = XC[d]
            s0 = A22[q + c, q + d]
            for i in range(n):
                s0 += (w[i] * xc[i]) * x0[i]
            A22[q + c, q + d] = s0
            d += 1


@njit(cache=True, error_model="numpy")
def _system_u2(data, eta, A11, vals, A22, wr2):  # pragma: no cover - compiled
    """:func:`_pass`'s cross-products for u alone (p = 0) and two terms; returns Σ w z².

    The working response z = η − fixed + r and w z₁ vectorized first (into ``wr2[1]``,
    ``wr2[2]``); then the sums, the second term's two (its diagonal and its row of z) in
    registers while consecutive rows share its level (rows sorted by it add no chain of
    dependent memory updates).
    """
    fixed, _, r1, z1, rrows, rz, pos21, ptr = data[2:]
    n = eta.shape[0]
    q = A22.shape[0] - 1
    w_ = wr2[0]
    zw_ = wr2[1]
    a_ = wr2[2]
    for i in range(n):
        zw_[i] = eta[i] - fixed[i] + zw_[i]
        a_[i] = w_[i] * z1[i]
    zz = 0.0
    if n == 0:
        return zz
    cur = rrows[0, 0]
    sd = 0.0
    sz = 0.0
    for i in range(n):
        lev = r1[i]
        a = a_[i]
        zw = zw_[i]
        A11[lev] += a * z1[i]
        vals[ptr[lev + 1] - 1] += a * zw
        zt = rz[0, i]
        rt = rrows[0, i]
        w = w_[i]
        bt = w * zt
        zz += w * zw * zw
        vals[pos21[0, i]] += a * zt
        if rt != cur:
            A22[cur, cur] += sd
            A22[q, cur] += sz
            cur = rt
            sd = 0.0
            sz = 0.0
        sd += bt * zt
        sz += bt * zw
    A22[cur, cur] += sd
    A22[q, cur] += sz
    return zz


@njit(cache=True, error_model="numpy")
def _system_rows(data, eta, A11, vals, A22, XW, wr2):  # pragma: no cover - compiled
    """:func:`_pass`'s cross-products with X (p > 0) for many rows, in phases.

    First, vectorized over the rows: the working response z = η − fixed + r (into
    ``wr2[1]``), w z₁ (``wr2[2]``) and √w (``wr2[3]``). Then one loop of the sums per level
    (A11, the first term's block column, the later terms' diagonal pairs), the later terms
    against [X z] gathered in A22's (otherwise unused) upper triangle, row by row
    contiguously, and moved to the lower one at the end, and the rows √w [X z] into ``XW``
    (for two terms, :func:`_rows_two_terms`). Last, the lower triangle of [X z]'W[X z] as
    one BLAS product.
    """
    fixed, X, r1, z1, rrows, rz, pos21, ptr = data[2:]
    n = eta.shape[0]
    p = X.shape[1]
    nx = p + 1
    K = rrows.shape[0]
    q = A22.shape[0] - nx
    w_ = wr2[0]
    zw_ = wr2[1]
    a_ = wr2[2]
    sw_ = wr2[3]
    for i in range(n):
        w = w_[i]
        zw_[i] = eta[i] - fixed[i] + zw_[i]
        a_[i] = w * z1[i]
        sw_[i] = math.sqrt(w)
    if K == 1:
        _rows_two_terms(X, r1, z1, rrows[0], rz[0], pos21[0], ptr, A11, vals, A22, XW, wr2)
    else:
        for i in range(n):
            lev = r1[i]
            a = a_[i]
            zw = zw_[i]
            w = w_[i]
            A11[lev] += a * z1[i]
            xs = ptr[lev + 1] - nx
            sw = sw_[i]
            for c in range(p):
                xc = X[i, c]
                vals[xs + c] += a * xc
                XW[i, c] = sw * xc
            vals[xs + p] += a * zw
            XW[i, p] = sw * zw
            for t in range(K):
                zt = rz[t, i]
                bt = w * zt
                rt = rrows[t, i]
                vals[pos21[t, i]] += a * zt
                for s in range(t + 1):
                    A22[rt, rrows[s, i]] += bt * rz[s, i]
                for c in range(p):
                    A22[rt, q + c] += bt * X[i, c]
                A22[rt, q + p] += bt * zw
    for r in range(q):
        for c in range(nx):
            A22[q + c, r] = A22[r, q + c]
            A22[r, q + c] = 0.0
    C = np.dot(XW.T, XW)
    for c in range(nx):
        for d in range(c + 1):
            A22[q + c, q + d] = C[c, d]


@njit(cache=True, error_model="numpy")
def _rows_two_terms(X, r1, z1, r2, z2, pos2, ptr, A11, vals, A22, XW, wr2):  # pragma: no cover
    """:func:`_system_rows`'s loop of sums for two terms: each X value loaded once for its
    three sums (the first term's level, the second's, √w [X z]); the second term's diagonal
    in a register while its level repeats."""
    n, p = X.shape
    nx = p + 1
    q = A22.shape[0] - nx
    w_ = wr2[0]
    zw_ = wr2[1]
    a_ = wr2[2]
    sw_ = wr2[3]
    cur = r2[0] if n > 0 else 0
    sd = 0.0
    for i in range(n):
        lev = r1[i]
        a = a_[i]
        zw = zw_[i]
        sw = sw_[i]
        zt = z2[i]
        bt = w_[i] * zt
        rt = r2[i]
        A11[lev] += a * z1[i]
        vals[pos2[i]] += a * zt
        if rt != cur:
            A22[cur, cur] += sd
            cur = rt
            sd = 0.0
        sd += bt * zt
        xs = ptr[lev + 1] - nx
        for c in range(p):
            xc = X[i, c]
            vals[xs + c] += a * xc
            A22[rt, q + c] += bt * xc
            XW[i, c] = sw * xc
        vals[xs + p] += a * zw
        A22[rt, q + p] += bt * zw
        XW[i, p] = sw * zw
    if n > 0:
        A22[cur, cur] += sd


@njit(cache=True)
def _uniform_levels(ptr, rows):  # pragma: no cover - compiled
    """Whether every level of the first term pairs with the same trailing rows, in the same
    order (one term beside the fixed effects, say): ``ptr`` evenly spaced from 0, ``rows``
    the first level's repeated."""
    n1 = ptr.shape[0] - 1
    if n1 < 2 or ptr[0] != 0:
        return False
    L = ptr[1]
    for lev in range(n1):
        if ptr[lev + 1] - ptr[lev] != L:
            return False
    for a in range(L, rows.shape[0]):
        if rows[a] != rows[a - L]:
            return False
    return True


@njit(cache=True)
def _schur_uniform(ptr, rows, P, scale, G):  # pragma: no cover - compiled
    """:func:`_factor`'s sparse Schur update G −= S P P' S when every level pairs with the same
    rows (:func:`_uniform_levels`): each entry's terms (P_a s_a) P_b s_b subtracted level by
    level in order, as the level-by-level loop does, with up to four entries of a row at a
    time in registers (four chains of subtractions, not read-modify-writes of G)."""
    n1 = ptr.shape[0] - 1
    L = ptr[1]
    for a in range(L):
        ra = rows[a]
        sa = scale[ra]
        b = 0
        while b + 4 <= a + 1:
            r0, r1_, r2, r3 = rows[b], rows[b + 1], rows[b + 2], rows[b + 3]
            c0, c1, c2, c3 = scale[r0], scale[r1_], scale[r2], scale[r3]
            g0, g1, g2, g3 = G[ra, r0], G[ra, r1_], G[ra, r2], G[ra, r3]
            for lev in range(n1):
                o = lev * L
                pa = P[o + a] * sa
                g0 -= pa * P[o + b] * c0
                g1 -= pa * P[o + b + 1] * c1
                g2 -= pa * P[o + b + 2] * c2
                g3 -= pa * P[o + b + 3] * c3
            G[ra, r0], G[ra, r1_], G[ra, r2], G[ra, r3] = g0, g1, g2, g3
            b += 4
        while b <= a:
            rb = rows[b]
            cb = scale[rb]
            g0 = G[ra, rb]
            for lev in range(n1):
                o = lev * L
                g0 -= P[o + a] * sa * P[o + b] * cb
            G[ra, rb] = g0
            b += 1


@njit(cache=True)
def _factor(A11, vals, A22, ptr, rows, theta1, scale, nx, L11, P, G, Sd, idx):  # pragma: no cover
    """Blocked Cholesky factor of the penalized system; returns (log|L_Z|, ok).

    First term: L11 = √(θ₁² A11 + 1) per level, P = θ₁ A21 / L11. Trailing block:
    G = S A22 S + [I 0; 0 0] − S P P' S (S the later terms' θ and ones for the XY rows),
    then factored in place (lower triangle): column by column while a column has few
    nonzeros below its diagonal (the Schur update then touches only those), densely for the
    rest. ``Sd`` (m × n1, or empty) is the workspace of the dense Schur update when the first
    block column is mostly filled; ``idx`` (m) the nonzero rows of a column, followed (when
    longer than m) by the pattern of :func:`trailing_pattern`: the sparse columns then take
    their rows from it and only the pattern of G is ever written (the rest stays zero).
    """
    n1 = A11.shape[0]
    m = A22.shape[0]
    q = m - nx
    t2 = theta1 * theta1
    for lev in range(n1):
        L11[lev] = math.sqrt(t2 * A11[lev] + 1.0)
    logs = np.empty(n1)
    vlog(L11, logs)
    logdet = 0.0
    for lev in range(n1):
        logdet += logs[lev]
    # a mostly filled block column (crossed factors): its Schur update is one dense BLAS
    # product, of the workspace taken as n1 × m (each level's row written contiguously)
    dense = Sd.shape[1] == n1 and n1 > 0
    St = Sd.reshape((n1, m)) if dense else np.empty((0, 0))
    St[:, :] = 0.0
    for lev in range(n1):
        f = theta1 / L11[lev]
        for a in range(ptr[lev], ptr[lev + 1]):
            pa = vals[a] * f
            P[a] = pa
            if dense:
                St[lev, rows[a]] = pa * scale[rows[a]]
    known = idx.shape[0] > m
    jk = idx[m] if known else 0  # the sparse columns of the known pattern
    cp = idx[m + 1 : m + jk + 2]
    ri = idx[m + jk + 2 :]
    for j in range(jk):  # their pattern only
        sj = scale[j]
        G[j, j] = sj * sj * A22[j, j] + (1.0 if j < q else 0.0)
        for a in range(cp[j], cp[j + 1]):
            i = ri[a]
            G[i, j] = scale[i] * sj * A22[i, j]
    for i in range(jk, m):
        si = scale[i]
        for j in range(jk, i + 1):
            G[i, j] = si * scale[j] * A22[i, j]
        if i < q:
            G[i, i] += 1.0
    if dense:
        G -= St.T @ St
    elif _uniform_levels(ptr, rows):
        _schur_uniform(ptr, rows, P, scale, G)
    else:
        for lev in range(n1):
            for a in range(ptr[lev], ptr[lev + 1]):
                ra = rows[a]
                pa = P[a] * scale[ra]
                for b in range(ptr[lev], a + 1):
                    G[ra, rows[b]] -= pa * P[b] * scale[rows[b]]
    # sparse columns first (right-looking: each column's outer product into the rest)
    for j in range(jk):
        d = G[j, j]
        if not d > 0.0:
            return math.inf, False
        d = math.sqrt(d)
        G[j, j] = d
        if j < q:
            logdet += math.log(d)
        for a in range(cp[j], cp[j + 1]):
            G[ri[a], j] /= d
        for a in range(cp[j], cp[j + 1]):
            ia = ri[a]
            la = G[ia, j]
            for b in range(cp[j], a + 1):
                ib = ri[b]
                G[ia, ib] -= la * G[ib, j]
    j0 = jk
    while j0 < m and not known:
        j = j0
        nnz = 0
        for i in range(j + 1, m):
            if G[i, j] != 0.0:
                idx[nnz] = i
                nnz += 1
        if 4 * nnz > m - j and m - j > 8:
            break  # a dense column: the rest densely
        d = G[j, j]
        if not d > 0.0:
            return math.inf, False
        d = math.sqrt(d)
        G[j, j] = d
        if j < q:
            logdet += math.log(d)
        for a in range(nnz):
            G[idx[a], j] /= d
        for a in range(nnz):
            ia = idx[a]
            la = G[ia, j]
            for b in range(a + 1):
                ib = idx[b]
                G[ia, ib] -= la * G[ib, j]
        j0 += 1
    rest = m - j0
    if rest > 48:  # LAPACK for a large dense remainder
        S = np.empty((rest, rest))
        for i in range(rest):
            for k in range(i + 1):
                S[i, k] = G[j0 + i, j0 + k]
                S[k, i] = S[i, k]
        try:
            L = np.linalg.cholesky(S)
        except Exception:  # not positive definite
            return math.inf, False
        for i in range(rest):
            for k in range(i + 1):
                G[j0 + i, j0 + k] = L[i, k]
            if j0 + i < q:
                logdet += math.log(L[i, i])
        return logdet, True
    for j in range(j0, m):
        d = G[j, j]
        for c in range(j0, j):
            d -= G[j, c] * G[j, c]
        if not d > 0.0:
            return math.inf, False
        d = math.sqrt(d)
        G[j, j] = d
        if j < q:
            logdet += math.log(d)
        for i in range(j + 1, m):
            s = G[i, j]
            for c in range(j0, j):
                s -= G[i, c] * G[j, c]
            G[i, j] = s / d
    return logdet, True


@njit(cache=True)
def trailing_pattern(m, nx, rrows, ptr, rows):  # pragma: no cover - compiled
    """The sparse columns of :func:`_factor`'s trailing block, found once from the structure.

    The pattern of G before factoring: the later terms' pairs and the XY rows (what
    :func:`_pass` accumulates), the first term's Schur pairs (``ptr``/``rows``), the
    diagonal; then the symbolic elimination of the columns :func:`_factor` takes one by one
    (fewer than a quarter of the rows below nonzero, or 8 rows left), each adding the fill
    of its rows' pairs. Returns ``[j0, colptr (j0 + 1), rows (ascending per column)]``, the
    rows below the diagonal of the first j0 columns, for the end of ``_factor``'s ``idx``.
    """
    q = m - nx
    pat = np.zeros((m, m), dtype=np.bool_)
    K, n = rrows.shape
    for i in range(m):
        pat[i, i] = True
    for i in range(n):
        for t in range(K):
            rt = rrows[t, i]
            for s in range(t + 1):
                rs = rrows[s, i]
                pat[max(rt, rs), min(rt, rs)] = True
            for c in range(nx):
                pat[q + c, rt] = True
    for c in range(nx):
        for d in range(c + 1):
            pat[q + c, q + d] = True
    for lev in range(ptr.shape[0] - 1):
        for a in range(ptr[lev], ptr[lev + 1]):
            for b in range(ptr[lev], a + 1):
                ra, rb = rows[a], rows[b]
                pat[max(ra, rb), min(ra, rb)] = True
    nz = np.empty(m, dtype=np.int64)
    j0 = 0
    total = 0
    while j0 < m:
        j = j0
        nnz = 0
        for i in range(j + 1, m):
            if pat[i, j]:
                nz[nnz] = i
                nnz += 1
        if 4 * nnz > m - j and m - j > 8:
            break
        for a in range(nnz):
            for b in range(a + 1):
                pat[nz[a], nz[b]] = True
        total += nnz
        j0 += 1
    out = np.empty(j0 + 2 + total, dtype=np.int64)
    out[0] = j0
    o = j0 + 2
    out[1] = 0
    for j in range(j0):
        for i in range(j + 1, m):
            if pat[i, j]:
                out[o] = i
                o += 1
        out[j + 2] = o - (j0 + 2)
    return out


@njit(cache=True)
def _solve(G, ptr, rows, P, L11, scale, n1, nx, u, beta, v):  # pragma: no cover - compiled
    """The Fisher-scoring solution (u, and β when nx > 1) by back-substitution through the
    factor: the working response's row of L is the forward-solved right-hand side."""
    m = G.shape[0]
    mm = m - 1
    q = m - nx
    for i in range(mm):
        v[i] = G[mm, i]
    for i in range(mm - 1, -1, -1):  # column-oriented: L' v = rhs
        vi = v[i] / G[i, i]
        v[i] = vi
        if vi != 0.0:
            for k in range(i):
                v[k] -= G[i, k] * vi
    for r in range(q):
        u[n1 + r] = v[r]
    for j in range(nx - 1):
        beta[j] = v[q + j]
    for lev in range(n1):
        s = 0.0
        last = ptr[lev + 1] - 1  # the response row closes each block
        for a in range(ptr[lev], last):
            r = rows[a]
            s += P[a] * scale[r] * v[r]
        u[lev] = (P[last] - s) / L11[lev]


@njit(cache=True)
def pirls_scalar(  # pragma: no cover - compiled
    fam,
    link,
    y,
    wt,
    fixed,
    X,
    beta,
    r1,
    z1,
    rrows,
    rz,
    pos21,
    ptr,
    rows,
    theta1,
    scale,
    u,
    cold,
    tol,
    tol_stay,
    maxit,
    max_halvings,
    eta,
    mu,
    L11,
    G,
    work,
    iwork,
    Sd,
):
    """PIRLS compiled end to end for all-scalar random-effects terms.

    With X of p > 0 columns, β is iterated with u (lme4's nAGQ = 0 stage) and ``fixed`` is
    the offset; with p = 0, ``fixed`` is o + Xβ. With ``cold``, the first system is built at
    the η given in ``eta`` (the family's starting μ on the link scale, as glm starts) and its
    solution taken whole; otherwise PIRLS starts from (u, β). Fisher scoring with step
    halving on the penalized deviance; converged when the step is below ``tol`` relative,
    that last step then taken and the factor made there (so log|L| belongs to the returned
    u). ``u``, ``beta``, ``eta``, ``mu``, ``L11`` and ``G`` (the trailing factor, R_X' in its
    fixed-effects rows) are updated in place; ``work``/``iwork``/``Sd`` are workspaces of
    :func:`workspace_sizes`. Returns (penalized deviance, log|L_Z|, iterations, converged,
    passes over the data).
    """
    n = y.shape[0]
    n1 = L11.shape[0]
    m = G.shape[0]
    p = X.shape[1]
    nx = p + 1
    nu = u.shape[0]
    npair = rows.shape[0]
    # carve the workspace: two sets of cross-products (current point, trial point)
    o = 0
    A11 = work[o : o + n1]
    o += n1
    A11c = work[o : o + n1]
    o += n1
    vals = work[o : o + npair]
    o += npair
    valsc = work[o : o + npair]
    o += npair
    P = work[o : o + npair]
    o += npair
    A22 = work[o : o + m * m].reshape((m, m))
    o += m * m
    A22c = work[o : o + m * m].reshape((m, m))
    o += m * m
    eta_c = work[o : o + n]
    o += n
    mu_c = work[o : o + n]
    o += n
    u_new = work[o : o + nu]
    o += nu
    u_c = work[o : o + nu]
    o += nu
    b_new = work[o : o + p]
    o += p
    b_c = work[o : o + p]
    o += p
    o += nx  # (unused: the layout of workspace_sizes)
    v = work[o : o + m]
    o += m
    wr2 = work[o : o + 5 * n].reshape((5, n))
    o += 5 * n
    data = (y, wt, fixed, X, r1, z1, rrows, rz, pos21, ptr)
    # √w [X z] for a BLAS cross-product when the rows are many (else accumulated per row)
    nxw = n if p > 0 and n * nx * nx >= _BLAS_ROWS else 0
    XW = work[o : o + nxw * nx].reshape((nxw, nx))
    # otherwise (p > 0) the columns of [X z] for the lower triangle of its cross-product
    nxc = n if p > 0 and nxw == 0 else 0
    XC = work[o : o + nxc * nx].reshape((nx, nxc))
    scratch = (XW, wr2, XC)

    npass = 0
    if cold:
        npass += 1
        _pass(
            fam, link, data, theta1, scale, beta, u, True, True, (eta, mu, A11, vals, A22), scratch
        )
        logdet, ok = _factor(A11, vals, A22, ptr, rows, theta1, scale, nx, L11, P, G, Sd, iwork)
        if not ok:
            return math.inf, math.inf, 0, False, 1
        _solve(G, ptr, rows, P, L11, scale, n1, nx, u, beta, v)
    npass += 1
    pd = _pass(
        fam, link, data, theta1, scale, beta, u, False, True, (eta, mu, A11, vals, A22), scratch
    ) + np.dot(u, u)
    if not np.isfinite(pd) and p == 0:  # a start the family cannot take: u = 0
        u[:] = 0.0
        npass += 1
        pd = _pass(
            fam, link, data, theta1, scale, beta, u, False, True, (eta, mu, A11, vals, A22), scratch
        )
    logdet = math.inf
    converged = False
    it = 0
    for it in range(1, maxit + 1):
        logdet, ok = _factor(A11, vals, A22, ptr, rows, theta1, scale, nx, L11, P, G, Sd, iwork)
        if not ok:
            return math.inf, math.inf, it, False, npass
        _solve(G, ptr, rows, P, L11, scale, n1, nx, u_new, b_new, v)
        size = 0.0
        big = 0.0
        for k in range(nu):
            size = max(size, abs(u_new[k] - u[k]))
            big = max(big, abs(u[k]))
        for k in range(p):
            size = max(size, abs(b_new[k] - beta[k]))
            big = max(big, abs(beta[k]))
        if size <= tol_stay * (1.0 + big):
            # a step this small moves the criterion by less than its rounding: stay, the
            # pass and the factor are at this point already
            converged = True
            break
        if size <= tol * (1.0 + big):
            # take the last (tiny) step and factor there: log|L| depends on u to first order
            converged = True
            u[:] = u_new
            beta[:] = b_new
            npass += 1
            pd = _pass(
                fam,
                link,
                data,
                theta1,
                scale,
                beta,
                u,
                False,
                True,
                (eta, mu, A11, vals, A22),
                scratch,
            ) + np.dot(u, u)
            logdet, ok = _factor(A11, vals, A22, ptr, rows, theta1, scale, nx, L11, P, G, Sd, iwork)
            if not ok:
                return math.inf, math.inf, it, False, npass
            break
        s = 1.0
        moved = False
        for _ in range(max_halvings):
            for k in range(nu):
                u_c[k] = u[k] + s * (u_new[k] - u[k])
            for k in range(p):
                b_c[k] = beta[k] + s * (b_new[k] - beta[k])
            npass += 1
            pd_c = _pass(
                fam,
                link,
                data,
                theta1,
                scale,
                b_c,
                u_c,
                False,
                True,
                (eta_c, mu_c, A11c, valsc, A22c),
                scratch,
            )
            pd_c += np.dot(u_c, u_c)
            if pd_c <= pd + 1e-11 * abs(pd):
                u[:] = u_c
                beta[:] = b_c
                eta[:] = eta_c
                mu[:] = mu_c
                A11, A11c = A11c, A11
                vals, valsc = valsc, vals
                A22, A22c = A22c, A22
                pd = pd_c
                moved = True
                break
            s *= 0.5
        if not moved:  # no decrease possible: at the mode to rounding, G factored there
            converged = True
            break
    return pd, logdet, it, converged, npass


@njit(cache=True)
def mode_slopes(G, work, L11, ptr, rows, scale, nx, J):  # pragma: no cover - compiled
    """∂û/∂β (nu × p, into ``J``) from the joint factor :func:`pirls_scalar` left at a mode.

    With β held fixed the mode solves (Λ'Z'WZΛ + I) u = Λ'Z'W(z − Xβ), so
    ∂u/∂β = −L_Z'⁻¹ L_XZ': the X rows of the factor, restricted to the random-effects
    columns, back-substituted through L_Z' (the trailing block's later-term rows, then the
    first term level by level, as :func:`_solve` does for the response row). ``work`` is
    :func:`pirls_scalar`'s workspace (its P block), ``L11`` and ``G`` its factor.
    """
    n1 = L11.shape[0]
    m = G.shape[0]
    q = m - nx
    npair = rows.shape[0]
    P = work[2 * n1 + 2 * npair : 2 * n1 + 3 * npair]
    v = np.empty(q)
    for j in range(nx - 1):
        r = q + j
        for i in range(q):
            v[i] = G[r, i]
        for i in range(q - 1, -1, -1):
            vi = v[i] / G[i, i]
            v[i] = vi
            if vi != 0.0:
                for k in range(i):
                    v[k] -= G[i, k] * vi
        for i in range(q):
            J[n1 + i, j] = -v[i]
        for lev in range(n1):
            xs = ptr[lev + 1] - nx
            s = 0.0
            for a in range(ptr[lev], xs):
                ra = rows[a]
                s += P[a] * scale[ra] * v[ra]
            J[lev, j] = -(P[xs + j] - s) / L11[lev]


def workspace_sizes(n: int, n1: int, npair: int, m: int, nu: int, p: int) -> int:
    """Length of :func:`pirls_scalar`'s float workspace."""
    xw = n * (p + 1) if p else 0
    return 2 * n1 + 3 * npair + 2 * m * m + 7 * n + 2 * nu + 2 * p + (p + 1) + m + xw


@njit(cache=True)
def predict_mode(xs, ms, x, out):  # pragma: no cover - compiled
    """m_a + J (x − x_a) into ``out`` (the model of :mod:`mixedfx.glm.mode_predictor`, whose
    ring ``xs``/``ms`` holds the remembered points and modes); (D'WD + λI)⁻¹ with λ a 1e-10
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


# ---------------------------------------------------------------------------------------------
# The optimizers' evaluations of the Laplace criterion in compiled code, for all-scalar terms
# and a built-in family: nlopt's BOBYQA calls ``laplace_objective`` (a C callback), stage 1's
# one θ is found by ``laplace_scalar`` (Brent's bounded method), the convergence check's points
# by ``laplace_many``. Each evaluation is what
# :class:`mixedfx.engines.generalized.GeneralizedEngine`'s f1 (stage 1: u and β by PIRLS from
# the predicted mode, else from the family's start) or f2 (stage 2: β = β₁ + R_X⁻¹δ, u by
# PIRLS from the predicted mode, else from the last one) does in Python, on the system an int64
# header describes (:class:`mixedfx.glm.laplace_objective.LaplaceObjective` makes it):
#
#   0 joint   1 family   2 link   3 n   4 columns of X   5 levels of the first term   6 m
#   7 rows of P   8 later terms   9 q   10 length of x   11 maxit   12 max halvings
#   13 columns of Sd   14 length of iwork   15 length of work   16 predictor capacity
#   17 q of the later terms   18 length of a mode (q, plus p when joint)
#   19-48 addresses of y, wt, offset, X, r1, z1, rrows, rz, pos21, ptr, rows, scale,
#   scale index, L11, eta, mu, G, work, iwork, Sd, η start, last mode, fixed part of η, mode
#   buffer, β₁, R_X⁻¹, the predictor's points, modes and [held, next], and the float64 state
#   [tol, tol_stay, const, evaluations, failures, best f, best x...]
# ---------------------------------------------------------------------------------------------

LAPLACE_HEADER = 49


@intrinsic
def _address(typingctx, addr):  # pragma: no cover - compiled
    """An integer address as a void pointer (for ``carray``)."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(addr), codegen


@njit(cache=True)
def laplace_header(ints, arrays_a, arrays_b):  # pragma: no cover - compiled
    """The header (layout above) from its 19 integers and the arrays in its order (two tuples:
    numba's tuples of mixed arrays stay short); one compiled call (numpy's ``.ctypes`` costs
    ~2 µs per array)."""
    hdr = np.empty(LAPLACE_HEADER, np.int64)
    for i in range(19):
        hdr[i] = ints[i]
    y, wt, off, X, r1, z1, rrows, rz, pos21, ptr, rows, scale, sidx, L11, eta = arrays_a
    mu, G, work, iwork, Sd, eta0, warm, fixed, ub, b1, Rinv, pxs, pms, ring, fs = arrays_b
    hdr[19] = y.ctypes.data
    hdr[20] = wt.ctypes.data
    hdr[21] = off.ctypes.data
    hdr[22] = X.ctypes.data
    hdr[23] = r1.ctypes.data
    hdr[24] = z1.ctypes.data
    hdr[25] = rrows.ctypes.data
    hdr[26] = rz.ctypes.data
    hdr[27] = pos21.ctypes.data
    hdr[28] = ptr.ctypes.data
    hdr[29] = rows.ctypes.data
    hdr[30] = scale.ctypes.data
    hdr[31] = sidx.ctypes.data
    hdr[32] = L11.ctypes.data
    hdr[33] = eta.ctypes.data
    hdr[34] = mu.ctypes.data
    hdr[35] = G.ctypes.data
    hdr[36] = work.ctypes.data
    hdr[37] = iwork.ctypes.data
    hdr[38] = Sd.ctypes.data
    hdr[39] = eta0.ctypes.data
    hdr[40] = warm.ctypes.data
    hdr[41] = fixed.ctypes.data
    hdr[42] = ub.ctypes.data
    hdr[43] = b1.ctypes.data
    hdr[44] = Rinv.ctypes.data
    hdr[45] = pxs.ctypes.data
    hdr[46] = pms.ctypes.data
    hdr[47] = ring.ctypes.data
    hdr[48] = fs.ctypes.data
    return hdr


@njit(cache=True)
def _ring_add(pxs, pms, ring, x, mode):  # pragma: no cover - compiled
    """:meth:`mixedfx.glm.mode_predictor.ModePredictor.add` on its arrays."""
    cap = pxs.shape[0]
    k, nxt = ring[0], ring[1]
    pxs[nxt, :] = x
    pms[nxt, :] = mode
    ring[1] = (nxt + 1) % cap
    ring[0] = min(k + 1, cap)


@njit(cache=True)
def laplace_eval(x, hdr):  # pragma: no cover - compiled
    """The Laplace criterion (with the family's constant) at x, +inf where PIRLS finds no
    mode; counts the evaluation (and a failure). Stage 1 (``joint``) or stage 2 as the
    module's comment above describes, the predictor's ring and the last mode updated."""
    return _laplace_at(x, hdr, False)


@njit(cache=True)
def laplace_polish(x, hdr):  # pragma: no cover - compiled
    """The mode at x polished: PIRLS to its full tolerance (no stop short of the last step)
    from the predicted mode only, or from the family's start (stage 1) or the last mode
    (stage 2) when nothing is predicted, as :meth:`mixedfx.glm.pirls.PIRLS.fit_ub` /
    ``fit_u`` from that start; the mode is left in the mode buffer and the factor in the
    workspaces. Returns the criterion (+inf where PIRLS finds no mode)."""
    return _laplace_at(x, hdr, True)


@njit(cache=True)
def _laplace_at(x, hdr, polish):  # pragma: no cover - compiled
    """:func:`laplace_eval`, or with ``polish`` :func:`laplace_polish`."""
    joint = hdr[0] != 0
    fam, link, n, p, n1, m, nr, K, nu = hdr[1:10]
    nx, maxit, maxh, nsd, niw, nw, cap, qr, nm = hdr[10:19]
    f64, i64 = np.float64, np.int64
    y = carray(_address(hdr[19]), (n,), f64)
    wt = carray(_address(hdr[20]), (n,), f64)
    off = carray(_address(hdr[21]), (n,), f64)
    X = carray(_address(hdr[22]), (n, p), f64)
    r1 = carray(_address(hdr[23]), (n,), i64)
    z1 = carray(_address(hdr[24]), (n,), f64)
    rrows = carray(_address(hdr[25]), (K, n), i64)
    rz = carray(_address(hdr[26]), (K, n), f64)
    pos21 = carray(_address(hdr[27]), (K, n), i64)
    ptr = carray(_address(hdr[28]), (n1 + 1,), i64)
    rows = carray(_address(hdr[29]), (nr,), i64)
    scale = carray(_address(hdr[30]), (m,), f64)
    sidx = carray(_address(hdr[31]), (qr,), i64)
    L11 = carray(_address(hdr[32]), (n1,), f64)
    eta = carray(_address(hdr[33]), (n,), f64)
    mu = carray(_address(hdr[34]), (n,), f64)
    G = carray(_address(hdr[35]), (m, m), f64)
    work = carray(_address(hdr[36]), (nw,), f64)
    iwork = carray(_address(hdr[37]), (niw,), i64)
    Sd = carray(_address(hdr[38]), (m, nsd), f64)
    eta0 = carray(_address(hdr[39]), (n,), f64)
    warm = carray(_address(hdr[40]), (nu,), f64)
    fixed = carray(_address(hdr[41]), (n,), f64)
    ub = carray(_address(hdr[42]), (nm,), f64)
    pxs = carray(_address(hdr[45]), (cap, nx), f64)
    pms = carray(_address(hdr[46]), (cap, nm), f64)
    ring = carray(_address(hdr[47]), (2,), i64)
    fs = carray(_address(hdr[48]), (6 + nx,), f64)
    tol, tol_stay, const = fs[0], fs[1], fs[2]
    fs[3] += 1.0
    for i in range(qr):
        scale[i] = x[sidx[i]]
    k = ring[0]
    have = k > 0
    if have:
        predict_mode(pxs[:k], pms[:k], x, ub)
    if joint:  # u and β by PIRLS, both in the mode buffer
        u = ub[:nu]
        beta = ub[nu:]
        XX = X
        ff = off
    else:  # β = β₁ + R_X⁻¹δ held fixed, u by PIRLS
        b1 = carray(_address(hdr[43]), (p,), f64)
        Rinv = carray(_address(hdr[44]), (p, p), f64)
        fx = off + np.dot(X, b1 + np.dot(Rinv, x[nx - p :]))
        for i in range(n):
            fixed[i] = fx[i]
        u = ub
        beta = np.empty(0)
        XX = np.empty((n, 0))
        ff = fixed
    # the first attempt from the predicted mode; the second (or the only one, with nothing
    # predicted) from the family's start (stage 1) or from the last mode (stage 2)
    pd = math.inf
    logdet = math.inf
    cold = False
    for attempt in range(2):
        if attempt == 0 and not have:
            continue
        if attempt == 1 and have and polish:
            break
        stay = 0.0 if polish else tol_stay
        if attempt == 1 and joint:  # PIRLS.fit_ub without a warm start
            cold = True
            stay = 0.0
            u[:] = 0.0
            beta[:] = 0.0
            eta[:] = eta0
        elif attempt == 1:
            u[:] = warm
        pd, logdet, _, _, _ = pirls_scalar(
            fam, link, y, wt, ff, XX, beta, r1, z1, rrows, rz, pos21, ptr, rows, x[0],
            scale, u, cold, tol, stay, maxit, maxh, eta, mu, L11, G, work, iwork, Sd,
        )  # fmt: skip
        if math.isfinite(pd):
            break
    if not math.isfinite(pd):
        ring[0] = 0
        ring[1] = 0
        fs[4] += 1.0
        return math.inf
    if not joint:
        warm[:] = ub
    _ring_add(pxs, pms, ring, x, ub)
    if cold:
        uu = np.dot(u, u)
        return (pd - uu) + const + uu + 2.0 * logdet  # GeneralizedEngine.laplace's order
    return pd + const + 2.0 * logdet


@cfunc(
    types.float64(
        types.uint32, types.CPointer(types.float64), types.CPointer(types.float64), types.voidptr
    ),
    cache=True,
)
def laplace_objective(nx, x, grad, data):  # pragma: no cover - compiled
    """nlopt's objective (``nlopt_func``): ``data`` is the header; a value that is not finite
    is given as 1e300 and the best point kept, as :func:`mixedfx.linalg.optimizer.bobyqa`."""
    hdr = carray(data, (LAPLACE_HEADER,), np.int64)
    xx = carray(x, (nx,))
    v = laplace_eval(xx, hdr)
    if not math.isfinite(v):
        v = 1e300
    fs = carray(_address(hdr[48]), (6 + nx,), np.float64)
    if v < fs[5]:
        fs[5] = v
        for i in range(nx):
            fs[6 + i] = xx[i]
    return v


@njit(cache=True)
def laplace_many(pts, hdr):  # pragma: no cover - compiled
    """:func:`laplace_eval` at every row of ``pts``, in order."""
    out = np.empty(pts.shape[0])
    for r in range(pts.shape[0]):
        out[r] = laplace_eval(pts[r], hdr)
    return out


@njit(cache=True)
def _scalar_value(hdr, t):  # pragma: no cover - compiled
    """The criterion at the single θ = t, +inf (failure) as 1e150: large, yet Brent's
    products stay finite (as :func:`mixedfx.linalg.optimizer.bobyqa`'s ``_scalar``)."""
    x = np.empty(1)
    x[0] = t
    v = laplace_eval(x, hdr)
    return v if math.isfinite(v) else 1e150


@njit(cache=True)
def laplace_scalar(hdr, x0, lo, xtol):  # pragma: no cover - compiled
    """:func:`mixedfx.linalg.optimizer.bobyqa` for one θ (its ``_scalar``) in compiled code:
    the bracket [lo, hi] grown by factors of 4 from max(4|x0|, 4) until the criterion rises,
    Brent's bounded minimization on it (scipy's ``minimize_scalar(method="bounded")``, the
    same steps, as :func:`mixedfx.linalg.kernels.small_scalar`) to ``xatol = xtol/100``, then
    the bound compared (a singular fit). Returns (x, f(x))."""
    hi = max(4.0 * abs(x0), 4.0)
    fhi = _scalar_value(hdr, hi)
    for _ in range(40):
        if hi > 1e15:
            break
        fnext = _scalar_value(hdr, hi * 4.0)
        if fnext >= fhi:
            break
        hi, fhi = hi * 4.0, fnext
    hi *= 4.0
    # scipy.optimize._optimize._minimize_scalar_bounded, maxiter 500
    xatol = xtol * 1e-2
    sqrt_eps = math.sqrt(2.2e-16)
    golden_mean = 0.5 * (3.0 - math.sqrt(5.0))
    a, b = lo, hi
    fulc = a + golden_mean * (b - a)
    nfc, xf = fulc, fulc
    rat = e = 0.0
    x = xf
    fx = _scalar_value(hdr, x)
    num = 1
    ffulc = fnfc = fx
    xm = 0.5 * (a + b)
    tol1 = sqrt_eps * abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(xf - xm) > (tol2 - 0.5 * (b - a)):
        golden = True
        if abs(e) > tol1:  # a parabolic step?
            golden = False
            r = (xf - nfc) * (fx - ffulc)
            q = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * q - (xf - nfc) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r = e
            e = rat
            if (abs(p) < abs(0.5 * q * r)) and (p > q * (a - xf)) and (p < q * (b - xf)):
                rat = (p + 0.0) / q
                x = xf + rat
                if ((x - a) < tol2) or ((b - x) < tol2):
                    si = np.sign(xm - xf) + (1.0 if (xm - xf) == 0 else 0.0)
                    rat = tol1 * si
            else:
                golden = True
        if golden:
            if xf >= xm:
                e = a - xf
            else:
                e = b - xf
            rat = golden_mean * e
        si = np.sign(rat) + (1.0 if rat == 0 else 0.0)
        x = xf + si * max(abs(rat), tol1)
        fu = _scalar_value(hdr, x)
        num += 1
        if fu <= fx:
            if x >= xf:
                a = xf
            else:
                b = xf
            fulc, ffulc = nfc, fnfc
            nfc, fnfc = xf, fx
            xf, fx = x, fu
        else:
            if x < xf:
                a = x
            else:
                b = x
            if (fu <= fnfc) or (nfc == xf):
                fulc, ffulc = nfc, fnfc
                nfc, fnfc = x, fu
            elif (fu <= ffulc) or (fulc == xf) or (fulc == nfc):
                fulc, ffulc = x, fu
        xm = 0.5 * (a + b)
        tol1 = sqrt_eps * abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= 500:
            break
    f_lo = _scalar_value(hdr, lo)
    # the bound wins when it is as good to rounding (a singular fit is then exactly singular)
    if f_lo <= fx + 1e-12 * max(1.0, abs(fx)):
        return lo, f_lo
    return xf, fx


@njit(cache=True)
def laplace_scalar_from_start(hdr, x0, lo, xtol, step):  # pragma: no cover - compiled
    """:func:`mixedfx.linalg.optimizer.scalar_from_start` (a bracket grown from the start,
    then Brent's method; stage 1's single θ, which only seeds stage 2) in compiled code, the
    same steps. Returns (x, f(x), evaluations)."""
    maxeval = 500
    grow = 0.5 * (1.0 + math.sqrt(5.0))
    cgold = 0.5 * (3.0 - math.sqrt(5.0))
    sqrt_eps = math.sqrt(2.2e-16)
    xb = max(x0, lo)
    fb = _scalar_value(hdr, xb)
    xa = xb + step * max(abs(xb), 1.0)
    fa = _scalar_value(hdr, xa)
    num = 2
    if fa < fb:  # downhill to the right
        xa, fa, xb, fb = xb, fb, xa, fa
    xp, fp = xa, fa
    xc, fc = xb, fb
    end = False
    walked = 0
    while num < maxeval:
        if xb == lo:  # still falling at the bound
            end = True
            break
        xc = xb + grow * (xb - xa)
        if xp != xa and fp < 1e150:  # the parabola through xp, xa, xb
            s1 = (fa - fp) / (xa - xp)
            s2 = (fb - fa) / (xb - xa)
            curv = 2.0 * (s2 - s1) / (xb - xp)
            if curv > 0.0:
                w = 0.5 * (xa + xb) - s2 / curv
                r = (w - xb) / (xb - xa)
                if r < 0.0 and num < maxeval:
                    fw = _scalar_value(hdr, w)
                    num += 1
                    if fw < fb:
                        xc, fc = xa, fa
                        xp, fp, xa, fa, xb, fb = xa, fa, xb, fb, w, fw
                        break
                    xp, fp, xa, fa = xa, fa, w, fw
                    xc = xb + grow * (xb - xa)
                else:
                    xc = xb + min(max(r, 0.1 if walked == 1 else grow), 10.0) * (xb - xa)
            else:
                xc = xb + 4.0 * (xb - xa)
        xc = max(xc, lo)
        if xc > 1e15:
            end = True
            break
        fc = _scalar_value(hdr, xc)
        num += 1
        if fc > fb or (fc == fb and fb < 1e150):
            break
        xp, fp, xa, fa, xb, fb = xa, fa, xb, fb, xc, fc
        walked += 1
    # Brent's method on [a, c] from x = b
    if end:
        xc, fc = xp, fp
        if xb < xa:
            a, c = xb, xa
        else:
            a, c = xa, xb
    elif xa < xc:
        a, c = xa, xc
    else:
        a, c = xc, xa
    x, fx = xb, fb
    if fa <= fc:
        w, fw, v, fv = xa, fa, xc, fc
    else:
        w, fw, v, fv = xc, fc, xa, fa
    deltax = c - a
    rat = deltax
    while num < maxeval:
        tol1 = sqrt_eps * abs(x) + xtol / 3.0
        tol2 = 2.0 * tol1
        xmid = 0.5 * (a + c)
        if abs(x - xmid) <= tol2 - 0.5 * (c - a):
            break
        parabolic = False
        if abs(deltax) > tol1:
            t1 = (x - w) * (fx - fv)
            t2 = (x - v) * (fx - fw)
            p = (x - v) * t2 - (x - w) * t1
            q = 2.0 * (t2 - t1)
            if q > 0.0:
                p = -p
            q = abs(q)
            prev = deltax
            deltax = rat
            if p > q * (a - x) and p < q * (c - x) and abs(p) < abs(0.5 * q * prev):
                parabolic = True
                rat = p / q
                if abs(rat) < tol1 and abs(x - w) < 30.0 * tol1:
                    break
                u = x + rat
                if (u - a) < tol2 or (c - u) < tol2:
                    rat = tol1 if xmid >= x else -tol1
        if not parabolic:
            deltax = (a - x) if x >= xmid else (c - x)
            rat = cgold * deltax
        if abs(rat) >= tol1:
            u = x + rat
        else:
            u = x + tol1 if rat >= 0.0 else x - tol1
        fu = _scalar_value(hdr, u)
        num += 1
        if fu <= fx:
            if u >= x:
                a = x
            else:
                c = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            if u < x:
                a = u
            else:
                c = u
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu
    return x, fx, num


@njit(cache=True)
def joint_solve(G, work, L11, ptr, rows, scale, nx, b, x):  # pragma: no cover - compiled
    """x = H⁻¹ b with H the penalized system of u and β whose factor :func:`pirls_scalar`
    left (``L11``, ``G`` and the P block of ``work``), for any right-hand side b (nu + p).

    H = L L' with L = [L11 0; L21 L22], L21[r, l] = P scale[r] (the first term's block
    column), L22 the trailing factor without its working-response row: forward through L11
    and L21, then L22; back through L22', then L21' and L11.
    """
    n1 = L11.shape[0]
    m = G.shape[0]
    mm = m - 1  # the trailing unknowns: later terms, then β (not the response row)
    npair = rows.shape[0]
    P = work[2 * n1 + 2 * npair : 2 * n1 + 3 * npair]
    y1 = np.empty(n1)
    v = np.empty(mm)
    for i in range(mm):
        v[i] = b[n1 + i]
    for lev in range(n1):
        t = b[lev] / L11[lev]
        y1[lev] = t
        for a in range(ptr[lev], ptr[lev + 1]):
            r = rows[a]
            if r < mm:
                v[r] -= P[a] * scale[r] * t
    for i in range(mm):  # L22 v = rhs
        s = v[i]
        for k in range(i):
            s -= G[i, k] * v[k]
        v[i] = s / G[i, i]
    for i in range(mm - 1, -1, -1):  # L22' v = v
        vi = v[i] / G[i, i]
        v[i] = vi
        if vi != 0.0:
            for k in range(i):
                v[k] -= G[i, k] * vi
    for lev in range(n1):
        s = 0.0
        for a in range(ptr[lev], ptr[lev + 1]):
            r = rows[a]
            if r < mm:
                s += P[a] * scale[r] * v[r]
        x[lev] = (y1[lev] - s) / L11[lev]
    for i in range(mm):
        x[n1 + i] = v[i]


# ---------------------------------------------------------------- stage 2 by the gradient
# (here, with the criterion's evaluation: numba's cache sees a compiled callee's changes only
# in its caller's own file)


@njit(cache=True, error_model="numpy")
def _scalar_term_gradient(
    gfam, x, u, X, y, wt, off, g, z, b1, rinv, q, grad
):  # pragma: no cover - compiled
    """∂f/∂x of the Laplace criterion f at x = (λ, δ), β = β₁ + R_X⁻¹ δ, û = ``u`` (the mode
    there), for one scalar term ``(z | g)`` and a canonical link (``gfam`` 0 binomial-logit,
    1 Poisson-log), into ``grad``; NaN where some η is where the criterion clamps μ (binomial
    |η| > 30, Poisson μ ≤ ε: the closed form is not its derivative there).

    The model: η = o + Xβ + λ z ∘ u[g], u ~ N(0, I). At the mode û,

        f(λ, β) = Σ_i d_i(η̂_i) + ‖û‖² + Σ_g log d_g + const,    d_g = 1 + λ² S_g,

    d_i the deviance residuals, w_i = wt_i μ_i (1 − μ_i) (binomial) or wt_i μ_i (Poisson) the
    working weights, S_g = Σ_{i∈g} w_i z_i² (diag √d_g is the factor of Λ'Z'WZΛ + I). With a
    canonical link the observed and expected information agree (∂²d_i/∂η_i² = 2 w_i), and at
    the mode Σ_{i∈g} d'_i λ z_i + 2 û_g = 0, d'_i = ∂d_i/∂η_i = −2 wt_i (y_i − μ_i). Then

    * the first two terms are a minimum over u: their derivative is the partial one (the
      envelope theorem), Σ_i d'_i x_ij for β_j and Σ_i d'_i z_i û_g for λ;
    * û moves by implicit differentiation of the mode equation:
      ∂û_g/∂β_j = −λ Σ_{i∈g} w_i z_i x_ij / d_g,
      ∂û_g/∂λ = −(2 λ û_g S_g + Σ_{i∈g} d'_i z_i) / (2 d_g);
    * the log-determinant moves with λ directly and through the weights at η̂
      (w'_i = ∂w_i/∂η_i: w_i (1 − 2 μ_i) binomial, w_i Poisson):
      ∂ Σ_g log d_g / ∂p = [p = λ] Σ_g 2λ S_g / d_g + Σ_i h_i w'_i ∂η̂_i/∂p,
      h_i = λ² z_i² / d_{g(i)}, ∂η̂_i/∂β_j = x_ij + λ z_i ∂û_g/∂β_j,
      ∂η̂_i/∂λ = z_i û_g + λ z_i ∂û_g/∂λ.

    The δ components are R_X⁻ᵀ times the β ones.
    """
    n, p = X.shape
    lam = x[0]
    beta = b1.copy()
    for j in range(p):
        for k in range(p):
            beta[j] += rinv[j, k] * x[1 + k]
    S = np.zeros(q)
    T = np.zeros((q, p))
    D = np.zeros(q)  # Σ_{i∈g} d'_i z_i
    wp = np.empty(n)
    gb = np.zeros(p)
    glam = 0.0
    for i in range(n):
        e = off[i]
        for j in range(p):
            e += X[i, j] * beta[j]
        ui = u[g[i]]
        e += lam * z[i] * ui
        if gfam == 0:
            if abs(e) > 30.0:  # the criterion's μ and dμ/dη are clamped here (R's)
                grad[:] = np.nan
                return
            t = math.exp(-abs(e))
            m = 1.0 / (1.0 + t) if e >= 0.0 else t / (1.0 + t)
            wi = wt[i] * m * (1.0 - m)
            wp[i] = wi * (1.0 - 2.0 * m)
        else:
            m = math.exp(e)
            if not m > _EPS:  # the criterion's μ is floored here (R's)
                grad[:] = np.nan
                return
            wi = wt[i] * m
            wp[i] = wi
        di = -2.0 * wt[i] * (y[i] - m)
        gi = g[i]
        zi = z[i]
        S[gi] += wi * zi * zi
        D[gi] += di * zi
        for j in range(p):
            T[gi, j] += wi * zi * X[i, j]
            gb[j] += di * X[i, j]
        glam += di * zi * ui
    for k in range(q):
        glam += 2.0 * lam * S[k] / (1.0 + lam * lam * S[k])
    for i in range(n):
        k = g[i]
        zi = z[i]
        dk = 1.0 + lam * lam * S[k]
        hw = lam * lam * zi * zi / dk * wp[i]
        dudl = -(2.0 * lam * u[k] * S[k] + D[k]) / (2.0 * dk)
        glam += hw * (zi * u[k] + lam * zi * dudl)
        for j in range(p):
            gb[j] += hw * (X[i, j] - lam * lam * zi * T[k, j] / dk)
    grad[0] = glam
    for k in range(p):
        s = 0.0
        for j in range(p):
            s += rinv[j, k] * gb[j]
        grad[1 + k] = s


@njit(cache=True)
def _bfgs_direction(H, s, yv, grad, step):  # pragma: no cover - compiled
    """The BFGS update of H by the step s and the change of gradient yv (skipped where
    s'yv ≤ 0: it would lose positive definiteness), then step = −H⁻¹ grad by Cholesky.
    Returns False where H is not positive definite."""
    n = grad.size
    sy = 0.0
    for i in range(n):
        sy += s[i] * yv[i]
    if sy > 0.0:
        Hs = H @ s
        sHs = 0.0
        for i in range(n):
            sHs += s[i] * Hs[i]
        if sHs > 0.0:
            for i in range(n):
                for j in range(n):
                    H[i, j] += yv[i] * yv[j] / sy - Hs[i] * Hs[j] / sHs
    L = np.zeros((n, n))
    for j in range(n):
        acc = H[j, j]
        for k in range(j):
            acc -= L[j, k] * L[j, k]
        if not acc > 0.0:
            return False
        L[j, j] = math.sqrt(acc)
        for i in range(j + 1, n):
            acc = H[i, j]
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            L[i, j] = acc / L[j, j]
    v = np.empty(n)
    for i in range(n):
        acc = -grad[i]
        for k in range(i):
            acc -= L[i, k] * v[k]
        v[i] = acc / L[i, i]
    for i in range(n - 1, -1, -1):
        acc = v[i]
        for k in range(i + 1, n):
            acc -= L[k, i] * step[k]
        step[i] = acc / L[i, i]
    return True


@njit(cache=True)
def laplace_gradient(hdr, gfam, x, grad):  # pragma: no cover - compiled
    """Stage 2's criterion at x (:func:`laplace_eval`) and its gradient into ``grad`` (one
    scalar term, canonical link ``gfam``: :func:`_scalar_term_gradient`); +inf where either
    is not computable."""
    n, p = hdr[3], hdr[4]
    nu = hdr[9]
    f64, i64 = np.float64, np.int64
    v = laplace_eval(x, hdr)
    if not math.isfinite(v):
        return v
    _scalar_term_gradient(
        gfam, x,
        carray(_address(hdr[40]), (nu,), f64),  # the mode just found
        carray(_address(hdr[22]), (n, p), f64),
        carray(_address(hdr[19]), (n,), f64),
        carray(_address(hdr[20]), (n,), f64),
        carray(_address(hdr[21]), (n,), f64),
        carray(_address(hdr[23]), (n,), i64),
        carray(_address(hdr[24]), (n,), f64),
        carray(_address(hdr[43]), (p,), f64),
        carray(_address(hdr[44]), (p, p), f64),
        nu, grad,
    )  # fmt: skip
    for i in range(x.size):
        if not math.isfinite(grad[i]):
            return math.inf
    return v


@njit(cache=True)
def laplace_quasi_newton(hdr, gfam, x, lower, ntheta, xtol, max_iter, h, grad):  # pragma: no cover
    """Minimize stage 2's criterion from x (overwritten with the answer) by BFGS with its
    gradient: the initial Hessian 2 I with the θ rows and columns from forward differences
    of the gradient (step ``h``); a step that does not lower f (beyond its rounding) is
    halved, at most 6 times. Stops when every component of a step is below
    ``xtol``·max(1, |x_i|).

    Returns (f(x), converged), the gradient at x in ``grad``: not converged where the search
    stopped short (f or the gradient not computable, H not positive definite, no decrease,
    ``max_iter`` steps) or where a step would take a θ below ``lower`` (the caller's margin
    above θ's bound: a minimum near the bound is left to a bounded optimizer).
    """
    n = x.size
    fx = laplace_gradient(hdr, gfam, x, grad)
    if not math.isfinite(fx):
        return fx, False
    H = np.zeros((n, n))
    for i in range(n):
        H[i, i] = 2.0
    gj = np.empty(n)
    xj = np.empty(n)
    for j in range(ntheta):
        xj[:] = x
        xj[j] += h
        if not math.isfinite(laplace_gradient(hdr, gfam, xj, gj)):
            return fx, False
        for i in range(n):
            c = (gj[i] - grad[i]) / h
            H[i, j] = c
            H[j, i] = c
    s = np.zeros(n)
    yv = np.zeros(n)
    step = np.empty(n)
    gnew = np.empty(n)
    cand = np.empty(n)
    eps = 2.220446049250313e-16
    for _ in range(max_iter):
        if not _bfgs_direction(H, s, yv, grad, step):
            return fx, False
        small = True
        for i in range(n):
            if abs(step[i]) > xtol * max(1.0, abs(x[i])):
                small = False
        if small:
            return fx, True
        alpha = 1.0
        for i in range(ntheta):
            if x[i] + step[i] < lower[i]:
                return fx, False
        noise = 16.0 * eps * max(1.0, abs(fx))
        moved = False
        fc = math.inf
        for _ in range(6):
            for i in range(n):
                cand[i] = x[i] + alpha * step[i]
            fc = laplace_gradient(hdr, gfam, cand, gnew)
            if fc <= fx + noise:
                moved = True
                break
            alpha *= 0.5
        if not moved:
            return fx, False
        for i in range(n):
            s[i] = cand[i] - x[i]
            yv[i] = gnew[i] - grad[i]
            x[i] = cand[i]
            grad[i] = gnew[i]
        fx = fc
    return fx, False
