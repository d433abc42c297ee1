"""Numbers in text: a float, or an arithmetic expression of numbers and pi (`2*pi/3`), for options and headers."""
from __future__ import annotations

import ast
import math
import operator

from .._errors import InputError

#: Longest text parse_number reads (an expression like `2*pi/3` is a few characters).
MAX_NUMBER_TEXT = 200


# ----------------------------------------------------------------------------------------------- numbers
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _eval_node(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id.lower() == "pi":
        return math.pi
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_node(node.left), _eval_node(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval_node(node.operand))
    raise ValueError("not a number")


def parse_positive_int(text: str, what: str) -> int:
    """A command-line count (bins, a stride): a whole number >= 1, else one error naming the option."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a positive integer, got {text!r}") from None
    if value < 1:
        raise InputError(f"{what}: expected a positive integer, got {text!r}")
    return value


def parse_number(text: str, what: str = "value") -> float:
    """A number, or an arithmetic expression of numbers and `pi` (`-pi`, `2*pi`, `pi/2`, `1e-3`)."""
    if len(text) > MAX_NUMBER_TEXT:  # the parser recurses once per operator: bound the depth
        raise InputError(f"{what}: {clip(text)} is too long for a number (at most {MAX_NUMBER_TEXT} characters)")
    try:
        value = _eval_node(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError, MemoryError):
        raise InputError(f"{what}: {clip(text)} is not a number (numbers and pi expressions like -pi, 2*pi)") \
            from None
    if not math.isfinite(value):
        raise InputError(f"{what}: {clip(text)} is not finite")
    return value


def clip(text: str, width: int = 40) -> str:
    """`text` quoted for a one-line message, shortened when long."""
    return repr(text) if len(text) <= width else repr(text[:width]) + f"... ({len(text)} characters)"
