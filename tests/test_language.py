"""Language semantics, checked against what torch computes or against counts done by hand."""
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings, strategies as st

import resdsl
from resdsl.ir.printer import print_graph
from resdsl.ir.shapes import Size

from conftest import ROOT, size_value


def nparams(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- expressions
def test_compile_time_expressions():
    src = """
    network n(a: int = 7, xs: list[int] = [1, 2, 3, 4]) {
        input x: [N, C=2, L=8]
        let c = (a * 3 + 1) // 2 - a % 4 + 2 ** 3        # 11 - 3 + 8 = 16
        let d = sum(xs[1:]) + len(xs) + max(xs) - min(3, 1)   # 9 + 4 + 4 - 1 = 16
        let e = 16 if c == d and not (a < 0 or false) else 1
        let f = int(sqrt(256)) if [1, 2] + [3] == [1, 2, 3] else 0
        conv(c, 1) as c1 -> conv(d, 1) as c2 -> conv(e, 1) as c3 -> conv(f, 1) as c4
    }
    """
    g = resdsl.graph(src)
    assert [n.attrs["out"] for n in g.nodes] == [16, 16, 16, 16]


def test_named_axes_and_in():
    src = """
    block B(c: int) {
        residual { conv(c, 3, padding=1) } shortcut if in.C != c { conv(c, 1) }
    }
    network n() {
        input x: [N, C=3, H=10, W=12]
        conv(x.H + x.W, 1) as wide        # 22 channels
        B(22) as same                     # no shortcut: in.C == 22
        B(8) as proj                      # shortcut: in.C == 22 != 8
    }
    """
    g = resdsl.graph(src)
    paths = [n.path for n in g.nodes]
    assert g.nodes[0].attrs["out"] == 22
    assert "same.shortcut" not in " ".join(p or "" for p in paths)
    assert "proj.shortcut.conv_0" in paths


# ---------------------------------------------------------------- weights: repeat, loop, let
SHARING = """
block R(c: int) { residual { conv(c, 3, padding=1) as conv -> relu } }
network n(k: int = 3) {
    input x: [N, C=4, H, W]
    repeat k as rep (i) { R(4) }
    loop k shared { R(4) as looped }
    let inst = R(4)
    inst
    inst
}
"""


@pytest.mark.parametrize("k", [1, 3])
def test_repeat_separate_loop_shared_instance_tied(k):
    gm = resdsl.build(SHARING, k=k, seed=0)
    names = [n for n, _ in gm.named_parameters()]
    per_conv = 4 * 4 * 9 + 4
    assert [n for n in names if n.startswith("rep.")] == [f"rep.{i}.conv.{w}" for i in range(k)
                                                           for w in ("weight", "bias")]
    assert [n for n in names if not n.startswith("rep.")] == [
        "looped.conv.weight", "looped.conv.bias", "inst.conv.weight", "inst.conv.bias"]
    assert nparams(gm) == per_conv * (k + 2)
    # the loop really applies one module k times: compare with a hand-written loop
    x = torch.randn(2, 4, 6, 6)
    convs = {n: m for n, m in gm.named_modules() if isinstance(m, torch.nn.Conv2d)}
    h = x
    for i in range(k):
        h = h + torch.relu(convs[f"rep.{i}.conv"](h))
    for _ in range(k):
        h = h + torch.relu(convs["looped.conv"](h))
    for _ in range(2):
        h = h + torch.relu(convs["inst.conv"](h))
    torch.testing.assert_close(gm(x), h)
    # blocks are modules: the root calls the shared loop body k times and the tied instance twice
    calls = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert calls.count("looped") == k and calls.count("inst") == 2 and calls.count("rep") == 1
    assert [n.target for n in gm.looped.graph.nodes if n.op == "call_module"] == ["conv"]


def test_torchvision_names_from_templates_and_single_block_repeat():
    gm = resdsl.build(os.path.join(ROOT, "stdlib/resnet.res"), network="resnet18", device="meta")
    keys = list(gm.state_dict())
    assert keys[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer2.0.downsample.0.weight" in keys and "layer1.0.downsample.0.weight" not in keys


# ---------------------------------------------------------------- merges
def test_merge_modes_against_formulas():
    src = """
    network n() {
        input x: [N, C=4, H, W]
        a = x -> residual(merge=scale(0.25)) { conv(4, 1) as c1 }
        b = a -> residual(merge=learned) { conv(4, 1) as c2 } as rz
        c = b -> residual(merge=layer_scale(0.5)) { conv(4, 1) as c3 } as ls
        d = c -> residual(merge=concat) { conv(2, 1) as c4 }
        e = d -> residual(merge=mean) { conv(6, 1) as c5 }
        f = e -> residual(merge=mul) { conv(6, 1) as c6 -> sigmoid }
        output f
    }
    """
    gm = resdsl.build(src, seed=1)
    sd = dict(gm.named_parameters())
    with torch.no_grad():
        sd["rz"].fill_(0.3)
    m = dict(gm.named_modules())
    x = torch.randn(2, 4, 5, 5)
    a = x + 0.25 * m["c1"](x)
    b = a + 0.3 * m["c2"](a)
    c = b + 0.5 * m["c3"](b)
    d = torch.cat([c, m["c4"](c)], 1)
    e = (d + m["c5"](d)) / 2
    f = e * torch.sigmoid(m["c6"](e))
    assert sd["ls.gamma"].shape == (4,)
    torch.testing.assert_close(gm(x), f)


def test_drop_path_only_in_training():
    src = "network n() {\n input x: [N, C=4, L=3]\n residual(drop_path=0.5) { linear(3) as f }\n}\n"
    gm = resdsl.build(src, seed=0)
    x = torch.randn(64, 4, 3)
    gm.eval()
    torch.testing.assert_close(gm(x), x + gm.f(x))
    gm.train()
    torch.manual_seed(0)
    y = gm(x)
    branch = (y - x)
    kept = [(b.abs().sum() > 0).item() for b in branch]
    assert 10 < sum(kept) < 54  # samples are dropped whole, about half of them
    for b, k, xi in zip(branch, kept, x):
        if k:
            torch.testing.assert_close(b, gm.f(xi) / 0.5)


def test_parallel_and_named_values_multiple_outputs():
    src = """
    network n() {
        input x: [N, C=3, H, W], y: [N, C=3, H, W]
        s = x -> parallel(merge=add) { conv(4, 1) as a | conv(4, 3, padding=1) as b | { conv(4, 1) as c -> relu } }
        output first = concat(s, y) -> conv(2, 1) as head, second = s
    }
    """
    gm = resdsl.build(src, seed=0)
    m = dict(gm.named_modules())
    x, y = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6)
    s = m["a"](x) + m["b"](x) + torch.relu(m["c"](x))
    out = gm(x, y)
    torch.testing.assert_close(out[0], m["head"](torch.cat([s, y], 1)))
    torch.testing.assert_close(out[1], s)


def test_recursion_fractal_counts():
    src = """
    block F(c: int, k: int) {
        if k == 1 { conv(c, 3, padding=1) } else {
            parallel(merge=mean) { conv(c, 3, padding=1) | F(c, k - 1) -> F(c, k - 1) }
        }
    }
    network n(k: int = 4) { input x: [N, C=2, H, W]; F(2, k) }
    """
    for k in range(1, 5):
        g = resdsl.graph(src, k=k)
        convs = sum(1 for n in g.nodes if n.op == "conv")
        assert convs == 2 ** k - 1  # FractalNet: f_k has 2^k - 1 convolutions


# ---------------------------------------------------------------- shapes
@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       pool=st.sampled_from(["max", "avg", "none"]), mult=st.integers(4, 7))
def test_symbolic_shapes_match_torch(k, s, p, d, pool, mult):
    """The inferred H, W (symbolic, assuming divisibility) equal torch's at sizes divisible by the strides."""
    if d * (k - 1) + 1 > 2 * p + 8:
        return
    pool_stmt = {"max": "maxpool(2)", "avg": "avgpool(2, stride=2)", "none": "identity"}[pool]
    src = f"""
    network n() {{
        input x: [N, C=3, H, W]
        conv(5, {k}, stride={s}, padding={p}, dilation={d}) -> {pool_stmt}
        conv(4, 3, stride=2, padding=1)
    }}
    """
    g = resdsl.graph(src)
    H = 2 * 2 * s * mult * 2
    W = 2 * 2 * s * (mult + 1) * 2
    # H and W are multiples of every stride applied, as the symbolic rule assumes
    gm = resdsl.build(src, seed=0)
    out = gm(torch.randn(1, 3, H, W))
    shp = g.outputs[0].shape
    exp = [size_value(a.size, {"N": 1, "H": H, "W": W}) for a in shp]
    assert list(out.shape) == exp, (src, list(out.shape), exp)


