"""The standalone ``.py`` file of the torch target, written from the blocks as torchvision writes
its model files: one ``nn.Module`` class per ``.res`` block definition, its parameters as
constructor arguments, ``nn.Sequential`` for chains, loops for repeats, one init function.

The file is written from the same module tree as ``resdsl.build`` (built on the meta device).
Instances of one block share a class: what differs between them becomes a constructor
argument, named after the ``.res`` block parameter with the same values (or the block's
input channels, ``inplanes``/``in_channels``, or a multiple of a parameter, ``planes * 4``);
a child that only some instances have (a projection shortcut) is an attribute that may be
``None``, as torchvision's ``downsample``. Each forward is written from the module's fx
graph with local value names (``out``, ``identity``), public torch functions and
activations as modules. Weights come from :mod:`initplan`, the plan ``build()`` runs too,
so ``net(seed=s)`` and ``resdsl.build(..., seed=s)`` give the same tensors.

Nothing from the input reaches the file except as an escaped literal or a checked
identifier: names that are keywords, builtins or the file's own names are renamed in the
file (never in the state_dict), and non-finite floats are written as ``float("inf")``.
"""
from __future__ import annotations

import inspect
import builtins
import keyword
import operator
import re
import textwrap

import torch

from . import initplan
from . import ops as TF
from . import bufcode, fnpy, looseinit, runtime, variants
from .lower import ResModule, arg_key, lower_with_plan
from .pyfmt import (ACTIVATIONS, PERMUTE, Brackets, Call, Comp, Kw, Names, Star, as_module, function_name, ident, lit,
                    operator_symbol, statement, string)
from .tree import all_sites, check_names
from ...diagnostics import ResdslError
from ...ir.graph import Graph

# file-level names the generated code defines or uses; nothing from the input may shadow them
_BUILTINS = frozenset(dir(builtins))
FILE_NAMES = {"torch", "nn", "F", "os", "math", "OrderedDict", "init_weights", "checkpoint", "checkpoint_chain",
              "_chain", "SOURCE", "WEIGHTS", "DropPath", "LayerScale", "SelfAttention", "Permute", "self",
              "super", "range", "float", "getattr", "setattr", "isinstance", "dict", "int", "str", "len",
              "tuple", "list", "model", "seed", "weights", "m", "i", "selective_scan"}
# values torch leaves out of a constructor call (module_recipe drops them): used to line up instances
_FILL = dict(TF.DEFAULTS, padding_mode="zeros", causal=False)
_ABSENT = object()  # a slot of an optional child, for an instance that lacks it
_CONSTS = [[], []]
_FNS = [None]  # the fnpy.Translator of the file being written  # the network's float and int arguments, while its file is written (loops over an index)


# ------------------------------------------------------------------ the module tree, described
class _Inst:
    """One module of the tree: leaf | param | block | seq | named | dict | fill."""

    def __init__(self, kind, path, name):
        self.kind, self.path, self.name = kind, path, name
        self.children = []  # (name, _Inst)
        self.cls = None  # leaf: torch class; fill: constructor text
        self.args, self.kwargs = (), {}
        self.graph = None  # block: fx graph of its forward
        self.label = None
        self.block_args, self.defaults = {}, {}
        self.in_c = None
        self.group = None  # block: its _Class
        self.spec = None  # param: init spec

    def child(self, name):
        return next((c for n, c in self.children if n == name), None)


def _describe(mod, path, name, owners, first, sites):
    if path in owners and owners[path][1] is not None:
        inst = _Inst("leaf", path, name)
        inst.cls, inst.args, inst.kwargs, _ = owners[path][1]
        return inst
    if isinstance(mod, ResModule):
        inst = _Inst("block", path, name)
        inst.graph = mod.graph
        site = sites.get(path)
        inst.label = site.label if site is not None else "Block"
        if site is not None:
            s = site.scope
            while s is not None and s.path == site.path:
                if s.kind in ("block", "network"):
                    inst.block_args = dict(s.info.get("args", {}))
                    inst.defaults = dict(s.info.get("defaults", {}))
                    inst.label = s.info.get("block", inst.label)
                    break
                s = next((c for c in s.children if c.path == s.path), None)
            else:
                inst.label = None  # a group, shortcut or repeat: no block definition of its own
            if site.inputs and len(site.inputs[0].shape) > 1 and isinstance(site.inputs[0].shape[1].size, int):
                inst.in_c = site.inputs[0].shape[1].size
    elif isinstance(mod, torch.nn.Sequential):
        inst = _Inst("seq", path, name)
    else:
        inst = _Inst("dict", path, name)
    pre = path + "." if path else ""
    kids = []
    for pname in mod._parameters:
        full = pre + pname
        spec = owners[full][0].params[""]
        p = _Inst("param", full, pname)
        p.args = tuple(spec.shape)
        p.spec = spec.init or ("zeros",)
        kids.append((first.get(full, 0), p))
    for bname in mod._buffers:  # constant tensors (`buffer`): their values in the constructor
        full = pre + bname
        bn = owners[full][0]
        b = _Inst("buffer", full, bname)
        b.args = (_buffer_value(bn),)
        b.spec = (bn.attrs["_dtype"], bn.attrs["persistent"])
        kids.append((first.get(full, 0), b))
    for cname, child in mod._modules.items():
        kids.append((first.get(pre + cname, 1 << 60), _describe(child, pre + cname, cname, owners, first, sites)))
    if inst.kind != "seq":
        kids.sort(key=lambda t: t[0])  # creation order = first use (stable for ties)
    inst.children = [(k.name, k) for _, k in kids]
    if inst.kind == "block" and inst.label is None:
        _as_chain(inst)
    return inst


def _buffer_value(n):
    """The torch expression of a buffer's value (bufcode.py): the fn call that made it, its number
    arguments as slots (written from the class's arguments), or the values."""
    return bufcode.value(n, _FNS[0], lambda v, hint, name: _ArgSlot((v,), hint, name))


def _as_chain(inst):
    """A group whose forward applies its layers in turn becomes an nn.Sequential: numbered layers
    at their index, activations and pools as modules in the free places (torchvision's
    Conv2dNormActivation), or named layers in order (a repeat of named blocks)."""
    nodes = list(inst.graph.nodes)
    if len(nodes) < 3 or nodes[0].op != "placeholder" or nodes[1].op == "placeholder" or nodes[-1].op != "output":
        return
    if any(c.kind in ("param", "buffer") for _, c in inst.children):
        return
    body, prev = nodes[1:-1], nodes[0]
    kids = dict(inst.children)
    entries = []
    for k, n in enumerate(body):
        if len(prev.users) != 1 or not n.args or n.args[0] is not prev \
                or any(isinstance(a, torch.fx.Node) for a in list(n.args[1:]) + list(n.kwargs.values())):
            return
        if n.op == "call_module" and n.target in kids and len(n.args) == 1 and not n.kwargs:
            entries.append((n.target, kids[n.target]))
        else:
            text = as_module(n, lambda a, kw: ", ".join([lit(x) for x in a] + [f"{k}={lit(v)}" for k, v in kw.items()]))
            if text is None:
                return
            f = _Inst("fill", "", str(k))
            f.cls = text
            entries.append((str(k), f))
        prev = n
    if nodes[-1].args != (prev,) or sorted(n for n, e in entries if e.kind != "fill") != sorted(kids):
        return
    if len({n for n, _ in entries}) != len(entries):
        return
    if all(n == str(k) for k, (n, _) in enumerate(entries)):
        inst.kind = "seq"
    elif all(e.kind != "fill" for _, e in entries) and not any(n.isdigit() for n, _ in entries):
        inst.kind = "named"
    else:
        return
    inst.children = entries
    inst.graph = None


# ------------------------------------------------------------------ classes
class _Class:
    def __init__(self, insts, optional=()):
        self.insts = insts
        self.name = None
        self.optional = list(optional)  # child names some instances lack
        self.params = []  # (name, default or _ABSENT)
        self.values = {}  # id(inst) -> {param: value}
        self.rep = max(insts, key=lambda i: len(i.children)) if insts else None  # has every optional child
        self.union = False  # variants of a block in one class (variants.py)
        self.cols = {}  # names the conditions of a union may test -> value per instance
        self.conds = {}  # optional child name or entry pattern -> condition text (variants)
        self.fn_params = set()  # arguments that reach the fn call of a buffer (bufcode.py)
        self.typed = {}  # path of a plain container with a randomly initialised parameter -> its class (looseinit)


