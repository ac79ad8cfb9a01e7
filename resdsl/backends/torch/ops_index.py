"""Torch lowerings of the constant and indexing ops (resdsl/ir/ops/index.py): buffer, index, roll.
A `buffer` is registered on the module tree by :func:`ops.build_modules`; here it is read.

:mod:`ops` calls :func:`register` with its registry (this module imports nothing from it, so
the two form no import cycle)."""
from __future__ import annotations

import torch


def register(lowering, stateful, unsupported):
    """Register the lowerings with `lowering` (ops.LOWERINGS.register)."""

    @lowering("buffer")
    def _buffer(g, n, ins):
        if not stateful(n):
            raise unsupported(n)
        return g.get_attr(n.path)

    @lowering("index")
    def _index(g, n, ins):
        table, idx = ins
        d = n.attrs["dim"]
        ishape = tuple(ax.size for ax in n.inputs[1].shape)
        if len(ishape) == 1:
            return g.call_function(torch.index_select, (table, d, idx))
        flat = g.call_method("reshape", (idx, (-1,)))
        return g.call_method("unflatten", (g.call_function(torch.index_select, (table, d, flat)), d, ishape))

    @lowering("roll")
    def _roll(g, n, ins):
        return g.call_function(torch.roll, (ins[0], n.attrs["_shifts"], n.attrs["_dims"]))
