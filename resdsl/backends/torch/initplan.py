"""How a network's tensors get their initial values: one plan for ``build()`` and the generated file.

Modules are created without drawing random numbers (on the meta device) and then
initialised in one walk over ``model.modules()``, as torchvision's init loop
(``for m in self.modules(): if isinstance(m, nn.Conv2d): nn.init.kaiming_normal_(...)``):

1. each leaf module gets the rule of its torch class (the most common action among the
   modules of that class): ``reset_parameters()`` (torch's default) and/or explicit
   ``nn.init`` calls; a block's own parameters (``param``) get their specs;
2. then, in the same module order, every leaf whose action differs from its class rule
   gets its own action (written in the file as a statement on its path).

``build()`` runs :func:`apply` over its module tree and the file runs the same plan, so
``net(seed=s)`` and ``resdsl.build(..., seed=s)`` draw the same random numbers in the same
order. Nothing is drawn at construction, so no work is wasted on values overwritten later.
"""
from __future__ import annotations

import torch

from ...ir.graph import Graph
from . import ops as TF
from .runtime import init_tensor


def action(rec, node) -> tuple:
    """(reset first, ((param, spec), ...)) for a leaf module made from recipe `rec` at `node`."""
    cls, _, _, inits = rec
    if node.params and all(s.kind == "tied" for s in node.params.values()):
        return False, ()  # every tensor is another op's (`tie=`): the owner's init stands
    explicit = tuple((p, s) for p, s in inits if s[0] != "default")
    reset = set(node.params) != {p for p, _ in explicit} or not node.params
    if cls in ("torch.nn.Dropout", "DropPath"):
        reset = False
    return reset, explicit


class Plan:
    """The class rules and the overrides of one graph."""

    def __init__(self, graph: Graph):
        self.actions = {}  # leaf path -> (class, action)
        self.bare = {}  # parameter path -> init spec
        self.params = {}  # leaf path -> its parameter names
        count = {}
        for n, rec in TF.state_owners(graph):
            if n.op == "buffer":  # a constant: its value is set where it is made, never drawn
                continue
            if rec is None:
                spec = n.params[""]
                self.bare[n.path] = spec.init or ("zeros",)
                continue
            act = action(rec, n)
            self.actions[n.path] = (rec[0], act)
            self.params[n.path] = set(n.params)
            per = count.setdefault(rec[0], {})
            per[act] = per.get(act, 0) + 1
        # a class's rule: its most common action, joined with the actions that agree with it on
        # every parameter they share (a conv with a bias and one without: `if m.bias is not None`)
        self.rules = {}
        for cls, per in count.items():
            reset, specs = max(per, key=lambda a: per[a])
            specs = dict(specs)
            for r, sp in sorted(per, key=lambda a: -per[a]):
                if r == reset and all(specs.get(p, s) == s for p, s in sp):
                    for p, s in sp:
                        specs.setdefault(p, s)
            self.rules[cls] = (reset, tuple(specs.items()))
        self.overrides = [p for p, (cls, act) in self.actions.items() if not self.covers(p, cls, act)]

    def covers(self, path, cls, act) -> bool:
        reset, specs = self.rules[cls]
        have = self.params[path]
        return act[0] == reset and dict(act[1]) == {p: s for p, s in specs if p in have}

    def optional(self, cls) -> set:
        """Parameters of the rule of `cls` that some of its modules lack (a bias)."""
        paths = [p for p, (c, _) in self.actions.items() if c == cls and p not in self.overrides]
        return {p for p, _ in self.rules[cls][1] if not all(p in self.params[q] for q in paths)}


def apply(model: torch.nn.Module, plan: Plan) -> None:
    """Initialise `model` (built from the plan's graph) in place, as the generated file does."""
    classes = {}
    for path, (cls, _) in plan.actions.items():
        classes.setdefault(TF.CLASSES[cls], cls)
    with torch.no_grad():
        for name, m in model.named_modules():
            cls = classes.get(type(m))
            if cls is not None and name in plan.actions:
                _run(m, plan.rules[cls])
            pre = name + "." if name else ""
            for pname, p in m.named_parameters(recurse=False):
                spec = plan.bare.get(pre + pname)
                if spec is not None:
                    init_tensor(p, spec)
        for path in plan.overrides:
            _run(model.get_submodule(path), plan.actions[path][1])


def _run(m, act) -> None:
    reset, explicit = act
    if reset and hasattr(m, "reset_parameters"):
        m.reset_parameters()
    for p, spec in explicit:
        t = getattr(m, p, None)
        if t is not None:
            init_tensor(t, spec)
