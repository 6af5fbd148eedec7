"""Step 5a of the pipeline: minimize the profiled criterion over θ by BOBYQA.

BOBYQA (Powell's bound-constrained quadratic-model method, through nlopt) is what lme4
(``nloptwrap``) and MixedModels.jl use. Bounds: 0 for the diagonal elements of each Λ block,
unbounded otherwise. After the optimizer stops, a convergence check in the spirit of lme4's
``checkConv``: the gradient and Hessian by finite differences at the optimum; a warning when the
scaled gradient ``|H⁻¹ g|`` of the parameters off the boundary exceeds 2e-3, or when the
Hessian is not positive definite there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nlopt
import numpy as np
from scipy.optimize import minimize as scipy_minimize
from scipy.optimize import minimize_scalar

from ..errors import ConvergenceWarning

__all__ = [
    "OPTIMIZERS",
    "OptimizerResult",
    "Probe",
    "bobyqa",
    "check_convergence",
    "fd_gradient_hessian",
    "gradient_newton",
    "minimize",
    "newton_polish",
]


@dataclass
class OptimizerResult:
    """The optimizer's answer."""

    x: np.ndarray
    fun: float
    nfev: int
    status: str
    messages: list[str] = field(default_factory=list)


def bobyqa(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray | None = None,
    *,
    ftol_abs: float = 1e-8,
    ftol_rel: float = 1e-12,
    xtol_abs: float = 1e-8,
    maxeval: int = 100_000,
    initial_step: float | np.ndarray | None = None,
) -> OptimizerResult:
    """Minimize ``fun`` from ``x0`` within bounds with nlopt's BOBYQA.

    BOBYQA needs at least two parameters (nlopt stops at once, "roundoff limited", for one),
    so a single θ is found by Brent's bounded method instead, on [lower, hi] with hi grown
    until the criterion rises, and the bound itself compared last (a singular fit).
    """
    x0 = np.asarray(x0, dtype=float)
    nx = x0.size
    lower = np.asarray(lower, dtype=float)
    upper = np.full(nx, np.inf) if upper is None else np.asarray(upper, dtype=float)
    count = [0]
    best = [math.inf, x0.copy()]

    def f(x, grad):
        count[0] += 1
        v = fun(x)
        if not math.isfinite(v):
            v = 1e300
        if v < best[0]:
            best[0] = v
            best[1] = x.copy()
        return v

    if nx == 1:
        return _scalar(fun, x0, lower, upper, xtol_abs)
    opt = nlopt.opt(nlopt.LN_BOBYQA, nx)
    opt.set_min_objective(f)
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_ftol_abs(ftol_abs)
    opt.set_ftol_rel(ftol_rel)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    if initial_step is not None:
        opt.set_initial_step(initial_step)
    status = "ok"
    try:
        x = opt.optimize(x0)
        fval = opt.last_optimum_value()
        code = opt.last_optimize_result()
        status = {
            nlopt.SUCCESS: "success",
            nlopt.STOPVAL_REACHED: "stopval reached",
            nlopt.FTOL_REACHED: "ftol reached",
            nlopt.XTOL_REACHED: "xtol reached",
            nlopt.MAXEVAL_REACHED: "maximum number of evaluations reached",
            nlopt.MAXTIME_REACHED: "maximum time reached",
        }.get(code, str(code))
    except nlopt.RoundoffLimited:
        x, fval, status = best[1], best[0], "roundoff limited"
    if best[0] < fval:
        x, fval = best[1], best[0]
    return OptimizerResult(x=np.asarray(x), fun=float(fval), nfev=count[0], status=status)


OPTIMIZERS = ("bobyqa", "nelder_mead", "sbplx", "lbfgsb", "powell")
"""The optimizers :func:`minimize` offers (lme4's allFit tries its own set likewise)."""


