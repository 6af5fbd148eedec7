"""Prior weights and offsets agree with lme4 (tests/data/make_weights_offset.R)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

DATA = pathlib.Path(__file__).parent / "data"
REF = json.loads((DATA / "weights_offset.json").read_text())["fits"]


@pytest.fixture(scope="module")
def frame():
    df = pd.read_csv(DATA / "weights_offset.csv", dtype={"Subject": str})
    return df


@pytest.mark.parametrize("ref", REF, ids=[r["id"] for r in REF])
def test_weights_and_offset_match_lme4(frame, ref):
    weights = ref["weights"] or None
    offset = ref["offset"] or None
    m = mfx.lmer(ref["formula"], frame, REML=ref["REML"], weights=weights, offset=offset)
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)
    se = np.asarray(ref["std_error"])
    assert np.all(np.abs(m.beta - ref["fixef"]) <= 1e-4 * se)
    assert np.allclose(m.coefficients["std_error"], se, rtol=1e-3)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    assert np.allclose(m.fitted[:5], ref["fitted_head"], rtol=1e-5)
    # residuals = y - fitted: as precise as the fitted values, absolutely
    atol = 1e-5 * np.max(np.abs(ref["fitted_head"]))
    assert np.allclose(m.residuals[:5], ref["residuals_head"], rtol=0, atol=atol)


def test_weights_and_offset_as_arrays(frame):
    ref = next(r for r in REF if r["id"] == "weights_offset_ml")
    m = mfx.lmer(
        ref["formula"],
        frame,
        REML=False,
        weights=frame["w"].to_numpy(),
        offset=frame["o"].to_numpy(),
    )
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)


def test_offset_in_formula_equals_offset_argument(frame):
    a = mfx.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", frame)
    b = mfx.lmer("Reaction ~ Days + (1 | Subject)", frame, offset="o")
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
