"""Elementwise math on tensors beyond + - * /: floor division, remainder, power, elementwise
minimum and maximum, the comparisons (which make bool tensors), `where`, the functions sin, cos,
floor and ceil, and `arange` (a run-time constant counting along an axis of the input).

`a // b`, `a % b`, `a ** b`, `a < b`, `minimum(a, b)`, `where(m, a, b)` in a .res file become
these ops. Two tensors broadcast like torch (sizes equal or 1, aligned from the last axis); a
number on either side is the op's `value` attribute (`left=true`: the number is the left operand,
`2 ** x`).

Dtypes: every op here takes float tensors, except `where`, whose first input is the bool mask.
The comparisons give bool tensors (their record sets the output dtype with `_dtype`); a bool
tensor goes into `where` only (the elaborator refuses it anywhere else, see
resdsl/elaborate/tensor_math.py), so every target sees the dtypes it expects.
"""
from __future__ import annotations

from .. import shapes as S
from ..shapes import Axis
from .core import OpError, broadcast, op, same_shape

MATH = {"family": "merge", "macs": 0}
BOOL_OUT = "bool"

# op -> (the .res operator or function, doc, commutative)
BINARY = {
    "floordiv": ("//", "floor(a / b), as torch's `//` on floats", False),
    "mod": ("%", "a - b * floor(a / b): the remainder with the sign of b (Python's and torch's `%`)", False),
    "pow": ("**", "a ** b", False),
    "minimum": ("minimum", "the smaller of a and b, elementwise", True),
    "maximum": ("maximum", "the larger of a and b, elementwise", True),
}
COMPARE = {
    "lt": ("<", "a < b: a bool tensor"), "le": ("<=", "a <= b: a bool tensor"),
    "gt": (">", "a > b: a bool tensor"), "ge": (">=", "a >= b: a bool tensor"),
    "eq": ("==", "a == b: a bool tensor"), "ne": ("!=", "a != b: a bool tensor"),
}
# the comparison that reads `c OP x` as `x OP' c`
FLIPPED = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}
SYMBOL = {**{k: v[0] for k, v in BINARY.items()}, **{k: v[0] for k, v in COMPARE.items()}}


def broadcast_all(opname, shapes):
    out = shapes[0]
    for other in shapes[1:]:
        try:
            out = broadcast(out, other)
        except OpError:
            raise OpError(f"`{opname}` needs shapes that broadcast: {S.shape_str(out)} and {S.shape_str(other)}",
                          help="sizes must be equal or 1, aligned from the last axis") from None
    return out


def _binary_rule(opname, dtype=None):
    def rule(ins, a):
        if len(ins) == 2 and a["value"] is not None:
            raise OpError(f"`{opname}` takes two tensors or a tensor and a number, not both", kind="type")
        if len(ins) == 1 and a["value"] is None:
            raise OpError(f"`{opname}` of one tensor needs the number `value`", kind="type",
                          help=f"e.g. `{opname}(x, 0.5)` or two tensors `{opname}(x, y)`")
        if a.get("left") and len(ins) == 2:
            raise OpError(f"`{opname}` left=true needs a number `value`", kind="type")
        if dtype is not None:
            a["_dtype"] = dtype
        return [broadcast_all(opname, ins)], {}
    return rule


def _label(opname):
    sym = SYMBOL[opname]

    def label(n):
        v = n.attrs.get("value")
        if v is None:
            return sym
        text = f"{v:g}"
        if sym.isidentifier():
            return f"{sym} {text}"
        return f"{text} {sym}" if n.attrs.get("left") else f"{sym} {text}"
    return label


for _name, (_sym, _doc, _comm) in BINARY.items():
    _attrs = [("value", "num", None)] + ([] if _comm else [("left", "bool", False)])
    op(_name, _attrs, inputs=(1, 2), traits=("pure", "elementwise"), doc=_doc, label=_label(_name),
       **MATH)(_binary_rule(_name))

for _name, (_sym, _doc) in COMPARE.items():
    op(_name, [("value", "num", None)], inputs=(1, 2), traits=("pure", "elementwise", "bool_out"), doc=_doc,
       label=_label(_name), **MATH)(_binary_rule(_name, BOOL_OUT))


@op("where", [("then", "num", None), ("other", "num", None)], inputs=(1, 3),
    traits=("pure", "elementwise", "mask_input"), doc="where(mask, a, b): a where the bool mask is true, else b; "
    "a number for a or b is `then` / `other`", label=lambda n: "where", **MATH)
def _where(ins, a):
    want = 1 + (a["then"] is None) + (a["other"] is None)
    if len(ins) != want:
        raise OpError(f"`where` takes a mask and two values (tensors or numbers): got {len(ins)} tensor(s) "
                      f"with then={a['then']!r}, other={a['other']!r}", kind="type",
                      help="e.g. where(x > 0, x, 0.0)")
    return [broadcast_all("where", ins)], {}


# ------------------------------------------------------------------ one-input functions
for _n, _doc in [("sin", "sine"), ("cos", "cosine"), ("floor", "round down"), ("ceil", "round up")]:
    op(_n, [], traits=("elementwise", "pure"), doc=_doc, family="act", macs=0)(same_shape)


# ------------------------------------------------------------------ run-time constants
def _arange_label(n):
    a = n.attrs
    return f"arange {a['n']}" if a["dim"] is None else f"arange axis {a['dim']}"


@op("arange", [("dim", "int", None), ("n", "int", None)], inputs=1, traits=("pure", "size_input"),
    doc="0, 1, ..., n-1 as a float32 tensor of shape [n]: n is the size of axis `dim` of the input, read at run "
        "time (so it follows the input's size), or the fixed number `n` (the input then only gives the device)",
    family="layout", label=_arange_label, axes=lambda n, r: [], macs=0)
def _arange(ins, a):
    (x,) = ins
    if (a["dim"] is None) == (a["n"] is None):
        raise OpError("`arange` takes either `dim` (an axis of its input) or a fixed count `n`", kind="type",
                      help="write arange(x.L) or arange(16) in a .res file")
    if a["n"] is not None:
        if a["n"] < 1:
            raise OpError(f"`arange` needs a positive count, got {a['n']}", kind="value")
        return [(Axis(a["n"]),)], {}
    r = len(x)
    if not -r <= a["dim"] < r:
        raise OpError(f"axis {a['dim']} is out of range for a tensor of rank {r} {S.shape_str(x)}", kind="type")
    a["dim"] %= r
    ax = x[a["dim"]]
    return [(Axis(ax.size, ax.name),)], {}