def _shape_key(inst):
    """What must agree for two instances to share a class (sizes may differ)."""
    if inst.kind == "leaf":
        kws = tuple(sorted(k for k in inst.kwargs if k not in _FILL))
        return ("leaf", inst.cls, len(inst.args), kws)
    if inst.kind == "param":
        return ("param", len(inst.args), inst.spec)
    if inst.kind == "buffer":
        return ("buffer", inst.spec, bufcode.structure(inst.args[0], _is_slot))
    if inst.kind == "fill":
        return ("fill", inst.cls)
    if inst.kind == "block":
        return ("block", id(inst.group))
    return (inst.kind, tuple((n, _shape_key(c)) for n, c in inst.children))


def _graph_key(g, optional=()):
    """The forward's structure, with calls of `optional` children taken as passing their input."""
    idx, out = {}, []

    def arg(a):
        return arg_key(a, idx.__getitem__)
    for n in g.nodes:
        if n.op == "call_module" and n.target in optional:
            if len(n.args) != 1 or n.kwargs or not isinstance(n.args[0], torch.fx.Node):
                return None
            idx[n] = idx[n.args[0]]
            continue
        tgt = n.target if isinstance(n.target, str) else (id(n.target), getattr(n.target, "__name__", ""))
        idx[n] = len(out)
        out.append((n.op, tgt if n.op != "placeholder" else "", arg(n.args), arg(n.kwargs)))
    return tuple(out)


def _assign_classes(top):
    """Post-order: instances of one block definition share a class where their forwards agree up
    to optional children; others are grouped by their exact structure."""
    by_label, height = {}, {}
    recursive = set()  # blocks that contain themselves (an hourglass): one class per depth

    def labels_below(inst):
        for _, c in inst.children:
            if c.kind == "block":
                yield c.label
            yield from labels_below(c)
    for inst in _all(top):
        if inst.kind == "block" and inst.label is not None and inst.label in set(labels_below(inst)):
            recursive.add(inst.label)

    def visit(inst):
        h = 0
        for _, c in inst.children:
            h = max(h, visit(c) + (c.kind == "block"))
        if inst.kind == "block":
            label = inst.label if inst.label is not None and inst.label not in recursive else (inst.label, h)
            by_label.setdefault(label, []).append(inst)
            height[label] = max(height.get(label, 0), h)
        return h
    visit(top)
    # a block's children are grouped before it: labels by the height of their tallest instance
    order = sorted(by_label, key=lambda lb: height[lb])
    classes = []
    for label in order:
        insts = by_label[label]
        names = {}
        for i in sorted(insts, key=lambda i: -len(i.children)):
            names.update(dict.fromkeys(n for n, _ in i.children))
        optional = [n for n in names if not all(i.child(n) is not None for i in insts)]
        if not isinstance(label, tuple) and _unifies(insts, optional):
            cls = _Class(insts, optional)
            classes.append(cls)
            for i in insts:
                i.group = cls
            continue
        groups = {}
        for i in insts:
            key = (_graph_key(i.graph), tuple((n, _shape_key(c)) for n, c in i.children))
            groups.setdefault(key, []).append(i)
        merged = []  # groups that unify up to optional children (a stochastic depth some lack)
        for g in groups.values():
            for m in merged if not isinstance(label, tuple) else ():
                both = m[0] + g
                opt = _optional(both)
                if _unifies(both, opt):
                    m[0], m[1] = both, opt
                    break
            else:
                merged.append([g, []])
        if len(merged) > 1 and not isinstance(label, tuple):
            opt = _optional(insts)
            res = _union(insts, opt)
            if res is not None:
                merged = [[insts, opt, True]]
        for g, opt, *union in merged:
            cls = _Class(g, opt)
            cls.union = bool(union)
            classes.append(cls)
            for i in g:
                i.group = cls
    return classes


def _loose_key(inst):
    """_shape_key, where activations may differ and Sequentials may lack entries."""
    if inst.kind == "fill":
        return ("fill",)
    if inst.kind == "seq":
        return ("seq", tuple(_loose_key(c) for _, c in inst.children))
    if inst.kind in ("leaf", "param", "buffer", "block"):
        return _shape_key(inst)
    return (inst.kind, tuple((n, _loose_key(c)) for n, c in inst.children))


def _seq_fits(col, top=True):
    """Sequentials (None where absent) that one list-built Sequential can write."""
    lists = [[c for _, c in s.children] if s is not None else None for s in col]
    if len({len(x) for x in lists if x is not None}) == 1:
        return all(_seq_fits([x[k] if x is not None else None for x in lists], False) if e.kind == "seq" else
                   len({_loose_key(x[k]) for x in lists if x is not None}) == 1
                   for k, e in enumerate(next(x for x in lists if x is not None)))
    lay = variants.align(lists, _loose_key) if top else None
    if lay is None:
        return False
    n, maps = lay
    for pos in range(n):
        sub = [x[m.index(pos)] if x is not None and pos in m else None for x, m in zip(lists, maps)]
        kinds = {c.kind for c in sub if c is not None}
        if kinds == {"seq"} and not _seq_fits(sub, False):
            return False
    return True


def _union(insts, optional):
    """Whether instances whose Sequentials differ in entries, and whose forwards differ by a
    residual at the end, can be one class (variants.py)."""
    if any(not ident(n) for n in optional) or any(i.graph is None for i in insts):
        return None
    rep = max(insts, key=lambda i: len(i.children))
    if any(rep.child(n) is None for n in optional):
        return None
    for n, c in rep.children:
        col = [i.child(n) for i in insts]
        if c.kind == "seq":
            if not _seq_fits(col):
                return None
        elif len({_loose_key(x) for x in col if x is not None}) != 1:
            return None
    keys = {_graph_key(i.graph, optional) for i in insts}
    if None in keys or len(keys) > 2:
        return None
    if len(keys) == 2:
        short, long = sorted(keys, key=len)
        tail = long[len(short) - 1:-1]
        if long[:len(short) - 1] != short[:-1] or len(tail) != 1 or tail[0][0] != "call_function" \
                or tail[0][1][1] not in ("add", "iadd"):
            return None
    return True


def _optional(insts):
    names = {}
    for i in sorted(insts, key=lambda i: -len(i.children)):
        names.update(dict.fromkeys(n for n, _ in i.children))
    return [n for n in names if not all(i.child(n) is not None for i in insts)]


def _unifies(insts, optional) -> bool:
    if any(not ident(n) for n in optional):
        return False
    keys = {_graph_key(i.graph, optional) for i in insts}
    if len(keys) != 1 or None in keys:
        return False
    rep = max(insts, key=lambda i: len(i.children))
    if any(not all(rep.child(n) is not None for n in optional) for _ in [0]):
        return False
    for i in insts:
        for n, c in i.children:
            if _shape_key(c) != _shape_key(rep.child(n)):
                return False
    for o in optional:  # each optional child is called once, on one input
        calls = [n for n in rep.graph.nodes if n.op == "call_module" and n.target == o]
        if len(calls) != 1:
            return False
    return True


# ------------------------------------------------------------------ constructor code
class _Slot:
    """A value in a constructor expression, one per instance of the class."""

    __slots__ = ("values", "hint")

    def __init__(self, values, hint):
        self.values, self.hint = values, hint


class _ArgSlot(_Slot):
    """A number argument of a buffer's fn call (or of a class that passes one down): written as the
    block argument it was written as (`name`) even where every instance has the same value; one
    passed down (`passed`) may also be the only block argument with its values."""

    __slots__ = ("name", "passed")

    def __init__(self, values, hint, name=None, passed=False):
        super().__init__(values, hint)
        self.name, self.passed = name, passed


def _is_slot(e):
    return isinstance(e, _Slot)


def _buffer_column(insts, name):
    """The value of buffer `name` for the instances of a class, one slot per fn argument."""
    trees = [i.child(name).args[0] for i in insts if i.child(name) is not None]

    def merge(slots):
        vals = iter(s.values[0] for s in slots)
        return _ArgSlot(tuple(next(vals) if i.child(name) is not None else _ABSENT for i in insts), slots[0].hint,
                        slots[0].name if len({s.name for s in slots}) == 1 else None)
    return bufcode.column(trees, _is_slot, merge)


