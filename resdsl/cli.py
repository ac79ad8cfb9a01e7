"""`resdsl` command line: check, compile, ir, render, summary, fmt, preview, list, weights, completion, lsp.

Bad input never shows a traceback: a ResdslError is printed as ``error[kind]: message``
with ``--> file:line:col``, the source line, a caret and ``help:``. Exit status: 0 ok,
1 an error in the input, 2 a usage error (bad options, an output that would overwrite
an input).

Adding to the command line: each subcommand is one ``_add_<name>(sub)`` function that
builds its parser (description, examples, one help line per option) and sets
``func=cmd_<name>``; list the adder in :data:`SUBCOMMANDS`. A new option on an existing
subcommand is one ``add_argument`` in its adder plus its use in ``cmd_<name>``. Heavy
modules (torch, onnx, graphviz) are imported inside the ``cmd_`` functions only, so
``resdsl check`` starts fast.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from ._version import __version__
from .diagnostics import ResdslError

EXIT_INPUT, EXIT_USAGE = 1, 2


# ------------------------------------------------------------------ terminal
def color_enabled(stream) -> bool:
    """FORCE_COLOR (non-empty, not 0) forces colour; NO_COLOR (non-empty) turns it off;
    otherwise colour only on a terminal."""
    force = os.environ.get("FORCE_COLOR", "")
    if force and force != "0":
        return True
    if os.environ.get("NO_COLOR", ""):
        return False
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"


def _paint(text: str, stream) -> str:
    if not color_enabled(stream):
        return text
    import re
    text = re.sub(r"^(error\[[^\]]*\])", "\x1b[1;31m\\1\x1b[0m", text, flags=re.M)
    text = re.sub(r"^(\s*= help:)", "\x1b[1;36m\\1\x1b[0m", text, flags=re.M)
    text = re.sub(r"^(\s*= note:)", "\x1b[1;34m\\1\x1b[0m", text, flags=re.M)
    text = re.sub(r"^(\s*-->)", "\x1b[1;34m\\1\x1b[0m", text, flags=re.M)
    return text


def status(text: str) -> None:
    """A status line (`wrote ...`): always on stderr, so stdout carries only data."""
    print(text.replace("wrote -:", "wrote to standard output:"), file=sys.stderr)


@contextlib.contextmanager
def progress(label: str, after: float = 2.0):
    """On a terminal, work that lasts over `after` seconds shows `label ... Ns` on stderr."""
    if not sys.stderr.isatty():
        yield
        return
    import threading
    import time
    done = threading.Event()
    t0 = time.monotonic()

    def tick():
        if done.wait(after):
            return
        while not done.wait(0.5):
            sys.stderr.write(f"\r{label} ... {time.monotonic() - t0:.0f} s")
            sys.stderr.flush()
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()


# ------------------------------------------------------------------ arguments
def _shape(text: str):
    try:
        dims = [int(x) for x in text.replace("x", ",").split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of ints like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return dims


def _depth(text: str):
    if text == "all":
        return "all"
    try:
        d = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a depth: use 0, 1, 2, ... or all") from None
    if d < 0:
        raise argparse.ArgumentTypeError("depth must be 0 or more (or all)")
    return d


FILE_HELP = ("a .res file, a stdlib network name (resnet50; `resdsl list` shows them), "
             "a stdlib file (cifar.res), or - for standard input")


def _source_args(p, several=False):
    if several:
        p.add_argument("files", nargs="+", metavar="FILE", help=FILE_HELP + "; several may be given")
    else:
        p.add_argument("file", metavar="FILE", help=FILE_HELP)
    p.add_argument("--network", "-n", metavar="NAME",
                   help="network to use (needed when the file defines several; the error lists them)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a network parameter (a .res expression), e.g. --set classes=10; repeatable")
    p.add_argument("--config", metavar="YAML", help="YAML file of parameter overrides (parameter: value)")
    p.add_argument("--input-shape", type=_shape, default=None, metavar="N,C,H,W",
                   help="fix symbolic input axes, e.g. 1,3,224,224 (shapes and MACs become numbers)")


def _scan(module: str, pattern: str) -> list:
    """Values from a module's source without importing it (the passes and the ONNX backend
    import torch / numpy, too slow for a parser every command builds)."""
    import re
    from pathlib import Path
    here = Path(__file__).resolve().parent
    files = sorted((here / module).glob("*.py")) if (here / module).is_dir() else [here / f"{module}.py"]
    out = []
    for f in files:
        try:
            out += re.findall(pattern, f.read_text(encoding="utf-8"), re.M)
        except OSError:
            pass
    return out


def _opt_args(p):
    passes = sorted(n for n in _scan("passes", r'^    name = "([a-z-]+)"$') if n)
    p.add_argument("-O", dest="opt", default=None, choices=["0", "1", "2"],
                   help="optimisation level: 0 none, 1 cleanups, 2 also folds BatchNorm and parallel branches")
    p.add_argument("-p", "--passes", default=None, metavar="A,B",
                   help="explicit comma-separated pass list; passes: " + ", ".join(passes))
    p.add_argument("--verify", action="store_true", help="verify the IR after every pass")
    p.add_argument("--explain", action="store_true", help="print each rewrite the passes make (stderr)")


def _weights_args(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weights", metavar="CKPT",
                   help="checkpoint to load: a state_dict saved by torch.save (also {'state_dict': ...}, "
                        "{'model': ...}, keys prefixed module. or _orig_mod.) or a .safetensors file")
    g.add_argument("--pretrained", nargs="?", const=True, default=None, metavar="TAG",
                   help="load the network's published weights (downloaded once, then from the torch.hub or "
                        "Hugging Face cache): the default tag, or --pretrained=TAG; `resdsl weights NAME` lists "
                        "the tags")
    p.add_argument("--rename", action="append", default=[], metavar="REGEX=REPL",
                   help="rewrite checkpoint keys before loading (re.sub), e.g. --rename '^backbone\\.='; "
                        "repeatable, applied in order")


def _parser(sub, name, help, description, examples):
    return sub.add_parser(name, help=help, description=description,
                          epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


# ------------------------------------------------------------------ inputs
def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ResdslError("io", f"standard input is not UTF-8 text (byte {e.start})") from None


def load_graph(args, file=None, network=None):
    """(Graph, [every input file]) for the FILE of `args`; the list feeds the output checks."""
    from .api import load_graph as elaborate, sources
    file = args.file if file is None else file
    origin = None
    if isinstance(file, _Stdin):
        origin = "<stdin>"
    elif file == "-":
        file, origin = _read_stdin(), "<stdin>"
    g, program = elaborate(file, network or args.network, config=args.config, sets=args.sets,
                           input_shape=getattr(args, "input_shape", None), origin=origin)
    if getattr(args, "pretrained", None):  # the checkpoint may need parameters (ViT's 384-pixel weights)
        from .pretrained import get_pretrained_cfg
        args.pretrained_cfg = cfg = get_pretrained_cfg(g.name, args.pretrained)
        if cfg.params:
            sets = [f"{k}={v}" for k, v in cfg.params] + list(args.sets)  # --set wins
            g, program = elaborate(file, network or args.network, config=args.config, sets=sets,
                                   input_shape=getattr(args, "input_shape", None), origin=origin)
    inputs = sources(program) + [x for x in (args.config, getattr(args, "weights", None)) if x]
    return g, inputs


def _optimize(g, args, weights=None):
    """Run -O / -p on (graph, weights) when asked; returns (graph, weights).

    `weights` None and no optimisation asked: (g, None), the backend initialises."""
    if getattr(args, "opt", None) is None and getattr(args, "passes", None) is None:
        return g, weights
    from .api import optimize
    return optimize(g, weights, seed=getattr(args, "seed", None), level=args.opt, passes=args.passes,
                    verify=args.verify, explain=args.explain, log=sys.stderr)


def _load_weights(args, g):
    if getattr(args, "pretrained", None):
        from .pretrained import fit_state, load_pretrained
        cfg = args.pretrained_cfg
        state, _ = load_pretrained(cfg.network, cfg.tag)
        return fit_state(g, state, cfg)
    if not getattr(args, "weights", None):
        return None
    from .weights import load_state
    return load_state(args.weights, g, rename=args.rename)


# ------------------------------------------------------------------ check
def _add_check(sub):
    p = _parser(sub, "check", "parse, elaborate and shape-check; one line per network",
                "Parse, elaborate and shape-check networks; print their interface, parameter count and op "
                "count, one line per network: every network of a file unless --network picks one (a generic "
                "one, whose parameters have no default, is listed unless --set binds them). Several files "
                "may be given; the exit status is 1 if any fails.",
                ["resdsl check examples/cifar_resnet.res",
                 "resdsl check resnet50 --set classes=10",
                 "resdsl check a.res b.res --input-shape 1,3,64,64",
                 "resdsl check stdlib/resnet.res",
                 "cat net.res | resdsl check -"])
    _source_args(p, several=True)
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    from .api import resolve
    rc = 0
    for f in args.files:
        try:
            if f == "-":  # read once: every network of it is checked from the same text
                f = _Stdin(_read_stdin())
            # with several FILEs, one naming a stdlib network checks that network whatever --network says
            named = resolve(f)[2] if len(args.files) > 1 and not isinstance(f, _Stdin) else None
            targets = [(named or args.network, None)] if (named or args.network) else _networks(args, f)
        except ResdslError as e:
            _report(e)
            rc = max(rc, EXIT_USAGE if e.kind == "usage" else EXIT_INPUT)
            continue
        for name, generic in targets:  # one line per network: all the file defines unless one is named
            try:
                print(generic or _check_line(args, f, name))
            except ResdslError as e:
                _report(e)
                rc = max(rc, EXIT_USAGE if e.kind == "usage" else EXIT_INPUT)
    return rc


class _Stdin(str):
    """The text of standard input, read once (a FILE of `-`)."""


def _networks(args, f) -> list:
    """[(network, None or the line of a generic network)] that `check` reports for FILE `f`
    without --network: the network a stdlib name names, the only network of a file, else
    every network the file defines, in file order. A generic network (parameters without
    a default that --set / --config leave unset, e.g. `ResNet(block, layers)`) among several
    is listed, not elaborated: its variants are the networks checked."""
    from .api import load_program, load_config
    program, named = load_program(f, "<stdin>" if isinstance(f, _Stdin) else None)
    if named is not None or len(program.networks) < 2:
        return [(named, None)]
    given = {item.split("=", 1)[0].strip() for item in args.sets}
    if args.config:
        given |= set(load_config(args.config, program))
    out = []
    for name, target in program.networks.items():
        free = [p.name for p in getattr(getattr(target, "defn", None), "params", ()) if p.default is None
                and p.name not in given]
        out.append((name, f"{name}({', '.join(free)}): generic, not checked alone (set {', '.join(free)} "
                          f"with --set, or check a network that binds them)" if free else None))
    return out


def _check_line(args, f, name) -> str:
    """`name: (x: [N, 3, H, W]) -> [N, 10]; 272,474 parameters, 73 ops`."""
    from .ir.shapes import shape_str
    g, _ = load_graph(args, f, name)
    outs = ", ".join(shape_str(v.shape) + (" (training only)" if i in g.train_only else "")
                     for i, v in enumerate(g.outputs))
    ins = ", ".join(f"{v.name}: {shape_str(v.shape)}" for v in g.inputs)
    return f"{g.name}: ({ins}) -> {outs}; {g.num_params():,} parameters, {len(g.nodes)} ops"


# ------------------------------------------------------------------ compile
def _add_compile(sub):
    opsets = dict(_scan("backends/onnx", r"^OPSET_(DEFAULT|MIN|MAX) = (\d+)$"))
    p = _parser(sub, "compile", "compile a network to a PyTorch file or an ONNX model",
                "Compile a network: --target torch writes a standalone .py that needs only torch and defines "
                "<network>(seed=None); --target onnx writes an inference-form ONNX model (BatchNorm folded, "
                "intermediate shapes stored; weights over 2 GB go to a <output>.data side file).",
                ["resdsl compile resnet50 --target torch -o resnet50.py",
                 "resdsl compile resnet50 -t onnx -o resnet50.onnx --weights ckpt.pt -O2",
                 "resdsl compile vit_b_16 -t onnx -o vit.onnx --weights vit.safetensors --rename '^model\\.='",
                 "resdsl compile resnet50 -t onnx -o resnet50.onnx --pretrained",
                 "resdsl compile vit_b_16 -t onnx -o vit384.onnx --pretrained=IMAGENET1K_SWAG_E2E_V1",
                 "resdsl compile resnet1202_cifar -t torch --checkpoint sqrt -o r1202.py",
                 "resdsl compile net.res -t torch -o - | less"])
    _source_args(p)
    p.add_argument("--target", "-t", choices=["torch", "onnx"], default="torch", help="output kind (default torch)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (.py for torch, .onnx for onnx); - writes to standard output")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the initial weights (default 0: the same bytes on every run)")
    _weights_args(p)
    p.add_argument("--opset", type=int, default=None,
                   help=f"ONNX opset, {opsets.get('MIN')} to {opsets.get('MAX')} (default {opsets.get('DEFAULT')}; onnx target)")
    p.add_argument("--external-data", action="store_true",
                   help="store the weights in <output>.data whatever their size (onnx target)")
    p.add_argument("--checkpoint", default="none", metavar="none|blocks|sqrt|K",
                   help="torch target: activation checkpointing of blocks: none (default), blocks (each block), "
                        "sqrt (about sqrt(n) segments per chain, Chen et al. 2016) or K (segments of K blocks)")
    _opt_args(p)
    p.set_defaults(func=cmd_compile)


def cmd_compile(args) -> int:
    from .outputs import check_output
    # the input and the output are checked before torch or onnx is imported (seconds): a
    # missing file or a bad -o is said at once
    g, inputs = load_graph(args)
    check_output(args.output, inputs)
    if args.target == "torch":
        return _compile_torch(args, g, inputs)
    from .backends.onnx.export import check_opset
    check_opset(args.opset)
    weights = _load_weights(args, g)
    g, weights = _optimize(g, args, weights)
    with progress("exporting ONNX"):
        sizes, model = _write_onnx(g, args, weights, inputs)
    extra = "".join(f" + {os.path.basename(p)}" for p in sizes if p != args.output)
    status(f"wrote {args.output}{extra}: {g.name}, opset {model.opset_import[0].version}, "
           f"{len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers, "
           f"{sum(sizes.values()) / 1e6:.1f} MB")
    return 0


EXTERNAL_DATA_THRESHOLD = 2 ** 31 - 2 ** 26  # an ONNX file is one protobuf message, at most 2 GiB


def _write_onnx(g, args, weights, inputs):
    """Lower and write; above the threshold (or with --external-data) the weights stream
    to `<output>.data` as they are lowered. Returns ({path: bytes written}, model)."""
    from .backends.onnx.export import to_onnx_model, weights_nbytes
    from .outputs import Staged, side_folder, write_output, write_outputs
    if weights is None:
        from .weights import initial_state
        weights = initial_state(g, args.seed)
    doc = f"network {g.name} from {os.path.basename(str(args.file))}, generated by resdsl (inference form)"
    kw = dict(seed=args.seed, weights=weights, opset=args.opset, doc=doc, value_info=True)
    if not (args.external_data or weights_nbytes(weights) > EXTERNAL_DATA_THRESHOLD):
        model = to_onnx_model(g, **kw)
        data = model.SerializeToString(deterministic=True)
        write_output(args.output, data, inputs)
        return {args.output: len(data)}, model
    if args.output == "-":
        raise ResdslError("usage", "the weights go to a side file, so the model cannot go to standard output",
                          help="give a file name with -o")
    data_path = args.output + ".data"
    with side_folder(data_path, inputs + [args.output], commit=False) as folder:
        model = to_onnx_model(g, external=(folder, os.path.basename(data_path)), **kw)
        del weights, kw
        staged = os.path.join(folder, os.path.basename(data_path))
        open(staged, "ab").close()  # no tensor large enough to go outside: an empty side file, not a stale one
        size = os.path.getsize(staged)
        data = model.SerializeToString(deterministic=True)
        write_outputs([(data_path, Staged(staged)), (args.output, data)], inputs)  # both old or both new
    return {args.output: len(data), data_path: size}, model


def _compile_torch(args, g, inputs) -> int:
    from .backends.torch.build import to_python
    from .outputs import check_output, write_output, write_outputs
    optimizing = args.opt not in (None, "0") or args.passes is not None
    src = str(args.file) if args.file != "-" else "<stdin>"
    if (args.weights or args.pretrained) and not optimizing:
        flag = "--weights" if args.weights else "--pretrained"
        raise ResdslError("usage", f"{flag} is for the onnx target; the torch file builds fresh weights",
                          help="load a checkpoint with module.load_state_dict(torch.load(...)), "
                               "or add -O2 to write folded weights beside the .py")
    if optimizing:  # the optimized function needs the optimized weights: <out>.pt beside the .py
        if args.output == "-":
            raise ResdslError("usage", "-O2 writes weights beside the .py, so the .py cannot go to standard output",
                              help="give a file name with -o")
        pt = os.path.splitext(args.output)[0] + ".pt"
        check_output(pt, inputs + [args.output])
        g, w = _optimize(g, args, _load_weights(args, g))
        py = to_python(g, src, weights_file=os.path.basename(pt), checkpoint=args.checkpoint)
        write_outputs([(pt, _weights_bytes(w)), (args.output, py)], inputs)  # both old or both new
        status(f"wrote {pt}: {g.name} weights after optimisation")
    else:
        from .backends.torch.build import to_python
        write_output(args.output, to_python(g, src, checkpoint=args.checkpoint), inputs)
    status(f"wrote {args.output}: {g.name}() -> torch.nn.Module, {g.num_params():,} parameters")
    return 0


def _weights_bytes(weights) -> bytes:
    """torch.save of the state_dict; same weights -> same bytes."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save({k: v.detach().contiguous() for k, v in weights.items()}, buf)
    return buf.getvalue()