def minimize(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    method: str = "bobyqa",
    maxeval: int = 100_000,
) -> OptimizerResult:
    """Minimize ``fun`` from ``x0`` within lower bounds by a named optimizer: nlopt's BOBYQA,
    Nelder–Mead or Subplex (derivative-free), or scipy's L-BFGS-B (finite-difference
    gradients) or Powell. Non-finite values count as 1e300."""
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    if method == "bobyqa":
        return bobyqa(fun, x0, lower, maxeval=maxeval)
    count = [0]

    def f(x: np.ndarray, grad: Any = None) -> float:
        count[0] += 1
        v = fun(np.asarray(x, dtype=float))
        return v if math.isfinite(v) else 1e300

    if method in ("nelder_mead", "sbplx"):
        alg = nlopt.LN_NELDERMEAD if method == "nelder_mead" else nlopt.LN_SBPLX
        opt = nlopt.opt(alg, x0.size)
        opt.set_min_objective(f)
        opt.set_lower_bounds(lower)
        opt.set_ftol_abs(1e-8)
        opt.set_ftol_rel(1e-12)
        opt.set_xtol_abs(1e-8)
        opt.set_maxeval(maxeval)
        status = "ok"
        try:
            x = opt.optimize(np.maximum(x0, lower))
            fx = opt.last_optimum_value()
        except (nlopt.RoundoffLimited, RuntimeError) as exc:
            x, fx, status = x0, f(x0), f"stopped: {exc}"
        return OptimizerResult(np.asarray(x), float(fx), count[0], status)
    if method in ("lbfgsb", "powell"):
        bounds = [(lo if math.isfinite(lo) else None, None) for lo in lower]
        res = scipy_minimize(
            f,
            np.maximum(x0, lower),
            method="L-BFGS-B" if method == "lbfgsb" else "Powell",
            bounds=bounds,
            options={"maxiter": maxeval},
        )
        status = "ok" if res.success else str(res.message)
        return OptimizerResult(np.asarray(res.x), float(res.fun), count[0], status)
    raise ValueError(f"unknown optimizer {method!r}; optimizers: {', '.join(OPTIMIZERS)}")


def _scalar(fun, x0, lower, upper, xtol):
    """One parameter: golden-section/Brent on a bracket that starts at the bound."""
    lo = float(lower[0]) if math.isfinite(lower[0]) else -50.0
    hi = float(upper[0]) if math.isfinite(upper[0]) else None
    count = [0]

    def g(t):
        count[0] += 1
        v = fun(np.array([t]))
        return v if math.isfinite(v) else 1e150  # large, yet Brent's products stay finite

    # grow the bracket until the function rises
    if hi is None:
        hi = max(4.0 * abs(x0[0]), 4.0)
        fhi = g(hi)
        for _ in range(40):
            if hi > 1e15:  # θ beyond ~1e16 cannot be evaluated in double precision anyway
                break
            fnext = g(hi * 4.0)
            if fnext >= fhi:
                break
            hi, fhi = hi * 4.0, fnext
        hi *= 4.0
    res = minimize_scalar(
        g, bounds=(lo, hi), method="bounded", options={"xatol": xtol * 1e-2, "maxiter": 500}
    )
    x, fx = float(res.x), float(res.fun)
    f_lo = g(lo)
    # the bound wins when it is as good to rounding (a singular fit is then exactly singular)
    if f_lo <= fx + 1e-12 * max(1.0, abs(fx)):
        x, fx = lo, f_lo
    return OptimizerResult(x=np.array([x]), fun=fx, nfev=count[0], status="success")


_GROW = 0.5 * (1.0 + math.sqrt(5.0))  # the bracket's growth factor (golden ratio)
_CGOLD = 0.5 * (3.0 - math.sqrt(5.0))  # golden-section fraction of an interval
_SQRT_EPS = math.sqrt(2.2e-16)


