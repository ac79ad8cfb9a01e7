"""The torch lowering of resdsl/ir/ops/quantize.py: `round_ste` is
`x + (x.round() - x).detach()`: the rounded value forward, the identity backward."""
from __future__ import annotations

import operator

from .registry import lowering


@lowering("round_ste")
def _round_ste(g, n, ins):
    x = ins[0]
    step = g.call_function(operator.sub, (g.call_method("round", (x,)), x))
    return g.call_function(operator.add, (x, g.call_method("detach", (step,))))
