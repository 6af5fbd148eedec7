"""Step 1 of the pipeline: formula text -> terms.

lme4's formula language is a fixed-effects formula with random-effects terms added::

    y ~ x + f + (1 + x | g) + (0 + z | h) + (x || k) + (1 | a/b) + (1 | a:b)

:func:`parse_formula` splits it into the response, the fixed-effects part (handed to
formulaic, which knows contrasts, interactions and transforms) and a list of
:class:`RandomTerm`, with lme4's expansions already applied:

* ``(x || g)`` becomes one term per formula term of ``x``: ``(1 | g) + (0 + x | g)``;
* ``(1 | a/b)`` becomes ``(1 | a) + (1 | b:a)`` (lme4 names the nested factor ``b:a``);
* ``(1 | a:b)`` groups by the interaction factor of ``a`` and ``b``.

R spellings that Python would misread are translated: ``I(x^2)`` is ``I(x**2)``, and
``log``, ``exp``, ``sqrt`` are available without ``np.``. As in R, a ``#`` starts a comment,
names that are not identifiers are back-quoted (`` (1 | `my group`) ``), and a ``.`` in the
fixed part stands for every column of the data not in the response (:func:`expand_dot`).
"""

from __future__ import annotations

import itertools
import keyword
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from ..errors import FormulaError

__all__ = [
    "ParsedFormula",
    "RandomTerm",
    "expand_dot",
    "has_dot",
    "parse_formula",
    "quote_name",
    "split_top_level",
    "unquote",
]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after lme4's expansions.

    Attributes
    ----------
    expr : str
        The term's model formula (formulaic syntax), e.g. ``"1 + Days"`` or ``"0 + Days"``.
    factors : tuple of str
        The grouping variables whose interaction is the grouping factor, in the order lme4
        names them (``("cask", "batch")`` for ``cask:batch``).
    text : str
        The term as the user would read it, for messages: ``"(1 + Days | Subject)"``.
    """

    expr: str
    factors: tuple[str, ...]
    text: str

    @property
    def group(self) -> str:
        """Name of the grouping factor as lme4 prints it, e.g. ``"cask:batch"``."""
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and random-effects terms."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = field(default=())

    @property
    def fixed_formula(self) -> str:
        """The fixed-effects formula with response, as a string in formulaic syntax."""
        return f"{self.response} ~ {self.fixed}"


_OPEN = "([{"
_CLOSE = ")]}"
_QUOTES = "`'\""

_IDENT = re.compile(r"^(?:[^\W\d]|\.(?!\d))[\w.]*$")
"""A name that needs no back-quotes: R's syntactic names (letters of any alphabet, digits,
``_`` and ``.``, not starting with a digit or with ``.`` and a digit)."""


@lru_cache(maxsize=1024)
def quote_name(name: str) -> str:
    """``name`` as written in a formula: back-quoted unless it is a plain identifier."""
    if _IDENT.match(name) and not keyword.iskeyword(name):
        return name
    if "`" in name:
        raise FormulaError(f"column name {name!r} contains a back-quote: rename the column")
    return f"`{name}`"


def _strip_comments(text: str) -> str:
    """``text`` without R comments: from a ``#`` outside quotes to the end of its line."""
    if "#" not in text:
        return text
    out: list[str] = []
    quote = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch == "#":
            j = text.find("\n", i)
            if j < 0:
                break
            i = j
            continue
        if quote is None and ch in _QUOTES:
            quote = ch
        elif ch == quote:
            quote = None
        out.append(ch)
        i += 1
    return "".join(out)


def _mask(text: str) -> str:
    """``text`` with the inside of back-quoted names and string literals blanked (same
    length), so that brackets, operators and ``|`` in them are not read as structure."""
    if not any(q in text for q in _QUOTES):
        return text
    out = list(text)
    quote = None
    start = 0
    for i, ch in enumerate(text):
        if quote is None:
            if ch in _QUOTES:
                quote, start = ch, i
        elif ch == quote:
            quote = None
        else:
            out[i] = "_"
    if quote is not None:
        what = "back-quoted name" if quote == "`" else "string"
        raise FormulaError(f"unclosed {what}", text, start)
    return "".join(out)


