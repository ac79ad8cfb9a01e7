"""What an editor shows about one `.res` text: its diagnostics (the errors `resdsl check`
reports, one per network that fails), the shape each statement line gives, the parameters of
each block instance, and the definitions it can jump to.

This module needs no language-server library: the language server (resdsl/lsp/server.py) and
the preview page can both use it. :class:`Analyzer` keeps what does not change between two
edits: the parse of each imported file (keyed by its path, size and modification time) and the
graph of each network whose definitions (the items its alias reaches, by name, at the same
lines) are unchanged.
"""
from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from .._gc import paused
from ..diagnostics import ResdslError, Span
from ..elaborate import Program, elaborate
from ..elaborate.loader import PRIMITIVES, STDLIB
from ..frontend import ast
from ..frontend.read import parse
from ..ir.shapes import shape_str
from .memo import MemoElaborator

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COUNTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Graph -> its parameter count


@dataclass
class Problem:
    """One diagnostic: an error of `resdsl check`, placed in the analysed text. `where` is the
    error's own place when it lies in another file (an import); the range is then the import."""
    kind: str
    message: str
    line: int  # 1-based, as Span
    column: int
    end_line: int
    end_column: int
    help: str | None = None
    label: str | None = None
    where: Span | None = None
    network: str | None = None
    notes: list = field(default_factory=list)

    def text(self) -> str:
        out = f"error[{self.kind}]: {self.message}"
        if self.where is not None:
            out += f" (in {self.where.where})"
        if self.label:
            out += f"\n{self.label}"
        if self.help:
            out += f"\nhelp: {self.help}"
        return out


@dataclass
class Hint:
    line: int  # 1-based line the hint ends
    column: int  # 1-based column after the end of the line
    text: str


@dataclass
class Analysis:
    """One text analysed. What the text shows (shapes, params, nodes) is worked out from the
    graphs when first asked for: the diagnostics need only the problems, and go out first."""
    path: str
    text: str
    problems: list
    program: Program | None
    graphs: dict  # network name -> Graph
    errors: list = field(default_factory=list)  # the ResdslError of each problem, as `resdsl check` has it
    entries: list = field(default_factory=list, repr=False)  # the Analyzer's [graph, error, annotation, places]
    _shown: tuple | None = field(default=None, repr=False)

    @property
    def shapes(self) -> dict:
        """line (1-based) -> shape text of the statement ending there."""
        return self._show()[0]

    @property
    def params(self) -> dict:
        """line (1-based) -> (block name, parameter count) of a block instance there."""
        return self._show()[1]

    @property
    def nodes(self) -> list:
        """(line, column, end_line, end_column, node) of every op application in this text."""
        return self._show()[2]

    def _show(self):
        if self._shown is None:
            self._shown = _shown(self)
        return self._shown

    def hints(self) -> list:
        lines = self.text.splitlines()
        out = []
        for line in sorted(set(self.shapes) | set(self.params)):
            parts = []
            if line in self.params:
                parts.append(f"{self.params[line][1]:,} params")
            if line in self.shapes:
                parts.append(self.shapes[line])
            end = len(lines[line - 1]) + 1 if line <= len(lines) else 1
            out.append(Hint(line, end, "  " + " ".join(reversed(parts)) if parts else ""))
        return out

    def node_at(self, line: int, column: int):
        """The innermost op application whose span holds (line, column)."""
        best = None
        for a, b, c, d, node in self.nodes:
            if (a, b) <= (line, column) <= (c, d) and (best is None or (c - a, d - b) < best[0]):
                best = ((c - a, d - b), node)
        return best[1] if best else None

    def definition(self, word: str):
        """(ast item, path of its file) of the top-level definition `word` names here: this file's,
        else an imported file's; (None, None) if none."""
        prog = self.program
        if prog is None:
            return None, None
        for item in prog.root_module.items:
            if getattr(item, "name", None) == word and not isinstance(item, ast.Import):
                return item, self.path
        v = prog.root.names.get(word)
        if hasattr(v, "defn"):
            return v.defn, v.defn.span.source.path
        if isinstance(v, tuple) and len(v) == 3:
            return v[1], v[1].span.source.path
        for text, module in getattr(prog, "_cache", {}).values():  # a `let` of an import (now a value)
            for item in module.items:
                if isinstance(item, ast.Let) and item.name == word and word in prog.root.names:
                    return item, item.span.source.path
        return None, None

    def names(self) -> dict:
        return dict(self.program.root.names) if self.program is not None and self.program.root else {}


