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

__all__ = ["evaluate_arithmetic", "whole_number_sum"]

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
}


def evaluate_arithmetic(
    text: str, column: Callable[[str], np.ndarray | None], *, silence: bool = True
) -> np.ndarray | float | None:
    """The value of ``text`` if it is arithmetic of columns and numbers, else None.

    Parameters
    ----------
    text : str
        An expression such as ``"size - incidence"``.
    column : callable
        ``name -> float array`` of a numeric column, or None when there is no such numeric
        column (the expression is then left to formulaic, which reports the problem).
    silence : bool, default True
        Each operation under ``np.errstate(divide="ignore", invalid="ignore")``; False for
        an expression known to make neither (:func:`whole_number_sum`): the same operations,
        without the context's cost.
    """
    tree = _parse(text.strip())
    return None if tree is None else _eval(tree.body, column, silence)


def whole_number_sum(text: str, integer_column: Callable[[str], bool]) -> bool:
    """Whether ``text`` is a sum of integer columns and whole numbers (``+``, ``-``, unary
    signs and brackets of column names for which ``integer_column`` is true and of whole
    constants below 2**53 in size).

    Its value by :func:`evaluate_arithmetic` is then a whole number in every row, finite, and
    made without an invalid operation or a division (so without the warnings ``np.errstate``
    silences there): the floats of integers are whole, and a float sum of whole floats is
    whole (exact below 2**53, and every float above is whole) and stays far below overflow.
    """
    names = _sum_names(text.strip())
    return names is not None and all(integer_column(name) for name in names)


@functools.lru_cache(maxsize=256)
def _sum_names(text: str) -> tuple[str, ...] | None:
    """The column names of ``text`` when it is a sum of names and whole constants below
    2**53 (see :func:`whole_number_sum`), else None; worked out once per text."""
    tree = _parse(text)
    names: list[str] = []
    return tuple(names) if tree is not None and _whole_sum(tree.body, names) else None


def _whole_sum(node: ast.AST, names: list[str]) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        return _whole_sum(node.left, names) and _whole_sum(node.right, names)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _whole_sum(node.operand, names)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = node.value
        return abs(value) < 2.0**53 and float(value).is_integer()
    if isinstance(node, ast.Name):
        names.append(node.id)
        return True
    return False


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> ast.Expression | None:
    """The expression's syntax tree (read, never changed), parsed once per text; None when
    it is not an expression."""
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError:
        return None


def _eval(node: ast.AST, column: Callable[[str], np.ndarray | None], silence: bool) -> Any:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _eval(node.left, column, silence)
        right = _eval(node.right, column, silence) if left is not None else None
        if left is None or right is None:
            return None
        if not silence:
            return _BINARY[type(node.op)](left, right)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _eval(node.operand, column, silence)
        if v is None:
            return None
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return column(node.id)
    return None
