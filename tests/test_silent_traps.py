"""Programs that used to pass `check` and silently not do what they say are located errors
with a fix hint (resdsl/elaborate/traps.py); the fix each hint gives is accepted and does
what was meant."""
from __future__ import annotations

import pytest
import torch

import resdsl

from conftest import check_error


def _net(body: str) -> str:
    return "network n() {\n    input x: [N, 4, H, W]\n" + body + "}\n"


@pytest.mark.parametrize("body,line,words", [
    # a `let` holding the op identity: it would be applied later to whatever tensor is current
    ("    let xl = [identity]\n    conv(4, 1)\n    xl[0] -> conv(4, 1)\n", 3, ("identity", "current tensor")),
    ("    let t = identity\n    conv(4, 1)\n", 3, ("identity",)),
    # a list mixing tensors and ops
    ("    t = conv(4, 1)\n    let xl = [t, relu]\n    concat(xl)\n", 4, ("mixes tensors and ops",)),
    ("    t = conv(4, 1)\n    concat([t, relu])\n", 4, ("mixes tensors and ops",)),
    # a list of ops where an op's tensors go
    ("    let acts = [relu, gelu]\n    concat(acts)\n", 4, ("list of ops",)),
    # a body that ends by binding a list of tensors: the result would be the tensor before
    ("    conv(4, 1)\n    parts = split([2, 2])\n", 4, ("parts", "list of tensors")),
    ("    a, b = chunk(2)\n", 3, ("a, b",)),
    ("    parts = split([2, 2])\n    let k = 1\n", 3, ("parts",)),
    ("    let outs = []\n    for i in range(2) {\n        t = x -> conv(4, 1) as \"c{i}\"\n"
     "        let outs = outs + [t]\n    }\n", 6, ("outs",)),
])
def test_trap_is_a_located_error_with_a_hint(body, line, words):
    err = check_error(_net(body))
    assert err.span is not None and err.span.line == line, err.render()
    assert all(w in err.message for w in words), err.message
    assert err.help


def test_a_block_or_group_ending_in_a_list_binding_is_an_error():
    err = check_error("block B() {\n    a, b = chunk(2)\n}\n" + _net("    B() as b\n"))
    assert err.kind == "shape" and "block `B`" in err.message and err.span.line == 2
    err = check_error(_net("    {\n        a, b = chunk(2)\n    } as g\n"))
    assert "group" in err.message and err.span.line == 4


def test_network_output_must_depend_on_its_input():
    err = check_error("network n() {\n    input x: [N, 3]\n    param([1, 3]) as p\n}\n")
    assert err.kind == "shape" and "depends on its input" in err.message and err.span.line == 1


def test_network_without_input_or_result_is_an_error():
    assert "no input" in check_error("network n() {\n    let a = 1\n}\n").message
    assert check_error("network n() {\n    param([1, 3]) as p\n}\n").span is not None


def test_the_fixes_the_hints_give():
    # `t = identity` names the current tensor (no op), and a list of it keeps the tensor
    g = resdsl.graph(_net("    conv(4, 1) as c\n    t = identity\n    let xl = [t]\n    relu\n"
                          "    concat(xl + [identity(t)])\n"))
    assert [n.op for n in g.nodes] == ["conv", "relu", "identity", "concat"]
    assert g.nodes[-1].inputs[0] is g.nodes[0].outputs[0]
    # `output parts` gives each tensor of the list
    g = resdsl.graph(_net("    parts = split([2, 2])\n    output parts\n"))
    assert len(g.outputs) == 2
    # ops in a let stay legal as values: a Block parameter or a list of ops picked by index
    g = resdsl.graph(_net("    let acts = [relu, gelu]\n    for i in range(2) {\n        acts[i]\n    }\n"))
    assert [n.op for n in g.nodes] == ["relu", "gelu"]


def test_naming_the_current_tensor_mid_chain_runs():
    src = _net("    y = conv(4, 3, padding=1) as c1 -> relu\n    conv(4, 3, padding=1) as c2\n"
               "    t = identity\n    y + t\n")
    m = resdsl.build(src, seed=0).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        y = torch.relu(m.c1(x))
        assert torch.allclose(m(x), y + m.c2(y), atol=1e-6)


@pytest.mark.parametrize("region", ["residual { relu\n        output y = x }", "repeat 2 { relu\n        output x }",
                                    "loop 2 shared { relu\n        output x }"])
def test_output_inside_a_region_is_an_error(region):
    err = check_error(_net(f"    {region}\n"))
    assert err.kind == "syntax" and "ignored" in err.message and err.help


def test_an_operator_after_a_chain_link_applies_to_the_block():
    # the precedence table of docs/language.md: `*` binds tighter than `->`
    err = check_error(_net("    x -> reshape([-1, 2, 2]) * 3\n"))
    assert err.kind == "type" and "Block" in err.message and "(x -> reshape" in err.help
    g = resdsl.graph(_net("    (x -> reshape([-1, 2, 2])) * 3\n"))
    assert [n.op for n in g.nodes] == ["reshape", "scale"]
