"""The vectorized exp, log and binomial-logit pass of the compiled PIRLS against libm and the
per-observation formulas (R's) they replace: equal to rounding, NaN kept NaN."""

from __future__ import annotations

import math

import numpy as np

from mixedfx.glm import pirls_kernels as PK


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.spacing(np.abs(b))


def test_vexp_within_one_ulp_of_libm():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-700, 700, 5000), rng.uniform(-1, 1, 5000), [0.0, -30, 30]])
    out, bits = np.empty_like(x), np.empty(x.size, dtype=np.int64)
    PK.vexp(x, out, bits)
    ref = np.array([math.exp(v) for v in x])
    assert _ulps(out, ref).max() <= 1.0
    PK.vexp(np.array([np.nan, 1.0]), out[:2], bits[:2])
    assert np.isnan(out[0]) and abs(out[1] - math.e) <= np.spacing(math.e)


def test_vlog_within_one_ulp_of_libm():
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            np.exp(rng.uniform(-700, 700, 5000)),
            rng.uniform(0.5, 2.0, 5000),
            [1.0, 2.0, 0.5, math.sqrt(2.0), 1.0 + 1e-12, 1.0 - 1e-12, 2.2e-16],
        ]
    )
    out = np.empty_like(x)
    PK.vlog(x, out)
    ref = np.array([math.log(v) for v in x])
    assert np.all(np.abs(out - ref) <= np.spacing(np.maximum(np.abs(ref), 1e-300)))
    assert out[x.size - 7] == 0.0  # log 1
    PK.vlog(np.array([np.nan, 1.0]), out[:2])
    assert np.isnan(out[0]) and out[1] == 0.0


def test_binomial_logit_pass_matches_r_formulas():
    """Weights, residuals, μ and the deviance of the vectorized pass against _glm_obs (R's
    arithmetic), at ordinary η, beyond R's clamp at |η| = 30, with proportions and weights."""
    rng = np.random.default_rng(3)
    n = 4001
    eta = rng.normal(0.0, 3.0, n)
    eta[:6] = [-40.0, 40.0, 30.5, -30.5, 29.9, -29.9]
    y = (rng.random(n) < 0.4).astype(float)
    y[10:30] = rng.uniform(0.0, 1.0, 20)
    wt = np.ones(n)
    wt[10:30] = rng.integers(1, 20, 20)
    mu, scratch = np.empty(n), np.zeros((5, n))
    total = PK._binomial_logit_obs(eta, y, wt, mu, scratch)
    mu0, sw0, wr0 = np.empty(n), np.empty(n), np.empty(n)
    total0 = PK.glm_working(0, 0, eta, y, wt, mu0, sw0, wr0, True)
    assert abs(total - total0) <= 1e-13 * abs(total0)
    np.testing.assert_allclose(mu, mu0, rtol=1e-15, atol=0)
    np.testing.assert_allclose(scratch[0], sw0**2, rtol=1e-14, atol=0)
    np.testing.assert_allclose(scratch[1], wr0, rtol=1e-14, atol=0)
    eta[5] = np.nan
    assert np.isnan(PK._binomial_logit_obs(eta, y, wt, mu, scratch))
