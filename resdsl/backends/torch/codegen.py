"""The standalone ``.py`` file of the torch target: one ``nn.Module`` class per distinct block.

The file is written from the same module tree as ``resdsl.build`` (built on the meta
device): each module's forward is its fx graph's code, each class's ``__init__`` creates
its children with the ``.res`` names. Instances of one block that differ only in sizes
share a class; what differs becomes a constructor argument, named after the ``.res``
block parameter with the same values where there is one. Modules are created depth-first
in first-use order, which is the order ``build`` creates (and initialises) them, so
``net(seed=s)`` and ``resdsl.build(..., seed=s)`` give the same weights.

Nothing from the input reaches the file except as a ``repr`` literal or a checked
identifier: names that are keywords, builtins or the file's own names are renamed in
the file (never in the state_dict), and non-finite floats are written as ``float("inf")``.
"""
from __future__ import annotations

import builtins
import inspect
import io
import keyword
import math
import re
import tokenize

import torch

from . import runtime
from ...diagnostics import ResdslError
from ...ir.graph import Graph
from . import ops as TF
from .lower import ResModule, lower_with_plan
from .tree import all_sites, check_names

# file-level names the generated code defines or uses; nothing from the input may shadow them
_FILE_NAMES = {"torch", "operator", "os", "init", "init_tensor", "checkpoint", "checkpoint_chain", "_chain",
               "SOURCE", "WEIGHTS", "DropPath", "LayerScale", "SelfAttention", "self", "super", "range",
               "float", "getattr", "isinstance", "dict", "int", "str", "len", "tuple", "list"}
# fx names a global after its module path: resdsl.backends.torch.runtime.checkpoint -> resdsl_backends_..._checkpoint
_RT = runtime.__name__.replace(".", "_")
_CKPT = ((_RT + "_checkpoint_chain", "checkpoint_chain"), (_RT + "_checkpoint", "checkpoint"))
# values torch leaves out of a constructor call (module_recipe drops them): used to line up instances
_FILL = dict(TF._DEFAULTS, padding_mode="zeros", causal=False)


class _Names:
    """A namespace of identifiers safe to define in the generated file."""

    def __init__(self, taken=()):
        self.taken = set(taken) | set(_FILE_NAMES) | set(dir(builtins)) | set(keyword.kwlist)

    def new(self, want: str, suffix: str = "_") -> str:
        name = re.sub(r"\W", "_", want, flags=re.ASCII) or "v"
        if name[0].isdigit():
            name = "_" + name
        if name in self.taken or keyword.iskeyword(name) or name.startswith("__"):
            base = name.strip("_") + suffix
            if not base.isidentifier():  # "_0" taken: "0" is no identifier, "M0" is
                base = "M" + base
            name, k = base, 2
            while name in self.taken:
                name, k = f"{base}{k}", k + 1
        self.taken.add(name)
        return name


