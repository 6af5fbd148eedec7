"""Make the figures and printed outputs of docs/classroom.md (and the README's figures).

Run from the repository root:  python docs/make_figures.py
Writes docs/*.png and docs/classroom_output.txt (the printed results quoted in classroom.md).
Takes about half a minute.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from scipy import stats

import mixedfx as mfx

DOCS = pathlib.Path(__file__).parent
DPI = 110


def classroom_data(seed: int = 2024, classrooms: int = 20, pupils: int = 25) -> pd.DataFrame:
    """Pupils' test scores in classrooms; posters hang in every other classroom and do nothing.

    score = 60 + 0.8 * (hours of homework) + classroom effect (sd 4) + pupil noise (sd 10).
    """
    rng = np.random.default_rng(seed)
    room = np.repeat(np.arange(classrooms), pupils)
    posters = (np.arange(classrooms) % 2)[room]
    homework = np.round(rng.gamma(4.0, 1.0, room.size), 1)
    classroom_effect = rng.normal(0.0, 4.0, classrooms)[room]
    score = 60 + 0.8 * homework + classroom_effect + rng.normal(0.0, 10.0, room.size)
    return pd.DataFrame({
        "score": np.round(score, 1),
        "posters": posters,
        "homework": homework,
        "classroom": [f"room{r + 1:02d}" for r in room],
    })


def save(fig, name: str) -> None:
    fig.savefig(DOCS / name, dpi=DPI, bbox_inches="tight")
    print(f"wrote docs/{name}")


def main() -> None:
    out = io.StringIO()

    def show(title: str, obj) -> None:
        out.write(f"### {title}\n\n{obj}\n\n")

    # the README's model: caterpillar plot of sleepstudy's conditional modes
    sleep = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    save(sleep.plot_ranef(), "caterpillar.png")
    # its profile likelihood: zeta against each parameter, the 95% interval where |zeta| = 1.96
    from mixedfx.plots import plot_profile

    save(plot_profile(sleep.profile()), "profile.png")

    df = classroom_data()
    df.to_csv(DOCS / "classroom.csv", index=False)
    ols = mfx.ols("score ~ posters + homework", df)
    show("ols: score ~ posters + homework", ols.summary())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.RankDeficiencyWarning)
        nuis = mfx.ols("score ~ C(classroom) + posters + homework", df)
    show("nuisance regression: score ~ C(classroom) + posters + homework", nuis.summary())

    m = mfx.lmer("score ~ posters + homework + (1 | classroom)", df)
    show("lmer: score ~ posters + homework + (1 | classroom)", m.summary())

    cmp = mfx.compare_controls("score ~ posters + homework + (1 | classroom)", df)
    show("compare_controls", cmp)
    save(cmp.plot(), "classroom_compare.png")
    save(m.plot_ranef(), "classroom_caterpillar.png")
    save(m.plot_residuals(), "classroom_residuals.png")

    design = {"classroom": 20, "per_classroom": 25, "posters": "between", "homework": "within"}
    null = mfx.power(
        "score ~ posters + homework + (1 | classroom)", design,
        fixef={"(Intercept)": 60, "posters": 0.0, "homework": 0.0},
        varcorr={"classroom": 4.0**2}, sigma=10.0, nsim=2000, seed=2, n_jobs=2,
    )
    show("power with no effects (false-positive rates)", null)
    save(null.plot(), "power.png")

    rows = []
    for rooms, pupils in ((10, 50), (20, 25), (40, 12), (20, 50)):
        sim = mfx.power(
            "score ~ posters + (1 | classroom)",
            {"classroom": rooms, "per_classroom": pupils, "posters": "between"},
            fixef={"(Intercept)": 60, "posters": 5.0}, varcorr={"classroom": 4.0**2},
            sigma=10.0, nsim=500, seed=2, methods=("mixed",), n_jobs=2,
        )
        r = sim.table.iloc[0]
        # exact: the t test on classroom means, df G - 2, noncentrality 5 / sqrt(4 (16 + 100/m) / G)
        df_, ncp = rooms - 2, 5.0 / np.sqrt(4 * (16 + 100 / pupils) / rooms)
        q = stats.t.ppf(0.975, df_)
        exact = stats.nct.sf(q, df_, ncp) + stats.nct.cdf(-q, df_, ncp)
        rows.append((rooms, pupils, rooms * pupils, r["rejection_rate"], r["mc_low"], r["mc_high"],
                     exact))
        if (rooms, pupils) == (20, 25):
            save(sim.plot(), "classroom_power.png")
    table = pd.DataFrame(rows, columns=["classrooms", "pupils each", "pupils", "power",
                                        "MC low", "MC high", "exact"])
    show("power of the mixed model for a 5-point poster effect", table.to_string(index=False))

    (DOCS / "classroom_output.txt").write_text(out.getvalue())
    print("wrote docs/classroom_output.txt")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
