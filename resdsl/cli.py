"""`resdsl` command line: compile, check, ir (render, summary where installed).

Bad input never shows a traceback: ResdslError is printed as
``error[kind]: message`` with ``--> file:line:col``, the source line, a caret and
``help:``, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .diagnostics import ResdslError


def write_atomic(path: str, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename: no half-written output."""
    p = Path(path)
    directory = p.parent if str(p.parent) else Path(".")
    if not directory.exists():
        raise ResdslError("io", f"cannot write {path}: folder {directory} does not exist")
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _common(p: argparse.ArgumentParser, sets=True):
    p.add_argument("file", help="the .res file")
    p.add_argument("--network", "-n", help="network to use (needed when the file defines several)")
    if sets:
        p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override a network parameter (a .res expression), e.g. --set classes=10")
        p.add_argument("--config", help="YAML file of parameter overrides")


def _shape(text: str):
    try:
        dims = [int(x) for x in text.replace("x", ",").split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of ints like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return dims


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="resdsl", description="Compile, check and draw .res network descriptions.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("compile", help="compile a network for a target")
    _common(c)
    c.add_argument("--target", "-t", choices=["torch", "onnx"], default="torch")
    c.add_argument("-o", "--output", required=True, help="output file (.py for torch, .onnx for onnx)")
    c.add_argument("--seed", type=int, default=0, help="seed for the initial weights (default 0: same bytes every run)")
    c.add_argument("--weights", help="state_dict (.pt) to load (onnx target)")
    c.add_argument("--opset", type=int, default=None, help="ONNX opset (onnx target)")
    c.add_argument("--input-shape", type=_shape, default=None, help="fix symbolic input axes, e.g. 1,3,224,224")
    c.add_argument("-O", dest="opt", default=None, choices=["0", "1", "2"], help="optimisation level")
    c.add_argument("-p", "--passes", default=None, help="explicit comma-separated pass list")
    c.add_argument("--verify", action="store_true", help="verify the IR after every pass")
    c.add_argument("--explain", action="store_true", help="print each rewrite the passes make")

    k = sub.add_parser("check", help="parse, elaborate and shape-check; print a one-line report")
    _common(k)

    i = sub.add_parser("ir", help="print the IR as stable text")
    _common(i)
    i.add_argument("--input-shape", type=_shape, default=None)
    i.add_argument("-O", dest="opt", default=None, choices=["0", "1", "2"])
    i.add_argument("-p", "--passes", default=None)
    i.add_argument("--verify", action="store_true")
    i.add_argument("--explain", action="store_true")

    for extra in _extra_commands():
        extra(sub)
    return ap


def _extra_commands():
    """Commands added by other modules (render, summary) when they are present."""
    out = []
    for mod in ("resdsl.backends.render_cli",):
        try:
            m = __import__(mod, fromlist=["register"])
        except ImportError:
            continue
        out.append(m.register)
    return out


def _graph(args, input_shape=None):
    from .api import graph
    return graph(args.file, args.network, config=getattr(args, "config", None), sets=getattr(args, "sets", ()),
                 input_shape=input_shape)


def _optimize(g, args, weights=None):
    """Run -O / -p on (graph, weights) when asked; returns (graph, weights).

    `weights` None and no optimisation asked: (g, None), the backend initialises."""
    if getattr(args, "opt", None) is None and getattr(args, "passes", None) is None:
        return g, weights
    from .api import optimize
    return optimize(g, weights, seed=getattr(args, "seed", None), level=args.opt, passes=args.passes,
                    verify=args.verify, explain=args.explain, log=sys.stderr)


def cmd_compile(args) -> int:
    if args.target == "torch":
        from .backends.torch_fx import to_python
        g = _graph(args, args.input_shape)
        optimizing = args.opt not in (None, "0") or args.passes is not None
        if args.weights and not optimizing:
            raise ResdslError("usage", "--weights is for the onnx target; the torch file builds fresh weights",
                              help="load a checkpoint with module.load_state_dict(torch.load(...)), "
                                   "or add -O2 to write folded weights beside the .py")
        if optimizing:  # the optimized function needs the optimized weights: <out>.pt beside the .py
            from .weights import load_state
            g, w = _optimize(g, args, load_state(args.weights, g) if args.weights else None)
            pt = os.path.splitext(args.output)[0] + ".pt"
            _save_weights(pt, w)
            write_atomic(args.output, to_python(g, args.file, weights_file=os.path.basename(pt)))
            print(f"wrote {pt}: the weights after optimisation")
        else:
            write_atomic(args.output, to_python(g, args.file))
        print(f"wrote {args.output}: {g.name}() -> torch.nn.Module, {g.num_params():,} parameters")
        return 0
    try:
        from .backends.onnx import compile_cli
    except ImportError:
        raise ResdslError("usage", "this build of resdsl has no ONNX target") from None
    return compile_cli(args, _graph, _optimize, write_atomic)


def _save_weights(path, weights):
    """torch.save of the state_dict, written atomically; same weights -> same bytes."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save({k: v.detach().contiguous() for k, v in weights.items()}, buf)
    write_atomic(path, buf.getvalue())


def cmd_check(args) -> int:
    from .shapes import shape_str
    g = _graph(args)
    outs = ", ".join(shape_str(v.shape) for v in g.outputs)
    ins = ", ".join(f"{v.name}: {shape_str(v.shape)}" for v in g.inputs)
    print(f"{g.name}: ({ins}) -> {outs}; {g.num_params():,} parameters, {len(g.nodes)} ops")
    return 0


def cmd_ir(args) -> int:
    from .ir.printer import print_graph
    g, _ = _optimize(_graph(args, args.input_shape), args)
    sys.stdout.write(print_graph(g))
    return 0


COMMANDS = {"compile": cmd_compile, "check": cmd_check, "ir": cmd_ir}


def main(argv=None) -> int:
    ap = make_parser()
    args = ap.parse_args(argv)
    fn = COMMANDS.get(args.cmd) or getattr(args, "func", None)
    try:
        return fn(args)
    except ResdslError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except RecursionError:
        print("error[limit]: the description nests too deeply to elaborate", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
