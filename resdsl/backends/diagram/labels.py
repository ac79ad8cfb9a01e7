"""Words and colours of the block diagram: the op families and their palette, and the text of every
label (`3×3 conv, 64, /2`, the axes a norm acts on, `Bottleneck(planes=128, stride=2,1,1,1)` for a block,
a repeat or a loop). Used by the DOT emitter and by the circuit renderer."""
from __future__ import annotations

import html

FONT = "Helvetica,Arial,sans-serif"

# op family -> (fill, stroke); the SVG class of a node is its family (and the op name)
PALETTE = {
    "conv": ("#dbe8f7", "#3b6ea8"),
    "linear": ("#e8def4", "#6a4c9c"),
    "norm": ("#fcf0c8", "#a8841c"),
    "act": ("#dcefdc", "#3d8b3d"),
    "pool": ("#fde3cf", "#c0652a"),
    "merge": ("#ffffff", "#444444"),
    "layout": ("#eeeeee", "#777777"),
    "stochastic": ("#f8dde6", "#a8436b"),
    "scale": ("#f2f2f2", "#666666"),
    "block": ("#f3f5f8", "#34495e"),
    "io": ("#ffffff", "#ffffff"),
}
FAMILY = {
    "conv": "conv", "conv_transpose": "conv",
    "linear": "linear", "attention": "linear", "matmul": "linear", "embedding": "linear",
    "bn": "norm", "gn": "norm", "ln": "norm", "rmsnorm": "norm", "ln2d": "norm", "l2norm": "norm",
    "stack": "merge", "orthogonal": "merge", "scalar_add": "scale",
    "relu": "act", "gelu": "act", "silu": "act", "sigmoid": "act", "tanh": "act", "hardswish": "act",
    "leaky_relu": "act", "softmax": "act",
    "maxpool": "pool", "avgpool": "pool", "adaptive_avgpool": "pool", "upsample": "pool", "pixel_shuffle": "pool",
    "add": "merge", "concat": "merge", "mean": "merge", "mul": "merge",
    "dropout": "stochastic", "drop_path": "stochastic",
    "scale": "scale", "scalar_mul": "scale", "layer_scale": "scale", "param": "scale", "identity": "layout",
    "sub": "merge", "div": "merge", "neg": "scale", "shift": "scale", "rsub": "scale", "div_scalar": "scale",
    "rdiv": "scale",
}
FAMILY.update({n: "act" for n in (  # added for issue 11
    "relu6", "clamp", "hardtanh", "hardsigmoid", "elu", "selu", "celu", "mish", "softplus", "softsign", "prelu",
    "glu", "logsigmoid", "exp", "log", "sqrt", "rsqrt", "abs")})
BADGE = "#b03a2e"
GREY = "#555555"


def family(op: str) -> str:
    return FAMILY.get(op, "layout")


def shape_label(shape) -> str:
    """`N×256×H/4×W/4`: the sizes in the author's axis names."""
    return "×".join(str(a.size) for a in shape)


def _sizes(shape):
    return tuple(a.size for a in shape)


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _axname(a) -> str:
    return a.name if a.name else str(a.size)


# ------------------------------------------------------------------ op labels
def _k(t) -> str:
    t = t if isinstance(t, (list, tuple)) else (t,)
    return "×".join(str(x) for x in t)


def _stride(s) -> str:
    s = s if isinstance(s, (list, tuple)) else (s,)
    return "" if all(x == 1 for x in s) else ", /" + ("×".join(map(str, s)) if len(set(s)) > 1 else str(s[0]))


_ARITH_TEXT = {"sub": "−", "div": "÷", "neg": "negate", "shift": "+ {v}", "rsub": "{v} −", "div_scalar": "÷ {v}",
               "rdiv": "{v} ÷"}


