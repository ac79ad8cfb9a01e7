"""einops-style `rearrange` on named axes, planned at compile time.

`plan("n c (h p) w -> n (h w) (p c)", shape, {"p": 2})` returns the output shape and
a list of steps any backend can lower: ("unflatten", dim, sizes), ("permute", perm),
("flatten", start, end). Sizes of split axes come from `sizes=` or are inferred when
only one factor of a group is unknown.
"""
from __future__ import annotations

import re

from . import shapes as S
from .shapes import Axis
from .ops import OpError


def parse_side(side: str):
    toks = re.findall(r"\(|\)|[A-Za-z_][A-Za-z_0-9]*|1|\S", side)
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
        else:
            raise OpError(f"unexpected `{t}` in a rearrange pattern", kind="type",
                          help="write axes as names, groups in parentheses: 'n c (h w) -> n (h w) c'")
    if group is not None:
        raise OpError("unclosed `(` in a rearrange pattern", kind="type")
    names = [n for item in out for n in (item if isinstance(item, tuple) else (item,))]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # a repeated axis would compile to a permutation no backend accepts
        raise OpError(f"rearrange pattern {side.strip()!r} names the axis `{twice[0]}` twice", kind="type",
                      help="each side of a rearrange names each axis once")
    if any(isinstance(item, tuple) and not item for item in out):
        raise OpError(f"rearrange pattern {side.strip()!r} has an empty group `()`", kind="type")
    return out


def plan(pattern: str, shape, sizes: dict):
    if "->" not in pattern:
        raise OpError(f"rearrange pattern {pattern!r} has no `->`", kind="type")
    left_s, right_s = pattern.split("->", 1)
    left, right = parse_side(left_s), parse_side(right_s)
    if len(left) != len(shape):
        raise OpError(f"rearrange pattern {left_s.strip()!r} names {len(left)} axes, the input "
                      f"{S.shape_str(shape)} has {len(shape)}", kind="shape")
    known = dict(sizes)
    steps = []
    elem = []  # (name, size)
    unflats = []
    for i, item in enumerate(left):
        if isinstance(item, tuple):
            total = shape[i].size
            unknown = [n for n in item if n not in known]
            if len(unknown) > 1:
                raise OpError(f"rearrange: give sizes for all but one of {', '.join(item)}", kind="type",
                              help=f"e.g. rearrange({pattern!r}, sizes=[{unknown[0]}=2])")
            prod = 1
            for n in item:
                if n in known:
                    prod = S.mul(prod, known[n])
            if unknown:
                if isinstance(total, int) and isinstance(prod, int):
                    if total % prod:
                        raise OpError(f"rearrange: axis of size {total} does not split by {prod}")
                    known[unknown[0]] = total // prod
                else:
                    known[unknown[0]] = S.truediv(total, prod) if isinstance(prod, int) else None
            fs = [known[n] for n in item]
            unflats.append((i, [f if isinstance(f, int) else -1 for f in fs]))
            elem += [(n, known[n]) for n in item]
        else:
            elem.append((item, shape[i].size))
            known.setdefault(item, shape[i].size)
    # unflatten right to left so earlier dims keep their index
    for i, fs in reversed(unflats):
        if sum(1 for f in fs if f == -1) > 1:
            raise OpError("rearrange: a split group may hold at most one symbolic axis", kind="type")
        steps.append(("unflatten", i, tuple(fs)))
    names = [n for n, _ in elem]
    flat_right = [n for item in right for n in (item if isinstance(item, tuple) else (item,))]
    if sorted(flat_right) != sorted(names):
        raise OpError(f"rearrange: the two sides name different axes ({' '.join(names)} vs "
                      f"{' '.join(flat_right)})", kind="type")
    perm = [names.index(n) for n in flat_right]
    if perm != list(range(len(perm))):
        steps.append(("permute", tuple(perm)))
    out = []
    pos = 0
    merges = []
    for item in right:
        if isinstance(item, tuple):
            size = 1
            for n in item:
                size = S.mul(size, dict(elem)[n])
            out.append(Axis(size, None))
            if len(item) > 1:
                merges.append((pos, pos + len(item) - 1))
            pos += len(item)
        else:
            out.append(Axis(dict(elem)[item], item))
            pos += 1
    for s, e in reversed(merges):
        steps.append(("flatten", s, e))
    return tuple(out), tuple(steps)
