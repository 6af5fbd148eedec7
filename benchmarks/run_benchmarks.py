#!/usr/bin/env python
"""Benchmark mixedfx against lme4 (R), mixedlm, glmm and statsmodels.

Every (fit, tool) pair runs in its own fresh subprocess, so the peak memory reported is that
fit's alone (interpreter + library + data + fit).  Inside the child the library is imported and
the data loaded first (not timed); then one untimed warm-up fit of the same model on a small
subsample absorbs one-off costs (lazy imports, JIT compilation or loading numba's disk cache);
then the fit call itself is timed -- formula parsing and data handling included, because that is
what a user waits for.  A fit that takes less than ``--fast-threshold`` seconds (0.5 s) is timed
``--repeat`` times in the same child and the median reported.

Objectives are all put on lme4's scale: the REML criterion (``REMLcrit``) for REML fits and
-2 log-likelihood otherwise (for GLMMs the Laplace approximation, *including* the constant of the
response density, i.e. ``-2*logLik(m)`` in lme4, not ``deviance(m)``).

Usage (see benchmarks/README.md)::

    .venv/bin/python benchmarks/run_benchmarks.py                    # everything
    .venv/bin/python benchmarks/run_benchmarks.py --only sleepstudy,cbpp --tools mixedfx,lme4
    .venv/bin/python benchmarks/run_benchmarks.py --json out.json --markdown out.md
    .venv/bin/python benchmarks/run_benchmarks.py --from-json out.json --markdown -  # re-render

The script only reads data through ``mixedfx.datasets.load`` (or ``--data-dir`` with NAME.csv +
NAME.schema.json files); the simulated data set is generated with numpy.  Data for the R child is
written as CSV (plus one file of levels per factor column) into ``--cache-dir`` (a temp dir).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_SRC = HERE.parent / "src"
RESULT_TAG = "BENCH_RESULT "
ALL_TOOLS = ["mixedfx", "lme4", "mixedlm", "glmm", "statsmodels"]
NA = "—"  # the tool cannot express this fit

# ---------------------------------------------------------------------------------------------
# The fits.  ``formula`` is lme4's; ``formulas`` overrides it per tool where a tool spells the
# model differently.  ``tools`` lists the tools that can express the fit (others show "—").
# ---------------------------------------------------------------------------------------------

SIM = dict(n=1_000_000, n1=10_000, n2=500, sd1=1.0, sd2=0.5, sigma=1.0, beta=(1.0, 0.5))
SIM5M = dict(SIM, n=5_000_000, n1=50_000, n2=1_000)
# Same models, small, for the warm-up fits: ~100 rows per level of g1 as in the big sets, and
# few levels of g2, so that mixedfx takes the same path (the precomputed Schur update of a
# balanced first term) and compiles or loads the same kernels as on the big data.
SIM_WARM = dict(SIM, n=20_000, n1=200, n2=20)
SIM5M_WARM = dict(SIM5M, n=30_000, n1=300, n2=30)
SIM_DATA = {"sim1m": (SIM, SIM_WARM), "sim5m": (SIM5M, SIM5M_WARM)}
DEFAULT_TIMEOUT = 600.0  # per (fit, tool) child, seconds; a fit may set its own ("timeout")

FITS: dict[str, dict] = {
    "sleepstudy": dict(
        data="sleepstudy",
        kind="lmm",
        reml=True,
        formula="Reaction ~ Days + (Days | Subject)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm", "statsmodels"],
        desc="sleepstudy  Reaction ~ Days + (Days | Subject), REML",
    ),
    "penicillin": dict(
        data="Penicillin",
        kind="lmm",
        reml=True,
        formula="diameter ~ 1 + (1 | plate) + (1 | sample)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm", "statsmodels"],
        desc="Penicillin  diameter ~ 1 + (1 | plate) + (1 | sample), REML",
    ),
    "insteval_full": dict(
        data="InstEval",
        kind="lmm",
        reml=False,
        formula="y ~ 1 + service*dept + (1|s) + (1|d) + (1|dept:service)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        desc="InstEval  y ~ 1 + service*dept + (1|s) + (1|d) + (1|dept:service), ML",
    ),
    "insteval_small": dict(
        data="InstEval",
        kind="lmm",
        reml=False,
        formula="y ~ 1 + service + (1|s) + (1|d) + (1|dept)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        desc="InstEval  y ~ 1 + service + (1|s) + (1|d) + (1|dept), ML",
    ),
    "sim1m": dict(
        data="sim1m",
        kind="lmm",
        reml=False,
        formula="y ~ x + (1|g1) + (1|g2)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        desc="simulated 1e6 rows, 10000 x 500 crossed  y ~ x + (1|g1) + (1|g2), ML",
    ),
    "sim5m": dict(
        data="sim5m",
        kind="lmm",
        reml=False,
        formula="y ~ x + (1|g1) + (1|g2)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        timeout=1200.0,  # lme4 needs minutes here; the others well under one
        desc="simulated 5e6 rows, 50000 x 1000 crossed  y ~ x + (1|g1) + (1|g2), ML",
    ),
    "cbpp": dict(
        data="cbpp",
        kind="glmm",
        family="binomial",
        formula="cbind(incidence, size - incidence) ~ period + (1 | herd)",
        formulas={
            "mixedlm": "incidence / size ~ period + (1 | herd)",  # mixedlm's successes/trials
            "glmm": "cbind(incidence, notinc) ~ period + (1 | herd)",  # cbind of two columns only
        },
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        desc="cbpp  cbind(incidence, size - incidence) ~ period + (1 | herd), binomial",
    ),
    "grouseticks": dict(
        data="grouseticks",
        kind="glmm",
        family="poisson",
        formula="TICKS ~ YEAR + HEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION)",
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        desc="grouseticks  TICKS ~ YEAR + HEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION), poisson",
    ),
    "verbagg": dict(
        data="VerbAgg",
        kind="glmm",
        family="binomial",
        formula="r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
        formulas={  # r2 is a factor N/Y; r2n is its 0/1 version
            "mixedlm": "r2n ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
            "glmm": "r2n ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
        },
        tools=["mixedfx", "lme4", "mixedlm", "glmm"],
        desc="VerbAgg  r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item), binomial",
    ),
    "boot_sleepstudy": dict(
        data="sleepstudy",
        kind="boot",
        reml=True,
        nsim=1000,
        formula="Reaction ~ Days + (Days | Subject)",
        # glmm and statsmodels have no bootstrap of their own
        tools=["mixedfx", "lme4", "mixedlm"],
        desc="sleepstudy REML, parametric bootstrap, 1000 replicates",
    ),
}

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _import_mixedfx():
    """Import mixedfx: the installed one, else the repo's src/ tree."""
    try:
        return importlib.import_module("mixedfx")
    except ModuleNotFoundError as e:
        if e.name != "mixedfx":
            raise
        sys.path.insert(0, str(REPO_SRC))
        return importlib.import_module("mixedfx")


