"""interface.resolve checks a network's annotations on every elaboration (the language server's
every edit too), so it indexes only the paths the annotations name and finds the head walking
back from the output: both must give what the whole-graph forms give (member_index, the two
ancestor sets), on every annotated stdlib network."""
from __future__ import annotations

from pathlib import Path

import pytest

from resdsl.elaborate import Program, elaborate
from resdsl.ir import interface as I

ROOT = Path(__file__).resolve().parents[1]
ANNOTATED = sorted(p.stem for p in (ROOT / "stdlib").glob("*.res")
                   if any(a in p.read_text() for a in ("@features", "@classifier", "@forward_features")))


def _first_network(stem):
    program = Program.from_file(str(ROOT / "stdlib" / f"{stem}.res"))
    for name, target in program.networks.items():
        if not any(p.default is None for p in getattr(getattr(target, "defn", None), "params", ())):
            return elaborate(program, name)
    raise AssertionError(f"{stem}.res has annotations but no network that builds without arguments")


def _reference_split(g, iface):
    """split's head and graph inputs as the two ancestor sets give them."""
    users = g.users()
    if iface.forward_features:
        feat = I._one_output(g, "forward_features", iface.forward_features, None, users)
    elif iface.features:
        feat = I._one_output(g, "features", iface.features[-1], None, users)
    else:
        feat = I._classifier(g, iface.classifier, None).inputs[0]
    body, need = I._ancestors([feat]), I._ancestors(g.eval_outputs())
    head = [n for n in g.nodes if n in need and n not in body]
    ins = tuple(v for v in g.inputs if any(v in n.inputs for n in body)) or tuple(g.inputs[:1])
    return feat, head, ins


def test_annotated_networks_are_found():
    assert len(ANNOTATED) >= 10 and "resnet" in ANNOTATED


@pytest.mark.parametrize("stem", ANNOTATED)
def test_named_index_and_head_equal_the_whole_graph_forms(stem):
    g = _first_network(stem)
    iface = I.interface(g)
    assert iface is not None
    full = I.member_index(g)
    # the annotated paths, every scope path and every op path (prefixes included), and some that are no path
    wanted = set(iface.features) | {iface.classifier, iface.forward_features} - {None}
    wanted |= {n.scope.path for n in g.nodes} | {n.path for n in g.nodes if n.path} | {"nope", "layer9.x"}
    wanted |= {p.rpartition(".")[0] for p in list(wanted)}
    got = I.named_index(g, wanted)
    assert got == {p: full[p] for p in wanted if p in full}
    assert all(x is y for p in got for x, y in zip(got[p], full[p]))
    feat, head, ins = _reference_split(g, iface)
    fast = I._head(g, feat, g.eval_outputs())
    assert fast is None or fast == head  # None: split works the sets out
    s = I.split(g, iface)
    assert s.features is feat and s.inputs == ins
    assert I.split(g, iface, check_only=True) is None


HEAD_BEFORE = """\
network N() {
    input x: [N, 3, 8, 8]
    input y: [N, 4, 8, 8]
    b = y -> conv(4, 1) as side
    x -> conv(4, 1) as stem -> relu as act
    add(b) -> adaptive_avgpool(1) -> flatten -> linear(2) as fc
    @features act
    @classifier fc
}
"""


def test_a_head_that_reads_more_than_the_features_fails_as_before():
    """`side` is needed by the output, not by the features, and comes before them: the walk from the
    output cannot tell it from the features' ancestors by order, so split works out the sets, and
    says the head (`side` first) reads another tensor, the input y, as it always has."""
    from resdsl.diagnostics import ResdslError
    with pytest.raises(ResdslError, match=r"the head of `N` .* also reads %y at"):
        elaborate(Program.from_source(HEAD_BEFORE), "N")
    g = elaborate(Program.from_source(HEAD_BEFORE.replace("    @features act\n", "")), "N")
    side, act = (next(n for n in g.nodes if n.path == p) for p in ("side", "act"))
    assert I._head(g, act.outputs[0], g.outputs) is None  # it reaches `side`, before `act`: the sets decide
    body, need = I._ancestors(side.outputs), I._ancestors(g.outputs)  # from `side` on: all after it
    assert I._head(g, side.outputs[0], g.outputs) == [n for n in g.nodes if n in need and n not in body]
