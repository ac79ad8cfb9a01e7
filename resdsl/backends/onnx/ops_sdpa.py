"""The ONNX lowering of `sdpa` (resdsl/ir/ops/sdpa.py): per-head MatMul, Softmax, MatMul; the
causal mask is -inf above the diagonal (Trilu of a run-time [Lq, Lk] tensor), as torch's
`is_causal` masks."""
from __future__ import annotations

import math

from .builder import lowering


@lowering("sdpa")
def _sdpa(b, n, ins):
    from onnx import TensorProto
    a = n.attrs
    h = a["heads"]

    def heads(x, v, perm):
        d = v.shape[2].size
        return b.op("Transpose", [b.op("Reshape", [x, b.ints([0, 0, h, d // h])])], perm=perm)

    q = heads(ins[0], n.inputs[0], [0, 2, 1, 3])
    kt = heads(ins[1], n.inputs[1], [0, 2, 3, 1])  # [N, heads, D / heads, Lk]
    v = heads(ins[2], n.inputs[2], [0, 2, 1, 3])
    dh = n.inputs[0].shape[2].size // h
    scale = float(a["scale"]) if a["scale"] is not None else 1.0 / math.sqrt(dh)
    scores = b.op("Mul", [b.op("MatMul", [q, kt]), b.const(scale)])
    if a["causal"]:
        lq = b.op("Shape", [ins[0]], start=1, end=2)
        lk = b.op("Shape", [ins[1]], start=1, end=2)
        neg = b.op("ConstantOfShape", [b.op("Concat", [lq, lk], axis=0)],
                   value=b.helper.make_tensor("value", TensorProto.FLOAT, [1], [float("-inf")]))
        scores = b.op("Add", [scores, b.op("Trilu", [neg, b.ints([1], "k")], upper=1)])
    att = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
    dv = n.inputs[2].shape[2].size
    return b.final("Reshape", [b.op("Transpose", [att], perm=[0, 2, 1, 3]), b.ints([0, 0, dv])], n)


@lowering("positions")
def _positions(b, n, ins):  # Range(0, L) at run time, [1, L] int64
    length = b.op("Squeeze", [b.op("Shape", [ins[0]], start=1, end=2), b.ints([0], "axes")])
    ids = b.op("Range", [b.const(0, dtype="int64", name="zero"), length, b.const(1, dtype="int64", name="one")])
    return b.final("Unsqueeze", [ids, b.ints([0], "axes")], n)