class _CachedProgram(Program):
    """A Program that reads an imported file open in the editor from its unsaved text (`overlay`:
    resolved path -> text) and reuses the AST of an imported text unchanged since the last parse.
    `imported` lists (resolved path, text) of every file it imported, in load order."""

    def __init__(self, cache: dict, overlay: dict):
        super().__init__()
        self._cache = cache
        self._overlay = overlay
        self.imported: list = []

    def _load_text(self, text, path, stack):
        if stack:
            key = resolved_path(path)
            text = self._overlay.get(key, text)
            self.imported.append((key, text))
        return super()._load_text(text, path, stack)

    def parse(self, text, path, imported=False):
        if not imported:
            self.root_module = parse(text, path)
            return self.root_module
        key = resolved_path(path)
        hit = self._cache.get(key)
        if hit is None or hit[0] != text:
            hit = (text, parse(text, path))
            self._cache[key] = hit
        return hit[1]


def resolved_path(path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, ValueError):
        return str(path)


class Analyzer:
    """Analyses texts, keeping imported ASTs and the graphs of networks whose definitions are unchanged."""

    def __init__(self):
        self.imports: dict = {}  # resolved path -> (text, AST) of an imported file
        self.graphs: dict = {}  # (path, network, key) -> (Graph or None, ResdslError or None)
        self.overlay: dict = {}  # resolved path -> the editor's unsaved text of an open file
        self.trash: list = []  # graphs dropped by the last analysis, freed by empty_trash()

    def empty_trash(self) -> None:
        """Free what the last analysis replaced (the server calls it after sending the diagnostics:
        freeing thousands of nodes is work the editor need not wait for)."""
        self.trash.clear()

    def set_overlay(self, path: str, text: str | None) -> None:
        """The text an open editor holds for `path` (None: closed, read it from disk again)."""
        if text is None:
            self.overlay.pop(resolved_path(path), None)
        else:
            self.overlay[resolved_path(path)] = text

    def analyze(self, text: str, path: str) -> Analysis:
        with paused():
            return self._analyze(text, path)

    def load(self, text: str, path: str) -> Program:
        prog = _CachedProgram(self.imports, self.overlay)
        prog.root = prog._load_text(text, path, stack=())
        return prog

    def _analyze(self, text, path):
        problems, graphs, errors = [], {}, []
        try:
            program = self.load(text, path)
        except ResdslError as e:
            return Analysis(path, text, [_problem(e, path, text, None)], None, {}, [e])
        except RecursionError:
            e = ResdslError("limit", "the description nests too deeply to read", Span(_src(path, text), 1, 1, 1, 1))
            return Analysis(path, text, [_problem(e, path, text, None)], None, {}, [e])
        keys, places = _network_keys(program, text)
        fresh, entries = {}, []
        memo: dict = {}  # block calls elaborated for one network, copied into the others (memo.py)
        for name, key, real in _targets(program, keys):
            ck = (path, name, key)
            hit = self.graphs.get(ck)
            now = places.get(real, {})
            if hit is not None and hit[3] != now:
                if hit[0] is None:
                    hit = None  # an error's place must be exact: elaborate again
                else:  # the same definitions, moved by whole lines: move what the graph shows with them
                    # (not worked out yet: when it is, from the places the graph was elaborated at)
                    hit = [hit[0], None, None if hit[2] is None else _moved(hit[2], hit[3], now), now, hit[4]]
            # [graph, error, annotation (annotate_graph, when first asked for), places, places elaborated at]
            if hit is None:
                try:
                    try:
                        g = MemoElaborator(program, memo).network(name)
                    except (ResdslError, RecursionError):
                        raise
                    except Exception:  # noqa: BLE001 - a bug of the copying (memo.py): elaborate as `check` does
                        memo.clear()
                        g = elaborate(program, name)
                    hit = [g, None, None, now, now]
                except ResdslError as e:
                    hit = [None, e, None, now, now]
                except RecursionError:
                    hit = [None, ResdslError("limit", "the description nests too deeply to elaborate"), None, now, now]
                except Exception as e:  # noqa: BLE001 - a bug of resdsl, not of the text: say so, keep serving
                    hit = [None, ResdslError("internal", f"resdsl failed on this network ({type(e).__name__}: {e})",
                                             help="please report it with the file"), None, now, now]
            fresh[ck] = hit
            g, err = hit[0], hit[1]
            if g is not None:
                graphs[name or g.name] = g
                entries.append(hit)
            else:
                p = _problem(err, path, text, program, name)
                if not any((q.message, q.line, q.column) == (p.message, p.line, p.column) for q in problems):
                    problems.append(p)
                    errors.append(err)
        for k in [k for k in self.graphs if k[0] == path]:
            self.trash.append(self.graphs.pop(k))
        self.graphs.update(fresh)
        return Analysis(path, text, problems, program, graphs, errors, entries)


