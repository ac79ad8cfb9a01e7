"""Compile-time values: what names in a `.res` file can stand for, besides numbers,
strings, booleans, lists and symbolic sizes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..diagnostics import ResdslError
from ..ir.ops import OpDef
from ..ir.shapes import Size


@dataclass(eq=False)
class BlockRef:
    """A `block` or `network` definition together with the module it was defined in."""
    defn: object  # ast.BlockDef
    module: "ModuleEnv"

    @property
    def name(self):
        return self.defn.name


@dataclass(eq=False)
class OpRef:
    opdef: OpDef

    @property
    def name(self):
        return self.opdef.name


@dataclass(eq=False)
class Partial:
    """`bn(eps=1e-3)` or `Encoder(dim)` without tensors: a callee with some arguments bound."""
    callee: object
    args: tuple
    kwargs: dict

    @property
    def name(self):
        return getattr(self.callee, "name", "?")


@dataclass(eq=False)
class Instance:
    """`let enc = Encoder(dim)`: one set of weights; every application shares them."""
    partial: Partial
    path: str
    uses: int = 0

    @property
    def name(self):
        return self.partial.name


class Built(list):
    """A list a top-level `fn` returned, with the call that made it (`fn`, its argument values):
    the torch file writes a buffer made from it as that call of the fn, translated to Python."""

    def __init__(self, items, fn, args, names=None):
        super().__init__(items)
        self.fn, self.args = fn, args
        self.names = names or [None] * len(args)  # the names the arguments were written as, where plain names


@dataclass(eq=False)
class Fn:
    """`fn name(params) = expr`: a pure compile-time function. `closure` is the env of the
    block body that defined it (None at top level: the module's names only)."""
    defn: object  # ast.FnDef
    module: "ModuleEnv"
    closure: dict | None = None

    @property
    def name(self):
        return self.defn.name


@dataclass(eq=False)
class AmbiguousIn:
    """`in` inside a block with several inputs: which one is meant is not said, so using it
    is an error that names the inputs (it used to read the first one silently)."""
    names: tuple


@dataclass(eq=False)
class Builtin:
    name: str
    fn: object


@dataclass(eq=False)
class MergeSpec:
    kind: str  # add concat mean mul scale learned layer_scale
    arg: object = None


@dataclass(eq=False)
class ModuleEnv:
    path: str
    names: dict = field(default_factory=dict)


CALLABLE = (BlockRef, OpRef, Partial, Instance)


def type_name(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    if isinstance(v, Size):
        return "size"
    if v is None:
        return "none"
    if isinstance(v, CALLABLE):
        return "Block"
    if isinstance(v, Fn):
        return "function"
    from ..ir.graph import Value
    if isinstance(v, Value):
        return "Tensor"
    return type(v).__name__


def _rng(*a):
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in a) or not 1 <= len(a) <= 3:
        raise TypeError("range takes 1 to 3 ints")
    r = range(*a)
    if len(r) > 100_000:
        raise ValueError(f"range of {len(r)} items is over the limit of 100000")
    return list(r)


def _len(x):
    if isinstance(x, (list, str)):
        return len(x)
    raise TypeError(f"len() of a {type_name(x)}")


def _number(x):
    """`sum` adds numbers only: summing lists would copy them over and over (quadratic work)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        raise TypeError(f"start must be a number, got {type_name(x)}")
    return x


BUILTINS = {
    "range": _rng,
    "len": _len,
    "sum": lambda xs, start=0: sum(xs, _number(start)),
    "min": lambda *a: min(a[0]) if len(a) == 1 else min(a),
    "max": lambda *a: max(a[0]) if len(a) == 1 else max(a),
    "abs": abs,
    "int": int,
    "float": float,
    "str": str,
    "round": round,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "list": list,
    "zip": lambda *xs: [list(t) for t in zip(*xs)],
    "enumerate": lambda xs, start=0: [[i, x] for i, x in enumerate(xs, start)],
    "any": lambda xs: any(xs),
    "all": lambda xs: all(xs),
}


# names of numbers every module sees (a `let` of the same name hides them)
CONSTANTS = {"pi": math.pi}


def call_builtin(b: Builtin, args, kwargs, span):
    try:
        return b.fn(*args, **kwargs)
    except ResdslError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise ResdslError("type", f"{b.name}(): {e}", span) from None