def _typed(v):
    """A hashable stand-in for a value that tells 1, 1.0 and True apart."""
    return _ABSENT if v is _ABSENT else (type(v).__name__, repr(v))


def _col(insts, name):
    return [i.child(name) if i is not None else None for i in insts]


def _expr(col, values_of, hint):
    """A constructor expression (pyfmt tree, with _Slot leaves) for one child across instances;
    `col` holds None for instances without the child."""
    c0 = next(c for c in col if c is not None)

    def slot(get, h):
        return _Slot(tuple(get(c) if c is not None else _ABSENT for c in col), h)
    if c0.kind == "param":  # a parameter of a plain container (GINConv's conv.eps): registered on it
        return _Loose("param", [slot(lambda c: c.args, f"{hint}_shape")])
    if c0.kind == "buffer":
        return _Loose(("buffer",) + c0.spec, [_buffer_column([_Holder(hint, c) for c in col], hint)])
    if c0.kind == "fill":
        if len({c.cls for c in col if c is not None}) > 1:  # an activation chosen by a flag
            return slot(lambda c: variants.Code(c.cls), "act")
        return c0.cls
    if c0.kind == "leaf":
        cls = TF.CLASSES[c0.cls]
        pnames = [p for p in inspect.signature(cls).parameters if p != "self"]
        items = []
        for j in range(len(c0.args)):
            items.append(slot(lambda c, j=j: c.args[j], pnames[j] if j < len(pnames) else f"arg{j}"))
        keys = {}
        for c in col:
            if c is not None:
                keys.update(dict.fromkeys(c.kwargs))
        for kw in keys:
            s = slot(lambda c, kw=kw: c.kwargs.get(kw, _FILL.get(kw)), kw)
            if kw in _FILL and all(v is _ABSENT or v == _FILL[kw] for v in s.values):
                continue  # at torch's default in every instance: left out, as a person would
            items.append(Kw(kw, s))
        return Call(_torch_class(c0.cls), items)
    if c0.kind == "block":
        cls = c0.group
        items = []
        for pn, default in cls.params:
            s = slot(lambda c, pn=pn: values_of(c)[pn], pn)
            if pn in cls.fn_params:  # passed down to a buffer's fn: from the caller's argument too
                s = _ArgSlot(s.values, s.hint, pn, passed=True)
            if default is _ABSENT:
                items.append(s)
            elif any(v is not _ABSENT and _typed(v) != _typed(default) for v in s.values):
                items.append(Kw(pn, s))
        return _Opt(cls.name, items)
    if c0.kind == "seq" and len({len(c.children) for c in col if c is not None}) > 1:
        lists = [[e for _, e in c.children] if c is not None else None for c in col]
        n, maps = variants.align(lists, _loose_key)
        entries = []
        for pos in range(n):
            sub = [x[m.index(pos)] if x is not None and pos in m else None for x, m in zip(lists, maps)]
            entries.append((tuple(x is not None for x in sub), _expr(sub, values_of, f"{hint}_{pos}")))
        return _ListSeq(entries)
    if c0.kind == "seq":
        items = [_expr([c.children[k][1] if c is not None else None for c in col], values_of, f"{hint}_{k}")
                 for k in range(len(c0.children))]
        return Call("nn.Sequential", _compress(items))
    if c0.kind == "named":
        return _Named([n for n, _ in c0.children],
                      [_expr([c.children[k][1] if c is not None else None for c in col], values_of, n)
                       for k, (n, _) in enumerate(c0.children)])
    items = []
    for k, (n, _) in enumerate(c0.children):
        items.append(Kw(string(n), _expr([c.children[k][1] if c is not None else None for c in col], values_of, n)))
    return _ModuleDict(items, [n for n, _ in c0.children])


class _Opt(Call):
    """A call of a generated class: keyword items that are all at their default vanish."""


class _Loose(Call):
    """A parameter ("param", [shape]) or buffer (("buffer", dtype, persistent), [value]) of a plain
    container, registered on it in __init__ (_dict_lines)."""


class _Holder:
    """An instance stand-in holding one child (to reuse _buffer_column for a container's buffer)."""

    def __init__(self, name, c):
        self.name, self.c = name, c

    def child(self, name):
        return self.c if name == self.name else None


class _Named:
    """An nn.Sequential of named layers (written as a loop where the names run)."""

    def __init__(self, names, items):
        self.names, self.items = names, items


class _ModuleDict:
    def __init__(self, items, raw=None):
        self.items = items
        self.raw = raw  # the names of the entries (items hold them quoted)


class _ListSeq:
    """An nn.Sequential built from a list, entries appended where (pattern) instances have them."""

    def __init__(self, entries):
        self.entries = entries
        self.items = [e for _, e in entries]


def _torch_class(name):
    return "nn." + name[len("torch.nn."):] if name.startswith("torch.nn.") else name


def _hole(e):
    """A float of one instance (a stochastic depth rate) that may follow a loop's index."""
    return isinstance(e, _Slot) and len(e.values) == 1 and type(e.values[0]) is float


def _key(e, holes=False):
    if holes and _hole(e):
        return ("hole",)
    if isinstance(e, _Slot):
        return ("slot", tuple(map(_typed, e.values)))
    if isinstance(e, str):
        return e
    if isinstance(e, Call):
        return (type(e).__name__, e.head, tuple(_key(i, holes) for i in e.items))
    if isinstance(e, Kw):
        return ("kw", e.name, _key(e.value, holes))
    if isinstance(e, Star):
        return ("*", _key(e.value, holes))
    if isinstance(e, Comp):
        return ("comp", _key(e.elem, holes), e.clause)
    if isinstance(e, _ListSeq):
        return ("list", tuple((p, _key(i, holes)) for p, i in e.entries))
    if isinstance(e, (_Named, _ModuleDict)):
        return (type(e).__name__, tuple(getattr(e, "names", ())), tuple(_key(i, holes) for i in e.items))
    return repr(e)


def _compress(items):
    """Sequential entries; a run of 3 or more equal entries becomes `*[entry for _ in range(n)]`."""
    out, k = [], 0
    keys = [_key(i) for i in items]
    loose = [_key(i, True) for i in items]
    while k < len(items):
        j = k
        while j + 1 < len(items) and keys[j + 1] == keys[k]:
            j += 1
        h = k
        while h + 1 < len(items) and loose[h + 1] == loose[k]:
            h += 1
        elem = _indexed(items[k:h + 1]) if h - k >= 2 and h > j else None
        if elem is not None:  # values that follow the index: `0.2 * (3 + i) / 40`
            out.append(Star(Comp(elem, f"for i in range({h - k + 1})")))
            j = h
        elif j - k >= 2:
            out.append(Star(Comp(items[k], f"for _ in range({j - k + 1})")))
        else:
            out += items[k:j + 1]
        k = j + 1
    return out


def _holes(e):
    if _hole(e):
        yield e
    elif isinstance(e, (Call, _Named, _ModuleDict, _ListSeq)):
        for i in e.items:
            yield from _holes(i)
    elif isinstance(e, (Kw, Star)):
        yield from _holes(e.value)
    elif isinstance(e, Comp):
        yield from _holes(e.elem)


def _indexed(run):
    """The first entry of `run` with each float that changes along it written from the index
    `i` exactly (variants.progression), or None."""
    cols = list(zip(*[list(_holes(e)) for e in run]))
    texts = {}
    for col in cols:
        vals = [c.values[0] for c in col]
        if len(set(vals)) == 1:
            continue
        text = variants.progression(vals, _CONSTS[0], lit, _CONSTS[1])
        if text is None:
            return None
        texts[id(col[0])] = text
    return _subst(run[0], texts) if texts else None


def _subst(e, texts):
    if isinstance(e, _Slot):
        return texts.get(id(e), e)
    if isinstance(e, _Opt):
        return _Opt(e.head, [_subst(i, texts) for i in e.items])
    if isinstance(e, Call):
        return Call(e.head, [_subst(i, texts) for i in e.items])
    if isinstance(e, Kw):
        return Kw(e.name, _subst(e.value, texts))
    return e


