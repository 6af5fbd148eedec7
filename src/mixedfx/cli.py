"""The ``mixedfx`` command line: fit, compare and simulate mixed models without writing Python.

    mixedfx fit sleepstudy "Reaction ~ Days + (Days | Subject)"
    mixedfx fit data.csv "y ~ x + (1 | g)" --ml --json out.json
    mixedfx fit grouseticks "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)" --family negbin
    mixedfx emmeans cake "angle ~ recipe * temperature + (1 | replicate)" recipe --pairs
    mixedfx compare data.csv "score ~ posters + age + (1 | classroom)"
    mixedfx power "score ~ posters + (1 | classroom)" --design classroom=20 per_classroom=25 \\
        posters=between --fixef "(Intercept)=70" posters=0 --varcorr classroom=16 --sigma 10
    mixedfx datasets

Data are CSV, TSV or Parquet files, or the name of a bundled data set. Errors are reported as one
line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import pathlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from . import datasets
from ._version import __version__
from .errors import FormulaError, MixedFXError
from .frame.formula import parse_formula
from .glm.families import get_family
from .models.glmer import glmer
from .models.glmer_nb import glmer_nb
from .models.lmer import lmer
from .models.ols import ols
from .workflows.compare import compare_controls
from .workflows.power import power

__all__ = ["main"]

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem with the command's input, reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"mixedfx: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------- input
def read_data(source: str) -> tuple[pd.DataFrame, str]:
    """A data frame from a CSV/TSV/Parquet file or a bundled data set's name."""
    path = pathlib.Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        try:
            if suffix in (".parquet", ".pq"):
                df = pd.read_parquet(path)
            elif suffix in (".tsv", ".tab"):
                df = pd.read_csv(path, sep="\t")
            else:
                df = pd.read_csv(
                    path,
                    sep=None if suffix not in (".csv",) else ",",
                    engine="python" if suffix not in (".csv",) else "c",
                )
        except ImportError as exc:
            raise CLIError(f"cannot read {source}: {exc}") from None
        except Exception as exc:  # pandas/pyarrow parser errors of many types
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CLIError(f"cannot read {source}: {msg}") from None
        return df, path.stem
    if path.is_dir():
        raise CLIError(f"{source} is a directory: give a CSV, TSV or Parquet file")
    if path.exists():  # a device, pipe or socket: read it as text (e.g. /dev/stdin)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read {source}: {exc}") from None
        if not text.strip():
            raise CLIError(f"cannot read {source}: it is empty")
        try:
            return pd.read_csv(io.StringIO(text), sep=None, engine="python"), path.stem
        except Exception as exc:  # pandas' parser errors of many types
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CLIError(f"cannot read {source}: {msg}") from None
    if path.suffix or "/" in source or "\\" in source:
        raise CLIError(f"no such file: {source}")
    try:
        return datasets.load(source), source
    except KeyError:
        names = ", ".join(datasets.list_datasets())
        raise CLIError(
            f"{source!r} is neither a file nor a bundled data set (bundled: {names})"
        ) from None


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CLIError(f"{what}: {text!r} is not a number") from None


