"""Names and structure: inline block calls (`as .`), nn.Sequential numbering of the modules
present (`as +`), string templates everywhere, `let` in `fn` bodies, groups whose `output`
names hold after them, and chains as list-comprehension elements.

Each feature is checked where it matters: the parameter names against a hand-built torch
reference (strict state_dict loading, equal outputs), both parsers against each other, the
formatter (idempotent, same AST), and every target (torch tree, standalone file, ONNX)."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

import resdsl
from resdsl import fuzz
from resdsl.cli import main
from resdsl.diagnostics import ResdslError
from resdsl.fmt import format_source

from conftest import check_error

# ------------------------------------------------------------------ a reference in torch
# torchvision's shape of an inverted residual: a Sequential whose indices shift when the
# expansion conv is absent and after an optional SE (here a conv)
SEQ = """
block ConvBN(c: int, k: int = 1, act: Block? = none) {
    conv(c, k, padding=(k - 1) // 2, bias=false) as + -> bn as +
    if act != none {
        act
    }
}

block Unit(exp: int, out: int, se: bool) {
    {
        if exp != in.C {
            ConvBN(exp, act=relu) as +
        }
        ConvBN(exp, 3, act=relu) as +
        if se {
            conv(exp, 1) as +
        }
        ConvBN(out) as +
    } as block
}

network seq(units: list = [[8, 8, true], [16, 8, false], [8, 8, false]]) {
    input x: [N, 8, H=4, W=4]
    {
        for u in units {
            Unit(u[0], u[1], u[2]) as +
        }
        conv(4, 1) as +
    } as features
    { relu as + -> flatten as + -> linear(3) as + } as head
}
"""


def _convbn(cin, c, k=1, act=True):
    layers = [nn.Conv2d(cin, c, k, padding=(k - 1) // 2, bias=False), nn.BatchNorm2d(c)]
    return nn.Sequential(*layers, *([nn.ReLU()] if act else []))


class _Unit(nn.Module):
    def __init__(self, cin, exp, out, se):
        super().__init__()
        layers = [_convbn(cin, exp, act=True)] if exp != cin else []
        layers.append(_convbn(exp, exp, 3))
        if se:
            layers.append(nn.Conv2d(exp, exp, 1))
        layers.append(_convbn(exp, out, act=False))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


def _reference(h=4, w=4):
    units = [(8, 8, 8, True), (8, 16, 8, False), (8, 8, 8, False)]
    feats = nn.Sequential(*[_Unit(*u) for u in units], nn.Conv2d(8, 4, 1))
    head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, 3))
    return nn.Sequential(feats, head)


def test_numbering_skips_absent_layers_like_torch_sequential():
    m = resdsl.build(SEQ, seed=0).eval()
    ref = _reference()
    sd = ref.state_dict()
    # the reference's keys are features.*/head.* under Sequential indices 0/1: rename the top level
    sd = {("features." if k.startswith("0.") else "head.") + k.split(".", 1)[1]: v for k, v in sd.items()}
    ours = m.state_dict()
    assert sorted(ours) == sorted(sd)
    # unit 0 (no expansion, SE): 0 depthwise, 1 SE, 2 projection; unit 1 (expansion, no SE):
    # 0 expansion, 1 depthwise, 2 projection
    assert "features.0.block.1.weight" in ours and "features.0.block.2.0.weight" in ours
    assert "features.1.block.0.0.weight" in ours and "features.1.block.2.0.weight" in ours
    assert not any(k.startswith("features.0.block.3") or k.startswith("features.1.block.3") for k in ours)
    assert "features.3.weight" in ours and "head.2.weight" in ours
    m.load_state_dict(sd, strict=True)
    ref.eval()
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-5)


def test_numbering_is_per_scope_and_counts_only_present_modules():
    g = resdsl.graph("""
network n(k: int = 2) {
    input x: [N, 4, H, W]
    conv(4, 1) as +
    for i in range(k) {
        if i != 0 {
            conv(4, 1) as +
        }
    }
    { conv(4, 1) as + -> conv(4, 1) as + } as g
    conv(4, 1) as +
    repeat 2 as + (i) { conv(4, 1) as + }
}
""")
    paths = [n.path for n in g.nodes]
    assert paths == ["0", "1", "g.0", "g.1", "2", "3.0.0", "3.1.0"]


INLINE = """
block Stem(c: int) {
    conv(c, 3, padding=1) as conv1 -> bn as bn1 -> relu
}

network inl() {
    input x: [N, 3, H, W]
    Stem(8) as .
    conv(8, 1) as proj
}
"""


def test_inline_block_puts_its_modules_in_the_callers_namespace():
    m = resdsl.build(INLINE, seed=0)
    assert sorted(k for k in m.state_dict() if not k.endswith("num_batches_tracked")) == [
        "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.weight", "conv1.bias", "conv1.weight",
        "proj.bias", "proj.weight"]


def test_inline_block_clash_is_a_located_error():
    err = check_error(INLINE.replace("as proj", "as conv1"))
    assert err.kind == "name" and "conv1" in err.message and "twice" in err.message
    assert err.span.line == 9


def test_inline_blocks_share_auto_names_and_numbering():
    g = resdsl.graph("""
block Two() { conv(4, 1) as + -> conv(4, 1) }
network n() {
    input x: [N, 4, H, W]
    conv(4, 1)
    Two() as .
    Two() as .
}
""")
    assert [n.path for n in g.nodes] == ["conv_0", "0", "conv_1", "1", "conv_2"]


def test_inline_block_nesting_under_a_callers_layer_is_an_error():
    err = check_error("""
block In() { conv(4, 1) as c }
block Outer() { In() as conv1 }
network k() {
    input x: [N, 4, H, W]
    conv(4, 1) as conv1
    Outer() as .
}
""")
    assert err.kind == "name" and "nest" in err.message and "conv1" in err.message
    assert err.span.line == 2 and err.notes


def test_quoted_dot_points_to_the_inline_form():
    err = check_error(INLINE.replace("Stem(8) as .", 'Stem(8) as "."'))
    assert err.kind == "name" and "`as .`" in err.help


def test_inline_on_an_op_is_an_error():
    err = check_error("network n() {\n    input x: [N, 4, H, W]\n    conv(4, 1) as .\n}\n")
    assert err.kind == "name" and "as ." in err.message and err.span.line == 3 and err.span.column == 19


# ------------------------------------------------------------------ templates
def test_string_templates_everywhere():
    g = resdsl.graph("""
fn stage(s) = "stage{s + 2}"
network t(s: int = 1) {
    input x: [N, 4, H, W]
    let p = "stage{s + 2}"
    let q = stage(s) + ".{s * 10}"
    conv(4, 1) as "{p}.a"
    conv(4, 1) as "{q}"
    conv(4, 1, tie="{p}.a") as tied
}
""")
    assert [n.path for n in g.nodes] == ["stage3.a", "stage3.10", "tied"]


def test_doubled_braces_are_literal():
    g = resdsl.graph('block B(tag: str) { conv(4, 1) as "k{tag}" }\n'
                     'network t(s: int = 1) {\n    input x: [N, 4, L]\n    let p = "{{s}}={s}}}"\n    B(p) as b\n}\n')
    assert [n.path for n in g.nodes] == ["b.k{s}=1}"]


@pytest.mark.parametrize("text,kind,word", [
    ('"stage{s"', "syntax", "unclosed"),
    ('"stage}"', "syntax", "without"),
    ('"stage{}"', "syntax", "empty"),
    ('"stage{0.5}"', "type", "int or str"),
    ('"stage{nope}"', "name", "nope"),
    ('"a{b{c}"', "syntax", "unclosed"),
])
def test_bad_templates_are_located_errors(text, kind, word):
    err = check_error(f"network t(s: int = 1) {{\n    input x: [N, 4]\n    let p = {text}\n    linear(4)\n}}\n")
    assert err.kind == kind and word in err.message and err.span.line == 3


# ------------------------------------------------------------------ fn, groups, comprehensions
def test_let_inside_fn():
    g = resdsl.graph("""
fn width(c, m: float = 1.0) {
    let scaled = int(c * m)
    let rounded = scaled // 8 * 8
    max(8, rounded)
}
network f() {
    input x: [N, 4, H, W]
    fn twice(v) { let w = width(v); w * 2 }
    conv(width(50, 0.5), 1) -> conv(twice(20), 1)
}
""")
    assert g.outputs[0].shape[1].size == 32 and g.nodes[0].outputs[0].shape[1].size == 24


def test_group_outputs_bind_names_after_it():
    src = """
network grp() {
    input x: [N, 4, H, W]
    {
        s = conv(4, 3, padding=1) as conv1
        hidden = s -> relu
        d = hidden -> conv(8, 1) as conv2
        output skip = s, d
    } as stem
    concat(skip, d)
}
"""
    m = resdsl.build(src, seed=0)
    assert sorted(k for k in m.state_dict()) == ["stem.conv1.bias", "stem.conv1.weight", "stem.conv2.bias",
                                                 "stem.conv2.weight"]
    assert m(torch.randn(1, 4, 5, 5)).shape == (1, 12, 5, 5)
    err = check_error(src.replace("concat(skip, d)", "hidden"))  # names not in `output` stay inside
    assert err.kind == "name" and "hidden" in err.message


def test_group_with_several_outputs_unpacks():
    g = resdsl.graph("""
network grp() {
    input x: [N, 4, H, W]
    a, b = {
        y = conv(4, 1) as c
        output y -> relu, y -> sigmoid
    } as g
    a * b
}
""")
    assert g.outputs[0].shape[1].size == 4


def test_chain_as_list_comprehension_element():
    g = resdsl.graph("""
network lc() {
    input x: [N, 8, H, W]
    parts = split([4, 4])
    ys = [p -> conv(4, 1) as "c{i}" -> relu for i, p in enumerate(parts)]
    concat(ys)
}
""")
    assert [n.path for n in g.nodes if n.path] == ["c0", "c1"]


# ------------------------------------------------------------------ parsers, formatter, targets
NEW_SYNTAX = [
    "fn f(v) {\n    let a = v * 2\n    let b = a + 1\n    a + b\n}\nfn g(v) { let a = v; a }\nfn h(v) {\n  v\n}\n",
    "network N() {\n  input x: [1, 4]\n  B(4) as . -> relu as + -> { relu as + } as .\n"
    "  repeat 2 as + (i) { relu }\n}\n",
    "let a = [p -> relu for p in ps]\nlet b = [p as q -> relu -> gelu as + for p, q in z if p]\n"
    "let c = [residual, shortcut]\nlet d = [x -> residual { relu } for x in y]\n",
    "network N() {\n  input x: [1, 4]\n  a, b = {\n    output c = relu, d = gelu\n  } as g\n}\n",
    "let s = \"stage{s + 2}\"\nnetwork N() {\n  input x: [1, 4]\n  relu as\\\n .\n  (relu as +)\n}\n",
]


@pytest.mark.parametrize("text", NEW_SYNTAX)
def test_fast_parser_matches_lark_on_new_syntax(text):
    assert fuzz.parser_differential(text) == "same"


@pytest.mark.parametrize("text", ["let a = [p -> relu]\n", "network N() {\n  relu as . .\n}\n",
                                  "fn f(v) { let a = 1 }\n", "fn f(v) { a; b }\n", "let a = [x as y, z]\n"])
def test_bad_new_syntax_errors_like_lark(text):
    from resdsl.frontend.read import parse
    assert fuzz.parser_differential(text) in ("same", "bail")
    with pytest.raises(ResdslError) as e:
        parse(text)
    assert e.value.kind == "syntax"


@pytest.mark.parametrize("text", NEW_SYNTAX + [SEQ, INLINE])
def test_formatter_keeps_new_syntax(text):
    from resdsl.frontend.read import parse
    once = format_source(text)
    assert format_source(once) == once
    assert parse(once) == parse(text)


def test_every_target_builds_and_runs(tmp_path):
    src = tmp_path / "seq.res"
    src.write_text(SEQ)
    out = tmp_path / "seq_gen.py"
    assert main(["compile", str(src), "-t", "torch", "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location("seq_gen_names", out)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    gen = mod.seq().eval()
    m = resdsl.build(SEQ, seed=0).eval()
    gen.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        want = m(x)
        assert torch.allclose(gen(x), want, atol=1e-5)
    import onnxruntime as ort
    model = resdsl.to_onnx(SEQ, seed=0, weights=m.state_dict())
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert np.allclose(y, want.numpy(), atol=1e-4)