def _shown(a: Analysis):
    """(shapes, params, nodes) of an analysis: each graph's annotation (kept in its cache entry for
    the next analysis), merged; a `network r = ResNet(...)` line shows the network's output and
    parameters."""
    anns = []
    for entry in a.entries:
        if entry[2] is None:
            entry[2] = annotate_graph(entry[0], a.path)
            if entry[4] != entry[3]:  # moved by whole lines since it was elaborated
                entry[2] = _moved(entry[2], entry[4], entry[3])
        anns.append((entry[0], entry[2]))
    shapes, params, nodes = _annotate(anns, a.path)
    for name, g in a.graphs.items():
        target = a.program.networks.get(name)
        if isinstance(target, tuple) and _same_fast(target[1].span.source.path, a.path):
            line = target[1].span.end_line
            shapes.setdefault(line, ", ".join(shape_str(v.shape) for v in g.outputs))
            if g not in _COUNTS:
                _COUNTS[g] = g.num_params()
            params.setdefault(line, (name, _COUNTS[g]))
    return shapes, params, nodes


def _src(path, text):
    from ..diagnostics import SourceFile
    return SourceFile(path, text)


def _targets(program, keys) -> list:
    """[(network name or None, cache key, network name)]: the networks `resdsl check FILE` checks."""
    nets = program.networks
    if len(nets) < 2:
        only = next(iter(nets), None)
        return [(None, keys.get(only, ("none",)), only)]
    out = []
    for name, target in nets.items():
        if any(p.default is None for p in getattr(getattr(target, "defn", None), "params", ())):
            continue  # generic: `resdsl check` lists it and checks its variants
        out.append((name, keys.get(name), name))
    return out


def _item_text(text_lines, span) -> str:
    if span.line == span.end_line:
        return text_lines[span.line - 1][span.column - 1:span.end_column - 1] if span.line <= len(text_lines) else ""
    chunk = text_lines[span.line - 1:span.end_line]
    return "\n".join(chunk)


