"""Questions about a callee (op, block, partial or instance) asked while applying it: how many
tensors it takes, whether it takes any, whether it is an op or a block underneath.
"""
from __future__ import annotations

from ..frontend import ast
from .values import BlockRef, Instance, OpRef, Partial


def takes_no_input(c) -> bool:
    """Ops such as `param` make a tensor from nothing."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    return isinstance(c, OpRef) and c.opdef.inputs == 0


def min_inputs(c) -> int:
    """How many tensors an op needs at least (0 for blocks: they say so themselves)."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    if isinstance(c, OpRef):
        return c.opdef.inputs if isinstance(c.opdef.inputs, int) else c.opdef.inputs[0]
    return 0


def declared_inputs(c) -> int:
    """How many `input` names a block declares (0: it takes the one current tensor)."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    if not isinstance(c, BlockRef):
        return 0
    return sum(len(st.decls) for st in c.defn.body.stmts if isinstance(st, ast.Input))


def variadic(c) -> bool:
    """An op that takes any number of tensors (concat, add, stack, ...)."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    return isinstance(c, OpRef) and isinstance(c.opdef.inputs, tuple) and c.opdef.inputs[1] is None


def callee_name(c) -> str:
    return getattr(c, "name", "?")


def is_op(c):
    while isinstance(c, Partial):
        c = c.callee
    return isinstance(c, OpRef)


def is_block(c):
    while isinstance(c, Partial):
        c = c.callee
    return isinstance(c, BlockRef)
