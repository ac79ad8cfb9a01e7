"""The elaboration budget: bounds on the work one `.res` program may cause.

A short file can ask for unbounded work (a block that calls itself twice, nested
`repeat`s, `10**9 * [0]`, towers of powers). Every bound below fails fast with a
`limit` error at the source position that crossed it, so `check` on any input ends
in well under a few seconds and a few hundred MB (docs/language.md, "Limits").

Steps are counted in the elaborator's central loop (every statement, expression and
op), and the step allowance grows with the size of the source: work stays linear in
the input, so a large valid file is never cut off, and a small one cannot run long.
"""
from __future__ import annotations

import math

from ..diagnostics import ResdslError
from ..frontend import syntax as _syntax

MAX_STEPS_BASE = 300_000     # steps any program may take (resnet1202 takes 71,000) ...
STEPS_PER_BYTE = 8           # ... plus this many per byte of source (its own and imports)
OP_STEPS = 4                 # an op application counts as this many steps (it costs more) ...
STATE_STEPS = 12             # ... one that owns parameters (conv, linear, bn) this many ...
BLOCK_STEPS = 8              # ... and a block application this many
MAX_OPS = 100_000            # primitive op applications in one network (resnet1202 has 4,210)
MAX_TOTAL_PARAMS = 2 ** 31   # parameter elements in one network (8 GiB of float32)
MAX_INT_BITS = 63            # |int| < 2**63 for every compile-time integer
MAX_SEQ = 100_000            # items in a list (counted through nested lists) or chars in a string
MAX_NEST = 200               # regions/blocks nested inside each other (scope depth)
# checked by the parsers (frontend/syntax.py): nesting of the parse tree (brackets,
# operators, bodies) and digits in a number literal
MAX_SYNTAX_DEPTH, MAX_LITERAL_DIGITS = _syntax.MAX_SYNTAX_DEPTH, _syntax.MAX_LITERAL_DIGITS


def seq_size(v, cap: int = MAX_SEQ) -> int:
    """Items in `v` counted through nested lists (a string counts its characters); stops past `cap`.

    Shared sub-lists count each time they appear, which is what a comparison or `str()`
    of the value would walk."""
    total = 0
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            total += len(x)
        elif isinstance(x, (list, tuple)):
            total += len(x)
            stack.extend(y for y in x if isinstance(y, (list, tuple, str)))
        if total > cap:
            return total
    return total


def check_value(v, span, what: str = "value"):
    """Reject a compile-time value outside the budget; returns it unchanged."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if v.bit_length() > MAX_INT_BITS:
            raise ResdslError("limit", f"the {what} is an integer of {v.bit_length()} bits, over the limit of "
                                       f"{MAX_INT_BITS}", span, help="compile-time integers stay below 2**63")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ResdslError("limit", f"the {what} is not a finite number ({v})", span,
                              help="numbers must be finite: no overflow to infinity, no nan")
    elif isinstance(v, complex):  # (-8) ** 0.5
        raise ResdslError("value", f"the {what} is a complex number", span,
                          help="a negative number to a fractional power has no real value")
    elif isinstance(v, (str, list)):
        n = seq_size(v)
        if n > MAX_SEQ:
            kind = "string" if isinstance(v, str) else "list"
            raise ResdslError("limit", f"the {what} is a {kind} of over {MAX_SEQ} items", span,
                              help=f"strings and lists (counted through nested lists) hold at most {MAX_SEQ}")
    return v


def check_repeat(seq, n, span):
    """`seq * n` before it is built: refuse a result over the budget."""
    if isinstance(n, int) and not isinstance(n, bool) and isinstance(seq, (str, list)):
        size = seq_size(seq)
        if n > 0 and size * n > MAX_SEQ:
            raise ResdslError("limit", f"repeating a {'string' if isinstance(seq, str) else 'list'} of "
                                       f"{size} items {n} times is over the limit of {MAX_SEQ}", span)


class Budget:
    """Counts steps and ops for one elaboration."""

    def __init__(self, source_bytes: int = 0):
        self.max_steps = MAX_STEPS_BASE + STEPS_PER_BYTE * source_bytes
        self.steps = 0
        self.params = 0

    def step(self, span, n: int = 1):
        self.steps += n
        if self.steps > self.max_steps:
            raise ResdslError("limit", f"elaboration takes over {self.max_steps:,} steps", span,
                              help="a recursion or nested repeat that never ends, or grows too fast? "
                                   "lower the counts or depth")

    def add_params(self, n: int, span):
        self.params += n
        if self.params > MAX_TOTAL_PARAMS:
            raise ResdslError("limit", f"the network has over {MAX_TOTAL_PARAMS:,} parameters", span,
                              help="no backend can build a network this large; lower widths or depth")
