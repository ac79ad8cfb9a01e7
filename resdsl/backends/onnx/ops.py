"""The ONNX lowerings of the tensor ops: activations and other elementwise ops, arithmetic
and merges, reshapes and axis permutations, reductions, concatenation, padding and
splitting. Each is registered in :data:`builder.LOWERINGS` with :func:`lowering`;
the ops that hold parameters or are whole layers (convolutions, normalisations,
attention, pooling, LSTM) are in :mod:`layers`. Imports go one way: :mod:`export` ->
:mod:`layers` -> this module -> :mod:`builder`.
"""
from __future__ import annotations

import math

import numpy as np

from .builder import shape_sizes, lowering


@lowering("identity", "dropout", "drop_path")
def _pass(b, n, ins):
    return [ins[0]]


# activations and elementwise math that are one ONNX op of their own
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "HardSwish", "selu": "Selu",
          "softsign": "Softsign", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs"}


@lowering(*_UNARY)
def _unary(b, n, ins):
    return b.final(_UNARY[n.op], ins, n)


@lowering("silu")
def _silu(b, n, ins):
    return b.final("Mul", [ins[0], b.op("Sigmoid", ins)], n)


@lowering("gelu")
def _gelu(b, n, ins):
    approx = n.attrs["approximate"]
    if b.opset >= 20:
        return b.final("Gelu", ins, n, approximate=approx)
    x = ins[0]
    if approx == "tanh":
        x3 = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Mul", [b.op("Add", [x, b.op("Mul", [x3, b.const(0.044715)])]),
                             b.const(math.sqrt(2.0 / math.pi))])
        t = b.op("Tanh", [inner])
    else:
        t = b.op("Erf", [b.op("Mul", [x, b.const(1.0 / math.sqrt(2.0))])])
    half_x = b.op("Mul", [x, b.const(0.5)])
    return b.final("Mul", [half_x, b.op("Add", [t, b.const(1.0)])], n)


@lowering("leaky_relu")
def _leaky(b, n, ins):
    return b.final("LeakyRelu", ins, n, alpha=float(n.attrs["slope"]))


@lowering("scale")
def _scale(b, n, ins):
    return b.final("Mul", [ins[0], b.const(float(n.attrs["factor"]))], n)


@lowering("softmax")
def _softmax(b, n, ins):
    return b.final("Softmax", ins, n, axis=n.attrs["dim"])


def reduce_mean(b, x, axes, keepdims, n=None):
    return reduce_axes(b, "ReduceMean", x, axes, keepdims, n)


@lowering("flatten")
def _reshape(b, n, ins):
    src, dst = shape_sizes(n.inputs[0]), shape_sizes(n.outputs[0])
    if n.op == "flatten" and len(src) >= 2 and n.attrs["start"] % len(src) == 1 and \
            n.attrs["end"] % len(src) == len(src) - 1:
        return b.final("Flatten", ins, n, axis=1)
    return [b.reshape(ins[0], src, dst, b.out_name(n.outputs[0]))]


@lowering("transpose")
def _transpose(b, n, ins):
    r = len(n.inputs[0].shape)
    perm = list(range(r))
    i, j = n.attrs["dim0"] % r, n.attrs["dim1"] % r
    perm[i], perm[j] = perm[j], perm[i]
    return b.final("Transpose", ins, n, perm=perm)


@lowering("permute")
def _permute(b, n, ins):
    return b.final("Transpose", ins, n, perm=list(n.attrs["dims"]))


@lowering("select")
def _select(b, n, ins):
    return b.final("Gather", [ins[0], b.const(n.attrs["index"], np.int64, "index")], n, axis=n.attrs["dim"])


@lowering("add")
def _add(b, n, ins):
    x = ins[0]
    for y in ins[1:-1]:
        x = b.op("Add", [x, y])
    return b.final("Add", [x, ins[-1]], n)


@lowering("mul")
def _mul(b, n, ins):
    return b.final("Mul", ins, n)


