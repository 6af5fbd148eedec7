"""R's ``update`` for fitted models, with ``update.formula``'s shorthand.

In the new formula a ``.`` stands for the old formula's side: ``. ~ . + x2`` adds ``x2`` to
the right-hand side, ``. ~ . - Days`` removes the term ``Days``, ``. ~ . - (1 | g)`` removes a
random-effects term, ``log(.) ~ .`` changes the response. A formula without ``~`` changes the
right-hand side: ``"... + x2"`` and ``"+ x2"`` mean ``. ~ . + x2``.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FormulaError, ModelError
from .formula import parse_formula, split_top_level

__all__ = ["update", "update_formula"]

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


def update(model: Any, formula: str | None = None, data: Any = None, **kwargs: Any) -> Any:
    """Refit ``model`` with a new formula (R's shorthand, see :func:`update_formula`), new
    data, or new arguments; returns a new fitted model of the same kind."""
    from .glmm import GeneralizedLinearMixedModel, glmer
    from .lmm import lmer

    model._require_fit()
    new_formula = update_formula(model.formula, formula) if formula else model.formula
    data = data if data is not None else getattr(model, "data", None)
    if data is None:
        raise ModelError("this model does not hold its data: pass data= to update")
    call = dict(getattr(model, "_call", {}))
    unknown = set(kwargs) - set(call) - {"start", "check_conv"}
    if unknown:
        raise ModelError(f"update got unknown argument(s): {', '.join(sorted(unknown))}")
    call.update(kwargs)
    parse_formula(new_formula)
    if isinstance(model, GeneralizedLinearMixedModel):
        return glmer(new_formula, data, **call)
    return lmer(new_formula, data, **call)
