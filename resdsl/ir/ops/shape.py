"""Ops that move, cut or join axes without computing: identity, flatten, reshape, transpose,
permute, rearrange (drawn as wires regrouping), select, concat, stack, split, chunk, pad, expand."""
from __future__ import annotations

from .. import shapes as S
from ..shapes import Axis, Size
from .core import (
    NONNEG,
    POS,
    REQUIRED,
    OpError,
    Regroup,
    check_merge,
    dim_axes,
    norm_axis,
    op,
    same_shape,
    static,
    with_axis,
)

LAYOUT = {"family": "layout", "macs": 0}

op("identity", [], traits=("elementwise", "pure", "linear"), doc="x", **LAYOUT)(same_shape)


# ------------------------------------------------------------------ regrouping
def _flatten_pairs(n, rin, rout):
    s, e = n.attrs["start"] % rin, n.attrs["end"] % rin
    return [(i, i if i < s else (s if i <= e else i - (e - s))) for i in range(rin)]


def _reshape_pairs(n, rin, rout):
    """Equal sizes at both ends go straight, the middle regroups all to all."""
    ins, outs = [x.size for x in n.inputs[0].shape], [x.size for x in n.outputs[0].shape]
    p = 0
    while p < min(rin, rout) and ins[p] == outs[p]:
        p += 1
    q = 0
    while q < min(rin, rout) - p and ins[rin - 1 - q] == outs[rout - 1 - q]:
        q += 1
    pairs = [(i, i) for i in range(p)] + [(rin - 1 - k, rout - 1 - k) for k in range(q)]
    pairs += [(i, j) for i in range(p, rin - q) for j in range(p, rout - q)]
    return sorted(pairs)


def _transpose_pairs(n, rin, rout):
    p = list(range(rin))
    i, j = n.attrs["dim0"] % rin, n.attrs["dim1"] % rin
    p[i], p[j] = p[j], p[i]
    return [(p[j], j) for j in range(rout)]


def _permute_pairs(n, rin, rout):
    return [(d % rin, j) for j, d in enumerate(n.attrs["dims"])]


def _rearrange_pairs(n, rin, rout):
    """Each input group goes to the output groups that share one of its letters."""
    from ..rearrange import parse_side
    lhs, rhs = (parse_side(x) for x in n.attrs["pattern"].split("->"))
    names = [set(t) if isinstance(t, tuple) else {t} for t in lhs]
    outs = [set(t) if isinstance(t, tuple) else {t} for t in rhs]
    return [(i, j) for i, si in enumerate(names) for j, sj in enumerate(outs) if si & sj]


@op("flatten", [("start", "int", 1), ("end", "int", -1)], traits=("pure", "linear", "layout"),
    doc="merge axes start..end into one", axes=Regroup(_flatten_pairs), **LAYOUT)
def _flatten(ins, a):
    (x,) = ins
    s, e = norm_axis(x, a["start"]), norm_axis(x, a["end"])
    if e < s:
        raise OpError(f"flatten start {a['start']} is after end {a['end']}", kind="type")
    n = 1
    for ax in x[s:e + 1]:
        n = S.mul(n, ax.size)
    return [tuple(x[:s]) + (Axis(n),) + tuple(x[e + 1:])], {}


@op("reshape", [("shape", "shape")], traits=("pure", "linear", "layout"), doc="reshape; -1 infers one axis",
    axes=Regroup(_reshape_pairs), **LAYOUT)
