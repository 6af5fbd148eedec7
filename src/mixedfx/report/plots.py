"""Plots of fitted models, comparisons and power simulations (matplotlib, optional).

Install with ``pip install 'mixedfx[plot]'``. matplotlib is imported only when a plot is made.
Every function returns the matplotlib ``Figure``; those that draw one panel accept ``ax=`` to
draw into an existing Axes, those that draw several accept a sequence of Axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._lazy import stats

__all__ = [
    "plot_comparison",
    "plot_power",
    "plot_profile",
    "plot_ranef",
    "plot_residuals",
]


def _plt() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'mixedfx[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def _axes(ax: Any, n: int, ncols: int | None = None, size: tuple[float, float] = (4.0, 3.5)):
    """(figure, list of n Axes): new ones in a grid, or the Axes given (one or a sequence)."""
    plt = _plt()
    if ax is None:
        ncols = ncols or min(n, 3)
        nrows = -(-n // ncols)
        fig, axs = plt.subplots(
            nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
        )
        flat = list(axs.ravel())
        for extra in flat[n:]:
            extra.set_visible(False)
        return fig, flat[:n]
    axs = [ax] if not isinstance(ax, (Sequence, np.ndarray)) else list(np.ravel(ax))
    if len(axs) != n:
        raise ValueError(f"this plot draws {n} panel(s); ax has {len(axs)} Axes")
    return axs[0].figure, axs


# ------------------------------------------------------------- random effects
def plot_ranef(model: Any, level: float = 0.95, ax: Any = None, sort: bool = True) -> Any:
    """Caterpillar plot of the conditional modes with prediction intervals, as lme4's
    ``dotplot(ranef(m, condVar = TRUE))``: one panel per grouping factor and term column, levels
    sorted by their conditional mode, ``condval ± z_{(1+level)/2} condsd``.

    Parameters
    ----------
    model : LinearMixedModel (anything with ``ranef()`` giving condval and condsd)
    level : float
        Interval level.
    ax : Axes or sequence of Axes, optional
        One per panel (grouping factor x term column).
    sort : bool
        Sort the levels by the conditional mode (lme4's default).
    """
    re = model.ranef()
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    panels = list(dict.fromkeys(zip(re["group"], re["term"], strict=True)))
    fig, axs = _axes(ax, len(panels), ncols=min(len(panels), 3), size=(4.0, 5.0))
    for a, (g, term) in zip(axs, panels, strict=True):
        sub = re[(re["group"] == g) & (re["term"] == term)]
        order = (
            np.argsort(sub["condval"].to_numpy(), kind="stable") if sort else np.arange(len(sub))
        )
        cv = sub["condval"].to_numpy()[order]
        sd = sub["condsd"].to_numpy()[order] if "condsd" in sub else np.zeros_like(cv)
        labels = [str(v) for v in sub["level"].to_numpy()[order]]
        pos = np.arange(len(cv))
        a.errorbar(cv, pos, xerr=z * sd, fmt="o", ms=3.5, color="C0", ecolor="0.45", lw=1)
        a.axvline(0.0, color="0.6", lw=0.8, ls="--")
        a.set_yticks(pos)
        a.set_yticklabels(labels, fontsize=7 if len(labels) > 30 else 8)
        if len(labels) > 60:
            a.set_yticks(pos[:: len(labels) // 30 + 1])
            a.set_yticklabels(labels[:: len(labels) // 30 + 1], fontsize=7)
        a.set_title(f"{g}: {term}", fontsize=10)
        a.set_xlabel(f"conditional mode ± {100 * level:g}% interval")
        a.set_ylabel(g)
    fig.tight_layout()
    return fig


def plot_residuals(model: Any, ax: Any = None) -> Any:
    """Diagnostics: residuals against fitted values, a normal QQ plot of the residuals, and a
    normal QQ plot of the conditional modes (each term column standardized by its standard
    deviation, so they share one reference line). Three panels (``ax``: three Axes)."""
    fig, axs = _axes(ax, 3, ncols=3, size=(4.0, 3.6))
    fitted = np.asarray(model.fitted)
    resid = np.asarray(model.residuals)
    a = axs[0]
    a.scatter(fitted, resid, s=8, alpha=0.6, color="C0", edgecolors="none")
    a.axhline(0.0, color="0.4", lw=0.8, ls="--")
    a.set_xlabel("fitted values")
    a.set_ylabel("residuals")
    a.set_title("Residuals vs fitted", fontsize=10)

    def qq(a: Any, values: np.ndarray, label: str | None, color: str) -> None:
        v = np.sort(values)
        n = v.size
        p = (np.arange(1, n + 1) - (0.375 if n <= 10 else 0.5)) / (n + (0.25 if n <= 10 else 0.0))
        a.scatter(stats.norm.ppf(p), v, s=8, alpha=0.7, color=color, edgecolors="none", label=label)

    a = axs[1]
    sres = resid / model.sigma
    qq(a, sres, None, "C0")
    lim = np.array([stats.norm.ppf(0.5 / sres.size), -stats.norm.ppf(0.5 / sres.size)])
    a.plot(lim, lim, color="0.4", lw=0.8, ls="--")
    a.set_xlabel("theoretical quantiles (normal)")
    a.set_ylabel("residuals / sigma")
    a.set_title("Normal QQ: residuals", fontsize=10)

    a = axs[2]
    re = model.ranef(condvar=False)
    for i, ((g, term), sub) in enumerate(re.groupby(["group", "term"], sort=False)):
        v = sub["condval"].to_numpy()
        s = v.std(ddof=1) if v.size > 1 else 0.0
        qq(a, v / s if s > 0 else v, f"{g}: {term}", f"C{i % 10}")
    a.plot([-2.5, 2.5], [-2.5, 2.5], color="0.4", lw=0.8, ls="--")
    a.set_xlabel("theoretical quantiles (normal)")
    a.set_ylabel("conditional modes / their SD")
    a.set_title("Normal QQ: conditional modes", fontsize=10)
    a.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_profile(profile: Any, level: float = 0.95, ax: Any = None) -> Any:
    """The profile ζ of each parameter against its value, as lme4's ``xyplot(profile(m))``:
    one panel per parameter, with the ±z lines of a ``level`` interval (where they cross the
    profile are the interval's ends). ``profile`` is the table of ``model.profile()``."""
    params = list(dict.fromkeys(profile["parameter"]))
    fig, axs = _axes(ax, len(params), size=(3.4, 3.0))
    z = stats.norm.ppf(0.5 + level / 2)
    for a, name in zip(axs, params, strict=True):
        sub = profile[profile["parameter"] == name].sort_values("value")
        a.plot(sub["value"], sub["zeta"], color="C0", lw=1.2, marker="o", ms=2.5)
        for zz in (-z, z):
            a.axhline(zz, color="0.5", lw=0.8, ls="--")
        a.axhline(0.0, color="0.8", lw=0.6)
        a.set_title(name, fontsize=10)
        a.set_ylabel("ζ")
    fig.tight_layout()
    return fig


# ------------------------------------------------------- comparisons, power
def plot_comparison(cmp: Any, terms: list[str] | None = None, ax: Any = None) -> Any:
    """Estimates with their intervals (level of the comparison) per approach, one panel per
    fixed effect (by default all but the intercept). Approaches that cannot estimate a term are
    marked "not estimable"."""
    labels = getattr(cmp, "labels", {})
    t = cmp.table
    if terms is None:
        terms = [x for x in dict.fromkeys(t["term"]) if x != "(Intercept)"] or list(
            dict.fromkeys(t["term"])
        )
    fig, axs = _axes(ax, len(terms), ncols=min(len(terms), 3), size=(4.6, 2.6))
    approaches = list(dict.fromkeys(t["approach"]))
    pos = np.arange(len(approaches))[::-1]
    for a, term in zip(axs, terms, strict=True):
        sub = t[t["term"] == term].set_index("approach").reindex(approaches)
        for i, (ap, y) in enumerate(zip(approaches, pos, strict=True)):
            r = sub.loc[ap]
            if np.isfinite(r["estimate"]):
                a.errorbar(
                    r["estimate"],
                    y,
                    xerr=[[r["estimate"] - r["ci_low"]], [r["ci_high"] - r["estimate"]]],
                    fmt="o",
                    color=f"C{i}",
                    capsize=3,
                    lw=1.5,
                )
            else:
                a.text(
                    0.5,
                    y,
                    "not estimable",
                    transform=a.get_yaxis_transform(),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="0.35",
                    style="italic",
                )
        a.axvline(0.0, color="0.6", lw=0.8, ls="--")
        a.set_yticks(pos)
        a.set_yticklabels([labels.get(ap, ap).split(" (")[0] for ap in approaches], fontsize=8)
        a.set_ylim(-0.6, len(approaches) - 0.4)
        a.set_title(term, fontsize=10)
        a.set_xlabel(f"estimate with {100 * cmp.level:g}% interval")
        a.set_ylabel("approach")
    fig.tight_layout()
    return fig


def plot_power(sim: Any, ax: Any = None) -> Any:
    """Rejection rate per method with its Monte Carlo 95% interval, one panel per tested term;
    the dashed line is ``alpha`` (where the true effect is 0 the rate should sit on it)."""
    t = sim.table
    terms = list(dict.fromkeys(t["term"]))
    fig, axs = _axes(ax, len(terms), ncols=min(len(terms), 3), size=(4.2, 3.4))
    for a, term in zip(axs, terms, strict=True):
        sub = t[t["term"] == term].reset_index(drop=True)
        x = np.arange(len(sub))
        true = float(sub["true_value"].iloc[0])
        for i, r in sub.iterrows():
            if r["n_valid"] > 0:
                a.bar(i, r["rejection_rate"], color=f"C{i}", alpha=0.75, width=0.6)
                a.errorbar(
                    i,
                    r["rejection_rate"],
                    yerr=[
                        [r["rejection_rate"] - r["mc_low"]],
                        [r["mc_high"] - r["rejection_rate"]],
                    ],
                    fmt="none",
                    ecolor="k",
                    capsize=4,
                    lw=1,
                )
            else:
                a.text(
                    i,
                    0.09,
                    "not\nestimable",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color="0.35",
                    style="italic",
                )
        a.axhline(sim.alpha, color="C3", lw=1, ls="--", label=f"alpha = {sim.alpha:g}")
        a.set_xticks(x)
        a.set_xticklabels(list(sub["method"]))
        a.set_ylim(0, 1)
        kind = "false-positive rate" if true == 0 else "power"
        a.set_ylabel(f"rejection rate ({kind})")
        a.set_xlabel("method")
        a.set_title(f"{term} (true value {true:g}), nsim = {sim.nsim}", fontsize=10)
        a.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig
