"""Weights: dotted `.res` names -> tensors (a state_dict), separate from the IR.

The IR describes parameters (shape, init); a weight dict holds their values. Passes
that fold ops rewrite the dict together with the graph, and every backend takes
one, so `--weights ckpt.pt -O2` gives a folded, trained model.
"""
from __future__ import annotations

from .diagnostics import ResdslError


def initial_state(graph, seed: int | None = None) -> dict:
    """The weights `resdsl.build(..., seed=seed)` starts from, as a state_dict.

    The tensors are the fresh module's own (no copy: the module is dropped), so a large
    network costs its weights once."""
    from .backends.torch.build import to_fx
    return {k: v.detach() for k, v in to_fx(graph, seed=seed).state_dict().items()}


def expected(graph) -> dict:
    """name -> shape of every parameter and buffer the graph needs."""
    return {k: tuple(spec.shape) for k, spec in graph.param_names().items()}


_HOW = "save a state_dict: torch.save(model.state_dict(), path), or safetensors.torch.save_file"
_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile


def normalize(obj, rename=(), source: str = "the weights") -> dict:
    """A state_dict from what training loops save: the dict itself, `{'state_dict': ...}`,
    `{'model': ...}`, keys prefixed `module.` or `_orig_mod.`; then `rename` rules
    (`REGEX=REPL`, applied in order to every key; see resdsl/rename.py)."""
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if hasattr(obj, "state_dict") and not isinstance(obj, dict):
        raise ResdslError("weights", f"{source} hold a whole {type(obj).__name__} module, not a state_dict",
                          help=_HOW)
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ResdslError("weights", f"{source} do not hold a state_dict (found {type(obj).__name__})", help=_HOW)
    state = dict(obj)
    changed = True
    while changed and state:  # `module._orig_mod.` nests: strip until no key has a prefix
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in state):
                state = {k[len(p):]: v for k, v in state.items()}
                changed = True
    if rename:
        from .rename import rename_keys  # a child process with a time limit; two keys onto one name: error
        keys = list(state)
        state = dict(zip(rename_keys(keys, rename), state.values()))
    return state


def check_state(graph, state: dict, source: str = "the weights", want: dict | None = None) -> dict:
    """Check names and shapes against the graph (or `want`: name -> shape); one error lists
    every problem, with a did-you-mean for each missing key that resembles an unexpected one."""
    import difflib
    want = expected(graph) if want is None else want
    for k in want:
        if k in state:
            _check_tensor(k, state[k], source)
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    bad = [f"{k}: file has {list(state[k].shape)}, network needs {list(want[k])}"
           for k in want if k in state and tuple(getattr(state[k], "shape", ())) != want[k]]
    if missing or unexpected or bad:
        lines = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"{title} ({len(items)}): " + ", ".join(shown))
        hints = []
        for k in missing[:5]:
            close = difflib.get_close_matches(k, unexpected, n=1, cutoff=0.6)
            if close:
                hints.append(f"`{close[0]}` for `{k}`?")
        help_ = "the keys must be the .res parameter names (e.g. layer1.0.conv1.weight); " + _HOW
        if hints:
            help_ = "did you mean " + ", ".join(hints) + " Map keys with --rename 'REGEX=REPL' (rename= in the API)"
        raise ResdslError("weights", f"{source} do not fit network `{graph.name}`: " + "; ".join(lines), help=help_)
    return {k: state[k] for k in want}


def _check_tensor(key: str, t, source: str) -> None:
    """A tensor resdsl can load as it is: dense, real, with data. Anything else would end in a
    traceback when it is copied, or (complex) lose its imaginary part without a word."""
    import torch
    fix = None
    if not isinstance(t, torch.Tensor):
        what, fix = f"a {type(t).__name__}, not a tensor", "store a torch.Tensor under each key"
    elif t.is_nested:
        what, fix = "a nested tensor", "store one dense tensor per key"
    elif t.is_quantized:
        what, fix = f"quantized ({str(t.dtype).replace('torch.', '')})",             "store the float weights: t.dequantize() (resdsl builds float networks)"
    elif t.layout != torch.strided:
        what, fix = f"a sparse tensor ({str(t.layout).replace('torch.', '')})", "store it dense: t.to_dense()"
    elif t.device.type == "meta":
        what, fix = "a meta tensor, which has a shape but no values (the model was saved before its weights "                     "were materialised)", "save the state_dict after the weights are loaded or initialised"
    elif t.is_complex():
        what, fix = f"complex ({str(t.dtype).replace('torch.', '')}); the network's weights are real and the "                     "imaginary part would be dropped", "store the real weights (t.real if that is what you mean)"
    if fix is not None:
        raise ResdslError("weights", f"{source}: `{key}` is {what}", help=fix)


def read_checkpoint(path: str):
    """The object stored in a checkpoint file: safetensors, or torch.save with weights
    only (a pickled module is refused: loading it would run its code)."""
    import torch
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise ResdslError("io", f"cannot read weights {path}: {e.strerror}") from None
    if not head:
        raise ResdslError("weights", f"{path} is empty (0 bytes): not a checkpoint",
                          help="the save was interrupted or the file was truncated; save it again. " + _HOW)
    if path.endswith(".safetensors") or _is_safetensors(head):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ResdslError("weights", f"cannot load safetensors {path}: {e}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        text = str(e)
        if "Unsupported global" in text or "GLOBAL" in text or (head[:1] == b"\x80" and "Unsupported" in text):
            raise ResdslError("weights", f"{path} holds pickled Python objects (a whole module?), "
                                         "which resdsl does not load: unpickling runs code", help=_HOW) from None
        if "Unsupported operand" in text or isinstance(e, (KeyError, EOFError)) or not text.strip():
            why = "the file is truncated or is not a checkpoint (neither torch.save nor safetensors)"
        else:
            why = text.strip().splitlines()[0]
        raise ResdslError("weights", f"cannot load weights from {path}: {why}", help=_HOW) from None


def _is_safetensors(head: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object
    return len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 32


def load_state(path: str, graph, rename=()) -> dict:
    """Load a checkpoint file in any form :func:`normalize` knows, and check it."""
    return check_state(graph, normalize(read_checkpoint(path), rename, path), path)
