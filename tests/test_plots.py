"""Every plot renders to a PNG with the Agg backend, with the expected panels and labels."""

from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REF = pathlib.Path(__file__).parent / "reference"
SLEEP = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


def saved(fig, path: pathlib.Path, min_kb: float = 8.0) -> tuple[int, int]:
    fig.savefig(path, dpi=80)
    plt.close(fig)
    assert path.stat().st_size > min_kb * 1024
    img = plt.imread(path)
    assert img.std() > 0.05  # not a blank canvas
    return img.shape[1], img.shape[0]


def visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]


def test_caterpillar_plot(tmp_path):
    fig = SLEEP.plot_ranef()
    axes = visible_axes(fig)
    assert [a.get_title() for a in axes] == ["Subject: (Intercept)", "Subject: Days"]
    for a in axes:
        assert a.get_ylabel() == "Subject" and "conditional mode" in a.get_xlabel()
        assert len(a.get_yticklabels()) == 18
    # sorted by conditional mode: the lowest level is drawn first
    re = SLEEP.ranef()
    days = re[re["term"] == "Days"].sort_values("condval")
    assert [t.get_text() for t in axes[1].get_yticklabels()] == list(days["level"])
    w, h = saved(fig, tmp_path / "cat.png")
    assert w >= 500 and h >= 300


def test_caterpillar_into_given_axes(tmp_path):
    fig, axs = plt.subplots(1, 2)
    assert SLEEP.plot_ranef(ax=axs) is fig
    with pytest.raises(ValueError, match="2 panel"):
        SLEEP.plot_ranef(ax=axs[0])
    plt.close(fig)


def test_residual_plots(tmp_path):
    fig = SLEEP.plot_residuals()
    axes = visible_axes(fig)
    assert [(a.get_xlabel(), a.get_ylabel()) for a in axes] == [
        ("fitted values", "residuals"),
        ("theoretical quantiles (normal)", "residuals / sigma"),
        ("theoretical quantiles (normal)", "conditional modes / their SD"),
    ]
    pts = axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(pts[:, 0], SLEEP.fitted)
    np.testing.assert_allclose(pts[:, 1], SLEEP.residuals)
    w, h = saved(fig, tmp_path / "res.png")
    assert w >= 700 and h >= 250


def test_comparison_plot(tmp_path):
    cmp = mfx.compare_controls(
        "score ~ posters + quiet + (1 | classroom)", pd.read_csv(REF / "data" / "classroom.csv")
    )
    fig = cmp.plot()
    axes = visible_axes(fig)
    assert [a.get_title() for a in axes] == ["posters", "quiet"]
    assert all(a.get_xlabel() == "estimate with 95% interval" for a in axes)
    texts = [t.get_text() for t in axes[0].texts]
    assert texts == ["not estimable"]  # nuisance regression cannot estimate posters
    saved(fig, tmp_path / "cmp.png")


def test_power_plot(tmp_path):
    sim = mfx.power(
        "score ~ posters + (1 | classroom)",
        {"classroom": 10, "per_classroom": 6, "posters": "between"},
        fixef={"(Intercept)": 70, "posters": 0.0},
        varcorr={"classroom": 16.0},
        sigma=10.0,
        nsim=20,
        seed=1,
    )
    fig = sim.plot()
    (a,) = visible_axes(fig)
    assert a.get_ylabel() == "rejection rate (false-positive rate)" and a.get_xlabel() == "method"
    assert [t.get_text() for t in a.get_xticklabels()] == ["ols", "nuisance", "mixed"]
    assert a.get_lines()[-1].get_ydata()[0] == pytest.approx(0.05)  # alpha line
    saved(fig, tmp_path / "power.png", min_kb=5)


def test_missing_matplotlib_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"mixedfx\[plot\]"):
        SLEEP.plot_ranef()