# ------------------------------------------------------------------ ir
def _add_ir(sub):
    p = _parser(sub, "ir", "print the IR as stable text",
                "Print the elaborated IR (a flat list of primitive ops with shapes and scopes) as stable text, "
                "optionally after the optimizer.",
                ["resdsl ir examples/cifar_resnet.res", "resdsl ir resnet18 -O2 --explain",
                 "resdsl ir resnet18 -o resnet18.ir"])
    _source_args(p)
    p.add_argument("-o", "--output", default="-", metavar="OUT", help="write to a file (default: standard output)")
    _opt_args(p)
    p.set_defaults(func=cmd_ir)


def cmd_ir(args) -> int:
    from .ir.printer import print_graph
    from .outputs import check_output, write_output
    g, inputs = load_graph(args)
    check_output(args.output, inputs)
    g, _ = _optimize(g, args)
    write_output(args.output, print_graph(g), inputs)
    if args.output != "-":
        status(f"wrote {args.output}: {g.name} IR, {len(g.nodes)} ops")
    return 0


# ------------------------------------------------------------------ render
RENDER_FORMATS = ("svg", "pdf", "png", "dot", "tex")


def _add_render(sub):
    p = _parser(sub, "render", "draw the network (svg, pdf, png, dot, tex)",
                "Draw a network as a paper figure: blocks collapse to boxes, repeats get a \u00d7n badge, "
                "skips go to the side, edges carry shapes. The format comes from the output's extension "
                "(or --format).",
                ["resdsl render resnet50 -o resnet50.pdf",
                 "resdsl render convnext_tiny --depth 2 --width cvpr-text -o c.pdf",
                 "resdsl render examples/unet.res --rankdir LR -o unet.svg",
                 "resdsl render vit_b_16 --style circuit --depth 2 -o vit.pdf",
                 "resdsl render resnet18 -f dot -o - | dot -Tpng > r.png"])
    _source_args(p)
    p.add_argument("--depth", "-d", type=_depth, default=None, metavar="N|all",
                   help="0: the network as one box; 1: its top-level statements (default); N: open blocks, "
                        "repeats and loops N levels deep; all: every op. With --width and no --depth, the "
                        "deepest depth that fits")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file: .svg, .pdf, .png, .dot or .tex (TikZ); - writes to standard output")
    p.add_argument("--format", "-f", choices=RENDER_FORMATS, default=None,
                   help="output format (default: from the extension; svg for -o -)")
    p.add_argument("--rankdir", choices=["TB", "LR"], default=None,
                   help="top to bottom or left to right (default TB; with --width, whichever fits)")
    p.add_argument("--width", default=None, metavar="VENUE|PT",
                   help="fit a column: a venue (ieee, acm, cvpr, iccv, neurips, icml, iclr, lncs: its column; "
                        "VENUE-text: its text width), single (252 pt), double (504 pt) or points")
    p.add_argument("--height", default=None, metavar="VENUE|PT",
                   help="fit a height too: points or a venue's text height (default with a venue --width: "
                        "that venue's text height)")
    p.add_argument("--style", choices=["block", "circuit"], default="block",
                   help="block: block chart (default); circuit: neural circuit diagram, one wire per axis "
                        "(see docs/render.md)")
    p.add_argument("--no-shapes", dest="shapes", action="store_false", help="leave the shapes off the edges")
    p.add_argument("--params", action="store_true", help="show parameter counts on the boxes")
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    from .outputs import check_output, write_output
    fmt = args.format
    if fmt is None:
        ext = os.path.splitext(args.output)[1].lower().lstrip(".")
        fmt = "svg" if args.output == "-" else ext
        if fmt not in RENDER_FORMATS:
            raise ResdslError("usage", f"cannot tell the format of {args.output!r} from its extension",
                              help="end the output name with .svg, .pdf, .png, .dot or .tex, or give --format")
    g, inputs = load_graph(args)
    check_output(args.output, inputs)
    if args.style == "circuit":  # same arguments, the other renderer
        from .backends.diagram.circuit import render
    else:
        from .backends.diagram.block import render
    depth = "auto" if args.depth is None else (None if args.depth == "all" else args.depth)
    with progress("rendering"):
        data, info = render(g, fmt, depth=depth, rankdir=args.rankdir, width=args.width, height=args.height,
                            shapes=args.shapes, params=args.params)
    if info["warnings"]:
        print(f"graphviz: {info['warnings']}", file=sys.stderr)
    write_output(args.output, data, inputs)
    d = "all" if info["depth"] is None else info["depth"]
    size = info.get("size")
    status(f"wrote {args.output}: {g.name} at depth {d}, {info['rankdir']}"
           + (f", {size[0]:.0f} x {size[1]:.0f} pt" if size else ""))
    return 0


