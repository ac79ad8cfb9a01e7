"""A constant buffer's value in the torch file: the `fn` call that computed it (fnpy translates the
fn to Python) with its number arguments as slots, so that a class writes them from its own
constructor arguments (`triu(length)`, not `triu(64)`, and one class for every length); `torch.full`
when every value is one number; else the values as a literal, which is compact (`# fmt: off`,
many numbers a line) when the tensor is large, never one number a line.
"""
from __future__ import annotations

from . import fnpy
from .pyfmt import INDENT, WIDTH, Brackets, Call, lit

BIG = 64  # more values than this: a packed literal instead of a wrapped one


def value(n, translator, slot):
    """The pyfmt tree of buffer node `n`'s value; `slot(v, hint, name)` makes the leaf of a number
    argument (`name`: what the call wrote it as, where a plain name)."""
    dtype, shape, values = n.attrs["_dtype"], n.attrs["_shape"], n.attrs["_flat"]
    tail = [f"dtype=torch.{dtype}", 'device="cpu"']
    parts = translator.parts(n.attrs["_origin"]) if translator is not None and "_origin" in n.attrs else None
    if parts is not None:
        name, args = parts
        built = n.attrs["_origin"]
        hints = [fnpy.RENAMED.get(p.name, p.name) for p in built.fn.defn.params]  # a constructor argument `l_`
        return Call("torch.tensor", [Call(name, [slot(a, h, w) if not isinstance(a, str) else a
                                                 for a, h, w in zip(args, hints, built.names)])] + tail)
    if len(set(values)) == 1 and len(values) > 1:
        return Call("torch.full", [lit(tuple(shape)), lit(values[0])] + tail)
    if len(values) > BIG:
        return Packed(values, shape, tail)
    return Call("torch.tensor", [_literal(_nested(values, shape))] + tail)


class Packed:
    """A large literal: the flat values packed into lines under `# fmt: off`, then reshaped."""

    def __init__(self, values, shape, tail):
        self.values, self.shape, self.tail = values, shape, tail

    def lines(self, indent: int, head: str, rest: str) -> list:
        """`head + torch.tensor([...], dtype=..., device=...).reshape(shape) + rest` as lines."""
        pad = INDENT * indent
        out = [pad + "# fmt: off", f"{pad}{head}torch.tensor(["]
        row = pad + INDENT
        whole = all(isinstance(x, float) and x.is_integer() and abs(x) < 2 ** 24 for x in self.values)
        for v in (lit(int(x) if whole else x) for x in self.values):  # 1 for 1.0: the dtype makes it a float
            if len(row) + len(v) + 2 > WIDTH and row.strip():
                out.append(row.rstrip())
                row = pad + INDENT
            row += v + ", "
        if row.strip():
            out.append(row.rstrip())
        out.append(f"{pad}], {', '.join(self.tail)}).reshape({', '.join(map(str, self.shape))}){rest}")
        out.append(pad + "# fmt: on")
        return out


def structure(e, is_slot):
    """A key of the tree with slot values left out: instances whose buffers differ only in the fn's
    arguments can share a class."""
    if is_slot(e):
        return ("slot",)
    if isinstance(e, Packed):
        return ("packed", tuple(e.values), tuple(e.shape), tuple(e.tail))
    if isinstance(e, Call):
        return (type(e).__name__, e.head, tuple(structure(i, is_slot) for i in e.items))
    return e


def column(trees, is_slot, merge):
    """One tree for the instances of a class (equal structure), slots merged by `merge(slots)`."""
    t0 = trees[0]
    if is_slot(t0):
        return merge(trees)
    if isinstance(t0, Brackets):
        return Brackets(t0.head + t0.close, [column([t.items[k] for t in trees], is_slot, merge)
                                             for k in range(len(t0.items))])
    if isinstance(t0, Call) and not isinstance(t0, Packed):
        return type(t0)(t0.head, [column([t.items[k] for t in trees], is_slot, merge) for k in range(len(t0.items))])
    return t0


def _literal(v):
    """A nested list as a pyfmt tree (wrapped as ruff wraps it), a number as its literal."""
    return Brackets("[]", [_literal(x) for x in v]) if isinstance(v, list) else lit(v)


def _nested(flat, shape):
    """The flat values of a buffer as nested lists of `shape` (what torch.tensor takes)."""
    if not shape:
        return flat[0]
    step = len(flat) // shape[0]
    return [_nested(flat[k * step:(k + 1) * step], shape[1:]) for k in range(shape[0])]
