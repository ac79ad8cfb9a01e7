"""What elaboration carries around: the `Ctx` of a statement, path joining, the nesting guard,
the call-stack notes added to errors, and the limits on elaboration work that are not in budget.py.

Shared by the Elaborator and its mixins (exprs, blocks, ops_apply, regions); it imports none of them.
"""
from __future__ import annotations

import re

from ..diagnostics import ResdslError
from ..ir.graph import Scope
from . import budget as B

MAX_REPEAT = 10_000
MAX_RECURSION = 64
MAX_NODES = B.MAX_OPS  # the other bounds on elaboration work live in budget.py


class Ctx:
    """Where a statement is elaborated: scope, names, the current tensor, `in`."""

    tie = None  # tying.BlockTie of the block call being elaborated (`Block(..., tie="h.0.mlp")`)

    def __init__(self, scope: Scope, prefix: str, env: dict, current=None, in_value=None, module=None,
                 counters=None):
        self.scope = scope
        self.prefix = prefix
        self.env = env
        self.current = current
        self.in_value = in_value
        self.module = module
        self.counters = counters if counters is not None else {}
        self.outputs = []  # (name, Value) from `output`
        self.list_bind = None  # the last statement, when it bound a list of tensors (traps.check_end)
        self.out_binds = []  # per output: the name a group binds after it (`output a` binds `a`), or None
        self.inputs = []   # declared block inputs

    def sub(self, scope=None, prefix=None, env=None, current=None, in_value=None, counters=None):
        c = Ctx(scope or self.scope, self.prefix if prefix is None else prefix,
                self.env if env is None else env, current, in_value, self.module,
                self.counters if counters is None else counters)
        c.tie = self.tie
        return c

    def lookup(self, name):
        if name in self.env:
            return self.env[name]
        return self.module.names.get(name)

    def has(self, name) -> bool:
        """Bound at all (a name may be bound to none: `v: Tensor? = none`)."""
        return name in self.env or name in self.module.names

    def all_names(self):
        return list(self.env) + list(self.module.names)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


MAX_FRAMES = 12  # call-stack notes shown in full; deeper stacks keep both ends


def add_frame(err: ResdslError, text: str):
    """One call-stack note (rustc style, under the message): `in features.4.1 (MBConv, called at net.res:24:9)`."""
    frames = getattr(err, "frames", None)
    if frames is None:
        frames = err.frames = []
    frames.append(len(err.notes))
    err.notes.append((text, None))


def compress_frames(err: ResdslError):
    """A deep recursion would print 64 frames: keep the innermost and outermost few."""
    idx = getattr(err, "frames", [])
    if len(idx) <= MAX_FRAMES:
        return
    keep = set(idx[:MAX_FRAMES // 2] + idx[-MAX_FRAMES // 2:])
    drop = [i for i in idx if i not in keep]
    notes = []
    for i, note in enumerate(err.notes):
        if i == drop[0]:
            notes.append((f"... {len(drop)} more calls ...", None))
        if i not in drop:
            notes.append(note)
    err.notes = notes
    err.frames = []


class Nest:
    """`with el.nested(span):` around a region or block body (see Elaborator.nested)."""
    __slots__ = ("el", "span")

    def __init__(self, el, span):
        self.el, self.span = el, span

    def __enter__(self):
        self.el.nest += 1
        if self.el.nest > B.MAX_NEST:
            raise ResdslError("limit", f"regions and blocks nest deeper than {B.MAX_NEST}", self.span,
                              help="flatten the description, or make a recursion stop earlier")

    def __exit__(self, *exc):
        self.el.nest -= 1


class InitValue:
    def __init__(self, spec):
        self.spec = spec
