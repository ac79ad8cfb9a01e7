"""The per-op torch lowering, registered against the op table's records: a module recipe per
stateful op (:data:`RECIPES`, ``@recipe``: how it becomes a ``torch.nn`` module, used both in
memory and in the generated file) and a lowering per op (:data:`LOWERINGS`, ``@lowering``: its
fx nodes). Both registries refuse a second registration for one op. :func:`module_recipe`,
:func:`build_modules` (every stateful op at its dotted ``.res`` path) and :func:`emit` use them.

The layers above import this module and nothing below imports them: :mod:`tree`
decides which scopes become modules, :mod:`lower` builds them, :mod:`codegen`
writes the standalone file, and :mod:`build` is the entry point (``to_fx``, ``to_python``).
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F

from ...ir.graph import Graph, Node
from . import ops_index, runtime

# ------------------------------------------------------------------ module recipes
CLASSES = {
    "torch.nn.Conv1d": torch.nn.Conv1d, "torch.nn.Conv2d": torch.nn.Conv2d, "torch.nn.Conv3d": torch.nn.Conv3d,
    "torch.nn.ConvTranspose1d": torch.nn.ConvTranspose1d, "torch.nn.ConvTranspose2d": torch.nn.ConvTranspose2d,
    "torch.nn.ConvTranspose3d": torch.nn.ConvTranspose3d, "torch.nn.Linear": torch.nn.Linear,
    "torch.nn.BatchNorm1d": torch.nn.BatchNorm1d, "torch.nn.BatchNorm2d": torch.nn.BatchNorm2d,
    "torch.nn.BatchNorm3d": torch.nn.BatchNorm3d, "torch.nn.GroupNorm": torch.nn.GroupNorm,
    "torch.nn.LayerNorm": torch.nn.LayerNorm, "torch.nn.RMSNorm": torch.nn.RMSNorm,
    "torch.nn.Embedding": torch.nn.Embedding, "torch.nn.Dropout": torch.nn.Dropout,
    "DropPath": runtime.DropPath, "LayerScale": runtime.LayerScale, "SelfAttention": runtime.SelfAttention,
    "torch.nn.LSTM": torch.nn.LSTM, "torch.nn.PReLU": torch.nn.PReLU, "LinearInOut": runtime.LinearInOut,
    "SkipGate": runtime.SkipGate, "TopKRouter": runtime.TopKRouter, "VectorQuantizer": runtime.VectorQuantizer,
    "ResFieldLinear": runtime.ResFieldLinear,
    "LIF": runtime.LIF, "ConvLSTM": runtime.ConvLSTM, "Reservoir": runtime.Reservoir,
}
RUNTIME_CLASSES = ("DropPath", "LayerScale", "SelfAttention", "LinearInOut", "SkipGate", "TopKRouter",
                   "VectorQuantizer", "ResFieldLinear", "LIF", "ConvLSTM", "Reservoir")


# the registries live in registry.py, which the per-kind lowering modules import (not this one)
from .registry import LOWERINGS, RECIPES, lowering, recipe  # noqa: E402, F401 (the public names)
from .registry import stateful as _stateful, unsupported as _unsupported  # noqa: E402


def module_recipe(n: Node):
    """(class name, args, kwargs, [(param local name, init spec)]) for a stateful node, else None."""
    make = RECIPES.get(n.op)
    if make is None:
        return None
    cls, args, kwargs, inits = make(n)
    kwargs = {k: v for k, v in kwargs.items() if DEFAULTS.get(k, _NO) != v}
    return (cls, args, kwargs, [(p, s) for p, s in inits if s is not None and p in n.params])


def _weight_bias(a):
    return [("weight", a["weight_init"]), ("bias", a["bias_init"])]


@recipe("conv")
def _conv_module(n):
    a = n.attrs
    kw = dict(stride=a["stride"], padding=a["_padding"], dilation=a["dilation"], groups=a["groups"], bias=a["bias"])
    if a["padding_mode"] != "zeros":
        kw["padding_mode"] = a["padding_mode"]
    return f"torch.nn.Conv{a['_nd']}d", (a["_in"], a["out"], a["kernel"]), kw, _weight_bias(a)


@recipe("conv_transpose")
def _conv_transpose_module(n):
    a = n.attrs
    return (f"torch.nn.ConvTranspose{a['_nd']}d", (a["_in"], a["out"], a["kernel"]),
            dict(stride=a["stride"], padding=a["padding"], output_padding=a["output_padding"], groups=a["groups"],
                 bias=a["bias"], dilation=a["dilation"]), _weight_bias(a))


@recipe("linear")
def _linear_module(n):
    a = n.attrs
    cls = "LinearInOut" if a["layout"] == "in_out" else "torch.nn.Linear"  # weight [in, out]: HF's Conv1D
    return cls, (a["_in"], a["out"]), dict(bias=a["bias"]), _weight_bias(a)


@recipe("bn")
def _bn_module(n):
    a = n.attrs
    return (f"torch.nn.BatchNorm{a['_nd']}d", (a["_c"],), dict(eps=a["eps"], momentum=a["momentum"],
                                                               affine=a["affine"]), _weight_bias(a))


@recipe("gn")
def _gn_module(n):
    a = n.attrs
    return "torch.nn.GroupNorm", (a["groups"], a["_c"]), dict(eps=a["eps"], affine=a["affine"]), _weight_bias(a)


@recipe("ln")
def _ln_module(n):
    a = n.attrs
    shp = a["_shape"] if len(a["_shape"]) > 1 else a["_shape"][0]
    kw = dict(eps=a["eps"], elementwise_affine=a["affine"])
    if not a["bias"]:
        kw["bias"] = False
    return "torch.nn.LayerNorm", (shp,), kw, _weight_bias(a)


@recipe("ln2d")  # a LayerNorm over channels; the lowering permutes around it
def _ln2d_module(n):
    a = n.attrs
    return ("torch.nn.LayerNorm", (a["_shape"][0],), dict(eps=a["eps"], elementwise_affine=a["affine"]),
            _weight_bias(a))


@recipe("rmsnorm")
def _rmsnorm_module(n):
    a = n.attrs
    return ("torch.nn.RMSNorm", (a["_shape"][0],), dict(eps=a["eps"], elementwise_affine=a["affine"]),
            [("weight", a["weight_init"])])


@recipe("embedding")
def _embedding_module(n):
    return "torch.nn.Embedding", (n.attrs["num"], n.attrs["dim"]), {}, [("weight", n.attrs["weight_init"])]


@recipe("attention")
def _attention_module(n):
    a = n.attrs
    kw = dict(dropout=a["dropout"], bias=a["bias"])
    if a["causal"]:
        kw["causal"] = True
    return "SelfAttention", (a["_d"], a["heads"]), kw, []


@recipe("dropout")
def _dropout_module(n):
    return "torch.nn.Dropout", (n.attrs["p"],), {}, []


@recipe("drop_path")
def _drop_path_module(n):
    return "DropPath", (n.attrs["p"],), {}, []


@recipe("layer_scale")
def _layer_scale_module(n):
    return "LayerScale", (n.params["gamma"].shape[0], n.attrs["init"]), dict(axis=n.attrs["_axis"]), []


@recipe("lstm")
def _lstm_module(n):
    a = n.attrs
    return ("torch.nn.LSTM", (a["_in"], a["hidden"]),
            dict(batch_first=True, bias=a["bias"], bidirectional=a["bidirectional"]), [])


@recipe("prelu")  # PReLU sets its own initial slope
def _prelu_module(n):
    return "torch.nn.PReLU", (n.attrs["num_parameters"], n.attrs["init"]), {}, []


_NO = object()
# torch's constructor defaults: left out of generated code so it reads like hand-written code
DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True, "eps": 1e-5,
             "momentum": 0.1, "affine": True, "elementwise_affine": True, "output_padding": 0, "dropout": 0.0}


# ------------------------------------------------------------------ building
def _explicit_init(cls: str, inits, n: Node) -> bool:
    """A conv/linear whose every parameter has an explicit init: construct it without the default
    init (torch.nn.utils.skip_init), which would only be overwritten. Halves resnet50's build time."""
    return cls.startswith(("torch.nn.Conv", "torch.nn.Linear")) and bool(inits) and \
        set(n.params) == {p for p, spec in inits if spec[0] != "default"}


