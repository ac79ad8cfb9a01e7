"""The torch lowering of `sdpa` (resdsl/ir/ops/sdpa.py): heads split from the last axis,
torch.nn.functional.scaled_dot_product_attention (its `is_causal` makes the causal mask, so no
buffer holds one), the heads merged back."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from .registry import lowering


@lowering("sdpa")
def _sdpa(g, n, ins):
    a = n.attrs
    h = a["heads"]

    def heads(x, v):  # [N, L, D] -> [N, heads, L, D / heads]
        d = v.shape[2].size
        return g.call_method("transpose", (g.call_function(torch.unflatten, (x, -1, (h, d // h))), 1, 2))

    q, k, v = (heads(x, val) for x, val in zip(ins, n.inputs))
    kw = {"is_causal": True} if a["causal"] else {}
    if a["scale"] is not None:
        kw["scale"] = float(a["scale"])
    y = g.call_function(F.scaled_dot_product_attention, (q, k, v), kw)
    return g.call_method("flatten", (g.call_method("transpose", (y, 1, 2)), 2))


@lowering("positions")
def _positions(g, n, ins):  # [N, L] -> [[0, 1, .., L-1]], on the ids' device, without a buffer
    row = g.call_method("narrow", (ins[0], 0, 0, 1))
    ones = g.call_method("new_ones", (row, g.call_method("size", (row,))))
    return g.call_method("long", (g.call_function(operator.sub, (g.call_method("cumsum", (ones, 1)), 1)),))
