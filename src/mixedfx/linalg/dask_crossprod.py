"""Step 3 on Dask: the blocked cross-products of a design whose rows are partitions.

One pass: each partition becomes the model's rows on the global levels
(:meth:`mixedfx.frame.dask_frame.DaskSource.design`), its sufficient statistics are formed
where it lives (:class:`~mixedfx.linalg.sufficient.ChunkPlan`: per-level counts and
cross-products, the pair tables Z_i'Z_j on global codes, Z'X, Z'y, X'X, X'y, y'y, n), and the
statistics are summed as a tree (``split_every`` partitions at a time), in pieces by ranges of
the first term's levels (each piece its own tree, so no single sum is larger than a piece). The
client receives the sums, no larger together than the cross-products themselves, and lays them
out as the
:class:`~mixedfx.linalg.crossprod.CrossProducts` of the whole data
(:class:`~mixedfx.linalg.sufficient.StatsLayout`); the factor and optimizer then run as in
memory.

The response and weights enter in the linear engine's units (y − o)/s and w/c, s = max|y − o|
and c = max w from the design's first pass, so the cross-products are those an in-memory fit
forms, up to the order of summation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..frame.dask_frame import DaskDesign, DaskSource, finish_design, release_memory
from .crossprod import CrossProducts
from .sufficient import (
    ChunkPlan,
    StatsLayout,
    SufficientStats,
    concat_stats,
    split_stats,
    sum_stats,
)

__all__ = ["DaskCrossProducts", "dask_crossproducts", "design_units"]


def design_units(design: DaskDesign) -> tuple[float, float]:
    """(s, c): the response's and the weights' scales, as the linear engine's ``Units.of``."""
    src = design.source
    s = src.ymax if src.ymax > 0 and math.isfinite(src.ymax) else 1.0
    c = src.wmax if design.weights is not None and src.wmax > 0 and math.isfinite(src.wmax) else 1.0
    return s, c


PIECE_ROWS = 4_000_000
"""The pass's sums are split by ranges of the first term's levels into pieces of about this
many table rows (pairs), each summed as a tree of its own: no sum formed anywhere is larger."""


def _partition_stats(
    source: DaskSource,
    part: pd.DataFrame,
    s: float,
    c: float,
    level_xy: bool,
    bounds: np.ndarray,
) -> list[SufficientStats | None]:
    d = source.design(part, full=True)
    if d is None:
        return [None] * (bounds.size - 1)
    y = d.y - d.offset if d.offset is not None else d.y
    sqrtw = np.sqrt(d.weights / c) if d.weights is not None else None
    st = ChunkPlan(d).stats(sqrtw, y / s, d.X, xx=True, level_xy=level_xy)
    return split_stats(st, bounds, [t.nlevels for t in d.terms])


@dataclass
class DaskCrossProducts:
    """The result of the pass: cross-products in units (s, c), the summed statistics, and
    their layout (for refills with the same keys)."""

    A: CrossProducts
    s: float
    c: float
    stats: SufficientStats
    layout: StatsLayout


def dask_crossproducts(design: DaskDesign, *, level_xy: bool = False) -> DaskCrossProducts:
    """The cross-products of a Dask-backed design by one map-reduce pass (see the module
    docstring). Rank-deficient fixed-effects columns are dropped from the design here (with
    the in-memory warning), found from the unweighted X'X of the same pass.

    ``level_xy``: also sum the per-level Σ xy xy' of every term (the method of moments).
    """
    s, c = design_units(design)
    terms = design.terms
    n1 = terms[0].nlevels
    entries = design.n * max(len(terms) - 1, 1) + n1
    pieces = int(min(max(1, math.ceil(entries / PIECE_ROWS)), 32, n1))
    bounds = np.unique(np.linspace(0, n1, pieces + 1).round().astype(np.int64))
    sums = design.reduce(
        _partition_stats, s, c, level_xy, bounds, combine=sum_stats, shards=bounds.size - 1
    )
    stats = concat_stats(sums)
    del sums
    release_memory()
    assert stats is not None and stats.xx is not None
    keep = finish_design(design, stats.xx, stacklevel=5)
    layout = StatsLayout(
        stats, [t.nlevels for t in design.terms], [t.k for t in design.terms], keep
    )
    return DaskCrossProducts(layout.fill(stats), s, c, stats, layout)
