"""Tensor arithmetic in expressions (`x * 2 + 1`, broadcasting on named axes) against torch
and onnxruntime, and its shape and type errors."""

import pytest
import torch
from conftest import check_error

import resdsl

ARITH = """
network ar {
    input x: [N, C=4, H=6, W=6], y: [N, C=4, H=6, W=6]
    a = x * 2 + 1
    b = 6 - relu(6 - a)                           # min(a, 6) with a relu: the old workaround, now direct
    c = -b / 3 + 1 / (y * y + 1) - x
    g = c -> mean(dim=[2, 3], keepdim=true)       # [N, C, 1, 1] broadcasts over H, W
    bias = param([4, 1, 1], init=normal(1.0)) as bias
    output c * g - bias, (x - y) / (y * y + 2) + (x -> sigmoid) * 0.5
}
"""


def _arith_ref(x, y, bias):
    a = x * 2 + 1
    b = 6 - torch.relu(6 - a)
    c = -b / 3 + 1 / (y * y + 1) - x
    g = c.mean((2, 3), keepdim=True)
    return c * g - bias, (x - y) / (y * y + 2) + torch.sigmoid(x) * 0.5


def test_tensor_arithmetic_matches_torch_and_onnxruntime():
    import onnxruntime as ort
    gm = resdsl.build(ARITH, seed=0)
    x, y = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    want = _arith_ref(x, y, gm.state_dict()["bias"])
    got = gm(x, y)
    for g_, w in zip(got, want):
        torch.testing.assert_close(g_, w)
    model = resdsl.to_onnx(ARITH, seed=0)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"x": x.numpy(), "y": y.numpy()})
    for o, w in zip(outs, want):
        torch.testing.assert_close(torch.from_numpy(o), w, rtol=1e-4, atol=1e-5)


def test_tensor_arithmetic_broadcasts_on_named_axes():
    g = resdsl.graph("""
    network b {
        input x: [N, L=5, D=8], p: [L=5, D=8], s: [N, L=5, D=1]
        x + p - s * x
    }""")
    assert [a.name for a in g.outputs[0].shape] == ["N", "L", "D"]
    assert [n.op for n in g.nodes] == ["add", "mul", "sub"]


@pytest.mark.parametrize("expr,msg,shapes", [
    ("x + y", "broadcast", "left: [N, L=5, D=8], right: [N, D=8, L=5]"),
    ("w - t", "lines up axis `D` with axis `E`", "left: [N, L=8, D=8], right: [N, D=8, E=8]"),
    ("x * z", "lines up axis `D` with axis `E`", "left: [N, L=5, D=8], right: [N, L=5, E=8]"),
    ("x / y", "broadcast", "left: [N, L=5, D=8], right: [N, D=8, L=5]"),
])
def test_tensor_arithmetic_shape_errors_show_both_shapes(expr, msg, shapes):
    src = f"""network b {{
    input x: [N, L=5, D=8], y: [N, D=8, L=5], t: [N, D=8, E=8], z: [N, L=5, E=8], w: [N, L=8, D=8]
    {expr}
}}"""
    e = check_error(src)
    assert e.kind == "shape" and msg in e.message and e.label == shapes
    assert (e.span.line, e.span.column) == (3, 5)


def test_tensor_arithmetic_type_errors():
    head = "network b {\n    input x: [N, D=8]\n    "
    e = check_error(head + "x ** \"a\"\n}")  # `**` on tensors is tensor_math's (tests/test_tensor_math.py)
    assert e.kind == "type" and "between a Tensor and a str" in e.message
    e = check_error(head + 'x + "a"\n}')
    assert e.kind == "type" and "between a Tensor and a str" in e.message
    e = check_error(head + "x / 0\n}")
    assert e.kind == "value"
