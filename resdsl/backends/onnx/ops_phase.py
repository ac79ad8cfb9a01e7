"""The ONNX lowering of resdsl/ir/ops/phase.py. ONNX has no Atan2, so `atan2(y, x)` is written
with Atan and Where as its quadrants define it:

    Atan(y / x)          x > 0
    Atan(y / x) + pi     x < 0, y >= 0
    Atan(y / x) - pi     x < 0, y < 0
    pi/2, -pi/2, 0       x = 0 and y > 0, y < 0, y = 0

That is torch.atan2 for every input but the signed zeros torch tells apart (atan2(0, -0.0) is
pi there, 0 here: -0.0 counts as 0).
"""
from __future__ import annotations

import math

from .builder import lowering


@lowering("atan2")
def _atan2(b, n, ins):
    y, x = ins
    zero = b.const(0.0, name="zero")
    y_neg = b.op("Less", [y, zero])
    a = b.op("Atan", [b.op("Div", [y, x])])
    turn = b.op("Where", [y_neg, b.const(-math.pi, name="minus_pi"), b.const(math.pi, name="pi")])
    a = b.op("Where", [b.op("Less", [x, zero]), b.op("Add", [a, turn]), a])
    axis = b.op("Where", [y_neg, b.const(-math.pi / 2, name="minus_half_pi"),
                          b.op("Where", [b.op("Greater", [y, zero]), b.const(math.pi / 2, name="half_pi"), zero])])
    return b.final("Where", [b.op("Equal", [x, zero]), axis, a], n)
