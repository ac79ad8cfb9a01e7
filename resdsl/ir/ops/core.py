"""The record of an op and the machinery every kind module of the op table shares.

An op is one :class:`OpDef`, declared with :func:`op` in the module of its kind. The record
holds everything the compiler knows about the op that no backend needs to compute:

* the attributes with their types, defaults and legal values (:class:`AttrDef`, :class:`Legal`);
* the shape rule: input shapes and checked attributes -> output shapes and the parameter
  tensors the op owns (name -> :class:`ParamSpec`);
* its traits (``linear``, ``elementwise``, ``has_params``, ``stochastic``...), which passes test;
* ``family`` and ``label``: how diagrams colour and name it (``3×3 conv, 64, /2``), and
  ``axes_note``: whether block diagrams note the axes it acts on (``[D] over N,L``);
* ``axes``: the input axes it acts on (neural circuit diagrams draw its box on those wires),
  or for an op that moves axes a :class:`Regroup` (which input axes become which output axes);
* ``macs``: its multiply-accumulates (``resdsl summary``), 0 or a function of the node;
* ``init``: where the initial values of its parameters come from (:data:`TORCH_INIT`, :data:`ATTR_INIT`).

The backends register their lowerings against the record's name in a :class:`Registry`
(torch: ``backends/torch/ops.py``; ONNX: ``backends/onnx/``), which refuses a second
registration for one op. ``tests/test_op_records.py`` walks the table and fails for an op
that lacks any of these. docs/ops.md says how to add an op.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import shapes as S
from ..shapes import Axis

MAX_DIM = 2 ** 31 - 1
MAX_PARAM_ELEMENTS = 2 ** 34  # 16 G elements in one tensor
MAX_FLOAT = 3.4028234663852886e38  # float32: number attributes become float32 tensors or constants


class OpError(Exception):
    """A bad use of an op; the elaborator adds the source position."""

    def __init__(self, message: str, help: str | None = None, kind: str = "shape"):
        super().__init__(message)
        self.message, self.help, self.kind = message, help, kind


class RegistrationError(Exception):
    """An op declared twice, or a lowering registered twice or for an op that does not exist."""


REQUIRED = object()
MISSING = None  # a record field the declaration left out (the completeness test names it)


@dataclass(frozen=True)
class Legal:
    """The legal values of one attribute: numbers in [lo, hi] (an open end with lo_open/hi_open),
    strings among `choices`. For a list-valued attribute (`ints`), every item must be legal."""
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    lo_open: bool = False
    hi_open: bool = False

    def problem(self, v) -> str | None:
        """Why `v` is not legal, or None."""
        if isinstance(v, (list, tuple)):
            for x in v:
                why = self.problem(x)
                if why:
                    return why
            return None
        if isinstance(v, str):
            if self.choices and v not in self.choices:
                return "one of " + ", ".join(f'"{c}"' for c in self.choices)
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if (self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo))) or \
                (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi))):
            return self.describe()
        return None

    def describe(self) -> str:
        if self.hi is None:
            return f"{'above' if self.lo_open else 'at least'} {_num(self.lo)}"
        lb, rb = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"in {lb}{_num(self.lo)}, {_num(self.hi)}{rb}"


def _num(x):
    return str(int(x)) if float(x).is_integer() else str(x)


POS = Legal(1)                     # counts, sizes, strides, kernels, dilations, groups, heads
NONNEG = Legal(0)                  # paddings
PROB = Legal(0, 1)                 # dropout probabilities, momentum
EPS = Legal(0, lo_open=True)       # norm epsilons


@dataclass(frozen=True)
class AttrDef:
    name: str
    type: str  # int, float, bool, str, ints, num, init, any, shape, str_or_int, kwargs (collects extra kwargs)
    default: object = REQUIRED
    legal: Legal | None = None  # checked when the network is checked (Elaborator.coerce_attr), the one place

    def problem(self, v) -> str | None:
        """Why the (type-checked) value `v` is not legal for this attribute, or None."""
        if self.type == "num" and isinstance(v, float) and not abs(v) <= MAX_FLOAT:
            return "a float32 number (magnitude at most 3.4e38)"
        if self.legal is None or v is None:
            return None
        why = self.legal.problem(v)
        return f"must be {why}" if why else None


@dataclass(frozen=True)
class ParamSpec:
    shape: tuple
    kind: str = "param"  # param | buffer
    init: object = None  # None: the backend's default for the op, or an init tuple


# where the initial values of an op's parameters come from (OpDef.init)
TORCH_INIT = "torch"      # the torch.nn module it lowers to initialises them (as PyTorch does),
                          # unless the op's weight_init= / bias_init= say otherwise
ATTR_INIT = "attributes"  # the op's attributes give them (`init=`): the shape rule puts the spec
                          # into each ParamSpec.init


@dataclass
class OpDef:
    """One op of the table: see the module docstring for the fields."""
    name: str
    attrs: list
    inputs: object  # int, or (min, max) with max None for any number
    rule: Callable
    traits: frozenset = field(default_factory=frozenset)
    outputs: int = 1
    doc: str = ""
    family: str | None = MISSING       # diagram family (a key of diagram.labels.PALETTE)
    label: Callable | None = None      # node -> diagram text; None: the op's name
    axes_note: str = ""                # "" | "always" | "if_broadcast" (only if more than the batch passes by)
    axes: Callable | None = MISSING    # (node, rank) -> acted axes, [] for none, None for the whole bundle
    macs: object = MISSING             # 0 or node -> multiply-accumulates (int or symbolic Size)
    init: str | None = None            # TORCH_INIT or ATTR_INIT, for an op with parameters
    where: str = ""                    # file:line of the declaration

    def attr(self, name):
        for a in self.attrs:
            if a.name == name:
                return a
        return None

    def node_macs(self, n):
        return self.macs(n) if callable(self.macs) else self.macs


OPS: dict[str, OpDef] = {}


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def place(filename: str, line: int) -> str:
    """`resdsl/ir/ops/conv.py:41`: a source position for registration errors."""
    try:
        filename = os.path.relpath(filename, _root())
    except ValueError:
        pass
    return f"{filename}:{line}"


def fn_place(fn) -> str:
    """Where `fn` was registered from: its `declared_at` (a marker made by a helper), else its definition."""
    if getattr(fn, "declared_at", None):
        return fn.declared_at
    code = getattr(fn, "__code__", None)
    return place(code.co_filename, code.co_firstlineno) if code is not None else repr(fn)


def op(name, attrs=(), inputs=1, traits=(), doc="", *, family=MISSING, label=None, axes_note="",
       axes=MISSING, macs=MISSING, init=None):
    """Declare op `name`; used as a decorator on its shape rule, or called with the rule.

    Without `axes`, an op with the ``elementwise`` trait acts on no axis (:func:`elementwise_axes`)."""
    caller = sys._getframe(1)
    where = place(caller.f_code.co_filename, caller.f_lineno)
    if name in OPS:
        raise RegistrationError(f"op `{name}` is declared twice: at {OPS[name].where} and at {where}")
    traits = frozenset(traits)
    if axes is MISSING and "elementwise" in traits:
        axes = elementwise_axes

    def deco(fn):
        OPS[name] = OpDef(name, [AttrDef(*a) if isinstance(a, tuple) else a for a in attrs], inputs, fn,
                          traits, doc=doc, family=family, label=label, axes_note=axes_note, axes=axes,
                          macs=macs, init=init, where=where)
        return fn
    return deco


class Registry(dict):
    """op name -> function, for one backend's view of the ops (its lowering, its module recipe).

    :meth:`register` refuses an op that is not in the table and a second registration for one op,
    naming the op and both places. The mapping itself is a plain dict (``.get(op)``)."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, *names):
        def deco(fn):
            for n in names:
                if n not in OPS:
                    raise RegistrationError(f"{self.what} for `{n}` at {fn_place(fn)}: there is no op `{n}` "
                                            "in the op table (resdsl/ir/ops/)")
                if n in self or names.count(n) > 1:
                    first = fn_place(self[n]) if n in self else fn_place(fn)
                    raise RegistrationError(f"{self.what} of op `{n}` is registered twice: at {first} and at "
                                            f"{fn_place(fn)}")
            for n in names:
                self[n] = fn
            return fn
        return deco


