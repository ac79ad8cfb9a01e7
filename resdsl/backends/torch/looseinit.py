"""Parameters of plain containers in the torch file (torch_geometric's GINConv layout: `conv.eps`
beside `conv.nn.0`). The file writes the container as an ``nn.ModuleDict`` with the parameter
registered on it. ``build()`` (initplan.apply) initialises it when its walk over the modules
reaches the container, so the file must draw its random numbers at the same point:

- an init that draws nothing (zeros, ones, constant, eye) may run anywhere: ``init_weights``
  does it in the branch of the class that holds the container (``nn.init.zeros_(m.conv.eps)``);
- a container holding a parameter with a random init is an instance of a small subclass of
  ``nn.ModuleDict`` written in the file (``class GConv(nn.ModuleDict)``), and ``init_weights``
  initialises it in its own branch, exactly where build() does.
"""
from __future__ import annotations

import re

from ...diagnostics import ResdslError
from .pyfmt import ident, string

# inits that draw no random numbers: where they run does not change any other tensor
FIXED = frozenset({"zeros", "ones", "constant", "eye", "onehot", "default"})


def _containers(block):
    """(relative path, container inst) of the plain containers of a class's instance, through
    containers only (not into other classes)."""
    out = []

    def walk(inst, rel):
        for n, c in inst.children:
            if c.kind == "dict":
                out.append((rel + n, c))
                walk(c, rel + n + ".")
    walk(block, "")
    return out


def typed(block, owner: str, names) -> dict:
    """{relative path: class name} of the containers of `block` that hold a parameter with a
    random init (each gets a subclass of nn.ModuleDict in the file)."""
    out = {}
    for rel, c in _containers(block):
        if any(k.kind == "param" and k.spec[0] not in FIXED for _, k in c.children):
            camel = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^0-9A-Za-z]+", rel) if p)
            out[rel] = names.new(owner + camel, suffix="")
    return out


def class_lines(name: str) -> list:
    return [f"class {name}(nn.ModuleDict):",
            '    """A plain container with a parameter of its own: init_weights initialises it here, as',
            '    resdsl.build() does."""']


def at(block, rel: str):
    inst = block
    for part in rel.split("."):
        inst = inst.child(part)
    return inst


def collect(block, typed_paths=()):
    """(access text from `m`, parameter path, init spec) of the parameters in the plain containers
    of a class's instance `block` that its own branch initialises (not those of `typed_paths`)."""
    out = []

    def walk(inst, text, rel):
        for n, c in inst.children:
            if c.kind == "param" and inst is not block and rel not in typed_paths:
                out.append((text + (f".{n}" if ident(n) else f".get_parameter({string(n)})"), c.path, c.spec))
            elif c.kind == "dict":
                walk(c, text + (f".{n}" if ident(n) else f"[{string(n)}]"), rel + "." + n if rel else n)
    walk(block, "m", "")
    return out


def check(top, covered, spans):
    """A parameter of a plain container that no branch initialises (one inside a Sequential) is
    an error at its line in the .res file."""
    for inst in _all(top):
        if inst.kind not in ("seq", "dict", "named"):
            continue
        for _, c in inst.children:
            if c.kind == "param" and c.path not in covered:
                raise ResdslError("unsupported", f"the torch target cannot write the parameter {c.path} of a "
                                  "plain container inside a Sequential", spans.get(c.path),
                                  help="name the layers around it, or make the parameter a part of the block itself")


def _all(inst):
    yield inst
    for _, c in inst.children:
        yield from _all(c)
