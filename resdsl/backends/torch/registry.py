"""The torch lowering registries, apart from ops.py so that the per-kind lowering modules
(ops_dynamic, ops_recurrent, ops_sdpa, ...) register into them without importing ops.py, which
imports them (no import cycle)."""
from __future__ import annotations

from ...diagnostics import ResdslError
from ...ir.graph import Node
from ...ir.ops import Registry

LOWERINGS = Registry("torch lowering")        # op -> fn(fx graph, node, input fx nodes) -> output node(s)
RECIPES = Registry("torch module recipe")     # op -> fn(node) -> (class name, args, kwargs, [(param, init)])
lowering, recipe = LOWERINGS.register, RECIPES.register


def unsupported(n: Node) -> ResdslError:
    return ResdslError("unsupported", f"the torch target has no lowering for `{n.op}`", n.span)


def stateful(n: Node) -> bool:
    """The op owns state at its path (a module or a bare parameter made by build_modules)."""
    return n.path is not None and bool(n.params or n.has("stochastic") or n.has("module"))