# tensor arithmetic: op -> (ONNX op, where the scalar `value` goes)
_ARITH = {"sub": ("Sub", None), "div": ("Div", None), "shift": ("Add", "right"), "rsub": ("Sub", "left"),
          "div_scalar": ("Div", "right"), "rdiv": ("Div", "left")}


@lowering(*_ARITH)
def _arith(b, n, ins):
    kind, scalar = _ARITH[n.op]
    if scalar is None:
        return b.final(kind, ins, n)
    c = b.const(float(n.attrs["value"]))
    return b.final(kind, [c, ins[0]] if scalar == "left" else [ins[0], c], n)


@lowering("neg")
def _neg(b, n, ins):
    return b.final("Neg", ins, n)


@lowering("mean")
def _mean(b, n, ins):
    if len(ins) > 1:
        s = ins[0]
        for y in ins[1:]:
            s = b.op("Add", [s, y])
        return b.final("Div", [s, b.const(float(len(ins)))], n)
    d = n.attrs["dim"]
    axes = list(d) if isinstance(d, (list, tuple)) else [d]
    return reduce_mean(b, ins[0], axes, bool(n.attrs["keepdim"]), n=n)


@lowering("concat")
def _concat(b, n, ins):
    return b.final("Concat", ins, n, axis=n.attrs["dim"] % len(n.inputs[0].shape))


@lowering("matmul")
def _matmul(b, n, ins):
    return b.final("MatMul", ins, n)


@lowering("chunk")
def _split(b, n, ins):
    dim = n.attrs["dim"]
    sizes = [a.shape[dim].size for a in n.outputs]
    return b.final("Split", [ins[0], b.ints(sizes, "split")], n, axis=dim)


# ---- reductions, padding, broadcasting
def reduce_axes(b, op_type, x, axes, keepdims, n=None):
    """Reduce* with `axes` as an input where the opset wants it (ReduceSum from 13, the rest from 18)."""
    if op_type == "ReduceSum" or b.opset >= 18:
        ins, kw = [x, b.ints(axes, "axes")], {}
    else:
        ins, kw = [x], {"axes": list(axes)}
    if n is not None:
        return b.final(op_type, ins, n, keepdims=int(keepdims), **kw)
    return b.op(op_type, ins, keepdims=int(keepdims), **kw)


