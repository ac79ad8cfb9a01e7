"""Convolutions and the other sliding-window and resampling ops: conv, conv_transpose,
maxpool, avgpool, adaptive_avgpool, upsample, pixel_shuffle."""
from __future__ import annotations

import math

from .. import shapes as S
from ..shapes import Axis
from .core import (
    NONNEG,
    POS,
    REQUIRED,
    TORCH_INIT,
    Legal,
    OpError,
    chan,
    channel_and_space,
    check_dim,
    check_rank,
    kernel_text,
    op,
    space,
    stride_text,
    tup,
    weight,
    with_axis,
)


def spatial_out(shape, kernel, stride, pad_pairs, dilation, ceil=False):
    out = list(shape)
    for i in range(len(kernel)):
        ax = shape[2 + i]
        o = S.window_out(ax.size, kernel[i], stride[i], pad_pairs[i], dilation[i], ceil)
        if isinstance(o, int) and o <= 0:
            raise OpError(f"window of size {kernel[i]} does not fit the spatial axis of size {ax.size} "
                          f"(input {S.shape_str(shape)})", help="use padding or a smaller kernel")
        out[2 + i] = Axis(o, ax.name)
    return tuple(out)


def resolve_padding(padding, kernel, dilation, stride, nsp):
    """Returns (torch padding value, total padding per spatial axis)."""
    if padding == "same":
        if any(s != 1 for s in stride):
            raise OpError("padding='same' needs stride 1", help="use an explicit padding", kind="type")
        tot = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return "same", tot
    if padding == "valid":
        return 0, [0] * nsp
    p = tup(padding, nsp, "padding")
    return (p[0] if len(set(p)) == 1 else p), [2 * x for x in p]


# ------------------------------------------------------------------ convolutions
def _conv_label(n):
    a = n.attrs
    k = n.params["weight"].shape[2:]
    t = f"{kernel_text(k)} conv, {a['out']}{stride_text(a['stride'])}"
    if a["groups"] > 1:
        t += f", g{a['groups']}"
    d = a["dilation"] if isinstance(a["dilation"], (list, tuple)) else (a["dilation"],)
    if any(x != 1 for x in d):
        t += f", d{kernel_text(d)}"
    return t