def _check_brackets(text: str) -> None:
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(_mask(text)):
        if ch in _OPEN:
            stack.append((ch, i))
        elif ch in _CLOSE:
            if not stack or _OPEN.index(stack[-1][0]) != _CLOSE.index(ch):
                raise FormulaError("unbalanced closing bracket", text, i)
            stack.pop()
    if stack:
        raise FormulaError("unclosed bracket", text, stack[-1][1])


def split_top_level(text: str, seps: str = "+-") -> list[tuple[str, str, int]]:
    """Split ``text`` at the characters of ``seps`` that are outside any bracket.

    Returns ``(sign, piece, start)`` triples; ``sign`` is the separator that preceded the
    piece (``"+"`` for the first). A ``-`` directly after ``*``, ``/``, ``(`` or an operator is
    a unary minus, not a separator; ``**`` is not split. (Kept for the last texts split: every
    fit splits the same few formula parts several times.)
    """
    return list(_split_top_level(text, seps))


@lru_cache(maxsize=256)
def _split_top_level(text: str, seps: str) -> tuple[tuple[str, str, int], ...]:
    out: list[tuple[str, str, int]] = []
    depth = 0
    sign, start = "+", 0
    prev_sig = ""  # previous non-space character at depth 0
    for i, ch in enumerate(_mask(text)):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth == 0 and ch in seps:
            unary = ch == "-" and (prev_sig in ("", "*", "/", "^", ":", "~", "+", "-", "|"))
            if not unary:
                out.append((sign, text[start:i], start))
                sign, start = ch, i + 1
                prev_sig = ch
                continue
        if not ch.isspace() and depth == 0:
            prev_sig = ch
        elif not ch.isspace() and ch in _OPEN:
            prev_sig = ch
    out.append((sign, text[start:], start))
    return tuple(out)


def _find_top_level(text: str, token: str) -> int:
    text = _mask(text)
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            return i
        i += 1
    return -1