def _load_from_dir(data_dir: Path, name: str):
    import pandas as pd

    schema = json.loads((data_dir / f"{name}.schema.json").read_text())
    dtypes = {c["name"]: str for c in schema["columns"] if c["type"] in ("factor", "string")}
    df = pd.read_csv(data_dir / f"{name}.csv", dtype=dtypes)
    for c in schema["columns"]:
        if c["type"] == "factor":
            df[c["name"]] = pd.Categorical(df[c["name"]], categories=c["levels"])
    return df


def load_dataset(name: str, data_dir: str | None):
    if data_dir:
        return _load_from_dir(Path(data_dir), name)
    _import_mixedfx()
    datasets = importlib.import_module("mixedfx.datasets")
    return datasets.load(name).copy()


def add_derived_columns(name: str, df):
    """Columns some tools need; the same frame goes to every tool."""
    if name == "cbpp":
        df["prop"] = df["incidence"] / df["size"]
        df["notinc"] = df["size"] - df["incidence"]
    elif name == "VerbAgg":
        df["r2n"] = (df["r2"].astype(str) == "Y").astype("float64")
    return df


def make_sim(n, n1, n2, sd1, sd2, sigma, beta, seed):
    """y = b0 + b1*x + u1[g1] + u2[g2] + e, g1 and g2 uniformly random and crossed."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, size=n)
    g2 = rng.integers(0, n2, size=n)
    x = rng.standard_normal(n)
    u1 = rng.normal(0.0, sd1, size=n1)
    u2 = rng.normal(0.0, sd2, size=n2)
    y = beta[0] + beta[1] * x + u1[g1] + u2[g2] + rng.normal(0.0, sigma, size=n)
    cats1 = [str(i + 1) for i in range(n1)]
    cats2 = [str(i + 1) for i in range(n2)]
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "g1": pd.Categorical.from_codes(g1.astype("int32"), categories=cats1),
            "g2": pd.Categorical.from_codes(g2.astype("int32"), categories=cats2),
        }
    )


def _sim_key(params, seed):
    return f"sim_n{params['n']}_{params['n1']}x{params['n2']}_seed{seed}"


def _atomic_write(path: Path, writer):
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    writer(tmp)
    os.replace(tmp, path)


def write_r_csv(df, base: Path):
    """base.csv (factor columns as their labels) + base.COL.levels (one level per line)."""
    factors = [c for c in df.columns if str(df[c].dtype) == "category"]
    for c in factors:
        levels = [str(v) for v in df[c].cat.categories]
        _atomic_write(
            base.with_name(f"{base.name}.{c}.levels"),
            lambda p, lv=levels: p.write_text("\n".join(lv) + "\n"),
        )
    _atomic_write(base.with_suffix(".csv"), lambda p: df.to_csv(p, index=False))
    return factors


def prepare_data(fit_names, tools, args):
    """Write each needed data set once into the cache dir; returns {data name: info}."""
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    need_r = "lme4" in tools
    out = {}
    for fit in fit_names:
        name = FITS[fit]["data"]
        if name in out:
            continue
        info: dict = {}
        try:
            if name in SIM_DATA:
                big, warm = SIM_DATA[name]
                frames = {
                    "": (big, _sim_key(big, args.seed)),
                    "_warm": (warm, _sim_key(warm, args.seed)),
                }
                for suffix, (params, key) in frames.items():
                    pkl = cache / f"{key}.pkl"
                    csv = cache / f"{key}.csv"
                    if not pkl.exists() or (need_r and not csv.exists()):
                        t0 = time.perf_counter()
                        df = make_sim(seed=args.seed, **params)
                        _atomic_write(pkl, lambda p, d=df: d.to_pickle(p))
                        if need_r:
                            write_r_csv(df, cache / key)
                        secs = time.perf_counter() - t0
                        log(f"  generated {key} ({len(df)} rows) in {secs:.1f} s")
                    info["pickle" + suffix] = str(pkl)
                    info["csv" + suffix] = str(cache / key)
                info["factors"] = ["g1", "g2"]
            else:
                df = add_derived_columns(name, load_dataset(name, args.data_dir))
                pkl = cache / f"{name}.pkl"
                _atomic_write(pkl, df.to_pickle)
                info["pickle"] = str(pkl)
                if need_r:
                    info["factors"] = write_r_csv(df, cache / name)
                    info["csv"] = str(cache / name)
                info["nrow"] = len(df)
        except Exception as e:  # reported per fit
            hint = "" if args.data_dir else " (or give --data-dir)"
            info["error"] = f"data {name}: {type(e).__name__}: {e}{hint}"
        out[name] = info
    return out


# ---------------------------------------------------------------------------------------------
# Python child: one tool, one fit
# ---------------------------------------------------------------------------------------------


def _subsample(df, nmax=10_000, seed=1):
    """Rows for the warm-up fit (unused factor levels dropped)."""
    if len(df) <= nmax:
        return df
    sub = df.sample(n=nmax, random_state=seed).sort_index()
    for c in sub.columns:
        if str(sub[c].dtype) == "category":
            sub[c] = sub[c].cat.remove_unused_categories()
    return sub


def _fitter(tool: str, spec: dict):
    """Return (version, make(df) -> callable performing the timed work and returning the objective).

    How each tool's objective is put on lme4's scale:
      mixedfx     m.objective: REML criterion (REML) or -2 logLik (ML, GLMM Laplace) already.
      mixedlm     LMM: m.REMLcrit() (REML) / -2*m.logLik().value (ML; = its profiled deviance).
                  GLMM: -2*m.logLik().value, whose docstring says it includes the
                  response-density constants, i.e. lme4's -2*logLik; m.deviance is only the
                  optimizer's criterion relative to the saturated model.
      glmm        -2*fit.loglik.  fit.loglik is on lme4's logLik() scale and is the REML
                  log-likelihood on a REML fit, so -2*loglik is REMLcrit there.  (fit.deviance
                  drops a data-only constant: not used.)
      statsmodels -2*result.llf; on a REML fit llf is the REML log-likelihood (matches
                  lme4's REMLcrit to ~1e-9 on sleepstudy and Penicillin).
    For the bootstrap the objective is that of the base fit, which is not timed.
    """
    kind = spec["kind"]
    formula = spec.get("formulas", {}).get(tool, spec["formula"])
    reml = spec.get("reml", False)
    family = spec.get("family")

    if tool == "mixedfx":
        mfx = _import_mixedfx()
        version = getattr(mfx, "__version__", "dev")

        def mfx_obj(m):
            obj = m.objective
            return float(obj() if callable(obj) else obj)

        if kind == "lmm":
            return version, lambda df: lambda: mfx_obj(mfx.lmer(formula, df, REML=reml))
        if kind == "glmm":
            return version, lambda df: lambda: mfx_obj(mfx.glmer(formula, df, family=family))
        if kind == "boot":

            def make(df, nsim=spec["nsim"]):
                m = mfx.lmer(formula, df, REML=reml)
                obj = mfx_obj(m)

                def run():
                    m.bootstrap(nsim=nsim, seed=1)
                    return obj

                return run

            return version, make

    if tool == "mixedlm":
        from importlib.metadata import version as _v

        import mixedlm as mlm

        version = _v("mixedlm")

        def lmm_obj(m):
            return float(m.REMLcrit()) if reml else -2.0 * float(m.logLik().value)

        if kind == "lmm":
            return version, lambda df: lambda: lmm_obj(mlm.lmer(formula, df, REML=reml))
        if kind == "glmm":
            fam = {"binomial": mlm.families.Binomial, "poisson": mlm.families.Poisson}[family]
            return (
                version,
                lambda df: (
                    lambda: -2.0 * float(mlm.glmer(formula, df, family=fam()).logLik().value)
                ),
            )
        if kind == "boot":

            def make(df, nsim=spec["nsim"]):
                m = mlm.lmer(formula, df, REML=reml)
                obj = lmm_obj(m)

                def run():
                    mlm.bootMer(m, nsim=nsim, seed=1)
                    return obj

                return run

            return version, make

    if tool == "glmm":
        from importlib.metadata import version as _v

        import glmm

        version = _v("glmm")
        # satterthwaite=False and anova_test="Wald": skip glmm's extra per-fit work (lmerTest
        # df, likelihood-ratio term tables that refit a Poisson GLMM) that lme4::lmer/glmer do
        # not do either.  This only makes glmm faster, never slower.
        if kind == "lmm":
            return (
                version,
                lambda df: (
                    lambda: (
                        -2.0
                        * float(
                            glmm.fit(
                                df, formula, reml=reml, satterthwaite=False, anova_test="Wald"
                            ).loglik
                        )
                    )
                ),
            )
        if kind == "glmm":
            return (
                version,
                lambda df: (
                    lambda: -2.0 * float(glmm.fit(df, formula, family, anova_test="Wald").loglik)
                ),
            )

    if tool == "statsmodels":
        import statsmodels
        import statsmodels.formula.api as smf

        version = statsmodels.__version__
        if spec["data"] == "sleepstudy" and kind == "lmm":

            def make(df):
                return lambda: (
                    -2.0
                    * float(
                        smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days")
                        .fit(reml=reml)
                        .llf
                    )
                )

            return version, make
        if spec["data"] == "Penicillin" and kind == "lmm":
            # crossed effects as variance components within a single all-rows group (dense:
            # feasible only for small data)
            def make(df):
                df = df.assign(one=1)
                return lambda: (
                    -2.0
                    * float(
                        smf.mixedlm(
                            "diameter ~ 1",
                            df,
                            groups="one",
                            re_formula="0",
                            vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"},
                        )
                        .fit(reml=reml)
                        .llf
                    )
                )

            return version, make

    raise NotImplementedError(f"{tool} cannot express {spec['desc']}")


def _vm_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child_main(args) -> int:
    import resource

    t_start = time.monotonic()
    hwm_first = None
    out: dict = {"tool": args.child_tool, "fit": args.child_fit}
    try:
        warnings.simplefilter("ignore")
        spec = FITS[args.child_fit]
        import pandas as pd

        df = pd.read_pickle(args.child_data)
        if args.child_warm_data:
            warm_df = pd.read_pickle(args.child_warm_data)
        else:
            warm_df = _subsample(df)
        version, make = _fitter(args.child_tool, spec)
        out["version"] = version
        if spec["kind"] == "boot":
            warm_run = None
            if args.warmup:  # a short bootstrap of the same model
                warm_run = _fitter(args.child_tool, dict(spec, nsim=5))[1](df)
            run = make(df)
        else:
            warm_run = make(warm_df) if args.warmup else None
            run = make(df)
        gc.collect()
        out["baseline_mb"] = (_vm_kb("VmRSS") or 0) / 1024
        if warm_run is not None:
            try:
                warm_run()
            except Exception as e:  # a failed warm-up is not fatal
                out["warmup_error"] = f"{type(e).__name__}: {e}"[:300]
        times = []
        t0 = time.perf_counter()
        obj = run()
        times.append(time.perf_counter() - t0)
        # peak memory of one fit (warm-up and data included), before repeats can add to it
        hwm_first = _vm_kb("VmHWM")
        n_runs = args.repeat if times[0] < args.fast_threshold else args.repeat_slow
        for _ in range(max(n_runs, 1) - 1):
            # stay well inside the parent's timeout: report what we have rather than time out
            if time.monotonic() - t_start + 1.2 * times[-1] > 0.8 * (
                args.timeout or DEFAULT_TIMEOUT
            ):
                break
            t0 = time.perf_counter()
            obj = run()
            times.append(time.perf_counter() - t0)
        out.update(status="ok", seconds=statistics.median(times), times=times, objective=obj)
    except Exception as e:  # reported as "error: ..."
        out.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
    # Peak RSS of this process.  VmHWM (Linux), not ru_maxrss: on Linux a child's ru_maxrss
    # starts from the RSS of the parent it was forked from (the kernel carries the pre-exec
    # image's high-water mark over exec), which would charge the harness's own memory to
    # every fit.  R's child reads VmHWM too.
    hwm = _vm_kb("VmHWM")
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_mb_all_runs"] = hwm / 1024 if hwm else out["ru_maxrss_mb"]
    out["peak_mb"] = hwm_first / 1024 if hwm_first else out["peak_mb_all_runs"]
    print(RESULT_TAG + json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# R child (lme4).  Arguments are key=value pairs.
# ---------------------------------------------------------------------------------------------

R_SCRIPT = r"""
t_start <- proc.time()[["elapsed"]]
args <- commandArgs(trailingOnly = TRUE)
kv <- list()
for (a in args) {
  i <- regexpr("=", a, fixed = TRUE)
  kv[[substr(a, 1, i - 1)]] <- substr(a, i + 1, nchar(a))
}
num <- function(k) as.numeric(kv[[k]])
vm_kb <- function(field) {
  s <- readLines("/proc/self/status")
  l <- grep(paste0("^", field, ":"), s, value = TRUE)
  if (!length(l)) return(NA)
  as.numeric(strsplit(trimws(sub(paste0(field, ":"), "", l)), "[[:space:]]+")[[1]][1])
}
out <- list(tool = "lme4", fit = kv$fit)
json_out <- function(out) {
  f <- function(v) {
    if (is.character(v)) return(paste0('"', gsub('["\\\\]', "'", gsub("\n", " ", v)), '"'))
    if (length(v) > 1) return(paste0("[", paste(sprintf("%.9g", v), collapse = ", "), "]"))
    if (is.na(v)) "null" else sprintf("%.15g", v)
  }
  paste0("{", paste(sprintf('"%s": %s', names(out), vapply(out, f, "")), collapse = ", "), "}")
}
read_data <- function(base, factors) {
  fac <- if (nzchar(factors)) strsplit(factors, ",", fixed = TRUE)[[1]] else character(0)
  cc <- setNames(rep("character", length(fac)), fac)
  df <- read.csv(paste0(base, ".csv"), colClasses = cc, na.strings = "NA", check.names = FALSE)
  for (col in fac) {
    df[[col]] <- factor(df[[col]], levels = readLines(paste0(base, ".", col, ".levels")))
  }
  df
}
res <- tryCatch({
  suppressPackageStartupMessages(library(lme4))
  out$version <- paste0("lme4 ", as.character(packageVersion("lme4")),
                        " (R ", R.version$major, ".", R.version$minor, ")")
  df <- read_data(kv$csv, kv$factors)
  wdf <- df
  if (!is.null(kv$warm_csv)) {
    wdf <- read_data(kv$warm_csv, kv$factors)
  } else if (nrow(df) > 10000) {  # warm-up data: a random subsample
    set.seed(1)
    wdf <- droplevels(df[sort(sample.int(nrow(df), 10000)), , drop = FALSE])
  }
  form <- as.formula(kv$formula)
  reml <- identical(kv$reml, "TRUE")
  fitit <- function(d) {
    if (kv$kind == "glmm") glmer(form, data = d, family = get(kv$family))
    else lmer(form, data = d, REML = reml)
  }
  objective <- function(m) if (isLMM(m) && isREML(m)) REMLcrit(m) else -2 * as.numeric(logLik(m))
  if (kv$kind == "boot") {
    m0 <- fitit(df)
    obj <- objective(m0)
    bfun <- function(x) c(fixef(x), sigma(x))
    run <- function() { b <- bootMer(m0, bfun, nsim = num("nsim"), seed = 1); obj }
    warm <- function() bootMer(m0, bfun, nsim = 5, seed = 1)
  } else {
    run <- function() objective(fitit(df))
    warm <- function() fitit(wdf)
  }
  invisible(gc())
  out$baseline_mb <- vm_kb("VmRSS") / 1024
  if (identical(kv$warmup, "TRUE")) {
    w <- tryCatch({ suppressWarnings(suppressMessages(warm())); NULL },
                  error = function(e) conditionMessage(e))
    if (!is.null(w)) out$warmup_error <- substr(w, 1, 300)
  }
  times <- numeric(0)
  t0 <- proc.time()[["elapsed"]]
  obj <- suppressWarnings(suppressMessages(run()))
  times <- c(times, proc.time()[["elapsed"]] - t0)
  out$peak_mb <- vm_kb("VmHWM") / 1024  # one fit, before repeats can add to it
  n_runs <- if (times[1] < num("fast_threshold")) num("repeat") else num("repeat_slow")
  for (i in seq_len(max(n_runs, 1) - 1)) {
    used <- proc.time()[["elapsed"]] - t_start
    if (used + 1.2 * times[length(times)] > 0.8 * num("timeout")) break
    t0 <- proc.time()[["elapsed"]]
    obj <- suppressWarnings(suppressMessages(run()))
    times <- c(times, proc.time()[["elapsed"]] - t0)
  }
  out$status <- "ok"; out$seconds <- median(times); out$times <- times; out$objective <- obj
  out
}, error = function(e) {
  out$status <- "error"
  out$error <- substr(conditionMessage(e), 1, 500)
  out
})
res$peak_mb_all_runs <- vm_kb("VmHWM") / 1024
if (is.null(res$peak_mb)) res$peak_mb <- res$peak_mb_all_runs
cat("\n", "BENCH_RESULT ", json_out(res), "\n", sep = "")
"""


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _cpu_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def wait_until_idle(max_wait: float, threshold: float = 0.15):
    """Wait (at most max_wait s) until other processes use < threshold cores over 1 s."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, o0 = _cpu_busy_seconds(), _own_cpu_seconds()
        time.sleep(1.0)
        b1, o1 = _cpu_busy_seconds(), _own_cpu_seconds()
        if b0 is None or b1 is None:
            return None
        load = (b1 - b0) - (o1 - o0)
        if load < threshold or time.monotonic() >= deadline:
            return load


def _run_child(cmd, timeout, env=None):
    """Run cmd in its own process group; returns (parsed result or None, stdout, stderr, status,
    wall seconds, cores used by *other* processes on average while it ran)."""
    busy0, own0 = _cpu_busy_seconds(), _own_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as e:  # timeout, Ctrl-C, SIGTERM: never leave the child running
        if not isinstance(e, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
        return None, stdout, stderr, "timeout", time.perf_counter() - t0, None
    wall = time.perf_counter() - t0
    busy1, own1 = _cpu_busy_seconds(), _own_cpu_seconds()
    foreign = None
    if busy0 is not None and busy1 is not None and wall > 0:
        foreign = max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall)
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
    status = "ok" if result is not None else f"exit {proc.returncode}"
    return result, stdout, stderr, status, wall, foreign


def fit_timeout(spec, args) -> float:
    """The child's timeout: ``--timeout`` when given, else the fit's own, else the default."""
    if args.timeout is not None:
        return args.timeout
    return spec.get("timeout", DEFAULT_TIMEOUT)


def run_one(fit, tool, data_info, args, r_script):
    spec = FITS[fit]
    timeout = fit_timeout(spec, args)
    row = {"fit": fit, "tool": tool, "desc": spec["desc"]}
    if tool not in spec["tools"]:
        row["status"] = "na"
        return row
    info = data_info.get(spec["data"], {})
    if "error" in info:
        row.update(status="error", error=info["error"])
        return row
    if tool == "lme4":
        if r_script is None:
            row.update(status="error", error="Rscript not available")
            return row
        kv = {
            "fit": fit,
            "kind": spec["kind"],
            "formula": spec["formula"],
            "reml": "TRUE" if spec.get("reml") else "FALSE",
            "family": spec.get("family", ""),
            "csv": info["csv"],
            "factors": ",".join(info.get("factors", [])),
            "nsim": str(spec.get("nsim", 0)),
            "repeat": str(args.repeat),
            "repeat_slow": str(args.repeat_slow),
            "timeout": str(timeout),
            "fast_threshold": str(args.fast_threshold),
            "warmup": "FALSE" if args.cold else "TRUE",
        }
        if "csv_warm" in info:
            kv["warm_csv"] = info["csv_warm"]
        cmd = [args.rscript, "--vanilla", str(r_script)] + [f"{k}={v}" for k, v in kv.items()]
    else:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-tool",
            tool,
            "--child-fit",
            fit,
            "--child-data",
            info["pickle"],
            "--repeat",
            str(args.repeat),
            "--repeat-slow",
            str(args.repeat_slow),
            "--timeout",
            str(timeout),
            "--fast-threshold",
            str(args.fast_threshold),
        ]
        if "pickle_warm" in info:
            cmd += ["--child-warm-data", info["pickle_warm"]]
        if args.cold:
            cmd += ["--cold"]
    if args.wait_idle:
        row["load_before"] = wait_until_idle(args.wait_idle)
    result, stdout, stderr, status, wall, foreign = _run_child(cmd, timeout)
    row["wall"] = wall
    # average number of cores other processes kept busy while this child ran: > ~0.3 on a
    # small machine means the timing is suspect (flagged with "*" in the table)
    row["foreign_load"] = foreign
    if status == "timeout":
        row.update(status="timeout", error=f"timeout after {timeout:g} s")
    elif result is None:
        tail = (stderr or stdout or "").strip().splitlines()[-3:]
        row.update(status="error", error=f"child {status}: " + " | ".join(tail)[:400])
    else:
        result.pop("tool", None)
        result.pop("fit", None)
        row.update(result)
    return row