def scalar_from_start(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    xtol: float = 1e-4,
    step: float = 0.25,
    maxeval: int = 500,
) -> OptimizerResult:
    """Minimize ``fun`` of one parameter near ``x0`` (≥ ``lower``): a bracket grown from the
    start, then Brent's method from it to about ``xtol``.

    For a start near the minimum of a smooth criterion (a GLMM's first stage over a single θ,
    which only seeds the second; :func:`bobyqa`'s bracket from [lower, 4 max(1, |x0|)] costs
    twice the evaluations there): f at x0 and x0 + h, h = ``step``·max(1, |x0|); then steps
    downhill (the golden ratio times the last, or to the vertex of the parabola through the
    last three points), clipped at the bound, until f rises (a bracket a < b < c with
    f(b) ≤ f(a), f(c)) or the bound is reached with f still falling (the bound is then the
    bracket's best end). Brent's method (parabolic steps through the
    three best points, the bracket's own parabola first; golden sections where they fail) then
    shrinks the bracket to 4·tol₁, tol₁ = √ε·|x| + ``xtol``/3, or stops at the best point x
    when the parabola through it and a point within 30·tol₁ puts the minimum within tol₁ of
    it. The bound is returned exactly when it stays best (a singular fit). Non-finite values
    count as 1e150.

    ``mixedfx.glm.pirls_kernels.laplace_scalar_from_start`` takes the same steps in compiled
    code.
    """
    lo = float(lower[0]) if math.isfinite(lower[0]) else -50.0
    count = [0]

    def g(t: float) -> float:
        count[0] += 1
        v = fun(np.array([t]))
        return v if math.isfinite(v) else 1e150  # large, yet the parabolas stay finite

    xb = max(float(x0[0]), lo)
    fb = g(xb)
    xa = xb + step * max(abs(xb), 1.0)
    fa = g(xa)
    if fa < fb:  # downhill to the right
        xa, fa, xb, fb = xb, fb, xa, fa
    xp, fp = xa, fa  # the point before xa (none yet)
    end = False  # whether xb ends the bracket (the bound, or θ too large to evaluate)
    walked = 0  # steps taken downhill beyond the first two points
    while count[0] < maxeval:
        if xb == lo:  # still falling at the bound: the bound is the bracket's best end
            end = True
            break
        xc = xb + _GROW * (xb - xa)
        if xp != xa and fp < 1e150:
            # the parabola through xp, xa, xb: where convex, its vertex w (f' = 0) replaces
            # the golden step, from 0.1 (the first; later the golden ratio: the minimum is
            # far) to 10 times the last one beyond xb, and a vertex between xa and xb is
            # evaluated (below f(xb): a bracket xa, w, xb); where concave, steps grow by 4
            s1 = (fa - fp) / (xa - xp)
            s2 = (fb - fa) / (xb - xa)
            curv = 2.0 * (s2 - s1) / (xb - xp)
            if curv > 0.0:
                w = 0.5 * (xa + xb) - s2 / curv
                r = (w - xb) / (xb - xa)  # the step beyond xb, in units of the last
                if r < 0.0 and count[0] < maxeval:
                    fw = g(w)
                    if fw < fb:
                        xc, fc = xa, fa
                        xp, fp, xa, fa, xb, fb = xa, fa, xb, fb, w, fw
                        break
                    xp, fp, xa, fa = xa, fa, w, fw  # the bracket lies beyond xb
                    xc = xb + _GROW * (xb - xa)
                else:
                    xc = xb + min(max(r, 0.1 if walked == 1 else _GROW), 10.0) * (xb - xa)
            else:
                xc = xb + 4.0 * (xb - xa)
        xc = max(xc, lo)
        if xc > 1e15:  # θ beyond ~1e16 cannot be evaluated in double precision anyway
            end = True
            break
        fc = g(xc)
        if fc > fb or (fc == fb and fb < 1e150):
            break
        xp, fp, xa, fa, xb, fb = xa, fa, xb, fb, xc, fc
        walked += 1
    # Brent's method on [a, c] from x = b; w and v the other two points (w the better)
    if end:
        xc, fc = xp, fp
        a, c = (xb, xa) if xb < xa else (xa, xb)
    else:
        a, c = (xa, xc) if xa < xc else (xc, xa)
    x, fx = xb, fb
    if fa <= fc:
        w, fw, v, fv = xa, fa, xc, fc
    else:
        w, fw, v, fv = xc, fc, xa, fa
    deltax = rat = c - a  # the bracket's parabola may be tried at once
    while count[0] < maxeval:
        tol1 = _SQRT_EPS * abs(x) + xtol / 3.0
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
                    break  # a local parabola's vertex within tol₁ of x: x is the answer
                u = x + rat
                if (u - a) < tol2 or (c - u) < tol2:
                    rat = tol1 if xmid >= x else -tol1
        if not parabolic:
            deltax = (a - x) if x >= xmid else (c - x)
            rat = _CGOLD * deltax
        if abs(rat) >= tol1:
            u = x + rat
        else:
            u = x + tol1 if rat >= 0.0 else x - tol1
        fu = g(u)
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
    return OptimizerResult(x=np.array([x]), fun=fx, nfev=count[0], status="success")


