"""The mixedfx command line, end to end through subprocesses."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.cli import main

REF = pathlib.Path(__file__).parent / "reference"


def run(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mixedfx", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("mixedfx: error:") and "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_fit_bundled_data_set_prints_the_summary():
    res = run("fit", "sleepstudy", "Reaction ~ Days + (Days | Subject)")
    assert res.returncode == 0, res.stderr
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    assert "REML criterion at convergence: 1743.6" in res.stdout
    assert "Data: sleepstudy" in res.stdout
    assert f"{m.fixef['Days']:.3f}" in res.stdout


def test_fit_json_parsed_back(tmp_path):
    df = mfx.datasets.load("sleepstudy")
    csv = tmp_path / "sleep.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "out.json"
    res = run("fit", str(csv), "Reaction ~ Days + (Days | Subject)", "--ml", "--json", str(out))
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())
    m = mfx.lmer("Reaction ~ Days + (Days | Subject)", df, REML=False)
    assert got["REML"] is False and got["nobs"] == 180 and got["ngroups"] == {"Subject": 18}
    assert got["objective"] == pytest.approx(m.objective, rel=1e-10)
    coef = {r["term"]: r for r in got["coefficients"]}
    assert coef["Days"]["estimate"] == pytest.approx(m.fixef["Days"], rel=1e-10)
    assert coef["Days"]["std_error"] == pytest.approx(
        m.coefficients.loc["Days", "std_error"], rel=1e-8
    )
    assert list(got["theta"]) == m.theta_names
    assert len(got["ranef"]) == 36 and {"condval", "condsd"} <= set(got["ranef"][0])
    assert got["varcorr"][-1]["group"] == "Residual"
    assert "Linear mixed model fit by maximum likelihood" in res.stdout


def test_fit_tsv_and_parquet_and_least_squares(tmp_path, capsys):
    df = mfx.datasets.load("sleepstudy")
    df.to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    df.to_parquet(tmp_path / "s.parquet")
    a = run("fit", str(tmp_path / "s.tsv"), "Reaction ~ Days + (1 | Subject)", "--json", "-")
    assert a.returncode == 0, a.stderr
    assert (
        main(["fit", str(tmp_path / "s.parquet"), "Reaction ~ Days + (1 | Subject)", "--json", "-"])
        == 0
    )
    ja, jb = json.loads(a.stdout), json.loads(capsys.readouterr().out)
    assert ja["objective"] == pytest.approx(jb["objective"], rel=1e-12)
    assert main(["fit", "sleepstudy", "Reaction ~ Days"]) == 0
    assert "Residual standard error: 47.71 on 178 degrees of freedom" in capsys.readouterr().out


def test_compare():
    res = run(
        "compare",
        str(REF / "data" / "classroom.csv"),
        "score ~ posters + quiet + (1 | classroom)",
        "--json",
        "-",
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    rows = {(r["term"], r["approach"]): r for r in got["table"]}
    assert rows[("posters", "nuisance")]["estimate"] is None
    assert "not estimable" in rows[("posters", "nuisance")]["note"]
    ref = json.loads((REF / "classroom.json").read_text())["balanced"]
    assert rows[("posters", "ols")]["estimate"] == pytest.approx(
        ref["ols"]["estimate"][1], rel=1e-8
    )


def test_compare_prints_the_table(capsys):
    assert (
        main(["compare", str(REF / "data" / "classroom.csv"), "score ~ posters + (1 | classroom)"])
        == 0
    )
    assert "nuisance regression" in capsys.readouterr().out


def test_power_matches_the_function(tmp_path):
    out = tmp_path / "p.json"
    res = run(
        "power",
        "score ~ posters + (1 | classroom)",
        "--design",
        "classroom=10",
        "per_classroom=8",
        "posters=between",
        "--fixef",
        "(Intercept)=70",
        "posters=0",
        "--varcorr",
        "classroom=16",
        "--sigma",
        "10",
        "--nsim",
        "30",
        "--seed",
        "3",
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert "Power by simulation" in res.stdout and "rejection rate" in res.stdout
    got = {(r["method"], r["term"]): r for r in json.loads(out.read_text())["table"]}
    sim = mfx.power(
        "score ~ posters + (1 | classroom)",
        {"classroom": 10, "per_classroom": 8, "posters": "between"},
        fixef={"(Intercept)": 70, "posters": 0},
        varcorr={"classroom": 16.0},
        sigma=10.0,
        nsim=30,
        seed=3,
    )
    for _, r in sim.table.iterrows():
        g = got[(r["method"], r["term"])]
        if r["n_valid"]:
            assert g["rejection_rate"] == pytest.approx(r["rejection_rate"])
            assert g["mean_estimate"] == pytest.approx(r["mean_estimate"], rel=1e-10)
        else:
            assert g["rejection_rate"] is None


def test_datasets_lists_bundled_data():
    res = run("datasets")
    assert res.returncode == 0
    names = [ln.split()[0] for ln in res.stdout.splitlines()]
    assert names == mfx.datasets.list_datasets()


def test_help_through_a_subprocess():
    res = run("--help")
    assert res.returncode == 0 and "usage: mixedfx" in res.stdout and "examples:" in res.stdout


@pytest.mark.parametrize("cmd", [["fit"], ["compare"], ["power"], ["datasets"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mixedfx {cmd[0]}")
    if cmd[0] != "datasets":
        assert "examples:" in out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["fit", "missing.csv", "y ~ x + (1 | g)"], ["no such file: missing.csv"]),
        (["fit", "nosuchdata", "y ~ x + (1 | g)"], ["'nosuchdata'", "bundled"]),
        (
            ["fit", "sleepstudy", "Reaction ~ Dayz + (1 | Subject)"],
            ["'Dayz'", "did you mean 'Days'"],
        ),
        (["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject"], ["unclosed bracket", "position"]),
        (["fit", "sleepstudy", "Reaction Days"], ["'~'"]),
        (["compare", "sleepstudy", "Reaction ~ Days + (1 | Subjct)"], ["'Subjct'"]),
        (["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject)", "--weights", "w"], ["'w'"]),
        (
            [
                "power",
                "y ~ x + (1 | g)",
                "--design",
                "g=5",
                "per_g=4",
                "x=between",
                "--fixef",
                "(Intercept)=0",
                "--varcorr",
                "g=1",
                "--sigma",
                "1",
            ],
            ["fixef has no value for 'x'"],
        ),
        (
            [
                "power",
                "y ~ x + (1 | g)",
                "--design",
                "g=five",
                "--fixef",
                "x=0",
                "--varcorr",
                "g=1",
                "--sigma",
                "1",
            ],
            ["--design g"],
        ),
        (["fit"], ["required"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_one_line_exit_2(args, needles):
    assert_one_line_error(run(*args), *needles)


def test_unreadable_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert_one_line_error(run("fit", str(bad), "y ~ x + (1 | g)"), "cannot read")


def test_console_script_entry_point():
    exe = pathlib.Path(sys.executable).parent / "mixedfx"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    res = subprocess.run([str(exe), "datasets"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "sleepstudy" in res.stdout


def test_csv_with_unknown_column_via_file(tmp_path):
    p = tmp_path / "d.csv"
    pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "g": list("aabb")}).to_csv(p, index=False)
    assert_one_line_error(run("fit", str(p), "y ~ x + (1 | g)"), "'x'")


def test_plots_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "cat.png"
    assert (
        main(["fit", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "--plot", str(png)]) == 0
    )
    assert png.stat().st_size > 10_000
    capsys.readouterr()
    code = main(["fit", "sleepstudy", "Reaction ~ Days", "--plot", str(tmp_path / "x.png")])
    assert code == 2 and "conditional modes" in capsys.readouterr().err


def test_fit_glmm_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "g.json"
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    code = main(["fit", "cbpp", formula, "--family", "binomial", "--nagq", "9", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Adaptive Gauss-Hermite Quadrature, nAGQ = 9" in text
    got = json.loads(out.read_text())
    g = mfx.glmer(formula, mfx.datasets.load("cbpp"), nAGQ=9)
    assert got["family"] == "binomial" and got["link"] == "logit" and got["nAGQ"] == 9
    assert got["objective"] == pytest.approx(g.objective, rel=1e-10)
    assert main(["fit", "cbpp", formula, "--family", "binomial", "--link", "probit"]) == 0
    assert "binomial  ( probit )" in capsys.readouterr().out


def test_fit_glmm_bad_link_is_one_line():
    res = run(
        "fit",
        "cbpp",
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        "--family",
        "binomial",
        "--link",
        "identity",
    )
    assert_one_line_error(res, "link 'identity' is not available for the binomial family")