def _lit(v) -> str:
    """A Python literal for a value from the IR (numbers, strings, bools, None, tuples, lists)."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else '-float("inf")'
        return repr(v)
    if isinstance(v, (int, str)):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_lit(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    raise ResdslError("unsupported", f"the torch target cannot write the value {type(v).__name__}")


def _attr(name: str) -> str:
    """`self.name`, or getattr(self, "0") where the name is not an identifier."""
    return f"self.{name}" if name.isidentifier() else f"getattr(self, {name!r})"


# ------------------------------------------------------------------ instances
class _Inst:
    """One module of the tree, described for code generation."""

    def __init__(self, kind, path, name):
        self.kind, self.path, self.name = kind, path, name  # kind: block | seq | dict | leaf | param
        self.children = []  # (name, _Inst)
        self.cls = None  # block: class name; leaf: torch class expression
        self.code = None
        self.label = None
        self.args = ()  # leaf: positional; param: shape
        self.kwargs = {}
        self.inits = []
        self.explicit = False
        self.group = None  # block: its _Class
        self.block_args = {}


class _Class:
    def __init__(self, insts):
        self.insts = insts
        self.name = None
        self.params = []  # names of constructor arguments
        self.slots = {}  # slot id -> param name or None (a constant)


def _describe(mod, path, name, owners, first, sites):
    inst = None
    if path in owners and owners[path][1] is not None:
        n, rec = owners[path]
        inst = _Inst("leaf", path, name)
        inst.cls, inst.args, inst.kwargs, inst.inits = rec
        inst.explicit = TF._explicit_init(inst.cls, inst.inits, n)
        return inst
    if isinstance(mod, ResModule):
        inst = _Inst("block", path, name)
        inst.code = _forward_src(mod)
        site = sites.get(path)
        inst.label = TF._class_name(site.label) if site is not None else "Block"
        if site is not None:
            s = site.scope
            while s is not None and s.path == site.path:
                if s.kind == "block":
                    inst.block_args = dict(s.info.get("args", {}))
                    break
                s = next((c for c in s.children if c.path == s.path), None)
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
        p.inits = [("", spec.init or ("zeros",))]
        kids.append((first.get(full, 0), p))
    for cname, child in mod._modules.items():
        kids.append((first.get(pre + cname, 1 << 60), _describe(child, pre + cname, cname, owners, first, sites)))
    if inst.kind != "seq":
        kids.sort(key=lambda t: t[0])  # creation order = first use (stable for ties)
    inst.children = [(k.name, k) for _, k in kids]
    return inst


def _forward_src(mod) -> str:
    """The fx code of a module's forward, without fx's `x = None` bookkeeping."""
    src = mod._code
    lines = []
    for ln in src.strip("\n").splitlines():
        ln = re.sub(r";  (\w+ = )+None$", "", ln.rstrip())
        if ln.strip():
            lines.append(ln)
    return "\n".join(lines)


# ------------------------------------------------------------------ classes
def _shape_key(inst):
    """What must agree for two block instances to share a class (sizes may differ)."""
    if inst.kind == "leaf":
        kws = tuple(sorted(k for k in inst.kwargs if k not in _FILL))  # others line up with their default
        return ("leaf", inst.name, inst.cls, len(inst.args), kws, tuple(p for p, _ in inst.inits), inst.explicit)
    if inst.kind == "param":
        return ("param", inst.name, len(inst.args))
    if inst.kind == "block":
        return ("block", inst.name, id(inst.group))
    return (inst.kind, inst.name, tuple(_shape_key(c) for _, c in inst.children))


def _kw_keys(insts):
    """Keyword names over instances, in the recipe's order (an instance may leave a default out)."""
    keys = {}
    for i in insts:
        keys.update(dict.fromkeys(i.kwargs))
    return list(keys)


def _assign_classes(top):
    """Post-order: group block instances into classes (same label, forward and layout)."""
    groups = {}
    classes = []

    def visit(inst):
        for _, c in inst.children:
            visit(c)
        if inst.kind != "block":
            return
        key = (inst.label, inst.code, tuple(_shape_key(c) for _, c in inst.children))
        cls = groups.get(key)
        if cls is None:
            cls = groups[key] = _Class([])
            classes.append(cls)
        cls.insts.append(inst)
        inst.group = cls
    visit(top)
    return classes


def _leaves(inst):
    out = []
    for name, c in inst.children:
        if c.kind == "leaf":
            out.append((name, c))
        elif c.kind in ("seq", "dict"):
            out += _leaves(c)
    return out


def _name_classes(classes, names: _Names, top_cls):
    by_label = {}
    for c in classes:
        if c is top_cls:
            continue
        by_label.setdefault(c.insts[0].label, []).append(c)
    for label, cs in by_label.items():
        base = min(cs, key=lambda c: (len(c.insts[0].children), cs.index(c)))
        base_names = {n for n, _ in base.insts[0].children}
        for c in [base] + [c for c in cs if c is not base]:
            want = label
            if c is not base:
                extra = [n for n, _ in c.insts[0].children if n not in base_names]
                want = label + "".join(TF._class_name(e) for e in extra if e.isidentifier()) if extra else label
            c.name = names.new(want, suffix="")


# ------------------------------------------------------------------ constructor code
class _Slot:
    __slots__ = ("values", "hint")

    def __init__(self, values, hint):
        self.values, self.hint = values, hint