def _reshape(ins, a):
    x = ins[0]
    total = S.numel(x)
    new = list(a["shape"])
    infer = [i for i, v in enumerate(new) if isinstance(v, int) and v == -1]
    bad = [v for v in new if isinstance(v, int) and v != -1 and v < 1]
    if bad:
        raise OpError(f"reshape sizes must be positive (or -1 once), got {bad[0]}", kind="type")
    if len(infer) > 1:
        raise OpError("reshape takes at most one -1", kind="type")
    known = 1
    for i, v in enumerate(new):
        if i not in infer:
            known = S.mul(known, v)
    shown = "[" + ", ".join(str(v) for v in new) + "]"
    if infer:
        new[infer[0]] = divide(total, known, x, f"reshape {S.shape_str(x)} ({total} elements) into {shown}")
    elif S.numel(tuple(Axis(v) for v in new)) != total:
        raise OpError(f"cannot reshape {S.shape_str(x)} ({total} elements) into {shown} "
                      f"({S.numel(tuple(Axis(v) for v in new))} elements)",
                      help="the sizes must multiply to the input's number of elements")
    a["_need"] = [(tuple(new), 1)]  # run-time sizes: all but one (the -1 of the lowering)
    return [tuple(Axis(v) for v in new)], {}


def _known_divisor(mono, x) -> int:
    """What a symbolic monomial is known to be divisible by: the denominators the input's sizes
    already divide by (the strided-conv assumption: `H/4` means H divides by 4) times the
    multiples of the `ceilM(...)` symbols in it."""
    from math import lcm

    from ..runsizes import CEIL
    d = 1
    for ax in x:
        if isinstance(ax.size, Size):
            for c in ax.size.terms.values():
                d = lcm(d, c.denominator)
    for sym in mono:
        if sym in CEIL:
            d *= CEIL[sym][0]
    return d


def divide(total, known, x, what, stride_like=False):
    """total / known for a reshape or a split group, proved whole or refused with the sizes.

    `stride_like`: splitting one symbolic axis `c*H` into factors (`(h p)` with p=2) assumes H
    divides, as a stride does; any other symbolic division must be known to be whole: by the
    denominators the input's sizes already carry, or by `ceilM` symbols."""
    if isinstance(known, int) and isinstance(total, int):
        if total % known:
            raise OpError(f"cannot {what}: {total} does not divide by {known}",
                          help=f"{total} = " + " * ".join(str(f) for f in _factors(total)) + "; choose sizes "
                               "that divide it")
        return total // known
    q = _exact_div(total, known)
    if q is None:
        raise OpError(f"cannot {what}: {total} is not a multiple of {known}",
                      help="give sizes whose product divides the input's size")
    single = isinstance(total, Size) and len(total.terms) == 1 and len(next(iter(total.terms))) == 1
    if isinstance(q, Size) and not (stride_like and single):
        for mono, c in q.terms.items():
            if c.denominator != 1 and _known_divisor(mono, x) % c.denominator:
                num = Size({mono: c * c.denominator})
                raise OpError(f"cannot {what}: {num} does not divide by {c.denominator} at every input size",
                              help="divide sizes by what they are known to divide by, or pad the axis to a "
                                   "multiple first (`pad_to_multiple`)")
    elif not isinstance(q, (int, Size)):
        raise OpError(f"cannot {what}: {total} does not divide by {known}")
    return q


def _factors(n: int) -> list:
    out, p = [], 2
    while p * p <= n and len(out) < 64:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out + ([n] if n > 1 else []) or [1]


def _exact_div(total, known):
    if isinstance(known, int):
        return S.truediv(total, known) if known else None
    t, k = Size.lift(total), Size.lift(known)
    if len(k.terms) == 1:
        (mono, c), = k.terms.items()
        out = {}
        for m, v in t.terms.items():
            rest = list(m)
            for s in mono:
                if s not in rest:
                    return None
                rest.remove(s)
            out[tuple(rest)] = v / c
        return Size.norm(Size(out))
    return None


@op("transpose", [("dim0", "int"), ("dim1", "int")], traits=("pure", "linear", "layout"), doc="swap two axes",
    axes=Regroup(_transpose_pairs), **LAYOUT)
def _transpose(ins, a):
    (x,) = ins
    i, j = norm_axis(x, a["dim0"]), norm_axis(x, a["dim1"])
    y = list(x)
    y[i], y[j] = y[j], y[i]
    return [tuple(y)], {}


