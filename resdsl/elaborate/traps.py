"""Silent traps turned into errors: places where a program would check and run but not do
what it says.

- A `let` (or a list) holding the op `identity`: `let xl = [identity]` stores the op, not
  the current tensor, and applying it later reads whatever tensor is current then. The
  current tensor is named by an assignment: `t = identity` (no op is made), then `[t]`.
- A list mixing tensors and ops or blocks (`[t, identity]`, `xl + [t]` with ops in `xl`).
- A list of ops or blocks given to an op where its tensors go (`concat(xl)`).
- A network, block or group whose last statement binds a list of tensors (`parts = split(...)`,
  `a, b = chunk(2)`) and has no `output`: its result would silently be the tensor before.
- A network whose outputs do not depend on its input.
- An `output` line in a region body (`residual`, `parallel`, `repeat`, `loop`), which gives
  one tensor by its own rule: the line would be ignored.
"""
from __future__ import annotations

from ..diagnostics import ResdslError
from ..ir.graph import Value
from .values import CALLABLE, OpRef, Partial


def _is_identity(v) -> bool:
    return isinstance(v, OpRef) and v.name == "identity" or \
        isinstance(v, Partial) and isinstance(v.callee, OpRef) and v.callee.name == "identity"


def _ops_in(v) -> list:
    return [x for x in v if isinstance(x, CALLABLE)] if isinstance(v, (list, tuple)) else []


def check_let(name: str, v, span):
    """`let name = v`: no `identity` op meant as the current tensor, no list mixing tensors and ops."""
    if _is_identity(v) or (isinstance(v, list) and any(_is_identity(x) for x in v)):
        raise ResdslError("type", f"`let {name}` holds the op `identity`, not the current tensor", span,
                          help="name the current tensor first, `t = identity` (this makes no op), then store "
                               f"the tensor: `let {name} = [t]`; to keep an op on purpose, give it as a "
                               "`Block` parameter (`act: Block = identity`)")
    check_list(v, span)


def check_list(v, span):
    """A list holds tensors or compile-time values (ops and blocks among them), not both."""
    if isinstance(v, list) and v and any(isinstance(x, Value) for x in v):
        ops = _ops_in(v)
        if ops:
            raise ResdslError("type", "this list mixes tensors and ops; an op in it would be applied later to "
                                      "whatever tensor is current then", span,
                              help="name the tensor you mean (`t = identity` names the current tensor) and "
                                   "put `t` in the list")


def check_tensor_arg(callee_name: str, v, span):
    """A list of ops or blocks given where an op's tensors go (`concat(xl)`)."""
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, CALLABLE) for x in v):
        raise ResdslError("type", f"`{callee_name}` gets a list of ops where its tensors go", span,
                          help="a list made with `let xl = [identity]` holds the op, not the tensor: name the "
                               "tensor with `t = identity` and list `t`")


def note_bind(ctx, st, v):
    """After an assignment: remember one that bound a list of tensors (see check_end)."""
    ctx.list_bind = st if isinstance(v, tuple) else None


def check_end(ctx, what: str):
    """A body that ends in an assignment of a list of tensors, with no `output`: an error."""
    st = getattr(ctx, "list_bind", None)
    if st is None or ctx.outputs:
        return
    targets = st.targets if hasattr(st, "targets") else (st.name,)  # an Assign, or a `let` of tensors
    names = ", ".join(targets)
    raise ResdslError("shape", f"{what} ends by binding `{names}` to a list of tensors; its result would silently "
                               "be the current tensor, not the list", st.span,
                      help=f"say what it gives: `output {names}`, or go on from them (`concat({targets[0]})`)")


def check_depends(graph, span, name: str):
    """Some output of the network must be computed from one of its inputs."""
    inputs = {v.name for v in graph.inputs}
    seen, stack = set(), list(graph.outputs)
    while stack:
        v = stack.pop()
        if v.name in inputs:
            return
        if v.name in seen or v.producer is None:
            continue
        seen.add(v.name)
        stack.extend(v.producer.inputs)
    raise ResdslError("shape", f"no output of network `{name}` depends on its input", span,
                      help="a network computes from its `input`: start a chain from it (`x -> ...`)")


def check_output_place(ctx, span):
    """`output` says what a network, block or `{ }` group gives; a region's result is its own."""
    kind = ctx.scope.kind if ctx.scope is not None else None
    if kind is not None and kind not in ("network", "block", "group"):
        what = {"iteration": "repeat", "branch": "parallel"}.get(kind, kind)
        raise ResdslError("syntax", f"`output` in a `{what}` body would be ignored: the region gives its last "
                                    "tensor", span,
                          help="end the body with the tensor it should give; `output` belongs to a network, a "
                               "block or a `{ } as g` group")


def check_nesting(el, path: str, span):
    """An op's name may not also be the prefix of another op's name (`conv1` and `conv1.c`): the
    module `conv1` would be a layer and a container at once. Likeliest with `as .`, whose block
    puts its modules among the caller's."""
    under = el.__dict__.get("state_prefixes")  # proper prefix -> the first path under it
    if under is None:
        under = el.__dict__["state_prefixes"] = {}
    other = under.get(path)
    if other is None:
        states = el.states
        i = path.find(".")
        while i >= 0:  # each proper prefix, shortest first
            if path[:i] in states:
                other = path[:i]
                break
            i = path.find(".", i + 1)
    if other is not None:
        raise ResdslError("name", f"the name `{path}` and the name `{other}` nest: `{min(path, other, key=len)}` "
                                  "would be a layer and a container of layers at once", span,
                          notes=[("the other one", el.states[other][1])],
                          help="give one of them another name with `as`")
    i = path.find(".")
    while i >= 0:
        under.setdefault(path[:i], path)
        i = path.find(".", i + 1)
