"""Principal components of the random effects' relative covariance, as lme4's ``rePCA``.

For each grouping factor the relative covariance factor Λ_g (the block-diagonal of the Λ blocks
of its terms: one block for ``(x | g)``, one per term for ``(x || g)``) gives the covariance of
that factor's random effects as σ² Λ_g Λ_g' (σ = 1 for binomial and Poisson models). With the
singular value decomposition

    Λ_g = U D V',   D = diag(d₁ ≥ d₂ ≥ … ≥ d_k ≥ 0),

the principal components of σ² Λ_g Λ_g' = σ² U D² U' are the columns of U (``rotation``) with
standard deviations d_j in units of σ (``sdev``), and

    proportion_j = d_j² / Σ_l d_l²,   cumulative_j = Σ_{l ≤ j} proportion_l.

A component with d_j = 0 (or near it) is a direction of the random effects with no variance:
the fit is singular and the random-effects structure can be simplified (Bates et al. 2015,
"Parsimonious mixed models").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

__all__ = ["RePCA", "RePCATerm", "repca"]


@dataclasses.dataclass(frozen=True)
class RePCATerm:
    """The principal components of one grouping factor's random effects.

    Attributes
    ----------
    group : str
        The grouping factor.
    columns : list of str
        The random-effect columns, in the order of the rows of ``rotation``.
    sdev : ndarray (k,)
        Singular values of Λ_g, decreasing (standard deviations in units of σ).
    rotation : ndarray (k, k)
        Left singular vectors U: column j is component j (the sign of a column is arbitrary,
        as for any SVD).
    """

    group: str
    columns: list[str]
    sdev: np.ndarray
    rotation: np.ndarray

    @property
    def proportion(self) -> np.ndarray:
        """d_j² / Σ d_l² (R's "Proportion of Variance")."""
        v = self.sdev**2
        total = v.sum()
        return v / total if total > 0 else np.full_like(v, np.nan)

    @property
    def cumulative(self) -> np.ndarray:
        """Cumulative proportion of variance."""
        return np.cumsum(self.proportion)

    def importance(self) -> pd.DataFrame:
        """The table ``summary(rePCA(m))`` prints: rows Standard deviation, Proportion of
        Variance, Cumulative Proportion; one column per component."""
        cols = [f"[,{j + 1}]" for j in range(self.sdev.size)]
        return pd.DataFrame(
            [self.sdev, self.proportion, self.cumulative],
            index=["Standard deviation", "Proportion of Variance", "Cumulative Proportion"],
            columns=cols,
        )


class RePCA:
    """lme4's ``rePCA(m)``: one :class:`RePCATerm` per grouping factor.

    Index by grouping factor (``pca["Subject"]``) or iterate; ``table`` gives all components
    as one frame. Printing shows ``summary(rePCA(m))``.
    """

    def __init__(self, terms: list[RePCATerm]):
        self.terms = terms

    def __getitem__(self, group: str) -> RePCATerm:
        for t in self.terms:
            if t.group == group:
                return t
        raise KeyError(f"no grouping factor {group!r}; groups: {[t.group for t in self.terms]}")

    def __iter__(self):
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def table(self) -> pd.DataFrame:
        """One row per component: group, component (1-based), sdev, proportion, cumulative."""
        frames = [
            pd.DataFrame(
                {
                    "group": t.group,
                    "component": np.arange(1, t.sdev.size + 1),
                    "sdev": t.sdev,
                    "proportion": t.proportion,
                    "cumulative": t.cumulative,
                }
            )
            for t in self.terms
        ]
        return pd.concat(frames, ignore_index=True)

    def __str__(self) -> str:
        out = []
        for t in self.terms:
            imp = t.importance()
            # summary.prcomp rounds the proportions to 5 decimals; print shows each column with
            # the decimals its values need for 4 significant digits
            vals = imp.to_numpy().copy()
            vals[1:] = np.round(vals[1:], 5)
            cells = [[f"{x:.{_decimals(col)}f}" for x in col] for col in vals.T]
            heads = list(imp.columns)
            widths = [max(len(h), *map(len, c)) for h, c in zip(heads, cells, strict=True)]
            w0 = max(len(s) for s in imp.index)
            lines = [f"${t.group}", "Importance of components:"]
            lines.append(
                " " * w0 + "".join(f" {h:>{w}}" for h, w in zip(heads, widths, strict=True))
            )
            for i, name in enumerate(imp.index):
                row = "".join(f" {c[i]:>{w}}" for c, w in zip(cells, widths, strict=True))
                lines.append(name.ljust(w0) + row)
            out.append("\n".join(lines))
        return "\n\n".join(out)

    __repr__ = __str__


def _decimals(values: np.ndarray, sig: int = 4) -> int:
    """Decimals R prints for a column with ``digits = sig`` (the most any value needs)."""
    dec = 0
    for x in np.abs(values[np.isfinite(values) & (values != 0)]).tolist():
        text = f"{x:.{sig - 1}e}"
        mant, exp = text.split("e")
        digits = mant.replace(".", "").rstrip("0")
        dec = max(dec, len(digits) - 1 - int(exp))
    return min(dec, 5)


def repca(engine: Any) -> RePCA:
    """Principal components of each grouping factor's relative covariance factor.

    Parameters
    ----------
    engine : fitted engine

    Returns
    -------
    RePCA
        One entry per grouping factor, in the order of the model's terms (lme4's).
    """
    engine.require_fit()
    groups: dict[str, tuple[list[str], list[np.ndarray]]] = {}
    for t, lam in zip(engine.design.terms, engine.lambdas(), strict=True):
        cols, blocks = groups.setdefault(t.group, ([], []))
        cols.extend(t.columns)
        blocks.append(lam)
    terms = []
    for group, (cols, blocks) in groups.items():
        L = sla.block_diag(*blocks)
        U, d, _ = np.linalg.svd(L)
        terms.append(RePCATerm(group=group, columns=cols, sdev=d, rotation=U))
    return RePCA(terms)