def _ctor_parts(insts, cls_of):
    """Statements of __init__ for a group of instances: a list of lists of str | _Slot."""
    stmts = []
    first = insts[0]
    for k, (name, c0) in enumerate(first.children):
        col = [i.children[k][1] for i in insts]
        stmts += _child_stmts(name, col, cls_of, target=_attr(name))
    return stmts


def _expr(col, cls_of, hint):
    """A constructor expression (list of parts) for one child across instances."""
    c0 = col[0]
    if c0.kind == "leaf":
        sig = inspect.signature(TF._CLASSES[c0.cls]) if c0.cls in TF._CLASSES else None
        pnames = list(sig.parameters) if sig else []
        pnames = [p for p in pnames if p != "self"]
        parts = [f"torch.nn.utils.skip_init({c0.cls}, " if c0.explicit else f"{c0.cls}("]
        items = []
        for j in range(len(c0.args)):
            pn = pnames[j] if j < len(pnames) else f"arg{j}"
            items.append([_Slot(tuple(i.args[j] for i in col), f"{hint}_{pn}")])
        for kw in _kw_keys(col):
            vals = tuple(i.kwargs.get(kw, _FILL.get(kw)) for i in col)
            items.append([f"{kw}=", _Slot(vals, f"{hint}_{kw}")])
        # keywords at their default in every instance are left out, as a person would
        items = [it for it in items if not (len(it) == 2 and it[0][:-1] in _FILL
                                            and all(v == _FILL[it[0][:-1]] for v in it[1].values))]
        for j, it in enumerate(items):
            parts += ([", "] if j else []) + it
        parts.append(")")
        if c0.inits:
            parts = ["init("] + parts
            for p, _ in c0.inits:
                parts += [f", {p}=", _Slot(tuple(dict(i.inits)[p] for i in col), f"{hint}_{p}_init")]
            parts.append(")")
        return parts
    if c0.kind == "block":
        cls = c0.group
        parts = [cls.name + "("]
        for j, pn in enumerate(cls.params):
            parts += ([", "] if j else []) + [_Slot(tuple(cls_of[id(i)][pn] for i in col), pn)]
        parts.append(")")
        return parts
    if c0.kind == "seq":
        items = [_expr([i.children[k][1] for i in col], cls_of, f"{hint}_{name}")
                 for k, (name, _) in enumerate(c0.children)]
        return ["torch.nn.Sequential("] + _compress(items) + [")"]
    # a plain container of named children
    parts = ["torch.nn.ModuleDict({"]
    for k, (name, _) in enumerate(c0.children):
        parts += ([", "] if k else []) + [repr(name) + ": "] + _expr([i.children[k][1] for i in col], cls_of,
                                                                      f"{hint}_{name}")
    return parts + ["})"]


def _compress(items):
    """Sequential entries; a run of identical entries becomes `*[entry for _ in range(n)]`."""
    out, k = [], 0
    keyed = [tuple((p if isinstance(p, str) else ("slot", p.values)) for p in it) for it in items]
    while k < len(items):
        j = k
        while j + 1 < len(items) and keyed[j + 1] == keyed[k]:
            j += 1
        if out:
            out.append(", ")
        if j - k >= 2:
            out += ["*["] + items[k] + [f" for _ in range({j - k + 1})]"]
        else:
            for m in range(k, j + 1):
                out += ([", "] if m > k else []) + items[m]
        k = j + 1
    return out


def _child_stmts(name, col, cls_of, target):
    c0 = col[0]
    hint = name if name.isidentifier() else f"m{name}"
    if c0.kind == "param":
        shape = _Slot(tuple(i.args for i in col), f"{hint}_shape")
        spec = _Slot(tuple(i.inits[0][1] for i in col), f"{hint}_init")
        if name.isidentifier():
            return [[f"{target} = torch.nn.Parameter(torch.empty(", shape, "))"],
                    ["init_tensor(" + target + ", ", spec, ")"]]
        return [[f"self.register_parameter({name!r}, torch.nn.Parameter(torch.empty(", shape, ")))"],
                ["init_tensor(" + target + ", ", spec, ")"]]
    expr = _expr(col, cls_of, hint)
    if name.isidentifier():
        return [[f"{target} = "] + expr]
    return [[f"self.add_module({name!r}, "] + expr + [")"]]


