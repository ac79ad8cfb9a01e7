"""Python text for the standalone torch file: literals, safe identifiers, the public torch
name of each function the lowering uses, and statements wrapped at 100 columns the way
``ruff format`` (black) wraps them, so the file is already formatted when it is written.
"""
from __future__ import annotations

import builtins
import keyword
import math
import operator
import re

import torch
import torch.nn.functional as F

from ...diagnostics import ResdslError
from . import runtime

WIDTH = 100
INDENT = "    "


# ------------------------------------------------------------------ literals and names
def lit(v) -> str:
    """A Python literal for a value from the IR (numbers, strings, bools, None, tuples, lists)."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else '-float("inf")'
        return repr(v).replace("e+", "e")  # 1e30, as ruff format writes it (repr gives 1e+30)
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(lit(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    if isinstance(v, torch.dtype):  # torch.float32 (arange's dtype)
        return str(v)
    raise ResdslError("unsupported", f"the torch target cannot write the value {type(v).__name__}")


def string(s: str) -> str:
    """A string literal, double-quoted as ruff writes it (repr escapes everything else)."""
    r = repr(s)
    if r[0] == "'" and '"' not in s:
        return '"' + r[1:-1] + '"'
    return r


class Names:
    """A namespace of identifiers safe to define: no keyword, builtin or name the file uses."""

    def __init__(self, taken=()):
        self.taken = set(taken) | set(dir(builtins)) | set(keyword.kwlist)

    def new(self, want: str, suffix: str = "_") -> str:
        name = re.sub(r"\W", "_", str(want), flags=re.ASCII) or "v"
        if name[0].isdigit():
            name = "_" + name
        if name in self.taken or keyword.iskeyword(name) or name.startswith("__"):
            base = name.strip("_") + suffix
            if not base.isidentifier():
                base = "m" + base
            name, k = base, 2
            while name in self.taken:
                name, k = f"{base}{k}", k + 1
        self.taken.add(name)
        return name


def ident(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")


# ------------------------------------------------------------------ torch functions by their public names
_TORCH = ("relu", "relu_", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "clamp", "softmax",
          "flatten", "transpose", "unflatten", "select", "cat", "matmul", "split", "chunk", "stack", "sum",
          "mean", "sin", "cos", "floor", "ceil", "minimum", "maximum", "where", "arange", "pow", "index_select", "roll",
          "atan2")
_OPERATORS = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
              operator.iadd: "+=", operator.floordiv: "//", operator.mod: "%", operator.pow: "**",
              operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.eq: "==",
              operator.ne: "!="}


def _public():
    out = {}
    for name in dir(F):
        fn = getattr(F, name)
        if callable(fn) and not name.startswith("_") and not isinstance(fn, type):
            out.setdefault(id(fn), "F." + name)
    for name in _TORCH:
        out[id(getattr(torch, name))] = "torch." + name
        # the function itself, also when a library has replaced `torch.NAME` with a wrapper of it
        # (torch_geometric wraps torch.select and torch.index_select when imported)
        original = getattr(torch._C._VariableFunctions, name, None)
        if original is not None:
            out.setdefault(id(original), "torch." + name)
    return out


_PUBLIC = None


def function_name(fn) -> str:
    """`F.gelu` for torch._C._nn.gelu, `torch.relu`: a function as public torch spells it."""
    global _PUBLIC
    if _PUBLIC is None:
        _PUBLIC = _public()
    if fn is runtime.checkpoint:
        return "checkpoint"
    if fn is runtime.checkpoint_chain:
        return "checkpoint_chain"
    if fn in runtime.FILE_FUNCTIONS:  # defined in the file itself
        return fn.__name__
    name = _PUBLIC.get(id(fn))
    if name is None:  # torch.NAME replaced since the table was made (a library imported later)
        _PUBLIC = _public()
        name = _PUBLIC.get(id(fn))
    if name is None:
        raise ResdslError("unsupported", f"the torch target has no public name for {fn!r}")
    return name


def operator_symbol(fn):
    return _OPERATORS.get(fn)


# activations: function -> (module class, positional args after the input -> keyword names)
ACTIVATIONS = {
    torch.relu: ("nn.ReLU", ()), torch.relu_: ("nn.ReLU", ()), torch.sigmoid: ("nn.Sigmoid", ()),
    torch.tanh: ("nn.Tanh", ()), F.silu: ("nn.SiLU", ()), F.hardswish: ("nn.Hardswish", ()),
    F.relu6: ("nn.ReLU6", ()), F.hardsigmoid: ("nn.Hardsigmoid", ()), F.selu: ("nn.SELU", ()),
    F.mish: ("nn.Mish", ()), F.softsign: ("nn.Softsign", ()), F.logsigmoid: ("nn.LogSigmoid", ()),
    F.gelu: ("nn.GELU", ()), F.leaky_relu: ("nn.LeakyReLU", ("negative_slope",)),
    F.elu: ("nn.ELU", ()), F.celu: ("nn.CELU", ()), F.hardtanh: ("nn.Hardtanh", ()),
    F.softplus: ("nn.Softplus", ()),
}
# stateless layers that may stand in an nn.Sequential (a chain of numbered layers)
_POOLS = {}
for _nd in (1, 2, 3):
    _POOLS[getattr(F, f"max_pool{_nd}d")] = f"nn.MaxPool{_nd}d"
    _POOLS[getattr(F, f"avg_pool{_nd}d")] = f"nn.AvgPool{_nd}d"
    _POOLS[getattr(F, f"adaptive_avg_pool{_nd}d")] = f"nn.AdaptiveAvgPool{_nd}d"
_POOLS[torch.flatten] = "nn.Flatten"


def as_module(node, args_text):
    """(constructor text) of a module computing fx `node` from its first input, or None.
    `args_text` renders the node's other arguments."""
    if node.op == "call_function":
        tgt = node.target
        if tgt in ACTIVATIONS:
            cls, names = ACTIVATIONS[tgt]
            rest = list(node.args[1:])
            kw = dict(node.kwargs)
            for k, v in zip(names, rest):
                kw[k] = v
            if len(rest) > len(names):
                return None
            if tgt is torch.relu_:
                kw["inplace"] = True
            return f"{cls}(" + args_text((), kw) + ")"
        if tgt in _POOLS:
            return f"{_POOLS[tgt]}(" + args_text(node.args[1:], node.kwargs) + ")"
    if node.op == "call_method" and node.target == "permute" and len(node.args) == 2 and not node.kwargs:
        return "Permute(" + args_text(node.args[1:], {}) + ")"
    return None


