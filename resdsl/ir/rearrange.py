"""einops-style `rearrange` on named axes, planned at compile time.

`plan("n c (h p) w -> n (h w) (p c)", shape, {"p": 2})` returns the output shape and
a list of steps any backend can lower: ("unflatten", dim, sizes), ("squeeze", dim),
("permute", perm), ("flatten", start, end), ("unsqueeze", dim). Sizes of split axes come
from `sizes=` (ints or symbolic sizes such as `H/4`) or are inferred when only one factor of
a group is unknown; symbolic factors are read at run time (ir/runsizes.py). `()` and `1`
are size-1 axes: on the left an axis of size 1 that is dropped, on the right a new one.

An axis that passes through (one letter, or one group written alike, on both sides) keeps
its input's name (or none); an axis split out of a group is named by its letter in upper case
(`h` -> `H`, the names the rest of a program uses); a merged one has none.
"""
from __future__ import annotations

import re

from . import shapes as S
from .ops import OpError
from .shapes import Axis


def parse_side(side: str):
    toks = re.findall(r"\(|\)|[A-Za-z_][A-Za-z_0-9]*|[0-9]+|\S", side)
    out, group = [], None
    for t in toks:
        if t == "(":
            if group is not None:
                raise OpError("nested parentheses in a rearrange pattern", kind="type")
            group = []
        elif t == ")":
            if group is None:
                raise OpError("unbalanced `)` in a rearrange pattern", kind="type")
            out.append(tuple(group))
            group = None
        elif re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", t):
            (group if group is not None else out).append(t)
        elif t == "1":
            if group is not None:
                raise OpError("a size-1 axis `1` inside a group of a rearrange pattern", kind="type",
                              help="write `()` or `1` as an axis of its own")
            out.append(())
        else:
            raise OpError(f"unexpected `{t}` in a rearrange pattern", kind="type",
                          help="write axes as names, groups in parentheses, size-1 axes as `()` or `1`: "
                               "'n c (h w) -> n (h w) c'")
    if group is not None:
        raise OpError("unclosed `(` in a rearrange pattern", kind="type")
    names = [n for item in out for n in (item if isinstance(item, tuple) else (item,))]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # a repeated axis would compile to a permutation no backend accepts
        raise OpError(f"rearrange pattern {side.strip()!r} names the axis `{twice[0]}` twice", kind="type",
                      help="each side of a rearrange names each axis once")
    return out


def _width(item) -> int:
    return len(item) if isinstance(item, tuple) else 1


def plan(pattern: str, shape, sizes: dict):
    from .ops.shape import divide
    if "->" not in pattern:
        raise OpError(f"rearrange pattern {pattern!r} has no `->`", kind="type")
    left_s, right_s = pattern.split("->", 1)
    left, right = parse_side(left_s), parse_side(right_s)
    if len(left) != len(shape):
        raise OpError(f"rearrange pattern {left_s.strip()!r} names {len(left)} axes, the input "
                      f"{S.shape_str(shape)} has {len(shape)}", kind="shape")
    known = dict(sizes)
    steps, need = [], []
    elem = []  # (name, size)
    unflats = []
    for i, item in enumerate(left):
        if isinstance(item, tuple):
            total = shape[i].size
            if not item:
                if total != 1:
                    raise OpError(f"rearrange: the size-1 axis `()` at position {i} of {left_s.strip()!r} "
                                  f"has size {total}", kind="shape")
                unflats.append((i, None))
                continue
            unknown = [n for n in item if n not in known]
            if len(unknown) > 1:
                raise OpError(f"rearrange: give sizes for all but one of {', '.join(item)}", kind="type",
                              help=f"e.g. rearrange({pattern!r}, {unknown[0]}=2)")
            prod = 1
            for n in item:
                if n in known:
                    prod = S.mul(prod, known[n])
            group = "(" + " ".join(item) + ")"
            if unknown:
                known[unknown[0]] = divide(total, prod, shape, f"split the axis {group} of size {total} "
                                                               f"by {prod}", stride_like=True)
            elif prod != total:
                raise OpError(f"rearrange: the sizes of {group} multiply to {prod}, the axis has size {total}",
                              help="give sizes whose product is the axis size (or leave one out to infer it)")
            fs = tuple(known[n] for n in item)
            unflats.append((i, fs))
            if any(not isinstance(f, int) for f in fs):
                need.append((fs, 1))
            elem += [(n, known[n], n.upper()) for n in item]
        else:
            elem.append((item, shape[i].size, shape[i].name))
            if item in known and known[item] != shape[i].size:
                raise OpError(f"rearrange: `{item}={known[item]}` but that axis has size {shape[i].size}",
                              kind="shape")
            known.setdefault(item, shape[i].size)
    extra = sorted(set(sizes) - {n for n, _, _ in elem})
    if extra:
        raise OpError(f"rearrange: the size `{extra[0]}` names no axis of {left_s.strip()!r}", kind="type")
    # unflatten (or drop a size-1 axis) right to left so earlier dims keep their index
    for i, fs in reversed(unflats):
        steps.append(("squeeze", i) if fs is None else ("unflatten", i, fs))
    names = [n for n, _, _ in elem]
    flat_right = [n for item in right for n in (item if isinstance(item, tuple) else (item,))]
    if sorted(flat_right) != sorted(names):
        raise OpError(f"rearrange: the two sides name different axes ({' '.join(names)} vs "
                      f"{' '.join(flat_right)})", kind="type")
    perm = [names.index(n) for n in flat_right]
    if perm != list(range(len(perm))):
        steps.append(("permute", tuple(perm)))
    by_name = {n: (size, nm) for n, size, nm in elem}
    kept = {item: shape[i].name for i, item in enumerate(left) if isinstance(item, tuple) and len(item) > 1}
    out = []
    for item in right:
        if isinstance(item, tuple) and len(item) != 1:
            size = 1
            for n in item:
                size = S.mul(size, by_name[n][0])
            out.append(Axis(size, kept.get(item)))
        else:
            n = item[0] if isinstance(item, tuple) else item
            out.append(Axis(by_name[n][0], by_name[n][1]))
    pos = [sum(_width(x) for x in right[:t]) for t in range(len(right))]
    for t in reversed(range(len(right))):
        item = right[t]
        if isinstance(item, tuple) and not item:
            steps.append(("unsqueeze", pos[t]))
        elif isinstance(item, tuple) and len(item) > 1:
            steps.append(("flatten", pos[t], pos[t] + len(item) - 1))
    return tuple(out), tuple(steps), need
