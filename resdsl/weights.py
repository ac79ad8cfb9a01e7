"""Weights: dotted `.res` names -> tensors (a state_dict), separate from the IR.

The IR describes parameters (shape, init); a weight dict holds their values. Passes
that fold ops rewrite the dict together with the graph, and every backend takes
one, so `--weights ckpt.pt -O2` gives a folded, trained model.
"""
from __future__ import annotations

from .diagnostics import ResdslError


def initial_state(graph, seed: int | None = None) -> dict:
    """The weights `resdsl.build(..., seed=seed)` starts from, as a state_dict."""
    from .backends.torch_fx import to_fx
    return {k: v.detach().clone() for k, v in to_fx(graph, seed=seed).state_dict().items()}


def expected(graph) -> dict:
    """name -> shape of every parameter and buffer the graph needs."""
    return {k: tuple(spec.shape) for k, spec in graph.param_names().items()}


def check_state(graph, state: dict, source: str = "the weights") -> dict:
    """Check names and shapes against the graph; one error lists every problem."""
    want = expected(graph)
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    bad = [f"{k}: file has {list(state[k].shape)}, network needs {list(want[k])}"
           for k in want if k in state and tuple(state[k].shape) != want[k]]
    if missing or unexpected or bad:
        lines = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"{title} ({len(items)}): " + ", ".join(shown))
        raise ResdslError("weights", f"{source} do not fit network `{graph.name}`: " + "; ".join(lines),
                          help="the keys must be the .res parameter names (e.g. layer1.0.conv1.weight); "
                               "save them with torch.save(module.state_dict(), path)")
    return {k: state[k] for k in want}


def load_state(path: str, graph) -> dict:
    """Load a state_dict file (torch.save of a state_dict, or of a module) and check it."""
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ResdslError("io", f"cannot read weights {path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ResdslError("weights", f"cannot load weights from {path}: {e}",
                          help="save them with torch.save(model.state_dict(), path)") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ResdslError("weights", f"{path} does not hold a state_dict (found {type(obj).__name__})",
                          help="save them with torch.save(model.state_dict(), path)")
    return check_state(graph, obj, path)