def test_symbolic_printing():
    src = """
    network n() {
        input x: [N, C=3, H, W]
        conv(8, 7, stride=2, padding=3) -> maxpool(3, stride=2, padding=1) -> flatten
    }
    """
    g = resdsl.graph(src)
    assert str(g.outputs[0].shape[1].size) == "H*W/2"
    assert str(Size.sym("H").truediv(4)) == "H/4"
    assert str(Size.sym("L") + 1) == "L + 1"
    assert "[N, 8, H/2, W/2]" in print_graph(g)


# ---------------------------------------------------------------- variants
def test_set_and_config_and_alias_overrides(tmp_path):
    path = os.path.join(ROOT, "stdlib/resnet.res")
    g = resdsl.graph(path, "resnet18", sets=["classes=10"])
    assert g.outputs[0].shape[1].size == 10
    cfg = tmp_path / "v.yaml"
    cfg.write_text("layers: [1, 1, 1, 1]\nblock: Bottleneck\nclasses: 7\n")
    g2 = resdsl.graph(path, "resnet18", config=str(cfg))
    assert g2.outputs[0].shape[1].size == 7
    assert sum(1 for n in g2.nodes if n.op == "conv") == 1 + 4 * 3 + 4
    gm = resdsl.build(path, network="resnet18", layers=[1, 1, 1, 1], classes=3, device="meta")
    assert gm.fc.out_features == 3