def state_owners(graph: Graph):
    """(node, module recipe or None for a bare parameter) for each state path, in first-use order.

    Both the in-memory build and the generated file walk this one list, so they create
    (and draw random numbers for) the same modules in the same order."""
    done = set()
    for n in graph.nodes:
        if n.path is None or n.path in done or not (n.params or n.has("stochastic") or n.has("module")):
            continue
        done.add(n.path)
        yield n, module_recipe(n)


def build_modules(graph: Graph, device=None) -> torch.nn.Module:
    """Create every module and bare parameter, in first-use order, initialised."""
    root = torch.nn.Module()
    ties = []
    factory = {"device": device} if device is not None else {}
    for n, rec in state_owners(graph):
        if rec is not None:
            cls, args, kwargs, inits = rec
            kw = dict(kwargs)
            if factory and cls.startswith("torch.nn.") and cls != "torch.nn.Dropout":
                kw.update(factory)
            if device != "meta" and _explicit_init(cls, inits, n):
                mod = torch.nn.utils.skip_init(CLASSES[cls], *args, **kw)
            else:
                mod = CLASSES[cls](*args, **kw)
            if factory and not cls.startswith("torch.nn."):
                mod = mod.to(**factory)
            if device != "meta":
                for pname, spec in inits:
                    runtime.init_tensor(getattr(mod, pname), spec)
            runtime.put_module(root, n.path, mod)
            ties += [(mod, local, owner) for local, owner in n.attrs.get("_tie", ())]
        elif n.op == "buffer":  # a compile-time tensor (ops_index.py)
            runtime.put_buffer(root, n.path, buffer_tensor(n, device), n.attrs["persistent"])
        else:  # bare parameter: param, scalar_mul
            spec = n.params[""]
            p = runtime.put_param(root, n.path, spec.shape, device)
            if device != "meta":
                runtime.init_tensor(p, spec.init or ("zeros",))
    for mod, local, owner in ties:  # tie=: one tensor, both state_dict keys (the owner may come later)
        setattr(mod, local, root.get_parameter(owner))
    return root


