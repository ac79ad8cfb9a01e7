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
import helpers
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


# ---------------------------------------------------------------- smaller slips (issue 11, item 9)
SLIPS = """
block Cat(xs: list = []) { concat(xs) }
block Proj(c: int) { conv(c, 1, bias=false) as conv -> bn as bn }
block Res(c: int) {
    residual { conv(c, 3, padding=1) as conv1 } shortcut { Proj(c) } as proj
}
network n(form: int = 0) {
    input x: [N, C=4, H=6, W=6]
    parts = split([1, 3])
    let kids = []
    y = Cat(parts) if form == 0 else Cat(xs=parts)
    z = concat(y, x, kids)
    z -> Res(8) as r
}
"""


def test_positional_list_of_tensors_to_a_block_binds_like_the_keyword_form():
    a, b = resdsl.build(SLIPS, form=0, seed=0), resdsl.build(SLIPS, form=1, seed=0)
    x = torch.randn(2, 4, 6, 6)
    a.eval(), b.eval()
    torch.testing.assert_close(a(x), b(x))
    g = resdsl.graph(SLIPS)
    cats = [n for n in g.nodes if n.op == "concat"]
    assert [len(n.inputs) for n in cats] == [2, 2]  # Cat(parts) and concat(y, x, kids): kids adds nothing


def test_empty_list_of_tensors():
    e = err("network n { input x: [N, 4]; let kids = []; concat(kids) }")
    assert e.kind == "type" and "empty list of tensors" in e.message and "dim" not in e.message


def test_shortcut_with_one_block_takes_the_shortcut_name():
    gm = resdsl.build(SLIPS, seed=0)
    keys = [k for k in gm.state_dict() if k.startswith("r.proj")]
    assert keys[:2] == ["r.proj.conv.weight", "r.proj.bn.weight"]


def test_in_is_ambiguous_with_several_inputs():
    e = err("""block Two { input a, b; conv(in.C, 1) }
network n { input x: [N, 4, H, W]; Two(x, x) }""")
    assert e.kind == "name" and "ambiguous" in e.message and "a.C" in e.help
    assert (e.span.line, e.span.column) == (1, 30)


def test_network_and_block_without_parentheses():
    g = resdsl.graph("block B { relu }\nnetwork plain {\n    input x: [N, 3]\n    B\n}")
    assert g.name == "plain" and [n.op for n in g.nodes] == ["relu"]


@pytest.mark.parametrize("word,bad", [("minimum", "`min`"), ("const", "`constant`"), ("maximum", "`max`")])
def test_chain_suggestions_are_ops_not_functions_or_inits(word, bad):
    e = err(f"network n {{ input x: [N, 3]; x -> {word}(6) }}")
    assert e.kind == "name" and f"`{word}`" in e.message and bad not in (e.help or "")
    e = err("network n { input x: [N, 3]; x -> lineer(6) }")
    assert "`linear`" in e.help


# ---------------------------------------------------------------- errors with a call stack
STACK = """block MBConv(out: int, k: int = 3) {
    conv(out, k, padding=k // 2) as conv
    if out == 40 { conv(out, 3, padding=[1, 1, 1]) as bad }
}
block Stage(ws: list[int]) {
    for i in range(len(ws)) {
        MBConv(ws[i]) as "{i}"
    }
}
network net {
    input x: [N, 3, H, W]
    for s in range(3) {
        Stage([8 * (s + 1), 40 if s == 2 else 4]) as "features.{s}"
    }
}
"""


