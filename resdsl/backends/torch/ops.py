"""The per-op torch lowering: :func:`module_recipe` (how a stateful op becomes a ``torch.nn``
module, used both in memory and in the generated file), :func:`build_modules` (every stateful
op at its dotted ``.res`` path) and :func:`_emit` (an op's fx nodes).

The layers above import this module and nothing below imports them: :mod:`tree`
decides which scopes become modules, :mod:`lower` builds them, :mod:`codegen`
writes the standalone file, and :mod:`build` is the entry point (``to_fx``, ``to_python``).
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F

from . import runtime
from ...diagnostics import ResdslError
from ...ir.graph import Graph, Node

# ------------------------------------------------------------------ module recipes
_CLASSES = {
    "torch.nn.Conv1d": torch.nn.Conv1d, "torch.nn.Conv2d": torch.nn.Conv2d, "torch.nn.Conv3d": torch.nn.Conv3d,
    "torch.nn.ConvTranspose1d": torch.nn.ConvTranspose1d, "torch.nn.ConvTranspose2d": torch.nn.ConvTranspose2d,
    "torch.nn.ConvTranspose3d": torch.nn.ConvTranspose3d, "torch.nn.Linear": torch.nn.Linear,
    "torch.nn.BatchNorm1d": torch.nn.BatchNorm1d, "torch.nn.BatchNorm2d": torch.nn.BatchNorm2d,
    "torch.nn.BatchNorm3d": torch.nn.BatchNorm3d, "torch.nn.GroupNorm": torch.nn.GroupNorm,
    "torch.nn.LayerNorm": torch.nn.LayerNorm, "torch.nn.RMSNorm": torch.nn.RMSNorm,
    "torch.nn.Embedding": torch.nn.Embedding, "torch.nn.Dropout": torch.nn.Dropout,
    "DropPath": runtime.DropPath, "LayerScale": runtime.LayerScale, "SelfAttention": runtime.SelfAttention,
    "torch.nn.LSTM": torch.nn.LSTM,  # added for the architecture library (tier 2/3)
    "torch.nn.PReLU": torch.nn.PReLU,  # added for issue 11
}
RUNTIME_CLASSES = ("DropPath", "LayerScale", "SelfAttention")


def module_recipe(n: Node):
    """(class name, args, kwargs, [(param local name, init spec)]) for a stateful node, else None."""
    a = n.attrs
    inits = []
    if n.op == "conv":
        nd = a["_nd"]
        kw = dict(stride=a["stride"], padding=a["_padding"], dilation=a["dilation"], groups=a["groups"],
                  bias=a["bias"])
        if a["padding_mode"] != "zeros":
            kw["padding_mode"] = a["padding_mode"]
        rec = (f"torch.nn.Conv{nd}d", (a["_in"], a["out"], a["kernel"]), kw)
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    elif n.op == "conv_transpose":
        nd = a["_nd"]
        rec = (f"torch.nn.ConvTranspose{nd}d", (a["_in"], a["out"], a["kernel"]),
               dict(stride=a["stride"], padding=a["padding"], output_padding=a["output_padding"],
                    groups=a["groups"], bias=a["bias"], dilation=a["dilation"]))
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    elif n.op == "linear":
        rec = ("torch.nn.Linear", (a["_in"], a["out"]), dict(bias=a["bias"]))
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    elif n.op == "bn":
        rec = (f"torch.nn.BatchNorm{a['_nd']}d", (a["_c"],), dict(eps=a["eps"], momentum=a["momentum"],
                                                                  affine=a["affine"]))
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    elif n.op == "gn":
        rec = ("torch.nn.GroupNorm", (a["groups"], a["_c"]), dict(eps=a["eps"], affine=a["affine"]))
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    elif n.op == "ln":
        shp = a["_shape"] if len(a["_shape"]) > 1 else a["_shape"][0]
        kw = dict(eps=a["eps"], elementwise_affine=a["affine"])
        if not a["bias"]:
            kw["bias"] = False
        rec = ("torch.nn.LayerNorm", (shp,), kw)
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    elif n.op == "rmsnorm":
        rec = ("torch.nn.RMSNorm", (a["_shape"][0],), dict(eps=a["eps"], elementwise_affine=a["affine"]))
        inits = [("weight", a["weight_init"])]
    elif n.op == "embedding":
        rec = ("torch.nn.Embedding", (a["num"], a["dim"]), {})
        inits = [("weight", a["weight_init"])]
    elif n.op == "attention":
        kw = dict(dropout=a["dropout"], bias=a["bias"])
        if a["causal"]:
            kw["causal"] = True
        rec = ("SelfAttention", (a["_d"], a["heads"]), kw)
    elif n.op == "dropout":
        rec = ("torch.nn.Dropout", (a["p"],), {})
    elif n.op == "drop_path":
        rec = ("DropPath", (a["p"],), {})
    elif n.op == "layer_scale":
        rec = ("LayerScale", (n.params["gamma"].shape[0], a["init"]), dict(axis=a["_axis"]))
    elif n.op == "lstm":  # added for the architecture library (tier 2/3)
        rec = ("torch.nn.LSTM", (a["_in"], a["hidden"]), dict(batch_first=True, bias=a["bias"],
                                                              bidirectional=a["bidirectional"]))
    elif n.op == "prelu":  # added for issue 11; PReLU sets its own initial slope
        rec = ("torch.nn.PReLU", (a["num_parameters"], a["init"]), {})
    elif n.op == "ln2d":  # a LayerNorm over channels; _emit permutes around it
        rec = ("torch.nn.LayerNorm", (a["_shape"][0],), dict(eps=a["eps"], elementwise_affine=a["affine"]))
        inits = [("weight", a["weight_init"]), ("bias", a["bias_init"])]
    else:
        return None
    cls, args, kwargs = rec
    kwargs = {k: v for k, v in kwargs.items() if _DEFAULTS.get(k, _NO) != v}
    return (cls, args, kwargs, [(p, s) for p, s in inits if s is not None and p in n.params])


_NO = object()
# torch's constructor defaults: left out of generated code so it reads like hand-written code
_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True, "eps": 1e-5,
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
        if n.path is None or n.path in done or not (n.params or n.has("stochastic")):
            continue
        done.add(n.path)
        yield n, module_recipe(n)


def build_modules(graph: Graph, device=None) -> torch.nn.Module:
    """Create every module and bare parameter, in first-use order, initialised."""
    root = torch.nn.Module()
    factory = {"device": device} if device is not None else {}
    for n, rec in state_owners(graph):
        if rec is not None:
            cls, args, kwargs, inits = rec
            kw = dict(kwargs)
            if factory and cls.startswith("torch.nn.") and cls != "torch.nn.Dropout":
                kw.update(factory)
            if device != "meta" and _explicit_init(cls, inits, n):
                mod = torch.nn.utils.skip_init(_CLASSES[cls], *args, **kw)
            else:
                mod = _CLASSES[cls](*args, **kw)
            if factory and not cls.startswith("torch.nn."):
                mod = mod.to(**factory)
            if device != "meta":
                for pname, spec in inits:
                    runtime.init_tensor(getattr(mod, pname), spec)
            runtime.put_module(root, n.path, mod)
            for local, owner in n.attrs.get("_tie", ()):  # tie=: one tensor, both state_dict keys
                setattr(mod, local, root.get_parameter(owner))
        else:  # bare parameter: param, scalar_mul
            spec = n.params[""]
            p = runtime.put_param(root, n.path, spec.shape, device)
            if device != "meta":
                runtime.init_tensor(p, spec.init or ("zeros",))
    return root


_FN = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu, "hardswish": F.hardswish,
}
_FN.update({  # added for issue 11: attribute-free elementwise ops
    "relu6": F.relu6, "hardsigmoid": F.hardsigmoid, "selu": F.selu, "mish": F.mish, "softsign": F.softsign,
    "logsigmoid": F.logsigmoid, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "abs": torch.abs,
})
# added for issue 11: elementwise ops with attributes -> (function, attribute names passed as keywords)
_FN_KW = {
    "clamp": (torch.clamp, ("min", "max")), "hardtanh": (F.hardtanh, ("min_val", "max_val")),
    "elu": (F.elu, ("alpha",)), "celu": (F.celu, ("alpha",)), "softplus": (F.softplus, ("beta", "threshold")),
    "glu": (F.glu, ("dim",)),
}


# op -> (operator, where the scalar attribute `value` goes: None, "left" or "right")
_ARITH = {
    "sub": (operator.sub, None), "div": (operator.truediv, None), "neg": (operator.neg, None),
    "shift": (operator.add, "right"), "rsub": (operator.sub, "left"),
    "div_scalar": (operator.truediv, "right"), "rdiv": (operator.truediv, "left"),
}


# producers whose backward does not need their output, so it may be overwritten
_OVERWRITABLE = (torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._BatchNorm, torch.nn.Linear,
                 torch.nn.GroupNorm, torch.nn.LayerNorm)


def _in_place(g: torch.fx.Graph, root: torch.nn.Module, shapes: dict) -> None:
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


def _class_name(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_")) or "Net"


def _emit(g: torch.fx.Graph, n: Node, ins):
    a = n.attrs
    op = n.op
    cf = g.call_function
    if n.path is not None and (n.params or n.has("stochastic")):
        if op in ("param",):
            return g.get_attr(n.path)
        if op == "scalar_mul":
            return cf(operator.mul, (ins[0], g.get_attr(n.path)))
        if op == "ln2d":  # NCHW -> NHWC, LayerNorm, -> NCHW (torchvision's LayerNorm2d)
            y = g.call_module(n.path, (g.call_method("permute", (ins[0], (0, 2, 3, 1))),))
            return g.call_method("permute", (y, (0, 3, 1, 2)))
        if op == "scalar_add":
            return cf(operator.add, (ins[0], g.get_attr(n.path)))
        if op == "lstm":  # torch.nn.LSTM returns (output, (h, c)); keep the output sequence
            return cf(operator.getitem, (g.call_module(n.path, tuple(ins)), 0))
        return g.call_module(n.path, tuple(ins))
    # norms without affine parameters own no state: plain functional calls
    if op == "ln":
        return cf(F.layer_norm, (ins[0], tuple(a["_shape"])), {"eps": a["eps"]})
    if op == "ln2d":
        y = g.call_method("permute", (ins[0], (0, 2, 3, 1)))
        y = cf(F.layer_norm, (y, (n.inputs[0].shape[1].size,)), {"eps": a["eps"]})
        return g.call_method("permute", (y, (0, 3, 1, 2)))
    if op == "gn":
        return cf(F.group_norm, (ins[0], a["groups"]), {"eps": a["eps"]})
    if op == "rmsnorm":
        return cf(F.rms_norm, (ins[0], tuple(a["_shape"])), {"eps": a["eps"]})
    if op in _FN:
        return cf(_FN[op], (ins[0],))
    if op == "identity":
        return ins[0]
    if op in _FN_KW:
        fn, names = _FN_KW[op]
        return cf(fn, (ins[0],), {k: a[k] for k in names if a[k] is not None})
    if op == "gelu":
        return cf(F.gelu, (ins[0],), {"approximate": a["approximate"]} if a["approximate"] != "none" else {})
    if op == "leaky_relu":
        return cf(F.leaky_relu, (ins[0], a["slope"]))
    if op == "scale":
        return cf(operator.mul, (ins[0], a["factor"]))
    if op == "softmax":
        return cf(torch.softmax, (ins[0], a["dim"]))
    if op == "maxpool":
        fn = getattr(F, f"max_pool{a['_nd']}d")
        kw = {"stride": a["stride"] if a["stride"] is not None else a["kernel"], "padding": a["padding"]}
        if a["dilation"] != 1:
            kw["dilation"] = a["dilation"]
        if a["ceil_mode"]:
            kw["ceil_mode"] = True
        return cf(fn, (ins[0], a["kernel"]), kw)
    if op == "avgpool":
        fn = getattr(F, f"avg_pool{a['_nd']}d")
        kw = {"stride": a["stride"] if a["stride"] is not None else a["kernel"], "padding": a["padding"]}
        if a["ceil_mode"]:
            kw["ceil_mode"] = True
        if not a["count_include_pad"]:
            kw["count_include_pad"] = False
        return cf(fn, (ins[0], a["kernel"]), kw)
    if op == "adaptive_avgpool":
        return cf(getattr(F, f"adaptive_avg_pool{a['_nd']}d"), (ins[0], a["size"]))
    if op == "upsample":
        return cf(F.interpolate, (ins[0],), {"scale_factor": float(a["scale"]), "mode": a["mode"]})
    if op == "pixel_shuffle":
        return cf(F.pixel_shuffle, (ins[0], a["factor"]))
    if op == "flatten":
        return cf(torch.flatten, (ins[0], a["start"], a["end"]))
    if op == "reshape":
        out = n.outputs[0].shape
        dyn = [i for i, ax in enumerate(out) if not isinstance(ax.size, int)]
        if len(dyn) > 1:
            raise ResdslError("shape", f"reshape to {[str(x.size) for x in out]} has {len(dyn)} symbolic axes; "
                                       "the torch target supports one", n.span,
                              help="fix the other axes with numbers in the `input` shape")
        shape = tuple(-1 if i in dyn else ax.size for i, ax in enumerate(out))
        return g.call_method("reshape", (ins[0], shape))
    if op == "transpose":
        return cf(torch.transpose, (ins[0], a["dim0"], a["dim1"]))
    if op == "permute":
        return g.call_method("permute", (ins[0], tuple(a["dims"])))
    if op == "rearrange":
        x = ins[0]
        for step in a["_steps"]:
            if step[0] == "unflatten":
                x = cf(torch.unflatten, (x, step[1], step[2]))
            elif step[0] == "permute":
                x = g.call_method("permute", (x, step[1]))
            else:
                x = cf(torch.flatten, (x, step[1], step[2]))
        return x
    if op == "select":
        return cf(torch.select, (ins[0], a["dim"], a["index"]))
    if op == "add":
        x = ins[0]
        for y in ins[1:]:
            x = cf(operator.add, (x, y))
        return x
    if op == "mul":
        return cf(operator.mul, (ins[0], ins[1]))
    # ---- tensor arithmetic (issue 11): `a - b`, `x + 1`, `6 - x`, `x / 2`, `-x`
    if op in _ARITH:
        fn, scalar = _ARITH[op]
        if scalar is None:
            return cf(fn, tuple(ins))
        return cf(fn, (a["value"], ins[0]) if scalar == "left" else (ins[0], a["value"]))
    if op == "mean":
        if len(ins) > 1:
            x = ins[0]
            for y in ins[1:]:
                x = cf(operator.add, (x, y))
            return cf(operator.truediv, (x, float(len(ins))))
        return cf(torch.mean, (ins[0], a["dim"]), {"keepdim": True} if a["keepdim"] else {})
    if op == "concat":
        return cf(torch.cat, (list(ins), a["dim"]))
    if op == "matmul":
        return cf(torch.matmul, (ins[0], ins[1]))
    if op in ("split", "chunk"):
        parts = cf(torch.split, (ins[0], list(a["_sizes"]), a["dim"])) if op == "split" else \
            cf(torch.chunk, (ins[0], a["n"], a["dim"]))
        return [cf(operator.getitem, (parts, i)) for i in range(len(n.outputs))]
    # ---- added for the architecture library (tier 2/3)
    if op == "pad":
        return cf(F.pad, (ins[0], list(a["widths"])), {"value": a["value"]} if a["value"] else {})
    if op == "l2norm":
        return cf(F.normalize, (ins[0],), {"dim": a["dim"], "eps": a["eps"]})
    if op == "orthogonal":  # f - <x, f> / (<x, x> + eps) * x
        f, x = ins
        dot = cf(torch.sum, (cf(operator.mul, (x, f)), a["dim"]), {"keepdim": True})
        nrm = cf(torch.sum, (cf(operator.mul, (x, x)), a["dim"]), {"keepdim": True})
        coef = cf(operator.truediv, (dot, cf(operator.add, (nrm, a["eps"]))))
        return cf(operator.sub, (f, cf(operator.mul, (coef, x))))
    # ---- added for the architecture library (tier 1)
    if op == "expand":
        x, like = ins
        sizes = [g.call_method("size", (like, d)) if d in a["dims"] else -1 for d in range(len(n.outputs[0].shape))]
        return g.call_method("expand", (x, *sizes))
    if op == "stack":
        return cf(torch.stack, (list(ins), a["dim"]))
    if op == "sum":
        return cf(torch.sum, (ins[0], a["dim"]), {"keepdim": True} if a["keepdim"] else {})
    raise ResdslError("unsupported", f"the torch target has no lowering for `{op}`", n.span)
