"""The AST: frozen dataclasses, each with the Span it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import Span


@dataclass(frozen=True)
class Node:
    span: Span = field(repr=False, compare=False)


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Const(Node):
    value: Any


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class InRef(Node):
    pass


@dataclass(frozen=True)
class ListExpr(Node):
    items: tuple


@dataclass(frozen=True)
class BinOp(Node):
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class UnaryOp(Node):
    op: str  # "-" or "not"
    operand: Any


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" / "or"
    left: Any
    right: Any


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class CondExpr(Node):
    cond: Any
    then: Any
    other: Any


@dataclass(frozen=True)
class Arg(Node):
    name: str | None
    value: Any


@dataclass(frozen=True)
class Call(Node):
    func: Any
    args: tuple  # of Arg


@dataclass(frozen=True)
class Index(Node):
    value: Any
    index: Any


@dataclass(frozen=True)
class Slice(Node):
    lower: Any
    upper: Any


@dataclass(frozen=True)
class Attr(Node):
    value: Any
    name: str


@dataclass(frozen=True)
class CompFor(Node):
    """One `for targets in iterable if cond ...` clause of a list comprehension."""
    targets: tuple  # of str
    iterable: Any
    conds: tuple


@dataclass(frozen=True)
class ListComp(Node):
    elt: Any
    clauses: tuple  # of CompFor


# ---------------------------------------------------------------- statements
@dataclass(frozen=True)
class AsName(Node):
    """`as NAME`; `template` holds `layer{s + 1}` style names (parsed expressions)."""
    parts: tuple  # str pieces and expression nodes, concatenated
    # "" for a name; "inline" for `as .` (a block call with no name level of its own: its
    # modules sit in the caller's namespace); "next" for `as +` (the next index of the
    # enclosing scope's numbering, counting only the modules present: nn.Sequential's)
    mode: str = ""


@dataclass(frozen=True)
class Link(Node):
    """One element of a chain: an expression, a `{ ... }` group or a region."""
    expr: Any  # expression, Body, or region statement
    as_name: AsName | None


@dataclass(frozen=True)
class Chain(Node):
    links: tuple


@dataclass(frozen=True)
class Body(Node):
    stmts: tuple


@dataclass(frozen=True)
class AxisDecl(Node):
    name: str | None
    size: Any  # expression or None


@dataclass(frozen=True)
class InputDecl(Node):
    name: str
    shape: tuple | None  # of AxisDecl


@dataclass(frozen=True)
class Input(Node):
    decls: tuple


@dataclass(frozen=True)
class OutputItem(Node):
    name: str | None
    chain: Chain
    training: bool = False  # `output y, training aux = ...`: returned in training mode only


@dataclass(frozen=True)
class Output(Node):
    items: tuple


@dataclass(frozen=True)
class Assign(Node):
    targets: tuple
    chain: Chain


@dataclass(frozen=True)
class Let(Node):
    name: str
    value: Any


@dataclass(frozen=True)
class Annotation(Node):
    """`@classifier fc` / `@features layer1, layer{s + 1}`: a declaration about the network."""
    name: str
    targets: tuple  # of AsName: dotted paths, templates allowed


@dataclass(frozen=True)
class ChainStmt(Node):
    chain: Chain


@dataclass(frozen=True)
class Residual(Node):
    args: tuple  # of Arg
    body: Body
    shortcut: Body | None
    shortcut_cond: Any
    shortcut_span: Span | None
    as_name: AsName | None
    cond: Any = None  # `residual if cond { ... }`: None means always


@dataclass(frozen=True)
class Parallel(Node):
    args: tuple
    branches: tuple  # of Chain


@dataclass(frozen=True)
class Repeat(Node):
    count: Any
    as_name: AsName | None
    index: str | None
    body: Body


@dataclass(frozen=True)
class Loop(Node):
    count: Any
    shared: bool
    index: str | None
    body: Body
    as_name: AsName | None


@dataclass(frozen=True)
class For(Node):
    var: str
    iterable: Any
    body: Body
    targets: tuple = ()  # all names of `for a, b in ...` (empty for one name)


@dataclass(frozen=True)
class If(Node):
    cond: Any
    then: Body
    other: Any  # Body, If, or None


# ---------------------------------------------------------------- top level
@dataclass(frozen=True)
class Param(Node):
    name: str
    type: Any  # TypeExpr or None
    default: Any  # expression or None


@dataclass(frozen=True)
class TypeExpr(Node):
    name: str
    args: tuple
    optional: bool = False  # `Tensor?`: may be none


@dataclass(frozen=True)
class FnDef(Node):
    """`fn name(params) = expr`: a pure compile-time function."""
    name: str
    params: tuple
    value: Any
    lets: tuple = ()  # of Let: `fn f(v) { let a = v * 2; a + 1 }` binds these first, in order


@dataclass(frozen=True)
class BlockDef(Node):
    name: str
    params: tuple
    body: Body
    is_network: bool


@dataclass(frozen=True)
class NetworkAlias(Node):
    name: str
    value: Any  # a Call expression


@dataclass(frozen=True)
class Import(Node):
    module: str


@dataclass(frozen=True)
class Module(Node):
    items: tuple