def _slot_params(cls, stmts, names_for_args):
    """Constructor arguments: slots whose values differ between instances, one per distinct column."""
    cols = {}
    for st in stmts:
        for p in st:
            if isinstance(p, _Slot) and len(set(map(_typed, p.values))) > 1:
                cols.setdefault(tuple(map(_typed, p.values)), (p.hint, p.values))
    ns = _Names()
    params = {}
    block_args = [i.block_args for i in cls.insts]
    for vals, (hint, raw) in cols.items():
        want = hint
        for a in (block_args[0] or {}):
            if tuple(_typed(b.get(a)) for b in block_args) == vals:
                want = a
                break
        params[vals] = (ns.new(want), raw)
    return params


def _typed(v):
    """A hashable stand-in for a value that tells 1, 1.0 and True apart."""
    return (type(v).__name__, repr(v))


def _render(parts, params) -> str:
    out = []
    for p in parts:
        if isinstance(p, _Slot):
            key = tuple(map(_typed, p.values))
            out.append(params[key][0] if key in params else _lit(p.values[0]))
        else:
            out.append(p)
    return "".join(out)


# ------------------------------------------------------------------ the file
def to_python(graph: Graph, source: str = "", weights_file: str | None = None, checkpoint=None) -> str:
    """A standalone module (only torch needed) defining `<network>(seed=None)`.

    With `weights_file` (a file name beside the .py, e.g. the folded weights of -O2) the function
    is `<network>(seed=None, weights=<that file>)` and loads the weights with strict=True."""
    check_names(graph)
    owners = {n.path: (n, rec) for n, rec in TF.state_owners(graph)}
    gm, tree, first = lower_with_plan(graph, TF.build_modules(graph, device="meta"), checkpoint)
    for m in gm.modules():
        if isinstance(m, ResModule):
            pc = m.graph.python_code(root_module="self")
            allowed = {"torch", "operator", "getattr", "inf", "nan", "NoneType", "device", "fx_pytree", "pytree",
                       _RT + "_checkpoint", _RT + "_checkpoint_chain"}
            extra = set(pc.globals) - allowed
            if extra:
                raise ResdslError("unsupported", "generated code needs names outside torch: "
                                  + ", ".join(sorted(extra)))
    sites = {s.path: s for s in all_sites(tree) if s.primary is s}
    top = _describe(gm, "", "", owners, first, sites)
    fn_name = graph.name if graph.name.isidentifier() and graph.name not in _FILE_NAMES \
        and not keyword.iskeyword(graph.name) and graph.name not in dir(builtins) else graph.name + "_"
    fn_name = re.sub(r"\W", "_", fn_name, flags=re.ASCII)
    names = _Names({fn_name})
    top.label = TF._class_name(graph.name)
    classes = _assign_classes(top)
    top_cls = top.group
    top_cls.name = names.new(top.label if top.label != fn_name else top.label + "Module", suffix="Module")
    _name_classes(classes, names, top_cls)
    cls_of = {}  # id(inst) -> {param name: value}
    bodies = []
    used_init = False
    for cls in classes:  # post-order: a class's children are defined before it
        stmts = _ctor_parts(cls.insts, cls_of)
        params = _slot_params(cls, stmts, None)
        cls.params = [pn for pn, _ in params.values()]
        for k, inst in enumerate(cls.insts):
            cls_of[id(inst)] = {pn: raw[k] for pn, raw in params.values()}
        init_lines = [_render(st, params) for st in stmts]
        if cls is top_cls:  # tie=: one tensor under both state_dict keys, as build() does
            init_lines += [f"setattr(self.get_submodule({path!r}), {local!r}, self.get_parameter({owner!r}))  # tied"
                           for path, (n, _) in owners.items() for local, owner in n.attrs.get("_tie", ())]
        used_init = used_init or any("init(" in ln for ln in init_lines)
        bodies.append((cls, init_lines))
    code_text = "\n".join(c.insts[0].code for c in classes)
    use_ckpt = _RT + "_checkpoint" in code_text
    lines = [
        f'"""{fn_name}: a network generated by resdsl from the .res file named in SOURCE.',
        "",
        "Do not edit; edit the .res file. "
        f"`{fn_name}(seed=None)` returns the network as a torch.nn.Module; it needs only torch.",
        '"""',
    ]
    if weights_file is not None:
        lines.append("import os")
    lines += ["import operator  # noqa: F401", "", "import torch"]
    if use_ckpt:
        lines.append("import torch.utils.checkpoint")
    lines += ["", f"SOURCE = {source or '<string>'!r}"]
    used = sorted({c.cls for c in _all(top) if c.kind == "leaf" and c.cls in TF.RUNTIME_CLASSES})
    for cls_name in used:
        lines += ["", "", inspect.getsource(getattr(runtime, cls_name)).rstrip()]
    lines += ["", "", inspect.getsource(runtime.init_tensor).rstrip()]
    lines += ["", "", "def init(module, **specs):",
              '    """Initialise tensors of `module` in place, e.g. weight=("normal", 0.02); returns it."""',
              "    for name, spec in specs.items():", "        init_tensor(getattr(module, name), spec)",
              "    return module"]
    if use_ckpt:
        for fn in (runtime.checkpoint, runtime._chain, runtime.checkpoint_chain):
            lines += ["", "", inspect.getsource(fn).rstrip()]
    aliases = set()
    for cls, init_lines in bodies:
        args = "".join(f", {p}" for p in cls.params)
        lines += ["", "", f"class {cls.name}(torch.nn.Module):", f"    def __init__(self{args}):",
                  "        super().__init__()"]
        lines += ["        " + ln for ln in init_lines]
        fwd = cls.insts[0].code
        for long, short in _CKPT:  # fx's global names; the short ones where no local shadows them
            if long in fwd:
                if re.search(rf"(?<![\w.]){short}(?!\w)", fwd.replace(long, "")):
                    aliases.add((long, short))
                else:
                    fwd = fwd.replace(long, short)
        lines += [""] + ["    " + ln for ln in _finite(fwd).splitlines()]
    lines += ["", ""]
    if weights_file is not None:
        lines += _weights_loader(fn_name, top_cls.name, weights_file)
    else:
        lines += [
            f"def {fn_name}(seed=None):",
            '    """Build the network; `seed` makes the initial weights reproducible."""',
            "    if seed is None:",
            f"        return {top_cls.name}()",
            "    with torch.random.fork_rng(devices=[]):",
            "        torch.manual_seed(seed)",
            f"        return {top_cls.name}()",
        ]
    for long, short in sorted(aliases):
        lines.insert(lines.index("", lines.index(f"def {short}(x, *modules):") if short == "checkpoint_chain"
                                 else lines.index("def checkpoint(module, *args):")), f"{long} = {short}")
    out = "\n".join(lines) + "\n"
    return out


