"""`residual if` (a residual that exists for some instances) and a pre-activation shared by
the branch and the projection (`residual(pre = ...)`), against torch transcriptions."""

import pytest
import torch
from conftest import check_error

import resdsl

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
    e = check_error("network n { input x: [N, 4]; residual(pree = relu) { relu } }")
    assert e.kind == "type" and "did you mean `pre`" in e.help
