"""Fits on Dask data frames equal the fits in memory (issue 12).

The rows are partitions, never gathered: lmer forms its cross-products by one map-reduce pass,
glmer runs PIRLS by one pass per iteration over persisted partitions. Every fit here is
compared with the same model fitted to the pandas frame: lmer objective to 1e-8 (relative),
θ and β to 1e-6; glmer objective to 1e-7. Under Dask's local scheduler and under a LocalCluster
of two worker processes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.errors import DataError, FormulaError, ModelError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two worker processes (one thread each) and its client."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(lc)
    yield client
    client.close()
    lc.close()


@pytest.fixture(params=["local", "cluster"])
def scheduler(request):
    """Run the test under Dask's local (threaded) scheduler or the 2-worker cluster."""
    if request.param == "local":
        with dask.config.set(scheduler="threads"):
            yield "local"
    else:
        client = request.getfixturevalue("cluster")
        with dask.config.set(scheduler=client.get):
            yield "cluster"


def _data(n: int = 1500, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 40, n)
    h = rng.integers(0, 8, n)
    a = rng.integers(0, 6, n)
    b = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(size=n),
            "g": np.array([f"s{i:02d}" for i in range(40)], dtype=object)[g],
            "h": pd.Categorical(np.array(list("abcdefgh"))[h], categories=list("hgfedcba")),
            "a": a,
            "b": b.astype(float),
            "f": np.array(["lo", "mid", "hi"], dtype=object)[rng.integers(0, 3, n)],
            "w": rng.uniform(0.5, 2.0, n),
            "o": 0.2 * rng.normal(size=n),
        }
    )
    y = (
        1.0
        + 0.5 * x
        + rng.normal(size=40)[g]
        + 0.3 * rng.normal(size=40)[g] * x
        + 0.7 * rng.normal(size=8)[h]
        + 0.5 * rng.normal(size=6)[a]
        + 0.4 * rng.normal(size=30)[a * 5 + b]
        + rng.normal(size=n)
    )
    df["y"] = y
    eta = -0.2 + 0.6 * x + 0.8 * rng.normal(size=40)[g] + 0.5 * rng.normal(size=8)[h]
    df["yb"] = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    df["yc"] = rng.poisson(np.exp(0.3 + 0.4 * x + 0.5 * rng.normal(size=40)[g]))
    # missing values in a predictor, a grouping factor, the response and the weights
    df.loc[[3, 250, 900], "x"] = np.nan
    df.loc[[17, 600], "g"] = None
    df.loc[[44], "y"] = np.nan
    df.loc[[1200], "w"] = np.nan
    return df


DATA = _data()

LMM_CASES = {
    "crossed": ("y ~ x + (1 | g) + (1 | h)", {}),
    "nested": ("y ~ x + (1 | a/b)", {}),
    "vector": ("y ~ x + f + (x | g) + (1 | h)", {}),
    "uncorrelated": ("y ~ x + (x || g) + (1 | a)", {}),
    "weights_offset": ("y ~ x + z + (1 | g) + (1 | h)", {"weights": "w", "offset": "o"}),
    "ml_formula_offset": ("y ~ x + offset(o) + (1 | g) + (1 | a:b)", {"REML": False}),
}


def _fit_both(formula, kw, npartitions=4, fn=None):
    fn = fn or mfx.lmer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = fn(formula, DATA, **kw)
        dsk = fn(formula, dd.from_pandas(DATA, npartitions=npartitions), **kw)
    return mem, dsk


def _same_lmm(mem, dsk):
    assert dsk.objective == pytest.approx(mem.objective, rel=1e-8)
    np.testing.assert_allclose(dsk.theta, mem.theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dsk.beta, mem.beta, rtol=1e-6, atol=1e-8)
    assert dsk.sigma == pytest.approx(mem.sigma, rel=1e-6)
    assert dsk.nobs == mem.nobs
    assert list(dsk.fixef.index) == list(mem.fixef.index)


