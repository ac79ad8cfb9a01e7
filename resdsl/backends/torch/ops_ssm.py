"""The torch lowering of `selective_scan` (resdsl/ir/ops/ssm.py): a call of the function
:func:`runtime_ssm.selective_scan` (a chunked scan), which the standalone file defines as written."""
from __future__ import annotations

from .registry import lowering
from .runtime_ssm import selective_scan


@lowering("selective_scan")
def _selective_scan(g, n, ins):
    kw = {"delta_softplus": True} if n.attrs["delta_softplus"] else {}
    return g.call_function(selective_scan, tuple(ins), kw)
