#!/usr/bin/env python
"""Benchmarks past one machine's comfort (issue 12): data on disk, crossed factors of tens of
thousands of levels, a Dask cluster.

Each benchmark runs in its own subprocess (its peak memory is its own) and prints one JSON line;
``--json`` appends the results to a results file (``benchmarks/results.json``: entries are
added to its ``results`` list, nothing else is touched).

    .venv/bin/python benchmarks/scale_benchmarks.py gen50m --dir /tmp/mfx50m    # the Parquet data
    .venv/bin/python benchmarks/scale_benchmarks.py run disk50m --dir /tmp/mfx50m
    .venv/bin/python benchmarks/scale_benchmarks.py run crossed1m
    .venv/bin/python benchmarks/scale_benchmarks.py run crossed10m
    .venv/bin/python benchmarks/scale_benchmarks.py run cluster50m --dir /tmp/mfx50m
    .venv/bin/python benchmarks/scale_benchmarks.py all --dir /tmp/mfx50m \
        --json benchmarks/results.json

The benchmarks:

``disk50m``    50M rows (y, x, g1 with 100 000 levels, g2 with 1 000) in a Parquet directory of
               50 files, fitted exactly (ML) from disk with Dask's local threaded scheduler:
               ``lmer("y ~ x + (1 | g1) + (1 | g2)", dd.read_parquet(dir), REML=False,
               method="exact")``; peak memory of the process (VmHWM).
``crossed1m``  1M rows, g1 and g2 with 20 000 levels each, crossed at random, in memory:
               ``lmer(..., method="auto")`` (it picks the method of moments and says why);
               the estimates against the simulation's truth.
``crossed10m`` 10M rows, g1 with 1 000 000 levels (users) crossed with g2 with 10 000 (items).
``cluster50m`` the disk50m fit on a LocalCluster of 2 worker processes (1 thread each); peak
               memory of the client and of each worker.
``glmm5m_dask`` / ``glmm5m_memory``  glmer binomial on 5M rows (g1 10 000 x g2 100), from a
               Parquet directory on Dask (one pass per PIRLS iteration) and in memory.

Simulation (numpy, seed 20240501): x ~ N(0, 1), g1 and g2 uniform, y = 1 + 0.5 x + u1[g1] +
u2[g2] + e with sd(u1) = 1, sd(u2) = 0.5, sd(e) = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

SEED = 20240501
TRUTH = {"g1": 1.0, "g2": 0.25, "Residual": 1.0, "(Intercept)": 1.0, "x": 0.5}
FORMULA = "y ~ x + (1 | g1) + (1 | g2)"


def _vm_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def simulate(n: int, n1: int, n2: int, seed: int = SEED, chunk: int = 1_000_000):
    """Yield the simulated rows in chunks (pandas frames): the same data whatever the chunk
    size's multiple (the random effects are drawn first, the rows chunk by chunk)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    u1 = rng.normal(0.0, 1.0, n1)
    u2 = rng.normal(0.0, 0.5, n2)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        g1 = rng.integers(0, n1, m).astype(np.int32)
        g2 = rng.integers(0, n2, m).astype(np.int32)
        x = rng.normal(size=m)
        y = 1.0 + 0.5 * x + u1[g1] + u2[g2] + rng.normal(size=m)
        yield pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})
        done += m


