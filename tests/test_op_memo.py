"""resdsl/elaborate/opmemo.py: an op applied with the same arguments and input shapes as before
skips the checking of its arguments and its shape rule. The graphs are those made without it, and
every error is still the real steps' (a key holds values, never identities; a failure is never kept)."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_lsp import _graph_text

from resdsl.diagnostics import ResdslError
from resdsl.elaborate import Program, elaborate, opmemo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_memo(monkeypatch):
    """The elaborator as it was: every application checks its arguments and runs its shape rule."""
    def off():
        monkeypatch.setattr(opmemo, "get", lambda k, od: None)
        monkeypatch.setattr(opmemo, "put", lambda *a: None)
    return off


def _graphs(stem):
    program = Program.from_file(str(ROOT / "stdlib" / f"{stem}.res"))
    return [_graph_text(elaborate(program, name)) for name, t in program.networks.items()
            if not any(p.default is None for p in getattr(getattr(t, "defn", None), "params", ()))][:4]


@pytest.mark.parametrize("stem", ["resnet", "vit", "densenet", "mobilenetv3"])
def test_graphs_are_those_made_without_the_memo(stem, no_memo):
    opmemo._MEMO.clear()
    first, again = _graphs(stem), _graphs(stem)  # the second time, every application finds the first's
    assert opmemo._MEMO
    no_memo()
    assert first == again == _graphs(stem)


def test_nodes_get_their_own_attributes():
    src = "network n() {\n    input x: [N, 3, 8, 8]\n    rearrange(\"n c h w -> n c h w\") -> rearrange(\"n c h w -> n c h w\")\n}\n"
    g = elaborate(Program.from_source(src))
    a, b = g.nodes
    assert a.attrs == b.attrs and a.attrs is not b.attrs
    for k, v in a.attrs.items():
        assert type(v) not in (list, dict) or v is not b.attrs[k], k


NET = "network n() {{\n    input x: [N, 4, 8, 8]\n    {}\n}}\n"


@pytest.mark.parametrize("good, bad, message", [
    ("conv(4, 1, stride=1)", "conv(4, 1, stride=true)", "must be an int"),  # True == 1, but not an int
    ("conv(4, 3, padding=1)", "conv(4, 3, padding=1.0)", "must be"),  # 1.0 == 1
    ("conv(4, 3, padding=1)", "conv(4, 3, padding=[1])", None),
    ("dropout(0.5)", "dropout(1.5)", "dropout"),
])
def test_a_value_equal_to_a_kept_one_is_checked_as_itself(good, bad, message, no_memo):
    elaborate(Program.from_source(NET.format(good)))  # kept
    try:
        elaborate(Program.from_source(NET.format(bad)))
        got = None
    except ResdslError as e:
        got = str(e)
    no_memo()
    try:
        elaborate(Program.from_source(NET.format(bad)))
        want = None
    except ResdslError as e:
        want = str(e)
    assert got == want
    if message is not None:
        assert want is not None and message in want


def test_the_same_op_on_other_shapes_is_shaped_anew():
    src = NET.format("conv(8, 3, padding=1) -> maxpool(2) -> conv(8, 3, padding=1) -> flatten")
    g = elaborate(Program.from_source(src))
    assert [tuple(a.size for a in n.outputs[0].shape) for n in g.nodes][-1][1] == 8 * 4 * 4
    with pytest.raises(ResdslError) as e:
        elaborate(Program.from_source(NET.format("conv(8, 3) -> conv(8, 3) -> conv(8, 3) -> conv(8, 3) -> conv(8, 3)")))
    assert e.value.kind == "shape"  # 8 -> 6 -> 4 -> 2 -> 0: the last is shaped, not taken from a kept one


def test_keys_hold_values_only():
    from resdsl.ir.ops import OPS
    from resdsl.ir.shapes import Axis, Size

    class T:
        def __init__(self, shape):
            self.shape = shape
    h = Size.sym("H").truediv(2)
    k1 = opmemo.key(OPS["relu"], [T((Axis(Size.sym("N")), Axis(h)))], [], {})
    k2 = opmemo.key(OPS["relu"], [T((Axis(Size.sym("N")), Axis(Size.sym("H").truediv(2))))], [], {})
    assert k1 == k2 and hash(k1) == hash(k2)
    assert opmemo.key(OPS["conv"], [T((Axis(1),))], [object()], {}) is None  # not a plain value: no key
    assert opmemo.key(OPS["dropout"], [], [0.0], {}) != opmemo.key(OPS["dropout"], [], [-0.0], {})
    assert opmemo.key(OPS["dropout"], [], [1], {}) != opmemo.key(OPS["dropout"], [], [True], {})
