"""Parameters of plain containers in the torch file (torch_geometric's GINConv layout: `conv.eps`
beside `conv.nn.0`). The file writes the container as an ``nn.ModuleDict`` with the parameter
registered on it; ``init_weights`` initialises it in the branch of the class that holds the
container (``m.conv.eps``), where ``build()`` (initplan.apply) initialises it when its walk reaches
the container. Where the init draws random numbers, that is the same order only when nothing
between the class's module and the container draws: checked here, else a clear error.
"""
from __future__ import annotations

from ...diagnostics import ResdslError
from .pyfmt import ident, string

# inits that draw no random numbers: where they run does not change any other tensor
FIXED = frozenset({"zeros", "ones", "constant", "eye", "onehot", "default"})


def collect(block):
    """(access text from `m`, parameter path, init spec) of the parameters in the plain containers
    of a class's instance `block` (through containers only, not into other classes)."""
    out = []

    def walk(inst, text):
        for n, c in inst.children:
            if c.kind == "param" and inst is not block:
                out.append((text + (f".{n}" if ident(n) else f".get_parameter({string(n)})"), c.path, c.spec))
            elif c.kind == "dict":
                walk(c, text + (f".{n}" if ident(n) else f"[{string(n)}]"))
    walk(block, "m")
    return out


def check(top, plan, covered, spans):
    """Raise where the file would draw a container's random init in another order than build():
    `covered` holds the paths of the container parameters the class branches initialise; `spans`
    the .res location of each parameter path."""
    loose = [i for i in _all(top) if i.kind in ("seq", "dict", "named")
             and any(c.kind == "param" for _, c in i.children)]
    for inst in loose:
        for _, c in inst.children:
            if c.kind == "param" and c.path not in covered:
                raise ResdslError("unsupported", f"the torch target cannot write the parameter {c.path} of a "
                                  "plain container inside a Sequential", spans.get(c.path),
                                  help="name the layers around it, or make the parameter a part of the block itself")
    if all(spec[0] in FIXED for _, _, spec in covered.values()):
        return
    if _events(top, plan, False, covered) != _events(top, plan, True, covered):
        path = next(p for p, (_, _, spec) in covered.items() if spec[0] not in FIXED)
        raise ResdslError("unsupported", f"the torch target cannot initialise {path} in the order resdsl.build "
                          "does: a layer before its container draws random numbers first", spans.get(path),
                          help="give the parameter a constant init (init=zeros, ones or constant(v)), or "
                          "declare it before the layers of its block")


def _events(top, plan, as_file, covered):
    """The random draws, in order, of build()'s walk (or the file's, with container parameters
    drawn at their class)."""
    out = []

    def visit(i):
        if i.kind == "leaf" and i.path in plan.actions:
            cls, _ = plan.actions[i.path]
            reset, specs = plan.rules[cls]
            if reset or any(s[0] not in FIXED for _, s in specs):
                out.append(i.path)
        for _, c in i.children:
            if c.kind == "param" and c.spec[0] not in FIXED and not (as_file and c.path in covered):
                out.append(c.path)
        if as_file and i.kind == "block":
            out.extend(p for p, (blk, _, spec) in covered.items() if blk is i and spec[0] not in FIXED)
        for _, c in i.children:
            if c.kind not in ("param", "buffer", "fill"):
                visit(c)
    visit(top)
    return out


def _all(inst):
    yield inst
    for _, c in inst.children:
        yield from _all(c)
