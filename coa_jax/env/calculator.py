"""A safe calculator tool: `<begin_calc> 2 * (3 + 4) </end_calc>` -> `<calc_result> 14 </calc_result>`.

Expressions are parsed with `ast` and only numbers, + - * / // % ** and parentheses are evaluated
(never `eval`). Size, nesting depth, exponents and result magnitude are bounded so a hostile
expression cannot exhaust CPU or memory.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any, Sequence

from coa_jax.env.observation import ObservationFormat, TokenCounter
from coa_jax.env.registry import Tool, ToolResult, check_options, format_from_options
from coa_jax.env.tags import CALC_SPEC, ToolSpec

MAX_CHARS = 256
MAX_DEPTH = 32
MAX_EXPONENT = 1024
MAX_ABS = 10.0**100

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


class CalcError(ValueError):
    """An expression the calculator refuses or cannot evaluate."""


def _check(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise CalcError("result is not a finite number")
    if abs(value) > MAX_ABS:
        raise CalcError("result is too large")
    return value


def _eval(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise CalcError("expression is nested too deeply")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise CalcError(f"exponent {right} is larger than {MAX_EXPONENT}")
            if left == 0 and right < 0:
                raise CalcError("division by zero")
            # |left|**right is bounded before computing it (big ints would otherwise be huge)
            if abs(left) > 1 and right > 0 and right * math.log10(abs(left)) > math.log10(MAX_ABS):
                raise CalcError("result is too large")
        elif isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalcError("division by zero")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex):
            raise CalcError("result is not a real number")
        return _check(result)
    raise CalcError(f"unsupported syntax: {type(node).__name__}")


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression.

    Accepts numbers, `+ - * / // % **`, `^` (as power), `×`/`÷`, parentheses and `1,000`-style
    thousands separators.

    Raises:
      CalcError: empty, too long, not arithmetic, division by zero, or out of bounds.
    """
    if not isinstance(expression, str):
        raise CalcError(f"expression must be a string, got {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise CalcError("empty expression")
    if len(text) > MAX_CHARS:
        raise CalcError(f"expression is longer than {MAX_CHARS} characters")
    text = _THOUSANDS.sub("", text).replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalcError("not an arithmetic expression") from None
    try:
        return _eval(tree.body, 0)
    except (OverflowError, RecursionError):
        raise CalcError("result is too large") from None


def format_number(value: int | float) -> str:
    """Integers as is; floats with 12 significant digits, integral floats without `.0`."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".12g")
    return str(value)


class CalculatorTool(Tool):
    """The calculator as a tool; a bad expression is answered with `Error: <why>.`, ok=False."""

    simulated = False

    def __init__(self, *, fmt: ObservationFormat | None = None, spec: ToolSpec = CALC_SPEC):
        self.spec = spec
        self.fmt = fmt or ObservationFormat.for_spec(spec, failure_text="Calculation failed.",
                                                     limit_text="Reach the limit of calculation times.")

    def call(self, queries: Sequence[str]) -> list[ToolResult]:
        results = []
        for q in queries:
            try:
                results.append(ToolResult(self.fmt.text(format_number(evaluate(q))), ok=True))
            except CalcError as e:
                results.append(ToolResult(self.fmt.text(f"Error: {e}."), ok=False, error=str(e)))
        return results

    async def acall(self, queries: Sequence[str]) -> list[ToolResult]:
        return self.call(queries)  # microseconds of CPU: no thread hop


def tool_from_options(spec: ToolSpec, options: dict[str, Any], tokens: TokenCounter) -> CalculatorTool:
    """The "calculator" backend (format keys only)."""
    fmt = format_from_options(spec, options, tokens, failure_text="Calculation failed.",
                              limit_text="Reach the limit of calculation times.")
    check_options("calculator tool", options, ())
    return CalculatorTool(fmt=fmt, spec=spec)