def gen50m(directory: str, n: int = 50_000_000) -> None:
    """Write the 50M-row data set as a Parquet directory of 1M-row files."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for i, df in enumerate(simulate(n, 100_000, 1_000)):
        df.to_parquet(out / f"part.{i:03d}.parquet", index=False)
    print(f"wrote {n} rows to {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e9:.2f} GB)")


def _result(name: str, m, seconds: float, extra: dict) -> dict:
    import numpy as np

    vc = m.varcorr
    est = {str(g): float(v) for g, v in zip(vc["group"], vc["vcov"], strict=True)}
    fixef = {k: float(v) for k, v in m.fixef.items()}
    out = {
        "fit": name,
        "tool": "mixedfx",
        "status": "ok",
        "seconds": seconds,
        "objective": None if not np.isfinite(m.objective) else float(m.objective),
        "method": m.method,
        "approximate": bool(m.approximate),
        "nobs": int(m.nobs),
        "variances": est,
        "fixef": fixef,
        "fixef_se": {k: float(v) for k, v in m.coefficients["std_error"].items()},
        "truth": TRUTH,
        "version": "mixedfx",
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if m.approximate:
        vcs = m.variance_components
        out["variance_se"] = {str(k): float(v) for k, v in vcs["std_error"].items()}
    hwm = _vm_kb("VmHWM")
    out["peak_mb"] = hwm / 1024 if hwm else None
    out.update(extra)
    return out


def run_disk50m(directory: str) -> dict:
    import dask
    import dask.dataframe as dd

    import mixedfx as mfx

    dask.config.set(scheduler="threads", num_workers=2)
    t = time.perf_counter()
    ddf = dd.read_parquet(directory)
    m = mfx.lmer(FORMULA, ddf, REML=False, method="exact")
    seconds = time.perf_counter() - t
    opt = m.engine.optinfo
    return _result(
        "scale_50m_disk",
        m,
        seconds,
        {
            "desc": "50M rows from a Parquet directory (g1 100 000 x g2 1 000 crossed), "
            "exact ML, Dask local threads (2)",
            "npartitions": ddf.npartitions,
            "passes": m.passes,
            "pass_seconds": list(m.design.pass_seconds),
            "evaluations": int(opt.nfev) if opt is not None else None,
        },
    )


def run_cluster50m(directory: str) -> dict:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import mixedfx as mfx

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        memory_limit="6GB",
    ) as lc, Client(lc) as client:  # fmt: skip
        t = time.perf_counter()
        ddf = dd.read_parquet(directory)
        m = mfx.lmer(FORMULA, ddf, REML=False, method="exact")
        seconds = time.perf_counter() - t
        workers = client.run(lambda: _vm_kb("VmHWM"))
    w_mb = {k: (v or 0) / 1024 for k, v in workers.items()}
    return _result(
        "scale_50m_cluster",
        m,
        seconds,
        {
            "desc": "the 50M-row fit on a LocalCluster of 2 worker processes (1 thread each)",
            "npartitions": ddf.npartitions,
            "passes": m.passes,
            "pass_seconds": list(m.design.pass_seconds),
            "evaluations": int(m.engine.optinfo.nfev),
            "worker_peak_mb": list(w_mb.values()),
            "client_peak_mb": (_vm_kb("VmHWM") or 0) / 1024,
        },
    )


def run_crossed(name: str, n: int, n1: int, n2: int) -> dict:
    import pandas as pd

    import mixedfx as mfx

    df = pd.concat(list(simulate(n, n1, n2)), ignore_index=True)
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mfx.lmer(FORMULA, df, REML=False, method="auto")
    seconds = time.perf_counter() - t
    notes = [str(w.message) for w in caught]
    return _result(
        name,
        m,
        seconds,
        {
            "desc": f"{n:,} rows in memory, g1 {n1:,} x g2 {n2:,} crossed at random, method='auto'",
            "warnings": notes,
            "cg_iterations": getattr(m.engine.result, "cg_iterations", None)
            if m.approximate
            else None,
        },
    )


def _binary(n: int, n1: int, n2: int, seed: int = SEED):
    import numpy as np

    rng = np.random.default_rng(seed)
    u1, u2 = rng.normal(0.0, 1.0, n1), rng.normal(0.0, 0.5, n2)
    for df in simulate(n, n1, n2, seed=seed + 1):
        eta = -0.5 + 0.5 * df["x"].to_numpy() + u1[df["g1"]] + u2[df["g2"]]
        df["y"] = (rng.uniform(size=len(df)) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
        yield df


def run_glmm(name: str, dask_rows: bool, n: int = 1_000_000) -> dict:
    import tempfile

    import pandas as pd

    import mixedfx as mfx

    n1, n2 = 10_000, 100
    if dask_rows:
        import dask
        import dask.dataframe as dd

        dask.config.set(scheduler="threads", num_workers=2)
        tmp = Path(tempfile.mkdtemp(prefix="mfx-glmm-"))
        for i, df in enumerate(_binary(n, n1, n2)):
            df.to_parquet(tmp / f"part.{i:03d}.parquet", index=False)
        data = dd.read_parquet(tmp)
    else:
        data = pd.concat(list(_binary(n, n1, n2)), ignore_index=True)
    t = time.perf_counter()
    g = mfx.glmer(FORMULA, data, family="binomial")
    seconds = time.perf_counter() - t
    hwm = _vm_kb("VmHWM")
    return {
        "fit": name,
        "tool": "mixedfx",
        "status": "ok",
        "seconds": seconds,
        "objective": float(g.objective),
        "nobs": int(g.nobs),
        "passes": int(getattr(g, "passes", 0)),
        "theta": [float(v) for v in g.theta],
        "fixef": {k: float(v) for k, v in g.fixef.items()},
        "peak_mb": hwm / 1024 if hwm else None,
        "desc": f"glmer binomial, {n:,} rows, g1 {n1:,} x g2 {n2} crossed, "
        + ("Parquet on Dask (1M-row partitions, local threads)" if dask_rows else "in memory"),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


BENCHES = {
    "disk50m": lambda a: run_disk50m(a.dir),
    "cluster50m": lambda a: run_cluster50m(a.dir),
    "crossed1m": lambda a: run_crossed("scale_crossed_1m", 1_000_000, 20_000, 20_000),
    "crossed10m": lambda a: run_crossed("scale_crossed_10m", 10_000_000, 1_000_000, 10_000),
    "glmm5m_dask": lambda a: run_glmm("scale_glmm_5m_dask", True, 5_000_000),
    "glmm5m_memory": lambda a: run_glmm("scale_glmm_5m_memory", False, 5_000_000),
}


def _append(path: str, rows: list[dict]) -> None:
    p = Path(path)
    doc = json.loads(p.read_text()) if p.exists() else {"meta": {}, "results": []}
    doc.setdefault("results", []).extend(rows)
    p.write_text(json.dumps(doc, indent=1, ensure_ascii=False))  # the file's own format


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["gen50m", "run", "all"])
    ap.add_argument("name", nargs="?", choices=list(BENCHES))
    ap.add_argument("--dir", default="/tmp/mfx50m", help="the 50M-row Parquet directory")
    ap.add_argument("--json", help="append the results to this JSON file")
    ap.add_argument("--only", help="for 'all': comma-separated benchmark names")
    ap.add_argument("--timeout", type=float, default=3600.0)
    a = ap.parse_args(argv)
    if a.what == "gen50m":
        gen50m(a.dir)
        return 0
    if a.what == "run":
        res = BENCHES[a.name](a)
        res["python"] = platform.python_version()
        print("RESULT " + json.dumps(res))
        return 0
    names = a.only.split(",") if a.only else list(BENCHES)
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "run", name, "--dir", a.dir]
        t = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            rows.append({"fit": name, "tool": "mixedfx", "status": "timeout",
                         "seconds": time.perf_counter() - t})  # fmt: skip
            continue
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            err = (out.stderr.strip().splitlines() or ["?"])[-1]
            rows.append({"fit": name, "tool": "mixedfx", "status": "error", "error": err})
        else:
            rows.append(json.loads(line[len("RESULT ") :]))
        print(json.dumps(rows[-1]), flush=True)
    if a.json:
        _append(a.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
