"""What applying an op works out from its arguments and input shapes alone, kept for the next
application with the same ones.

Checking and coercing an op's arguments against the op table (ops_apply.op_attrs) and running
its shape rule are pure: the same op, arguments and input shapes give the same attributes,
output shapes and parameter specs, or the same error. A network applies the same op the same
way many times (every `bn` of a stage, every block of a repeat, every network of a file that
calls the same block), and the language server re-elaborates after each edit what it elaborated
before; so a success is kept here, keyed by the op and the *values* of its arguments and shapes
(never by an object's identity), and the application that finds it skips both steps. Everything
else about the application (arity, dtypes, names, weights claimed, the IR node, budgets) is
done each time as usual, and errors always come from the real steps: a failing application is
never kept.

Only plain values make a key: numbers, strings, booleans, None, symbolic sizes, initialisers,
and lists, tuples and dicts of them; an argument of any other kind (a tensor, a callable, a
buffer's value) makes the application go the usual way.
"""
from __future__ import annotations

from ..ir.shapes import Size
from .context import InitValue

MAX_ENTRIES = 20_000  # then it starts afresh: a bound on memory, whatever the input
_MEMO: dict = {}
_NO = object()


def _freeze(v):
    t = type(v)
    if t is int or t is str or t is bool or v is None:
        return (t, v)
    if t is float:
        return (t, repr(v))  # -0.0 is not 0.0 (it is written as it is)
    if t is Size:
        return (t, v.key())
    if t is list or t is tuple:
        items = tuple(_freeze(x) for x in v)
        return _NO if _NO in items else (t, items)
    if t is dict:
        items = tuple((k, _freeze(x)) for k, x in v.items())
        return _NO if any(x is _NO for _, x in items) else (t, items)
    if t is InitValue:
        spec = _freeze(v.spec)
        return _NO if spec is _NO else (t, spec)
    return _NO


_ATOMS = frozenset({int, str, bool, type(None)})


def key(od, tensors, args, kwargs):
    """The key of applying `od` to `tensors` with these arguments; None when one is not a plain value.
    One flat tuple: the op, the counts, each plain argument as its type and value (a type is never a
    value, so the reading is unambiguous), any other as its frozen tuple, each axis as its size (an
    int, or a Size's key) and name."""
    out = [od.name, len(args), len(kwargs), len(tensors)]
    add = out.append
    for v in args:
        t = type(v)
        if t in _ATOMS:
            add(t)
            add(v)
        else:
            f = _freeze(v)
            if f is _NO:
                return None
            add(f)
    for k, v in kwargs.items():
        add(k)
        t = type(v)
        if t in _ATOMS:
            add(t)
            add(v)
        else:
            f = _freeze(v)
            if f is _NO:
                return None
            add(f)
    for x in tensors:
        shape = x.shape
        add(len(shape))
        for ax in shape:
            s = ax.size
            if type(s) is int:
                add(s)
            elif type(s) is Size:
                add(s.key())
            else:
                return None
            add(ax.name)
    return tuple(out)


def get(k, od):
    """(attrs, output shapes, params) kept for key `k`, each application its own dicts; None if none."""
    hit = _MEMO.get(k)
    if hit is None or hit[0] is not od:
        return None
    _, attrs, mutable, outs, params = hit
    attrs = dict(attrs)
    for n in mutable:
        attrs[n] = attrs[n].copy()
    return attrs, outs, dict(params)


def put(k, od, attrs, outs, params) -> None:
    if len(_MEMO) >= MAX_ENTRIES:
        _MEMO.clear()
    mutable = tuple(n for n, v in attrs.items() if type(v) in (list, dict))  # each application copies them
    kept = dict(attrs)
    for n in mutable:
        kept[n] = kept[n].copy()
    _MEMO[k] = (od, kept, mutable, outs, dict(params))