@lowering("pad")
def _pad(b, n, ins):
    w = list(n.attrs["widths"])
    rank = len(n.inputs[0].shape)
    begin, end = [0] * rank, [0] * rank
    for k in range(len(w) // 2):  # torch order: last axis first, (lo, hi) pairs
        begin[rank - 1 - k], end[rank - 1 - k] = w[2 * k], w[2 * k + 1]
    return b.final("Pad", [ins[0], b.ints(begin + end, "pads"), b.const(float(n.attrs["value"]), name="value")],
                   n, mode="constant")


@lowering("l2norm")
def _l2norm(b, n, ins):
    norm = reduce_axes(b, "ReduceL2", ins[0], [n.attrs["dim"]], True)
    return b.final("Div", [ins[0], b.op("Max", [norm, b.const(float(n.attrs["eps"]), name="eps")])], n)


@lowering("orthogonal")
def _orthogonal(b, n, ins):
    f, x = ins
    d = [n.attrs["dim"]]
    dot = reduce_axes(b, "ReduceSum", b.op("Mul", [x, f]), d, True)
    nrm = reduce_axes(b, "ReduceSum", b.op("Mul", [x, x]), d, True)
    coef = b.op("Div", [dot, b.op("Add", [nrm, b.const(float(n.attrs["eps"]), name="eps")])])
    return b.final("Sub", [f, b.op("Mul", [coef, x])], n)


@lowering("expand")
def _expand(b, n, ins):
    x, like = ins
    dims = set(n.attrs["dims"])
    like_sizes = shape_sizes(n.inputs[1])
    pieces, run = [], []
    for d in range(len(like_sizes)):
        s = like_sizes[d]
        if d not in dims or isinstance(s, int):
            run.append(s if d in dims else 1)  # 1 keeps x's own size (broadcasting)
            continue
        if run:
            pieces.append(b.ints(run))
            run = []
        pieces.append(b.op("Shape", [like], start=d, end=d + 1))
    if run:
        pieces.append(b.ints(run))
    shape = pieces[0] if len(pieces) == 1 else b.op("Concat", pieces, axis=0)
    return b.final("Expand", [x, shape], n)


@lowering("stack")
def _stack(b, n, ins):
    axes = b.ints([n.attrs["dim"]], "axes")
    return b.final("Concat", [b.op("Unsqueeze", [x, axes]) for x in ins], n, axis=n.attrs["dim"])


@lowering("sum")
def _sum(b, n, ins):
    d = n.attrs["dim"]
    axes = list(d) if isinstance(d, (list, tuple)) else [d]
    return reduce_axes(b, "ReduceSum", ins[0], axes, bool(n.attrs["keepdim"]), n=n)


# ---- activations made of several ONNX ops, or of one with other arguments
@lowering("relu6", "clamp", "hardtanh")
def _clip(b, n, ins):
    a = n.attrs
    lo, hi = {"relu6": (0.0, 6.0), "clamp": (a.get("min"), a.get("max")),
              "hardtanh": (a.get("min_val"), a.get("max_val"))}[n.op]
    bounds = ["" if v is None else b.const(float(v)) for v in (lo, hi)]  # "": that bound is absent
    while bounds and bounds[-1] == "":
        bounds.pop()
    return b.final("Clip", [ins[0]] + bounds, n)


@lowering("hardsigmoid")
def _hardsigmoid(b, n, ins):  # torch: relu6(x + 3) / 6
    return b.final("HardSigmoid", ins, n, alpha=1.0 / 6.0, beta=0.5)


@lowering("elu", "celu")
def _elu(b, n, ins):
    return b.final(n.op.capitalize(), ins, n, alpha=float(n.attrs["alpha"]))


def _softplus_of(b, x, beta=1.0, threshold=20.0):
    """torch's softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    bx = x if beta == 1.0 else b.op("Mul", [x, b.const(float(beta))])
    y = b.op("Softplus", [bx])
    if beta != 1.0:
        y = b.op("Div", [y, b.const(float(beta))])
    return b.op("Where", [b.op("Greater", [bx, b.const(float(threshold))]), x, y])


@lowering("softplus")
def _softplus(b, n, ins):
    y = _softplus_of(b, ins[0], n.attrs["beta"], n.attrs["threshold"])
    return b.final("Identity", [y], n)


@lowering("mish")
def _mish(b, n, ins):
    if b.opset >= 18:
        return b.final("Mish", ins, n)
    return b.final("Mul", [ins[0], b.op("Tanh", [_softplus_of(b, ins[0])])], n)


@lowering("logsigmoid")
def _logsigmoid(b, n, ins):  # log(sigmoid(x)) = -softplus(-x), without overflow
    return b.final("Neg", [b.op("Softplus", [b.op("Neg", ins)])], n)


@lowering("rsqrt")
def _rsqrt(b, n, ins):
    return b.final("Reciprocal", [b.op("Sqrt", ins)], n)


@lowering("glu")
def _glu(b, n, ins):
    d = n.attrs["dim"]
    h = n.outputs[0].shape[d].size
    first, second = b.emit("Split", [ins[0], b.ints([h, h], "split")], 2, axis=d)
    return b.final("Mul", [first, b.op("Sigmoid", [second])], n)


from . import ops_elementwise_math  # noqa: E402, F401 (registers the lowerings of elementwise_math's ops)
from . import ops_quantize  # noqa: E402, F401 (quantize)
from . import ops_phase  # noqa: E402, F401 (atan2)
from . import ops_sizes  # noqa: F401 (run-time sizes; importing it registers its lowerings)
