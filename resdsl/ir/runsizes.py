"""Sizes at run time: how a backend computes a symbolic size (``H/4``, ``H*W/16``, ``ceil7(H/4)``)
from the shapes of the tensors an op reads.

An op whose lowering needs symbolic sizes (a reshape to ``[N, H/4, W/4, 8]``, a rearrange
splitting ``(h w)`` with ``h=H/4``, a split into ``[C/2, C/2]``, a crop to ``[H, W]``) stores
them in ``attrs["_need"]``: a list of groups ``(sizes, slack)``, where all but ``slack``
of the sizes must be computable (one piece of a reshape may stay ``-1``). The elaborator
(:func:`sources`) then finds the tensors to read them from: the op's own input first, else
the nearest tensor before it that has the symbols (the grid before it was flattened, the
network input); those become extra inputs of the node (``attrs["_src"]`` of them, after
the op's own inputs).

:func:`plan` turns a size into a small expression over the inputs' axes that every backend
renders (fx nodes, Python text, ONNX ``Shape``/``Mul``/``Div`` nodes):

* ``int``: a constant;
* ``("dim", k, j)``: axis ``j`` of input ``k``;
* ``("mul", a, b)``, ``("add", a, b)``, ``("div", a, d)`` (exact division by an int ``d``),
  ``("ceil", a, m)`` (``a`` rounded up to a multiple of ``m``).

Symbols made by :func:`ceil_symbol` (``pad_to_multiple``) are registered here so that they can
be computed from the size they round when no tensor holds them.
"""
from __future__ import annotations

from fractions import Fraction

from .shapes import Size

# symbol name -> (multiple, the size it rounds up): `ceil7(H/4)`
CEIL = {}


def ceil_symbol(size, m: int):
    """`size` rounded up to a multiple of `m`: an int when `size` is, else a symbol of its own."""
    if isinstance(size, int):
        return -(-size // m) * m
    name = f"ceil{m}({size})".replace(" ", "")
    CEIL[name] = (m, size)
    return Size.sym(name)


def _ratio(e, r: Fraction):
    """`e * r` for an expression `e` (exact when r's denominator divides e)."""
    if r.numerator != 1:
        e = r.numerator if e == 1 else ("mul", e, r.numerator)
    if r.denominator != 1:
        e = ("div", e, r.denominator)
    return e


def _mono(s):
    """(monomial, coefficient) of a one-term size, else None."""
    if isinstance(s, Size) and len(s.terms) == 1:
        (m, c), = s.terms.items()
        return m, c
    return None


def plan(s, dims, _depth=0):
    """An expression computing size `s` from `dims` [(k, j, size)] (input k, axis j), or None."""
    if isinstance(s, int):
        return s
    if isinstance(s, Fraction):
        return int(s) if s.denominator == 1 else None
    for k, j, d in dims:
        if not isinstance(d, int) and d == s:
            return ("dim", k, j)
    out = None
    for m, c in sorted(s.terms.items()):
        if m == ():
            if c.denominator != 1:
                return None
            term = int(c)
        else:
            term = _term(m, c, dims, _depth)
            if term is None:
                return None
        out = term if out is None else ("add", out, term)
    return out


def _term(m, c, dims, depth):
    for k, j, d in dims:  # the whole monomial is a fixed multiple of one axis (H*W/16 of 4*H*W)
        md = _mono(d)
        if md and md[0] == m:
            return _ratio(("dim", k, j), c / md[1])
    parts, coef = [], Fraction(c)
    for sym in m:
        got = None
        for k, j, d in dims:
            md = _mono(d)
            if md and md[0] == (sym,):
                got, r = ("dim", k, j), md[1]
                break
        if got is None and sym in CEIL and depth < 8:
            mult, inner = CEIL[sym]
            e = plan(inner, dims, depth + 1)
            if e is not None:
                got, r = ("ceil", e, mult), Fraction(1)
        if got is None:
            return None
        parts.append(got)
        coef /= r
    e = parts[0]
    for p in parts[1:]:
        e = ("mul", e, p)
    return _ratio(e, coef)


def dims_of(shapes):
    """[(k, j, size)] of the symbolic axes of input shapes (tuples of Axis)."""
    return [(k, j, ax.size) for k, shp in enumerate(shapes) for j, ax in enumerate(shp)
            if not isinstance(ax.size, int)]


def _solved(groups, dims) -> int:
    score = 0
    for sizes, _slack in groups:
        score += sum(1 for s in sizes if plan(s, dims) is not None)
    return score


def _done(groups, dims) -> bool:
    return all(sum(1 for s in sizes if plan(s, dims) is None) <= slack for sizes, slack in groups)


def symbols_of(groups) -> set:
    return {sym for sizes, _ in groups for s in sizes if isinstance(s, Size) for sym in s.symbols}


def sources(groups, inputs, limit: int = 20000):
    """Values to read the sizes of `groups` from, beyond `inputs` (IR Values), nearest first;
    None when no tensor before the op has them."""
    own = [v.shape for v in inputs]
    dims = dims_of(own)
    if _done(groups, dims):
        return []
    seen = {id(v) for v in inputs}
    frontier = list(inputs)
    picked, score = [], _solved(groups, dims)
    visited = 0
    while frontier and visited < limit:
        nxt = []
        for v in frontier:
            p = v.producer
            if p is None:
                continue
            for u in p.inputs:
                if id(u) in seen:
                    continue
                seen.add(id(u))
                visited += 1
                nxt.append(u)
                trial = dims + [(len(own) + len(picked), j, d) for (_, j, d) in dims_of([u.shape])]
                s = _solved(groups, trial)
                if s > score:
                    picked.append(u)
                    dims, score = trial, s
                    if _done(groups, dims):
                        return picked
        frontier = nxt
    return None


def needs_runtime(groups) -> bool:
    return any(not isinstance(s, int) for sizes, _ in groups for s in sizes)