def test_error_inside_a_block_names_the_instance_and_every_call_site(tmp_path):
    path = tmp_path / "net.res"
    path.write_text(STACK)
    r = subprocess.run([sys.executable, "-m", "resdsl.cli", "check", "net.res"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error[type]: `padding` must be")
    assert " --> net.res:3:20" in lines
    notes = [ln for ln in lines if ln.startswith("   = note:")]
    assert notes == ["   = note: in features.2.1 (MBConv, called at net.res:7:9)",
                     "   = note: in features.2 (Stage, called at net.res:13:9)"]


def test_deep_recursion_keeps_both_ends_of_the_stack():
    e = err("block R(k: int) {\n  if k == 0 { conv(3, 3, paddin=1) } else { R(k - 1) }\n}\n"
            "network r { input x: [N, 3, H, W]; R(40) }")
    notes = [t for t, _ in e.notes]
    assert len(notes) == 13 and notes[6] == "... 29 more calls ..."
    assert notes[-1] == "in r_0 (R, called at <string>:4:36)"


def test_error_in_a_fn_names_its_calls():
    e = err("fn f(a) = a // 0\nfn g(b) = f(b + 1)\nnetwork r { input x: [N, 3, H, W]; conv(g(2), 1) }")
    assert e.kind == "value" and [t for t, _ in e.notes] == ["in fn f (called at <string>:2:11)",
                                                             "in fn g (called at <string>:3:41)"]


# ---------------------------------------------------------------- shared pre-activation
PRE = """
block PreAct(c: int, stride: int = 1) {
    residual(pre = bn as bn1 -> relu) {
        conv(c, 3, stride=stride, padding=1, bias=false) as conv1
    } shortcut if stride != 1 or in.C != c { conv(c, 1, stride=stride, bias=false) } as proj
}
network n(c: int = 4, s: int = 1) {
    input x: [N, C=4, H=8, W=8]
    PreAct(c, s) as b
}
"""


@pytest.mark.parametrize("c,s", [(4, 1), (8, 2)])
def test_shared_pre_activation_feeds_branch_and_projection(c, s):
    """branch and projection read relu(bn1(x)) (computed once); an identity skip reads x."""
    gm = resdsl.build(PRE, c=c, s=s, seed=0).eval()
    sd = gm.state_dict()
    proj = c != 4 or s != 1
    assert [k for k in sd if not k.startswith("b.bn1")] == ["b.conv1.weight"] + (["b.proj.weight"] if proj else [])
    g = resdsl.graph(PRE, c=c, s=s)
    assert [n.op for n in g.nodes].count("bn") == 1
    with torch.no_grad():
        sd["b.bn1.running_mean"].uniform_(-1, 1)
        sd["b.bn1.weight"].uniform_(0.5, 2)
    x = torch.randn(2, 4, 8, 8)
    F = torch.nn.functional
    a = torch.relu(F.batch_norm(x, sd["b.bn1.running_mean"], sd["b.bn1.running_var"], sd["b.bn1.weight"],
                                sd["b.bn1.bias"]))
    ref = F.conv2d(a, sd["b.conv1.weight"], stride=s, padding=1) + \
        (F.conv2d(a, sd["b.proj.weight"], stride=s) if proj else x)
    torch.testing.assert_close(gm(x), ref)


def test_pre_with_residual_if_and_errors():
    src = """network n(r: bool = false) {
        input x: [N, C=4, H=8, W=8]
        residual(pre = relu) if r { conv(4, 1) as c }
    }"""
    assert [n.op for n in resdsl.graph(src).nodes] == ["relu", "conv"]
    assert [n.op for n in resdsl.graph(src, r=True).nodes] == ["relu", "conv", "add"]
    e = err("network n { input x: [N, 4]; residual(pree = relu) { relu } }")
    assert e.kind == "type" and "did you mean `pre`" in e.help


# ---------------------------------------------------------------- weight tying across ops
TIED = """
network tiny_lm(vocab: int = 50, d: int = 16) {
    input idx: [N, T=8]
    x = idx -> embedding(vocab, d) as wte
    x -> ln as ln_f -> linear(vocab, bias=false, tie="wte") as lm_head
}
"""


def test_tied_weights_pytorch_semantics_build_standalone_and_onnx(tmp_path):
    import onnxruntime as ort
    gm = resdsl.build(TIED, seed=0).eval()
    sd = gm.state_dict()
    assert list(sd) == ["wte.weight", "ln_f.weight", "ln_f.bias", "lm_head.weight"]  # both keys, as GPT-2
    assert gm.lm_head.weight is gm.wte.weight
    assert sum(p.numel() for p in gm.parameters()) == resdsl.graph(TIED).num_params() == 50 * 16 + 32
    ids = torch.randint(0, 50, (2, 8))
    ref = F_linear_ref(gm, ids)
    torch.testing.assert_close(gm(ids), ref)
    # loading a checkpoint that has both keys (one tensor) works strictly; training moves both
    gm.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=True)
    assert gm.lm_head.weight is gm.wte.weight
    # the standalone file ties too
    path = tmp_path / "tied_mod.py"
    path.write_text(resdsl.to_python(TIED))
    spec = importlib.util.spec_from_file_location("tied_mod", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.tiny_lm(seed=0).eval()
    assert m.lm_head.weight is m.wte.weight
    torch.testing.assert_close(m(ids), gm(ids))
    # ONNX: one initializer for the shared matrix
    model = resdsl.to_onnx(TIED, seed=0)
    names = [i.name for i in model.graph.initializer]
    assert "wte.weight" in names and "lm_head.weight" not in names
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: ids.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-5)


def F_linear_ref(gm, ids):
    F = torch.nn.functional
    sd = gm.state_dict()
    x = F.embedding(ids, sd["wte.weight"])
    x = F.layer_norm(x, (16,), sd["ln_f.weight"], sd["ln_f.bias"])
    return x @ sd["wte.weight"].t()


@pytest.mark.parametrize("call,kind,msg", [
    ('linear(50, bias=false, tie="wtf")', "name", "no op with weights"),
    ('linear(40, bias=false, tie="wte")', "shape", "shapes differ"),
    ('scalar_mul(1.0, tie="wte")', "type", "no parameter in common"),
    ('relu(tie="wte")', "type", "no weights to tie"),
])
def test_tie_errors(call, kind, msg):
    e = err(TIED.replace('linear(vocab, bias=false, tie="wte")', call))
    assert e.kind == kind and msg in e.message


# ---------------------------------------------------------------- optional tensor inputs
OPT = """
block Mix(c: int, v: Tensor? = none, w: Tensor? = none) {
    y = conv(c, 1) as proj
    if v != none { y = y + v }
    if w != none { y = y * w }
    y
}
network n(form: int = 0) {
    input x: [N, C=4, H=4, W=4], g: [N, C=4, H=1, W=1]
    a = x -> Mix(4) as m0
    if form == 0 { x -> Mix(4, a, g) as m1 }
    if form == 1 { Mix(4, x, w=g, v=a) as m1 }
    if form == 2 { x -> Mix(4, none, g) as m1 }
}
"""


@pytest.mark.parametrize("form", [0, 1, 2])
def test_optional_tensor_inputs(form):
    gm = resdsl.build(OPT, form=form, seed=0)
    sd = gm.state_dict()
    x, g = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 1, 1)
    F = torch.nn.functional
    a = F.conv2d(x, sd["m0.proj.weight"], sd["m0.proj.bias"])
    y = F.conv2d(x, sd["m1.proj.weight"], sd["m1.proj.bias"])
    ref = (y * g) if form == 2 else (y + a) * g
    torch.testing.assert_close(gm(x, g), ref)


def test_tensor_parameter_type_errors():
    e = err(OPT.replace("x -> Mix(4, a, g) as m1", "x -> Mix(4, v=3) as m1"))
    assert e.kind == "type" and "must be Tensor?" in e.message
    e = err("block B(v: Tensor) { relu }\nnetwork n { input x: [N, 4]; B }")
    assert e.kind == "type" and "needs a value for `v`" in e.message
