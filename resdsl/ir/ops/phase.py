"""Phase of a complex value given as its two real parts: `atan2(y, x)`, the angle of x + iy in
[-pi, pi], as torch.atan2 (and Python's math.atan2) define it. APNet's phase spectrum predictor
(stdlib/apnet.res) ends in it: two parallel convolutions give the pseudo real and imaginary
parts R and I, and the phase is atan2(I, R). The two inputs are tensors and broadcast like
torch's (`atan2(i, r)` in a .res file).
"""
from __future__ import annotations

from .core import op
from .elementwise_math import broadcast_all


@op("atan2", [], inputs=2, traits=("pure", "elementwise"),
    doc="atan2(y, x): the angle of x + iy in [-pi, pi], elementwise, as torch.atan2", family="merge", macs=0)
def _atan2(ins, a):
    return [broadcast_all("atan2", ins)], {}
