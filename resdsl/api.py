"""The Python API: `load`, `graph`, `build`, `create_model`, `list_models`, `to_python`,
`to_onnx`, `render`, `summary`. See docs/api.md."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ._gc import paused
from .catalog import list_models  # noqa: F401 - part of the API
from .diagnostics import ResdslError
from .elaborate import Program, elaborate, parse_value

_SOURCE_START = re.compile(r"\s*(#|network\b|block\b|import\b|let\b|from\b)")


def _looks_like_source(x: str) -> bool:
    return "\n" in x or "{" in x or bool(_SOURCE_START.match(x))


def resolve(spec):
    """What a FILE argument names: (path or None, source text or None, network or None).

    An existing path wins; then a stdlib network name (`resnet50`) or stdlib file
    (`cifar.res`); then `.res` source text. Anything else is an error that says so."""
    if isinstance(spec, Path):
        return spec, None, None
    if not isinstance(spec, str):
        raise ResdslError("usage", f"expected a path, a stdlib network name or .res source, got {type(spec).__name__}")
    if _looks_like_source(spec):
        return None, spec, None
    if os.path.exists(spec):
        return Path(spec), None, None
    from .catalog import lookup, not_found
    hit = lookup(spec)
    if hit is None and re.fullmatch(r"stdlib/\w+\.res", spec.replace(os.sep, "/")):
        hit = lookup(spec.split("/")[-1].split(os.sep)[-1])  # `stdlib/resnet.res` outside a checkout
    if hit is not None:
        return hit[0], None, hit[1]
    if spec.endswith(".res") or os.sep in spec or "/" in spec:
        return Path(spec), None, None  # a missing file: `cannot read` names it
    raise not_found(spec)


def load(path_or_source) -> Program:
    """Parse a `.res` file (a path or a stdlib name) or `.res` text, with its imports."""
    return _load(path_or_source)[0]


def _load(spec, origin: str | None = None):
    """(Program, network named by `spec` or None). `origin`: the name to show for source text."""
    path, text, net = resolve(spec) if origin is None else (None, spec, None)
    if path is not None:
        return Program.from_file(path), net
    return Program.from_source(text, origin or "<string>"), None


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
    return _graph(path_or_source, network, config=config, sets=sets, input_shape=input_shape, **params)[0]


def _graph(spec, network=None, config=None, sets=(), input_shape=None, origin=None, **params):
    """(Graph, Program): the program lists every file read (imports included)."""
    with paused():  # a large file: see resdsl._gc
        return _graph_unpaused(spec, network, config=config, sets=sets, input_shape=input_shape,
                               origin=origin, **params)


def _graph_unpaused(spec, network=None, config=None, sets=(), input_shape=None, origin=None, **params):
    program, named = _load(spec, origin)
    if named is not None:
        if network is not None and network != named:
            raise ResdslError("usage", f"`{spec}` names network {named}, but --network asks for {network}",
                              help=f"drop --network, or give the file: {program.root.path}")
        network = named
    overrides = {}
    if config:
        overrides.update(load_config(config, program))
    overrides.update(parse_sets(sets, program))
    overrides.update(params)
    return elaborate(program, network, overrides, input_shape=input_shape), program


def sources(program) -> list[str]:
    """Every file a program was read from (the root and its imports)."""
    return [m.path for m in program.modules.values() if m.path not in ("<string>", "<stdin>")]


def build(path_or_source, network: str | None = None, seed: int | None = None, *, config=None, sets=(),
          device=None, weights=None, rename=(), opt=None, passes=None, checkpoint=None, **params):
    """`.res` -> a tree of torch modules (the root a torch.fx.GraphModule), one module per block.
    Parameter names follow the `.res` file.

    `weights`: a state_dict, or a path to a checkpoint (torch.save of a state_dict,
    `{'state_dict': ...}`, `{'model': ...}`, `module.`/`_orig_mod.` prefixes, or
    .safetensors); `rename`: `REGEX=REPL` key rewrites applied first. `opt` ("0", "1",
    "2") or `passes` ("a,b") run the optimizer on graph and weights first."""
    from .backends.torch.build import to_fx
    g = graph(path_or_source, network, config=config, sets=sets, **params)
    state = _weights(g, weights, rename)
    if opt is not None or passes is not None:
        g, state = optimize(g, state, seed=seed, level=opt, passes=passes)
    return to_fx(g, seed=seed, device=device, weights=state, checkpoint=checkpoint)


def blocks(model):
    """(name, module) of every block of a model made by `build`, outermost first (for fully_shard, hooks)."""
    from .backends.torch.lower import blocks as find
    return find(model)


def create_model(name: str, weights=None, *, seed: int | None = None, device=None, rename=(), checkpoint=None,
                 **params):
    """A stdlib network by name, in the habit of `timm.create_model`:
    ``resdsl.create_model("resnet50", weights="ckpt.pt", classes=10)``.

    `name` may also be a path or source (as for `build`); `params` override the
    network's parameters (`classes=10`, `layers=[2, 2, 2, 2]`)."""
    return build(name, seed=seed, device=device, weights=weights, rename=rename, checkpoint=checkpoint, **params)