def buffer_tensor(n: Node, device=None) -> torch.Tensor:
    """The value of a `buffer` node as a torch tensor of its dtype."""
    dt = getattr(torch, n.attrs["_dtype"])
    if device == "meta":
        return torch.empty(n.attrs["_shape"], dtype=dt, device="meta")
    return torch.tensor(n.attrs["_flat"], dtype=dt, device=device).reshape(n.attrs["_shape"])


# producers whose backward does not need their output, so it may be overwritten
_OVERWRITABLE = (torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._BatchNorm, torch.nn.Linear,
                 torch.nn.GroupNorm, torch.nn.LayerNorm)


def in_place(g: torch.fx.Graph, root: torch.nn.Module, shapes: dict) -> None:
    """relu and residual add write into their input when nothing else reads it (as torchvision's
    ReLU(inplace=True) and `out += identity` do): fewer allocations, measurably faster eager
    forward at batch > 1. Only inputs made by convs, norms, linears or adds, whose backward does
    not need their output, are overwritten, so training is unaffected."""
    def overwritable(a) -> bool:
        if not isinstance(a, torch.fx.Node) or len(a.users) != 1:
            return False
        if a.op == "call_module":
            return isinstance(root.get_submodule(a.target), _OVERWRITABLE)
        return a.op == "call_function" and a.target in (operator.add, operator.iadd)

    for node in g.nodes:
        if node.op != "call_function" or not node.args:
            continue
        if node.target is torch.relu and overwritable(node.args[0]):
            node.target = torch.relu_
        elif node.target is operator.add and overwritable(node.args[0]) \
                and isinstance(node.args[1], torch.fx.Node) and node.args[1] is not node.args[0] \
                and node.args[0] in shapes and shapes[node.args[0]] == shapes.get(node.args[1]):
            node.target = operator.iadd


