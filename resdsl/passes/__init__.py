"""The optimizer: passes over (graph, weights), a registry, and the -O pipelines.

    -O0  nothing
    -O1  clean-ups that keep training behaviour: remove-identity, common-subexpression-elimination,
         dead-code-elimination
    -O2  inference folding: remove-identity, remove-dropout, fold-bn, fold-scale, fold-branches,
         fold-scale, common-subexpression-elimination, dead-code-elimination
    -p a,b  exactly these passes, in this order
"""
from __future__ import annotations

from ..diagnostics import ResdslError, did_you_mean
from .base import Context, Pass, PassManager, clone_graph
from .cse import CommonSubexpressionElimination
from .dce import DeadCodeElimination
from .fold_bn import FoldBatchNorm
from .fold_branches import FoldBranches
from .fold_scale import FoldScale
from .remove_dropout import RemoveDropout
from .remove_identity import RemoveIdentity

PASSES: dict[str, type[Pass]] = {p.name: p for p in (
    RemoveIdentity, RemoveDropout, FoldBatchNorm, FoldScale, FoldBranches,
    CommonSubexpressionElimination, DeadCodeElimination)}

ALIASES = {"dce": "dead-code-elimination", "cse": "common-subexpression-elimination"}

PIPELINES = {
    "0": [],
    "1": ["remove-identity", "common-subexpression-elimination", "dead-code-elimination"],
    # fold-scale runs again after fold-branches: a scale after a folded region now follows a conv
    "2": ["remove-identity", "remove-dropout", "fold-bn", "fold-scale", "fold-branches", "fold-scale",
          "common-subexpression-elimination", "dead-code-elimination"],
}


def resolve(level=None, passes=None) -> list[Pass]:
    """Pass instances for `-O level` or `-p a,b` (the explicit list wins)."""
    if passes is not None:
        names = [p.strip() for p in (passes.split(",") if isinstance(passes, str) else passes) if p.strip()]
        out = []
        for nm in names:
            nm2 = ALIASES.get(nm, nm)
            if nm2 not in PASSES:
                hint = did_you_mean(nm, list(PASSES) + list(ALIASES))
                raise ResdslError("usage", f"unknown pass `{nm}`",
                                  help=(hint + " " if hint else "") + "passes: " + ", ".join(PASSES))
            out.append(PASSES[nm2]())
        return out
    lv = "0" if level is None else str(level).lstrip("O")
    if lv not in PIPELINES:
        raise ResdslError("usage", f"unknown optimisation level `{level}`", help="use -O0, -O1 or -O2")
    return [PASSES[nm]() for nm in PIPELINES[lv]]


def run_pipeline(g, weights, level=None, passes=None, verify=False, explain=False, log=None):
    """Run the pipeline on (graph, weights); returns a new (graph, weights). Inputs are not changed."""
    pm = PassManager(resolve(level, passes), verify=verify, explain=explain, log=log)
    return pm.run(g, dict(weights))


__all__ = ["PASSES", "PIPELINES", "Pass", "PassManager", "Context", "clone_graph", "resolve", "run_pipeline"]
