"""The calculator tool: arithmetic without eval, with limits."""

import pytest

from coa_jax.env.calculator import CalcError, CalculatorTool, evaluate, format_number


@pytest.mark.parametrize("expr, value", [
    ("2 * (3 + 4)", 14), ("7 / 2", 3.5), ("7 // 2", 3), ("-7 % 3", 2), ("2 ** 10", 1024), ("2^10", 1024),
    ("1,000 * 3", 3000), ("6 × 7", 42), ("9 ÷ 3", 3.0), ("-(-(3))", 3), (" 1.5e3 ", 1500.0), ("2 ** -1", 0.5),
    ("(" * 120 + "1" + ")" * 120, 1),  # parentheses add no AST depth
])
def test_evaluates_arithmetic(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr, why", [
    ("", "empty"), ("__import__('os').system('true')", "unsupported"), ("x + 1", "unsupported"),
    ("(1).__class__", "unsupported"), ("[1, 2]", "unsupported"), ("1 < 2", "unsupported"), ("True + 1", "unsupported"),
    ("1 / 0", "division by zero"), ("5 % 0", "division by zero"), ("0 ** -1", "division by zero"),
    ("9 ** 9 ** 9", "exponent"), ("10 ** 200", "too large"), ("1e308 * 10", "finite|too large"),
    ("(-8) ** 0.5", "real number"), ("1 +", "not an arithmetic"), ("1" * 300, "longer than"),
    ("-" * 100 + "1", "nested too deeply"),
])
def test_refuses_bad_or_huge_expressions(expr, why):
    with pytest.raises(CalcError, match=why):
        evaluate(expr)


def test_number_formatting():
    assert format_number(4.0) == "4"
    assert format_number(1 / 3) == "0.333333333333"
    assert format_number(12) == "12"


def test_tool_renders_results_and_errors():
    tool = CalculatorTool()
    ok, bad = tool.call(["6 * 7", "1 / 0"])
    assert ok.ok and ok.text == "\n\n<calc_result> 42 </calc_result>\n\n"
    assert not bad.ok and bad.error == "division by zero"
    assert bad.text == "\n\n<calc_result> Error: division by zero. </calc_result>\n\n"
    assert tool.limit_result().text == "\n\n<calc_result> Reach the limit of calculation times. </calc_result>\n\n"
    assert not tool.simulated
