"""Compile-time expressions follow Python's precedence and arithmetic: random expression
trees are printed once and evaluated by resdsl and by Python."""
import pytest
from hypothesis import given, settings, strategies as st

import resdsl
from resdsl.diagnostics import ResdslError
from resdsl.elaborate import parse_value

PROGRAM = resdsl.load("network n() {\n input x: [N, 3]\n relu\n}\n")

ints = st.integers(-20, 20).map(str)


def _num(children):
    nums, bools = children
    return st.one_of(
        st.tuples(nums, st.sampled_from(["+", "-", "*", "//", "%"]), nums).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        nums.map(lambda c: f"({c})"), nums.map(lambda c: f"-({c})"),
        st.tuples(nums, bools, nums).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"))


# typed trees: arithmetic on ints, logic on bools (.res does no arithmetic on bools)
bools_base = st.sampled_from(["true", "false"])
nums = st.recursive(ints, lambda c: _num((c, bools_base)), max_leaves=6)
bools = st.recursive(
    st.one_of(bools_base, st.tuples(nums, st.sampled_from(["<", "<=", "==", "!=", ">", ">="]), nums)
              .map(lambda t: f"{t[0]} {t[1]} {t[2]}")),
    lambda c: st.one_of(st.tuples(c, st.sampled_from(["and", "or"]), c).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                        c.map(lambda x: f"not ({x})")),
    max_leaves=4)
exprs = st.one_of(nums, bools, st.tuples(nums, bools, nums).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"))


def python_value(text):
    py = text.replace("true", "True").replace("false", "False")
    return eval(py, {"__builtins__": {}})  # noqa: S307 - the reference, on generated arithmetic only


@settings(max_examples=25, deadline=None)
@given(exprs)
def test_random_expressions_match_python(text):
    try:
        want = python_value(text)
    except ZeroDivisionError:
        with pytest.raises(ResdslError, match="division by zero"):
            parse_value(text, PROGRAM, "expr")
        return
    got = parse_value(text, PROGRAM, "expr")
    assert got == want and type(got) is type(want), text


@pytest.mark.parametrize("text,want", [
    ("2 ** 3 ** 2", 512), ("-2 ** 2", -4), ("7 // 2 * 2", 6), ("1 + 2 * 3 - 4 / 2", 5.0),
    ("[1, 2, 3][1:]", [2, 3]), ("len([1, 2] * 3)", 6), ("max([3, 9, 2])", 9), ("min(4, 2, 8)", 2),
    ("sum(range(5))", 10), ("1 if 2 > 3 else 4 if true else 5", 4), ("\"a\" + 'b'", "ab"),
    ("round(sqrt(2) * 100)", 141), ("not 1 == 2 and 3 >= 3", True), ("-not 0", None),
])
def test_known_values(text, want):
    if want is None:  # not an expression in Python either
        with pytest.raises(ResdslError):
            parse_value(text, PROGRAM, "expr")
        return
    got = parse_value(text, PROGRAM, "expr")
    assert got == want and type(got) is type(want)