def _pairs(items: Sequence[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"{what}: expected name=value, got {item!r}")
        key, value = item.rsplit("=", 1) if item.startswith("(") else item.split("=", 1)
        key = key.strip()
        if not key:
            raise CLIError(f"{what}: missing name in {item!r}")
        out[key] = value.strip()
    return out


def _json_value(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise CLIError(f"{what}: {text!r} is not a number or a JSON list") from None


def parse_design(items: Sequence[str]) -> dict[str, Any]:
    """``classroom=20 per_classroom=25 posters=between days=[0,1,2]`` -> dict."""
    out: dict[str, Any] = {}
    for key, value in _pairs(items, "--design").items():
        if value in ("between", "within"):
            out[key] = value
        elif value.startswith("["):
            out[key] = _json_value(value, f"--design {key}")
        else:
            try:
                out[key] = int(value)
            except ValueError:
                raise CLIError(
                    f"--design {key}: {value!r} is not a count, 'between', 'within' or a list"
                ) from None
    return out


def parse_varcorr(items: Sequence[str]) -> dict[str, Any]:
    """``classroom=16`` or ``Subject=[[612,9.6],[9.6,35]]`` -> dict."""
    out: dict[str, Any] = {}
    for key, value in _pairs(items, "--varcorr").items():
        out[key] = (
            _json_value(value, f"--varcorr {key}")
            if value.startswith("[")
            else _number(value, f"--varcorr {key}")
        )
    return out


# ----------------------------------------------------------------- output
def _jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN and infinities become null."""
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(r) for r in obj.reset_index().to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def model_results(m: Any) -> dict[str, Any]:
    """Everything a fitted model reports, as a JSON-ready dict."""
    out: dict[str, Any] = {
        "formula": m.formula,
        "model": type(m).__name__,
        "nobs": m.nobs,
    }
    fam = getattr(m, "family", "gaussian")
    out["family"] = fam if isinstance(fam, str) else fam.name
    if not isinstance(fam, str):
        out["link"] = fam.link.name
        out["nAGQ"] = m.nAGQ
        if getattr(fam, "theta", None) is not None:
            out["nb_theta"] = fam.theta
    for name in (
        "REML",
        "method",
        "approximate",
        "objective",
        "deviance",
        "loglik",
        "aic",
        "bic",
        "sigma",
        "df_resid",
        "is_singular",
        "r_squared",
        "adj_r_squared",
        "rss",
    ):
        if hasattr(type(m), name) or name in getattr(m, "__dict__", {}):
            try:
                out[name] = getattr(m, name)
            except Exception:  # a quantity this model type cannot give
                continue
    out["coefficients"] = m.coefficients
    out["vcov"] = {"names": list(m.vcov.index), "values": m.vcov.to_numpy()}
    if hasattr(m, "theta"):
        out["theta"] = dict(zip(m.theta_names, m.theta, strict=True))
        out["ngroups"] = m.ngroups
        out["varcorr"] = m.varcorr
        out["ranef"] = m.ranef()
        out["convergence_messages"] = list(getattr(m, "convergence_messages", []))
    dropped = m.design.fixed.dropped
    out["dropped_columns"] = list(dropped)
    out["rows_dropped_for_missing_values"] = m.design.frame.n_dropped
    return _jsonable(out)


def _write_json(payload: Any, dest: str) -> None:
    text = json.dumps(_jsonable(payload), indent=2, allow_nan=False)
    if dest == "-":
        sys.stdout.write(text + "\n")
        return
    try:
        pathlib.Path(dest).write_text(text + "\n")
    except OSError as exc:
        raise CLIError(f"cannot write {dest}: {exc.strerror or exc}") from None


def _save_figure(fig: Any, dest: str) -> None:
    try:
        fig.savefig(dest, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot write {dest}: {exc}") from None


def _agg() -> None:
    try:
        import matplotlib
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'mixedfx[plot]'") from None
    matplotlib.use("Agg")


# ----------------------------------------------------------------- commands
def _check_glmm_options(args: argparse.Namespace) -> None:
    """``--link`` and ``--nagq`` are options of a GLMM: refuse them without ``--family``;
    ``--nagq`` defaults to 1."""
    glmm = (args.family or "gaussian").strip().lower() != "gaussian"
    if not glmm:
        given = [o for o, v in (("--link", args.link), ("--nagq", args.nagq)) if v is not None]
        if given:
            raise CLIError(
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to "
                "generalized models: add --family (e.g. --family binomial), or leave "
                f"{'them' if len(given) > 1 else 'it'} out for a linear model"
            )
    if args.nagq is None:
        args.nagq = 1
    elif args.nagq < 0:
        raise CLIError(f"--nagq must be 0, 1 or a number of quadrature nodes, got {args.nagq}")


LAZY_BYTES = 256e6
"""A Parquet file larger than this is read lazily with Dask (when Dask is installed)."""


def read_dask(source: str, force: bool = False) -> tuple[Any, str] | None:
    """A Dask data frame read lazily from a Parquet directory, a glob of Parquet files, or a
    Parquet file (when ``force`` or larger than :data:`LAZY_BYTES`); None for anything else."""
    path = pathlib.Path(source)
    is_glob = any(c in source for c in "*?[")
    parquet_file = path.is_file() and path.suffix.lower() in (".parquet", ".pq")
    big = parquet_file and path.stat().st_size > LAZY_BYTES
    if not (path.is_dir() or is_glob or (parquet_file and (force or big))):
        return None
    try:
        import dask.dataframe as dd
    except ImportError:
        if parquet_file and not force:
            return None
        raise CLIError(
            f"{source}: a directory, a glob or --dask/--scheduler reads the data with Dask: "
            "pip install 'mixedfx[dask]'"
        ) from None
    try:
        ddf = dd.read_parquet(source)
    except Exception as exc:  # pyarrow/fsspec errors of many types
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"cannot read {source} as Parquet: {msg}") from None
    name = path.stem if not is_glob else pathlib.Path(source.split("*")[0]).name or source
    return ddf, name


def _connect(args: argparse.Namespace) -> Any:
    """The Dask client of ``--scheduler``; on a terminal, a progress bar for local passes."""
    address = getattr(args, "scheduler", None)
    if address:
        try:
            from distributed import Client
        except ImportError:
            raise CLIError(
                "--scheduler needs Dask's distributed: pip install 'mixedfx[dask]'"
            ) from None
        try:
            return Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise CLIError(f"cannot connect to the Dask scheduler at {address}: {exc}") from None
    if sys.stderr.isatty():
        try:
            from dask.diagnostics import ProgressBar
        except ImportError:
            return None
        ProgressBar(minimum=2.0).register()
    return None


def _fit(args: argparse.Namespace) -> int:
    _check_glmm_options(args)
    force = bool(getattr(args, "dask", False) or getattr(args, "scheduler", None))
    lazy = read_dask(args.data, force)
    if lazy is not None:
        client = _connect(args)  # noqa: F841 - the default scheduler while it lives
        data, name = lazy
    else:
        data, name = read_data(args.data)
    parsed = parse_formula(args.formula)
    family = (args.family or "gaussian").lower()
    if family in NEGBIN_NAMES:
        m = _fit_negbin(args, data, parsed.random)
    elif family != "gaussian":
        if not parsed.random:
            raise CLIError("--family needs a formula with a random-effects term, e.g. (1 | g)")
        m = glmer(
            args.formula,
            data,
            family=get_family(family, args.link),
            weights=args.weights,
            offset=args.offset,
            nAGQ=args.nagq,
        )
    elif not parsed.random:
        m = ols(args.formula, data, weights=args.weights, offset=args.offset)
    else:
        m = lmer(
            args.formula,
            data,
            REML=not args.ml,
            weights=args.weights,
            offset=args.offset,
            method=getattr(args, "method", "auto"),
        )
        m.data_name = name
    if args.json:
        _write_json(model_results(m), args.json)
    if args.plot:
        if not hasattr(m, "plot_ranef"):
            raise CLIError(
                "--plot draws the conditional modes of a mixed model; this model has none"
            )
        _agg()
        _save_figure(m.plot_ranef(), args.plot)
    if args.json != "-":
        print(m.summary())
    return 0


NEGBIN_NAMES = ("negbin", "nb", "negative.binomial", "negative_binomial", "negativebinomial")
"""``--family`` names of the negative binomial family with θ estimated (lme4's glmer.nb)."""


def _fit_negbin(args: argparse.Namespace, data: pd.DataFrame, random: Any) -> Any:
    """glmer.nb: the negative binomial GLMM with its shape θ estimated."""
    if not random:
        raise CLIError("--family negbin needs a formula with a random-effects term, e.g. (1 | g)")
    return glmer_nb(
        args.formula,
        data,
        weights=args.weights,
        offset=args.offset,
        nAGQ=args.nagq,
        link=args.link or "log",
    )


def _emmeans_model(args: argparse.Namespace) -> Any:
    """The mixed model of ``mixedfx emmeans``: lmer, glmer (--family) or glmer.nb."""
    data, name = read_data(args.data)
    parsed = parse_formula(args.formula)
    if not parsed.random:
        raise CLIError("emmeans needs a mixed model: add a random-effects term, e.g. (1 | g)")
    family = (args.family or "gaussian").lower()
    if family in NEGBIN_NAMES:
        return _fit_negbin(args, data, parsed.random)
    if family != "gaussian":
        return glmer(
            args.formula,
            data,
            family=get_family(family, args.link),
            weights=args.weights,
            offset=args.offset,
            nAGQ=args.nagq,
        )
    m = lmer(args.formula, data, REML=not args.ml, weights=args.weights, offset=args.offset)
    m.data_name = name
    return m


def _emmeans(args: argparse.Namespace) -> int:
    """Estimated marginal means (and with --pairs their pairwise differences)."""
    m = _emmeans_model(args)
    specs = args.specs
    by = args.by or None
    e = m.emmeans(
        specs,
        ddf=args.ddf,
        by=by,
        level=args.level,
        type="response" if args.response else "link",
    )
    pairs = e.pairs(adjust=args.adjust) if args.pairs else None
    if args.json:
        payload: dict[str, Any] = {
            "formula": args.formula,
            "specs": specs,
            "by": by,
            "ddf": e.ddf,
            "emmeans": e.table.to_dict(orient="records"),
            "notes": e.notes,
        }
        if pairs is not None:
            payload["pairs"] = pairs.table.to_dict(orient="records")
            payload["pairs_notes"] = pairs.notes
        _write_json(payload, args.json)
    if args.json != "-":
        print(e)
        if pairs is not None:
            print()
            print(pairs)
    return 0


def _compare(args: argparse.Namespace) -> int:
    data, _ = read_data(args.data)
    cmp = compare_controls(
        args.formula,
        data,
        REML=not args.ml,
        weights=args.weights,
        offset=args.offset,
        level=args.level,
    )
    if args.json:
        _write_json(
            {
                "formula": args.formula,
                "mixed_df_method": cmp.mixed_df_method,
                "table": cmp.table.set_index(["term", "approach"]),
            },
            args.json,
        )
    if args.plot:
        _agg()
        _save_figure(cmp.plot(), args.plot)
    if args.json != "-":
        print(cmp)
    return 0


def _power(args: argparse.Namespace) -> int:
    if (args.design is None) == (args.design_data is None):
        raise CLIError("give the design either as --design name=value ... or as --design-data FILE")
    design: Any = parse_design(args.design) if args.design else read_data(args.design_data)[0]
    fixef = {k: _number(v, f"--fixef {k}") for k, v in _pairs(args.fixef, "--fixef").items()}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    sim = power(
        args.formula,
        design=design,
        fixef=fixef,
        varcorr=parse_varcorr(args.varcorr),
        sigma=args.sigma,
        nsim=args.nsim,
        seed=args.seed,
        methods=methods,
        alpha=args.alpha,
        terms=args.terms,
        REML=not args.ml,
        n_jobs=args.n_jobs,
        progress=False if args.no_progress else None,
    )
    if args.json:
        _write_json(
            {
                "formula": args.formula,
                "nsim": sim.nsim,
                "alpha": sim.alpha,
                "seed": sim.seed,
                "mixed_df_method": sim.mixed_df_method,
                "singular_fits": sim.n_singular,
                "table": sim.table.set_index(["method", "term"]),
            },
            args.json,
        )
    if args.plot:
        _agg()
        _save_figure(sim.plot(), args.plot)
    if args.json != "-":
        print(sim)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    for name in datasets.list_datasets():
        schema = datasets.describe(name)
        cols = ", ".join(c["name"] for c in schema["columns"])
        nrow = schema.get("nrow", schema.get("n_rows", ""))
        print(f"{name:<12} {nrow!s:>7} rows   {cols}")
    return 0


# ----------------------------------------------------------------- parser
EXAMPLES = {
    "fit": """examples:
  mixedfx fit sleepstudy "Reaction ~ Days + (Days | Subject)"
  mixedfx fit data.csv "y ~ x + (1 | g)" --ml --json results.json
  mixedfx fit data.parquet "y ~ x + (1 | g)" --weights w --plot caterpillar.png
  mixedfx fit data.csv "y ~ x + C(g)"          (no random-effects term: least squares)
  mixedfx fit cbpp "cbind(incidence, size - incidence) ~ period + (1 | herd)" --family binomial
  mixedfx fit grouseticks "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)" --family negbin
  mixedfx fit "ratings/*.parquet" "rating ~ x + (1 | user) + (1 | item)" --scheduler tcp://host:8786""",
    "emmeans": """examples:
  mixedfx emmeans cake "angle ~ recipe * temperature + (1 | recipe:replicate)" recipe --pairs
  mixedfx emmeans cake "angle ~ recipe * temperature + (1 | recipe:replicate)" recipe \\
      --by temperature --ddf satterthwaite
  mixedfx emmeans cbpp "cbind(incidence, size - incidence) ~ period + (1 | herd)" period \\
      --family binomial --response --pairs --adjust holm""",
    "compare": """examples:
  mixedfx compare classes.csv "score ~ posters + age + (1 | classroom)"
  mixedfx compare sleepstudy "Reaction ~ Days + (1 | Subject)" --json - """,
    "power": """examples:
  mixedfx power "score ~ posters + (1 | classroom)" \\
      --design classroom=20 per_classroom=25 posters=between \\
      --fixef "(Intercept)=70" posters=0 --varcorr classroom=16 --sigma 10 --nsim 1000 --seed 1
  mixedfx power "y ~ x + (1 | g)" --design-data design.csv --fixef "(Intercept)=0" x=0.5 \\
      --varcorr g=1 --sigma 2 --n-jobs 2 --plot power.png

--design: the grouping factor's number of levels (classroom=20), rows per level
(per_classroom=25), and per predictor 'between' (0/1 by level), 'within' (0/1 within each
level) or a JSON list of per-level values (days=[0,1,2,3]). A true effect of 0 gives the
false-positive rate, any other value the power.""",
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mixedfx",
        description="Linear mixed models with lme4's formula language: fit, compare ways of "
        "controlling for batches, and estimate power by simulation.",
        epilog='examples:\n  mixedfx fit sleepstudy "Reaction ~ Days + (Days | Subject)"\n'
        '  mixedfx compare data.csv "score ~ posters + (1 | classroom)"\n'
        '  mixedfx emmeans cake "angle ~ recipe + (1 | replicate)" recipe --pairs\n'
        "  mixedfx datasets\n\nmixedfx COMMAND --help shows each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mixedfx {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def data_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("data", help="CSV, TSV or Parquet file, or a bundled data set's name")
        s.add_argument("formula", help='lme4 formula, e.g. "y ~ x + (1 | g)"')
        s.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
        s.add_argument("--weights", metavar="COLUMN", help="column of prior weights")
        s.add_argument("--offset", metavar="COLUMN", help="column of offsets")
        s.add_argument("--json", metavar="FILE", help="write all results as JSON ('-': stdout)")
        s.add_argument("--plot", metavar="PNG", help="save a plot (needs matplotlib)")

    s = sub.add_parser(
        "fit",
        help="fit a model and print its summary",
        epilog=EXAMPLES["fit"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit a linear mixed model (lmer), a generalized one "
        "(--family), or least squares when the formula has no random effects.",
    )
    data_args(s)
    s.add_argument(
        "--family",
        metavar="NAME",
        help="GLMM family: binomial, poisson, Gamma, inverse.gaussian, or negbin (negative "
        "binomial with its theta estimated, lme4's glmer.nb); default gaussian",
    )
    s.add_argument(
        "--link", metavar="NAME", help="link function (default: the family's canonical link)"
    )
    s.add_argument(
        "--nagq",
        type=int,
        default=None,
        metavar="K",
        help="GLMM: 1 = Laplace (default); K > 1 = adaptive Gauss-Hermite quadrature",
    )
    s.add_argument(
        "--method",
        choices=("auto", "exact", "moments"),
        default="auto",
        help="lmer: exact (REML/ML), moments (approximate, crossed random intercepts), or "
        "auto (exact while it fits in memory and time; default)",
    )
    s.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="fit on a Dask cluster (e.g. tcp://scheduler:8786); the data are read lazily",
    )
    s.add_argument(
        "--dask",
        action="store_true",
        help="read a Parquet file lazily with Dask (implied for a directory, a glob, a file "
        "over 256 MB, or --scheduler)",
    )
    s.set_defaults(func=_fit)

    s = sub.add_parser(
        "compare",
        help="OLS vs nuisance regression vs mixed model",
        epilog=EXAMPLES["compare"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="For every fixed effect: ignoring the batches (OLS), batches "
        "as fixed covariates (nuisance regression), and the mixed model.",
    )
    data_args(s)
    s.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    s.set_defaults(func=_compare)

    s = sub.add_parser(
        "power",
        help="power / false-positive rate by simulation",
        epilog=EXAMPLES["power"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Simulate from a mixed model with given parameters and fit "
        "OLS, nuisance regression and the mixed model to every data set.",
    )
    s.add_argument("formula", help='mixed-model formula, e.g. "y ~ x + (1 | g)"')
    s.add_argument("--design", nargs="+", metavar="NAME=VALUE", help="design description")
    s.add_argument("--design-data", metavar="FILE", help="or: a file with the design's rows")
    s.add_argument(
        "--fixef",
        nargs="+",
        metavar="NAME=VALUE",
        required=True,
        help='true fixed effects, every one: "(Intercept)=70" x=0',
    )
    s.add_argument(
        "--varcorr",
        nargs="+",
        metavar="GROUP=VAR",
        required=True,
        help="variance per term (JSON matrix for vector terms)",
    )
    s.add_argument("--sigma", type=float, required=True, help="residual standard deviation")
    s.add_argument("--nsim", type=int, default=1000, help="simulated data sets (default 1000)")
    s.add_argument("--seed", type=int, default=None, help="random seed")
    s.add_argument(
        "--methods", default="ols,nuisance,mixed", help="comma-separated: ols,nuisance,mixed"
    )
    s.add_argument("--alpha", type=float, default=0.05, help="test level (default 0.05)")
    s.add_argument("--terms", nargs="+", metavar="TERM", help="fixed effects to test")
    s.add_argument("--ml", action="store_true", help="fit the mixed model by ML")
    s.add_argument("--n-jobs", type=int, default=1, help="worker processes (-1: all CPUs)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    s.add_argument("--plot", metavar="PNG", help="save the power plot (needs matplotlib)")
    s.set_defaults(func=_power)

    s = sub.add_parser(
        "emmeans",
        help="estimated marginal means (and pairwise comparisons)",
        epilog=EXAMPLES["emmeans"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit a mixed model and print the estimated marginal means of SPECS "
        "(R's emmeans): factors over their levels, covariates at their means, averaged "
        "over the other factors with equal weights.",
    )
    s.add_argument("data", help="CSV, TSV or Parquet file, or a bundled data set's name")
    s.add_argument("formula", help='lme4 formula, e.g. "y ~ treatment + (1 | g)"')
    s.add_argument("specs", help='factor(s) whose means are wanted: "A", "A * B" or "~ A | B"')
    s.add_argument("--by", nargs="+", metavar="FACTOR", help="means within each level of these")
    s.add_argument("--pairs", action="store_true", help="also the pairwise differences")
    s.add_argument(
        "--ddf",
        choices=("kenward-roger", "satterthwaite", "asymptotic"),
        default=None,
        help="degrees of freedom (lmer; default kenward-roger, glmer: asymptotic)",
    )
    s.add_argument(
        "--adjust",
        default="tukey",
        metavar="METHOD",
        help="p-value adjustment of --pairs: tukey (default), bonferroni, holm, sidak, fdr, none",
    )
    s.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    s.add_argument("--family", metavar="NAME", help="GLMM family (as for fit), or negbin")
    s.add_argument("--link", metavar="NAME", help="link function (default: canonical)")
    s.add_argument("--nagq", type=int, default=1, metavar="K", help="GLMM: quadrature nodes")
    s.add_argument("--response", action="store_true", help="GLMM: means on the response scale")
    s.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    s.add_argument("--weights", metavar="COLUMN", help="column of prior weights")
    s.add_argument("--offset", metavar="COLUMN", help="column of offsets")
    s.add_argument("--json", metavar="FILE", help="write the tables as JSON ('-': stdout)")
    s.set_defaults(func=_emmeans)

    s = sub.add_parser(
        "datasets",
        help="list the bundled data sets",
        description="List the bundled data sets (usable as DATA by name).",
    )
    s.set_defaults(func=_datasets)
    return p


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, FormulaError) and exc.formula is not None and exc.position is not None:
        first = text.splitlines()[0] if text else "bad formula"
        return _printable(f"{first} at position {exc.position + 1} of the formula: {exc.formula}")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return _printable(" ".join(lines)) if lines else type(exc).__name__


def _printable(text: str) -> str:
    """``text`` with control characters (terminal escape sequences among them) shown as
    ``\\xNN`` instead of sent to the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"mixedfx: warning: {_one_line(Warning(str(message)))}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _showwarning
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            sys.stderr.write("mixedfx: interrupted\n")
            return 130
        except BrokenPipeError:
            return 0
        except Exception as exc:  # every error becomes one line, never a traceback
            known = isinstance(
                exc,
                (
                    CLIError,
                    MixedFXError,
                    ValueError,
                    KeyError,
                    OSError,
                    ImportError,
                    NotImplementedError,
                ),
            )
            prefix = "error" if known else f"internal error ({type(exc).__name__})"
            sys.stderr.write(f"mixedfx: {prefix}: {_one_line(exc)}\n")
            return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
