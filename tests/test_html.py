"""Notebook display: fitted models (and their summaries) render the summary's tables as HTML,
with the printed summary's numbers."""

from __future__ import annotations

import warnings
from html.parser import HTMLParser

import pytest

import mixedfx as mfx
from mixedfx.report import html as report_html
from mixedfx.report.summary import GlmerSummary, LmerSummary


class _Tables(HTMLParser):
    """Collects the cells of every table, the headings, and checks that tags are balanced."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None
        self._in_h4 = False

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            return
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "h4":
            self._in_h4 = True

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell or []))
            self._cell = None
        elif tag == "h4":
            self._in_h4 = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_h4:
            self.headings.append(data)


def _parse(text: str) -> _Tables:
    p = _Tables()
    p.feed(text)
    p.close()
    assert not p.stack
    return p


def _sleep(**kw):
    return mfx.lmer("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"), **kw)


def test_lmer_html_has_the_summarys_tables_and_numbers():
    m = _sleep()
    out = m._repr_html_()
    p = _parse(out)
    assert p.headings == ["Scaled residuals", "Random effects", "Fixed effects"]
    resid, rand, fixed = p.tables
    assert resid[0] == ["Min", "1Q", "Median", "3Q", "Max"]
    assert rand[0] == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert rand[1][:4] == ["Subject", "(Intercept)", "612.09", "24.740"]
    assert rand[2] == ["", "Days", "35.07", "5.922", "0.07"]
    assert rand[3][:4] == ["Residual", "", "654.94", "25.592"]
    assert fixed[0] == ["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", ""]
    assert fixed[1] == ["(Intercept)", "251.405", "6.825", "17", "36.838", "< 2e-16", "***"]
    text = str(m.summary())
    for row in fixed[1:] + resid[1:] + rand[1:]:
        for cell in row:
            assert cell in text  # the same formatting as the printed summary
    assert "REML criterion at convergence: 1743.6" in out
    assert "Number of obs: 180, groups: Subject, 18" in out
    assert "Satterthwaite&#x27;s method" in out  # escaped
    assert "Pr(&gt;|t|)" in out


def test_summary_html_and_the_models_html_are_the_same():
    m = _sleep()
    assert report_html.summary_html(m.summary()) == m._repr_html_()
    kr = report_html.summary_html(m.summary(ddf="kenward-roger"))
    assert "Kenward-Roger" in kr
    plain = _parse(report_html.summary_html(m.summary(ddf="lme4")))
    assert plain.tables[-1][0] == ["", "Estimate", "Std. Error", "t value"]


@pytest.mark.skipif(
    not hasattr(LmerSummary, "_repr_html_"),
    reason="report/summary.py does not yet define _repr_html_ (it is summary_html(self))",
)
def test_summary_objects_display_as_html():
    m = _sleep()
    assert m.summary()._repr_html_() == m._repr_html_()
    assert hasattr(GlmerSummary, "_repr_html_")


def test_ml_and_glmer_html():
    m = _sleep(REML=False)
    p = _parse(m._repr_html_())
    assert p.tables[0][0] == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    assert p.tables[0][1] == ["1763.9", "1783.1", "-876.0", "1751.9", "174"]
    g = mfx.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        mfx.datasets.load("cbpp"),
        family="binomial",
    )
    out = g._repr_html_()
    p = _parse(out)
    assert p.tables[2][0] == ["Groups", "Name", "Variance", "Std.Dev."]
    assert [r[0] for r in p.tables[2]] == ["Groups", "herd"]  # no residual row
    assert p.tables[3][0][3:5] == ["z value", "Pr(>|z|)"]
    assert "Family: binomial" in out


def test_notes_and_unfitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        m = mfx.lmer("Yield ~ 1 + (1 | Batch)", mfx.datasets.load("Dyestuff2"))
    assert "boundary (singular) fit" in m._repr_html_()
    u = mfx.LinearMixedModel("Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy"))
    out = u._repr_html_()
    assert out.startswith("<pre>") and "not fitted" in out


def test_table_html_escapes():
    out = report_html.table_html(["a<b", "x"], [["<i>", "1 & 2"]])
    assert "&lt;i&gt;" in out and "1 &amp; 2" in out and "a&lt;b" in out
    p = _parse(out)
    assert p.tables[0] == [["a<b", "x"], ["<i>", "1 & 2"]]