# ------------------------------------------------------------------ acted-axes rules (OpDef.axes)
def elementwise_axes(n, r):
    """Acts on no axis: every wire passes (relu, add, dropout)."""
    return []


def whole_bundle(n, r):
    """Acts on the whole tensor: the box spans every wire."""
    return None


class Regroup:
    """The rule of an op that moves axes (flatten, permute, reshape): it acts on no axis as a box
    does; circuit diagrams draw wires moving from input axis i to output axis j for each
    (i, j) of ``pairs(node, input rank, output rank)``."""

    def __init__(self, pairs: Callable):
        self.pairs = pairs

    def __call__(self, n, r):
        return None


def axis_list(d, r):
    """A `dim` attribute (an int or a list) as sorted axis indices of a rank-`r` tensor."""
    d = d if isinstance(d, (list, tuple)) else [d]
    return sorted({int(x) % r for x in d})


def dim_axes(default):
    """Acts on the axes of the `dim` attribute (`default` where the op has none)."""
    def axes(n, r):
        return axis_list(n.attrs.get("dim", default), r)
    return axes


def last_axis(n, r):
    return [r - 1]


def last_two_axes(n, r):
    return [r - 2, r - 1]


def channel_and_space(n, r):
    """Channels and space: axes 1 .. r-1 (everything but the batch)."""
    return list(range(1, r))


