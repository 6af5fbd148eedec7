"""Step 4b of the pipeline: factor -> profiled criterion.

With n observations, p fixed effects, r² the penalized residual sum of squares and the
log-determinants read off the blocked factor (Bates et al. 2015, eqs. 34 and 41)::

    ML:    -2 ℓ(θ)  = 2 log|Lz| + n (1 + log(2π r² / n))                 - Σ log w
    REML:  -2 ℓR(θ) = 2 log|Lz| + 2 log|Rx| + (n-p)(1 + log(2π r²/(n-p))) - Σ log w

where w are the prior weights (the term vanishes without weights). σ̂² = r²/n (ML) or
r²/(n-p) (REML).
"""

from __future__ import annotations

import math

from .factor import FactorStats

__all__ = ["profiled_deviance", "sigma_hat"]

_LOG_2PI = math.log(2.0 * math.pi)


def profiled_deviance(
    stats: FactorStats, n: int, p: int, reml: bool, sum_log_w: float = 0.0
) -> float:
    """The profiled ML deviance or REML criterion at the θ the factor was computed for."""
    if not stats.ok or not stats.pwrss > 0.0:
        return math.inf
    if reml:
        nmp = n - p
        return (
            2.0 * stats.logdet_Lz
            + 2.0 * stats.logdet_Rx
            + nmp * (1.0 + _LOG_2PI + math.log(stats.pwrss / nmp))
            - sum_log_w
        )
    return 2.0 * stats.logdet_Lz + n * (1.0 + _LOG_2PI + math.log(stats.pwrss / n)) - sum_log_w


def sigma_hat(stats: FactorStats, n: int, p: int, reml: bool) -> float:
    """The residual standard deviation that profiles out of the criterion."""
    return math.sqrt(stats.pwrss / (n - p if reml else n))