PERMUTE = '''class Permute(nn.Module):
    """Permute the dimensions of the input (as torchvision.ops.Permute)."""

    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)'''


# ------------------------------------------------------------------ expressions and wrapping
class Call:
    """`head(item, item, ...)`; items are text, Call, Kw, Star or Comp."""

    __slots__ = ("head", "items")

    def __init__(self, head, items):
        self.head, self.items = head, list(items)


class Kw:
    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name, self.value = name, value


class Star:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class Comp:
    """`[elem for VAR in range(n)]`."""

    __slots__ = ("elem", "clause")

    def __init__(self, elem, clause):
        self.elem, self.clause = elem, clause


class Brackets(Call):
    """`[a, b]` or `(a, b)`: a call without a head, in the given brackets."""

    def __init__(self, brackets, items):
        super().__init__(brackets[0], items)
        self.close = brackets[1]


def flat(e) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, Brackets):
        return e.head + ", ".join(flat(i) for i in e.items) + e.close
    if isinstance(e, Call):
        return e.head + "(" + ", ".join(flat(i) for i in e.items) + ")"
    if isinstance(e, Kw):
        return f"{e.name}={flat(e.value)}"
    if isinstance(e, Star):
        return "*" + flat(e.value)
    return "[" + flat(e.elem) + " " + e.clause + "]"


def statement(indent: int, prefix: str, e, suffix: str = "") -> list:
    """Lines of `prefix + e + suffix` at `indent` levels, split as black splits a too long line:
    the brackets' content on one line if it fits, else one item a line with a trailing comma."""
    pad = INDENT * indent
    one = pad + prefix + flat(e) + suffix
    if len(one) <= WIDTH:
        return [one]
    if isinstance(e, Kw):
        return statement(indent, prefix + e.name + "=", e.value, suffix)
    if isinstance(e, Star):
        return statement(indent, prefix + "*", e.value, suffix)
    if isinstance(e, Comp):
        inner = statement(indent + 1, "", e.elem) + [INDENT * (indent + 1) + e.clause]
        return [pad + prefix + "["] + inner + [pad + "]" + suffix]
    if isinstance(e, Call) and e.items:
        body = INDENT * (indent + 1) + ", ".join(flat(i) for i in e.items)
        brackets = isinstance(e, Brackets)
        head = pad + prefix + e.head + ("" if brackets else "(")
        close = pad + (e.close if brackets else ")") + suffix
        if len(body) <= WIDTH and not (brackets and len(e.items) > 1):
            return [head, body, close]  # a call's arguments on one line; a split literal (a tuple,
            # a list) gets one item a line, as ruff format splits a data structure
        lines = [head]
        if len(e.items) == 1:  # nothing to split at: the item itself is split, without a comma
            return lines + statement(indent + 1, "", e.items[0]) + [close]
        for i in e.items:
            lines += statement(indent + 1, "", i, ",")
        return lines + [close]
    return [one]
