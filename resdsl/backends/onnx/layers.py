"""The ONNX lowerings of the layers, the ops that hold parameters or build a whole
layer: convolutions (with BatchNorm folding), linear, the normalisations, embedding,
attention, pooling, resizing, LSTM and the parameter ops (``param``, ``scalar_mul``,
``scalar_add``, ``layer_scale``, ``prelu``). Each is registered in
:data:`builder.LOWERINGS` with :func:`lowering`; the tensor ops are in
:mod:`ops`. Imports go one way: :mod:`export` -> this module -> :mod:`ops` ->
:mod:`builder`.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.graph import Node
from .builder import input_type, shape_sizes, to_numpy, lowering
from .ops import reduce_mean


def _pads(n: Node, nsp: int):
    a = n.attrs
    if a.get("_padding") == "same":
        tot = a["_pad_total"]
        begin = [t // 2 for t in tot]
        return begin + [t - bb for t, bb in zip(tot, begin)]
    p = a.get("_padding", a.get("padding", 0))
    p = (p,) * nsp if isinstance(p, int) else tuple(p)
    return list(p) + list(p)


def _tup(v, n):
    return [v] * n if isinstance(v, int) else list(v)


@lowering("conv")
def _conv(b, n, ins):
    a = n.attrs
    nsp = a["_nd"]
    pads = _pads(n, nsp)
    x = ins[0]
    if a["padding_mode"] != "zeros" and any(pads):
        mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(a["padding_mode"])
        if mode is None:
            b.unsupported(f"padding_mode {a['padding_mode']!r}")
        if mode == "wrap" and b.opset < 19:  # no Pad mode `wrap` before opset 19: wrap with Slice + Concat
            for i in range(nsp):
                lo, hi, axis = pads[i], pads[nsp + i], 2 + i
                parts = []
                if lo:
                    parts.append(b.op("Slice", [x, b.ints([-lo], "starts"), b.ints([2 ** 62], "ends"),
                                                b.ints([axis], "axes")]))
                parts.append(x)
                if hi:
                    parts.append(b.op("Slice", [x, b.ints([0], "starts"), b.ints([hi], "ends"),
                                                b.ints([axis], "axes")]))
                x = b.op("Concat", parts, axis=axis) if len(parts) > 1 else x
        else:
            x = b.op("Pad", [x, b.ints([0, 0] + pads[:nsp] + [0, 0] + pads[nsp:], "pads")], mode=mode)
        pads = [0] * (2 * nsp)
    out_v = n.outputs
    bn = b.fold.get(n)
    if bn is not None:
        w, bias = _fold_bn(b, n, bn)
        out_v = bn.outputs
        b.skip.add(bn)
    else:
        w = b.param(n, "weight")
        bias = b.param(n, "bias") if "bias" in n.params else None
    inputs = [x, w] + ([bias] if bias is not None else [])
    outs = b.emit("Conv", inputs, [b.out_name(v) for v in out_v], kernel_shape=_tup(a["kernel"], nsp),
                  strides=_tup(a["stride"], nsp), pads=pads, dilations=_tup(a["dilation"], nsp),
                  group=a["groups"])
    if bn is not None:
        b.env[bn.outputs[0]] = outs[0]
    return outs


def _fold_bn(b, conv: Node, bn: Node):
    """Conv weights with the BatchNorm after them folded in (float64 arithmetic)."""
    wname, bname = f"{conv.path}.weight", f"{conv.path}.bias"
    if wname in b.inits:
        return wname, bname  # a shared conv+bn pair: folded once (_bn_folds folds a conv everywhere or nowhere)
    st = b.state
    w = to_numpy(st[wname]).astype(np.float64)
    c = w.shape[0]
    cb = to_numpy(st[bname]).astype(np.float64) if "bias" in conv.params else np.zeros(c)
    mean = to_numpy(st[f"{bn.path}.running_mean"]).astype(np.float64)
    var = to_numpy(st[f"{bn.path}.running_var"]).astype(np.float64)
    if "weight" in bn.params:
        gamma = to_numpy(st[f"{bn.path}.weight"]).astype(np.float64)
        beta = to_numpy(st[f"{bn.path}.bias"]).astype(np.float64)
    else:
        gamma, beta = np.ones(c), np.zeros(c)
    s = gamma / np.sqrt(var + float(bn.attrs["eps"]))
    note = f"with BatchNorm {bn.path} folded in (inference form)"
    b.add_init(wname, (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32), f"{wname} {note}")
    b.add_init(bname, ((cb - mean) * s + beta).astype(np.float32), f"{bname} {note}")
    return wname, bname


@lowering("conv_transpose")
def _convt(b, n, ins):
    a = n.attrs
    nsp = a["_nd"]
    p = _tup(a["padding"], nsp)
    inputs = [ins[0], b.param(n, "weight")] + ([b.param(n, "bias")] if "bias" in n.params else [])
    return b.final("ConvTranspose", inputs, n, kernel_shape=_tup(a["kernel"], nsp),
                   strides=_tup(a["stride"], nsp), pads=p + p, output_padding=_tup(a["output_padding"], nsp),
                   dilations=_tup(a["dilation"], nsp), group=a["groups"])


@lowering("linear")
def _linear(b, n, ins):
    w = b.param(n, "weight")
    bias = b.param(n, "bias") if "bias" in n.params else None
    in_out = n.attrs.get("layout") == "in_out"  # weight stored [in, out] (HF's Conv1D): no transpose
    if len(n.inputs[0].shape) == 2:
        return b.final("Gemm", [ins[0], w] + ([bias] if bias else []), n, transB=0 if in_out else 1)
    wt = w if in_out else b.op("Transpose", [w], perm=[1, 0])
    if bias is None:
        return b.final("MatMul", [ins[0], wt], n)
    return b.final("Add", [b.op("MatMul", [ins[0], wt]), bias], n)


def _affine_or(b, n, local, shape, fill):
    if local in n.params:
        return b.param(n, local)
    return b.const(np.full(shape, fill), name=local)


@lowering("bn")
def _bn(b, n, ins):
    c = n.attrs["_c"]
    return b.final("BatchNormalization", [ins[0], _affine_or(b, n, "weight", (c,), 1.0),
                                          _affine_or(b, n, "bias", (c,), 0.0),
                                          b.param(n, "running_mean"), b.param(n, "running_var")],
                   n, epsilon=float(n.attrs["eps"]))


@lowering("gn")
def _gn(b, n, ins):
    # opset 18's GroupNormalization takes per-group scales; torch's are per channel:
    # normalise [N, G, rest] with InstanceNormalization, then apply the channel affine.
    a = n.attrs
    g, c = a["groups"], a["_c"]
    x = ins[0]
    y = b.op("Reshape", [x, b.ints([0, g, -1])])
    y = b.op("InstanceNormalization", [y, b.const(np.ones(g), name="ones"),
                                       b.const(np.zeros(g), name="zeros")], epsilon=float(a["eps"]))
    rank = len(n.inputs[0].shape)
    if "weight" not in n.params:
        return b.final("Reshape", [y, b.op("Shape", [x])], n)
    y = b.op("Reshape", [y, b.op("Shape", [x])])
    cshape = b.ints([c] + [1] * (rank - 2))
    w = b.op("Reshape", [b.param(n, "weight"), cshape])
    bias = b.op("Reshape", [b.param(n, "bias"), cshape])
    return b.final("Add", [b.op("Mul", [y, w]), bias], n)


@lowering("ln")
def _ln(b, n, ins):
    a = n.attrs
    shape = a["_shape"]
    inputs = [ins[0], _affine_or(b, n, "weight", shape, 1.0)]
    if "bias" in n.params:
        inputs.append(b.param(n, "bias"))
    return b.final("LayerNormalization", inputs, n, axis=-len(shape), epsilon=float(a["eps"]))


@lowering("rmsnorm")
def _rms(b, n, ins):
    eps = n.attrs["eps"]
    if eps is None:
        eps = float(np.finfo(np.float32).eps)  # torch.nn.RMSNorm's default
    x = ins[0]
    ms = reduce_mean(b, b.op("Mul", [x, x]), [-1], True)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [ms, b.const(float(eps))])])])
    if "weight" not in n.params:
        return b.final("Mul", [x, inv], n)
    return b.final("Mul", [b.op("Mul", [x, inv]), b.param(n, "weight")], n)


@lowering("embedding")
def _emb(b, n, ins):
    from onnx import TensorProto
    ids = ins[0]
    v = n.inputs[0]
    if v in b.graph.inputs:
        is_int = input_type(b.graph, v) == TensorProto.INT64
    else:
        is_int = v.dtype in ("int64", "int32")
    if not is_int:
        ids = b.op("Cast", [ids], to=TensorProto.INT64)
    return b.final("Gather", [b.param(n, "weight"), ids], n, axis=0)


@lowering("attention")
def _attention(b, n, ins):
    """torch.nn.MultiheadAttention (batch_first, self-attention) on [N, L, D]."""
    a = n.attrs
    d, h = a["_d"], a["heads"]
    hd = d // h
    x = ins[0]
    qkv = b.op("MatMul", [x, b.op("Transpose", [b.param(n, "in_proj_weight")], perm=[1, 0])])
    if "in_proj_bias" in n.params:
        qkv = b.op("Add", [qkv, b.param(n, "in_proj_bias")])
    q, k, v = b.emit("Split", [qkv, b.ints([d, d, d], "split")], 3, axis=2)
    heads = b.ints([0, 0, h, hd])
    q, k, v = (b.op("Transpose", [b.op("Reshape", [t, heads])], perm=[0, 2, 1, 3]) for t in (q, k, v))
    kt = b.op("Transpose", [k], perm=[0, 1, 3, 2])
    scores = b.op("Mul", [b.op("MatMul", [q, kt]), b.const(1.0 / math.sqrt(hd))])
    if a["causal"]:
        length = b.op("Shape", [x], start=1, end=2)
        square = b.op("Concat", [length, length], axis=0)
        from onnx import TensorProto
        neg = b.op("ConstantOfShape", [square],
                   value=b.helper.make_tensor("value", TensorProto.FLOAT, [1], [float("-inf")]))
        scores = b.op("Add", [scores, b.op("Trilu", [neg, b.ints([1], "k")], upper=1)])
    att = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
    merged = b.op("Reshape", [b.op("Transpose", [att], perm=[0, 2, 1, 3]), b.ints([0, 0, d])])
    y = b.op("MatMul", [merged, b.op("Transpose", [b.param(n, "out_proj.weight")], perm=[1, 0])])
    if "out_proj.bias" in n.params:
        return b.final("Add", [y, b.param(n, "out_proj.bias")], n)
    return b.final("Identity", [y], n)


@lowering("param")
def _param(b, n, ins):
    return [b.param(n, "")]


@lowering("scalar_mul")
def _smul(b, n, ins):
    return b.final("Mul", [ins[0], b.param(n, "")], n)


@lowering("layer_scale")
def _layer_scale(b, n, ins):
    rank = len(n.inputs[0].shape)
    ax = n.attrs["_axis"] % rank
    gamma = b.param(n, "gamma")
    if ax != rank - 1:
        gamma = b.op("Reshape", [gamma, b.ints([-1] + [1] * (rank - 1 - ax))])
    return b.final("Mul", [ins[0], gamma], n)


def _pool_common(n):
    a = n.attrs
    nsp = a["_nd"]
    k = _tup(a["kernel"], nsp)
    st = _tup(a["stride"] if a["stride"] is not None else a["kernel"], nsp)
    p = _tup(a["padding"], nsp)
    return nsp, k, st, p + p


@lowering("maxpool")
def _maxpool(b, n, ins):
    nsp, k, st, pads = _pool_common(n)
    return b.final("MaxPool", ins, n, kernel_shape=k, strides=st, pads=pads,
                   dilations=_tup(n.attrs["dilation"], nsp), ceil_mode=int(bool(n.attrs["ceil_mode"])))


@lowering("avgpool")
def _avgpool(b, n, ins):
    nsp, k, st, pads = _pool_common(n)
    return b.final("AveragePool", ins, n, kernel_shape=k, strides=st, pads=pads,
                   ceil_mode=int(bool(n.attrs["ceil_mode"])),
                   count_include_pad=int(bool(n.attrs["count_include_pad"])))


@lowering("adaptive_avgpool")
def _aavg(b, n, ins):
    a = n.attrs
    nsp = a["_nd"]
    size = _tup(a["size"], nsp)
    if all(s == 1 for s in size):
        return b.final("GlobalAveragePool", ins, n)
    in_sp = shape_sizes(n.inputs[0])[2:]
    fixed = all(isinstance(i, int) for i in in_sp)
    if fixed and all(i % o == 0 for i, o in zip(in_sp, size)):
        k = [i // o for i, o in zip(in_sp, size)]
        return b.final("AveragePool", ins, n, kernel_shape=k, strides=k)
    # torch's windows: [floor(j*I/O), ceil((j+1)*I/O)) on each axis; a mean over a box is
    # the mean over one axis of the means over the other, so pool one axis at a time.
    # A symbolic I (AlexNet's, VGG's, GoogLeNet's auxiliary pools at any input size) is read
    # at run time (Shape, Gather) and the window bounds computed with integer Mul/Add/Div.
    x = ins[0]
    todo = [i for i, (isz, o) in enumerate(zip(in_sp, size)) if isz != o]
    for t, i in enumerate(todo):
        isz, o, axis = in_sp[i], size[i], 2 + i
        if not isinstance(isz, int):
            dim = b.op("Gather", [b.op("Shape", [x]), b.ints([axis], "axis")], axis=0)
        parts = []
        for j in range(o):
            if isinstance(isz, int):
                lo, hi = b.ints([(j * isz) // o], "starts"), b.ints([-((-(j + 1) * isz) // o)], "ends")
            else:
                lo = b.op("Div", [b.op("Mul", [dim, b.ints([j], "j")]), b.ints([o], "o")])
                hi = b.op("Div", [b.op("Add", [b.op("Mul", [dim, b.ints([j + 1], "j")]), b.ints([o - 1], "o")]),
                                  b.ints([o], "o")])
            sl = b.op("Slice", [x, lo, hi, b.ints([axis], "axes")])
            parts.append(reduce_mean(b, sl, [axis], True))
        if t == len(todo) - 1:
            return b.final("Concat", parts, n, axis=axis)
        x = b.op("Concat", parts, axis=axis)
    return b.final("Identity", [x], n)


@lowering("upsample")
def _upsample(b, n, ins):
    a = n.attrs
    rank = len(n.inputs[0].shape)
    scales = b.const([1.0, 1.0] + [float(a["scale"])] * (rank - 2), np.float32, "scales")
    mode = a["mode"]
    if mode == "nearest":
        kw = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "bicubic":
        kw = dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel", cubic_coeff_a=-0.75)
    else:  # linear, bilinear, trilinear (align_corners=False)
        kw = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
    return b.final("Resize", [ins[0], "", scales], n, **kw)


@lowering("pixel_shuffle")
def _pixel_shuffle(b, n, ins):
    return b.final("DepthToSpace", ins, n, blocksize=n.attrs["factor"], mode="CRD")


@lowering("scalar_add")
def _sadd(b, n, ins):
    return b.final("Add", [ins[0], b.param(n, "")], n)


@lowering("ln2d")
def _ln2d(b, n, ins):
    (c,) = n.attrs["_shape"]
    y = b.op("Transpose", ins, perm=[0, 2, 3, 1])
    y = b.op("LayerNormalization", [y, _affine_or(b, n, "weight", (c,), 1.0), _affine_or(b, n, "bias", (c,), 0.0)],
             axis=-1, epsilon=float(n.attrs["eps"]))
    return b.final("Transpose", [y], n, perm=[0, 3, 1, 2])


@lowering("lstm")
def _lstm(b, n, ins):
    """torch.nn.LSTM (one layer, batch first) as ONNX LSTM. torch stacks the gates
    i, f, g, o; ONNX wants i, o, f, c: the initializers keep torch's names and layout, and
    Gather nodes (constant-folded by the runtime) reorder them."""
    a = n.attrs
    h, d = a["hidden"], a["_in"]
    sfx = ("_l0", "_l0_reverse") if a["bidirectional"] else ("_l0",)
    order = b.ints([0, 3, 1, 2], "gate_order")

    def gates(local, cols):
        t = b.param(n, local)
        shape = [4, h] + ([cols] if cols else [])
        t = b.op("Gather", [b.op("Reshape", [t, b.ints(shape)]), order], axis=0)
        return b.op("Reshape", [t, b.ints([1, 4 * h] + ([cols] if cols else []))])

    def stack(parts):
        return parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=0)

    w = stack([gates("weight_ih" + s, d) for s in sfx])
    r = stack([gates("weight_hh" + s, h) for s in sfx])
    inputs = [b.op("Transpose", ins, perm=[1, 0, 2]), w, r]  # onnxruntime runs layout 0 only: [L, N, D]
    if a["bias"]:
        inputs.append(stack([b.op("Concat", [gates("bias_ih" + s, 0), gates("bias_hh" + s, 0)], axis=1)
                             for s in sfx]))
    y = b.emit("LSTM", inputs, 1, hidden_size=h,
               direction="bidirectional" if a["bidirectional"] else "forward")[0]  # [L, dirs, N, h]
    y = b.op("Transpose", [y], perm=[2, 0, 1, 3])
    return b.final("Reshape", [y, b.ints([0, 0, -1])], n)  # [N, L, dirs, h] -> [N, L, dirs * h]


@lowering("prelu")
def _prelu(b, n, ins):
    rank = len(n.inputs[0].shape)
    slope = b.param(n, "weight")
    if n.attrs["num_parameters"] > 1 and rank > 2:  # one slope per channel (axis 1): [C, 1, ..]
        slope = b.op("Reshape", [slope, b.ints([-1] + [1] * (rank - 2))])
    return b.final("PRelu", [ins[0], slope], n)
from . import ops_index  # noqa: E402,F401 (buffer, index, roll: their own module)
