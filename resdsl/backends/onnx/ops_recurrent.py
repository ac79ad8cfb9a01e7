"""ONNX lowerings of the ops that carry state across time steps (resdsl/ir/ops/recurrent.py).
Each is unrolled over its fixed number of time steps (ONNX's Loop and Scan would keep the loop,
but an unrolled graph is what runtimes optimise best for a handful of steps): a time-major
[T*N, ..] input is split into its steps with Reshape and Gather, the steps' outputs joined with
Concat. The spike is Greater + Cast (the surrogate gradient only matters in training); the
ConvLSTM is Conv, Sigmoid, Tanh; the reservoir MatMul and Tanh on its frozen weights."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .builder import lowering


def _steps(b, x, steps, rank):
    """The `steps` slices [N, ..] of a time-major [T*N, ..] tensor x of rank `rank`."""
    x5 = b.op("Unsqueeze", [x, b.ints([0], "axes")])                     # [1, T*N, ..]
    xs = b.op("Reshape", [x5, b.ints([steps, -1] + [0] * (rank - 1))])   # [T, N, ..]
    return [b.op("Gather", [xs, b.const(t, np.int64, "step")], axis=0) for t in range(steps)]


@lowering("lif")
def _lif(b, n, ins):
    a = n.attrs
    decay, th = b.const(float(a["decay"])), b.const(float(a["threshold"]))
    one = b.const(1.0)
    out, u, s = [], None, None
    for x_t in _steps(b, ins[0], a["steps"], len(n.inputs[0].shape)):
        if u is None:
            u = x_t
        elif a["reset"] == "soft":
            u = b.op("Add", [b.op("Mul", [b.op("Sub", [u, b.op("Mul", [s, th])]), decay]), x_t])
        else:
            u = b.op("Add", [b.op("Mul", [b.op("Mul", [u, decay]), b.op("Sub", [one, s])]), x_t])
        s = b.op("Cast", [b.op("Greater", [u, th])], to=TensorProto.FLOAT)
        out.append(s)
    return b.final("Concat", out, n, axis=0)


@lowering("convlstm")
def _convlstm(b, n, ins):
    a = n.attrs
    k, hid = a["kernel"], a["hidden"]
    w = b.param(n, "weight")
    bias = [b.param(n, "bias")] if "bias" in n.params else []
    out, h, c = [], None, None
    for x_t in _steps(b, ins[0], a["steps"], 4):
        if h is None:  # zero state [N, hidden, H, W]
            shape = b.op("Shape", [x_t])
            size = b.op("Concat", [b.op("Slice", [shape, b.ints([0], "start"), b.ints([1], "end")]),
                                   b.ints([hid], "hidden"),
                                   b.op("Slice", [shape, b.ints([2], "start"), b.ints([4], "end")])], axis=0)
            h = c = b.op("Expand", [b.const(0.0), size])
            if len(ins) == 2:
                c = ins[1]
        z = b.op("Conv", [b.op("Concat", [x_t, h], axis=1), w] + bias, kernel_shape=[k, k],
                 pads=[k // 2] * 4)
        i, f, g, o = b.emit("Split", [z, b.ints([hid] * 4, "split")], 4, axis=1)
        c = b.op("Add", [b.op("Mul", [b.op("Sigmoid", [f]), c]),
                         b.op("Mul", [b.op("Sigmoid", [i]), b.op("Tanh", [g])])])
        h = b.op("Mul", [b.op("Sigmoid", [o]), b.op("Tanh", [c])])
        out.append(h)
    return b.final("Concat", out, n, axis=0)


@lowering("reservoir")
def _reservoir(b, n, ins):
    a = n.attrs
    steps = n.inputs[0].shape[1].size
    if not isinstance(steps, int):
        b.unsupported(f"`reservoir` over a time axis of symbolic size {steps}: the ONNX graph unrolls "
                      "a fixed number of time steps",
                      help="give the time axis a size in the input declaration, e.g. [N, T=16, D]")

    def lin(v, name):
        return b.op("MatMul", [v, b.op("Transpose", [b.param(n, name)], perm=[1, 0])])

    z = lin(ins[0], "weight_in")                                       # [N, T, U]
    if "bias" in n.params:
        z = b.op("Add", [z, b.param(n, "bias")])
    alpha, beta = b.const(float(a["alpha"])), b.const(float(a["beta"]))
    out, h = [], None
    for t in range(steps):
        pre = b.op("Gather", [z, b.const(t, np.int64, "step")], axis=1)  # [N, U]
        if h is not None and "weight_rec" in n.params:
            pre = b.op("Add", [pre, lin(h, "weight_rec")])
        act = b.op("Tanh", [pre]) if a["activation"] == "tanh" else pre
        new = b.op("Mul", [act, beta])
        if h is not None and a["temporal"] != "none":
            carried = h if a["temporal"] == "identity" else lin(h, "residual_map")
            new = b.op("Add", [b.op("Mul", [carried, alpha]), new])
        h = new
        out.append(b.op("Unsqueeze", [h, b.ints([1], "axes")]))
    return b.final("Concat", out, n, axis=1)
