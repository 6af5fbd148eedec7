"""Example data sets from lme4, bundled with mixedfx.

Each data set is a CSV file with a schema (JSON) giving every column's type and, for
factors, the level order; :func:`load` returns a pandas DataFrame whose factor columns are
``pandas.Categorical`` with exactly that level order (the first level is the reference level
of treatment contrasts, as in R).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pandas as pd

from ..errors import MixedFXError

__all__ = ["describe", "list_datasets", "load"]

_DATA = resources.files(__package__) / "data"


class DatasetNotFoundError(MixedFXError, KeyError):
    """No bundled data set has this name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def list_datasets() -> list[str]:
    """Names of the bundled data sets, sorted case-insensitively."""
    names = [p.name[: -len(".csv")] for p in _DATA.iterdir() if p.name.endswith(".csv")]
    return sorted(names, key=str.lower)


def _resolve(name: str) -> str:
    names = list_datasets()
    if name in names:
        return name
    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    raise DatasetNotFoundError(f"no bundled data set named {name!r}; available: {', '.join(names)}")


@cache
def _schema(name: str) -> dict:
    return json.loads((_DATA / f"{name}.schema.json").read_text())


def describe(name: str) -> dict:
    """The schema of a bundled data set: number of rows and each column's type and levels."""
    return _schema(_resolve(name))


@cache
def _load_cached(name: str) -> pd.DataFrame:
    schema = _schema(name)
    dtypes: dict[str, object] = {}
    for col in schema["columns"]:
        if col["type"] in ("factor", "string"):
            dtypes[col["name"]] = str
        elif col["type"] == "logical":
            dtypes[col["name"]] = "boolean"
    with (_DATA / f"{name}.csv").open("r") as fh:
        df = pd.read_csv(fh, dtype=dtypes, keep_default_na=True)
    for col in schema["columns"]:
        if col["type"] == "factor":
            df[col["name"]] = pd.Categorical(df[col["name"]], categories=col["levels"])
        elif col["type"] == "integer" and not df[col["name"]].isna().any():
            df[col["name"]] = df[col["name"]].astype("int64")
    return df


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set by name (case-insensitive), e.g. ``load("sleepstudy")``.

    Returns a fresh copy each call, so callers may modify it.
    """
    return _load_cached(_resolve(name)).copy()
