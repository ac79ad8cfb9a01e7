"""The torch lowering of `quantize` (resdsl/ir/ops/quantize.py): `x.round()` (torch.round), and for
the straight-through mode `x + (x.round() - x).detach()` (round forward, identity backward)."""
from __future__ import annotations

import operator

from .registry import lowering


@lowering("quantize")
def _quantize(g, n, ins):
    x = ins[0]
    r = g.call_method("round", (x,))
    if n.attrs["mode"] == "round":
        return r
    return g.call_function(operator.add, (x, g.call_method("detach", (g.call_function(operator.sub, (r, x)),))))
