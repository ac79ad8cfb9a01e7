"""Ops on size-1 axes and on sizes known only at run time: unsqueeze, squeeze, pad_to_multiple
(pad axes up to a multiple: Swin's windows at any input size) and crop (keep the first entries,
to a size read at run time). See docs/language.md, "Sizes at run time"."""
from __future__ import annotations

from .. import shapes as S
from ..runsizes import ceil_symbol
from ..shapes import Axis
from .core import POS, REQUIRED, Legal, OpError, Regroup, dim_axes, norm_axis, op

LAYOUT = {"family": "layout", "macs": 0}


def _unsqueeze_pairs(n, rin, rout):
    d = n.attrs["dim"]
    return [(i, i if i < d else i + 1) for i in range(rin)]


def _squeeze_pairs(n, rin, rout):
    d = n.attrs["dim"]
    return [(i, i if i < d else i - 1) for i in range(rin) if i != d]


@op("unsqueeze", [("dim", "int", REQUIRED, Legal(lo=-65, hi=64))], traits=("pure", "linear", "layout"),
    doc="insert a size-1 axis at `dim` (as torch.unsqueeze: -rank-1 <= dim <= rank)",
    axes=Regroup(_unsqueeze_pairs), **LAYOUT)
def _unsqueeze(ins, a):
    x = ins[0]
    r = len(x) + 1
    if not -r <= a["dim"] < r:
        raise OpError(f"unsqueeze axis {a['dim']} is out of range for a tensor of rank {len(x)} "
                      f"{S.shape_str(x)} (from {-r} to {r - 1})", kind="type")
    d = a["dim"] % r
    a["dim"] = d
    return [tuple(x[:d]) + (Axis(1),) + tuple(x[d:])], {}


@op("squeeze", [("dim", "int", REQUIRED, Legal(lo=-64, hi=63))], traits=("pure", "linear", "layout"),
    doc="remove the size-1 axis `dim`", axes=Regroup(_squeeze_pairs), **LAYOUT)
def _squeeze(ins, a):
    x = ins[0]
    d = norm_axis(x, a["dim"])
    if x[d].size != 1:
        raise OpError(f"squeeze removes an axis of size 1; axis {d} of {S.shape_str(x)} has size {x[d].size}",
                      kind="shape", help="use `select(dim, 0)` to take one entry, or `reshape`")
    a["dim"] = d
    return [tuple(x[:d]) + tuple(x[d + 1:])], {}


def _dims(x, a, what):
    dims = a["dims"] if isinstance(a["dims"], (list, tuple)) else (a["dims"],)
    dims = [norm_axis(x, d) for d in dims]
    if len(set(dims)) != len(dims) or not dims:
        raise OpError(f"`{what}` dims {list(a['dims'])} must name distinct axes", kind="type")
    return tuple(dims)


@op("pad_to_multiple", [("mult", "int", REQUIRED, POS), ("dims", "ints", REQUIRED), ("value", "num", 0.0)],
    traits=("pure", "layout"), label=lambda n: f"pad to ×{n.attrs['mult']}",
    doc="pad each axis of `dims` at its end up to a multiple of `mult` (a symbolic axis becomes `ceilM(S)`)",
    axes=dim_axes(1), **LAYOUT)
def _pad_to_multiple(ins, a):
    x = ins[0]
    dims = _dims(x, a, "pad_to_multiple")
    a["dims"] = dims
    y = list(x)
    for d in dims:
        y[d] = Axis(ceil_symbol(x[d].size, a["mult"]), x[d].name)
    return [tuple(y)], {}


@op("crop", [("sizes", "sizes", REQUIRED), ("dims", "ints", REQUIRED)], traits=("pure", "layout"),
    doc="keep the first `sizes[i]` entries of axis `dims[i]` (sizes may be symbolic: `x.H`, read at run time)",
    axes=dim_axes(1), **LAYOUT)
def _crop(ins, a):
    x = ins[0]
    dims = _dims(x, a, "crop")
    sizes = a["sizes"] if isinstance(a["sizes"], (list, tuple)) else (a["sizes"],)
    if len(sizes) != len(dims):
        raise OpError(f"crop has {len(sizes)} size(s) for {len(dims)} axis(es)", kind="type")
    y = list(x)
    for d, s in zip(dims, sizes):
        have = x[d].size
        if isinstance(have, int) and isinstance(s, int) and s > have:
            raise OpError(f"crop to {s} entries, but axis {d} of {S.shape_str(x)} has only {have}", kind="shape")
        y[d] = Axis(s, x[d].name)
    a["dims"], a["sizes"] = dims, tuple(sizes)
    a["_need"] = [(tuple(sizes), 0)]
    return [tuple(y)], {}
