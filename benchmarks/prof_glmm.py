"""Time (and optionally profile) the three GLMM benchmark fits in process.

    PYTHONPATH=src .venv/bin/python benchmarks/prof_glmm.py            # min / median times
    PYTHONPATH=src .venv/bin/python benchmarks/prof_glmm.py verbagg    # ... and a cProfile

Each fit is run once to compile, then repeatedly; the minimum is the number to compare
(other processes only ever add time). Stage 1 and stage 2 evaluation counts are printed
with the criterion so that a change of path shows.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import mixedfx as mfx

cbpp = mfx.datasets.load("cbpp")
grouse = mfx.datasets.load("grouseticks")
verbagg = mfx.datasets.load("VerbAgg")
FITS: dict[str, tuple[Callable[[], mfx.GeneralizedLinearMixedModel], int]] = {
    "cbpp": (
        lambda: mfx.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp),
        100,
    ),
    "grouse": (
        lambda: mfx.glmer(
            "TICKS ~ YEAR + HEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION)",
            grouse,
            family="poisson",
        ),
        15,
    ),
    "verbagg": (
        lambda: mfx.glmer("r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)", verbagg),
        5,
    ),
}

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    for name, (fit, repeats) in FITS.items():
        fit()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            m = fit()
            times.append(time.perf_counter() - t0)
        e = m.engine
        print(
            f"{name}: min {min(times) * 1e3:.2f} ms, median {statistics.median(times) * 1e3:.2f}"
            f" ms ({repeats} fits); evaluations {e.stage1.nfev if e.stage1 else 0} + "
            f"{e.optinfo.nfev}; criterion {m.objective:.10f}"
        )
    if len(sys.argv) > 1:
        fit = FITS[sys.argv[1]][0]
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(3):
            fit()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