@pytest.mark.parametrize("case", list(LMM_CASES))
def test_lmer_on_dask_equals_lmer_in_memory(case, scheduler):
    formula, kw = LMM_CASES[case]
    mem, dsk = _fit_both(formula, kw)
    _same_lmm(mem, dsk)
    assert dsk.ngroups == mem.ngroups
    # conditional modes and their sds: levels in the same order
    rm, rd = mem.ranef(), dsk.ranef()
    assert list(rd["level"]) == list(rm["level"])
    np.testing.assert_allclose(rd["condval"], rm["condval"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rd["condsd"], rm["condsd"], rtol=1e-5, atol=1e-7)


def test_sums_in_pieces_by_level_range(monkeypatch):
    """The pass's sums split by ranges of the first term's levels (as for big data) give
    the same cross-products."""
    from mixedfx.linalg import dask_crossprod

    monkeypatch.setattr(dask_crossprod, "PIECE_ROWS", 300)
    with dask.config.set(scheduler="threads"):
        for case in ("vector", "weights_offset", "nested"):
            mem, dsk = _fit_both(*LMM_CASES[case])
            _same_lmm(mem, dsk)


def test_lmer_dask_results_from_the_rows(scheduler):
    """Satterthwaite tests from the cross-products; fitted values, residuals and predictions
    as lazy series; the summary (exact scaled-residual quantiles) as in memory."""
    formula, kw = LMM_CASES["weights_offset"]
    mem, dsk = _fit_both(formula, kw, npartitions=3)
    cm, cd = mem.coefficients, dsk.coefficients
    np.testing.assert_allclose(cd["std_error"], cm["std_error"], rtol=1e-6)
    np.testing.assert_allclose(cd["df"], cm["df"], rtol=1e-4)
    fitted = dsk.fitted
    assert hasattr(fitted, "compute")  # lazy
    f = fitted.compute()
    np.testing.assert_allclose(f.to_numpy(), mem.fitted, rtol=1e-6, atol=1e-8)
    # indexed by the data's rows that were kept (rows with missing values are not there)
    assert f.index.tolist() == DATA.index[mem.design.frame.rows].tolist()
    np.testing.assert_allclose(dsk.residuals.compute().to_numpy(), mem.residuals, atol=1e-7)
    new = DATA.iloc[:200].dropna()
    p_mem = mem.predict(new)
    p_arr = dsk.predict(new)
    p_dsk = dsk.predict(dd.from_pandas(new, npartitions=2)).compute()
    np.testing.assert_allclose(p_arr, p_mem, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(p_dsk.to_numpy(), p_mem, rtol=1e-6, atol=1e-8)
    sm, sd = mem.summary(), dsk.summary()
    np.testing.assert_allclose(sd.scaled_residuals, sm.scaled_residuals, rtol=1e-6, atol=1e-8)
    head = str(sm).split("Scaled residuals")[0]
    assert str(sd).split("Scaled residuals")[0] == head
    assert "Rows dropped for missing values" in head


def test_glmer_on_dask_equals_glmer_in_memory(scheduler):
    """Laplace fits with crossed terms under the local scheduler. Under the cluster every pass
    is a round trip to the workers (~40 ms on the 2-core test machine) and a Laplace fit makes
    a few hundred: there the first stage (nAGQ=0: θ with β and u by PIRLS) is compared, which
    runs the same passes on the workers."""
    if scheduler == "local":
        kw = {"family": "binomial"}
        formula = "yb ~ x + (1 | g) + (1 | h)"
    else:
        kw = {"family": "binomial", "nAGQ": 0}
        formula = "yb ~ x + (1 | g)"
    mem, dsk = _fit_both(formula, kw, npartitions=2, fn=mfx.glmer)
    assert dsk.objective == pytest.approx(mem.objective, rel=1e-7)
    np.testing.assert_allclose(dsk.theta, mem.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dsk.beta, mem.beta, rtol=1e-4, atol=1e-5)
    assert dsk.passes > 10  # one pass per PIRLS iteration, reported
    if scheduler == "local":
        np.testing.assert_allclose(
            dsk.coefficients["std_error"], mem.coefficients["std_error"], rtol=1e-3
        )


def test_glmer_poisson_on_dask():
    with dask.config.set(scheduler="threads"):
        mem, dsk = _fit_both("yc ~ x + (1 | g)", {"family": "poisson"}, fn=mfx.glmer)
    assert dsk.objective == pytest.approx(mem.objective, rel=1e-7)
    f = dsk.fitted.compute().to_numpy()
    np.testing.assert_allclose(f, mem.fitted, rtol=1e-4)
    assert "Poisson" in str(dsk.summary()) or "poisson" in str(dsk.summary())


def test_parquet_directory_read_lazily(tmp_path):
    """A Parquet directory read by Dask: the same fit as the frame it was written from."""
    data = DATA.dropna().reset_index(drop=True)
    data["h"] = data["h"].astype(str)
    dd.from_pandas(data, npartitions=3).to_parquet(tmp_path / "ratings")
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsk = mfx.lmer("y ~ x + (1 | g) + (1 | h)", dd.read_parquet(tmp_path / "ratings"))
        mem = mfx.lmer("y ~ x + (1 | g) + (1 | h)", data)
    _same_lmm(mem, dsk)
    assert dsk.passes == 2  # the levels' pass and the cross-products' pass


def test_rank_deficient_columns_dropped_as_in_memory():
    data = DATA.copy()
    data["x2"] = 2.0 * data["x"]
    with dask.config.set(scheduler="threads"):
        with pytest.warns(mfx.RankDeficiencyWarning, match="x2"):
            dsk = mfx.lmer("y ~ x + x2 + (1 | g)", dd.from_pandas(data, npartitions=3))
        with pytest.warns(mfx.RankDeficiencyWarning, match="x2"):
            mem = mfx.lmer("y ~ x + x2 + (1 | g)", data)
    _same_lmm(mem, dsk)
    assert dsk.design.fixed.dropped == ["x2"]


def test_what_needs_the_rows_is_refused_with_a_reason():
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ddf = dd.from_pandas(DATA, npartitions=2)
        m = mfx.lmer("y ~ x + (1 | g)", ddf)
        with pytest.raises(ModelError, match=r"Kenward-Roger.*Satterthwaite"):
            _ = m.coefficients_kr
        with pytest.raises(ModelError, match="Kenward-Roger"):
            m.summary(ddf="kenward-roger")
        with pytest.raises(ModelError, match="bootstrap"):
            m.bootstrap(nsim=2)
        with pytest.raises(ModelError, match="not held in memory"):
            _ = m.design.X
        assert m.confint(method="wald").shape[1] == 2
        with pytest.raises(DataError, match="name a column"):
            mfx.lmer("y ~ x + (1 | g)", ddf, weights=np.ones(len(DATA)))
        with pytest.raises(FormulaError, match="learns from all rows"):
            mfx.lmer("y ~ scale(x) + (1 | g)", ddf)
        with pytest.raises(ModelError, match="nAGQ"):
            mfx.glmer("yb ~ x + (1 | g)", ddf, family="binomial", nAGQ=5)
        with pytest.raises(ModelError, match="dispersion"):
            mfx.glmer("yc ~ x + (1 | g)", ddf.assign(yc=ddf.yc + 1.0), family="Gamma")


def test_likelihood_ratio_test_between_dask_fits():
    """REML fits are refitted by ML from the same cross-products (no new pass)."""
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ddf = dd.from_pandas(DATA, npartitions=2)
        m0, m1 = mfx.lmer("y ~ x + (1 | g)", ddf), mfx.lmer("y ~ x + (1 | g) + (1 | h)", ddf)
        d0, d1 = mfx.lmer("y ~ x + (1 | g)", DATA), mfx.lmer("y ~ x + (1 | g) + (1 | h)", DATA)
        a_dsk, a_mem = mfx.anova(m0, m1), mfx.anova(d0, d1)
    chi_dsk, chi_mem = a_dsk.table["chisq"].to_numpy(), a_mem.table["chisq"].to_numpy()
    np.testing.assert_allclose(chi_dsk[1], chi_mem[1], rtol=1e-6)


def test_command_line_reads_parquet_lazily_and_connects_to_a_scheduler(tmp_path, cluster):
    """``mixedfx fit DIR|GLOB FORMULA [--scheduler ADDRESS]``: Dask reads the Parquet data."""
    import subprocess
    import sys

    data = DATA.dropna().reset_index(drop=True)
    data["h"] = data["h"].astype(str)
    dd.from_pandas(data, npartitions=3).to_parquet(tmp_path / "r")
    formula = "y ~ x + (1 | g) + (1 | h)"
    expected = f"{mfx.lmer(formula, data).objective:.1f}"
    run = [sys.executable, "-m", "mixedfx", "fit"]
    out = subprocess.run(
        [*run, str(tmp_path / "r" / "*.parquet"), formula, "--scheduler",
         cluster.scheduler.address],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"REML criterion at convergence: {expected}" in out.stdout
    out = subprocess.run(
        [*run, str(tmp_path / "r"), formula, "--method", "moments"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "APPROXIMATE" in out.stdout


def test_glmer_binomial_trials_on_dask():
    """cbind(successes, failures): trials per row, as in memory."""
    cbpp = mfx.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    mem = mfx.glmer(formula, cbpp, family="binomial")
    with dask.config.set(scheduler="sync"):
        d1 = mfx.glmer(formula, dd.from_pandas(cbpp, npartitions=2), family="binomial")
        p = d1.predict(cbpp.iloc[:5], type="response")
    assert d1.objective == pytest.approx(mem.objective, rel=1e-7)
    np.testing.assert_allclose(p, mem.predict(cbpp.iloc[:5], type="response"), rtol=1e-5)


def test_category_order_and_levels_missing_from_some_partitions():
    """A categorical predictor keeps its category order (reference level) even when each
    partition holds only some of its levels."""
    rng = np.random.default_rng(0)
    n = 600
    f = np.where(np.arange(n) < 300, rng.choice(["b", "c"], n), rng.choice(["a", "b"], n))
    df = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "f": pd.Categorical(f, categories=["c", "a", "b"]),
            "g": rng.integers(0, 20, n),
        }
    )
    mem = mfx.lmer("y ~ x + f + (1 | g)", df)
    with dask.config.set(scheduler="sync"):
        dsk = mfx.lmer("y ~ x + f + (1 | g)", dd.from_pandas(df, npartitions=2, sort=False))
    _same_lmm(mem, dsk)