def _weights(g, weights, rename=()):
    from .weights import check_state, load_state, normalize
    if weights is None:
        return None
    if isinstance(weights, (str, Path)):
        return load_state(str(weights), g, rename=rename)
    return check_state(g, normalize(weights, rename, "the weights"))


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


def to_onnx(path_or_source, network: str | None = None, *, seed: int | None = None, weights=None, rename=(),
            opset: int | None = None, input_shape=None, opt=None, passes=None, config=None, sets=(), **params):
    """`.res` -> onnx.ModelProto (inference form, intermediate shapes stored), mirroring `build`."""
    from .backends.onnx.export import to_onnx_model
    g = graph(path_or_source, network, config=config, sets=sets, input_shape=input_shape, **params)
    state = _weights(g, weights, rename)
    if opt is not None or passes is not None:
        g, state = optimize(g, state, seed=seed, level=opt, passes=passes)
    return to_onnx_model(g, seed=seed, weights=state, opset=opset, value_info=True)


def to_python(path_or_source, network: str | None = None, *, config=None, sets=(), checkpoint=None,
              **params) -> str:
    """Source of a standalone .py file that defines `<network>(seed=None)`: a class per block."""
    from .backends.torch.build import to_python as emit
    g = graph(path_or_source, network, config=config, sets=sets, **params)
    path, _, _ = resolve(path_or_source)
    return emit(g, str(path_or_source) if path is not None else "<string>", checkpoint=checkpoint)


class Figure:
    """A rendered diagram. Shows itself in Jupyter (SVG); `.data` holds the bytes,
    `.save(path)` writes them (under the same rules as `resdsl render -o`)."""

    def __init__(self, data: bytes, fmt: str, info: dict, name: str):
        self.data, self.format, self.info, self.name = data, fmt, info, name

    def _repr_svg_(self):
        return self.data.decode() if self.format == "svg" else None

    def _repr_png_(self):
        return self.data if self.format == "png" else None

    def __repr__(self):
        return f"<resdsl.Figure {self.name} {self.format}, {len(self.data):,} bytes>"

    def save(self, path) -> None:
        from .outputs import write_output
        write_output(path, self.data)


class Summary:
    """A summary table. `str()` gives the text table; Jupyter shows markdown/HTML."""

    def __init__(self, graph, depth):
        self.graph, self.depth = graph, depth

    def text(self, fmt: str = "text") -> str:
        from .backends.summary import format_summary
        return format_summary(self.graph, self.depth, fmt)

    def __str__(self):
        return self.text("text")

    def __repr__(self):
        return self.text("text")

    def _repr_markdown_(self):
        return self.text("markdown")

    def _repr_html_(self):
        return _markdown_table_to_html(self.text("markdown"))

    def save(self, path, fmt: str = "text") -> None:
        from .outputs import write_output
        write_output(path, self.text(fmt))


def _markdown_table_to_html(md: str) -> str:
    import html
    rows, out = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            rows.append(cells)
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if rows:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
        out.insert(0, f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(out)


def render(path_or_source, network: str | None = None, *, format: str = "svg", depth="auto", rankdir=None,
           width=None, shapes: bool = True, params: bool = False, style: str = "block", config=None, sets=(),
           input_shape=None, **overrides) -> Figure:
    """Draw a network, as `resdsl render` does; returns a :class:`Figure`.

    `depth`: 0, 1, 2, ..., None (every op) or "auto" (1, or the deepest that fits `width`).
    `style`: "block" (block chart) or "circuit" (neural circuit diagram)."""
    if style == "circuit":
        from .backends.diagram.circuit import render as draw
    elif style == "block":
        from .backends.diagram.block import render as draw
    else:
        raise ResdslError("usage", f"unknown style {style!r}", help='use style="block" or style="circuit"')
    g = graph(path_or_source, network, config=config, sets=sets, input_shape=input_shape, **overrides)
    data, info = draw(g, format, depth=depth, rankdir=rankdir, width=width, shapes=shapes, params=params)
    return Figure(data, format, info, g.name)


def summary(path_or_source, network: str | None = None, *, depth=1, config=None, sets=(), input_shape=None,
            **overrides) -> Summary:
    """Table of output shapes, parameters and multiply-adds, as `resdsl summary`;
    returns a :class:`Summary` (`str()` for text, `.text("latex")` for other formats)."""
    g = graph(path_or_source, network, config=config, sets=sets, input_shape=input_shape, **overrides)
    return Summary(g, depth)
