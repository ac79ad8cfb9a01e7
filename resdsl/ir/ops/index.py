"""Constant tensors and indexing: buffer (a compile-time tensor, registered as a torch buffer),
index (gather rows of a tensor by a tensor of indices: ``table[index]``), roll (cyclic shift on
named axes, Swin's shifted windows)."""
from __future__ import annotations

from .. import shapes as S
from ..shapes import Axis
from .core import (
    MAX_FLOAT,
    Legal,
    OpError,
    ParamSpec,
    norm_axis,
    op,
    whole_bundle,
)

DTYPES = ("int64", "float32", "bool")
MAX_BUFFER_ELEMENTS = 1 << 24  # 16 M values written out at compile time


def nested_values(v):
    """(shape, flat values) of a rectangular nested list of numbers (a scalar: shape ())."""
    if isinstance(v, (list, tuple)):
        if not v:
            raise OpError("a buffer cannot have an axis of size 0 (an empty list)", kind="value")
        parts = [nested_values(x) for x in v]
        shape = parts[0][0]
        if any(p[0] != shape for p in parts):
            raise OpError("a buffer's value must be rectangular: its lists at one depth must have one length "
                          f"(found shapes {sorted({list(p[0]).__repr__() for p in parts})})", kind="value")
        return (len(v),) + shape, [x for p in parts for x in p[1]]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OpError(f"a buffer's value holds numbers (or lists of them), got {type(v).__name__} {v!r}",
                      kind="type")
    return (), [v]


def _dtype_of(flat, want):
    if want is not None:
        return want
    if all(isinstance(x, bool) for x in flat):
        return "bool"
    return "int64" if all(isinstance(x, int) for x in flat) else "float32"


def _buffer_label(n):
    kind = "buffer" if n.attrs["persistent"] else "constant"
    return f"{kind} {n.attrs['_dtype']} " + "×".join(str(s) for s in n.attrs["_shape"])


@op("buffer", [("value", "any"), ("persistent", "bool", True), ("dtype", "str", None, Legal(choices=DTYPES))],
    inputs=0, traits=("has_params", "bare_param", "constant"),
    doc="a compile-time tensor (nested lists of numbers, usually made by a `fn`) registered as a torch buffer: "
        "in the state_dict when persistent, never a parameter",
    label=_buffer_label, axes=whole_bundle, family="scale", macs=0, init="attributes")
def _buffer(ins, a):
    shape, flat = nested_values(list(a["value"]) if isinstance(a["value"], tuple) else a["value"])
    if len(flat) > MAX_BUFFER_ELEMENTS:
        raise OpError(f"a buffer of {len(flat)} values is over the limit of {MAX_BUFFER_ELEMENTS}", kind="limit")
    dt = _dtype_of(flat, a["dtype"])
    if dt == "int64":
        if not all(isinstance(x, int) or (isinstance(x, float) and x.is_integer()) for x in flat):
            raise OpError("an int64 buffer holds whole numbers", kind="value")
        if any(abs(x) >= 2 ** 63 for x in flat):
            raise OpError("an int64 buffer's values must be below 2**63 in magnitude", kind="value")
        flat = [int(x) for x in flat]
    elif dt == "float32":
        if any(not (isinstance(x, (int, float)) and abs(x) <= MAX_FLOAT) for x in flat):
            raise OpError("a float32 buffer's values must be finite float32 numbers (magnitude at most 3.4e38)",
                          kind="value")
        flat = [float(x) for x in flat]
    else:
        flat = [bool(x) for x in flat]
    a["_shape"], a["_flat"], a["_dtype"] = shape, tuple(flat), dt
    kind = "buffer" if a["persistent"] else "const"
    return [tuple(Axis(s) for s in shape)], {"": ParamSpec(shape, kind)}


def _index_axes(n, r):
    return [n.attrs["dim"] % r] if r else None


@op("index", [("dim", "int", 0)], inputs=(2, 2), traits=("pure", "layout"),
    doc="index(table, idx): the entries of `table` at the int64 indices `idx` along axis `dim` "
        "(torch `table[idx]`, ONNX Gather); the output has idx's axes in place of axis `dim`",
    label=lambda n: "gather" if n.attrs["dim"] == 0 else f"gather (axis {n.attrs['dim']})",
    axes=_index_axes, family="layout", macs=0)
def _index(ins, a):
    table, idx = ins
    if not table:
        raise OpError("`index` needs a table of rank 1 or more, got a scalar", kind="type")
    d = norm_axis(table, a["dim"])
    a["dim"] = d
    return [tuple(table[:d]) + tuple(idx) + tuple(table[d + 1:])], {}


def check_index_input(table_shape, idx_node, dim=0):
    """The indices of `index` come from an int64 `buffer` whose values are in range (so that a network
    `check` accepts gathers in bounds on every target); None, or why not."""
    if idx_node is None or idx_node.op != "buffer":
        return "the indices must be a `buffer` of whole numbers (a compile-time table, as Swin's " \
               "relative_position_index)"
    if idx_node.attrs["_dtype"] != "int64":
        return f"the indices must be whole numbers: the buffer is {idx_node.attrs['_dtype']}"
    try:
        size = table_shape[norm_axis(table_shape, dim)].size
    except OpError as e:
        return e.message
    if not isinstance(size, int):
        return f"the indexed axis must have a known size, not `{size}`"
    flat = idx_node.attrs["_flat"]
    bad = [v for v in flat if not -size <= v < size]
    if bad:
        return f"index {bad[0]} is out of range for an axis of size {size}"
    return None


def _roll_axes(n, r):
    return sorted(set(n.attrs["_dims"]))


@op("roll", [("shifts", "ints"), ("dims", "any")], traits=("pure", "layout"),
    doc="roll(shifts, dims): shift cyclically by `shifts[i]` along axis `dims[i]` (an index or an axis name "
        "such as \"H\"), as torch.roll",
    label=lambda n: "roll " + ", ".join(f"{s:+d}" for s in n.attrs["_shifts"]),
    axes=_roll_axes, family="layout", macs=0)
def _roll(ins, a):
    (x,) = ins
    shifts = a["shifts"] if isinstance(a["shifts"], (list, tuple)) else (a["shifts"],)
    dims = a["dims"] if isinstance(a["dims"], (list, tuple)) else (a["dims"],)
    if len(shifts) != len(dims) or not shifts:
        raise OpError(f"`roll` needs one shift per axis: {len(shifts)} shift(s), {len(dims)} axis/axes", kind="type")
    out = []
    for d in dims:
        if isinstance(d, str):
            names = [ax.name for ax in x]
            if d not in names:
                raise OpError(f"`roll` axis `{d}` is not an axis of {S.shape_str(x)}",
                              help=f"named axes: {', '.join(n for n in names if n) or 'none'}", kind="type")
            out.append(names.index(d))
        elif isinstance(d, int) and not isinstance(d, bool):
            out.append(norm_axis(x, d))
        else:
            raise OpError(f"`roll` axes are ints or axis names, got {d!r}", kind="type")
    if len(set(out)) != len(out):
        raise OpError(f"`roll` names one axis twice: {list(dims)}", kind="type")
    for s in shifts:
        if abs(s) >= 2 ** 31:
            raise OpError(f"`roll` shift {s} is out of range (below 2**31 in magnitude)", kind="value")
    a["_dims"], a["_shifts"] = tuple(out), tuple(int(s) for s in shifts)
    return [x], {}
