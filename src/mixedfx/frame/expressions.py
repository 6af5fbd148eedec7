"""Arithmetic of columns evaluated directly: ``size - incidence``, ``2 * x + 1``.

A response part like ``cbind(incidence, size - incidence)`` needs a few column operations;
formulaic evaluates them too, at a fixed cost of a millisecond or two (a model specification
is built), which is most of a small GLMM's fit. :func:`evaluate_arithmetic` handles the
expressions made of column names, numbers, ``+ - * /``, unary signs and brackets with numpy,
and returns None for anything else (functions, comparisons, ``**``), which the caller then
gives to formulaic.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["evaluate_arithmetic"]

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
}


def evaluate_arithmetic(
    text: str, column: Callable[[str], np.ndarray | None]
) -> np.ndarray | float | None:
    """The value of ``text`` if it is arithmetic of columns and numbers, else None.

    Parameters
    ----------
    text : str
        An expression such as ``"size - incidence"``.
    column : callable
        ``name -> float array`` of a numeric column, or None when there is no such numeric
        column (the expression is then left to formulaic, which reports the problem).
    """
    tree = _parse(text.strip())
    return None if tree is None else _eval(tree.body, column)


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> ast.Expression | None:
    """The expression's syntax tree (read, never changed), parsed once per text; None when
    it is not an expression."""
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError:
        return None


def _eval(node: ast.AST, column: Callable[[str], np.ndarray | None]) -> Any:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _eval(node.left, column)
        right = _eval(node.right, column) if left is not None else None
        if left is None or right is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _eval(node.operand, column)
        if v is None:
            return None
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return column(node.id)
    return None