@op("permute", [("dims", "ints")], traits=("pure", "linear", "layout"), doc="reorder axes",
    axes=Regroup(_permute_pairs), **LAYOUT)
def _permute(ins, a):
    (x,) = ins
    d = a["dims"] if isinstance(a["dims"], (list, tuple)) else [a["dims"]]
    d = [norm_axis(x, i) for i in d]
    if sorted(d) != list(range(len(x))):
        raise OpError(f"permute dims {list(d)} are not a permutation of 0..{len(x) - 1}", kind="type")
    a["dims"] = tuple(d)
    return [tuple(x[i] for i in d)], {}


@op("rearrange", [("pattern", "str"), ("sizes", "kwargs", None)], traits=("pure", "linear", "layout"),
    doc="einops-style axis rearrangement: 'n c (h p) w -> n (h w) (p c)', p=2",
    label=lambda n: f"rearrange {n.attrs['pattern']}", axes=Regroup(_rearrange_pairs), **LAYOUT)
def _rearrange(ins, a):
    from ..rearrange import plan
    out, steps, need = plan(a["pattern"], ins[0], a["sizes"] or {})
    a["_steps"] = steps
    a["_need"] = need
    return [out], {}


# ------------------------------------------------------------------ cutting and joining along `dim`
@op("select", [("dim", "int"), ("index", "int")], traits=("pure", "layout"), doc="pick one index on an axis",
    axes=dim_axes(1), **LAYOUT)
def _select(ins, a):
    (x,) = ins
    d = norm_axis(x, a["dim"])
    n = x[d].size
    if isinstance(n, int) and not -n <= a["index"] < n:
        raise OpError(f"index {a['index']} is out of range for axis {d} of size {n}", kind="type")
    return [tuple(x[:d]) + tuple(x[d + 1:])], {}


@op("concat", [("dim", "int", 1)], inputs=(1, None), traits=("pure", "linear", "merge"), doc="join along `dim`",
    family="merge", label=lambda n: f"concat (dim {n.attrs['dim']})" if n.attrs.get("dim", 1) != 1 else "concat",
    axes=dim_axes(1), macs=0)
def _concat(ins, a):
    d = norm_axis(ins[0], a["dim"])
    check_merge(ins, "concat", d)
    n = 0
    for x in ins:
        n = S.add(n, x[d].size)
    return [with_axis(ins[0], d, n)], {}


@op("stack", [("dim", "int", 1)], inputs=(1, None), traits=("pure", "linear", "merge"),
    doc="stack tensors of one shape along a new axis `dim` (SK-Net's paths)", family="merge", axes=dim_axes(1),
    macs=0)
def _stack(ins, a):
    check_merge(ins, "stack")
    r = len(ins[0]) + 1
    if not -r <= a["dim"] < r:
        raise OpError(f"stack axis {a['dim']} is out of range for rank {r}", kind="type")
    d = a["dim"] % r
    a["dim"] = d
    return [tuple(ins[0][:d]) + (Axis(len(ins)),) + tuple(ins[0][d:])], {}


def _split_label(n):
    a = n.attrs
    return f"{n.op} {a.get('n', '') or list(a.get('_sizes', ()))}"


@op("split", [("sizes", "sizes", REQUIRED), ("dim", "int", 1)], traits=("pure", "layout"),
    doc="split into pieces (sizes: ints or symbolic sizes such as `x.C / 2`; one size: equal pieces)",
    label=_split_label, axes=dim_axes(1), **LAYOUT)
