"""Shared fixtures: the lme4 reference fits copied into the project (tests/data)."""

from __future__ import annotations

import json
import pathlib
import warnings

import numba
import pytest
from threadpoolctl import threadpool_limits

DATA = pathlib.Path(__file__).parent / "data"


def load_cases() -> list[dict]:
    """lme4 1.1-31 reference fits of lme4's example data sets (copied from the shared
    reference folder; see tests/data/README.md)."""
    return json.loads((DATA / "lme4_cases.json").read_text())


CASES = load_cases()


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_worker():
    """The suite runs in parallel processes (pytest -n 2): keep each single-threaded so that
    BLAS and numba threads do not oversubscribe the cores."""
    numba.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield


def case(case_id: str) -> dict:
    for c in CASES:
        if c["id"] == case_id:
            return c
    raise KeyError(case_id)


@pytest.fixture(autouse=True)
def _no_unexpected_runtime_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield
