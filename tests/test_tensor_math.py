"""Elementwise math on tensors (`//`, `%`, `**`, comparisons, `where`, minimum/maximum, sin, cos,
floor, ceil, arange over a run-time axis size) against torch, the standalone file and
onnxruntime; the bool-tensor dtype rule; compile-time math functions against Python's math;
the sinusoidal position encoding sample of docs/language.md at two sequence lengths; and a
bounded hypothesis test that random expressions `check` accepts run alike on every target."""
import math
import re

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import ROOT, check_error, import_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl


def _targets(src, tmp_path, name):
    """(module tree, standalone file's module, onnxruntime session) of the network in `src`."""
    gm = resdsl.build(src, seed=0).eval()
    path = tmp_path / f"{name}_gen.py"
    path.write_text(resdsl.to_python(src))
    fm = import_file(path, f"{name}_gen").__dict__[name](seed=0).eval()
    sess = ort.InferenceSession(resdsl.to_onnx(src, seed=0).SerializeToString(), providers=["CPUExecutionProvider"])
    return gm, fm, sess


def _same(src, name, tmp_path, inputs, want=None, tol=1e-4):
    """Every target gives `want` (or the module tree's outputs) for each set of inputs."""
    gm, fm, sess = _targets(src, tmp_path, name)
    names = [i.name for i in sess.get_inputs()]
    for ins in inputs:
        with torch.no_grad():
            got = gm(*ins)
            filed = fm(*ins)
        got = got if isinstance(got, tuple) else (got,)
        filed = filed if isinstance(filed, tuple) else (filed,)
        onnx = sess.run(None, {k: v.numpy() for k, v in zip(names, ins)})
        ref = want(*ins) if want is not None else got
        for r, g, f, o in zip(ref, got, filed, onnx):
            assert g.dtype == r.dtype and f.dtype == r.dtype and o.dtype == r.numpy().dtype
            torch.testing.assert_close(g, r, rtol=tol, atol=tol, equal_nan=True)
            torch.testing.assert_close(f, r, rtol=tol, atol=tol, equal_nan=True)
            torch.testing.assert_close(torch.from_numpy(o), r, rtol=tol, atol=tol, equal_nan=True)


MATH = """
network mathnet {
    input x: [N, L, D=8], y: [N, L, D=8]
    a = x // 0.3 + x % 0.7 + (-2.5) % y + y // x + 1.5 // x + x % y
    b = abs(x) ** y + 2 ** y + x ** 2 + pow(abs(y), 0.5) + pow(3, x)
    c = minimum(x, y) + maximum(x, y) + min(x, 0.1) + max(0.2, y) + (x -> min(0.3)) + (x -> max(y))
    m = x > y
    p = arange(x.L) -> reshape([x.L, 1])
    output where(m, a, 0.0), b, c, where(0.5 < x, 1.0, y), where(x <= y, -1.0, 2.0), x >= 0, x != y, x == x,
           x < y, p * arange(8) ** 2, ceil(x) - cos(y) + sin(x) - floor(y)
}
"""


def _math_ref(x, y):
    a = x // 0.3 + x % 0.7 + (-2.5) % y + y // x + 1.5 // x + x % y
    b = x.abs() ** y + 2 ** y + x ** 2 + y.abs() ** 0.5 + torch.pow(3, x)
    c = torch.minimum(x, y) + torch.maximum(x, y) + x.clamp(max=0.1) + y.clamp(min=0.2) + x.clamp(max=0.3) \
        + torch.maximum(x, y)
    p = torch.arange(x.shape[1], dtype=torch.float32).reshape(-1, 1)
    return (torch.where(x > y, a, 0.0), b, c, torch.where(x > 0.5, 1.0, y), torch.where(x <= y, -1.0, 2.0),
            x >= 0, x != y, x == x, x < y, p * torch.arange(8.0) ** 2,
            torch.ceil(x) - torch.cos(y) + torch.sin(x) - torch.floor(y))


def test_every_op_matches_torch_on_every_target_at_two_lengths(tmp_path):
    g = torch.Generator().manual_seed(0)
    inputs = [(torch.randn(2, L, 8, generator=g), torch.randn(2, L, 8, generator=g)) for L in (3, 7)]
    _same(MATH, "mathnet", tmp_path, inputs, _math_ref)


def test_the_file_reads_as_torch():
    code = resdsl.to_python(MATH)
    for text in ("x // 0.3", "x % 0.7", "x**2.0", "torch.pow(2.0, y)", "torch.minimum(x, y)",
                 "torch.clamp(x, max=0.1)", "x > y", "x != y", "torch.where(", "torch.sin(x)",
                 "dtype=torch.float32, device="):
        assert text in code, text
    assert re.search(r"= \w+\.size\(1\)", code)  # arange reads the length at run time


