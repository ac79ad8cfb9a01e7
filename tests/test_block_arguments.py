"""Arguments of blocks and networks: lists of tensors (positional or by keyword, empty),
optional tensor inputs (`Tensor? = none`), `in` with several inputs, declarations without
parentheses, and the suggestions for a misspelt op."""

import pytest
import torch
from conftest import check_error

import resdsl

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
    e = check_error("network n { input x: [N, 4]; let kids = []; concat(kids) }")
    assert e.kind == "type" and "empty list of tensors" in e.message and "dim" not in e.message


def test_shortcut_with_one_block_takes_the_shortcut_name():
    gm = resdsl.build(SLIPS, seed=0)
    keys = [k for k in gm.state_dict() if k.startswith("r.proj")]
    assert keys[:2] == ["r.proj.conv.weight", "r.proj.bn.weight"]


def test_in_is_ambiguous_with_several_inputs():
    e = check_error("""block Two { input a, b; conv(in.C, 1) }
network n { input x: [N, 4, H, W]; Two(x, x) }""")
    assert e.kind == "name" and "ambiguous" in e.message and "a.C" in e.help
    assert (e.span.line, e.span.column) == (1, 30)


def test_network_and_block_without_parentheses():
    g = resdsl.graph("block B { relu }\nnetwork plain {\n    input x: [N, 3]\n    B\n}")
    assert g.name == "plain" and [n.op for n in g.nodes] == ["relu"]


# (`minimum` and `maximum` are ops now: resdsl/ir/ops/elementwise_math.py)
@pytest.mark.parametrize("word,bad", [("minimun", "`min`"), ("const", "`constant`"), ("maximun", "`max`")])
def test_chain_suggestions_are_ops_not_functions_or_inits(word, bad):
    e = check_error(f"network n {{ input x: [N, 3]; x -> {word}(6) }}")
    assert e.kind == "name" and f"`{word}`" in e.message and bad not in (e.help or "")
    e = check_error("network n { input x: [N, 3]; x -> lineer(6) }")
    assert "`linear`" in e.help


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
    e = check_error(OPT.replace("x -> Mix(4, a, g) as m1", "x -> Mix(4, v=3) as m1"))
    assert e.kind == "type" and "must be Tensor?" in e.message
    e = check_error("block B(v: Tensor) { relu }\nnetwork n { input x: [N, 4]; B }")
    assert e.kind == "type" and "needs a value for `v`" in e.message
