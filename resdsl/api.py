"""The Python API: `load`, `graph`, `build`, `create_model`, `list_models`, `to_python`,
`to_onnx`, `render`, `summary`; pretrained weights: `list_pretrained`, `get_pretrained_cfg`,
`load_pretrained`, `data_config`, `transforms`. See docs/api.md."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ._gc import paused
from .catalog import list_models  # noqa: F401 - part of the API
from .pretrained import (PretrainedCfg, data_config, get_pretrained_cfg, list_pretrained,  # noqa: F401 - the API
                         load_pretrained, transforms)
from .diagnostics import ResdslError
from .elaborate import Program, elaborate, parse_value

# `.res` text on one line starts with a keyword and a space (`import resnet`, `network r = ...`)
# or a comment; `block.res`, `network.res` and `import.res` are file names
_SOURCE_START = re.compile(r"\s*(#|(network|block|import|let|fn|from)\s)")


def _looks_like_source(x: str) -> bool:
    """Text only source can be: several lines, a brace, or a keyword opening a statement."""
    return "\n" in x or "{" in x or bool(_SOURCE_START.match(x))


def resolve(spec):
    """What a FILE argument names: (path or None, source text or None, network or None).

    Text that can only be source (several lines, a brace) is source; then an existing path
    wins (`block.res`, `network.res` are files); then a stdlib network name (`resnet50`) or
    stdlib file (`cifar.res`); then one-line `.res` source (`import resnet`). Anything
    else is an error that says so."""
    if isinstance(spec, Path):
        return spec, None, None
    if not isinstance(spec, str):
        raise ResdslError("usage", f"expected a path, a stdlib network name or .res source, got {type(spec).__name__}")
    if "\n" in spec or "{" in spec:
        return None, spec, None
    if os.path.exists(spec):
        return Path(spec), None, None
    from .catalog import lookup, not_found
    hit = lookup(spec)
    if hit is None and re.fullmatch(r"stdlib/\w+\.res", spec.replace(os.sep, "/")):
        hit = lookup(spec.split("/")[-1].split(os.sep)[-1])  # `stdlib/resnet.res` outside a checkout
    if hit is not None:
        return hit[0], None, hit[1]
    if _looks_like_source(spec):
        return None, spec, None
    if spec.endswith(".res") or os.sep in spec or "/" in spec:
        return Path(spec), None, None  # a missing file: `cannot read` names it
    raise not_found(spec)


def load(path_or_source) -> Program:
    """Parse a `.res` file (a path or a stdlib name) or `.res` text, with its imports."""
    return load_program(path_or_source)[0]


def load_program(spec, origin: str | None = None):
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
        text = Path(path).read_text(encoding="utf-8")
        _check_yaml_depth(text, path)  # before PyYAML, which takes seconds to reach its recursion limit
        data = yaml.safe_load(text)
    except ValueError as e:  # a number over Python's 4,300-digit limit for int(str) (yaml's int("9" * 5000))
        if isinstance(e, UnicodeDecodeError):
            raise ResdslError("encoding", f"config {path} is not UTF-8 text: byte 0x{e.object[e.start]:02x}") from None
        raise ResdslError("config", f"config {path} holds a number too long to read ({e})".replace(
            "; use sys.set_int_max_str_digits() to increase the limit", ""), _long_number_span(path, text),
            help="a parameter is a small number; write it with fewer digits") from None
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
    out = _Config()
    out.spans = _key_spans(text, path)
    for k, v in data.items():
        if not isinstance(k, str):  # `null: 1`, `1: 2`, `true: 3`
            raise ResdslError("config", f"config {path}: the key {k!r} is not a parameter name",
                              out.spans.get(str(k)), help="keys are the network's parameter names, e.g. classes: 10")
        out[str(k)] = _from_yaml(v, program, f"{path}:{k}", out.spans.get(str(k)))
    return out


MAX_CONFIG_DEPTH = 64  # a config holds parameters: lists of lists at most, never hundreds of levels


def _check_yaml_depth(text: str, path) -> None:
    """Refuse a config nested deeper than MAX_CONFIG_DEPTH before YAML reads it: flow brackets
    (`[[[...`), compact sequences on one line (`- - - ...`) and indentation all count."""
    flow, quote = 0, ""
    for ln, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        dashes = len(re.match(r"(?:-[ \t]+)*", stripped).group()) // 2
        for col, ch in enumerate(line, 1):
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "\"'" and flow:
                quote = ch
            elif ch == "#" and (col == 1 or line[col - 2] in " \t"):
                break
            elif ch in "[{":
                flow += 1
            elif ch in "]}":
                flow = max(0, flow - 1)
            if flow + dashes > MAX_CONFIG_DEPTH or indent // 2 > MAX_CONFIG_DEPTH:
                from .diagnostics import SourceFile, Span
                raise ResdslError("limit", f"config {path} nests deeper than {MAX_CONFIG_DEPTH} levels",
                                  Span(SourceFile(str(path), text), ln, col, ln, col + 1),
                                  help="a config maps parameter names to values: numbers, strings, short lists")


class _Config(dict):
    """Overrides from a config file, with where each key is (`spans`: key -> Span)."""
    spans: dict = {}


def _key_spans(text: str, path) -> dict:
    """key -> Span of each top-level key of the YAML mapping (for errors about a key)."""
    import yaml

    from .diagnostics import SourceFile, Span
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, ValueError, RecursionError):
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    src, out = SourceFile(str(path), text), {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode):
            a, b = key.start_mark, key.end_mark
            name = key.value
            if key.tag != "tag:yaml.org,2002:str":  # `null`, `true`, `1`: the key as loaded
                try:
                    name = str(yaml.safe_load(key.value))
                except (yaml.YAMLError, ValueError):
                    pass
            out.setdefault(name, Span(src, a.line + 1, a.column + 1, b.line + 1, b.column + 1))
    return out


def _long_number_span(path, text):
    """Where the first run of over 4,300 digits is in the YAML text (None if none is found)."""
    from .diagnostics import SourceFile, Span
    m = re.search(r"[0-9_]{4301,}", text)
    if m is None:
        return None
    line = text.count("\n", 0, m.start()) + 1
    col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    return Span(SourceFile(str(path), text), line, col, line, col + min(len(m.group()), 40))


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


def _from_yaml(v, program, what, span=None):
    if isinstance(v, str):
        return parse_value(v, program, what)
    if isinstance(v, list):
        return [_from_yaml(x, program, what, span) for x in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # the bounds of .res literals (0x<5000 digits>)
        from .elaborate.budget import check_value
        return check_value(v, span, f"config value {what}")
    if isinstance(v, bool) or v is None:
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
    return load_graph(path_or_source, network, config=config, sets=sets, input_shape=input_shape, **params)[0]


def load_graph(spec, network=None, config=None, sets=(), input_shape=None, origin=None, **params):
    """(Graph, Program): the program lists every file read (imports included)."""
    with paused():  # a large file: see resdsl._gc
        return _graph_unpaused(spec, network, config=config, sets=sets, input_shape=input_shape,
                               origin=origin, **params)


def _graph_unpaused(spec, network=None, config=None, sets=(), input_shape=None, origin=None, **params):
    program, named = load_program(spec, origin)
    if named is not None:
        if network is not None and network != named:
            raise ResdslError("usage", f"`{spec}` names network {named}, but --network asks for {network}",
                              help=f"drop --network, or give the file: {program.root.path}")
        network = named
    overrides = {}
    spans = {}
    if config:
        cfg = load_config(config, program)
        spans = getattr(cfg, "spans", {})
        overrides.update(cfg)
    overrides.update(parse_sets(sets, program))
    overrides.update(params)
    try:
        g = elaborate(program, network, overrides, input_shape=input_shape)
    except ResdslError as e:  # `network n has no parameter k`, k from the config: point at the key
        m = re.match(r"network `[^`]*` has no parameter `(.*)`$", e.message)
        if e.span is None and m and m.group(1) in spans and m.group(1) not in dict(params) \
                and not any(s.split("=", 1)[0].strip() == m.group(1) for s in sets or ()):
            raise ResdslError(e.kind, e.message + f" (a key of config {config})", spans[m.group(1)],
                              help=e.help) from None
        raise
    return g, program


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
    from .backends.torch.heads import attach
    g = graph(path_or_source, network, config=config, sets=sets, **params)
    state = _weights(g, weights, rename)
    if opt is not None or passes is not None:
        g, state = optimize(g, state, seed=seed, level=opt, passes=passes)
    return attach(to_fx(g, seed=seed, device=device, weights=state, checkpoint=checkpoint), g)


def blocks(model):
    """(name, module) of every block of a model made by `build`, outermost first (for fully_shard, hooks)."""
    from .backends.torch.lower import blocks as find
    return find(model)


def create_model(name: str, pretrained=False, num_classes: int | None = None, in_chans: int | None = None,
                 features_only: bool = False, out_indices=None, drop_path_rate: float | None = None, weights=None,
                 *, seed: int | None = None, device=None, rename=(), checkpoint=None, **params):
    """A stdlib network by name, with the keywords and model interface of `timm.create_model`:
    ``resdsl.create_model("resnet50", weights="ckpt.pt", num_classes=10)``.

    `name` may also be a path or source (as for `build`); `params` override the network's
    parameters (`layers=[2, 2, 2, 2]`). See docs/api.md and resdsl/factory.py."""
    from .factory import create_model as create
    return create(name, pretrained, num_classes, in_chans, features_only, out_indices, drop_path_rate, weights,
                  seed=seed, device=device, rename=rename, checkpoint=checkpoint, **params)


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

    def __init__(self, data: bytes, fmt: str, info: dict, name: str, inputs=()):
        self.data, self.format, self.info, self.name = data, fmt, info, name
        self.inputs = list(inputs)  # the files it was drawn from: save() refuses to overwrite them

    def _repr_svg_(self):
        return self.data.decode() if self.format == "svg" else None

    def _repr_png_(self):
        return self.data if self.format == "png" else None

    def __repr__(self):
        return f"<resdsl.Figure {self.name} {self.format}, {len(self.data):,} bytes>"

    def save(self, path) -> None:
        from .outputs import write_output
        write_output(path, self.data, self.inputs)


class Summary:
    """A summary table. `str()` gives the text table; Jupyter shows markdown/HTML."""

    def __init__(self, graph, depth, inputs=()):
        self.graph, self.depth = graph, depth
        self.inputs = list(inputs)  # the files it was made from: save() refuses to overwrite them

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
        return self.text("html")

    def save(self, path, fmt: str = "text") -> None:
        from .outputs import write_output
        write_output(path, self.text(fmt), self.inputs)


def _depth(depth, auto=False):
    """A depth as `--depth` takes it: 0, 1, 2, ..., "all" (or None: every op); "auto" where allowed."""
    if depth is None or depth == "all":
        return None
    if auto and depth == "auto":
        return depth
    if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 0:
        return depth
    raise ResdslError("usage", f"depth={depth!r} is not a depth",
                      help='use 0, 1, 2, ... or "all"' + (' (or "auto": the deepest that fits width=)' if auto else ""))


def render(path_or_source, network: str | None = None, *, format: str = "svg", depth="auto", rankdir=None,
           width=None, height=None, shapes: bool = True, params: bool = False, style: str = "block", config=None,
           sets=(), input_shape=None, **overrides) -> Figure:
    """Draw a network, as `resdsl render` does; returns a :class:`Figure`.

    `depth`: 0, 1, 2, ..., "all" or None (every op), or "auto" (1, or the deepest that fits `width`),
    as `--depth`.
    `width`: points, "single", "double" or a venue ("cvpr": its column, "cvpr-text": its text width);
    `height`: points or a venue (its text height; by default the width's venue's).
    `style`: "block" (block chart) or "circuit" (neural circuit diagram)."""
    depth = _depth(depth, auto=True)
    if style == "circuit":
        from .backends.diagram.circuit import render as draw
    elif style == "block":
        from .backends.diagram.block import render as draw
    else:
        raise ResdslError("usage", f"unknown style {style!r}", help='use style="block" or style="circuit"')
    g, inputs = _graph_and_inputs(path_or_source, network, config=config, sets=sets, input_shape=input_shape,
                                  **overrides)
    data, info = draw(g, format, depth=depth, rankdir=rankdir, width=width, height=height, shapes=shapes, params=params)
    return Figure(data, format, info, g.name, inputs)


def summary(path_or_source, network: str | None = None, *, depth=1, config=None, sets=(), input_shape=None,
            **overrides) -> Summary:
    """Table of output shapes, parameters and multiply-adds, as `resdsl summary`;
    returns a :class:`Summary` (`str()` for text, `.text("latex")` for other formats).
    `depth`: 0, 1, 2, ... or "all" (None), as `--depth`."""
    depth = _depth(depth)
    g, inputs = _graph_and_inputs(path_or_source, network, config=config, sets=sets, input_shape=input_shape,
                                  **overrides)
    return Summary(g, depth, inputs)


def _graph_and_inputs(spec, network, config=None, **kw):
    """(Graph, every file it was read from: the .res file, its imports, the config), for the
    output rule the command line follows (resdsl.outputs: an output is never an input)."""
    g, program = load_graph(spec, network, config=config, **kw)
    return g, sources(program) + ([os.fspath(config)] if config else [])