def op_text(n) -> str:
    """Paper-style one-line description: `3×3 conv, 64, /2`."""
    a, op = n.attrs, n.op
    if op == "conv":
        k = n.params["weight"].shape[2:]
        t = f"{_k(k)} conv, {a['out']}{_stride(a['stride'])}"
        if a["groups"] > 1:
            t += f", g{a['groups']}"
        d = a["dilation"] if isinstance(a["dilation"], (list, tuple)) else (a["dilation"],)
        if any(x != 1 for x in d):
            t += f", d{_k(d)}"
        return t
    if op == "conv_transpose":
        return f"{_k(a['kernel'])} conv\u1d40, {a['out']}" + _stride(a["stride"]).replace("/", "×")
    if op == "linear":
        return f"linear {a['out']}"
    if op == "gn":
        return f"gn {a['groups']}"
    if op in ("maxpool", "avgpool"):
        st = a["stride"] if a["stride"] is not None else a["kernel"]
        nd = a.get("_nd", 1)
        k = a["kernel"] if isinstance(a["kernel"], (list, tuple)) else (a["kernel"],) * nd
        return f"{_k(k)} {op}{_stride(st)}"
    if op == "adaptive_avgpool":
        size = a["size"] if isinstance(a["size"], (list, tuple)) else (a["size"],)
        return "global avgpool" if all(s == 1 for s in size) else f"avgpool → {_k(size)}"
    if op == "scale":
        return f"× {a['factor']:g}" if isinstance(a["factor"], (int, float)) else f"× {a['factor']}"
    if op in _ARITH_TEXT:  # tensor arithmetic: `+ 3`, `6 −`, `÷ 2`
        return _ARITH_TEXT[op].format(v=f"{a['value']:g}" if "value" in a else "")
    if op == "scalar_mul":
        return "× α (learned)"
    if op == "layer_scale":
        return "× γ (layer scale)"
    if op in ("dropout", "drop_path"):
        return f"{op} {a['p']:g}"
    if op == "upsample":
        return f"upsample ×{a['scale']}" + ("" if a["mode"] == "nearest" else f", {a['mode']}")
    if op == "pixel_shuffle":
        return f"pixel shuffle {a['factor']}"
    if op == "attention":
        return f"attention, {a['heads']} heads" + (", causal" if a["causal"] else "")
    if op == "embedding":
        return f"embedding {a['num']}→{a['dim']}"
    if op == "param":
        return "param " + "×".join(str(s) for s in a["shape"])
    if op == "rearrange":
        return f"rearrange {a['pattern']}"
    if op == "concat" and a.get("dim", 1) != 1:
        return f"concat (dim {a['dim']})"
    if op == "softmax":
        return "softmax"
    if op == "gelu" and a["approximate"] != "none":
        return "gelu (tanh)"
    if op in ("split", "chunk"):
        return f"{op} {a.get('n', '') or list(a.get('_sizes', ()))}"
    if op == "mean" and len(n.inputs) == 1:
        return "mean"
    return op


def axes_note(n) -> str:
    """`[D] over N,L`: the axes an op works on, and those it broadcasts over."""
    if not n.inputs:
        return ""
    x = n.inputs[0].shape
    r = len(x)
    if n.op in ("ln",):
        on = list(range(r - n.attrs["dims"], r))
    elif n.op in ("rmsnorm", "linear", "layer_scale") and n.op != "layer_scale":
        on = [r - 1]
    elif n.op == "layer_scale":
        on = [n.attrs.get("_axis", 1)]
    elif n.op == "gn":
        on = list(range(1, r))
    elif n.op == "ln2d":
        on = [1]
    elif n.op == "softmax":
        on = [n.attrs["dim"] % r]
    elif n.op == "attention":
        on = [1, 2]
    elif n.op == "mean" and len(n.inputs) == 1:
        d = n.attrs["dim"]
        on = list(d) if isinstance(d, (list, tuple)) else [d]
    else:
        return ""
    over = [i for i in range(r) if i not in on]
    if n.op in ("linear",) and over == [0]:
        return ""  # a plain [N, features] map: nothing to say
    head = ",".join(_axname(x[i]) for i in on)
    return f"[{head}]" + (" over " + ",".join(_axname(x[i]) for i in over) if over else "")


def _arg_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_arg_text(x) for x in v) + "]"
    if isinstance(v, (int, str)):
        return str(v)
    return ""


def block_call(scope) -> str:
    """`Bottleneck(planes=128, stride=2)`: the block and its non-default arguments."""
    args = scope.info.get("args") or {}
    defaults = scope.info.get("defaults") or {}
    parts = []
    for k, v in args.items():
        t = _arg_text(v)
        if not t or (k in defaults and _arg_text(defaults[k]) == t):
            continue
        parts.append(f"{k}={t}")
    return f"{scope.info.get('block', scope.name)}({', '.join(parts)})"


def _runs(values) -> str:
    """2,1×3 or 2,1×22: the per-iteration values of one argument, each run of equal values as
    value×count (one notation whatever the length)."""
    out = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return ",".join(v if c == 1 else f"{v}×{c}" for v, c in out)


def child_blocks(scope) -> list:
    """The block instances a repeat or group consists of (iteration wrappers looked through), or []."""
    blocks = []
    for c in scope.children:
        inner = c.children if c.kind == "iteration" else [c]
        if len(inner) != 1 or inner[0].kind != "block":
            return []
        blocks.append(inner[0])
    return blocks


def repeat_call(scope) -> str:
    """What a repeat repeats: `Bottleneck(planes=128, stride=2,1,1,1)` or ''."""
    blocks = child_blocks(scope)
    if not blocks or len({b.info.get("block") for b in blocks}) != 1:
        return ""
    keys = list((blocks[0].info.get("args") or {}).keys())
    defaults = blocks[0].info.get("defaults") or {}
    parts = []
    for k in keys:
        vals = [_arg_text((b.info.get("args") or {}).get(k)) for b in blocks]
        if not all(vals):
            continue
        if len(set(vals)) == 1:
            if k in defaults and _arg_text(defaults[k]) == vals[0]:
                continue
            parts.append(f"{k}={vals[0]}")
        else:
            parts.append(f"{k}={_runs(vals)}")
    return f"{blocks[0].info.get('block')}({', '.join(parts)})"


def _loop_call(s) -> str:
    inner = [c for c in s.children[0].children] if s.children else []
    if len(inner) == 1 and inner[0].kind == "block":
        return block_call(inner[0])
    return "loop"