def compute_ratios(rows):
    by_fit: dict[str, list] = {}
    for r in rows:
        by_fit.setdefault(r["fit"], []).append(r)
    for group in by_fit.values():
        ok = [r for r in group if r.get("status") == "ok" and r.get("seconds")]
        lme4 = next((r for r in ok if r["tool"] == "lme4"), None)
        peers = [r["seconds"] for r in ok if r["tool"] != "mixedfx"]
        objs = [
            r["objective"]
            for r in ok
            if r.get("objective") is not None and math.isfinite(r["objective"])
        ]
        best_obj = min(objs) if objs else None
        for r in ok:
            r["ratio_lme4"] = r["seconds"] / lme4["seconds"] if lme4 else None
            r["ratio_best_peer"] = r["seconds"] / min(peers) if peers else None
            obj = r.get("objective")
            r["dobj"] = obj - best_obj if best_obj is not None and obj is not None else None
    return rows


def _fmt_secs(s):
    if s is None:
        return ""
    if s < 0.01:
        return f"{s * 1000:.2f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def _fmt_ratio(x):
    if x is None:
        return ""
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def table_rows(rows, tools):
    out = []
    order = {t: i for i, t in enumerate(tools)}
    fit_order = {f: i for i, f in enumerate(FITS)}
    for r in sorted(rows, key=lambda r: (fit_order.get(r["fit"], 99), order.get(r["tool"], 99))):
        st = r.get("status")
        if st == "na":
            cells = [NA, NA, NA, NA, NA, NA]
        elif st == "ok":
            obj = r.get("objective")
            busy = (r.get("foreign_load") or 0) > BUSY_FLAG
            cells = [
                _fmt_secs(r.get("seconds")) + ("*" if busy else ""),
                f"{obj:.4f}" if obj is not None and math.isfinite(obj) else "nan",
                f"{r['peak_mb']:.0f}" if r.get("peak_mb") else "",
                _fmt_ratio(r.get("ratio_lme4")),
                _fmt_ratio(r.get("ratio_best_peer")),
                f"{r['dobj']:.2g}" if r.get("dobj") is not None else "",
            ]
        elif st == "timeout":
            cells = ["timeout", "", "", "", "", ""]
        else:
            msg = r.get("error", "?").replace("|", "/")
            cells = [f"error: {msg}", "", "", "", "", ""]
        out.append([r["fit"], r["tool"], *cells])
    return out