def space(n, r):
    return list(range(2, r))


# ------------------------------------------------------------------ label helpers (OpDef.label)
def kernel_text(t) -> str:
    """`3×3`."""
    t = t if isinstance(t, (list, tuple)) else (t,)
    return "×".join(str(x) for x in t)


def stride_text(s) -> str:
    """`, /2` (nothing for stride 1)."""
    s = s if isinstance(s, (list, tuple)) else (s,)
    return "" if all(x == 1 for x in s) else ", /" + ("×".join(map(str, s)) if len(set(s)) > 1 else str(s[0]))


# ------------------------------------------------------------------ initialisation
INIT_KINDS = {
    "zeros": 0, "ones": 0, "constant": 1, "normal": 1, "trunc_normal": 1, "uniform": 2,
    "kaiming_normal": 0, "kaiming_uniform": 0, "xavier_uniform": 0, "xavier_normal": 0,
    "orthogonal": 0, "default": 0,
    "eye": 0, "onehot": 1,  # identity matrix; a single 1 at flat index k
}

# init kind -> (fewest args, most args, legal args, least rank, most rank): what runtime.init_tensor
# and torch.nn.init accept, so that an init `check` takes is one every backend can run
_FAN = Legal(choices=("fan_in", "fan_out"))
INIT_ARGS = {
    "zeros": (0, 0, None, 0, None), "ones": (0, 0, None, 0, None), "default": (0, 0, None, 0, None),
    "constant": (1, 1, Legal(), 0, None), "normal": (0, 1, Legal(0), 0, None),
    "trunc_normal": (0, 1, Legal(0, lo_open=True), 0, None), "uniform": (0, 2, Legal(), 0, None),
    "kaiming_normal": (0, 1, _FAN, 2, None), "kaiming_uniform": (0, 1, _FAN, 2, None),
    "xavier_uniform": (0, 0, None, 2, None), "xavier_normal": (0, 0, None, 2, None),
    "orthogonal": (0, 0, None, 2, None), "eye": (0, 0, None, 2, 2), "onehot": (1, 1, Legal(0), 0, None),
}


def check_init(spec, shape):
    """Reject an init spec that torch.nn.init would refuse for a tensor of `shape`."""
    kind, *args = spec
    lo, hi, legal, rmin, rmax = INIT_ARGS.get(kind, (0, None, None, 0, None))
    call = f"{kind}({', '.join(repr(x) for x in args)})"
    if not lo <= len(args) <= (hi if hi is not None else len(args)) or (kind == "uniform" and len(args) == 1):
        raise OpError(f"init `{call}` takes {lo if lo == hi else f'{lo} to {hi}'} argument(s)", kind="type")
    for x in args:
        is_num = isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= MAX_FLOAT
        if (legal is _FAN and not isinstance(x, str)) or (legal is not _FAN and not is_num):
            want = '"fan_in" or "fan_out"' if legal is _FAN else "float32 numbers"
            raise OpError(f"init `{call}` takes {want}", kind="type")
        why = legal.problem(x) if legal is not None else None
        if why:
            raise OpError(f"init `{call}`: the argument must be {why}", kind="type")
    if kind == "uniform" and args and args[0] > args[1]:
        raise OpError(f"init `{call}` needs low <= high", kind="type")
    if kind == "onehot" and (not isinstance(args[0], int) or args[0] >= math.prod(shape)):
        raise OpError(f"init `{call}` needs an int index below the {math.prod(shape)} elements of the "
                      f"parameter {list(shape)}", kind="type")
    if len(shape) < rmin or (rmax is not None and len(shape) > rmax):
        want = f"exactly {rmin}" if rmin == rmax else f"at least {rmin}"
        raise OpError(f"init `{kind}` needs a parameter of {want} axes, got {list(shape)}", kind="type")