def _all(inst):
    yield inst
    for _, c in inst.children:
        yield from _all(c)


def _finite(src: str) -> str:
    """fx writes non-finite floats as the names inf and nan: write them as float("inf")."""
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    lines = src.splitlines(keepends=True)
    for k in range(len(toks) - 1, -1, -1):
        t = toks[k]
        if t.type == tokenize.NAME and t.string in ("inf", "nan") and not (k and toks[k - 1].string == "."):
            (r, c0), (_, c1) = t.start, t.end
            ln = lines[r - 1]
            lines[r - 1] = ln[:c0] + f'float("{t.string}")' + ln[c1:]
    return "".join(lines)


def _weights_loader(name: str, cname: str, weights_file: str) -> list:
    """The entry function of a generated file whose weights live in a .pt file beside it."""
    return [
        f"WEIGHTS = os.path.join(os.path.dirname(__file__), {weights_file!r})",
        "",
        "",
        f"def {name}(seed=None, weights=WEIGHTS):",
        '    """Build the network and load `weights` (a state_dict or a file; default: WEIGHTS)."""',
        "    if seed is None:",
        f"        m = {cname}()",
        "    else:",
        "        with torch.random.fork_rng(devices=[]):",
        "            torch.manual_seed(seed)",
        f"            m = {cname}()",
        "    if weights is not None:",
        "        if not isinstance(weights, dict):",
        "            weights = torch.load(weights, map_location='cpu', weights_only=True)",
        "        m.load_state_dict(weights, strict=True)",
        "    return m",
    ]
