"""Quantization of a tensor to integers, as learned codecs quantize their latents.

``quantize`` rounds every element to the nearest integer, half to even (torch.round, the ONNX
``Round``: the same rule). Its gradient is the choice that matters for training:

* ``mode="straight_through"`` (the default): the straight-through estimator, round(x) forward
  and the identity backward (``x + (round(x) - x).detach()``), so the encoder before it trains;
* ``mode="round"``: plain rounding, whose gradient is zero (what an exported decoder computes).

Both are the same function forward, so every target's inference is the same ``Round``.
"""
from __future__ import annotations

from .core import Legal, op, same_shape

MODES = ("straight_through", "round")


def _label(n):
    return "round (straight-through)" if n.attrs["mode"] == "straight_through" else "round"


op("quantize", [("mode", "str", "straight_through", Legal(choices=MODES))], traits=("elementwise", "pure"),
   doc="round to the nearest integer, half to even; mode straight_through: the identity's gradient "
       "(the straight-through estimator), round: zero gradient",
   family="act", label=_label, macs=0)(same_shape)