def test_comparisons_make_bool_tensors_and_numbers_flip_sides():
    g = resdsl.graph("network t {\n    input x: [N, D=4]\n    output x > 1, 1 > x, x == 2\n}\n")
    assert [v.dtype for v in g.outputs] == ["bool"] * 3
    assert [(n.op, n.attrs["value"]) for n in g.nodes] == [("gt", 1.0), ("lt", 1.0), ("eq", 2.0)]
    from resdsl.ir.printer import print_graph
    assert print_graph(g).count(": [N, 4] bool") == 3  # `resdsl ir` shows the dtype


@pytest.mark.parametrize("stmt,msg", [
    ("(x > 0) + x", "`add` takes float tensors; input 0 [N, 4] is a bool tensor"),
    ("x * (x > 0)", "`mul` takes float tensors; input 1"),
    ("relu(x > 0)", "`relu` takes float tensors"),
    ("(x > 0) * 2", "`scale` takes float tensors"),
    ("where(x, x, 0.0)", "the mask of `where` must be a bool tensor, got a float tensor"),
    ("where(x > 0, x > 1, 0.0)", "`where` takes float tensors; input 1"),
    ("where(true, x, 0.0)", "the mask of `where` must be a bool tensor, got bool"),
    ("where(x > 0, x)", "`where` takes three arguments"),
    ("minimum(x, 1, 2)", "takes two arguments"),
    ("x // 0", "by zero"),
    ("x ** \"a\"", "between a Tensor and a str"),
    ("x < \"a\"", "between a Tensor and a str"),
])
def test_dtype_and_argument_errors(stmt, msg):
    e = check_error(f"network t {{\n    input x: [N, D=4]\n    {stmt}\n}}\n")
    assert msg in e.message, e.message
    assert e.span.line == 3
    if "bool tensor" in msg and "float tensors" in msg:
        assert "where(mask, 1.0, 0.0)" in e.help


def test_a_mask_as_floats_through_where(tmp_path):
    src = "network t {\n    input x: [N, D=4]\n    where(x > 0, 1.0, 0.0) + x\n}\n"
    x = torch.randn(3, 4)
    _same(src, "t", tmp_path, [(x,)], lambda x: ((x > 0).float() + x,))


def test_arange_reads_a_size_some_tensor_has():
    e = check_error("network t {\n    input x: [N, L, D=4]\n    let n = x.L * 2\n    arange(n)\n}\n")
    assert "no tensor here has an axis of the symbolic size 2*L" in e.message or "symbolic size" in e.message
    e = check_error('network t {\n    input x: [N, D=4]\n    arange("a")\n}\n')
    assert "takes an int or an axis size" in e.message
    g = resdsl.graph("network t {\n    input x: [N, L, D=4]\n    y = linear(4) as fc\n    arange(y.L)\n}\n")
    assert [a.size for a in g.outputs[0].shape] == [g.inputs[0].shape[1].size]


def test_operators_after_a_chain_step_say_how_to_parenthesise():
    e = check_error("network t {\n    input x: [N, D=4]\n    x -> reshape([-1, 2, 2]) * 3\n}\n")
    assert "does not apply to a Block" in e.message
    assert "`->`" in e.help and "(x -> reshape([4, 8])) * 3" in e.help
    g = resdsl.graph("network t {\n    input x: [N, D=4]\n    (x -> reshape([-1, 2, 2])) * 3\n}\n")
    assert [n.op for n in g.nodes] == ["reshape", "scale"]


# ------------------------------------------------------------------ compile-time math
FNS = {
    "sin(0.7)": math.sin(0.7), "cos(0.7)": math.cos(0.7), "exp(1.5)": math.exp(1.5), "log(7)": math.log(7),
    "sqrt(2)": math.sqrt(2), "floor(-2.5)": math.floor(-2.5), "ceil(2.1)": math.ceil(2.1),
    "min(3, 1.5)": 1.5, "max([2, 9, 4])": 9, "abs(-3)": 3, "pi": math.pi, "pow(2, 10)": 1024,
    "sin(pi / 6) * 2": math.sin(math.pi / 6) * 2, "rate(64, 10)": 10000 ** (-10 / 64),
    "floor(log(1000) / log(10) + 0.5)": math.floor(math.log(1000) / math.log(10) + 0.5),
}


@pytest.mark.parametrize("expr", sorted(FNS))
def test_compile_time_math_is_pythons(expr):
    src = ("fn rate(d, i) = exp(-i * log(10000.0) / d)\n"
           f"network t {{\n    input x: [N, D=4]\n    let v = {expr}\n    x * v\n}}\n")
    v = resdsl.graph(src).nodes[0].attrs["factor"]
    assert v == pytest.approx(FNS[expr], rel=1e-12)


def test_compile_time_math_errors():
    for expr, msg in [("log(0)", "log()"), ("sqrt(-1)", "sqrt()"), ("exp(1000)", "exp()"), ('sin("a")', "sin()")]:
        e = check_error(f"network t {{\n    input x: [N, D=4]\n    let v = {expr}\n    x * v\n}}\n")
        assert e.kind == "type" and msg in e.message, (expr, e.message)