# ------------------------------------------------------------------ summary
def _add_summary(sub):
    p = _parser(sub, "summary", "table of output shapes, parameters and multiply-adds per block",
                "Print a table of output shapes, parameter counts and multiply-adds per block.",
                ["resdsl summary resnet50", "resdsl summary resnet50 --input-shape 1,3,224,224 -f markdown",
                 "resdsl summary vit_b_16 -d 2 -f latex -o vit.tex"])
    _source_args(p)
    p.add_argument("--depth", "-d", type=_depth, default=1, metavar="N|all",
                   help="how deep to list blocks (default 1: top-level statements)")
    p.add_argument("--format", "-f", choices=["text", "markdown", "latex", "csv", "html"], default="text",
                   help="table format (default text)")
    p.add_argument("-o", "--output", default="-", metavar="OUT", help="write to a file (default: standard output)")
    p.set_defaults(func=cmd_summary)


def cmd_summary(args) -> int:
    from .backends.summary import format_summary
    from .outputs import check_output, write_output
    g, inputs = load_graph(args)
    check_output(args.output, inputs)
    write_output(args.output, format_summary(g, None if args.depth == "all" else args.depth, args.format), inputs)
    if args.output != "-":
        status(f"wrote {args.output}: {g.name} summary ({args.format}) at depth {args.depth}")
    return 0


