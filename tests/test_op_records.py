"""One record per op: the op table (resdsl/ir/ops/) holds every fact the compiler has about an
op, and the backends register their lowerings against it in registries that refuse a second
registration. The walk over the table fails for an op that lacks any of them; the facts are
checked against references on a real use of each op (the cases of test_ops): multiply-adds
against torch's FlopCounterMode, parameter initialisation against the torch modules built."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import size_value as concrete
from test_ops import CASES
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.backends.diagram.circuit import acted_axes
from resdsl.backends.diagram.circuit import render as circuit_render
from resdsl.backends.diagram.labels import PALETTE, axes_note, family, op_text
from resdsl.backends.onnx import export as ox
from resdsl.backends.onnx.builder import no_lowering
from resdsl.backends.summary import node_macs
from resdsl.backends.torch import ops as torch_ops
from resdsl.ir.ops import ATTR_INIT, OPS, TORCH_INIT, OpDef, RegistrationError, Registry, op
from resdsl.ir.ops.core import same_shape

FAMILIES = set(PALETTE) - {"block", "io"}
THIS = "tests/test_op_records.py"


def missing(od: OpDef) -> list[str]:
    """What the record of `od` (and the registries) lack, in words that say where to add it."""
    out = []
    if od.name not in torch_ops.LOWERINGS:
        out.append("a torch lowering (@lowering in resdsl/backends/torch/ops.py)")
    if od.name not in ox.LOWERINGS:
        out.append("an ONNX lowering (@lowering in resdsl/backends/onnx/ops.py or layers.py) or a "
                   "no_lowering(op, reason) marker")
    if od.family not in FAMILIES:
        out.append(f"family= (one of {sorted(FAMILIES)})")
    if od.label is not None and not callable(od.label):
        out.append("label= (a function of the node, or None for the op's name)")
    if od.axes_note not in ("", "always", "if_broadcast"):
        out.append('axes_note= ("", "always" or "if_broadcast")')
    if not callable(od.axes):
        out.append("axes= (the acted-axes rule; ops with the elementwise trait get one)")
    if not (callable(od.macs) or (isinstance(od.macs, int) and od.macs == 0)):
        out.append("macs= (0 or a function of the node)")
    if "has_params" in od.traits and od.init not in (TORCH_INIT, ATTR_INIT):
        out.append("init= (TORCH_INIT or ATTR_INIT: it has parameters)")
    if "has_params" not in od.traits and od.init is not None:
        out.append("no init= (it has no parameters)")
    stateful = "has_params" in od.traits or "stochastic" in od.traits
    if stateful and od.name not in torch_ops.RECIPES and "bare_param" not in od.traits \
            and od.name not in ("scalar_mul", "scalar_add"):
        out.append("a torch module recipe (@recipe in resdsl/backends/torch/ops.py)")
    return out


def test_every_op_has_a_complete_record():
    gaps = {name: missing(od) for name, od in sorted(OPS.items())}
    gaps = {name: m for name, m in gaps.items() if m}
    assert not gaps, "ops with incomplete records:\n" + "\n".join(f"  {k}: needs {', '.join(v)}"
                                                              for k, v in gaps.items())


def test_the_walk_names_what_a_bare_record_lacks(monkeypatch):
    monkeypatch.setitem(OPS, "frobnicate", OpDef("frobnicate", [], 1, same_shape, frozenset({"has_params"})))
    gaps = " ".join(missing(OPS["frobnicate"]))
    for what in ("torch lowering", "ONNX lowering", "family=", "axes=", "macs=", "init=", "module recipe"):
        assert what in gaps


def test_declarations_name_their_place():
    assert OPS["conv"].where.startswith("resdsl/ir/ops/conv.py:")
    assert OPS["mish"].where.startswith("resdsl/ir/ops/activation.py:")


def test_the_op_table_refuses_a_second_declaration():
    before = OPS["relu"]
    with pytest.raises(RegistrationError) as e:
        op("relu", [], traits=("elementwise",), family="act", macs=0)(same_shape)
    msg = str(e.value)
    assert "`relu`" in msg and "resdsl/ir/ops/activation.py:" in msg and THIS in msg
    assert OPS["relu"] is before


@pytest.mark.parametrize("registry,where", [(torch_ops.LOWERINGS, "resdsl/backends/torch/ops.py:"),
                                            (torch_ops.RECIPES, "resdsl/backends/torch/ops.py:"),
                                            (ox.LOWERINGS, "resdsl/backends/onnx/layers.py:")])
def test_registries_refuse_a_second_registration(registry, where):
    before = dict(registry)

    def again(*args):
        return None
    with pytest.raises(RegistrationError) as e:
        registry.register("conv")(again)
    msg = str(e.value)
    assert "`conv`" in msg and "twice" in msg and where in msg and f"{THIS}:" in msg
    assert dict(registry) == before


def test_a_refused_registration_registers_none_of_its_names():
    before = dict(torch_ops.RECIPES)
    with pytest.raises(RegistrationError, match="`conv`"):
        torch_ops.recipe("relu", "conv")(lambda n: None)  # relu has no recipe; conv has one
    assert dict(torch_ops.RECIPES) == before


def test_a_registry_refuses_an_op_that_is_not_in_the_table():
    reg = Registry("test lowering")
    with pytest.raises(RegistrationError, match="no op `frobnicate`"):
        reg.register("frobnicate")(lambda: None)
    with pytest.raises(RegistrationError, match="`relu` is registered twice"):
        reg.register("relu", "relu")(lambda: None)
    assert not reg


def test_no_onnx_form_marker_gives_its_reason(monkeypatch):
    src = "network t() {\n    input x: [N, D=5]\n    relu\n    tanh\n}\n"
    g = resdsl.graph(src)
    monkeypatch.delitem(ox.LOWERINGS, "tanh")
    no_lowering("tanh", "the test says so")
    assert not missing(OPS["tanh"])  # the marker stands for the lowering
    with pytest.raises(resdsl.ResdslError) as e:
        ox.to_onnx_model(g, seed=0)
    assert "`tanh`" in e.value.message and "the test says so" in e.value.message and "line 4" in e.value.message
    with pytest.raises(RegistrationError, match="`tanh` is registered twice"):
        no_lowering("tanh", "again")
    with pytest.raises(ValueError, match="reason"):
        no_lowering("relu", " ")


# ------------------------------------------------------------------ the facts on a real use of each op
def _case(name):
    if name == "embedding":
        return "[N, L=3]", "embedding(10, 4) as m"
    return CASES[name][:2]


def _use(name):
    decl, stmts = _case(name)
    src = f"network n() {{\n    input x: {decl}\n    {stmts}\n}}\n"
    g = resdsl.graph(src)
    return src, decl, g, [n for n in g.nodes if n.op == name]


@pytest.mark.parametrize("name", sorted(OPS))
def test_record_facts_on_a_real_use(name):
    _, _, _, nodes = _use(name)
    assert nodes, f"the case of `{name}` does not use it"
    od = OPS[name]
    for n in nodes:
        text = op_text(n)
        assert isinstance(text, str) and text
        assert family(n.op) == od.family
        assert isinstance(axes_note(n), str)
        r = len(n.inputs[0].shape) if n.inputs else 0
        acts = acted_axes(n, r)
        assert acts is None or all(0 <= i < r for i in acts), acts
        if "elementwise" in od.traits:
            assert acts == [], f"`{name}` is elementwise: its box covers no wire"
        if od.init == ATTR_INIT:  # the attributes give every parameter its initial value
            assert all(p.init is not None for p in n.params.values() if p.kind == "param")
        if od.init == TORCH_INIT:  # a torch.nn module initialises them
            assert torch_ops.module_recipe(n) is not None


@pytest.mark.parametrize("name", sorted(OPS))
def test_macs_are_what_torch_counts(name):
    """Multiply-adds of one use of each op against torch.utils.flop_counter (flops / 2) on the
    module resdsl builds, at batch 2."""
    src, decl, g, _ = _use(name)
    gm = resdsl.build(src, seed=0, device="meta").eval()
    sizes = [int(d.split("=")[1]) for d in decl.strip("[]").split(", ")[1:]]
    x = torch.zeros(2, *sizes, dtype=torch.long, device="meta") if name == "embedding" else \
        torch.empty(2, *sizes, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        gm(x)
    macs = sum(concrete(node_macs(n), {"N": 2}) for n in g.nodes)
    assert macs == fc.get_total_flops() / 2


def test_elementwise_ops_are_drawn_beside_the_wires():
    """mish and elu carry the elementwise trait: drawn as relu is (a small box, every wire passing),
    not as a box across the bundle."""
    src = ("network n() {\n    input x: [N, L=4, D=8]\n    y = relu -> mish -> elu(0.5)\n"
           "    y - 1 -> linear(8) as fc\n}\n")
    dot = circuit_render(resdsl.graph(src), "dot", depth=None)[0].decode()

    def box(opname):
        line = next(ln for ln in dot.splitlines() if f'class="op {opname}"' in ln)
        return {k: v for k, v in re.findall(r'(width|height|style)=("[^"]*"|[\d.]+)', line)}
    assert box("mish") == box("relu") == box("elu") == box("shift")
    assert box("linear") != box("relu")  # a box on D, not the elementwise glyph


def test_the_adding_an_op_sample_runs():
    """docs/ops.md's `hardshrink` sample (record, torch and ONNX lowerings, a use) runs as written,
    in a process of its own (it adds an op to the table)."""
    root = Path(__file__).resolve().parents[1]
    sample = re.findall(r"```python\n(.*?)```", (root / "docs" / "ops.md").read_text(), re.DOTALL)[0]
    assert 'op("hardshrink"' in sample
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", sample], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