def _conv_macs(n):
    k = math.prod(n.params["weight"].shape[2:])
    return S.mul(S.numel(n.outputs[0].shape), (n.attrs["_in"] // n.attrs["groups"]) * k)


@op("conv", [("out", "int", REQUIRED, POS), ("kernel", "ints", REQUIRED, POS), ("stride", "ints", 1, POS),
             ("padding", "str_or_int", 0, Legal(0, choices=("same", "valid"))),
             ("dilation", "ints", 1, POS), ("groups", "int", 1, POS), ("bias", "bool", True),
             ("padding_mode", "str", "zeros", Legal(choices=("zeros", "reflect", "replicate", "circular"))),
             ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("linear", "has_params", "conv", "affine_out"), doc="N-d convolution; 1d/2d/3d from the input rank",
    family="conv", label=_conv_label, axes=channel_and_space, macs=_conv_macs, init=TORCH_INIT)
def _conv(ins, a):
    (x,) = ins
    check_rank(x, (3, 4, 5), "conv", "N, C, *spatial")
    nsp = len(x) - 2
    cin = chan(x)
    k, st, dil = tup(a["kernel"], nsp, "kernel"), tup(a["stride"], nsp, "stride"), tup(a["dilation"], nsp, "dilation")
    g = a["groups"]
    check_dim(a["out"], "output channels")
    if g < 1 or cin % g or a["out"] % g:
        raise OpError(f"groups={g} must divide both input channels ({cin}) and output channels ({a['out']})",
                      kind="type")
    tpad, tot = resolve_padding(a["padding"], k, dil, st, nsp)
    if a["padding_mode"] in ("reflect", "circular"):  # torch pads by reflecting / wrapping the input itself
        for i in range(nsp):
            n, lo = x[2 + i].size, tot[i] - tot[i] // 2
            if isinstance(n, int) and (lo >= n if a["padding_mode"] == "reflect" else lo > n):
                raise OpError(f"padding_mode={a['padding_mode']!r} pads {lo} on an axis of size {n}",
                              help="the padding must be smaller than the input", kind="type")
    a["_padding"] = tpad
    a["_pad_total"] = tot
    a["_nd"] = nsp
    a["_in"] = cin
    y = spatial_out(x, k, st, tot, dil)
    y = with_axis(y, 1, a["out"], "C")
    params = {"weight": weight((a["out"], cin // g) + k, a["weight_init"])}
    if a["bias"]:
        params["bias"] = weight((a["out"],), a["bias_init"])
    return [y], params


def _conv_t_label(n):
    a = n.attrs
    return f"{kernel_text(a['kernel'])} conv\u1d40, {a['out']}" + stride_text(a["stride"]).replace("/", "×")


def _conv_t_macs(n):
    w = n.params["weight"].shape
    return S.mul(S.numel(n.inputs[0].shape), w[1] * math.prod(w[2:]))


@op("conv_transpose", [("out", "int", REQUIRED, POS), ("kernel", "ints", REQUIRED, POS), ("stride", "ints", 1, POS),
                       ("padding", "ints", 0, NONNEG), ("output_padding", "ints", 0, NONNEG),
                       ("groups", "int", 1, POS), ("bias", "bool", True), ("dilation", "ints", 1, POS),
                       ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("linear", "has_params"), doc="transposed convolution (upsampling)",
    family="conv", label=_conv_t_label, axes=channel_and_space, macs=_conv_t_macs, init=TORCH_INIT)
def _conv_t(ins, a):
    (x,) = ins
    check_rank(x, (3, 4, 5), "conv_transpose", "N, C, *spatial")
    nsp = len(x) - 2
    cin = chan(x)
    k, st, p = tup(a["kernel"], nsp, "kernel"), tup(a["stride"], nsp, "stride"), tup(a["padding"], nsp, "padding")
    op_, dil = tup(a["output_padding"], nsp, "output_padding"), tup(a["dilation"], nsp, "dilation")
    g = a["groups"]
    if g < 1 or cin % g or a["out"] % g:
        raise OpError(f"groups={g} must divide input ({cin}) and output ({a['out']}) channels", kind="type")
    if any(o >= max(s, d) for o, s, d in zip(op_, st, dil)):
        raise OpError(f"output_padding {list(op_)} must be smaller than the stride or the dilation", kind="type")
    a["_nd"], a["_in"] = nsp, cin
    y = list(x)
    for i in range(nsp):
        n = x[2 + i].size
        o = S.add(S.add(S.mul(S.add(n, -1), st[i]), -2 * p[i] + dil[i] * (k[i] - 1) + op_[i]), 1)
        y[2 + i] = Axis(o, x[2 + i].name)
    y[1] = Axis(a["out"], "C")
    params = {"weight": weight((cin, a["out"] // g) + k, a["weight_init"])}
    if a["bias"]:
        params["bias"] = weight((a["out"],), a["bias_init"])
    return [tuple(y)], params


# ------------------------------------------------------------------ pooling / resampling
def _pool(name, ins, a, adaptive=False):
    (x,) = ins
    check_rank(x, (3, 4, 5), name, "N, C, *spatial")
    nsp = len(x) - 2
    a["_nd"] = nsp
    k = tup(a["kernel"], nsp, "kernel")
    st = tup(a["stride"] if a["stride"] is not None else a["kernel"], nsp, "stride")
    p = tup(a["padding"], nsp, "padding")
    for kk, pp in zip(k, p):
        if pp * 2 > kk:
            raise OpError(f"{name} padding {pp} must be at most half the kernel {kk}", kind="type")
    dil = tup(a.get("dilation", 1), nsp, "dilation")
    return [spatial_out(x, k, st, [2 * q for q in p], dil, a.get("ceil_mode", False))], {}


def _pool_label(n):
    a = n.attrs
    st = a["stride"] if a["stride"] is not None else a["kernel"]
    nd = a.get("_nd", 1)
    k = a["kernel"] if isinstance(a["kernel"], (list, tuple)) else (a["kernel"],) * nd
    return f"{kernel_text(k)} {n.op}{stride_text(st)}"


@op("maxpool", [("kernel", "ints", REQUIRED, POS), ("stride", "ints", None, POS), ("padding", "ints", 0, NONNEG),
                ("dilation", "ints", 1, POS), ("ceil_mode", "bool", False)], traits=("pure",), doc="max pooling",
    family="pool", label=_pool_label, axes=space, macs=0)
def _maxpool(ins, a):
    return _pool("maxpool", ins, a)


@op("avgpool", [("kernel", "ints", REQUIRED, POS), ("stride", "ints", None, POS), ("padding", "ints", 0, NONNEG),
                ("ceil_mode", "bool", False), ("count_include_pad", "bool", True)], traits=("pure", "linear"),
    doc="average pooling", family="pool", label=_pool_label, axes=space, macs=0)
def _avgpool(ins, a):
    return _pool("avgpool", ins, a)


def _aavg_label(n):
    size = n.attrs["size"] if isinstance(n.attrs["size"], (list, tuple)) else (n.attrs["size"],)
    return "global avgpool" if all(s == 1 for s in size) else f"avgpool → {kernel_text(size)}"


@op("adaptive_avgpool", [("size", "ints", REQUIRED, POS)], traits=("pure", "linear"),
    doc="average pooling to a fixed size", family="pool", label=_aavg_label, axes=space, macs=0)
def _aavg(ins, a):
    (x,) = ins
    check_rank(x, (3, 4, 5), "adaptive_avgpool", "N, C, *spatial")
    nsp = len(x) - 2
    a["_nd"] = nsp
    size = tup(a["size"], nsp, "size")
    return [tuple(x[:2]) + tuple(Axis(s, x[2 + i].name) for i, s in enumerate(size))], {}


def _up_label(n):
    a = n.attrs
    return f"upsample ×{a['scale']}" + ("" if a["mode"] == "nearest" else f", {a['mode']}")


@op("upsample", [("scale", "int", 2, POS),
                 ("mode", "str", "nearest", Legal(choices=("nearest", "linear", "bilinear", "bicubic", "trilinear")))],
    traits=("pure",), doc="nearest / bilinear upsampling by an integer factor",
    family="pool", label=_up_label, axes=space, macs=0)
def _up(ins, a):
    (x,) = ins
    check_rank(x, (3, 4, 5), "upsample", "N, C, *spatial")
    if a["mode"] not in ("nearest", "bilinear", "linear", "trilinear", "bicubic"):
        raise OpError(f"upsample mode {a['mode']!r} is not one of nearest, linear, bilinear, bicubic, trilinear",
                      kind="type")
    rank = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}.get(a["mode"])
    if rank is not None and len(x) != rank:  # torch's interpolate accepts each mode for one rank only
        raise OpError(f"upsample mode {a['mode']!r} needs a tensor of rank {rank}, got {S.shape_str(x)}",
                      kind="type", help="use mode=\"nearest\" for any rank")
    return [tuple(x[:2]) + tuple(Axis(S.mul(ax.size, a["scale"]), ax.name) for ax in x[2:])], {}


@op("pixel_shuffle", [("factor", "int", REQUIRED, POS)], traits=("pure",), doc="[N, C*r*r, H, W] -> [N, C, H*r, W*r]",
    family="pool", label=lambda n: f"pixel shuffle {n.attrs['factor']}", axes=channel_and_space, macs=0)
def _ps(ins, a):
    (x,) = ins
    check_rank(x, (4,), "pixel_shuffle", "N, C, H, W")
    r = a["factor"]
    c = chan(x)
    if c % (r * r):
        raise OpError(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {c}")
    return [(x[0], Axis(c // (r * r), "C"), Axis(S.mul(x[2].size, r), x[2].name), Axis(S.mul(x[3].size, r), x[3].name))], {}