# ------------------------------------------------------------------ preview
def _add_preview(sub):
    p = _parser(sub, "preview", "a live page of the figure, summary and errors, redrawn on each save",
                "Serve a local page (on 127.0.0.1 only; the URL is printed) that draws the network in block or "
                "circuit style at a chosen depth, with its summary table and the errors `resdsl check` would "
                "print, and redraws within a second of each save of the file or its imports. Its buttons save "
                "the figure as SVG, PDF, PNG or TikZ beside the file (FILE.preview.svg, ...), never over it. "
                "Ctrl-C stops it. See docs/preview.md.",
                ["resdsl preview net.res", "resdsl preview stdlib/resnet.res --network resnet50",
                 "resdsl preview examples/unet.res --port 8765", "resdsl preview net.res --port 0"])
    p.add_argument("file", metavar="FILE", help="a .res file (or a stdlib network name; saves then go to the "
                                                "current folder)")
    p.add_argument("--network", "-n", metavar="NAME",
                   help="network to show first when the file defines several (the page can switch)")
    p.add_argument("--port", type=int, default=0, metavar="N",
                   help="port on 127.0.0.1 (default 0: a free port)")
    p.set_defaults(func=cmd_preview)


def cmd_preview(args) -> int:
    if not 0 <= args.port <= 65535:
        raise ResdslError("usage", f"--port {args.port} is not a port", help="use 1 to 65535, or 0 for a free port")
    from .preview import serve
    return serve(args.file, args.network, args.port)