BUSY_FLAG = 0.3  # cores used by other processes during a run above which its time is flagged "*"

HEADER = ["fit", "tool", "seconds", "objective", "peak MB", "×lme4", "×best peer", "Δobj"]


def render_text(rows, tools, err_width=90):
    trs = table_rows(rows, tools)
    for tr in trs:
        if tr[2].startswith("error:") and len(tr[2]) > err_width:
            tr[2] = tr[2][: err_width - 1] + "…"
    # error / timeout rows span the numeric columns: leave them out of the widths
    full = [tr for tr in trs if not (tr[2].startswith("error:") or tr[2] == "timeout")]
    widths = [
        max([len(HEADER[i])] + [len(tr[i]) for tr in (full if i >= 2 else trs)])
        for i in range(len(HEADER))
    ]

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs)

    lines = [line(HEADER)]
    lines.append("  ".join("-" * w for w in widths))
    prev = None
    for tr in trs:
        if prev is not None and tr[0] != prev:
            lines.append("")
        prev = tr[0]
        if tr[2].startswith("error:") or tr[2] == "timeout":
            lines.append("  ".join(tr[i].ljust(widths[i]) for i in range(2)) + "  " + tr[2])
        else:
            lines.append(line(tr))
    return "\n".join(lines)


def render_markdown(rows, tools):
    trs = table_rows(rows, tools)
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(HEADER) - 2)) + "|",
    ]
    prev = None
    for tr in trs:
        fit = f"**{tr[0]}**" if tr[0] != prev else ""
        prev = tr[0]
        lines.append("| " + " | ".join([fit, *tr[1:]]) + " |")
    return "\n".join(lines)


