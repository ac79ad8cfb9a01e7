"""Issue 11 language features (round 2), checked against torch and timm references."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import resdsl
from resdsl.diagnostics import ResdslError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def err(src, **kw):
    with pytest.raises(ResdslError) as e:
        resdsl.graph(src, **kw)
    return e.value


def outc(src, **kw):
    """Channels of the (only) output of the network in `src`."""
    return resdsl.graph(src, **kw).outputs[0].shape[1].size


# ---------------------------------------------------------------- fn and comprehensions
MAKE_DIV = """
fn make_divisible(v, divisor: int = 8, min_value: int = 0, round_limit: float = 0.9) =
    bump(v, max(min_value or divisor, int(v + divisor / 2) // divisor * divisor), divisor, round_limit)
fn bump(v, nv, divisor, limit) = nv + divisor if nv < limit * v else nv
network n(v: float = 10.0, d: int = 8) {
    input x: [N, 3, H, W]
    conv(make_divisible(v, d), 1)
}
"""


@pytest.mark.parametrize("v,d", [(10.0, 8), (3.0, 8), (37.5, 8), (96 * 0.25, 8), (100.0, 16), (8.0, 1),
                                 (27.0, 4), (500.7, 32)])
def test_fn_make_divisible_matches_timm(v, d):
    from timm.layers import make_divisible
    assert outc(MAKE_DIV, v=v, d=d) == make_divisible(v, d)


def test_fn_recursion_closure_and_keywords():
    src = """
    fn fact(n: int) = 1 if n <= 1 else n * fact(n - 1)
    block B(k: int) {
        let base = in.C
        fn widen(c, by = 2) = c * by + base - base + k - k
        conv(widen(base, by=fact(3)), 1)
    }
    network n { input x: [N, 4, H, W]; B(1) }
    """
    assert outc(src) == 24


def test_fn_recursion_is_bounded_and_errors_are_clear():
    e = err("fn f(n) = f(n + 1)\nnetwork n { input x: [N, 3, H, W]; conv(f(1), 1) }")
    assert e.kind == "limit" and "deeper than 64" in e.message
    e = err("fn f(a) = a\nnetwork n { input x: [N, 3, H, W]; conv(f(), 1) }")
    assert e.kind == "type" and "needs a value for `a`" in e.message
    e = err("fn f(a: int) = a\nnetwork n { input x: [N, 3, H, W]; conv(f(1.5), 1) }")
    assert e.kind == "type" and "must be int" in e.message
    e = err("fn f(a) = a\nnetwork n { input x: [N, 3, H, W]; y = f(x) }")
    assert e.kind == "type" and "compile-time function" in e.message
    e = err("fn relu(a) = a\nnetwork n { input x: [N, 3, H, W] }")
    assert e.kind == "name" and "primitive op" in e.message


def test_list_comprehensions():
    src = """
    network n(widths: list[int] = [8, 16, 24, 32]) {
        input x: [N, 3, H, W]
        let a = [w * 2 for w in widths if w > 8 if w != 24]              # [32, 64]
        let b = [i * 10 + j for i in range(3) for j in range(i)]        # [10, 20, 21]
        let c = [p + q for p, q in zip(widths, [1, 2, 3, 4])]            # [9, 18, 27, 36]
        let d = [i for i, w in enumerate(widths) if w >= 16]             # [1, 2, 3]
        let cfg = [[1, 16, 1], [6, 24, 2], [6, 32, 3]]
        let e = sum([cfg[j][2] for j in range(2)])                       # 3
        conv(sum(a) + sum(b) + sum(c) + sum(d) + e, 1)
    }
    """
    assert outc(src) == 96 + 51 + 90 + 6 + 3
    e = err("network n { input x: [N, 3, H, W]; let a = [i for i, j in [1, 2]] }")
    assert e.kind == "type" and "cannot unpack" in e.message


def test_for_statement_unpacks_pairs():
    src = """
    network n {
        input x: [N, 3, H, W]
        for c, k in zip([4, 6], [1, 3]) { conv(c, k, padding=k // 2) as "c{c}-{k}" }
    }
    """
    gm = resdsl.build(src, seed=0)
    assert list(gm.state_dict()) == ["c4-1.weight", "c4-1.bias", "c6-3.weight", "c6-3.bias"]


# ---------------------------------------------------------------- residual if
RES_IF = """
block IR(out: int, stride: int = 1, proj: bool = false) {
    residual if stride == 1 and (proj or in.C == out) {
        conv(out, 3, stride=stride, padding=1) as conv -> relu
    } shortcut if proj { conv(out, 1) as p } as down
}
network n(c: int = 8, s: int = 1, proj: bool = false) {
    input x: [N, 8, H=8, W=8]
    IR(c, s, proj) as b
}
"""


@pytest.mark.parametrize("c,s,proj", [(8, 1, False), (16, 1, False), (8, 2, False), (16, 1, True), (8, 2, True)])
def test_residual_if(c, s, proj):
    """Taken: relu(conv(x)) + skip (identity or the projection); not taken: relu(conv(x)), no shortcut params."""
    gm = resdsl.build(RES_IF, c=c, s=s, proj=proj, seed=0)
    sd = gm.state_dict()
    taken = s == 1 and (proj or c == 8)
    assert ("add" in [n.op for n in resdsl.graph(RES_IF, c=c, s=s, proj=proj).nodes]) == taken
    assert list(sd) == ["b.conv.weight", "b.conv.bias"] + (["b.down.p.weight", "b.down.p.bias"] if taken and proj
                                                           else [])
    x = torch.randn(2, 8, 8, 8)
    ref = torch.relu(torch.nn.functional.conv2d(x, sd["b.conv.weight"], sd["b.conv.bias"], stride=s, padding=1))
    if taken:
        ref = ref + (torch.nn.functional.conv2d(x, sd["b.down.p.weight"], sd["b.down.p.bias"]) if proj else x)
    torch.testing.assert_close(gm(x), ref)


# ---------------------------------------------------------------- quoted names
REGNET_LIKE = """
network q {
    input x: [N, 3, H=8, W=8]
    conv(4, 3, padding=1) as "stem.0"
    conv(4, 1) as "trunk_output.block1.block1-0.a"
    conv(4, 1) as "trunk_output.block1.block1-1.a"
    conv(2, 1) as "x y<z>&'é"
}
"""


def _ref_regnet_like():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
            blk = torch.nn.Module()
            for i in range(2):
                sub = torch.nn.Module()
                sub.a = torch.nn.Conv2d(4, 4, 1)
                blk.add_module(f"block1-{i}", sub)
            self.trunk_output = torch.nn.Module()
            self.trunk_output.block1 = blk
            self.add_module("x y<z>&'é", torch.nn.Conv2d(4, 2, 1))

        def forward(self, x):
            x = self.stem(x)
            for i in range(2):
                x = getattr(self.trunk_output.block1, f"block1-{i}").a(x)
            return getattr(self, "x y<z>&'é")(x)
    return M()


def test_quoted_names_load_strictly_in_build_and_standalone(tmp_path):
    ref = _ref_regnet_like()
    gm = resdsl.build(REGNET_LIKE, seed=0)
    gm.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(gm(x), ref(x))
    path = tmp_path / "q_mod.py"
    path.write_text(resdsl.to_python(REGNET_LIKE))
    spec = importlib.util.spec_from_file_location("q_mod", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.q()
    m.load_state_dict(ref.state_dict(), strict=True)
    torch.testing.assert_close(m(x), ref(x))


@pytest.mark.parametrize("name,why", [('"a\\"b"', '`"`'), ('"a..b"', "empty segment"), ("forward", "attribute"),
                                      ('"graph"', "attribute"), ('"a\\\\b"', "`\\`"), ('"a\\tb"', "control")])
def test_bad_names(name, why):
    e = err(f"network n {{ input x: [N, 3, H, W]; conv(4, 1) as {name} }}")
    assert e.kind == "name" and why in e.message


# ---------------------------------------------------------------- tensor arithmetic
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
    e = err(src)
    assert e.kind == "shape" and msg in e.message and e.label == shapes
    assert (e.span.line, e.span.column) == (3, 5)


def test_tensor_arithmetic_type_errors():
    head = "network b {\n    input x: [N, D=8]\n    "
    e = err(head + "x ** 2\n}")
    assert e.kind == "type" and "does not apply to tensors" in e.message
    e = err(head + 'x + "a"\n}')
    assert e.kind == "type" and "between a Tensor and a str" in e.message
    e = err(head + "x / 0\n}")
    assert e.kind == "value"