# ------------------------------------------------------------------ fmt
def _add_fmt(sub):
    p = _parser(sub, "fmt", "format .res files in the canonical style",
                "Rewrite .res files in the canonical layout (4-space indentation, spaces around `->` and "
                "operators, one statement a line, lines wrapped at 100 columns, a blank line between "
                "definitions). Comments are kept; the parse tree does not change. A folder means every .res "
                "file under it; - reads stdin and writes stdout. See docs/fmt.md.",
                ["resdsl fmt net.res", "resdsl fmt --check stdlib examples", "resdsl fmt --diff net.res",
                 "cat net.res | resdsl fmt -"])
    p.add_argument("files", nargs="+", metavar="FILES", help=".res files or folders (- for standard input)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    p.set_defaults(func=cmd_fmt)


def cmd_fmt(args) -> int:
    from .fmt import cmd_fmt as run
    return run(args)


# ------------------------------------------------------------------ list
def _add_list(sub):
    p = _parser(sub, "list", "list the stdlib networks (name, parameters, paper, file)",
                "List the networks of the standard library, which every FILE argument accepts by name, with "
                "their paper (title, year of the arXiv preprint, arXiv id). PATTERN is a shell wildcard "
                "(resnet*); without wildcards it matches as a substring. The generic networks (ResNet, ResNetT: "
                "they need arguments, e.g. --set) are listed apart, with --generic.",
                ["resdsl list", "resdsl list resnet", "resdsl list 'vit_*' --names", "resdsl list --generic",
                 "resdsl list --pretrained"])
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN", help="filter names (e.g. resnet*)")
    p.add_argument("--names", action="store_true", help="names only, one per line (fast: nothing is elaborated)")
    p.add_argument("--generic", action="store_true", help="the generic networks (they need arguments) instead")
    p.add_argument("--pretrained", action="store_true",
                   help="only the networks with published weights (`resdsl weights NAME` lists them)")
    p.set_defaults(func=cmd_list)


def cmd_list(args) -> int:
    from .catalog import describe, list_models
    names = list_models(args.pattern, generic=args.generic, pretrained=args.pretrained, include_tags=False)
    if not names:
        what = "generic network" if args.generic else "network with published weights" if args.pretrained \
            else "network"
        raise ResdslError("usage", f"no stdlib {what} matches {args.pattern!r}", help="`resdsl list` shows them all")
    if args.names:
        sys.stdout.write("".join(n + "\n" for n in names))
        return 0

    def tick(i, n, name):
        if sys.stderr.isatty():
            sys.stderr.write(f"\rcounting parameters {i + 1}/{n} {name}\x1b[K")
            sys.stderr.flush()
    rows = describe(names, progress=tick)
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    table = [["name", "parameters", "paper", "year", "arXiv", "file"]] + [
        [r["name"], f"{r['params']:,}" if r["params"] is not None else "(generic)", r["paper"],
         str(r["year"] or ""), r["arxiv"] or "", r["file"]]
        for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.rjust(widths[i]) if i == 1 else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return 0


# ------------------------------------------------------------------ weights
def _add_weights(sub):
    p = _parser(sub, "weights", "the published weights of a stdlib network (tags, accuracy, license, size)",
                "List the published checkpoints of a stdlib network: each tag with its source (torchvision or "
                "timm), classes, input size, reported ImageNet accuracy, license and size; the default tag is "
                "marked *. NAME.TAG shows one checkpoint in full (URL or Hub id, preprocessing). Without NAME, "
                "every network that has weights. `--pretrained[=TAG]` loads them (compile), as "
                "create_model(NAME, pretrained=True) does.",
                ["resdsl weights", "resdsl weights resnet50", "resdsl weights resnet50.IMAGENET1K_V2",
                 "resdsl weights vit_b_16.IMAGENET1K_SWAG_E2E_V1"])
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="a stdlib network, or NAME.TAG")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args) -> int:
    from .pretrained import weights_table
    sys.stdout.write(weights_table(args.name))
    return 0


