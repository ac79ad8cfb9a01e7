"""Torch lowerings of the ops whose sizes are read at run time (ir/runsizes.py): reshape,
rearrange and split with symbolic sizes, unsqueeze, squeeze, pad_to_multiple, crop.

A symbolic size becomes ``x.size(j)`` of the tensor that has it, and integer arithmetic on it
(``h = x.size(2) // 4``), so the module traces with torch.fx, compiles with torch.compile and
runs at every input size; the standalone file shows the same code."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from ...ir import runsizes as RS
from .registry import lowering


class Sizes:
    """Reads the symbolic sizes of node `n` from its inputs' shapes, one `size()` call per axis."""

    def __init__(self, g, n, ins):
        self.g, self.n, self.ins = g, n, ins
        self.dims = RS.dims_of([v.shape for v in n.inputs])
        self.cache = {}

    def get(self, s):
        e = RS.plan(s, self.dims)
        return None if e is None else self.render(e)

    def render(self, e):
        if isinstance(e, int):
            return e
        if e in self.cache:
            return self.cache[e]
        g, cf = self.g, self.g.call_function
        if e[0] == "dim":
            _, k, j = e
            out = g.call_method("size", (self.ins[k], j))
            name = self.n.inputs[k].shape[j].name
            out.meta["res_name"] = name.lower() if name and name.isidentifier() else "size"
        elif e[0] == "mul":
            out = cf(operator.mul, (self.render(e[1]), self.render(e[2])))
        elif e[0] == "add":
            out = cf(operator.add, (self.render(e[1]), self.render(e[2])))
        elif e[0] == "div":
            out = cf(operator.floordiv, (self.render(e[1]), e[2]))
        else:  # ceil: rounded up to a multiple
            _, a, m = e
            out = cf(operator.mul, (cf(operator.floordiv, (cf(operator.add, (self.render(a), m - 1)), m)), m))
        if not isinstance(out, int):
            out.meta.setdefault("res_name", "size")
        self.cache[e] = out
        return out

    def shape(self, sizes, slack: int = 1):
        """A size list for reshape/unflatten: ints, run-time sizes, and -1 for the one left out."""
        sizes = list(sizes)
        plans = [RS.plan(s, self.dims) for s in sizes]
        missing = [i for i, e in enumerate(plans) if e is None]
        if not missing and slack:
            sym = [i for i, s in enumerate(sizes) if not isinstance(s, int)]
            missing = sym[-1:]
        return [-1 if i in missing else self.render(e) for i, e in enumerate(plans)]


def reshape(g, n, ins):
    shape = Sizes(g, n, ins).shape([ax.size for ax in n.outputs[0].shape])
    return g.call_method("reshape", (ins[0], tuple(shape)))


def rearrange(g, n, ins):
    x = ins[0]
    sz = Sizes(g, n, ins)
    for step in n.attrs["_steps"]:
        if step[0] == "unflatten":
            fs = tuple(sz.shape(step[2]))
            x = g.call_function(torch.unflatten, (x, step[1], fs))
        elif step[0] == "permute":
            x = g.call_method("permute", (x, step[1]))
        elif step[0] == "squeeze":
            x = g.call_method("squeeze", (x, step[1]))
        elif step[0] == "unsqueeze":
            x = g.call_method("unsqueeze", (x, step[1]))
        else:
            x = g.call_function(torch.flatten, (x, step[1], step[2]))
    return x


def split(g, n, ins):
    sizes = n.attrs["_sizes"]
    sz = Sizes(g, n, ins)
    got = [s if isinstance(s, int) else sz.get(s) for s in sizes]
    if any(v is None for v in got):  # the one piece not read: what the others leave of the axis
        i = got.index(None)
        rest = g.call_method("size", (ins[0], n.attrs["dim"]))
        for k, v in enumerate(got):
            if k != i:
                rest = g.call_function(operator.sub, (rest, v))
        rest.meta["res_name"] = "rest"
        got[i] = rest
    parts = g.call_function(torch.split, (ins[0], got, n.attrs["dim"]))
    return [g.call_function(operator.getitem, (parts, i)) for i in range(len(n.outputs))]


@lowering("unsqueeze")
def _unsqueeze(g, n, ins):
    return g.call_method("unsqueeze", (ins[0], n.attrs["dim"]))


@lowering("squeeze")
def _squeeze(g, n, ins):
    return g.call_method("squeeze", (ins[0], n.attrs["dim"]))


@lowering("pad_to_multiple")
def _pad_to_multiple(g, n, ins):
    a, x = n.attrs, ins[0]
    rank, m = len(n.inputs[0].shape), a["mult"]
    first = min(a["dims"])
    pads = []
    for d in reversed(range(first, rank)):  # F.pad order: last axis first, (before, after) pairs
        if d not in a["dims"]:
            pads += [0, 0]
            continue
        size = n.inputs[0].shape[d].size
        if isinstance(size, int):
            pads += [0, -size % m]
        else:
            s = g.call_method("size", (x, d))  # ceil(s / m) * m - s
            s.meta["res_name"] = (n.inputs[0].shape[d].name or "size").lower()
            more = g.call_function(operator.add, (s, m - 1))
            more.meta["res_name"] = "size"
            up = g.call_function(operator.floordiv, (more, m))
            up.meta["res_name"] = "size"
            p = g.call_function(operator.sub, (g.call_function(operator.mul, (up, m)), s))
            p.meta["res_name"] = "pad"
            pads += [0, p]
    if all(isinstance(p, int) and p == 0 for p in pads):
        return x
    return g.call_function(F.pad, (x, pads), {"value": a["value"]} if a["value"] else {})


@lowering("crop")
def _crop(g, n, ins):
    x = ins[0]
    sz = Sizes(g, n, ins)
    for d, s in zip(n.attrs["dims"], n.attrs["sizes"]):
        if s == n.inputs[0].shape[d].size:
            continue
        x = g.call_method("narrow", (x, d, 0, s if isinstance(s, int) else sz.get(s)))
    return x