def _strip_outer_parens(text: str) -> str | None:
    """Return the inside of ``text`` if it is one bracketed group ``( ... )``."""
    t = text.strip()
    if not (t.startswith("(") and t.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(_mask(t)):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(t) - 1:
                return None
    return t[1:-1]


_POW_IN_I = re.compile(r"\bI\(")


def _translate_r(text: str) -> str:
    """Translate R spellings inside ``I(...)``: ``^`` to ``**``."""
    out = []
    i = 0
    while True:
        m = _POW_IN_I.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.end()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            if text[j] == "(":
                depth += 1
            elif text[j] == ")":
                depth -= 1
            j += 1
        out.append(text[m.end() : j].replace("^", "**"))
        i = j
    return "".join(out)


def _group_factors(text: str, formula: str, offset: int) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``g``, ``a:b``, ``a/b`` (nested), ``a/b/c``."""
    g = text.strip()
    inner = _strip_outer_parens(g)
    if inner is not None:
        g = inner.strip()
    if not g:
        raise FormulaError("random-effects term has no grouping factor after '|'", formula, offset)
    parts = [p.strip() for _, p, _ in split_top_level(g, "/")]
    out: list[tuple[str, ...]] = []
    nested: tuple[str, ...] = ()
    for part in parts:
        names = [f.strip() for _, f, _ in split_top_level(part, ":")]
        factors = tuple(unquote(f) for f in names)
        for f, name in zip(names, factors, strict=True):
            if not name or (name == f and not _IDENT.match(f)):
                pos = formula.find(f, offset) if f else offset
                raise FormulaError(
                    f"grouping factor {f!r} must be a column name (or a:b, a/b of column names; "
                    "back-quote a name with spaces or symbols: `my group`)",
                    formula,
                    max(pos, 0),
                )
        # lme4's expandSlash: a/b -> a + b:a ; a/b/c -> a + b:a + c:b:a
        nested = factors + nested
        out.append(nested)
    return out


_GROUP_POWER = re.compile(r"^\((?P<inner>.*)\)\s*(?:\^|\*\*)\s*(?P<k>\d+)\s*$", re.S)

MAX_POWER_TERMS = 10_000
"""The most terms ``(a + b + ...)^k`` may expand to."""


def _expand_powers(text: str) -> str:
    """R's ``(a + b + c)^k``: the terms and their interactions up to order k, written out
    (``(a + b)^2`` is ``(a + b + a:b)``); k beyond the number of terms adds nothing.
    formulaic's own expansion takes time exponential in k (``(a + ... + h)^7``: half a
    minute), so it never sees a power of a bracketed sum."""
    pieces = split_top_level(text)
    if not any("^" in p or "**" in p for _, p, _ in pieces):
        return text
    out = []
    for sign, piece, _ in pieces:
        m = _GROUP_POWER.match(piece.strip())
        if m and _strip_outer_parens(f"({m.group('inner')})") is not None:
            inner = split_top_level(m.group("inner"))
            terms = [q.strip() for _, q, _ in inner if q.strip()]
            if all(sg == "+" for sg, _, _ in inner) and terms:
                k = min(int(m.group("k")), len(terms))
                count = sum(math.comb(len(terms), j) for j in range(1, k + 1))
                if count > MAX_POWER_TERMS:
                    raise FormulaError(
                        f"{piece.strip()} has {count} terms (interactions up to order {k} of "
                        f"{len(terms)} terms): too many"
                    )
                subsets = (c for j in range(1, k + 1) for c in itertools.combinations(terms, j))
                piece = "(" + " + ".join(":".join(c) for c in subsets) + ")"
        out.append(piece.strip() if not out else f"{sign} {piece.strip()}")
    return " ".join(out)


def unquote(name: str) -> str:
    """A back-quoted name without its quotes; other names as they are."""
    if len(name) >= 2 and name[0] == "`" and name[-1] == "`":
        return name[1:-1]
    return name


def _expand_double_bar(expr: str) -> list[str]:
    """``(x + z || g)`` -> ``(1|g) + (0 + x|g) + (0 + z|g)``, one term per formula term."""
    pieces = [(s, p.strip()) for s, p, _ in split_top_level(expr)]
    intercept = True
    terms: list[str] = []
    for sign, p in pieces:
        if p == "":
            continue
        if p in ("0", "-1") or (sign == "-" and p == "1"):
            intercept = False
        elif p == "1":
            intercept = True
        elif sign == "-":
            raise FormulaError(f"cannot remove term {p!r} in a '||' random-effects term")
        else:
            terms.append(p)
    out = ["1"] if intercept else []
    out.extend(f"0 + {t}" for t in terms)
    return out


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4-style formula.

    Parameters
    ----------
    formula : str
        ``"response ~ fixed terms + (expr | group) + ..."``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With the position of the problem marked, for a missing ``~``, unbalanced
        brackets, an empty term, or a malformed random-effects term.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    return _parse(formula)


@lru_cache(maxsize=512)
def _parse(formula: str) -> ParsedFormula:
    """:func:`parse_formula` of a string (a pure function of it: cached, the result is
    immutable)."""
    text = _strip_comments(formula).strip()
    if not text:
        raise FormulaError("the formula is empty: write it as 'response ~ predictors'")
    _check_brackets(text)
    tilde = _find_top_level(text, "~")
    if tilde < 0:
        raise FormulaError("formula has no '~' separating response and predictors", text, 0)
    second = _mask(text).find("~", tilde + 1)
    if second >= 0:
        raise FormulaError(
            "formula has more than one '~': write one 'response ~ predictors'", text, second
        )
    response = text[:tilde].strip()
    rhs_start = tilde + 1
    rhs = text[rhs_start:]
    if not response:
        raise FormulaError("formula has no response on the left of '~'", text, 0)
    if not rhs.strip():
        raise FormulaError("formula has nothing on the right of '~'", text, tilde)

    fixed_terms: list[str] = []
    random_terms: list[RandomTerm] = []
    offsets: list[str] = []
    intercept: bool | None = None
    for sign, piece, start in split_top_level(rhs):
        p = piece.strip()
        pos = rhs_start + start + (len(piece) - len(piece.lstrip()))
        if not p:
            raise FormulaError("empty term in formula", text, pos)
        inner = _strip_outer_parens(p)
        while inner is not None and _find_top_level(inner, "|") < 0:
            deeper = _strip_outer_parens(inner)  # ((1 | g)) is (1 | g), as lme4's findbars
            if deeper is None:
                break
            inner = deeper
        bar = _find_top_level(inner, "|") if inner is not None else -1
        if inner is not None and bar >= 0:
            if sign == "-":
                raise FormulaError("a random-effects term cannot be removed with '-'", text, pos)
            double = inner.startswith("||", bar)
            expr = inner[:bar].strip()
            group_text = inner[bar + (2 if double else 1) :]
            if not expr:
                raise FormulaError("random-effects term has nothing before '|'", text, pos)
            exprs = _expand_double_bar(expr) if double else [expr]
            for factors in _group_factors(group_text, text, pos + bar + 1):
                for e in exprs:
                    if has_dot(e):
                        raise FormulaError(
                            "'.' (all other columns) may be used in the fixed-effects part only",
                            text,
                            pos,
                        )
                    random_terms.append(
                        RandomTerm(
                            expr=_expand_powers(_translate_r(e)),
                            factors=factors,
                            text=f"({e} | {':'.join(quote_name(f) for f in factors)})",
                        )
                    )
            continue
        if _find_top_level(p, "|") >= 0:
            raise FormulaError(
                "'|' outside a bracketed random-effects term: write (expr | group)", text, pos
            )
        if p in ("0", "-1") or (sign == "-" and p == "1"):
            intercept = False
            continue
        if p == "1":
            intercept = True if sign == "+" else False
            continue
        if p.startswith("offset(") and p.endswith(")"):
            offsets.append(_translate_r(p[len("offset(") : -1]))
            continue
        fixed_terms.append(("- " if sign == "-" else "") + _expand_powers(_translate_r(p)))

    plus_terms = [t for t in fixed_terms if not t.startswith("- ")]
    minus_terms = [t for t in fixed_terms if t.startswith("- ")]
    fixed = " + ".join(["1" if intercept is not False else "0", *plus_terms])
    if minus_terms:
        fixed = fixed + " " + " ".join(minus_terms)
    return ParsedFormula(
        text=text,
        response=_translate_r(response),
        fixed=fixed,
        random=tuple(random_terms),
        offsets=tuple(offsets),
    )


_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


@lru_cache(maxsize=256)
def has_dot(text: str) -> bool:
    """Whether a formula fragment uses R's ``.`` (every other column)."""
    return _DOT.search(_mask(text)) is not None