def weight(shape, init=None):
    n = math.prod(shape)
    if n > MAX_PARAM_ELEMENTS:
        raise OpError(f"a parameter of shape {list(shape)} ({n} elements) is over the limit of "
                      f"{MAX_PARAM_ELEMENTS}", kind="limit")
    if init is not None:
        check_init(init, shape)
    return ParamSpec(tuple(shape), "param", init)


# ------------------------------------------------------------------ shape-rule helpers
def tup(v, n, what):
    if isinstance(v, int):
        return (v,) * n
    if isinstance(v, (list, tuple)) and len(v) == n and all(isinstance(x, int) for x in v):
        return tuple(v)
    raise OpError(f"`{what}` must be an int or a list of {n} ints, got {v!r}", kind="type")


def static(d, what):
    if not isinstance(d, int):
        raise OpError(f"{what} must be a known number here, but it is the symbolic size `{d}`",
                      help="declare that axis with a number in the `input` shape", kind="shape")
    return d


def check_rank(shape, ranks, opname, layout):
    if len(shape) not in ranks:
        raise OpError(f"`{opname}` expects a tensor of rank {' or '.join(map(str, ranks))} ({layout}), "
                      f"got rank {len(shape)}: {S.shape_str(shape)}")


def chan(shape, name="C"):
    return static(shape[1].size, "the channel axis (axis 1)")


def with_axis(shape, i, size, name=None):
    a = list(shape)
    old = a[i]
    a[i] = Axis(size, name if name is not None else old.name)
    return tuple(a)


def check_dim(v, what="size"):
    if isinstance(v, int) and not (0 < v <= MAX_DIM):
        raise OpError(f"{what} {v} is out of range (1 .. {MAX_DIM})", kind="limit",
                      help="tensor sizes must be positive and below 2**31")
    return v


def norm_axis(shape, d):
    """Axis `d` (negative counts from the end) of `shape` as an index in 0 .. rank-1."""
    r = len(shape)
    if not -r <= d < r:
        raise OpError(f"axis {d} is out of range for a tensor of rank {r} {S.shape_str(shape)}", kind="type")
    return d % r


def broadcast(x, y):
    """The shape of `x op y` under torch's broadcasting (sizes equal or 1, aligned from the last axis)."""
    r = max(len(x), len(y))
    xs = (Axis(1),) * (r - len(x)) + tuple(x)
    ys = (Axis(1),) * (r - len(y)) + tuple(y)
    out = []
    for p, q in zip(xs, ys):
        if p.size == q.size or q.size == 1:
            out.append(p)
        elif p.size == 1:
            out.append(q)
        else:
            raise OpError("no broadcast")
    return tuple(out)


def check_merge(ins, name, dim=None):
    """Inputs of one shape (outside axis `dim`)."""
    base = ins[0]
    for other in ins[1:]:
        if len(other) != len(base) or any(
                (i != dim) and p.size != q.size for i, (p, q) in enumerate(zip(base, other))):
            raise OpError(f"`{name}` needs matching shapes" + ("" if dim is None else f" outside axis {dim}")
                          + f": {S.shape_str(base)} and {S.shape_str(other)}")


def same_shape(ins, a):
    """The shape rule of an op whose output has its input's shape and which owns no parameters."""
    return [ins[0]], {}


def check_finite(a, opname, *names):
    for k in names:
        v = a[k]
        if v is not None and not math.isfinite(v):
            raise OpError(f"{opname} {k}={v} must be a finite number", kind="type")


def channel_axis(shape):
    for i, ax in enumerate(shape):
        if ax.name == "C":
            return i
    return 1 if len(shape) in (4, 5) else len(shape) - 1