# ------------------------------------------------------------------ completion
def _add_completion(sub):
    p = _parser(sub, "completion", "print a shell completion script (bash or zsh)",
                "Print a completion script for bash or zsh: subcommands, options, choices, and stdlib "
                "network names where a FILE is expected.",
                ["resdsl completion bash > ~/.local/share/bash-completion/completions/resdsl",
                 "resdsl completion zsh > ~/.zfunc/_resdsl   # with fpath+=~/.zfunc in ~/.zshrc",
                 'eval "$(resdsl completion bash)"'])
    p.add_argument("shell", choices=["bash", "zsh"], help="the shell")
    p.set_defaults(func=cmd_completion)


def cmd_completion(args) -> int:
    from .catalog import list_models
    from .completion import script
    sys.stdout.write(script(args.shell, make_parser(), list_models()))
    return 0


# ------------------------------------------------------------------ main
# ------------------------------------------------------------------ lsp
def _add_lsp(sub):
    p = _parser(sub, "lsp", "the language server for editors (stdio)",
                "Run the resdsl language server on standard input and output (the Language Server Protocol), "
                "for an editor to start: diagnostics as `resdsl check` gives them while you type, hover (op "
                "signatures and legal values, shapes), inlay hints (the shape of each statement, the parameters of "
                "each block), go to definition, references, completion, outline, formatting (resdsl fmt) and "
                "did-you-mean fixes. See docs/editors.md for VS Code, Neovim, Emacs and Helix.",
                ["resdsl lsp", "resdsl lsp --stdio"])
    p.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default and only transport; "
                                                        "accepted because editors pass it)")
    p.set_defaults(func=cmd_lsp)