def _network_keys(program, text):
    """(network -> key, network -> places). The key changes when anything the network may depend
    on changes: the text of every top-level item its definition reaches by name, and the imports
    (with their files' sizes and times). Places: item name -> (first line, column, last line) of
    those items, to move a cached graph's annotations when lines are inserted above them."""
    module_items = {}
    common = tuple(program.imported)  # every imported text, the imports' imports too
    lines = text.splitlines()
    for item in program.root_module.items:
        if hasattr(item, "name") and not isinstance(item, ast.Import):
            module_items[item.name] = item
    keys, places = {}, {}
    for name in program.networks:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in seen or n not in module_items:
                continue
            seen.add(n)
            todo.extend(w for w in _WORD.findall(_item_text(lines, module_items[n].span)) if w in module_items)
        names = sorted(seen)
        keys[name] = (common, tuple((n, _item_text(lines, module_items[n].span)) for n in names))
        places[name] = {n: (module_items[n].span.line, module_items[n].span.column, module_items[n].span.end_line)
                        for n in names}
    return keys, places


def _moved(ann, before: dict, after: dict):
    """A graph's annotation (see annotate_graph) for items moved from `before` to `after` places."""
    shapes, params, nodes = ann
    ranges = [(b[0], b[2], after[n][0] - b[0], after[n][1] - b[1] if after[n][0] - b[0] == 0 else 0)
              for n, b in before.items() if n in after]

    def shift(line):
        for lo, hi, d, _ in ranges:
            if lo <= line <= hi:
                return line + d
        return None

    def col(line, c):
        for lo, hi, _, dc in ranges:
            if line == lo:
                return c + dc
        return c

    new_shapes = {shift(k): v for k, v in shapes.items() if shift(k) is not None}
    new_params = {shift(k): v for k, v in params.items() if shift(k) is not None}
    new_nodes = []
    for a, b, c, d, n in nodes:
        a2, c2 = shift(a), shift(c)
        if a2 is not None and c2 is not None:
            new_nodes.append((a2, col(a, b), c2, col(c, d) if c == a else d, n))
    return new_shapes, new_params, new_nodes


def _problem(e: ResdslError, path, text, program, network=None) -> Problem:
    span = e.span
    if span is None:
        span = Span(_src(path, text), 1, 1, 1, 1)
    where = None
    if not _same(span.source.path, path):
        where = span
        span = _import_span(e, path, text, program) or Span(_src(path, text), 1, 1, 1, 1)
    end_line, end_col = span.end_line, span.end_column
    if (end_line, end_col) <= (span.line, span.column):
        end_line, end_col = span.line, span.column + 1
    return Problem(e.kind, e.message, span.line, span.column, end_line, end_col, e.help, e.label, where, network,
                   [(t, s) for t, s in e.notes])


def _same(a, b) -> bool:
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return False


def import_path(module: str, here: str) -> Path | None:
    """The file `import module` in the file `here` reads (None if none)."""
    if module in PRIMITIVES:
        return None
    rel = Path(*module.split(".")).with_suffix(".res")
    base = Path(here).parent if here not in ("<string>", "<stdin>") else Path.cwd()
    for c in (base / rel, STDLIB / rel):
        if c.is_file():
            return c
    return None


def imports_of(text: str, path: str) -> list:
    """[(ast.Import, resolved Path or None)] of a text that parses (else [])."""
    try:
        module = parse(text, path)
    except ResdslError:
        return []
    return [(i, import_path(i.module, path)) for i in module.items if isinstance(i, ast.Import)]


def _import_span(e, path, text, program):
    """Where the import that leads to the error's file is (the first import when unsure)."""
    for note, span in e.notes:
        if note == "imported here" and span is not None and _same(span.source.path, path):
            return span
    found = imports_of(text, path)
    target = e.span.source.path if e.span else None
    for item, p in found:
        if p is not None and target is not None and _same(str(p), target):
            return item.span
    return found[0][0].span if found else None


def _annotate(graphs: list, path: str):
    """(line -> shape text, line -> (block, params), [(span, node)]) of the nodes written in `path`;
    `graphs`: [(Graph, its per-graph annotation or None)]. On a line inside a block used several
    times, the first instance's shapes are shown."""
    shapes, params, nodes = {}, {}, []
    for g, ann in graphs:
        g_shapes, g_params, g_nodes = ann
        for line, text in g_shapes.items():
            shapes.setdefault(line, text)
        for line, p in g_params.items():
            params.setdefault(line, p)
        nodes.extend(g_nodes)
    return shapes, params, nodes


