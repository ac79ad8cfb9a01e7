"""The op table: every primitive declared once (attributes, shape rule, traits).

Backends and passes look ops up here; passes test traits (``linear``,
``elementwise``, ``has_params``, ``stochastic``), not op names. A shape rule takes the
input shapes (tuples of :class:`Axis`) and the checked attributes, and returns the
output shapes and the parameter tensors the op owns (name -> ParamSpec).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from . import shapes as S
from .shapes import Axis, Size

MAX_DIM = 2 ** 31 - 1
MAX_PARAM_ELEMENTS = 2 ** 34  # 16 G elements in one tensor
MAX_FLOAT = 3.4028234663852886e38  # float32: number attributes become float32 tensors or constants


class OpError(Exception):
    """A bad use of an op; the elaborator adds the source position."""

    def __init__(self, message: str, help: str | None = None, kind: str = "shape"):
        super().__init__(message)
        self.message, self.help, self.kind = message, help, kind


REQUIRED = object()


@dataclass(frozen=True)
class Legal:
    """The legal values of one attribute: numbers in [lo, hi] (an open end with lo_open/hi_open),
    strings among `choices`. For a list-valued attribute (`ints`), every item must be legal."""
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    lo_open: bool = False
    hi_open: bool = False

    def problem(self, v) -> str | None:
        """Why `v` is not legal, or None."""
        if isinstance(v, (list, tuple)):
            for x in v:
                why = self.problem(x)
                if why:
                    return why
            return None
        if isinstance(v, str):
            if self.choices and v not in self.choices:
                return "one of " + ", ".join(f'"{c}"' for c in self.choices)
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if (self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo))) or \
                (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi))):
            return self.describe()
        return None

    def describe(self) -> str:
        if self.hi is None:
            return f"{'above' if self.lo_open else 'at least'} {_num(self.lo)}"
        lb, rb = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"in {lb}{_num(self.lo)}, {_num(self.hi)}{rb}"


def _num(x):
    return str(int(x)) if float(x).is_integer() else str(x)


POS = Legal(1)                     # counts, sizes, strides, kernels, dilations, groups, heads
NONNEG = Legal(0)                  # paddings
PROB = Legal(0, 1)                 # dropout probabilities, momentum
EPS = Legal(0, lo_open=True)       # norm epsilons


@dataclass(frozen=True)
class AttrDef:
    name: str
    type: str  # int, float, bool, str, ints, num, init, any, shape, str_or_int, kwargs (collects extra kwargs)
    default: object = REQUIRED
    legal: Legal | None = None  # checked when the network is checked (Elaborator.coerce_attr), the one place

    def problem(self, v) -> str | None:
        """Why the (type-checked) value `v` is not legal for this attribute, or None."""
        if self.type == "num" and isinstance(v, float) and not abs(v) <= MAX_FLOAT:
            return "a float32 number (magnitude at most 3.4e38)"
        if self.legal is None or v is None:
            return None
        why = self.legal.problem(v)
        return f"must be {why}" if why else None


@dataclass(frozen=True)
class ParamSpec:
    shape: tuple
    kind: str = "param"  # param | buffer
    init: object = None  # None: the backend's default for the op, or an init tuple


@dataclass
class OpDef:
    name: str
    attrs: list
    inputs: object  # int, or (min, max) with max None for any number
    rule: Callable
    traits: frozenset = field(default_factory=frozenset)
    outputs: int = 1
    doc: str = ""

    def attr(self, name):
        for a in self.attrs:
            if a.name == name:
                return a
        return None


OPS: dict[str, OpDef] = {}


def op(name, attrs=(), inputs=1, traits=(), doc=""):
    def deco(fn):
        OPS[name] = OpDef(name, [AttrDef(*a) if isinstance(a, tuple) else a for a in attrs],
                          inputs, fn, frozenset(traits), doc=doc)
        return fn
    return deco


# ------------------------------------------------------------------ helpers
INIT_KINDS = {
    "zeros": 0, "ones": 0, "constant": 1, "normal": 1, "trunc_normal": 1, "uniform": 2,
    "kaiming_normal": 0, "kaiming_uniform": 0, "xavier_uniform": 0, "xavier_normal": 0,
    "orthogonal": 0, "default": 0,
    "eye": 0, "onehot": 1,  # added for the architecture library: identity matrix; a single 1 at flat index k
}


def tup(v, n, what):
    if isinstance(v, int):
        return (v,) * n
    if isinstance(v, (list, tuple)) and len(v) == n and all(isinstance(x, int) for x in v):
        return tuple(v)
    raise OpError(f"`{what}` must be an int or a list of {n} ints, got {v!r}", kind="type")


def static(d, what):
    if not isinstance(d, int):
        raise OpError(f"{what} must be a known number here, but it is the symbolic size `{d}`",
                      help="declare that axis with a number in the `input` shape", kind="shape")
    return d


def check_rank(shape, ranks, opname, layout):
    if len(shape) not in ranks:
        raise OpError(f"`{opname}` expects a tensor of rank {' or '.join(map(str, ranks))} ({layout}), "
                      f"got rank {len(shape)}: {S.shape_str(shape)}")


def chan(shape, name="C"):
    return static(shape[1].size, "the channel axis (axis 1)")


def with_axis(shape, i, size, name=None):
    a = list(shape)
    old = a[i]
    a[i] = Axis(size, name if name is not None else old.name)
    return tuple(a)


def check_dim(v, what="size"):
    if isinstance(v, int) and not (0 < v <= MAX_DIM):
        raise OpError(f"{what} {v} is out of range (1 .. {MAX_DIM})", kind="limit",
                      help="tensor sizes must be positive and below 2**31")
    return v


# init kind -> (fewest args, most args, legal args, least rank, most rank): what runtime.init_tensor
# and torch.nn.init accept, so that an init `check` takes is one every backend can run
_FAN = Legal(choices=("fan_in", "fan_out"))
INIT_ARGS = {
    "zeros": (0, 0, None, 0, None), "ones": (0, 0, None, 0, None), "default": (0, 0, None, 0, None),
    "constant": (1, 1, Legal(), 0, None), "normal": (0, 1, Legal(0), 0, None),
    "trunc_normal": (0, 1, Legal(0, lo_open=True), 0, None), "uniform": (0, 2, Legal(), 0, None),
    "kaiming_normal": (0, 1, _FAN, 2, None), "kaiming_uniform": (0, 1, _FAN, 2, None),
    "xavier_uniform": (0, 0, None, 2, None), "xavier_normal": (0, 0, None, 2, None),
    "orthogonal": (0, 0, None, 2, None), "eye": (0, 0, None, 2, 2), "onehot": (1, 1, Legal(0), 0, None),
}


def check_init(spec, shape):
    """Reject an init spec that torch.nn.init would refuse for a tensor of `shape`."""
    kind, *args = spec
    lo, hi, legal, rmin, rmax = INIT_ARGS.get(kind, (0, None, None, 0, None))
    call = f"{kind}({', '.join(repr(x) for x in args)})"
    if not lo <= len(args) <= (hi if hi is not None else len(args)) or (kind == "uniform" and len(args) == 1):
        raise OpError(f"init `{call}` takes {lo if lo == hi else f'{lo} to {hi}'} argument(s)", kind="type")
    for x in args:
        is_num = isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= MAX_FLOAT
        if (legal is _FAN and not isinstance(x, str)) or (legal is not _FAN and not is_num):
            want = '"fan_in" or "fan_out"' if legal is _FAN else "float32 numbers"
            raise OpError(f"init `{call}` takes {want}", kind="type")
        why = legal.problem(x) if legal is not None else None
        if why:
            raise OpError(f"init `{call}`: the argument must be {why}", kind="type")
    if kind == "uniform" and args and args[0] > args[1]:
        raise OpError(f"init `{call}` needs low <= high", kind="type")
    if kind == "onehot" and (not isinstance(args[0], int) or args[0] >= math.prod(shape)):
        raise OpError(f"init `{call}` needs an int index below the {math.prod(shape)} elements of the "
                      f"parameter {list(shape)}", kind="type")
    if len(shape) < rmin or (rmax is not None and len(shape) > rmax):
        want = f"exactly {rmin}" if rmin == rmax else f"at least {rmin}"
        raise OpError(f"init `{kind}` needs a parameter of {want} axes, got {list(shape)}", kind="type")


def weight(shape, init=None):
    n = math.prod(shape)
    if n > MAX_PARAM_ELEMENTS:
        raise OpError(f"a parameter of shape {list(shape)} ({n} elements) is over the limit of "
                      f"{MAX_PARAM_ELEMENTS}", kind="limit")
    if init is not None:
        check_init(init, shape)
    return ParamSpec(tuple(shape), "param", init)


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


# ------------------------------------------------------------------ parameterised ops
@op("conv", [("out", "int", REQUIRED, POS), ("kernel", "ints", REQUIRED, POS), ("stride", "ints", 1, POS),
             ("padding", "str_or_int", 0, Legal(0, choices=("same", "valid"))),
             ("dilation", "ints", 1, POS), ("groups", "int", 1, POS), ("bias", "bool", True),
             ("padding_mode", "str", "zeros", Legal(choices=("zeros", "reflect", "replicate", "circular"))), ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("linear", "has_params", "conv", "affine_out"), doc="N-d convolution; 1d/2d/3d from the input rank")
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


@op("conv_transpose", [("out", "int", REQUIRED, POS), ("kernel", "ints", REQUIRED, POS), ("stride", "ints", 1, POS),
                       ("padding", "ints", 0, NONNEG), ("output_padding", "ints", 0, NONNEG),
                       ("groups", "int", 1, POS), ("bias", "bool", True), ("dilation", "ints", 1, POS), ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("linear", "has_params"), doc="transposed convolution (upsampling)")
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


@op("linear", [("out", "int", REQUIRED, POS), ("bias", "bool", True), ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("linear", "has_params", "affine_out"), doc="affine map on the last axis")
def _linear(ins, a):
    (x,) = ins
    if len(x) < 1:
        raise OpError("`linear` needs a tensor of rank >= 1")
    cin = static(x[-1].size, "the last axis of a `linear` input")
    check_dim(a["out"], "output features")
    a["_in"] = cin
    y = with_axis(x, len(x) - 1, a["out"])
    params = {"weight": weight((a["out"], cin), a["weight_init"])}
    if a["bias"]:
        params["bias"] = weight((a["out"],), a["bias_init"])
    return [y], params


@op("bn", [("eps", "num", 1e-5, EPS), ("momentum", "num", 0.1, PROB), ("affine", "bool", True),
           ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("has_params", "norm", "affine_eval"), doc="BatchNorm over axis 1 (rank 2..5)")
def _bn(ins, a):
    (x,) = ins
    check_rank(x, (2, 3, 4, 5), "bn", "N, C, *spatial")
    c = chan(x)
    a["_c"], a["_nd"] = c, max(1, len(x) - 2)
    p = {}
    if a["affine"]:
        p["weight"] = weight((c,), a["weight_init"])
        p["bias"] = weight((c,), a["bias_init"])
    p["running_mean"] = ParamSpec((c,), "buffer")
    p["running_var"] = ParamSpec((c,), "buffer")
    p["num_batches_tracked"] = ParamSpec((), "buffer")
    return [x], p


@op("gn", [("groups", "int", REQUIRED, POS), ("eps", "num", 1e-5, EPS), ("affine", "bool", True),
           ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("has_params", "norm"), doc="GroupNorm over axis 1")
def _gn(ins, a):
    (x,) = ins
    check_rank(x, (2, 3, 4, 5), "gn", "N, C, *spatial")
    c = chan(x)
    if c % a["groups"]:
        raise OpError(f"gn groups={a['groups']} must divide the {c} channels", kind="type")
    a["_c"] = c
    p = {}
    if a["affine"]:
        p = {"weight": weight((c,), a["weight_init"]), "bias": weight((c,), a["bias_init"])}
    return [x], p


@op("ln", [("eps", "num", 1e-5, EPS), ("affine", "bool", True), ("bias", "bool", True), ("dims", "int", 1, POS),
           ("weight_init", "init", None), ("bias_init", "init", None)],
    traits=("has_params", "norm"), doc="LayerNorm over the last `dims` axes")
def _ln(ins, a):
    (x,) = ins
    if a["dims"] < 1 or a["dims"] > len(x):
        raise OpError(f"ln dims={a['dims']} must be between 1 and the rank {len(x)}", kind="type")
    norm = tuple(static(ax.size, "a LayerNorm axis") for ax in x[len(x) - a["dims"]:])
    a["_shape"] = norm
    p = {}
    if a["affine"]:
        p["weight"] = weight(norm, a["weight_init"])
        if a["bias"]:
            p["bias"] = weight(norm, a["bias_init"])
    return [x], p


@op("rmsnorm", [("eps", "num", None, EPS), ("affine", "bool", True), ("weight_init", "init", None)],
    traits=("has_params", "norm"), doc="RMSNorm over the last axis")
def _rms(ins, a):
    (x,) = ins
    d = static(x[-1].size, "the RMSNorm axis")
    a["_shape"] = (d,)
    return [x], ({"weight": weight((d,), a["weight_init"])} if a["affine"] else {})


@op("embedding", [("num", "int", REQUIRED, POS), ("dim", "int", REQUIRED, POS), ("weight_init", "init", None)],
    traits=("has_params",), doc="lookup table: integer ids [..] -> [.., dim]")
def _emb(ins, a):
    (x,) = ins
    return [tuple(x) + (Axis(a["dim"], "D"),)], {"weight": weight((a["num"], a["dim"]), a["weight_init"])}


@op("attention", [("heads", "int", REQUIRED, POS), ("dropout", "num", 0.0, PROB), ("bias", "bool", True), ("causal", "bool", False)],
    traits=("has_params",), doc="multi-head self-attention on [N, L, D] (torch.nn.MultiheadAttention)")
def _mha(ins, a):
    (x,) = ins
    check_rank(x, (3,), "attention", "N, L, D")
    d = static(x[2].size, "the model dimension of `attention`")
    if d % a["heads"]:
        raise OpError(f"attention heads={a['heads']} must divide the model dimension {d}", kind="type")
    a["_d"] = d
    p = {"in_proj_weight": weight((3 * d, d))}
    if a["bias"]:
        p["in_proj_bias"] = weight((3 * d,))
    p["out_proj.weight"] = weight((d, d))
    if a["bias"]:
        p["out_proj.bias"] = weight((d,))
    return [x], p


@op("param", [("shape", "shape"), ("init", "init", ("zeros",))], inputs=0,
    traits=("has_params", "bare_param"), doc="a learned tensor (class token, position embedding, scalar)")
def _param(ins, a):
    shp = tuple(check_dim(s, "parameter size") for s in a["shape"])
    return [tuple(Axis(s) for s in shp)], {"": weight(shp, a["init"])}


@op("layer_scale", [("init", "num", 1e-5)], traits=("has_params", "linear", "channel_scale"),
    doc="learned per-channel scale (channel axis 1 for rank 4/5, else last)")
def _ls(ins, a):
    (x,) = ins
    ax = channel_axis(x)
    a["_axis"] = ax
    c = static(x[ax].size, "the layer-scale channel axis")
    return [x], {"gamma": weight((c,), ("constant", a["init"]))}


@op("scalar_mul", [("init", "num", 0.0)], traits=("has_params", "linear", "channel_scale"),
    doc="multiply by one learned scalar (ReZero / SkipInit)")
def _smul(ins, a):
    (x,) = ins
    return [x], {"": weight((1,), ("constant", a["init"]))}


def channel_axis(shape):
    for i, ax in enumerate(shape):
        if ax.name == "C":
            return i
    return 1 if len(shape) in (4, 5) else len(shape) - 1


# ------------------------------------------------------------------ elementwise / activations
def _same(ins, a):
    return [ins[0]], {}


for _n, _doc in [("relu", "max(x, 0)"), ("silu", "x * sigmoid(x)"), ("sigmoid", "logistic"),
                 ("tanh", "tanh"), ("hardswish", "hard swish"), ("identity", "x")]:
    op(_n, [], traits=("elementwise", "pure") + (("linear",) if _n == "identity" else ()), doc=_doc)(_same)
op("gelu", [("approximate", "str", "none", Legal(choices=("none", "tanh")))], traits=("elementwise", "pure"), doc="GELU")(_same)
op("leaky_relu", [("slope", "num", 0.01)], traits=("elementwise", "pure"), doc="leaky ReLU")(_same)
op("scale", [("factor", "num")], traits=("elementwise", "pure", "linear", "channel_scale"),
   doc="multiply by a constant")(_same)
op("dropout", [("p", "num", 0.5, PROB)], traits=("stochastic",), doc="dropout (training only)")(_same)
op("drop_path", [("p", "num", 0.0, Legal(0, 1, hi_open=True))], traits=("stochastic",), doc="stochastic depth per sample")(_same)


@op("softmax", [("dim", "int", -1)], traits=("pure",), doc="softmax along `dim`")
def _softmax(ins, a):
    _axis(ins[0], a["dim"])
    return [ins[0]], {}


def _axis(shape, d):
    r = len(shape)
    if not -r <= d < r:
        raise OpError(f"axis {d} is out of range for a tensor of rank {r} {S.shape_str(shape)}", kind="type")
    return d % r


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


@op("maxpool", [("kernel", "ints", REQUIRED, POS), ("stride", "ints", None, POS), ("padding", "ints", 0, NONNEG),
                ("dilation", "ints", 1, POS),
                ("ceil_mode", "bool", False)], traits=("pure",), doc="max pooling")
def _maxpool(ins, a):
    return _pool("maxpool", ins, a)


@op("avgpool", [("kernel", "ints", REQUIRED, POS), ("stride", "ints", None, POS), ("padding", "ints", 0, NONNEG),
                ("ceil_mode", "bool", False),
                ("count_include_pad", "bool", True)], traits=("pure", "linear"), doc="average pooling")
def _avgpool(ins, a):
    return _pool("avgpool", ins, a)


@op("adaptive_avgpool", [("size", "ints", REQUIRED, POS)], traits=("pure", "linear"), doc="average pooling to a fixed size")
def _aavg(ins, a):
    (x,) = ins
    check_rank(x, (3, 4, 5), "adaptive_avgpool", "N, C, *spatial")
    nsp = len(x) - 2
    a["_nd"] = nsp
    size = tup(a["size"], nsp, "size")
    return [tuple(x[:2]) + tuple(Axis(s, x[2 + i].name) for i, s in enumerate(size))], {}


@op("upsample", [("scale", "int", 2, POS),
                   ("mode", "str", "nearest", Legal(choices=("nearest", "linear", "bilinear", "bicubic", "trilinear")))], traits=("pure",),
    doc="nearest / bilinear upsampling by an integer factor")
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


@op("pixel_shuffle", [("factor", "int", REQUIRED, POS)], traits=("pure",), doc="[N, C*r*r, H, W] -> [N, C, H*r, W*r]")
def _ps(ins, a):
    (x,) = ins
    check_rank(x, (4,), "pixel_shuffle", "N, C, H, W")
    r = a["factor"]
    c = chan(x)
    if c % (r * r):
        raise OpError(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {c}")
    return [(x[0], Axis(c // (r * r), "C"), Axis(S.mul(x[2].size, r), x[2].name), Axis(S.mul(x[3].size, r), x[3].name))], {}


# ------------------------------------------------------------------ layout
@op("flatten", [("start", "int", 1), ("end", "int", -1)], traits=("pure", "linear", "layout"),
    doc="merge axes start..end into one")
def _flatten(ins, a):
    (x,) = ins
    s, e = _axis(x, a["start"]), _axis(x, a["end"])
    if e < s:
        raise OpError(f"flatten start {a['start']} is after end {a['end']}", kind="type")
    n = 1
    for ax in x[s:e + 1]:
        n = S.mul(n, ax.size)
    return [tuple(x[:s]) + (Axis(n),) + tuple(x[e + 1:])], {}


@op("reshape", [("shape", "shape")], traits=("pure", "linear", "layout"), doc="reshape; -1 infers one axis")
def _reshape(ins, a):
    (x,) = ins
    total = S.numel(x)
    new = list(a["shape"])
    known = 1
    infer = [i for i, v in enumerate(new) if v == -1]
    bad = [v for v in new if isinstance(v, int) and v != -1 and v < 1]
    if bad:
        raise OpError(f"reshape sizes must be positive (or -1 once), got {bad[0]}", kind="type")
    if len(infer) > 1:
        raise OpError("reshape takes at most one -1", kind="type")
    for i, v in enumerate(new):
        if i not in infer:
            known = S.mul(known, v)
    if infer:
        if isinstance(known, int) and isinstance(total, int):
            if total % known:
                raise OpError(f"cannot reshape {S.shape_str(x)} into {new}")
            new[infer[0]] = total // known
        else:
            q = _exact_div(total, known)
            if q is None:
                raise OpError(f"cannot infer the -1 axis reshaping {S.shape_str(x)} into {new}")
            new[infer[0]] = q
    elif S.numel(tuple(Axis(v) for v in new)) != total:
        raise OpError(f"cannot reshape {S.shape_str(x)} ({total} elements) into {new}")
    dyn = [i for i, v in enumerate(new) if not isinstance(v, int)]
    a["_dyn"] = dyn
    return [tuple(Axis(v) for v in new)], {}


def _exact_div(total, known):
    if isinstance(known, int):
        return S.truediv(total, known) if known else None
    t, k = Size.lift(total), Size.lift(known)
    if len(k.terms) == 1:
        (mono, c), = k.terms.items()
        out = {}
        for m, v in t.terms.items():
            rest = list(m)
            for s in mono:
                if s not in rest:
                    return None
                rest.remove(s)
            out[tuple(rest)] = v / c
        return Size.norm(Size(out))
    return None


@op("transpose", [("dim0", "int"), ("dim1", "int")], traits=("pure", "linear", "layout"), doc="swap two axes")
def _transpose(ins, a):
    (x,) = ins
    i, j = _axis(x, a["dim0"]), _axis(x, a["dim1"])
    y = list(x)
    y[i], y[j] = y[j], y[i]
    return [tuple(y)], {}


@op("permute", [("dims", "ints")], traits=("pure", "linear", "layout"), doc="reorder axes")
def _permute(ins, a):
    (x,) = ins
    d = a["dims"] if isinstance(a["dims"], (list, tuple)) else [a["dims"]]
    d = [_axis(x, i) for i in d]
    if sorted(d) != list(range(len(x))):
        raise OpError(f"permute dims {list(d)} are not a permutation of 0..{len(x) - 1}", kind="type")
    a["dims"] = tuple(d)
    return [tuple(x[i] for i in d)], {}


@op("rearrange", [("pattern", "str"), ("sizes", "kwargs", None)], traits=("pure", "linear", "layout"),
    doc="einops-style axis rearrangement: 'n c (h p) w -> n (h w) (p c)', p=2")
def _rearrange(ins, a):
    from .rearrange import plan
    (x,) = ins
    out, steps = plan(a["pattern"], x, a["sizes"] or {})
    a["_steps"] = steps
    return [out], {}


@op("select", [("dim", "int"), ("index", "int")], traits=("pure", "layout"), doc="pick one index on an axis")
def _select(ins, a):
    (x,) = ins
    d = _axis(x, a["dim"])
    n = x[d].size
    if isinstance(n, int) and not -n <= a["index"] < n:
        raise OpError(f"index {a['index']} is out of range for axis {d} of size {n}", kind="type")
    return [tuple(x[:d]) + tuple(x[d + 1:])], {}


# ------------------------------------------------------------------ multi-input
def _merge_check(ins, name, dim=None):
    base = ins[0]
    for other in ins[1:]:
        if len(other) != len(base) or any(
                (i != dim) and p.size != q.size for i, (p, q) in enumerate(zip(base, other))):
            raise OpError(f"`{name}` needs matching shapes" + ("" if dim is None else f" outside axis {dim}")
                          + f": {S.shape_str(base)} and {S.shape_str(other)}")


@op("add", [], inputs=(2, None), traits=("pure", "linear", "elementwise", "merge"),
    doc="elementwise sum (broadcasting, e.g. a [1, L, D] position embedding)")
def _add(ins, a):
    out = ins[0]
    for other in ins[1:]:
        try:
            out = _broadcast(out, other)
        except OpError:
            raise OpError(f"`add` needs matching (or broadcastable) shapes: {S.shape_str(out)} and "
                          f"{S.shape_str(other)}") from None
    return [out], {}


@op("mul", [], inputs=(2, 2), traits=("pure", "elementwise", "merge"), doc="elementwise product")
def _mul(ins, a):
    x, y = ins
    try:
        out = _broadcast(x, y)
    except OpError:
        raise OpError(f"`mul` needs shapes that broadcast: {S.shape_str(x)} and {S.shape_str(y)}") from None
    return [out], {}


def _broadcast(x, y):
    r = max(len(x), len(y))
    xs = (Axis(1),) * (r - len(x)) + tuple(x)
    ys = (Axis(1),) * (r - len(y)) + tuple(y)
    out = []
    for p, q in zip(xs, ys):
        if p.size == q.size or q.size == 1:
            out.append(p)
        elif p.size == 1:
            out.append(q)
        else:
            raise OpError("no broadcast")
    return tuple(out)


@op("mean", [("dim", "any", None), ("keepdim", "bool", False)], inputs=(1, None), traits=("pure", "linear"),
    doc="mean of several tensors (a merge), or a reduction over `dim` of one")
def _mean(ins, a):
    if len(ins) > 1:
        _merge_check(ins, "mean")
        a["_merge"] = True
        return [ins[0]], {}
    (x,) = ins
    if a["dim"] is None:
        raise OpError("`mean` of one tensor needs `dim=`", help="e.g. mean(dim=1) to average tokens", kind="type")
    dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else [a["dim"]]
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise OpError(f"`mean` dim must be an int or a non-empty list of ints, got {a['dim']!r}", kind="type")
    dims = sorted({_axis(x, d) for d in dims})
    a["dim"] = tuple(dims) if len(dims) > 1 else dims[0]
    if a["keepdim"]:
        return [tuple(Axis(1, ax.name) if i in dims else ax for i, ax in enumerate(x))], {}
    return [tuple(ax for i, ax in enumerate(x) if i not in dims)], {}


@op("concat", [("dim", "int", 1)], inputs=(1, None), traits=("pure", "linear", "merge"), doc="join along `dim`")
def _concat(ins, a):
    d = _axis(ins[0], a["dim"])
    _merge_check(ins, "concat", d)
    n = 0
    for x in ins:
        n = S.add(n, x[d].size)
    return [with_axis(ins[0], d, n)], {}


@op("matmul", [], inputs=(2, 2), traits=("pure",), doc="matrix product of the last two axes")
def _matmul(ins, a):
    x, y = ins
    if len(x) < 2 or len(y) < 2 or x[-1].size != y[-2].size:
        raise OpError(f"`matmul` needs [.., n, k] @ [.., k, m], got {S.shape_str(x)} and {S.shape_str(y)}")
    try:  # leading (batch) axes broadcast, as in torch.matmul
        batch = _broadcast(x[:-2], y[:-2])
    except OpError:
        raise OpError(f"`matmul` batch axes do not broadcast: {S.shape_str(x)} and {S.shape_str(y)}") from None
    return [tuple(batch) + (x[-2], y[-1])], {}


@op("split", [("sizes", "ints", REQUIRED, POS), ("dim", "int", 1)], traits=("pure", "layout"), doc="split into pieces")
def _split(ins, a):
    (x,) = ins
    d = _axis(x, a["dim"])
    sizes = a["sizes"] if isinstance(a["sizes"], (list, tuple)) else [a["sizes"]]
    n = static(x[d].size, "the split axis")
    if len(sizes) == 1:
        if n % sizes[0]:
            raise OpError(f"split size {sizes[0]} does not divide axis {d} of size {n}")
        sizes = [sizes[0]] * (n // sizes[0])
    if sum(sizes) != n:
        raise OpError(f"split sizes {list(sizes)} do not add up to {n}")
    a["_sizes"] = tuple(sizes)
    a["dim"] = d
    return [with_axis(x, d, s) for s in sizes], {}


@op("chunk", [("n", "int", REQUIRED, POS), ("dim", "int", 1)], traits=("pure", "layout"), doc="split into n equal pieces")
def _chunk(ins, a):
    (x,) = ins
    d = _axis(x, a["dim"])
    n = static(x[d].size, "the chunk axis")
    if n % a["n"]:
        raise OpError(f"chunk({a['n']}) does not divide axis {d} of size {n}")
    a["dim"] = d
    return [with_axis(x, d, n // a["n"]) for _ in range(a["n"])], {}


def n_outputs(opname, attrs):
    if opname == "split":
        return len(attrs["_sizes"])
    if opname == "chunk":
        return attrs["n"]
    return 1


# ---- added for the architecture library (tier 2/3)
@op("pad", [("widths", "ints", REQUIRED, NONNEG), ("value", "num", 0.0)], traits=("pure", "layout"),
    doc="constant padding; widths in torch.nn.functional.pad order: [last_lo, last_hi, prev_lo, prev_hi, ...]")
def _pad(ins, a):
    (x,) = ins
    w = a["widths"] if isinstance(a["widths"], (list, tuple)) else (a["widths"],)
    if len(w) % 2 or len(w) // 2 > len(x) or any(v < 0 for v in w):
        raise OpError(f"pad widths {list(w)} must be non-negative (lo, hi) pairs for at most {len(x)} axes",
                      kind="type")
    a["widths"] = tuple(w)
    y = list(x)
    for k in range(len(w) // 2):
        i = len(x) - 1 - k
        y[i] = Axis(S.add(x[i].size, w[2 * k] + w[2 * k + 1]), x[i].name)
    return [tuple(y)], {}


@op("l2norm", [("dim", "int", -1), ("eps", "num", 1e-12, EPS)], traits=("pure",),
    doc="x / max(||x||_2, eps) along `dim` (FixNorm; with scalar_mul, ScaleNorm)")
def _l2norm(ins, a):
    a["dim"] = _axis(ins[0], a["dim"])
    return [ins[0]], {}


@op("orthogonal", [("dim", "int", -1), ("eps", "num", 1e-6, Legal(0))], inputs=(2, 2), traits=("pure",),
    doc="orthogonal(f, x) = f - (<x, f> / (<x, x> + eps)) x along `dim`: the part of f orthogonal to x")
def _orth(ins, a):
    f, x = ins
    _merge_check([f, x], "orthogonal")
    a["dim"] = _axis(f, a["dim"])
    return [f], {}


@op("scalar_add", [("init", "num", 0.0)], traits=("has_params",),
    doc="add one learned scalar (Fixup's scalar biases)")
def _sadd(ins, a):
    (x,) = ins
    return [x], {"": weight((1,), ("constant", a["init"]))}


# ---- added for the architecture library (tier 1)
@op("ln2d", [("eps", "num", 1e-5, EPS), ("affine", "bool", True), ("weight_init", "init", None),
             ("bias_init", "init", None)],
    traits=("has_params", "norm"), doc="LayerNorm over the channel axis 1 of [N, C, H, W] (ConvNeXt's LayerNorm2d)")
def _ln2d(ins, a):
    (x,) = ins
    check_rank(x, (4,), "ln2d", "N, C, H, W")
    c = chan(x)
    a["_shape"] = (c,)
    p = {}
    if a["affine"]:
        p = {"weight": weight((c,), a["weight_init"]), "bias": weight((c,), a["bias_init"])}
    return [x], p


@op("expand", [("dims", "ints", 0)], inputs=(2, 2), traits=("pure", "layout"),
    doc="expand(x, like): repeat x's size-1 axes `dims` (default the batch axis 0) to the sizes of `like` "
        "(a class token [1, 1, D] -> [N, 1, D])")
def _expand(ins, a):
    x, like = ins
    dims = a["dims"] if isinstance(a["dims"], (list, tuple)) else (a["dims"],)
    if len(x) != len(like):
        raise OpError(f"`expand` needs tensors of the same rank: {S.shape_str(x)} and {S.shape_str(like)}")
    dims = tuple(sorted(_axis(x, d) for d in dims))
    y = list(x)
    for d in dims:
        if x[d].size != 1:
            raise OpError(f"`expand` repeats axes of size 1; axis {d} of {S.shape_str(x)} has size {x[d].size}")
        y[d] = like[d]
    a["dims"] = dims
    return [tuple(y)], {}


@op("stack", [("dim", "int", 1)], inputs=(1, None), traits=("pure", "linear", "merge"),
    doc="stack tensors of one shape along a new axis `dim` (SK-Net's paths)")
def _stack(ins, a):
    _merge_check(ins, "stack")
    r = len(ins[0]) + 1
    if not -r <= a["dim"] < r:
        raise OpError(f"stack axis {a['dim']} is out of range for rank {r}", kind="type")
    d = a["dim"] % r
    a["dim"] = d
    return [tuple(ins[0][:d]) + (Axis(len(ins)),) + tuple(ins[0][d:])], {}


@op("sum", [("dim", "any"), ("keepdim", "bool", False)], traits=("pure", "linear"),
    doc="sum over the axes `dim`")
def _sum(ins, a):
    (x,) = ins
    dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else [a["dim"]]
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise OpError(f"`sum` dim must be an int or a list of ints, got {a['dim']!r}", kind="type")
    dims = sorted({_axis(x, d) for d in dims})
    a["dim"] = tuple(dims) if len(dims) > 1 else dims[0]
    if a["keepdim"]:
        return [tuple(Axis(1, ax.name) if i in dims else ax for i, ax in enumerate(x))], {}
    return [tuple(ax for i, ax in enumerate(x) if i not in dims)], {}


@op("lstm", [("hidden", "int", REQUIRED, POS), ("bidirectional", "bool", False), ("bias", "bool", True)],
    traits=("has_params",),
    doc="one LSTM layer over [N, L, D] (batch first); gives [N, L, hidden (x2 if bidirectional)]")
def _lstm(ins, a):
    (x,) = ins
    check_rank(x, (3,), "lstm", "N, L, D")
    d = static(x[2].size, "the feature axis of `lstm`")
    h = check_dim(a["hidden"], "hidden size")
    a["_in"] = d
    p = {}
    for sfx in ("_l0", "_l0_reverse") if a["bidirectional"] else ("_l0",):
        p["weight_ih" + sfx] = weight((4 * h, d))
        p["weight_hh" + sfx] = weight((4 * h, h))
        if a["bias"]:
            p["bias_ih" + sfx] = weight((4 * h,))
            p["bias_hh" + sfx] = weight((4 * h,))
    return [with_axis(x, 2, h * (2 if a["bidirectional"] else 1))], p


# ---- added for issue 11: every activation of torch.nn is one word, plus exp, log, sqrt, rsqrt, abs
def _finite(a, opname, *names):
    for k in names:
        v = a[k]
        if v is not None and not math.isfinite(v):
            raise OpError(f"{opname} {k}={v} must be a finite number", kind="type")


for _n, _doc in [("relu6", "min(max(x, 0), 6)"), ("hardsigmoid", "relu6(x + 3) / 6"),
                 ("selu", "scaled ELU with the self-normalising constants"), ("mish", "x * tanh(softplus(x))"),
                 ("softsign", "x / (1 + |x|)"), ("logsigmoid", "log(sigmoid(x))"), ("exp", "e ** x"),
                 ("log", "natural logarithm"), ("sqrt", "square root"), ("rsqrt", "1 / sqrt(x)"),
                 ("abs", "|x|")]:
    op(_n, [], traits=("elementwise", "pure"), doc=_doc)(_same)


@op("clamp", [("min", "num", None), ("max", "num", None)], traits=("elementwise", "pure"),
    doc="min(max(x, min), max); either bound may be left out")
def _clamp(ins, a):
    _finite(a, "clamp", "min", "max")
    if a["min"] is None and a["max"] is None:
        raise OpError("clamp needs `min`, `max` or both", kind="type", help="e.g. clamp(0, 6) or clamp(max=1.0)")
    if a["min"] is not None and a["max"] is not None and a["min"] > a["max"]:
        raise OpError(f"clamp min={a['min']} is above max={a['max']}", kind="type")
    return [ins[0]], {}


@op("hardtanh", [("min_val", "num", -1.0), ("max_val", "num", 1.0)], traits=("elementwise", "pure"),
    doc="clamp to [min_val, max_val] (torch.nn.Hardtanh)")
def _hardtanh(ins, a):
    _finite(a, "hardtanh", "min_val", "max_val")
    if not a["min_val"] < a["max_val"]:  # torch.nn.Hardtanh asserts the same
        raise OpError(f"hardtanh min_val={a['min_val']} must be below max_val={a['max_val']}", kind="type")
    return [ins[0]], {}


@op("elu", [("alpha", "num", 1.0)], traits=("elementwise", "pure"), doc="x if x > 0 else alpha * (exp(x) - 1)")
def _elu(ins, a):
    _finite(a, "elu", "alpha")
    return [ins[0]], {}


@op("celu", [("alpha", "num", 1.0)], traits=("elementwise", "pure"),
    doc="max(0, x) + min(0, alpha * (exp(x / alpha) - 1))")
def _celu(ins, a):
    _finite(a, "celu", "alpha")
    if a["alpha"] == 0:
        raise OpError("celu alpha must not be 0 (it divides by alpha)", kind="type")
    return [ins[0]], {}


@op("softplus", [("beta", "num", 1.0), ("threshold", "num", 20.0)], traits=("elementwise", "pure"),
    doc="log(1 + exp(beta * x)) / beta; x itself where beta * x > threshold")
def _softplus(ins, a):
    _finite(a, "softplus", "beta", "threshold")
    if a["beta"] <= 0:
        raise OpError(f"softplus beta={a['beta']} must be positive", kind="type")
    return [ins[0]], {}


@op("prelu", [("num_parameters", "int", 1), ("init", "num", 0.25)], traits=("has_params",),
    doc="x if x > 0 else a * x with a learned slope a: one, or one per channel (axis 1) (torch.nn.PReLU)")
def _prelu(ins, a):
    (x,) = ins
    _finite(a, "prelu", "init")
    k = a["num_parameters"]
    if k != 1:
        if len(x) < 2 or x[1].size != k:
            raise OpError(f"prelu num_parameters={k} must be 1 or the channel count (axis 1) of "
                          f"{S.shape_str(x)}", kind="type", help="use prelu for one slope, or prelu(C) "
                                                                  "for one per channel")
    return [x], {"weight": weight((k,), ("constant", a["init"]))}


@op("glu", [("dim", "int", -1)], traits=("pure",), doc="a * sigmoid(b) for the halves a, b of axis `dim`")
def _glu(ins, a):
    (x,) = ins
    d = _axis(x, a["dim"])
    n = static(x[d].size, "the glu axis")
    if n % 2:
        raise OpError(f"glu halves axis {d}, whose size {n} is odd ({S.shape_str(x)})")
    a["dim"] = d
    return [with_axis(x, d, n // 2)], {}


# ------------------------------------------------------------------ tensor arithmetic (issue 11)
# `a - b`, `x * 2 + 1`, `-x` in a .res file become these ops (`x * c` is `scale`, `a + b` is
# `add`, `a * b` is `mul`). Tensor-tensor ops broadcast like torch: sizes equal or 1,
# aligned from the last axis.
def arith_broadcast(opname, x, y):
    try:
        return _broadcast(x, y)
    except OpError:
        raise OpError(f"`{opname}` needs shapes that broadcast: {S.shape_str(x)} and {S.shape_str(y)}",
                      help="sizes must be equal or 1, aligned from the last axis") from None


@op("sub", [], inputs=(2, 2), traits=("pure", "linear", "elementwise"), doc="a - b (broadcasting)")
def _sub(ins, a):
    return [arith_broadcast("sub", *ins)], {}


@op("div", [], inputs=(2, 2), traits=("pure", "elementwise"), doc="a / b (broadcasting)")
def _div(ins, a):
    return [arith_broadcast("div", *ins)], {}


op("neg", [], traits=("elementwise", "pure", "linear"), doc="-x")(_same)
op("shift", [("value", "num")], traits=("elementwise", "pure"), doc="x + value")(_same)
op("rsub", [("value", "num")], traits=("elementwise", "pure"), doc="value - x")(_same)
op("div_scalar", [("value", "num")], traits=("elementwise", "pure", "linear"), doc="x / value")(_same)
op("rdiv", [("value", "num")], traits=("elementwise", "pure"), doc="value / x")(_same)