def cmd_lsp(args) -> int:
    try:
        from .lsp.server import main
    except ImportError as e:
        raise ResdslError("usage", f"the language server needs pygls ({e})", help="pip install pygls") from None
    return main()


SUBCOMMANDS = [_add_check, _add_compile, _add_ir, _add_render, _add_summary, _add_fmt, _add_preview, _add_list,
               _add_weights, _add_completion, _add_lsp]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage error, coloured like ours; exit status 2
        self.print_usage(sys.stderr)
        print(_paint(f"error[usage]: {message}", sys.stderr), file=sys.stderr)
        sys.exit(EXIT_USAGE)


def make_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="resdsl", description="Check, compile and draw .res network descriptions.",
                 epilog="examples:\n  resdsl check examples/cifar_resnet.res\n  resdsl list resnet\n"
                        "  resdsl compile resnet50 -t onnx -o resnet50.onnx\n  resdsl render resnet50 -o r.pdf\n\n"
                        "`resdsl COMMAND --help` describes each command. Docs: docs/cli.md",
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", "-V", action="version", version=f"resdsl {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(sub)
    return ap


def _report(e: ResdslError) -> None:
    print(_paint(e.render(), sys.stderr), file=sys.stderr)


def main(argv=None) -> int:
    """Run one command; returns the exit status. Ctrl-C at any point (building the parser,
    importing the backends, working) is exit status 130 without a traceback."""
    from .streams import StdoutFailed, guarded, silence_stdout
    try:
        with guarded():
            try:
                return _main(argv)
            except StdoutFailed as e:  # `> /dev/full`, `>&-`; or `| head`: the reader left, not an error
                silence_stdout()
                if e.reader_left:
                    return 0
                print(_paint(f"error[io]: {e.message()}", sys.stderr), file=sys.stderr)
                return EXIT_INPUT
    except KeyboardInterrupt:
        return 130


def _main(argv=None) -> int:
    ap = make_parser()
    args = ap.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a failure shows here, reported like the command's own
        return code
    except ResdslError as e:
        _report(e)
        return EXIT_USAGE if e.kind == "usage" else EXIT_INPUT
    except RecursionError:
        print(_paint("error[limit]: the description nests too deeply to elaborate", sys.stderr), file=sys.stderr)
        return EXIT_INPUT


def run() -> None:
    """The `resdsl` command: the console script and `python -m resdsl`.

    Runs `main()`, flushes the standard streams and leaves without tearing the interpreter
    down, as mypy does: after a large input the teardown (a last full garbage collection,
    then freeing the AST node by node) took longer than the work itself, 4 s after `check`
    of a 5 MB file. Every file resdsl writes is closed and fsynced before main() returns."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BrokenPipeError:  # the reader left; nothing more to say
            pass
        except OSError:
            code = code or EXIT_INPUT
        except KeyboardInterrupt:
            code = 130
    os._exit(code)


if __name__ == "__main__":
    run()