def expand_dot(parsed: ParsedFormula, columns: Iterable[str]) -> ParsedFormula:
    """R's ``.`` in the fixed part: every column of the data except the variables of the
    response (``y`` in ``y ~ .``; ``s`` and ``f`` in ``cbind(s, f) ~ .``), in the data's order.

    lme4 does what R's ``model.frame`` does: the grouping factors are columns like any other,
    so ``y ~ . + (1 | g)`` has ``g`` among its fixed effects too.
    """
    if not has_dot(parsed.fixed):
        return parsed
    cols = [str(c) for c in columns]
    masked_resp = _mask(parsed.response)
    tokens = {m.group(0) for m in re.finditer(r"[^\W\d][\w.]*", masked_resp)}
    tokens |= {m.group(1) for m in re.finditer(r"`([^`]*)`", parsed.response)}
    others = [quote_name(c) for c in cols if c not in tokens]
    fill = "(" + " + ".join(others) + ")" if others else "1"
    pieces = []
    for sign, piece, _ in split_top_level(parsed.fixed):
        if piece.strip() == "." and sign == "+":  # a term of its own: the columns as terms
            pieces.append((sign, " + ".join(others) if others else "1"))
            continue
        masked = _mask(piece)
        out, last = [], 0
        for m in _DOT.finditer(masked):
            out.append(piece[last : m.start()])
            out.append(fill)
            last = m.end()
        out.append(piece[last:])
        pieces.append((sign, "".join(out).strip()))
    fixed = " ".join(p if i == 0 else f"{sg} {p}" for i, (sg, p) in enumerate(pieces))
    return replace(parsed, fixed=_expand_powers(fixed))
