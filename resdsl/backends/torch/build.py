"""IR -> a tree of torch modules (fx GraphModules, built directly, no tracing) and a standalone .py file.

The entry points live here (:func:`to_fx`, :func:`to_python`); the per-op lowering is in
:mod:`ops` (:func:`module_recipe` for stateful ops, :func:`_emit` for an op's fx nodes),
:mod:`tree` decides which scopes become modules, :mod:`lower` builds them and
:mod:`codegen` writes the standalone file. Imports go one way: this module -> those.

Stateful ops become real ``torch.nn`` modules at their dotted ``.res`` path, so the
state_dict keys are the ``.res`` names (``layer1.0.conv1.weight``); stateless ops
become ``call_function`` nodes (``torch.relu``, ``torch.nn.functional.max_pool2d``).
Nodes that share a path share one module (shared loops, tied instances).

Module construction and initialisation follow one recipe, :func:`module_recipe`,
used both to build modules in memory and to write them as code, so that
``resdsl.build(seed=s)`` and the generated file's ``net(seed=s)`` give the same weights.
"""
from __future__ import annotations

import torch
import torch.fx

from ...ir.graph import Graph
from .codegen import to_python as _emit_python
from . import initplan
from .lower import lower_tree
from .ops import RUNTIME_CLASSES, build_modules, buffer_tensor, module_recipe, state_owners  # noqa: F401 (the public names)
from .tree import check_names


def lower(graph: Graph, root: torch.nn.Module, checkpoint=None) -> torch.fx.GraphModule:
    """The module tree over `root` (the modules of :func:`build_modules`): one module per block,
    repeat, named group, shortcut with ops and shared loop body, each with its own forward."""
    return lower_tree(graph, root, checkpoint)


def to_fx(graph: Graph, seed: int | None = None, device=None, weights: dict | None = None, checkpoint=None
          ) -> torch.fx.GraphModule:
    """Build the module tree; `weights` (a checked state_dict) replaces the initial values;
    `checkpoint` (none, blocks, sqrt or an int k) recomputes block activations in backward."""
    check_names(graph)  # before any module is made: a reserved name is an error with a location
    if device is not None and torch.device(device).type == "meta":
        return lower(graph, build_modules(graph, device="meta"), checkpoint)
    gm = make_empty(graph, device, checkpoint)
    if weights is None:
        if seed is None:
            initplan.apply(gm, initplan.Plan(graph))
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                initplan.apply(gm, initplan.Plan(graph))
    if weights is not None:  # checked by the caller (resdsl.weights.check_state): backends never import it
        gm.load_state_dict(weights, strict=True)
    return gm


def make_empty(graph: Graph, device=None, checkpoint=None) -> torch.fx.GraphModule:
    """The module tree with uninitialised tensors on `device`: modules are made on the meta
    device (nothing drawn, nothing allocated), then given storage; tied tensors are tied again."""
    with torch.device("meta"):
        root = build_modules(graph, device="meta")
    gm = lower(graph, root, checkpoint)
    gm.to_empty(device=device if device is not None else "cpu")
    for n, _ in state_owners(graph):
        if n.op == "buffer":  # a constant tensor: its compile-time value, on the module's device
            with torch.no_grad():
                gm.get_buffer(n.path).copy_(buffer_tensor(n))
        for local, owner in n.attrs.get("_tie", ()):  # to_empty gave each module its own tensor
            setattr(gm.get_submodule(n.path), local, gm.get_parameter(owner))
    return gm


# ------------------------------------------------------------------ standalone file
def to_python(graph: Graph, source: str = "", weights_file: str | None = None, checkpoint=None) -> str:
    """A standalone module (only torch needed) defining `<network>(seed=None)`: one class per block."""
    return _emit_python(graph, source, weights_file=weights_file, checkpoint=checkpoint)
