"""ONNX lowerings of the ops whose computation depends on the sample (resdsl/ir/ops/dynamic.py).
ONNX has every operator they need: the gate is Gemm, Sigmoid and Greater (its inference form:
an exported model is evaluated), the router TopK and ScatterElements, the quantizer ArgMin and
Gather, the ResFields layer Gather and MatMul. The losses are computed as in torch."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .builder import input_type, lowering, shape_sizes
from .ops import reduce_axes


def _zeros_like(b, x):
    return b.op("Mul", [x, b.const(0.0)])


@lowering("skip_gate")
def _skip_gate(b, n, ins):
    x = n.inputs[0]
    flat = b.op("Flatten", ins, axis=1)
    p = b.op("Sigmoid", [b.op("Gemm", [flat, b.param(n, "weight"), b.param(n, "bias")], transB=1)])
    p = b.reshape(p, [x.shape[0].size, 1], shape_sizes(n.outputs[0]))
    hard = b.op("Greater", [p, b.const(float(n.attrs["threshold"]))])
    return b.final("Cast", [hard], n, to=TensorProto.FLOAT)


@lowering("route")
def _route(b, n, ins):
    a = n.attrs
    rank = len(n.inputs[0].shape)
    w_t = b.op("Transpose", [b.param(n, "weight")], perm=[1, 0])
    probs = b.op("Softmax", [b.op("MatMul", [ins[0], w_t])], axis=-1)
    top, idx = b.emit("TopK", [probs, b.ints([a["k"]], "k")], 2, axis=-1)
    if a["normalize"]:
        top = b.op("Div", [top, reduce_axes(b, "ReduceSum", top, [-1], True)])
    zeros = _zeros_like(b, probs)
    gates_name, aux_name = (b.out_name(v) for v in n.outputs)
    b.emit("ScatterElements", [zeros, idx, top], [gates_name], axis=-1)
    ones = b.op("Add", [_zeros_like(b, top), b.const(1.0)])
    chosen = b.op("ScatterElements", [zeros, idx, ones], axis=-1)
    lead = list(range(rank - 1))
    f = reduce_axes(b, "ReduceMean", chosen, lead, False)
    p = reduce_axes(b, "ReduceMean", probs, lead, False)
    fp = b.op("Mul", [b.op("Mul", [f, p]), b.const(float(a["experts"]) / a["k"])])
    b.emit("ReduceSum", [fp, b.ints([0], "axes")], [aux_name], keepdims=0)
    return [gates_name, aux_name]


@lowering("combine")
def _combine(b, n, ins):
    gates, ys = ins[0], ins[1:]
    r_out, r_lead = len(n.outputs[0].shape), len(n.inputs[0].shape) - 1
    extra = list(range(r_lead, r_out))
    out = None
    for e, y in enumerate(ys):
        w = b.op("Gather", [gates, b.const(e, np.int64, "expert")], axis=-1)
        if extra:
            w = b.op("Unsqueeze", [w, b.ints(extra, "axes")])
        term = b.op("Mul", [w, y])
        out = term if out is None else b.op("Add", [out, term])
    return b.final("Identity", [out], n)


@lowering("vq")
def _vq(b, n, ins):
    x = ins[0]
    c = b.param(n, "codebook")
    d = n.attrs["_d"]
    flat = b.op("Reshape", [x, b.ints([-1, d])])
    xx = reduce_axes(b, "ReduceSum", b.op("Mul", [flat, flat]), [1], True)
    cc = reduce_axes(b, "ReduceSum", b.op("Mul", [c, c]), [1], False)
    xc = b.op("MatMul", [flat, b.op("Transpose", [c], perm=[1, 0])])
    dist = b.op("Add", [b.op("Sub", [xx, b.op("Mul", [xc, b.const(2.0)])]), cc])
    idx = b.op("ArgMin", [dist], axis=1, keepdims=0)
    q = b.op("Reshape", [b.op("Gather", [c, idx], axis=0), b.op("Shape", [x])])
    q_name, loss_name = (b.out_name(v) for v in n.outputs)
    b.emit("Identity", [q], [q_name])
    diff = b.op("Sub", [q, x])
    mse = reduce_axes(b, "ReduceMean", b.op("Mul", [diff, diff]), list(range(len(n.inputs[0].shape))), False)
    b.emit("Mul", [mse, b.const(1.0 + float(n.attrs["beta"]))], [loss_name])
    return [q_name, loss_name]


@lowering("resfield")
def _resfield(b, n, ins):
    x, t = ins
    a = n.attrs
    o, d, r = a["out"], a["_in"], a["rank"]
    rank_x = len(n.inputs[0].shape)
    v_t = n.inputs[1]
    is_int = input_type(b.graph, v_t) == TensorProto.INT64 if v_t in b.graph.inputs else v_t.dtype == "int64"
    idx = t if is_int else b.op("Cast", [t], to=TensorProto.INT64)
    v = b.op("Gather", [b.param(n, "coeffs"), idx], axis=0)                       # [N, R]
    basis = b.op("Reshape", [b.param(n, "basis"), b.ints([r, o * d])])
    delta = b.op("Reshape", [b.op("MatMul", [v, basis]), b.ints([-1, o, d])])   # [N, O, D]
    w = b.op("Add", [delta, b.param(n, "weight")])
    x3 = x if rank_x == 3 else b.op("Unsqueeze", [x, b.ints([1], "axes")])
    y = b.op("MatMul", [x3, b.op("Transpose", [w], perm=[0, 2, 1])])            # [N, P, O]
    if rank_x == 2:
        y = b.op("Squeeze", [y, b.ints([1], "axes")])
    if "bias" in n.params:
        return b.final("Add", [y, b.param(n, "bias")], n)
    return b.final("Identity", [y], n)
