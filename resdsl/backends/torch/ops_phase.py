"""The torch lowering of resdsl/ir/ops/phase.py: `atan2(y, x)` is `torch.atan2(y, x)`."""
from __future__ import annotations

import torch

from .registry import lowering


@lowering("atan2")
def _atan2(g, n, ins):
    return g.call_function(torch.atan2, (ins[0], ins[1]))