def _name_pattern(names, lo, hi):
    """(prefix, suffix) when names[lo:hi] are prefix{lo}suffix ... prefix{hi-1}suffix."""
    m = re.fullmatch(r"(.*?)(\d+)(\D*)", names[lo])
    if m is None or int(m.group(2)) != lo or m.group(2) != str(lo):
        return None
    pre, suf = m.group(1), m.group(3)
    if any(names[i] != f"{pre}{i}{suf}" for i in range(lo, hi)):
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.\- ]*", pre + suf):
        return None
    return pre, suf


# ------------------------------------------------------------------ slots -> constructor arguments
def _params(cls, stmts):
    """Constructor arguments of a class: slots whose values differ between its instances."""
    insts = cls.insts
    found, partial, fixed = {}, {}, {}

    def visit(e):
        if isinstance(e, _Slot):
            vals = [v for v in e.values if v is not _ABSENT]
            if isinstance(e, _ArgSlot) and len({_typed(v) for v in vals}) == 1:
                fixed.setdefault((e.name,) + tuple(map(_typed, e.values)), e)
            if len({_typed(v) for v in vals}) > 1:
                found.setdefault(tuple(map(_typed, e.values)), e)
            elif len(vals) < len(e.values):  # in an optional child: constant where it exists
                partial.setdefault(tuple(map(_typed, e.values)), e)
        elif isinstance(e, (Call, _Named, _ModuleDict, _ListSeq)):
            for i in e.items:
                visit(i)
        elif isinstance(e, (Kw, Star)):
            visit(e.value)
        elif isinstance(e, Comp):
            visit(e.elem)
    for st in stmts:
        visit(st[1])
    params, exprs = {}, {}
    args = insts[0].block_args
    planes = "inplanes" if "planes" in args else "in_channels"

    def same(vals, other):
        return all(v is _ABSENT or _typed(v) == _typed(o) for v, o in zip(vals, other))
    cols = {a: [i.block_args.get(a) for i in insts] for a in args if ident(a) and a not in FILE_NAMES}
    if all(isinstance(i.in_c, int) for i in insts) and planes not in cols:
        cols = {planes: [i.in_c for i in insts], **cols}
    flags = [a for a in cols if all(isinstance(v, bool) for v in cols[a])]
    for s in found.values():  # one flag for every choice of layer where one flag makes them all
        if any(isinstance(v, variants.Code) for v in s.values):
            pairs = [(a, {(c, v) for c, v in zip(cols[a], s.values) if v is not _ABSENT}) for a in flags]
            flags = [a for a, p in pairs if len(p) == len({c for c, _ in p}) == len({v for _, v in p})] or flags
    tried = {**{a: cols[a] for a in flags}, **cols}  # those flags are tried first
    for key, s in found.items():
        vals = s.values
        got = variants.express(vals, tried, lambda v: v if isinstance(v, variants.Code) else lit(v), _ABSENT) \
            if cls.union else None
        if got is not None:  # a variant of a block: written from its arguments (variants.py)
            exprs[key] = got[0]
            for a in cols:
                if a in got[1]:
                    params.setdefault(a, cols[a])
            continue
        if any(isinstance(v, variants.Code) for v in vals):  # `hardswish if hs else relu`
            arg = next((a for a in args if ident(a) and all(isinstance(i.block_args.get(a), bool) for i in insts)
                        and len({(i.block_args[a], v) for i, v in zip(insts, vals) if v is not _ABSENT})
                        == 2 == len({v for v in vals if v is not _ABSENT})), None)
            if arg is None:
                raise ResdslError("unsupported", "the torch target cannot choose between the layers "
                                  + " and ".join(sorted({v for v in vals if v is not _ABSENT})))
            pick = {i.block_args[arg]: v for i, v in zip(insts, vals) if v is not _ABSENT}
            params.setdefault(arg, [i.block_args.get(arg) for i in insts])
            exprs[key] = f"{pick[True]} if {arg} else {pick[False]}"
            continue
        arg = next((a for a in args if ident(a) and same(vals, [i.block_args.get(a) for i in insts])), None)
        if arg is not None:
            params.setdefault(arg, [i.block_args.get(arg) for i in insts])
            exprs[key] = arg
            continue
        if all(isinstance(i.in_c, int) for i in insts) and same(vals, [i.in_c for i in insts]):
            params.setdefault(planes, [i.in_c for i in insts])
            exprs[key] = planes
            continue
        expr = _multiple(vals, insts)
        if expr is not None:
            a, text = expr
            params.setdefault(a, [i.block_args.get(a) for i in insts])
            exprs[key] = text
            continue
        want = s.hint.lower() if ident(s.hint.lower()) else "arg"
        want = want if want not in params else want + "_"
        params[want] = [v for v in vals]
        exprs[key] = want
    for key, s in fixed.items():  # a buffer's fn argument: `triu(length)` though every length is 64
        arg = s.name if s.name in cols and s.name in args and same(s.values, cols[s.name]) else None
        if arg is None and s.passed:  # passed down: the one argument of the caller with its value
            alike = [a for a in cols if a in args and same(s.values, cols[a])]
            arg = alike[0] if len(alike) == 1 else None
        if arg is not None:
            params.setdefault(arg, cols[arg])
            exprs[("fnarg",) + key] = arg
    cls.fn_params = {exprs[k] for k in exprs if k[:1] == ("fnarg",)} | {
        exprs.get(tuple(map(_typed, s.values))) for s in _arg_slots(stmts)}
    cls.fn_params &= set(params)
    for key, s in partial.items():  # `stride=stride` in a projection that only stride-2 blocks have
        if cls.union and any(isinstance(v, bool) for v in s.values):
            continue
        arg = next((a for a in params if a in args and same(s.values, [i.block_args.get(a) for i in insts])), None)
        if arg is not None:
            exprs[key] = arg
    if cls.union:  # the block's input, then its arguments in the .res order, then the rest
        rank = {a: k for k, a in enumerate(cols)}
        params = dict(sorted(params.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    cls.cols = cols
    return params, exprs


def _arg_slots(stmts):
    """The _ArgSlots in the constructor statements."""
    out, stack = [], [st[1] for st in stmts]
    while stack:
        e = stack.pop()
        if isinstance(e, _ArgSlot):
            out.append(e)
        elif isinstance(e, (Call, _Named, _ModuleDict, _ListSeq)):
            stack += list(e.items)
        elif isinstance(e, (Kw, Star)):
            stack.append(e.value)
        elif isinstance(e, Comp):
            stack.append(e.elem)
    return out


def _multiple(vals, insts):
    """(block parameter, `planes * 4`) when the values are a fixed multiple of a parameter."""
    for a in insts[0].block_args:
        pv = [i.block_args.get(a) for i in insts]
        if not ident(a) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pv):
            continue
        for k in range(2, 9):
            if all(v is _ABSENT or (isinstance(v, int) and v == p * k) for v, p in zip(vals, pv)):
                return a, f"{a} * {k}"
            if all(v is _ABSENT or (isinstance(v, int) and v == p // k) for v, p in zip(vals, pv)):
                return a, f"{a} // {k}"
    return None


def _render(e, exprs):
    """The pyfmt tree of `e` with slots replaced by argument names or literals."""
    if isinstance(e, _Slot):
        key = tuple(map(_typed, e.values))
        if isinstance(e, _ArgSlot) and ("fnarg", e.name) + key in exprs:
            return exprs[("fnarg", e.name) + key]
        if key in exprs:
            return exprs[key]
        v = next(v for v in e.values if v is not _ABSENT)
        return (variants.fraction(v, _CONSTS[0], lit, _CONSTS[1]) if len(e.values) == 1 else None) or lit(v)
    if isinstance(e, str):
        return e
    if isinstance(e, Kw):
        return Kw(e.name, _render(e.value, exprs))
    if isinstance(e, Star):
        return Star(_render(e.value, exprs))
    if isinstance(e, Comp):  # a repeated container of named layers is written as an expression
        return Comp(_as_expr(_render(e.elem, exprs)), e.clause)
    if isinstance(e, _Named):
        return _Named(e.names, [_render(i, exprs) for i in e.items])
    if isinstance(e, _ModuleDict):
        return _ModuleDict([_render(i, exprs) for i in e.items], e.raw)
    if isinstance(e, _ListSeq):
        return _ListSeq([(p, _as_expr(_render(i, exprs))) for p, i in e.entries])
    if isinstance(e, bufcode.Packed):
        return e
    if isinstance(e, Brackets):
        return Brackets(e.head + e.close, [_render(i, exprs) for i in e.items])
    return (_Loose if isinstance(e, _Loose) else Call)(e.head, [_as_expr(_render(i, exprs)) for i in e.items])


def _as_expr(r):
    """A container of named layers inside an expression: nn.Sequential(OrderedDict([...]))."""
    if isinstance(r, _Named):
        pairs = [Brackets("()", [string(n), _as_expr(i)]) for n, i in zip(r.names, r.items)]
        return Call("nn.Sequential", [Call("OrderedDict", [Brackets("[]", pairs)])])
    if isinstance(r, _ModuleDict):
        return Call("nn.ModuleDict", [Brackets("[]", [Brackets("()", [kw.name, _as_expr(kw.value)])
                                                      for kw in r.items])])
    return r


# ------------------------------------------------------------------ __init__ statements
def _init_lines(cls, stmts, exprs, uses):
    """Lines of __init__ (at 2 indents) for the rendered child statements."""
    lines = []
    for name, e, kind in stmts:
        if isinstance(kind, tuple):  # ("buffer", dtype, persistent): made on the CPU, kept by to_empty
            lines += _buffer_lines(2, "self", string(name), _render(e, exprs), kind[2])
            continue
        r = _render(e, exprs)
        target = f"self.{name}" if ident(name) else None
        if kind == "param":
            shape = r
            if target:
                lines += statement(2, f"{target} = ", Call("nn.Parameter", [Call("torch.empty", [shape])]))
            else:
                lines += statement(2, "", Call("self.register_parameter",
                                               [string(name), Call("nn.Parameter", [Call("torch.empty", [shape])])]))
            continue
        if isinstance(r, _Named):
            lines += _named_lines(name, target, r, uses)
            continue
        if isinstance(r, _ModuleDict):
            lines += _dict_lines(name, target, r, cls.typed, name)
            continue
        if isinstance(r, _ListSeq):  # torchvision's `layers: list[nn.Module] = []`
            lines.append("        layers = []")
            for pattern, item in r.entries:
                cond = cls.conds.get(pattern)
                if cond is None:
                    lines += statement(2, "", Call("layers.append", [item]))
                else:
                    lines.append(f"        if {cond}:")
                    lines += statement(3, "", Call("layers.append", [item]))
            lines.append(f"        {target} = nn.Sequential(*layers)")
            continue
        if name in cls.optional:
            lines.append(f"        {target} = None")
            lines.append(f"        if {cls.conds.get(name, name)}:")
            lines += statement(3, f"{target} = ", r)
        elif target:
            lines += statement(2, f"{target} = ", r)
        else:
            lines += statement(2, "", Call("self.add_module", [string(name), r]))
    return lines


def _buffer_lines(indent, owner, quoted, value, persistent):
    """`owner.register_buffer(quoted name, value)`: a packed literal on lines of its own (bufcode.Packed)."""
    tail = [] if persistent else ["persistent=False"]
    if isinstance(value, bufcode.Packed):
        rest = "".join(", " + t for t in tail) + ")"
        return value.lines(indent, f"{owner}.register_buffer({quoted}, ", rest)
    return statement(indent, "", Call(f"{owner}.register_buffer", [quoted, value] + tail))


def _dict_lines(name, target, r, typed=None, rel=None):
    """A plain container of named layers (no forward of its own): an nn.ModuleDict (or, holding a
    parameter with a random init, the file's subclass `typed[rel]`, looseinit.py); its own
    parameters and buffers registered on it, a container holding some filled in the same way."""
    ctor = f"{typed[rel]}()" if typed and rel in typed else "nn.ModuleDict()"
    if target is None:
        lines = [f"        self.add_module({string(name)}, {ctor})"]
        target = f"self.get_submodule({string(name)})"
    else:
        lines = [f"        {target} = {ctor}"]
    for k, kw in enumerate(r.items):
        v = kw.value
        if isinstance(v, _Loose) and v.head == "param":
            lines += statement(2, "", Call(f"{target}.register_parameter", [
                kw.name, Call("nn.Parameter", [Call("torch.empty", [v.items[0]])])]))
        elif isinstance(v, _Loose):
            lines += _buffer_lines(2, target, kw.name, v.items[0], v.head[2])
        elif isinstance(v, _ModuleDict) and _has_loose(v):
            sub = f"{rel}.{r.raw[k]}" if rel is not None and r.raw else None
            lines += _dict_lines(None, f"{target}[{kw.name}]", v, typed, sub)
        else:
            lines += statement(2, f"{target}[{kw.name}] = ", _as_expr(v))
    return lines


def _has_loose(r):
    return any(isinstance(kw.value, _Loose) or isinstance(kw.value, _ModuleDict) and _has_loose(kw.value)
               for kw in r.items)


def _named_lines(name, target, r, uses):
    """An nn.Sequential of named layers: a loop where consecutive names run and entries agree."""
    if target is None:
        lines = [f"        self.add_module({string(name)}, nn.Sequential())"]
        target = f"self.get_submodule({string(name)})"
    else:
        lines = [f"        {target} = nn.Sequential()"]
    keys = [_key(i) for i in r.items]
    k = 0
    while k < len(r.items):
        j = k
        while j + 1 < len(r.items) and keys[j + 1] == keys[k]:
            j += 1
        pat = _name_pattern(r.names, k, j + 1) if j > k else None
        if pat is not None:
            pre, suf = pat
            lines.append(f"        for i in range({k}, {j + 1}):" if k else f"        for i in range({j + 1}):")
            fmt = "f" + string(pre + "{i}" + suf)
            lines += statement(3, "", Call(f"{target}.add_module", [fmt, _as_expr(r.items[k])]))
            k = j + 1
            continue
        for m in range(k, j + 1):
            item = r.items[m]
            if isinstance(item, _Named):  # a named container in a named container: its own lines
                sub = f"{target}.{r.names[m]}" if ident(r.names[m]) else None
                lines += [ln for ln in _named_lines(r.names[m], sub, item, uses)] if sub else \
                    statement(2, "", Call(f"{target}.add_module", [string(r.names[m]), _as_expr(item)]))
                continue
            lines += statement(2, "", Call(f"{target}.add_module", [string(r.names[m]), _as_expr(item)]))
        k = j + 1
    return lines


# ------------------------------------------------------------------ forward
class _Forward:
    """The forward of a class, from the fx graph of its representative instance: values named
    locally (`out` along the main path, reused once dead), activations as modules."""

    def __init__(self, rep, optional, attrs: Names):
        self.rep, self.optional, self.attrs = rep, set(optional), attrs
        self.acts = {}  # constructor text -> attribute name
        self.lines = []
        self.modal = None  # the top class of a network with `training` outputs: (their indices, tuple class)

    def access(self, target: str) -> str:
        text, cur = "self", self.rep
        for part in target.split("."):
            kind = cur.kind if cur is not None else None
            if ident(part):
                text += "." + part
            elif kind == "seq" and part.isdigit():
                text += f"[{part}]"
            elif kind == "dict":
                text += f"[{string(part)}]"
            else:
                return f"self.get_submodule({string(target)})"
            cur = cur.child(part) if cur is not None else None
        return text

    def param(self, target: str) -> str:
        *mods, leaf = target.split(".")
        if ident(leaf):
            return (self.access(".".join(mods)) if mods else "self") + "." + leaf
        return f"self.get_parameter({string(target)})"

    def act(self, text: str) -> str:
        if text not in self.acts:
            want = re.sub(r"\(.*", "", text).split(".")[-1].lower()
            self.acts[text] = self.attrs.new(want)
        return "self." + self.acts[text]

    def write(self, g, arg_names: Names):
        nodes = list(g.nodes)
        left = {n: len(n.users) for n in nodes}
        var, inline = {}, {}
        live = {}  # variable name -> node holding it
        params = []
        out = self.lines

        def text(a):
            if isinstance(a, torch.fx.Node):
                return inline[a] if a in inline else var[a]
            if isinstance(a, (list, tuple)) and any(isinstance(x, torch.fx.Node) for x in a):
                inner = ", ".join(text(x) for x in a)
                return f"[{inner}]" if isinstance(a, list) else f"({inner}{',' if len(a) == 1 else ''})"
            return lit(a)

        train_nodes = _train_only_nodes(nodes, self.modal[0]) if self.modal else set()
        in_train = False

        def fresh(want):
            want = re.sub(r"\W", "_", want.lower(), flags=re.ASCII) or "out"
            if not ident(want) or want in FILE_NAMES or keyword.iskeyword(want):
                want = "out"
            elif want in _BUILTINS:  # `round = x.round()` would shadow Python's own: `round_`
                want += "_"
            name, k = want, 2
            while name in live or name in FILE_NAMES or name in params:
                name, k = f"{want}{k}", k + 1
            return name

        for n in nodes:
            if n.op == "placeholder":
                var[n] = arg_names.new(n.name)
                params.append(var[n])
                live[var[n]] = n
                continue
            if n.op == "get_attr":
                inline[n] = self.access(n.target) if n.users and all(
                    u.op == "call_function" and u.target in (runtime.checkpoint, runtime.checkpoint_chain)
                    for u in n.users) else self.param(n.target)
                continue
            if n.op == "output":
                res = n.args[0]
                if self.modal:  # as torchvision: the namedtuple in training mode, the main output(s) in eval
                    idx, tuple_cls = self.modal
                    out.append("        if self.training:")
                    out += statement(3, "return ", Call(tuple_cls, [text(x) for x in res]))
                    res = [x for i, x in enumerate(res) if i not in idx]
                    res = res[0] if len(res) == 1 else tuple(res)
                res = ", ".join(text(x) for x in res) if isinstance(res, (tuple, list)) else text(res)
                out.append(f"        return {res}")
                continue
            ins = [a for a in n.all_input_nodes]
            first = n.args[0] if n.args and isinstance(n.args[0], torch.fx.Node) and n.args[0] not in inline \
                else None
            if n.op == "call_function" and n.target is operator.getitem and n.args[0] not in inline:
                inline[n] = f"{text(n.args[0])}[{lit(n.args[1])}]"
                continue
            if n.op == "call_function" and n.target is getattr and isinstance(n.args[1], str) \
                    and ident(n.args[1]):  # `x.device` (arange's device)
                inline[n] = f"{text(n.args[0])}.{n.args[1]}"
                continue
            for a in ins:
                left[a] -= 1
            for a in ins:
                if left[a] == 0 and a in var and live.get(var[a]) is a:
                    del live[var[a]]
            lvl = 3 if n in train_nodes else 2  # an op only the `training` outputs need: under `if self.training:`
            pad = "    " * lvl
            if (n in train_nodes) != in_train:
                in_train = n in train_nodes
                if in_train:
                    out.append("        if self.training:")
            if n.op == "call_module" and n.target in self.optional:
                a = text(n.args[0])
                name = fresh("identity")
                acc = self.access(n.target)
                out.append(f"{pad}{name} = {a}")
                out.append(f"{pad}if {acc} is not None:")
                out += statement(lvl + 1, f"{name} = ", Call(acc, [a]))
            elif n.op == "call_function" and operator_symbol(n.target) == "+=":
                name = var[n.args[0]]
                out.append(f"{pad}{name} += {text(n.args[1])}")
            else:
                expr, want = self.expr(n, text)
                if n.meta.get("res_name"):  # a size read at run time: named by its axis (`h = x.size(2)`)
                    name = fresh(n.meta["res_name"])
                elif first is not None and first.op != "placeholder" and left[first] == 0 and var.get(first) \
                        not in live:
                    name = var[first]
                else:
                    name = fresh("out" if "out" not in live else want)
                out += statement(lvl, f"{name} = ", expr)
            var[n] = name
            if left[n] > 0:
                live[name] = n
        return params

    def expr(self, n, text):
        """(pyfmt expression, a name for its value) of one fx node."""
        args = [text(a) for a in n.args]
        kws = [Kw(k, text(v)) for k, v in n.kwargs.items()]
        # a list of tensors as a call's argument (torch.cat([...])) is wrapped item by item when long
        items = [Brackets("[]", [text(x) for x in a]) if isinstance(a, list) and len(a) > 1
                 and any(isinstance(x, torch.fx.Node) for x in a) else t for a, t in zip(n.args, args)]
        if n.op == "call_module":
            return Call(self.access(n.target), items + kws), n.target.split(".")[-1]
        if n.op == "call_method":
            return Call(f"{args[0]}.{n.target}", args[1:] + kws), n.target
        fn = n.target
        if len(n.args) >= 1 and fn in ACTIVATIONS:
            ctor = as_module(n, lambda a, kw: ", ".join([lit(x) for x in a]
                                                         + [f"{k}={lit(v)}" for k, v in kw.items()]))
            if ctor is not None and not any(isinstance(a, torch.fx.Node) for a in n.args[1:]):
                return Call(self.act(ctor), [args[0]]), self.acts[ctor]
        sym = operator_symbol(fn)
        if sym is not None and len(args) == 2 and not kws:
            if sym == "**" and all(_SIMPLE_POWER.fullmatch(a) for a in args):  # as ruff format writes it: x**2.0
                return f"{args[0]}**{args[1]}", "out"
            return f"{args[0]} {sym} {args[1]}", "out"
        if fn is operator.neg:
            return f"-{args[0]}", "out"
        name = function_name(fn)
        return Call(name, items + kws), name.split(".")[-1].rstrip("_")


def _train_only_nodes(nodes, train_idx) -> set:
    """The fx nodes that only the outputs at `train_idx` (those marked `training`) need."""
    res = nodes[-1].args[0]
    res = list(res) if isinstance(res, (tuple, list)) else [res]
    need, stack = set(), [r for i, r in enumerate(res) if i not in train_idx and isinstance(r, torch.fx.Node)]
    while stack:
        m = stack.pop()
        if m not in need:
            need.add(m)
            stack.extend(m.all_input_nodes)
    return {m for m in nodes if m.op not in ("placeholder", "output") and m not in need}


def _outputs_class(graph, names) -> tuple:
    """(class name, lines) of the NamedTuple a network with `training` outputs returns in training mode."""
    from .training import outputs_class, outputs_name
    cname = names.new(outputs_name(graph), suffix="")
    fields = outputs_class(cname, list(graph.output_names))._fields
    lines = [f"class {cname}(NamedTuple):"] + [f"    {f}: torch.Tensor" for f in fields]
    return cname, lines


# a simple operand of `**` (a name, an attribute, a number): ruff format hugs the operator
_SIMPLE_POWER = re.compile(r"-?[A-Za-z_0-9.]+(e[-+][0-9]+)?")


# ------------------------------------------------------------------ initialisation
def _init_call(target: str, spec) -> list:
    """Statements (pyfmt trees) initialising tensor `target` from a `.res` init spec, as
    runtime.init_tensor does."""
    kind, *a = spec
    if kind in ("zeros", "ones", "xavier_uniform", "xavier_normal", "orthogonal", "eye"):
        return [Call(f"nn.init.{kind}_", [target])]
    if kind == "constant":
        return [Call("nn.init.constant_", [target, lit(a[0])])]
    if kind == "normal":
        return [Call("nn.init.normal_", [target] + ([Kw("std", lit(a[0]))] if a else []))]
    if kind == "trunc_normal":
        std = lit(a[0] if a else 1.0)
        return [Call("nn.init.trunc_normal_", [target, Kw("std", std), Kw("a", f"-2 * {std}"),
                                                Kw("b", f"2 * {std}")])]
    if kind == "uniform":
        lo, hi = (list(a) + [0.0, 1.0][len(a):])[:2]
        return [Call("nn.init.uniform_", [target, lit(lo), lit(hi)])]
    if kind in ("kaiming_normal", "kaiming_uniform"):
        mode = string(a[0] if a else "fan_in")
        return [Call(f"nn.init.{kind}_", [target, Kw("mode", mode), Kw("nonlinearity", '"relu"')])]
    if kind == "onehot":
        return [Call("nn.init.zeros_", [target]), "with torch.no_grad():",
                f"    {target}.view(-1)[{int(a[0])}] = 1.0"]
    if kind == "default":
        return []
    raise ResdslError("unsupported", f"the torch target cannot write the init `{kind}`")


def _tensor(m: str, p: str) -> str:
    return f"{m}.{p}" if ident(p) else f"{m}.get_parameter({string(p)})"


def _action_lines(m: str, act, optional=()) -> list:
    """Lines (str at relative indent, or (extra indent, tree)) of one module's initialisation."""
    reset, explicit = act
    out = [f"{m}.reset_parameters()"] if reset else []
    for p, spec in explicit:
        calls = _init_call(_tensor(m, p), spec)
        if p in optional:
            out.append(f"if {_tensor(m, p)} is not None:")
            out += [(1, c) if not isinstance(c, str) else "    " + c for c in calls]
        else:
            out += calls
    return out


def _emit(lines, indent, body):
    for b in body:
        if isinstance(b, str):
            lines.append("    " * indent + b)
        elif isinstance(b, tuple):
            lines += statement(indent + b[0], "", b[1])
        else:
            lines += statement(indent, "", b)


def _init_function(plan, top, classes, spans) -> list:
    """`init_weights(model)`: torchvision's init loop, then the layers that differ from their kind."""
    by_action = {}
    for cls, act in plan.rules.items():
        opt = frozenset(plan.optional(cls))
        if _action_lines("m", act):
            by_action.setdefault((act, opt), []).append(_torch_class(cls))
    branches = []
    exact = "SelfAttention" in plan.rules  # its out_proj is an nn.Linear that it initialises itself
    for (act, opt), names in by_action.items():
        test = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
        if exact and "nn.Linear" in names:
            test = f"type(m) is {test}" if len(names) == 1 else ("type(m) in ", Brackets("()", names))
        else:  # a long class tuple is split as ruff format splits it
            test = Call("isinstance", ["m", names[0] if len(names) == 1 else Brackets("()", names)])
        branches.append((test, _action_lines("m", act, opt)))
    for cls in classes:
        body = []
        for n, c in cls.rep.children:
            if c.kind == "param":
                body += _init_call(_tensor("m", n), c.spec)
        for text, _, spec in looseinit.collect(cls.rep, cls.typed):  # conv.eps of a plain container conv
            body += _init_call(text, spec)
        if body:
            branches.append((f"isinstance(m, {cls.name})", body))
        for rel, cname in cls.typed.items():  # drawn when the walk reaches the container, as build() does
            body = []
            for n, c in looseinit.at(cls.rep, rel).children:
                if c.kind == "param":
                    body += _init_call(_tensor("m", n), c.spec)
            branches.append((f"isinstance(m, {cname})", body))
    lines = ["def init_weights(model):",
             '    """Initialise every tensor as the .res file says, in the order the compiler does."""']
    if branches:
        lines.append("    for m in model.modules():")
        for k, (test, body) in enumerate(branches):
            kw = "if " if k == 0 else "elif "
            lines += statement(2, kw + test[0], test[1], ":") if isinstance(test, tuple) else \
                statement(2, kw, test, ":")
            _emit(lines, 3, body)
    covered = {c.path for i in _all(top) if i.kind == "block" and i.group is not None
               for rel in i.group.typed for _, c in looseinit.at(i, rel).children}
    covered |= {path for i in _all(top) if i.kind == "block" and i.group is not None
                for _, path, _ in looseinit.collect(i, i.group.typed)}
    looseinit.check(top, covered, spans)
    for path in plan.overrides:
        _emit(lines, 1, _action_lines(f"model.get_submodule({string(path)})", plan.actions[path][1]))
    if len(lines) == 2:
        lines.append("    del model  # nothing to initialise")
    return lines


def _all(inst):
    yield inst
    for _, c in inst.children:
        yield from _all(c)


# ------------------------------------------------------------------ the file
def to_python(graph: Graph, source: str = "", weights_file: str | None = None, checkpoint=None) -> str:
    """A standalone module (only torch needed) defining `<network>(seed=None)`.

    With `weights_file` (a file name beside the .py, e.g. the folded weights of -O2) the function
    is `<network>(seed=None, weights=<that file>)` and loads the weights with strict=True."""
    check_names(graph)
    owners = {n.path: (n, rec) for n, rec in TF.state_owners(graph)}
    gm, tree, first = lower_with_plan(graph, TF.build_modules(graph, device="meta"), checkpoint)
    sites = {s.path: s for s in all_sites(tree) if s.primary is s}
    fn_name = re.sub(r"\W", "_", graph.name, flags=re.ASCII)
    if not ident(fn_name) or fn_name in FILE_NAMES or fn_name in dir(__builtins__) or fn_name[0].isdigit():
        fn_name = fn_name + "_"
    _FNS[0] = fnpy.Translator(FILE_NAMES | {fn_name})  # the fns buffers come from, in Python
    try:
        top = _describe(gm, "", "", owners, first, sites)
    finally:
        translator, _FNS[0] = _FNS[0], None
    top.label = graph.root.info.get("block") or graph.name
    names = Names(FILE_NAMES | {fn_name})
    classes = _assign_classes(top)
    given = list((graph.root.info.get("params") or {}).values())
    _CONSTS[:] = [list(dict.fromkeys(v for v in given if type(v) is float)), [v for v in given if type(v) is int]]
    for cls in classes:
        label = cls.insts[0].label
        want = TF.module_class_name(label) if isinstance(label, str) and label else "Block"
        cls.name = names.new(want if want != fn_name else want + "Module", suffix="")
    top_cls = top.group
    bodies = []
    modal = _outputs_class(graph, names) if graph.train_only else None
    if modal:
        bodies.append(modal[1])
    for cls in classes:  # post-order: a class's children are written before it
        cls.typed = looseinit.typed(cls.rep, cls.name, names)
        for cname in cls.typed.values():
            bodies.append(looseinit.class_lines(cname))
        bodies.append(_class_lines(cls, cls is top_cls, graph, owners, modal and (graph.train_only, modal[0])))
    plan = initplan.Plan(graph)
    init_fn = _init_function(plan, top, classes, {p: n.span for p, (n, _) in owners.items()})
    ties = [(path, local, owner) for path, (n, _) in owners.items() for local, owner in n.attrs.get("_tie", ())]
    text = "\n".join(ln for b in bodies for ln in b)
    use_ckpt = "checkpoint(" in text or "checkpoint_chain(" in text
    lines = [f'"""{fn_name}: a network generated by resdsl from the .res file named in SOURCE.', "",
             f"Edit the .res file, not this one. `{fn_name}(seed=None)` returns the network as a",
             'torch.nn.Module. It needs only torch."""', ""]
    if any(len(ln) > 100 for ln in lines):  # a long network name: wrap both paragraphs
        lines = textwrap.wrap(lines[0], 99) + [""] + textwrap.wrap(" ".join(lines[2:4]), 99) + [""]
    if weights_file is not None:
        lines.append("import os")
        lines.append("")
    if translator.uses_math:
        lines.append("import math")
    lines.append("import torch")
    if "F." in text:
        lines.append("import torch.nn.functional as F  # noqa: N812 (as torchvision writes it)")
    if use_ckpt:
        lines.append("import torch.utils.checkpoint")
    if "OrderedDict(" in text:
        lines.insert(lines.index("import torch"), "from collections import OrderedDict\n")
    if modal:
        lines.insert(lines.index("import torch"), "from typing import NamedTuple\n")
    lines += ["from torch import nn", "", f"SOURCE = {string(source or '<string>')}"]
    used = sorted({c.cls for c in _all(top) if c.kind == "leaf" and c.cls in TF.RUNTIME_CLASSES})
    for name in used:
        lines += ["", "", inspect.getsource(getattr(runtime, name)).rstrip()]
    if "Permute(" in text:
        lines += ["", "", PERMUTE]
    lines += [ln for fn in runtime.FILE_FUNCTIONS if f"{fn.__name__}(" in text
              for ln in ("", "", inspect.getsource(fn).rstrip())]
    if use_ckpt:
        for fn in runtime.CHECKPOINT_HELPERS:
            lines += ["", "", inspect.getsource(fn).rstrip()]
    for d in translator.defs.values():  # the .res fns that compute the buffers
        lines += ["", ""] + d
    for b in bodies:
        lines += ["", ""] + b
    lines += ["", ""] + init_fn + ["", ""]
    tie_lines = []
    for path, local, owner in ties:
        mod = f"model.get_submodule({string(path)})"
        tie_lines += statement(1, f"{mod}.{local} = " if ident(local) else "",
                               f"model.get_parameter({string(owner)})" if ident(local) else
                               Call("setattr", [mod, string(local), f"model.get_parameter({string(owner)})"]))
    lines += _entry(fn_name, top_cls.name, weights_file, tie_lines, any(n.op == "buffer" for n in graph.nodes))
    return "\n".join(lines) + "\n"


def _class_lines(cls, is_top, graph, owners, modal=None) -> list:
    rep, insts = cls.rep, cls.insts
    stmts = []
    for name, c in rep.children:
        if c.kind == "param":
            stmts.append((name, _Slot(tuple(i.child(name).args for i in insts), f"{name}_shape"), "param"))
        elif c.kind == "buffer":  # one structure per class (_shape_key): a fn call or a literal
            stmts.append((name, _buffer_column(insts, name), ("buffer",) + c.spec))
        else:
            stmts.append((name, _expr(_col(insts, name), _values_of, name), c.kind))
    params, exprs = _params(cls, stmts)
    defaults = {}
    for p in params:
        d = rep.defaults.get(p, _ABSENT)
        if d is not _ABSENT and all(_typed(v) in (_typed(d),) or True for v in params[p]):
            defaults[p] = d
    for p in params:  # used only by a layer some instances lack: None where it is not used
        if p not in defaults and any(v is _ABSENT for v in params[p]):
            defaults[p] = None
    keys = [_graph_key(i.graph, cls.optional) for i in insts]
    res = None  # instances with the residual at the end of their forward, where some lack it
    if len(set(keys)) > 1:
        long = max(keys, key=len)
        res = tuple(k == long for k in keys)
        found = _condition(cls, res, params)
        if found is None:
            params["use_res_connect"] = list(res)
        cls.conds["use_res_connect"] = found or "use_res_connect"
    for o in cls.optional:  # whether the instance has it: a condition or a flag, False where it lacks it
        pattern = [i.child(o) is not None for i in insts]
        found = _condition(cls, pattern, params) if cls.union else None
        if found is None and res is not None:
            found = _condition(cls, pattern, params, within=res)
            found = found and f"self.use_res_connect and {found}"
        if found is not None:
            cls.conds[o] = found
            continue
        flag = o if o not in params else o + "_"
        params[flag] = pattern
        defaults[flag] = False
        cls.conds[o] = flag
    for st in stmts:
        if isinstance(st[1], _ListSeq):
            for pattern, _ in st[1].entries:
                if all(pattern) or pattern in cls.conds:
                    continue
                found = _condition(cls, pattern, params)
                if found is None:
                    found = f"{st[0]}_{len(cls.conds)}"
                    params[found] = list(pattern)
                    defaults[found] = False
                cls.conds[pattern] = found
    order = [p for p in params if p not in defaults] + [p for p in params if p in defaults]
    cls.params = [(p, defaults.get(p, _ABSENT)) for p in order]
    for k, inst in enumerate(insts):
        cls.values[id(inst)] = {p: params[p][k] for p in order}
    attrs = Names(FILE_NAMES | {n for n, _ in rep.children} | set(dir(torch.nn.Module)))
    fwd = _Forward(rep, cls.optional, attrs)
    fwd.modal = modal if is_top else None
    arg_names = Names(FILE_NAMES | {"self"})
    init = []
    if res is None:
        args = fwd.write(rep.graph, arg_names)
    else:
        plain = next(i for i, r in zip(insts, res) if not r)
        args = fwd.write(plain.graph, Names(FILE_NAMES | {"self"}))
        whole = max((i for i, r in zip(insts, res) if r), key=lambda i: len(i.children))
        full = _Forward(whole, cls.optional, attrs)
        full.acts = fwd.acts
        full.write(whole.graph, arg_names)
        head, ret = fwd.lines[:-1], fwd.lines[-1]
        if full.lines[:len(head)] != head or not ret.startswith("        return "):
            raise ResdslError("unsupported", f"the torch target cannot write the block {cls.insts[0].label}")
        tail, ret2 = full.lines[len(head):-1], full.lines[-1]
        if not tail:
            raise ResdslError("unsupported", f"the torch target cannot write the block {cls.insts[0].label}")
        fwd.lines = head + ["        if self.use_res_connect:"] + ["    " + ln for ln in tail]
        if ret2 != ret:
            fwd.lines.append(f"            {ret[len('        return '):]} = {ret2[len('        return '):]}")
        fwd.lines.append(ret)
        init.append(f"        self.use_res_connect = {cls.conds['use_res_connect']}")
    init += _init_lines(cls, stmts, exprs, None)
    init += [f"        self.{a} = {t}" for t, a in fwd.acts.items()]
    if is_top:
        for path, (n, _) in owners.items():
            for local, owner in n.attrs.get("_tie", ()):
                mod = f"self.get_submodule({string(path)})"
                init += statement(2, f"{mod}.{local} = ", f"self.get_parameter({string(owner)})") if ident(local) \
                    else statement(2, "", Call("setattr", [mod, string(local), f"self.get_parameter({string(owner)})"]))
        init.append("        init_weights(self)")
    sig = ["self"] + [p if d is _ABSENT else f"{p}={lit(d)}" for p, d in cls.params]
    lines = [f"class {cls.name}(nn.Module):"]
    lines += statement(1, "def ", Call("__init__", sig), ":")
    lines += ["        super().__init__()"] + init + [""]
    lines += statement(1, "def ", Call("forward", ["self"] + args), ":")
    lines += fwd.lines
    return lines


def _condition(cls, pattern, params, within=None):
    """A condition on the block's arguments (variants.condition); those it tests become
    constructor arguments."""
    cand = {**{a: v for a, v in cls.cols.items()}, **params} if cls.union else dict(params)
    cand = {a: v for a, v in cand.items() if _ABSENT not in v}
    found = variants.condition(pattern, cand, within)
    if found is not None:
        for a in cand:
            if a not in params and re.search(rf"\b{re.escape(a)}\b", found):
                params[a] = cand[a]
    return found


def _values_of(inst):
    return inst.group.values[id(inst)]


def _entry(fn_name, cname, weights_file, tie_lines, buffers=False) -> list:
    """The function that builds the network: modules made on the meta device (nothing drawn),
    then given storage and initialised under `seed`, as resdsl.build does."""
    lines = []
    noqa = "" if fn_name.islower() or not any(c.isalpha() for c in fn_name) else "  # noqa: N802 (the network's name)"
    if weights_file is not None:
        lines += [f"WEIGHTS = os.path.join(os.path.dirname(__file__), {string(weights_file)})", "", "",
                  f"def {fn_name}(seed=None, weights=WEIGHTS):{noqa}",
                  '    """Build the network and load `weights` (a state_dict or a file, by default WEIGHTS)."""']
    else:
        lines += [f"def {fn_name}(seed=None):{noqa}",
                  '    """Build the network, with reproducible initial weights for a given `seed`."""']
    lines += ['    with torch.device("meta"):', f"        model = {cname}()"]
    if buffers:  # to_empty gives every tensor new storage: the constant buffers are put back
        lines += ["    consts = {k: b for k, b in model.named_buffers() if not b.is_meta}",
                  '    model.to_empty(device="cpu")',
                  "    for k, b in consts.items():",
                  "        model.get_buffer(k).copy_(b)"]
    else:
        lines.append('    model.to_empty(device="cpu")')
    lines += tie_lines
    init = ["with torch.random.fork_rng(devices=[], enabled=seed is not None):",
            "    if seed is not None:", "        torch.manual_seed(seed)", "    init_weights(model)"]
    if weights_file is not None:
        lines += ["    if weights is None:"] + ["        " + x for x in init] + [
            "    else:", "        if not isinstance(weights, dict):",
            '            weights = torch.load(weights, map_location="cpu", weights_only=True)',
            "        model.load_state_dict(weights, strict=True)"]
    else:
        lines += ["    " + x for x in init]
    return lines + ["    return model"]
