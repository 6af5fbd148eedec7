"""What an exact fit costs, and the choice between the exact and the approximate method.

The exact linear mixed model factors, at every evaluation of the criterion, a dense trailing
block of m = (levels × columns of every term but the first) + p + 1 rows (ARCHITECTURE.md:
the first term's block is block-diagonal and never dense). Its cost:

* memory: the block, its factor and a work copy, 3 m² doubles, plus the first term's block
  column (about 16 bytes per observation and later term);
* time per evaluation: the Cholesky factorization, m³/3 flops, and the Schur update of the
  first term, Σ over its levels of (rows of the block column)² ≈ n1 r², r the distinct later
  levels per first-term level (at most the observations per level);
* evaluations: about 30 + 10 per covariance parameter (BOBYQA and the Newton steps after it).

``method="auto"`` takes the exact method when the estimate fits :data:`MAX_BYTES` and
:data:`MAX_SECONDS`, else the method of moments (crossed random intercepts, approximate), and
says so; when neither applies it raises with the estimate and what to do instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FLOPS", "MAX_BYTES", "MAX_SECONDS", "ExactCost", "exact_cost", "memory_limit"]

FLOPS = 1.0e10
"""Floating-point operations per second assumed for the dense factorization (LAPACK's dpotrf
ran at 13–15 GFLOP/s on the project's 2-core machine)."""

MAX_SECONDS = 600.0
"""``method="auto"``: the longest estimated exact fit before it chooses the method of moments."""


def memory_limit() -> float:
    """Bytes an exact fit may use: 60 % of the machine's memory, at most 8 GB."""
    try:
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        total = 16e9
    return min(8e9, 0.6 * total)


MAX_BYTES = memory_limit()
"""``method="auto"``: the most memory an exact fit may take before it chooses the moments."""


@dataclass(frozen=True)
class ExactCost:
    """The estimated cost of an exact fit."""

    m: int
    """Rows of the dense trailing block."""
    bytes: float
    seconds: float
    evaluations: int

    def fits(self, max_bytes: float | None = None, max_seconds: float | None = None) -> bool:
        mb = MAX_BYTES if max_bytes is None else max_bytes
        ms = MAX_SECONDS if max_seconds is None else max_seconds
        return self.bytes <= mb and self.seconds <= ms

    def describe(self) -> str:
        return (
            f"a dense block of {self.m} rows: about {self.bytes / 1e9:.1f} GB and "
            f"{_duration(self.seconds)} ({self.evaluations} evaluations)"
        )


def _duration(sec: float) -> str:
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 7200:
        return f"{sec / 60:.0f} minutes"
    return f"{sec / 3600:.1f} hours"


def exact_cost(nlevels: Sequence[int], ks: Sequence[int], p: int, n: int) -> ExactCost:
    """The estimated memory and time of an exact fit (see the module docstring), terms in the
    model's order (the first has the most levels)."""
    if len(nlevels) != len(ks):
        raise ValueError("exact_cost: one number of levels and one k per term")
    n1, k1 = int(nlevels[0]), int(ks[0])
    q_rest, kmax, ntheta = 0, 1, k1 * (k1 + 1) // 2
    for i in range(1, len(ks)):  # the later terms (a loop: a few terms, every fit asks)
        k = int(ks[i])
        q_rest += int(nlevels[i]) * k
        kmax = k if i == 1 or k > kmax else kmax
        ntheta += k * (k + 1) // 2
    m = q_rest + p + 1
    later = len(nlevels) - 1
    per_level = n / max(n1, 1)
    r = min(per_level * later, m - p - 1) * kmax + p + 1
    evaluations = 30 + 10 * ntheta
    flops = m**3 / 3.0 + 2.0 * m * m + n1 * r * r * k1 * k1
    bytes_ = 3.0 * m * m * 8.0 + 16.0 * n * max(later, 1) * k1 + 200.0 * n1
    return ExactCost(
        m=m, bytes=bytes_, seconds=evaluations * flops / FLOPS, evaluations=evaluations
    )
