"""The ONNX lowering of resdsl/ir/ops/quantize.py: `round_ste` is Round (halves to even, as
torch.round); an exported graph computes the forward pass only, so the straight-through
gradient has nothing to lower."""
from __future__ import annotations

from .builder import lowering


@lowering("round_ste")
def _round_ste(b, n, ins):
    return b.final("Round", ins, n)
