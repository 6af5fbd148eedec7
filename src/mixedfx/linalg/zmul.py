"""Products with the random-effects model matrix: b = Λu per term, and Z b.

Z is never formed: term t contributes, for row i, Z_t[i, :] · b_t[level_t(i), :], where Z_t
is the (n, k) matrix of the term's columns and b_t the (levels, k) random effects. ``b`` may
carry a trailing axis of replicates (levels, k, nsim) for simulations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..frame.design import RandomEffectsTerm

__all__ = ["b_blocks", "z_times"]


def b_blocks(
    terms: Sequence[RandomEffectsTerm], lams: Sequence[np.ndarray], u: np.ndarray
) -> list[np.ndarray]:
    """b = Λu split by term: for each term a (levels, k) array (or (levels, k, nsim) when u
    is (q, nsim))."""
    out = []
    pos = 0
    for t, lam in zip(terms, lams, strict=True):
        block = u[pos : pos + t.q]
        pos += t.q
        if block.ndim == 1:
            out.append(block.reshape(t.nlevels, t.k) @ lam.T)
        else:
            out.append(np.einsum("ij,ljs->lis", lam, block.reshape(t.nlevels, t.k, -1)))
    return out


def z_times(
    terms: Sequence[RandomEffectsTerm],
    blocks: Sequence[np.ndarray],
    Zts: Sequence[np.ndarray] | None = None,
    refs: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Σ_t Z_t b_t: (n,) for (levels, k) blocks, (n, nsim) for (levels, k, nsim) blocks.

    ``Zts`` and ``refs`` default to the terms' own columns and level indices (the fitted
    rows); pass others (e.g. built from new data) to multiply a different Z. A level index
    of −1 (a level the fit has not seen) contributes 0.
    """
    out: np.ndarray | None = None
    for i, (t, b) in enumerate(zip(terms, blocks, strict=True)):
        Zt = t.Zt if Zts is None else Zts[i]
        ref = t.refs if refs is None else refs[i]
        known = ref >= 0
        rows = b[np.where(known, ref, 0)]
        if b.ndim == 2:
            part = Zt[:, 0] * rows[:, 0] if t.k == 1 else np.einsum("ij,ij->i", Zt, rows)
        else:
            part = np.einsum("ik,iks->is", Zt, rows)
        if not known.all():
            part[~known] = 0.0
        out = part if out is None else out + part
    if out is None:
        raise ValueError("z_times needs at least one random-effects term")
    return out