# ------------------------------------------------------------------ the sinusoidal encoding sample
def _doc_sample():
    text = (ROOT / "docs" / "language.md").read_text()
    return next(m.group(1) for m in re.finditer(r"```res\n(.*?)```", text, re.S)
                if "network sinusoidal" in m.group(1))


def _sinusoidal_ref(x):
    """The transformer's encoding as written in Vaswani et al. (2017) / the PyTorch tutorial."""
    L, d = x.shape[1], x.shape[2]
    pe = torch.zeros(L, d)
    position = torch.arange(L, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return (x + pe,)


def test_sinusoidal_sample_matches_torch_and_onnx_at_two_lengths(tmp_path):
    src = _doc_sample()
    g = resdsl.graph(src)
    assert not isinstance(g.inputs[0].shape[1].size, int)  # the sequence axis stays symbolic
    gen = torch.Generator().manual_seed(1)
    inputs = [(torch.randn(2, L, 16, generator=gen),) for L in (5, 23)]
    _same(src, "sinusoidal", tmp_path, inputs, _sinusoidal_ref, tol=2e-5)
    model = resdsl.to_onnx(src, seed=0)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_param == "L"  # exported with a dynamic sequence axis
    assert any(n.op_type == "Range" for n in model.graph.node)


# ------------------------------------------------------------------ random expressions
_UNARY = ["sin({})", "cos({})", "floor({})", "ceil({})", "abs({})", "exp(min({}, 3.0))",
          "log(abs({}) + 1)", "sqrt(abs({}))", "-{}", "({} + x -> max(-1.0))"]
_BINARY = ["{} + {}", "{} - {}", "{} * {}", "minimum({}, {})", "maximum({}, {})", "{} // (abs({}) + 0.5)",
           "{} % (abs({}) + 0.5)", "abs({}) ** min({}, 2.0)", "where({0} + x > {1}, {0}, {1})",
           "where({0} <= {1} + y, {1} * 0.5, 1.0)", "where(b != {1} * 2, 2.0, {0})"]
_LEAVES = ["x", "y", "b", "1.5", "(x -> arange(dim=2))"]


@st.composite
def _expr(draw, depth=0):
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(_LEAVES))
    if draw(st.booleans()):
        return draw(st.sampled_from(_UNARY)).format(f"({draw(_expr(depth + 1))})")
    pattern = draw(st.sampled_from(_BINARY))
    a, b = f"({draw(_expr(depth + 1))})", f"({draw(_expr(depth + 1))})"
    return pattern.format(a, b)


def _random_src(expr):
    return ("network rnd {\n    input x: [N, L, D=4], y: [N, L, D=4], b: [D=4]\n"
            f"    x + ({expr})\n}}\n")


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_expr())
def test_random_expressions_check_accepts_run_alike_everywhere(tmp_path_factory, expr):
    src = _random_src(expr)
    try:
        resdsl.graph(src)
    except resdsl.ResdslError as e:  # every generated expression is one check accepts
        raise AssertionError(f"{expr}: {e}") from None
    tmp = tmp_path_factory.mktemp("r")
    gen = torch.Generator().manual_seed(len(expr))
    inputs = [(torch.randn(2, L, 4, generator=gen), torch.randn(2, L, 4, generator=gen),
               torch.randn(4, generator=gen)) for L in (2, 5)]
    _same(src, "rnd", tmp, inputs, tol=1e-4)


def test_both_parsers_agree_on_the_math_programs():
    from resdsl import fuzz
    src = _random_src("where((x) > (y), minimum((x) // (abs(b) + 0.5), 2 ** (y)), (x) % (abs(y) + 0.5))")
    for text in (MATH, src, _doc_sample()):
        assert fuzz.parser_differential(text, "t.res") == "same"


def test_numpy_floats_stay_float32_through_onnx():
    src = "network t {\n    input x: [N, D=4]\n    output where(x > 0, x, 0.5), x > 0\n}\n"
    sess = ort.InferenceSession(resdsl.to_onnx(src, seed=0).SerializeToString(), providers=["CPUExecutionProvider"])
    a, m = sess.run(None, {"x": np.ones((2, 4), np.float32)})
    assert a.dtype == np.float32 and m.dtype == np.bool_


def test_generated_files_are_ruff_clean(tmp_path):
    """The files the math lowers to pass the ruff check and format of tests/test_codegen_style.py."""
    import subprocess
    import sys
    for name, src in (("mathnet", MATH), ("sinusoidal", _doc_sample())):
        (tmp_path / f"{name}.py").write_text(resdsl.to_python(src))
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run(ruff + ["check", "--no-cache", "--isolated", "--select", "E,W,F,N,B", "--line-length",
                                   "100", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(ruff + ["format", "--no-cache", "--isolated", "--check", "--line-length", "100",
                                 str(tmp_path)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
