"""The torch lowerings and module recipes of the ops whose computation depends on the sample
(resdsl/ir/ops/dynamic.py): skip_gate, route, vq and resfield are modules of
:mod:`runtime_dynamic`; combine is a sum of products."""
from __future__ import annotations

import operator

import torch

from .registry import lowering, recipe
from .registry import stateful as _stateful, unsupported as _unsupported


@recipe("skip_gate")
def _skip_gate_module(n):
    a = n.attrs
    kw = {}
    if a["mode"] != "straight_through":
        kw["mode"] = a["mode"]
    if a["threshold"] != 0.5:
        kw["threshold"] = a["threshold"]
    return "SkipGate", (a["_c"],), kw, []


@recipe("route")
def _route_module(n):
    a = n.attrs
    kw = {"k": a["k"]} if a["k"] != 1 else {}
    if a["normalize"]:
        kw["normalize"] = True
    return "TopKRouter", (a["_in"], a["experts"]), kw, []


@recipe("vq")
def _vq_module(n):
    a = n.attrs
    return "VectorQuantizer", (a["_d"], a["codes"]), {"beta": a["beta"]} if a["beta"] != 0.25 else {}, []


@recipe("resfield")
def _resfield_module(n):
    a = n.attrs
    return ("ResFieldLinear", (a["_in"], a["out"], a["frames"], a["rank"]), {} if a["bias"] else {"bias": False}, [])


@lowering("skip_gate", "resfield")
def _module(g, n, ins):
    if not _stateful(n):
        raise _unsupported(n)
    return g.call_module(n.path, tuple(ins))


@lowering("route", "vq")
def _two_outputs(g, n, ins):  # (gates, aux loss), (quantized, loss)
    if not _stateful(n):
        raise _unsupported(n)
    out = g.call_module(n.path, tuple(ins))
    return [g.call_function(operator.getitem, (out, i)) for i in range(2)]


@lowering("combine")
def _combine(g, n, ins):  # sum(stack(ys, -1) * gates[.., None, .., :], -1)
    gates, ys = ins[0], ins[1:]
    w = gates
    for _ in range(len(n.outputs[0].shape) - (len(n.inputs[0].shape) - 1)):
        w = g.call_method("unsqueeze", (w, -2))
    stacked = g.call_function(torch.stack, (list(ys), -1))
    return g.call_function(torch.sum, (g.call_function(operator.mul, (stacked, w)), -1))