def _split(ins, a):
    x = ins[0]
    d = norm_axis(x, a["dim"])
    sizes = a["sizes"] if isinstance(a["sizes"], (list, tuple)) else [a["sizes"]]
    n = x[d].size
    if len(sizes) == 1:
        k = divide(n, sizes[0], x, f"split axis {d} of size {n} into pieces of {sizes[0]}")
        if not isinstance(k, int):
            raise OpError(f"split: pieces of {sizes[0]} cut axis {d} of size {n} into {k} pieces, which is not a "
                          f"fixed number", kind="shape", help="give the list of piece sizes")
        sizes = [sizes[0]] * k
    tot = 0
    for v in sizes:
        tot = S.add(tot, v)
    if tot != n:
        raise OpError(f"split sizes {[str(v) for v in sizes]} add up to {tot}, not to the size {n} of axis {d}")
    if len(sizes) > 10000:
        raise OpError(f"split makes {len(sizes)} pieces (at most 10000)", kind="limit")
    a["_sizes"] = tuple(sizes)
    a["dim"] = d
    if any(not isinstance(v, int) for v in sizes):
        a["_need"] = [(tuple(sizes), 1)]
    return [with_axis(x, d, s) for s in sizes], {}


@op("chunk", [("n", "int", REQUIRED, POS), ("dim", "int", 1)], traits=("pure", "layout"),
    doc="split into n equal pieces", label=_split_label, axes=dim_axes(1), **LAYOUT)
def _chunk(ins, a):
    (x,) = ins
    d = norm_axis(x, a["dim"])
    n = static(x[d].size, "the chunk axis")
    if n % a["n"]:
        raise OpError(f"chunk({a['n']}) does not divide axis {d} of size {n}")
    a["dim"] = d
    return [with_axis(x, d, n // a["n"]) for _ in range(a["n"])], {}


# ------------------------------------------------------------------ padding and broadcasting
def _pad_axes(n, r):
    return list(range(max(1, r - len(n.attrs.get("widths", ())) // 2), r))


@op("pad", [("widths", "ints", REQUIRED, NONNEG), ("value", "num", 0.0)], traits=("pure", "layout"),
    doc="constant padding; widths in torch.nn.functional.pad order: [last_lo, last_hi, prev_lo, prev_hi, ...]",
    axes=_pad_axes, **LAYOUT)
def _pad(ins, a):
    (x,) = ins
    w = a["widths"] if isinstance(a["widths"], (list, tuple)) else (a["widths"],)
    if len(w) % 2 or len(w) // 2 > len(x) or any(v < 0 for v in w):
        raise OpError(f"pad widths {list(w)} must be non-negative (lo, hi) pairs for at most {len(x)} axes",
                      kind="type")
    a["widths"] = tuple(w)
    y = list(x)
    for k in range(len(w) // 2):
        i = len(x) - 1 - k
        y[i] = Axis(S.add(x[i].size, w[2 * k] + w[2 * k + 1]), x[i].name)
    return [tuple(y)], {}


def _expand_axes(n, r):
    """The size-1 axes it repeats; the whole bundle where the rank changes."""
    if len(n.outputs[0].shape) != r:
        return None
    return [i for i, ax in enumerate(n.inputs[0].shape) if ax.size == 1 and n.outputs[0].shape[i].size != 1]


@op("expand", [("dims", "ints", 0)], inputs=(2, 2), traits=("pure", "layout"),
    doc="expand(x, like): repeat x's size-1 axes `dims` (default the batch axis 0) to the sizes of `like` "
        "(a class token [1, 1, D] -> [N, 1, D])", axes=_expand_axes, **LAYOUT)
def _expand(ins, a):
    x, like = ins
    dims = a["dims"] if isinstance(a["dims"], (list, tuple)) else (a["dims"],)
    if len(x) != len(like):
        raise OpError(f"`expand` needs tensors of the same rank: {S.shape_str(x)} and {S.shape_str(like)}")
    dims = tuple(sorted(norm_axis(x, d) for d in dims))
    y = list(x)
    for d in dims:
        if x[d].size != 1:
            raise OpError(f"`expand` repeats axes of size 1; axis {d} of {S.shape_str(x)} has size {x[d].size}")
        y[d] = like[d]
    a["dims"] = dims
    return [tuple(y)], {}
