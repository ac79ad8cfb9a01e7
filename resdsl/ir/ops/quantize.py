"""Quantization as look-up-table networks train it: ``round_ste``, rounding to the nearest
integer in the forward pass (torch.round: halves to even) with the identity as its gradient
(the straight-through estimator; MuLUT's and AutoLUT's "BPDA" ``round_func``), so a network
can be trained with the values its look-up tables will hold."""
from __future__ import annotations

from .core import op, same_shape

op("round_ste", [], traits=("elementwise", "pure"),
   doc="round to the nearest integer (halves to even, as torch.round); the gradient passes straight "
       "through (identity), as MuLUT's BPDA rounding", family="act", macs=0)(same_shape)
