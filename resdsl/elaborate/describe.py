"""How values, types and op signatures are written in error messages (`.res` text, cut short).

Shared by the Elaborator and its mixins.
"""
from __future__ import annotations

from ..ir import shapes as S
from ..frontend import ast
from ..ir import ops as O
from ..ir.graph import Value
from .values import CALLABLE


def op_signature(od: O.OpDef) -> str:
    parts = []
    for a in od.attrs:
        parts.append(a.name if a.default is O.REQUIRED else f"{a.name}={show_value(a.default)}")
    return f"{od.name}({', '.join(parts)})"


def attr_type(t):
    return {"int": "an int", "num": "a number", "bool": "true or false", "str": "a string",
            "ints": "an int or a list of ints", "str_or_int": "an int, a list of ints or a string",
            "shape": "a list of sizes", "sizes": "a size or a list of sizes (ints or `x.C / 2`)"}.get(t, t)


def type_str(t):
    if t is None:
        return "any"
    return t.name + (f"[{', '.join(type_str(a) for a in t.args)}]" if t.args else "") + ("?" if t.optional else "")


def show_value(v, room: int = 80):
    """A value as `.res` text for messages, cut short (a huge list or number stays one line)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        text = v if len(v) <= room else v[:room] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    if isinstance(v, CALLABLE):
        return f"`{v.name}`"
    if isinstance(v, Value):
        return f"{S.shape_str(v.shape)}"
    if isinstance(v, (list, tuple)):
        parts = [show_value(x, max(8, room // 4)) for x in v[:8]]
        return "[" + ", ".join(parts) + (", ..." if len(v) > 8 else "") + "]"
    if isinstance(v, int) and v.bit_length() > 200:
        return f"<an integer of {v.bit_length()} bits>"
    return str(v)


def sig_str(sig):
    return ", ".join(f"{k or 'weight'}{list(s)}" for k, s in sig[1])


def expr_str(e) -> str:
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Call):
        return expr_str(e.func)
    if isinstance(e, ast.Attr):
        return f"{expr_str(e.value)}.{e.name}"
    if isinstance(e, ast.Const):
        return show_value(e.value)
    return type(e).__name__.lower()