def annotate_graph(g, path: str):
    """What one graph shows in the text at `path`: (line -> shape, line -> (block, params), [(span, node)]).
    A line inside a block used several times shows its first instance. The graph's parameter count
    (its root scope's) is kept in _COUNTS on the way."""
    shapes, owner, nodes = {}, {}, []
    last = {}  # block scope -> the last node inside it
    counts = {}  # block scope -> parameter count
    seen = {}  # block scope -> the parameter names counted in it
    chains = {}  # scope -> (innermost block-or-root scope, the block-or-root scopes with a span, innermost first)
    here = {}  # source path -> whether it is `path`
    shape_of = {}  # line -> the node whose output shape it shows
    for n in g.nodes:
        scope = n.scope
        chain = chains.get(scope)
        if chain is None:
            inner, spanned, s = None, [], scope
            while s is not None:
                if s.kind == "block" or s.parent is None:
                    if inner is None:
                        inner = s
                    if s.span is not None:
                        spanned.append(s)
                s = s.parent
            chain = chains[scope] = (inner, spanned)
        inner, spanned = chain
        for s in spanned:
            last[s] = n
        if n.params:
            mine = [(n.path if local == "" else f"{n.path}.{local}", math.prod(spec.shape))
                    for local, spec in n.params.items() if spec.kind == "param"]
            for s in spanned:
                names = seen.setdefault(s, set())
                for full, size in mine:
                    if full not in names:
                        names.add(full)
                        counts[s] = counts.get(s, 0) + size
        sp = n.span
        if sp is not None and n.outputs:
            ok = here.get(sp.source.path)
            if ok is None:
                ok = here[sp.source.path] = _same_fast(sp.source.path, path)
            if ok:
                nodes.append((sp.line, sp.column, sp.end_line, sp.end_column, n))
                if owner.setdefault(sp.end_line, inner) is inner:
                    shape_of[sp.end_line] = n
    for line, n in shape_of.items():
        shapes[line] = shape_str(n.outputs[0].shape)
    if g.root.span is not None:
        _COUNTS[g] = counts.get(g.root, 0)  # = g.num_params(), without another pass
    params = {}
    for s, n in last.items():
        sp = s.span
        if s.kind == "block" and n.outputs and _same_fast(sp.source.path, path) and sp.end_line not in params:
            parent = s.parent
            while parent is not None and parent.kind != "block" and parent.parent is not None:
                parent = parent.parent
            if owner.setdefault(sp.end_line, parent) is parent:
                shapes[sp.end_line] = shape_str(n.outputs[0].shape)
            params[sp.end_line] = (s.name, counts.get(s, 0))
    return shapes, params, nodes


_PATHS: dict = {}


def _same_fast(a, b) -> bool:
    key = (a, b)
    hit = _PATHS.get(key)
    if hit is None:
        hit = _PATHS[key] = _same(a, b)
    return hit


def doc_comment(text: str, line: int) -> str:
    """The `#` comment lines right above line `line` (1-based) of `text`, without the `#`."""
    lines = text.splitlines()
    out = []
    i = line - 2
    while 0 <= i < len(lines) and lines[i].lstrip().startswith("#"):
        out.append(lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(reversed(out)).strip()


def signature(item, text: str) -> str:
    """`block Name(a: int, b: int = 1)`: the header of a definition, as written."""
    lines = text.splitlines()
    sp = item.span
    chunk = "\n".join(lines[sp.line - 1:sp.end_line])[sp.column - 1:]
    if isinstance(item, ast.BlockDef):
        head = chunk.split("{", 1)[0]
    elif isinstance(item, (ast.FnDef, ast.NetworkAlias, ast.Let)):
        head = chunk
    else:
        head = chunk.splitlines()[0] if chunk else ""
    return " ".join(head.split())


def source_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
