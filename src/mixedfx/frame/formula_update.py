"""R's ``update.formula``: a new formula written relative to an old one.

In the new formula a ``.`` stands for the old formula's side: ``. ~ . + x2`` adds ``x2`` to
the right-hand side, ``. ~ . - Days`` removes the term ``Days``, ``. ~ . - (1 | g)`` removes a
random-effects term, ``log(.) ~ .`` changes the response. A formula without ``~`` changes the
right-hand side: ``"... + x2"`` and ``"+ x2"`` mean ``. ~ . + x2``.
"""

from __future__ import annotations

import re

from ..errors import FormulaError
from ..frame.formula import parse_formula, split_top_level

__all__ = ["update_formula"]

_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _random_texts(piece: str) -> list[str]:
    """The random-effects terms a piece expands to, normalized (``(x || g)`` -> two)."""
    return [_norm(t.text) for t in parse_formula(f".y ~ 1 + {piece}").random]


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with its ``.`` filled in from ``old`` (R's ``update.formula``)."""
    text = new.strip()
    if "~" in text:
        lhs, rhs = (s.strip() for s in text.split("~", 1))
    else:
        lhs, rhs = ".", text
    if rhs.startswith("..."):
        rhs = "." + rhs[3:]
    if rhs[:1] in ("+", "-"):
        rhs = ". " + rhs
    if not rhs:
        raise FormulaError(f"the new formula {new!r} has no right-hand side")
    op = parse_formula(old)
    response = _DOT.sub(op.response, lhs) if lhs else op.response
    old_items: list[tuple[str, str]] = []
    for sign, piece, _ in split_top_level(op.fixed):
        if piece.strip() and not (sign == "+" and piece.strip() == "1"):  # implicit intercept
            old_items.append((sign, piece.strip()))
    old_items += [("+", f"offset({o})") for o in op.offsets]
    old_items += [("+", t.text) for t in op.random]
    items: list[tuple[str, str]] = []
    for sign, piece, _ in split_top_level(rhs):
        p = piece.strip()
        if not p:
            continue
        if p == ".":
            items.extend(old_items if sign == "+" else [])
            continue
        if sign == "+":
            items.append(("+", p))
            continue
        # removal
        if "|" in p:
            gone = set(_random_texts(p))
            keep = [(s, q) for s, q in items if not ("|" in q and _norm(q) in gone)]
            if len(keep) == len(items):
                raise FormulaError(f"cannot remove {p}: it is not a term of {old!r}")
            items = keep
        elif p in ("1", "0"):
            items = [(s, q) for s, q in items if q not in ("1", "0")] + [("+", "0")]
        else:
            keep = [(s, q) for s, q in items if _norm(q) != _norm(p)]
            if len(keep) == len(items):
                raise FormulaError(f"cannot remove {p}: it is not a term of {old!r}")
            items = keep
    fixed = [("-" if s == "-" else "+", q) for s, q in items if "|" not in q]
    rand = [q for _, q in items if "|" in q]
    parts: list[str] = []
    for s, q in fixed:
        parts.append(q if not parts and s == "+" else f"{s} {q}")
    if not fixed:
        parts.append("1")
    out = f"{response} ~ {' '.join(parts)}"
    if rand:
        out += " + " + " + ".join(rand)
    return out