# ---------------------------------------------------------------- torch backend
def test_standalone_file_matches_build_and_is_deterministic(tmp_path):
    src = os.path.join(ROOT, "examples/cifar_resnet.res")
    outs = []
    for i, seed in enumerate(["1", "2"]):
        out = tmp_path / f"r{i}.py"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-m", "resdsl.cli", "compile", src, "--target", "torch", "-o", str(out)],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    text = outs[0].decode()
    assert "resdsl" not in text.split('"""', 2)[2]  # needs only torch
    ns = {}
    exec(compile(text, "r0.py", "exec"), ns)  # the generated file, as a user would import it
    m = ns["resnet20"](seed=3)
    gm = resdsl.build(src, seed=3)
    assert list(m.state_dict()) == list(gm.state_dict())
    for k, v in gm.state_dict().items():
        torch.testing.assert_close(m.state_dict()[k], v)
    x = torch.randn(2, 3, 32, 32)
    m.eval(), gm.eval()
    torch.testing.assert_close(m(x), gm(x))


def test_seed_reproducible_and_train_eval():
    src = os.path.join(ROOT, "examples/cifar_resnet.res")
    a, b, c = resdsl.build(src, seed=0), resdsl.build(src, seed=0), resdsl.build(src, seed=1)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert torch.count_nonzero(a.stage1[0].bn2.weight) == 0  # weight_init=zeros
    x = torch.randn(4, 3, 32, 32)
    a.train()
    loss = a(x).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in a.parameters())
    assert a.bn1.num_batches_tracked.item() == 1
    a.eval()
    with torch.no_grad():
        assert a(x).shape == (4, 10)


def test_no_graph_breaks_under_dynamo():
    gm = resdsl.build(os.path.join(ROOT, "examples/cifar_resnet.res"), seed=0).eval()
    explanation = torch._dynamo.explain(gm)(torch.randn(2, 3, 32, 32))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_generated_code_is_readable():
    gm = resdsl.build(os.path.join(ROOT, "stdlib/resnet.res"), network="resnet18", device="meta")
    code = gm.code
    assert "layer1 = self.layer1(maxpool)" in code  # the root calls its blocks
    block = gm.layer1[0].code
    assert block.startswith("def forward(self, x):\n    conv1 = self.conv1(x)")
    assert "torch.relu_(" in block and "_tensor_constant" not in code
    assert "bn2 += x" in block  # in place where nothing else reads the value, as torchvision


def test_in_place_ops_keep_training_correct():
    """relu_/+= only overwrite values nothing else reads: gradients equal an out-of-place run."""
    src = """
    network n() {
        input x: [N, C=3, H=6, W=6]
        a = x -> conv(4, 3, padding=1) as c0 -> relu
        b = a -> residual { conv(4, 3, padding=1) as c1 -> bn as b1 -> relu -> conv(4, 1) as c2 } -> relu
        output add(b -> sigmoid -> relu, a), b
    }
    """
    gm = resdsl.build(src, seed=0)
    code = gm.code
    assert "torch.relu_(" in code and "torch.relu(sigmoid" in code  # a sigmoid's output is never overwritten
    m = dict(gm.named_modules())
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    out = gm(x)
    (out[0].sum() + out[1].pow(2).sum()).backward()
    g_fx = [p.grad.clone() for p in gm.parameters()] + [x.grad.clone()]
    for p in gm.parameters():
        p.grad = None
    x.grad = None
    m["b1"].running_mean.zero_(), m["b1"].running_var.fill_(1), m["b1"].num_batches_tracked.zero_()
    a = torch.relu(m["c0"](x))
    b = torch.relu(a + m["c2"](torch.relu(m["b1"](m["c1"](a)))))
    o0 = torch.relu(torch.sigmoid(b)) + a
    torch.testing.assert_close(out[0], o0)
    (o0.sum() + b.pow(2).sum()).backward()
    for got, want in zip(g_fx, [p.grad for p in gm.parameters()] + [x.grad]):
        torch.testing.assert_close(got, want)


def test_name_that_is_only_a_template():
    src = """
    network n() {
        input x: [N, C=4, H, W]
        for s in range(2) {
            repeat 2 as {s} (i) { conv(4, 3, padding=1) as c{i} }
        }
    }
    """
    keys = list(resdsl.build(src, device="meta").state_dict())
    assert keys[::2] == ["0.0.c0.weight", "0.1.c1.weight", "1.0.c0.weight", "1.1.c1.weight"]