def module_class_name(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_")) or "Net"


# ------------------------------------------------------------------ lowerings: an op's fx nodes
def emit(g: torch.fx.Graph, n: Node, ins):
    fn = LOWERINGS.get(n.op)
    if fn is None:
        raise _unsupported(n)
    return fn(g, n, ins)


@lowering("conv", "conv_transpose", "linear", "bn", "embedding", "attention", "dropout", "drop_path",
          "layer_scale", "prelu")
def _module(g, n, ins):
    """A call of the torch.nn module that module_recipe made at the op's path."""
    if not _stateful(n):
        raise _unsupported(n)
    return g.call_module(n.path, tuple(ins))


# ---- norms without affine parameters own no state: plain functional calls
@lowering("ln")
def _ln(g, n, ins):
    if _stateful(n):
        return g.call_module(n.path, tuple(ins))
    return g.call_function(F.layer_norm, (ins[0], tuple(n.attrs["_shape"])), {"eps": n.attrs["eps"]})


@lowering("gn")
def _gn(g, n, ins):
    if _stateful(n):
        return g.call_module(n.path, tuple(ins))
    return g.call_function(F.group_norm, (ins[0], n.attrs["groups"]), {"eps": n.attrs["eps"]})


@lowering("rmsnorm")
def _rmsnorm(g, n, ins):
    if _stateful(n):
        return g.call_module(n.path, tuple(ins))
    return g.call_function(F.rms_norm, (ins[0], tuple(n.attrs["_shape"])), {"eps": n.attrs["eps"]})


@lowering("ln2d")
def _ln2d(g, n, ins):  # NCHW -> NHWC, LayerNorm, -> NCHW (torchvision's LayerNorm2d)
    y = g.call_method("permute", (ins[0], (0, 2, 3, 1)))
    if _stateful(n):
        y = g.call_module(n.path, (y,))
    else:
        y = g.call_function(F.layer_norm, (y, (n.inputs[0].shape[1].size,)), {"eps": n.attrs["eps"]})
    return g.call_method("permute", (y, (0, 3, 1, 2)))


@lowering("l2norm")
def _l2norm(g, n, ins):
    return g.call_function(F.normalize, (ins[0],), {"dim": n.attrs["dim"], "eps": n.attrs["eps"]})


# ---- learned tensors and scalars: bare parameters at the op's path
@lowering("param")
def _param(g, n, ins):
    if not _stateful(n):
        raise _unsupported(n)
    return g.get_attr(n.path)


@lowering("scalar_mul")
def _scalar_mul(g, n, ins):
    if not _stateful(n):
        raise _unsupported(n)
    return g.call_function(operator.mul, (ins[0], g.get_attr(n.path)))


@lowering("scalar_add")
def _scalar_add(g, n, ins):
    if not _stateful(n):
        raise _unsupported(n)
    return g.call_function(operator.add, (ins[0], g.get_attr(n.path)))


@lowering("lstm")
def _lstm(g, n, ins):  # torch.nn.LSTM returns (output, (h, c)); keep the output sequence
    if not _stateful(n):
        raise _unsupported(n)
    return g.call_function(operator.getitem, (g.call_module(n.path, tuple(ins)), 0))


# ---- activations and other elementwise functions
def _call(fn, names=()):
    """The lowering `fn(x, **{name: attribute})` (attributes that are None are left out)."""
    def lower(g, n, ins):
        return g.call_function(fn, (ins[0],), {k: n.attrs[k] for k in names if n.attrs[k] is not None})
    return lower


for _name, _fn in {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu,
                   "hardswish": F.hardswish, "relu6": F.relu6, "hardsigmoid": F.hardsigmoid, "selu": F.selu,
                   "mish": F.mish, "softsign": F.softsign, "logsigmoid": F.logsigmoid, "exp": torch.exp,
                   "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "abs": torch.abs}.items():
    lowering(_name)(_call(_fn))
for _name, (_fn, _names) in {"clamp": (torch.clamp, ("min", "max")), "hardtanh": (F.hardtanh, ("min_val", "max_val")),
                             "elu": (F.elu, ("alpha",)), "celu": (F.celu, ("alpha",)),
                             "softplus": (F.softplus, ("beta", "threshold")), "glu": (F.glu, ("dim",))}.items():
    lowering(_name)(_call(_fn, _names))


@lowering("identity")
def _identity(g, n, ins):
    return ins[0]


@lowering("gelu")
def _gelu(g, n, ins):
    a = n.attrs
    return g.call_function(F.gelu, (ins[0],), {"approximate": a["approximate"]} if a["approximate"] != "none" else {})


@lowering("leaky_relu")
def _leaky_relu(g, n, ins):
    return g.call_function(F.leaky_relu, (ins[0], n.attrs["slope"]))


@lowering("softmax")
def _softmax(g, n, ins):
    return g.call_function(torch.softmax, (ins[0], n.attrs["dim"]))


# ---- pooling and resampling
@lowering("maxpool")
def _maxpool(g, n, ins):
    a = n.attrs
    kw = {"stride": a["stride"] if a["stride"] is not None else a["kernel"], "padding": a["padding"]}
    if a["dilation"] != 1:
        kw["dilation"] = a["dilation"]
    if a["ceil_mode"]:
        kw["ceil_mode"] = True
    return g.call_function(getattr(F, f"max_pool{a['_nd']}d"), (ins[0], a["kernel"]), kw)


@lowering("avgpool")
def _avgpool(g, n, ins):
    a = n.attrs
    kw = {"stride": a["stride"] if a["stride"] is not None else a["kernel"], "padding": a["padding"]}
    if a["ceil_mode"]:
        kw["ceil_mode"] = True
    if not a["count_include_pad"]:
        kw["count_include_pad"] = False
    return g.call_function(getattr(F, f"avg_pool{a['_nd']}d"), (ins[0], a["kernel"]), kw)


@lowering("adaptive_avgpool")
def _adaptive_avgpool(g, n, ins):
    return g.call_function(getattr(F, f"adaptive_avg_pool{n.attrs['_nd']}d"), (ins[0], n.attrs["size"]))


@lowering("upsample")
def _upsample(g, n, ins):
    return g.call_function(F.interpolate, (ins[0],), {"scale_factor": float(n.attrs["scale"]),
                                                      "mode": n.attrs["mode"]})


@lowering("pixel_shuffle")
def _pixel_shuffle(g, n, ins):
    return g.call_function(F.pixel_shuffle, (ins[0], n.attrs["factor"]))


# ---- layout
@lowering("flatten")
def _flatten(g, n, ins):
    return g.call_function(torch.flatten, (ins[0], n.attrs["start"], n.attrs["end"]))


@lowering("reshape")
def _reshape(g, n, ins):
    return ops_sizes.reshape(g, n, ins)


@lowering("transpose")
def _transpose(g, n, ins):
    return g.call_function(torch.transpose, (ins[0], n.attrs["dim0"], n.attrs["dim1"]))


@lowering("permute")
def _permute(g, n, ins):
    return g.call_method("permute", (ins[0], tuple(n.attrs["dims"])))


@lowering("rearrange")
def _rearrange(g, n, ins):
    return ops_sizes.rearrange(g, n, ins)


@lowering("select")
def _select(g, n, ins):
    return g.call_function(torch.select, (ins[0], n.attrs["dim"], n.attrs["index"]))


@lowering("concat")
def _concat(g, n, ins):
    return g.call_function(torch.cat, (list(ins), n.attrs["dim"]))


@lowering("stack")
def _stack(g, n, ins):
    return g.call_function(torch.stack, (list(ins), n.attrs["dim"]))


@lowering("split")
def _split(g, n, ins):
    return ops_sizes.split(g, n, ins)


@lowering("chunk")
def _chunk(g, n, ins):
    parts = g.call_function(torch.chunk, (ins[0], n.attrs["n"], n.attrs["dim"]))
    return [g.call_function(operator.getitem, (parts, i)) for i in range(len(n.outputs))]


@lowering("pad")
def _pad(g, n, ins):
    a = n.attrs
    return g.call_function(F.pad, (ins[0], list(a["widths"])), {"value": a["value"]} if a["value"] else {})


@lowering("expand")
def _expand(g, n, ins):
    x, like = ins
    sizes = [g.call_method("size", (like, d)) if d in n.attrs["dims"] else -1
             for d in range(len(n.outputs[0].shape))]
    return g.call_method("expand", (x, *sizes))


# ---- arithmetic, merges and reductions
def _sum_of(g, ins):
    x = ins[0]
    for y in ins[1:]:
        x = g.call_function(operator.add, (x, y))
    return x


@lowering("add")
def _add(g, n, ins):
    return _sum_of(g, ins)


@lowering("mul")
def _mul(g, n, ins):
    return g.call_function(operator.mul, (ins[0], ins[1]))


@lowering("matmul")
def _matmul(g, n, ins):
    return g.call_function(torch.matmul, (ins[0], ins[1]))


@lowering("scale")
def _scale(g, n, ins):
    return g.call_function(operator.mul, (ins[0], n.attrs["factor"]))


def _arith(fn, scalar=None):
    """`a - b`, `x + 1`, `6 - x`, `x / 2`, `-x`: the operator, with the scalar attribute `value`
    on the left or the right (or none)."""
    def lower(g, n, ins):
        if scalar is None:
            return g.call_function(fn, tuple(ins))
        v = n.attrs["value"]
        return g.call_function(fn, (v, ins[0]) if scalar == "left" else (ins[0], v))
    return lower


for _name, (_fn, _scalar) in {"sub": (operator.sub, None), "div": (operator.truediv, None),
                              "neg": (operator.neg, None), "shift": (operator.add, "right"),
                              "rsub": (operator.sub, "left"), "div_scalar": (operator.truediv, "right"),
                              "rdiv": (operator.truediv, "left")}.items():
    lowering(_name)(_arith(_fn, _scalar))


@lowering("mean")
def _mean(g, n, ins):
    if len(ins) > 1:
        return g.call_function(operator.truediv, (_sum_of(g, ins), float(len(ins))))
    return g.call_function(torch.mean, (ins[0], n.attrs["dim"]), {"keepdim": True} if n.attrs["keepdim"] else {})


@lowering("sum")
def _sum(g, n, ins):
    return g.call_function(torch.sum, (ins[0], n.attrs["dim"]), {"keepdim": True} if n.attrs["keepdim"] else {})


@lowering("orthogonal")
def _orthogonal(g, n, ins):  # f - <x, f> / (<x, x> + eps) * x
    cf, a = g.call_function, n.attrs
    f, x = ins
    dot = cf(torch.sum, (cf(operator.mul, (x, f)), a["dim"]), {"keepdim": True})
    nrm = cf(torch.sum, (cf(operator.mul, (x, x)), a["dim"]), {"keepdim": True})
    coef = cf(operator.truediv, (dot, cf(operator.add, (nrm, a["eps"]))))
    return cf(operator.sub, (f, cf(operator.mul, (coef, x))))


from . import ops_elementwise_math  # noqa: E402, F401 (registers the lowerings of elementwise_math's ops)
from . import ops_quantize  # noqa: E402, F401 (quantize)
from . import ops_phase  # noqa: E402, F401 (atan2)
from . import ops_dynamic  # noqa: F401 (skip_gate, route, combine, vq, resfield)
from . import ops_sizes  # (run-time sizes; importing it registers their lowerings)
from . import ops_sdpa  # noqa: E402,F401 (registers the lowering of sdpa)
ops_index.register(lowering, _stateful, _unsupported)  # buffer, index, roll: their own module
from . import ops_recurrent  # noqa: F401 (lif, convlstm, reservoir)
from . import ops_ssm  # noqa: E402, F401 (selective_scan)
