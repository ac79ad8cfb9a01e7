"""The torch lowerings and module recipes of the ops that carry state across time steps
(resdsl/ir/ops/recurrent.py): lif, convlstm and reservoir are modules of :mod:`runtime_recurrent`."""
from __future__ import annotations

from .registry import lowering, recipe
from .registry import stateful as _stateful, unsupported as _unsupported


def _changed(a, defaults):
    return {k: a[k] for k, v in defaults.items() if a[k] != v}


@recipe("lif")
def _lif_module(n):
    a = n.attrs
    kw = _changed(a, {"decay": 0.25, "threshold": 0.5, "reset": "hard", "surrogate": "rect", "width": 1.0})
    return "LIF", (a["steps"],), kw, []


@recipe("convlstm")
def _convlstm_module(n):
    a = n.attrs
    kw = _changed(a, {"kernel": 3, "bias": True})
    return "ConvLSTM", (a["_in"], a["hidden"], a["steps"]), kw, []


@recipe("reservoir")
def _reservoir_module(n):
    a = n.attrs
    kw = _changed(a, {"temporal": "orthogonal", "alpha": 1.0, "beta": 1.0, "spectral_radius": 0.9,
                      "input_scaling": 1.0, "bias_scaling": 0.0, "activation": "tanh"})
    return "Reservoir", (a["_in"], a["units"]), kw, []


@lowering("lif", "convlstm", "reservoir")
def _module(g, n, ins):
    if not _stateful(n):
        raise _unsupported(n)
    return g.call_module(n.path, tuple(ins))
