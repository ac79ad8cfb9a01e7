"""The Python API: `load`, `graph`, `build`, `to_python`."""
from __future__ import annotations

import os
from pathlib import Path

from .diagnostics import ResdslError
from .elaborate import Program, elaborate, parse_value


def _is_path(x) -> bool:
    if isinstance(x, Path):
        return True
    return isinstance(x, str) and "\n" not in x and "{" not in x and (x.endswith(".res") or os.path.exists(x))


def load(path_or_source) -> Program:
    """Parse a `.res` file (a path) or `.res` text, with its imports."""
    if _is_path(path_or_source):
        return Program.from_file(path_or_source)
    return Program.from_source(str(path_or_source), "<string>")


def load_config(path, program: Program) -> dict:
    """Parameter overrides from a YAML file: a mapping of parameter -> value.

    Strings in the YAML are read as `.res` expressions (so `block: Bottleneck` names a
    block); numbers, booleans and lists are taken as they are."""
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ResdslError("io", f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ResdslError("encoding", f"config {path} is not UTF-8 text: byte 0x{e.object[e.start]:02x}") from None
    except yaml.YAMLError as e:
        raise ResdslError("config", f"{path} is not valid YAML: {e}") from None
    except RecursionError:
        raise ResdslError("limit", f"config {path} nests too deeply") from None
    _check_config_size(data, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ResdslError("config", f"{path} must hold a mapping of parameter: value",
                          help="e.g.\n       layers: [3, 4, 6, 3]\n       classes: 10")
    out = {}
    for k, v in data.items():
        out[str(k)] = _from_yaml(v, program, f"{path}:{k}")
    return out


def _check_config_size(data, path):
    """Refuse a YAML document whose aliases expand it past the `.res` bounds ("billion laughs"):
    count its items as a walk would see them, shared ones each time, and stop at the bound."""
    from .elaborate.budget import MAX_SEQ
    seen, stack = 0, [(data, 0)]
    while stack:
        v, depth = stack.pop()
        seen += 1
        if seen > MAX_SEQ or depth > 100:
            raise ResdslError("limit", f"config {path} is too large or nests too deeply once its aliases "
                                       f"are expanded (limit {MAX_SEQ:,} items, 100 levels)")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for kv in v.items() for x in kv)
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def _from_yaml(v, program, what):
    if isinstance(v, str):
        return parse_value(v, program, what)
    if isinstance(v, list):
        return [_from_yaml(x, program, what) for x in v]
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    raise ResdslError("config", f"{what}: unsupported value {v!r}")


def parse_sets(items, program: Program) -> dict:
    """`--set key=value` pairs; values are `.res` expressions (`[2, 2]`, `0.1`, `Bottleneck`)."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ResdslError("usage", f"--set {item!r} is not key=value", help="e.g. --set classes=10")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v.strip(), program, f"--set {k.strip()}")
    return out


def graph(path_or_source, network=None, config=None, sets=(), input_shape=None, **params):
    """Parse and elaborate; returns the IR :class:`Graph` (shapes checked)."""
    program = load(path_or_source)
    overrides = {}
    if config:
        overrides.update(load_config(config, program))
    overrides.update(parse_sets(sets, program))
    overrides.update(params)
    g = elaborate(program, network, overrides)
    if input_shape is not None:
        g = elaborate(load(path_or_source), network, overrides, shape_overrides=_shape_map(g, input_shape))
    return g


def _shape_map(g, input_shape) -> dict:
    dims = list(input_shape)
    shp = g.inputs[0].shape
    if len(dims) != len(shp):
        raise ResdslError("usage", f"--input-shape has {len(dims)} axes, the input {g.inputs[0].name} has {len(shp)}")
    out = {}
    for ax, d in zip(shp, dims):
        if isinstance(ax.size, int):
            if ax.size != d:
                raise ResdslError("usage", f"--input-shape gives {d} for an axis fixed at {ax.size}")
        elif ax.name:
            out[ax.name] = d
    return out


def build(path_or_source, network: str | None = None, seed: int | None = None, *, config=None, sets=(),
          device=None, weights=None, opt=None, passes=None, **params):
    """`.res` -> torch.fx.GraphModule. Parameter names follow the `.res` file.

    `weights`: a state_dict (or a path to one) to load. `opt` ("0", "1", "2") or
    `passes` ("a,b") run the optimizer on graph and weights first."""
    from .backends.torch_fx import to_fx
    g = graph(path_or_source, network, config=config, sets=sets, **params)
    state = _weights(g, weights)
    if opt is not None or passes is not None:
        g, state = optimize(g, state, seed=seed, level=opt, passes=passes)
    return to_fx(g, seed=seed, device=device, weights=state)


def _weights(g, weights):
    from .weights import check_state, load_state
    if weights is None:
        return None
    if isinstance(weights, (str, Path)):
        return load_state(str(weights), g)
    return check_state(g, dict(weights))


def optimize(g, weights=None, *, seed=None, level=None, passes=None, verify=False, explain=False, log=None):
    """Run an optimizer pipeline on (graph, weights); returns the new pair.

    Without weights, the initial weights for `seed` are used, so the result computes
    the same function as `build(..., seed=seed)` without optimisation."""
    try:
        from .passes import run_pipeline
    except ImportError:
        raise ResdslError("usage", "this build of resdsl has no optimizer (-O / -p)") from None
    if weights is None:
        from .weights import initial_state
        weights = initial_state(g, seed)
    return run_pipeline(g, weights, level=level, passes=passes, verify=verify, explain=explain, log=log)


def to_onnx(path_or_source, network: str | None = None, *, seed: int | None = None, weights=None,
            opset: int | None = None, input_shape=None, opt=None, passes=None, config=None, sets=(), **params):
    """`.res` -> onnx.ModelProto (inference form), mirroring `build`."""
    from .backends.onnx import to_onnx_model
    g = graph(path_or_source, network, config=config, sets=sets, input_shape=input_shape, **params)
    state = _weights(g, weights)
    if opt is not None or passes is not None:
        g, state = optimize(g, state, seed=seed, level=opt, passes=passes)
    return to_onnx_model(g, seed=seed, weights=state, opset=opset)


def to_python(path_or_source, network: str | None = None, *, config=None, sets=(), **params) -> str:
    """Source of a standalone .py file that defines `<network>(seed=None)`."""
    from .backends.torch_fx import to_python as emit
    g = graph(path_or_source, network, config=config, sets=sets, **params)
    src = str(path_or_source) if _is_path(path_or_source) else "<string>"
    return emit(g, src)