def fd_gradient_hessian(
    fun: Callable[[np.ndarray], float], x: np.ndarray, lower: np.ndarray, h: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Central finite-difference gradient and Hessian of ``fun`` at ``x``; one-sided steps
    at a lower bound (as lme4's ``deriv12`` does for bounded parameters)."""
    x = np.asarray(x, dtype=float)
    nx = x.size
    f0 = fun(x)
    step = np.full(nx, h)
    grad = np.zeros(nx)
    hess = np.zeros((nx, nx))
    fp = np.zeros(nx)
    fm = np.zeros(nx)
    at_bound = x - step < lower
    for i in range(nx):
        e = np.zeros(nx)
        e[i] = step[i]
        if at_bound[i]:
            f1, f2 = fun(x + e), fun(x + 2 * e)
            grad[i] = (-3 * f0 + 4 * f1 - f2) / (2 * step[i])
            hess[i, i] = (f0 - 2 * f1 + f2) / step[i] ** 2
            fp[i], fm[i] = f1, f0
        else:
            fp[i], fm[i] = fun(x + e), fun(x - e)
            grad[i] = (fp[i] - fm[i]) / (2 * step[i])
            hess[i, i] = (fp[i] - 2 * f0 + fm[i]) / step[i] ** 2
    for i in range(nx):
        for j in range(i):
            ei = np.zeros(nx)
            ej = np.zeros(nx)
            ei[i] = step[i]
            ej[j] = step[j]
            fpp = fun(x + ei + ej)
            hess[i, j] = hess[j, i] = (fpp - fp[i] - fp[j] + f0) / (step[i] * step[j])
    return grad, hess


Many = Callable[[np.ndarray], np.ndarray]
"""A function evaluated at every row of a matrix of points at once."""


@dataclass
class Probe:
    """Central differences of a function at x over its free coordinates ``idx``:
    f0 = f(x), fp_i = f(x + h_i e_i), fm_i = f(x − h_i e_i). ``converged``: the last probe of
    Newton steps (:func:`newton_polish`) that ended converged."""

    x: np.ndarray
    idx: np.ndarray
    steps: np.ndarray
    f0: float
    fp: np.ndarray
    fm: np.ndarray
    converged: bool = False

    @classmethod
    def at(
        cls,
        fun: Callable[[np.ndarray], float],
        x: np.ndarray,
        lower: np.ndarray,
        f0: float | None = None,
        boundary_tol: float = 1e-5,
        h: float = 1e-4,
        many: Many | None = None,
    ) -> Probe:
        """Probe the coordinates not on their lower bound (within ``boundary_tol``), with
        steps ``h`` kept inside the bounds. ``many`` evaluates ``fun`` at the rows of a matrix
        in one call (a compiled criterion), else ``fun`` is called point by point."""
        # (a few values: Python floats beat numpy's calls; the same arithmetic)
        xl, ll = x.tolist(), lower.tolist()
        idx = [i for i, (a, lo) in enumerate(zip(xl, ll, strict=True)) if not a - lo < boundary_tol]
        steps = []
        for i in idx:
            half = (xl[i] - ll[i]) / 2.0
            steps.append(h if h <= half else half)  # np.minimum(h, half), NaN kept
        f0 = fun(x) if f0 is None else f0
        k = len(idx)
        pts = np.empty((2 * k, x.size))
        pts[:] = x
        for r, (i, step) in enumerate(zip(idx, steps, strict=True)):
            pts[r, i] = xl[i] + step
            pts[k + r, i] = xl[i] - step
        vals = _evaluate(fun, many, pts)
        return cls(
            x.copy(), np.array(idx, dtype=np.intp), np.array(steps, dtype=float), float(f0),
            vals[:k], vals[k:],
        )  # fmt: skip

    @property
    def gradient(self) -> np.ndarray:
        """Central differences (NaN where the function was not finite on both sides)."""
        fp, fm = self.fp, self.fm
        if np.isfinite(fp).all() and np.isfinite(fm).all():
            return (fp - fm) / (2.0 * self.steps)
        with np.errstate(invalid="ignore"):
            return (fp - fm) / (2.0 * self.steps)

    def hessian(
        self,
        fun: Callable[[np.ndarray], float],
        central: bool = False,
        many: Many | None = None,
    ) -> np.ndarray:
        """The Hessian over the free coordinates: the diagonal from the probe, each
        off-diagonal term by one more evaluation (error O(h)), or with ``central`` by four
        (error O(h²), what Newton's method needs to converge in a step or two)."""
        idx, steps, x = self.idx, self.steps, self.x
        H = np.diag((self.fp - 2.0 * self.f0 + self.fm) / steps**2)
        pairs = [(a, b) for a in range(idx.size) for b in range(a)]
        if not pairs:
            return H
        signs = ((1, 1), (1, -1), (-1, 1), (-1, -1)) if central else ((1, 1),)
        pts = np.repeat(x[None, :], len(pairs) * len(signs), axis=0)
        r = 0
        for a, b in pairs:
            for sa, sb in signs:
                pts[r, idx[a]] += sa * steps[a]
                pts[r, idx[b]] += sb * steps[b]
                r += 1
        vals = _evaluate(fun, many, pts).reshape(len(pairs), len(signs))
        for (a, b), v in zip(pairs, vals, strict=True):
            if central:
                cross = (v[0] - v[1] - v[2] + v[3]) / 4.0
            else:
                cross = v[0] - self.fp[a] - self.fp[b] + self.f0
            H[a, b] = H[b, a] = cross / (steps[a] * steps[b])
        return H


def _evaluate(fun: Callable[[np.ndarray], float], many: Many | None, pts: np.ndarray) -> np.ndarray:
    """``fun`` at every row of ``pts``: by ``many`` in one call when given."""
    if many is not None:
        return np.asarray(many(pts), dtype=float)
    return np.array([fun(p) for p in pts], dtype=float)


def newton_polish(
    fun: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    lower: np.ndarray,
    xtol: float = 1e-9,
    max_iter: int = 12,
    last_step: float = 1e-8,
    h: float = 1e-4,
    many: Many | None = None,
) -> tuple[np.ndarray, float, Probe]:
    """Finish a derivative-free minimization with Newton steps on the free coordinates.

    BOBYQA stops when its trust region or the change of the criterion falls below its
    tolerances; on a flat criterion that leaves θ (and the criterion, by ~1e-9 relative) short
    of the minimum, by an amount that depends on the path, i.e. on rounding. From BOBYQA's x the
    gradient g (central differences, step ``h`` = 1e-4 inside the bounds: error ~1e-8 from
    rounding and from truncation alike) over the coordinates not on their lower bound and,
    once, the Hessian H (central differences, O(h²)) are taken; steps −H⁻¹g (shortened to stay
    within the bounds; halved until f decreases, unless the predicted decrease is below f's
    rounding, where only the gradient can judge) are taken until the step is below
    ``xtol``·max(1, |x_i|). The iteration converges to the zero of the finite-difference
    gradient, a smooth function of the data: the answer is then the same for data
    that differ only by their units (~1e-9). Costs 2m evaluations per gradient, 2m(m−1) for H; the
    last gradient's evaluations are returned (lme4's convergence check reuses them), with
    ``converged`` set when the steps ended converged (a step below ``xtol``, or one below
    ``last_step`` taken) rather than stopped short (no free coordinate, H not positive
    definite, no decrease, ``max_iter`` steps).
    """
    x = np.asarray(x, dtype=float).copy()
    probe = Probe.at(fun, x, lower, fx, h=h, many=many)
    Hinv: np.ndarray | None = None
    free: np.ndarray | None = None
    prev = math.inf
    for _ in range(max_iter):
        if probe.idx.size == 0:
            break
        g = probe.gradient
        if not np.all(np.isfinite(g)):  # the criterion is not computable around x
            break
        stale = Hinv is None or free is None or not np.array_equal(free, probe.idx)
        fresh = False
        while True:
            if stale:
                free = probe.idx
                H = probe.hessian(fun, central=True, many=many)
                try:
                    np.linalg.cholesky(H)  # Newton's step needs H positive definite
                except np.linalg.LinAlgError:
                    Hinv = None
                    break
                Hinv = np.linalg.inv(H)  # m x m, m small; reused while the free set stays
                fresh = True
            assert Hinv is not None and free is not None
            step = -(Hinv @ g)
            size = np.max(np.abs(step) / np.maximum(1.0, np.abs(x[free])))
            # the old H's steps shrink by less than 4x a step while f can still judge them
            # (slow, linear convergence where the curvature changes along the way, as on a
            # flat ridge): H anew, here
            if fresh or size <= xtol or size <= 0.25 * prev:
                break
            if -0.5 * float(g @ step) < 100.0 * (8.0 * np.finfo(float).eps * max(abs(fx), 1.0)):
                break
            stale = True
        if Hinv is None:
            break  # H at x is not positive definite
        prev = size
        if size <= xtol:
            probe.converged = True
            break
        full = np.zeros(x.size)
        full[free] = step
        neg = full < 0
        room = np.where(neg, (x - lower) / np.where(neg, -full, 1.0), np.inf)
        alpha = min(1.0, float(np.min(room, initial=np.inf)))
        noise = 8.0 * np.finfo(float).eps * max(abs(fx), 1.0)
        # where the predicted decrease is below the criterion's rounding, f cannot judge the
        # step: the gradient (differences over h, far above rounding) is trusted instead
        if -0.5 * float(g @ step) < 100.0 * noise:
            noise = np.inf
        moved = False
        for _ in range(6):
            cand = np.maximum(x + alpha * full, lower)
            fc = fun(cand)
            if fc <= fx + noise:
                x, fx, moved = cand, fc, True
                break
            alpha *= 0.5
        if not moved:
            break
        if size <= last_step:
            # after a step this small the next would be below xtol: the gradient probed one
            # step back (at most last_step away) serves lme4's convergence check
            probe.converged = True
            break
        probe = Probe.at(fun, x, lower, fx, h=h, many=many)
    return x, fx, probe


def gradient_newton(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray | None]],
    x: np.ndarray,
    xtol: float = 1e-9,
    max_iter: int = 40,
    h: float = 1e-6,
    max_step: float = 1.0,
    columns: Callable[[np.ndarray], dict[int, np.ndarray] | None] | None = None,
    stop_step: float = 0.0,
    f: Callable[[np.ndarray], float] | None = None,
    values_max: int = 2,
    h_values: float = 1e-4,
    refresh_size: float = math.inf,
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Minimize from ``x`` with an exact gradient: a Newton step on a finite-difference
    Hessian of the gradient, then quasi-Newton (BFGS) updates of it.

    ``fg(x)`` returns the value and the gradient (None where the gradient cannot be given).
    No bounds: the profiled criterion is even in the sign of each column of each Λ block, so
    the caller maps the answer back (:func:`mixedfx.linalg.gradient.canonical_theta`) and a
    zero variance is approached from either side (a projected method would stop at θ_j = 0,
    where the gradient vanishes identically, even when that is a maximum along θ_j).

    The Hessian B (forward differences of the gradient, steps ``h``·max(1, |x_i|); its
    eigenvalues taken in absolute value and kept above 1e-8 of the largest) gives the step
    −B⁻¹g, shortened to at most ``max_step``·max(1, |x_i|) in each coordinate and halved until
    the value decreases (Armijo) or changes by less than its rounding; B is then updated by
    BFGS from the gradients' change. Stops when a step is below ``xtol``·max(1, |x_i|), or
    before taking a proposed step below ``stop_step``·max(1, |x_i|) (the iterates converge
    superlinearly: x is then that close to the optimum, and the criterion within about
    ½ g'B⁻¹g of its minimum). Costs m + 1 + (one per iteration) value-and-gradient calls.

    With ``f`` (the value alone, cheaper than ``fg``) and at most ``values_max`` columns left
    to difference, those columns come from values instead: B_ii = 2(f(x + h_i e_i) − f − h_i
    g_i)/h_i², B_ij = (f(x + h_i e_i + h_j e_j) − f(x + h_i e_i) − f(x + h_j e_j) + f)/(h_i
    h_j), h_i = ``h_values``·max(0.1, |x_i|) (truncation O(h_i/|x_i|), rounding O(ε|f|/h_i²)):
    k(k + 1)/2 values in place of k gradients, fewer evaluations' worth for k ≤ 2. Then, when
    the first step is longer than ``refresh_size``·max(1, |x_i|), those columns are estimated
    again from values at its end (the exact columns from ``columns`` are kept), in place of
    the BFGS update.

    ``columns(x)``, called once right after ``fg(x)``, may give columns of the Hessian at the
    starting x exactly ({index: column}); they replace those differences (a zero variance,
    where the exact second derivative is known: see
    :func:`mixedfx.linalg.gradient.zero_curvatures`). It returns None to give up.

    Returns (x, f(x), gradient at x), or None when a gradient was not available or
    ``columns`` gave up.
    """
    x = np.asarray(x, dtype=float).copy()
    fx, g = fg(x)
    if g is None or not math.isfinite(fx):
        return None
    nx = x.size
    known = columns(x) if columns is not None else {}
    if known is None:
        return None
    B = np.zeros((nx, nx))
    rest = [i for i in range(nx) if i not in known]
    for i in known:
        B[:, i] = known[i]
    by_values = f is not None and 0 < len(rest) <= values_max
    if by_values:
        assert f is not None
        if not _hessian_from_values(f, x, fx, g, rest, h_values, B):
            return None
        rest = []
    for i in rest:
        hi = h * max(1.0, abs(x[i]))
        e = np.zeros(nx)
        e[i] = hi
        _, gi = fg(x + e)
        if gi is None:
            return None
        B[:, i] = (gi - g) / hi
    B = 0.5 * (B + B.T)
    values_rest = [i for i in range(nx) if i not in known]
    for it in range(max_iter):
        w, V = np.linalg.eigh(B)
        aw = np.abs(w)
        w = np.maximum(aw, 1e-8 * max(float(np.max(aw, initial=0.0)), 1e-300))
        step = -V @ ((V.T @ g) / w)
        scale = np.maximum(1.0, np.abs(x))
        size = float(np.max(np.abs(step) / scale, initial=0.0))
        if not math.isfinite(size):
            return None
        if size <= stop_step:
            break
        if size > max_step:
            step *= max_step / size
        noise = 1e-13 * max(abs(fx), 1.0)
        alpha = 1.0
        for _ in range(30):
            xn = x + alpha * step
            fn, gn = fg(xn)
            if gn is None:
                return None
            if fn <= fx + 1e-4 * alpha * float(g @ step) or abs(fn - fx) <= noise:
                break
            alpha *= 0.5
        else:
            return x, fx, g
        s = xn - x
        y = gn - g
        x, fx, g = xn, fn, gn
        if float(np.max(np.abs(s) / np.maximum(1.0, np.abs(x)), initial=0.0)) <= xtol:
            break
        if by_values and it == 0 and size > refresh_size:
            # the criterion is not quadratic over a first step this long: the Hessian at the
            # new x (a few values) gives Newton's convergence from there, where BFGS would
            # take some more gradients to learn it
            if _hessian_from_values(f, x, fx, g, values_rest, h_values, B):  # type: ignore[arg-type]
                B = 0.5 * (B + B.T)
                continue
            return x, fx, g
        sy = float(s @ y)
        if sy > 0.0:
            Bs = B @ s
            B = B - np.outer(Bs, Bs) / float(s @ Bs) + np.outer(y, y) / sy
    return x, fx, g


def _hessian_from_values(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    g: np.ndarray,
    idx: list[int],
    h: float,
    B: np.ndarray,
) -> bool:
    """Fill B's rows and columns ``idx`` (within idx) from values near x, forward differences
    with the exact gradient g (see :func:`gradient_newton`); False when a value is not
    finite."""
    nx = x.size
    hs = {i: h * max(0.1, abs(x[i])) for i in idx}
    fi = {}
    for i in idx:
        e = np.zeros(nx)
        e[i] = hs[i]
        fi[i] = f(x + e)
        # f(x + h e_i) = f + h g_i + h² B_ii / 2 + O(h³)
        B[i, i] = 2.0 * (fi[i] - fx - hs[i] * g[i]) / hs[i] ** 2
    for a, i in enumerate(idx):
        for j in idx[a + 1 :]:
            e = np.zeros(nx)
            e[i], e[j] = hs[i], hs[j]
            B[i, j] = B[j, i] = (f(x + e) - fi[i] - fi[j] + fx) / (hs[i] * hs[j])
    sub = B[np.ix_(idx, idx)]
    return bool(np.all(np.isfinite(sub)))


def _same_side(px: np.ndarray, x: np.ndarray, lower: np.ndarray, boundary_tol: float) -> bool:
    """Whether a probe taken at ``px`` serves ``x``: within 1e-6 of it, with the same
    coordinates on their lower bound (a few values: Python floats beat numpy's calls)."""
    for a, b, lo in zip(px.tolist(), x.tolist(), lower.tolist(), strict=True):
        if not abs(a - b) <= 1e-6 or ((a - lo) < boundary_tol) != ((b - lo) < boundary_tol):
            return False
    return True


def check_convergence(
    fun: Callable[[np.ndarray], float],
    x: np.ndarray,
    lower: np.ndarray,
    tol: float = 2e-3,
    boundary_tol: float = 1e-5,
    warn: bool = True,
    probe: Probe | None = None,
    many: Many | None = None,
    gradient: np.ndarray | None = None,
) -> list[str]:
    """lme4's gradient check at the optimum; returns (and warns) the messages.

    As lme4's ``checkConv`` (``check.conv.grad``): a parameter fails when both its gradient
    and its Hessian-scaled gradient exceed ``tol`` in absolute value. The gradient is computed
    first (2 evaluations per parameter); the Hessian, reusing those evaluations, only when some
    gradient exceeds ``tol``. Parameters on their lower bound are left out, as a constrained
    optimum need not be flat. An exact ``gradient`` at x, when given, settles the common case
    (every free component within ``tol``) without evaluations.
    """
    msgs: list[str] = []
    if x.size == 0:
        return msgs
    if gradient is not None:
        free = ~((x - lower) < boundary_tol)
        if np.all(np.abs(gradient[free]) <= tol):
            return msgs
    if probe is None or not _same_side(probe.x, x, lower, boundary_tol):
        probe = Probe.at(fun, x, lower, boundary_tol=boundary_tol, many=many)
    if probe.idx.size == 0:
        return msgs
    idx = probe.idx
    g = probe.gradient
    gl = g.tolist()
    # a component above tol (numpy's max, as before: NaN anywhere means no Hessian)
    if any(abs(v) > tol for v in gl) and not any(v != v for v in gl):
        H = probe.hessian(fun, many=many)
        try:
            Lc = np.linalg.cholesky(H)
            scaled = np.linalg.solve(Lc.T, np.linalg.solve(Lc, g))
            mingrad = np.minimum(np.abs(scaled), np.abs(g))
            if np.max(mingrad) > tol:
                msgs.append(
                    f"Model failed to converge with max|grad| = {np.max(mingrad):.4g} "
                    f"(tol = {tol}, component {int(idx[np.argmax(mingrad)]) + 1})"
                )
        except np.linalg.LinAlgError:
            msgs.append(
                "Model failed to converge: the Hessian of the criterion is not positive "
                "definite at the optimum (a saddle point or a flat direction); "
                "try rescaling predictors or simplifying the random effects"
            )
    if warn:
        for msg in msgs:
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
    return msgs