def render_legend(rows):
    present = {r["fit"] for r in rows}
    return "\n".join(f"  {f:16s} {FITS[f]['desc']}" for f in FITS if f in present)


def versions_line(rows):
    vs = {}
    for r in rows:
        if r.get("version") and r["tool"] not in vs:
            vs[r["tool"]] = r["version"]
    return ", ".join(f"{t} {v}" if not v.startswith(t) else v for t, v in vs.items())


def find_rscript(explicit):
    import shutil

    return explicit or shutil.which("Rscript")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", help="comma-separated fits (default: all): " + ",".join(FITS))
    p.add_argument("--skip", help="comma-separated fits to leave out")
    p.add_argument(
        "--tools", default=",".join(ALL_TOOLS), help="comma-separated tools (default: %(default)s)"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed repeats of a fast fit; median reported (default 5)",
    )
    p.add_argument(
        "--repeat-slow",
        type=int,
        default=3,
        help="timed runs of a slow fit (>= --fast-threshold), as far as --timeout allows; "
        "median reported (default 3)",
    )
    p.add_argument(
        "--fast-threshold",
        type=float,
        default=0.5,
        help="a fit faster than this (s) is repeated --repeat times (default 0.5)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="per (fit, tool) child, seconds (default 600; sim5m 1200)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up fit: time the first call (includes JIT compile / cache load)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="S",
        help="before each run wait up to S s for other processes to use < 0.15 cores",
    )
    p.add_argument(
        "--retry-busy",
        type=int,
        default=0,
        metavar="N",
        help=f"rerun (up to N times) a fit during which other processes kept > {BUSY_FLAG} "
        "cores busy; the quietest run is kept",
    )
    p.add_argument("--json", help="write all results (incl. raw times, versions) to this JSON file")
    p.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="PATH",
        help="also print the table as markdown ('-' or no value: stdout)",
    )
    p.add_argument("--from-json", help="do not run: render the tables from an earlier --json file")
    p.add_argument("--seed", type=int, default=20240501, help="seed of the simulated data set")
    p.add_argument(
        "--cache-dir",
        default=os.path.join(tempfile.gettempdir(), "mixedfx-bench"),
        help="where data files for the children (and the 1M-row CSV for R) are cached",
    )
    p.add_argument(
        "--data-dir", help="read NAME.csv + NAME.schema.json from here instead of mixedfx.datasets"
    )
    p.add_argument("--rscript", help="Rscript executable (default: from PATH)")
    # internal: child mode
    p.add_argument("--child-tool", help=argparse.SUPPRESS)
    p.add_argument("--child-fit", help=argparse.SUPPRESS)
    p.add_argument("--child-data", help=argparse.SUPPRESS)
    p.add_argument("--child-warm-data", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.warmup = not args.cold
    if args.child_tool:
        return child_main(args)
    # SIGTERM -> SystemExit, so that _run_child kills the running child before we exit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in ALL_TOOLS]
    if bad:
        sys.exit(f"unknown tool(s): {', '.join(bad)}; choose from {', '.join(ALL_TOOLS)}")
    fits = list(FITS)
    if args.only:
        fits = [f.strip() for f in args.only.split(",") if f.strip()]
        bad = [f for f in fits if f not in FITS]
        if bad:
            sys.exit(f"unknown fit(s): {', '.join(bad)}; choose from {', '.join(FITS)}")
    if args.skip:
        fits = [f for f in fits if f not in args.skip.split(",")]

    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        rows = [r for r in doc["results"] if r["fit"] in fits and r["tool"] in tools]
        meta = doc.get("meta", {})
    else:
        meta = {
            "command": "python benchmarks/run_benchmarks.py " + " ".join(argv or sys.argv[1:]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "repeat_slow": args.repeat_slow,
            "fast_threshold": args.fast_threshold,
            "timeout": args.timeout if args.timeout is not None else DEFAULT_TIMEOUT,
            "warmup": not args.cold,
            "seed": args.seed,
        }
        r_script = None
        if "lme4" in tools:
            rscript = find_rscript(args.rscript)
            if rscript:
                args.rscript = rscript
                Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
                r_script = Path(args.cache_dir) / "bench_lme4.R"
                r_script.write_text(R_SCRIPT)
        log(f"preparing data in {args.cache_dir} ...")
        data_info = prepare_data(fits, tools, args)
        rows = []
        for fit in fits:
            for tool in tools:
                row = run_one(fit, tool, data_info, args, r_script)
                for _ in range(args.retry_busy):
                    if row["status"] != "ok" or (row.get("foreign_load") or 0) <= BUSY_FLAG:
                        break
                    log(
                        f"  {fit:16s} {tool:12s} machine busy "
                        f"({row['foreign_load']:.2f} cores): running again"
                    )
                    again = run_one(fit, tool, data_info, args, r_script)
                    log(
                        f"  {fit:16s} {tool:12s} again: {again.get('seconds') or 0:.4f} s, "
                        f"other load {again.get('foreign_load') or 0:.2f}"
                    )
                    if again["status"] == "ok" and again["foreign_load"] < row["foreign_load"]:
                        row = again
                rows.append(row)
                st = row["status"]
                if st == "ok":
                    detail = (
                        f"{row['seconds']:.4f} s  obj {row.get('objective')}"
                        f"  peak {row.get('peak_mb') or 0:.0f} MB"
                        f"  other load {row.get('foreign_load') or 0:.2f}"
                    )
                else:
                    detail = row.get("error", NA if st == "na" else st)
                log(f"  {fit:16s} {tool:12s} {detail}")
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    compute_ratios(rows)

    text = render_text(rows, tools)
    print(text)
    if any((r.get("foreign_load") or 0) > BUSY_FLAG for r in rows if r.get("status") == "ok"):
        print(
            f"* other processes kept > {BUSY_FLAG} cores busy on average during this run: "
            "its time may be inflated (rerun it, e.g. with --wait-idle 300)"
        )
    print()
    print("fits:")
    print(render_legend(rows))
    print()
    print("versions: " + versions_line(rows))
    if meta.get("command"):
        print(f"command: {meta['command']}  ({meta.get('started', '?')})")
    if meta:
        print(
            f"machine: {meta.get('platform', '?')}, {meta.get('cpus', '?')} CPUs, "
            f"python {meta.get('python', '?')}; "
            f"warm-up {'on' if meta.get('warmup', True) else 'off'}; median of "
            f"{meta.get('repeat')} runs (fits < {meta.get('fast_threshold')} s) or "
            f"{meta.get('repeat_slow', 1)}; timeout {meta.get('timeout')} s"
        )
    if args.markdown:
        md = render_markdown(rows, tools)
        if args.markdown == "-":
            print()
            print(md)
        else:
            Path(args.markdown).write_text(md + "\n\nversions: " + versions_line(rows) + "\n")
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
