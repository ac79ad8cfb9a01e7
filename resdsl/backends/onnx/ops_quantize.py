"""The ONNX lowering of `quantize` (resdsl/ir/ops/quantize.py): `Round` (half to even, as
torch.round); an exported graph has no gradient, so both modes are the same node."""
from __future__ import annotations

from .builder import lowering


@lowering("quantize")
def _quantize(b, n, ins):
    return b.final("Round", ins, n)
