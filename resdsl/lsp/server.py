"""`resdsl lsp`: the language server (pygls), over stdio.

Diagnostics (on open, change and save) are the errors `resdsl check` reports, placed by their
spans; an error in an imported file is shown at the import. Hover, inlay hints, definition,
references, completion, document symbols, formatting (resdsl fmt) and did-you-mean code actions
come from :mod:`.analysis`, which keeps the elaboration of unchanged imports and networks.
"""
from __future__ import annotations

import asyncio
import functools
import gc
import re
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .._gc import paused
from .._version import __version__
from ..diagnostics import ResdslError
from ..elaborate.describe import op_signature
from ..elaborate.loader import STDLIB
from ..elaborate.values import BlockRef, Fn, OpRef, Partial
from ..frontend import ast
from ..ir.ops import OPS, REQUIRED
from .analysis import Analyzer, doc_comment, imports_of, resolved_path, signature, source_text

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEAN = re.compile(r"did you mean `([^`]+)`")
KEYWORDS = ("block", "network", "import", "let", "fn", "input", "output", "residual", "shortcut", "parallel",
            "repeat", "loop", "shared", "for", "in", "if", "else", "as", "true", "false", "none", "and", "or", "not",
            "training", "as .", "as +")  # `training NAME = ...` in an output line; `as .` / `as +`: name forms


# The cyclic garbage collector runs when the editor is quiet, not between an edit's diagnostics and
# the next edit: main() turns its automatic passes off (each analysis makes tens of thousands of
# objects, which its passes would traverse right after the diagnostics go out, while the next edit
# waits), and publish() asks for a full pass once no analysis has come for IDLE_COLLECT_S seconds,
# or right away after MAX_UNCOLLECTED analyses in a row (a bound on what waits to be freed: a full
# pass, since the graphs the analyses replace may be old enough for the oldest generation).
# Reference counting frees everything else as usual.
IDLE_COLLECT_S = 0.3
MAX_UNCOLLECTED = 8


class ResdslServer(LanguageServer):
    def __init__(self):
        super().__init__("resdsl", __version__)
        self.analyzer = Analyzer()
        self.results: dict = {}  # uri -> Analysis of the latest text

    def analysis(self, uri: str):
        doc = self.workspace.get_text_document(uri)
        hit = self.results.get(uri)
        if hit is None or hit.text != doc.source:
            self.analyzer.trash.append(hit)
            hit = self.results[uri] = self.analyzer.analyze(doc.source, _path(uri))
        return hit


def _path(uri: str) -> str:
    p = to_fs_path(uri)
    return p if p else uri


def _uri(path: str) -> str:
    return from_fs_path(str(Path(path).resolve())) or path


def _range(line, col, end_line, end_col) -> T.Range:
    return T.Range(T.Position(max(line - 1, 0), max(col - 1, 0)), T.Position(max(end_line - 1, 0), max(end_col - 1, 0)))


def _span_range(span) -> T.Range:
    return _range(span.line, span.column, span.end_line, span.end_column)


# ------------------------------------------------------------------ positions
# Inside the server a column is a Python string index (a code point), as in every Span; the client
# counts in the code units of the encoding negotiated at initialize (UTF-16 unless it offers UTF-8 or
# UTF-32). Every position is converted at the edge: on the way in (`_inp`) and out (`_out`).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@functools.lru_cache(maxsize=16)
def _lines(text: str) -> tuple:
    """The lines of `text` as LSP counts them (\\n, \\r\\n and \\r end a line; nothing else does)."""
    return tuple(_LINE_BREAK.split(text))


def _encoding(ls) -> str:
    try:
        return str(ls.workspace.position_encoding or T.PositionEncodingKind.Utf16)
    except RuntimeError:  # no workspace before initialize
        return str(T.PositionEncodingKind.Utf16)


def _units(line: str, col: int, enc: str) -> int:
    """Code point index `col` of `line` in the client's code units."""
    if enc == T.PositionEncodingKind.Utf32 or line.isascii():
        return col
    head = line[:col]
    if enc == T.PositionEncodingKind.Utf8:
        return len(head.encode("utf-8", "surrogatepass")) + max(col - len(line), 0)
    return col + sum(1 for c in head if ord(c) > 0xFFFF)


def _chars(line: str, units: int, enc: str) -> int:
    """The client's `units` into `line` as a code point index (a unit inside a character: that character)."""
    if enc == T.PositionEncodingKind.Utf32 or line.isascii():
        return units
    n = 0
    for i, c in enumerate(line):
        if n >= units:
            return i
        n += len(c.encode("utf-8", "surrogatepass")) if enc == T.PositionEncodingKind.Utf8 else \
            (2 if ord(c) > 0xFFFF else 1)
    return len(line) + max(units - n, 0)


def _out_pos(lines, line0: int, col0: int, enc: str) -> T.Position:
    line = lines[line0] if 0 <= line0 < len(lines) else ""
    return T.Position(max(line0, 0), max(_units(line, col0, enc), 0))


def _out(ls, text: str, rng: T.Range) -> T.Range:
    """A range counted in code points of `text`, in the client's code units."""
    enc = _encoding(ls)
    if enc == T.PositionEncodingKind.Utf32 or text.isascii():
        return rng
    lines = _lines(text)
    return T.Range(_out_pos(lines, rng.start.line, rng.start.character, enc),
                   _out_pos(lines, rng.end.line, rng.end.character, enc))


def _inp(ls, text: str, pos: T.Position) -> T.Position:
    """A client's position in `text` counted in code points."""
    enc = _encoding(ls)
    if enc == T.PositionEncodingKind.Utf32 or text.isascii():
        return pos
    lines = _lines(text)
    line = lines[pos.line] if 0 <= pos.line < len(lines) else ""
    return T.Position(pos.line, _chars(line, pos.character, enc))


def _inp_range(ls, text: str, rng: T.Range) -> T.Range:
    return T.Range(_inp(ls, text, rng.start), _inp(ls, text, rng.end))


def _span_out(ls, span) -> T.Range:
    """A Span's range in the client's code units of its own file."""
    return _out(ls, getattr(span.source, "text", "") or "", _span_range(span))


server = ResdslServer()


# ------------------------------------------------------------------ diagnostics
def publish(ls: ResdslServer, uri: str) -> None:
    """Analyse (if the text changed) and send the diagnostics; only then collect and free what the
    analysis replaced (the cyclic collector's pass over the new graphs, the old graphs' nodes), so
    the editor does not wait for that housekeeping."""
    with paused():
        try:
            _publish(ls, uri)
        except Exception as e:  # noqa: BLE001 - a bug of resdsl: say so in the editor, keep serving
            import traceback
            traceback.print_exc()  # stderr: the editor's log of the server
            ls.results.pop(uri, None)
            ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[T.Diagnostic(
                range=T.Range(T.Position(0, 0), T.Position(0, 1)), severity=T.DiagnosticSeverity.Error,
                code="internal", source="resdsl",
                message=f"resdsl failed on this file ({type(e).__name__}: {e}); please report it with the file")]))
    ls.analyzer.empty_trash()
    _collect_when_idle(ls)


class _Idle:
    uncollected = 0  # analyses since the collector's last pass
    collect_at = None  # the pending pass (an asyncio TimerHandle)


def _collect_when_idle(ls: ResdslServer) -> None:
    """A pass of the cyclic collector once the editor is quiet (see IDLE_COLLECT_S)."""
    _Idle.uncollected += 1
    if _Idle.collect_at is not None:
        _Idle.collect_at.cancel()
        _Idle.collect_at = None
    if _Idle.uncollected >= MAX_UNCOLLECTED:
        _collect()
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not serving (called directly): now
        _collect()
        return
    _Idle.collect_at = loop.call_later(IDLE_COLLECT_S, _collect)


def _collect() -> None:
    _Idle.collect_at = None
    _Idle.uncollected = 0
    gc.collect()


def _publish(ls: ResdslServer, uri: str) -> None:
    a = ls.analysis(uri)
    out = []
    for p in a.problems:
        related = []
        if p.where is not None:
            related.append(T.DiagnosticRelatedInformation(
                T.Location(_uri(p.where.source.path), _span_out(ls, p.where)), f"error[{p.kind}] here"))
        for text, span in p.notes:
            if span is not None:
                related.append(T.DiagnosticRelatedInformation(T.Location(_uri(span.source.path),
                                                                         _span_out(ls, span)), text))
        out.append(T.Diagnostic(
            range=_out(ls, a.text, _range(p.line, p.column, p.end_line, p.end_column)),
            message=p.text().removeprefix(f"error[{p.kind}]: "),
            severity=T.DiagnosticSeverity.Error, code=p.kind, source="resdsl",
            related_information=related or None,
            data={"help": p.help} if p.help else None))
    version = ls.workspace.get_text_document(uri).version
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=out, version=version))


def _importers(ls: ResdslServer, uri: str) -> list:
    """The other open documents whose last analysis read the file `uri` (directly or through an import)."""
    path = resolved_path(_path(uri))
    out = []
    for other, a in list(ls.results.items()):
        if other != uri and a.program is not None and any(p == path for p, _ in a.program.imported):
            out.append(other)
    return out


def _refresh_importers(ls: ResdslServer, uri: str) -> None:
    for other in _importers(ls, uri):
        if other in ls.workspace.text_documents:
            ls.results.pop(other, None)
            publish(ls, other)


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: ResdslServer, params: T.DidOpenTextDocumentParams):
    uri = params.text_document.uri
    old = ls.analyzer.overlay.get(resolved_path(_path(uri)))
    ls.analyzer.set_overlay(_path(uri), params.text_document.text)
    publish(ls, uri)
    if old != params.text_document.text:
        _refresh_importers(ls, uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: ResdslServer, params: T.DidChangeTextDocumentParams):
    await asyncio.sleep(0)  # let changes already received apply first: only the latest text is analysed
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    if doc.version is not None and params.text_document.version is not None \
            and doc.version > params.text_document.version:
        return
    # the unsaved text is what the files importing this one see (the loader's overlay)
    ls.analyzer.set_overlay(_path(uri), doc.source)
    publish(ls, uri)
    _refresh_importers(ls, uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: ResdslServer, params: T.DidSaveTextDocumentParams):
    # a file imported by an open one but not open itself is read from disk: a save may change it
    saved = params.text_document.uri
    ls.results.pop(saved, None)
    publish(ls, saved)
    for uri in list(ls.workspace.text_documents):
        if uri != saved and uri in ls.results:
            ls.results.pop(uri, None)
            publish(ls, uri)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ResdslServer, params: T.DidCloseTextDocumentParams):
    uri = params.text_document.uri
    ls.analyzer.set_overlay(_path(uri), None)  # importers read it from disk again
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    _refresh_importers(ls, uri)
    ls.results.pop(uri, None)


# ------------------------------------------------------------------ words and definitions
def _word_at(text: str, pos: T.Position):
    lines = _lines(text)
    if pos.line >= len(lines):
        return None, None
    line = lines[pos.line]
    for m in _WORD.finditer(line):
        if m.start() <= pos.character <= m.end():
            return m.group(), T.Range(T.Position(pos.line, m.start()), T.Position(pos.line, m.end()))
    return None, None


def _import_at(a, line0: int):
    for item, p in imports_of(a.text, a.path):
        if item.span.line - 1 <= line0 <= item.span.end_line - 1:
            return item, p
    return None, None


def _definition(a, word: str):
    """(ast item, its file's path) the name `word` refers to at the top level of the analysed file."""
    item, path = a.definition(word)
    if item is not None:
        return item, path
    if a.program is None:  # the text does not parse: look for the definition by its words
        m = re.search(rf"^\s*(?:block|network|fn|let)\s+{re.escape(word)}\b", a.text, re.MULTILINE)
        if m:
            line = a.text.count("\n", 0, m.start()) + 1
            return None, (a.path, line)
    return None, None


def _callee(names: dict, word: str):
    """What a call of `word` calls: an OpDef, a BlockRef or Fn (a `let` of a partial call: its callee)."""
    v = names.get(word)
    if isinstance(v, Partial):
        v = v.callee
    if isinstance(v, OpRef):
        return v.opdef
    if isinstance(v, (BlockRef, Fn)):
        return v
    return OPS.get(word) if v is None or word in OPS else None


def _text_of(path: str, a) -> str:
    if path == a.path:
        return a.text
    return server.analyzer.overlay.get(resolved_path(path)) or source_text(path)


# ------------------------------------------------------------------ hover
def _op_doc(od) -> str:
    lines = [f"```res\n{op_signature(od)}\n```"]
    if od.doc:
        lines.append(od.doc)
    legal = []
    for at in od.attrs:
        if at.name.startswith("_") or at.type == "kwargs":
            continue
        what = _legal(at)
        default = "" if at.default is REQUIRED else f" (default {_show(at.default)})"
        legal.append(f"- `{at.name}`: {at.type}{what}{default}")
    if legal:
        lines.append("\n".join(legal))
    return "\n\n".join(lines)


def _show(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def _legal(at) -> str:
    lg = at.legal
    if lg is None:
        return ""
    if lg.choices:
        return ", one of " + ", ".join(f'"{c}"' for c in lg.choices)
    lo = "(" if lg.lo_open else "["
    hi = ")" if lg.hi_open else "]"
    if lg.lo is None and lg.hi is None:
        return ""
    return f", in {lo}{'-inf' if lg.lo is None else _num(lg.lo)}, {'inf' if lg.hi is None else _num(lg.hi)}{hi}"


def _num(x):
    return str(int(x)) if float(x).is_integer() else str(x)


def _def_doc(item, path: str, a) -> str:
    text = _text_of(path, a)
    kind = {ast.FnDef: "fn", ast.Let: "let", ast.NetworkAlias: "network"}.get(type(item), "")
    sig = signature(item, text)
    if kind == "let":
        sig = sig if sig.startswith("let") else f"let {sig}"
    doc = doc_comment(text, item.span.line)
    where = "" if path == a.path else f"\n\n*{Path(path).name}:{item.span.line}*"
    return f"```res\n{sig}\n```" + (f"\n\n{doc}" if doc else "") + where


@server.feature(T.TEXT_DOCUMENT_HOVER)
def hover(ls: ResdslServer, params: T.HoverParams):
    a = ls.analysis(params.text_document.uri)
    position = _inp(ls, a.text, params.position)
    word, rng = _word_at(a.text, position)
    if word is None:
        return None
    line, col = position.line + 1, position.character + 1
    node = a.node_at(line, col)
    shape = None
    if node is not None and node.outputs:
        from ..ir.shapes import shape_str
        shape = shape_str(node.outputs[0].shape)
    parts = []
    item, path = _definition(a, word)
    names = a.names()
    if item is not None:
        parts.append(_def_doc(item, path, a))
        target = _callee(names, word) if isinstance(item, ast.Let) else None
        if target is not None and not isinstance(target, (BlockRef, Fn)):
            parts.append(_op_doc(target))
    elif word in OPS and (not names or word in names and not isinstance(names[word], (BlockRef, Fn, tuple))):
        parts.append(_op_doc(OPS[word]))
    else:
        imp, p = _import_at(a, position.line)
        if imp is not None:
            parts.append(f"`import {imp.module}`: " + (str(p) if p else "not found"))
    if shape is None:  # a block call (its ops are in the block), an input, an `as` name
        shape = _input_shape(a, word) or a.shapes.get(line)
    if shape is not None:
        label = "output" if (word in OPS or item is not None) else f"`{word}`"
        parts.append(f"{label}: `{shape}`")
    if not parts:
        return None
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value="\n\n".join(parts)),
                   range=_out(ls, a.text, rng))


def _input_shape(a, word: str):
    from ..ir.shapes import shape_str
    for g in a.graphs.values():
        for v in g.inputs:
            if v.name == word:
                return shape_str(v.shape)
    return None


# ------------------------------------------------------------------ inlay hints
@server.feature(T.TEXT_DOCUMENT_INLAY_HINT)
def inlay_hints(ls: ResdslServer, params: T.InlayHintParams):
    a = ls.analysis(params.text_document.uri)
    lo, hi = params.range.start.line + 1, params.range.end.line + 1
    out = []
    for h in a.hints():
        if lo <= h.line <= hi and h.text:
            at = T.Position(h.line - 1, h.column - 1)
            out.append(T.InlayHint(position=_out(ls, a.text, T.Range(at, at)).start, label=h.text.strip(),
                                   kind=T.InlayHintKind.Type, padding_left=True))
    return out


# ------------------------------------------------------------------ definition / references
@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def definition(ls: ResdslServer, params: T.DefinitionParams):
    a = ls.analysis(params.text_document.uri)
    position = _inp(ls, a.text, params.position)
    imp, p = _import_at(a, position.line)
    if imp is not None:
        return T.Location(_uri(str(p)), _range(1, 1, 1, 1)) if p else None
    word, _ = _word_at(a.text, position)
    if word is None:
        return None
    item, path = _definition(a, word)
    if item is not None:
        text = _text_of(path, a)
        return T.Location(_uri(path), _out(ls, text, _name_range(item, text)))
    if isinstance(path, tuple):
        return T.Location(_uri(path[0]), _range(path[1], 1, path[1], 1))
    return None


def _name_range(item, text: str) -> T.Range:
    """The range of the defined name in the definition's first line."""
    sp = item.span
    lines = _lines(text)
    line = lines[sp.line - 1] if sp.line <= len(lines) else ""
    m = re.search(rf"\b{re.escape(item.name)}\b", line[sp.column - 1:]) if hasattr(item, "name") else None
    if m:
        c = sp.column - 1 + m.start()
        return T.Range(T.Position(sp.line - 1, c), T.Position(sp.line - 1, c + len(item.name)))
    return _span_range(sp)


def _occurrences(text: str, word: str) -> list:
    out = []
    for i, line in enumerate(_lines(text)):
        code = line.split("#", 1)[0]
        for m in re.finditer(rf"(?<![\w.]){re.escape(word)}\b", code):
            out.append(T.Range(T.Position(i, m.start()), T.Position(i, m.end())))
    return out


@server.feature(T.TEXT_DOCUMENT_REFERENCES)
def references(ls: ResdslServer, params: T.ReferenceParams):
    a = ls.analysis(params.text_document.uri)
    word, _ = _word_at(a.text, _inp(ls, a.text, params.position))
    if word is None:
        return []
    item, path = _definition(a, word)
    files = {a.path}
    if item is not None:
        files.add(path)
    out = []
    for f in sorted(files):
        text = _text_of(f, a)
        uri = params.text_document.uri if f == a.path else _uri(f)
        for r in _occurrences(text, word):
            if item is not None and not params.context.include_declaration and f == path \
                    and r == _name_range(item, text):
                continue
            out.append(T.Location(uri, _out(ls, text, r)))
    return out


# ------------------------------------------------------------------ completion
def _call_at(text: str, pos: T.Position):
    """The name of the call whose parentheses hold the cursor (None if none)."""
    lines = _lines(text)
    before = "\n".join(list(lines[:pos.line]) + [lines[pos.line][:pos.character] if pos.line < len(lines) else ""])
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        c = before[i]
        if c in ")]}":
            depth += 1
        elif c in "[{":
            if depth == 0:
                return None
            depth -= 1
        elif c == "(":
            if depth == 0:
                m = re.search(r"([A-Za-z_]\w*)\s*$", before[:i])
                return m.group(1) if m else None
            depth -= 1
    return None


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["(", ",", " "]))
def completion(ls: ResdslServer, params: T.CompletionParams):
    a = ls.analysis(params.text_document.uri)
    position = _inp(ls, a.text, params.position)
    lines = _lines(a.text)
    line = lines[position.line] if position.line < len(lines) else ""
    before = line[:position.character]
    if re.match(r"\s*import\s+[\w.]*$", before):
        here = Path(a.path).parent
        names = sorted({p.stem for d in (STDLIB, here) if d.is_dir() for p in d.glob("*.res")})
        return T.CompletionList(is_incomplete=False, items=[
            T.CompletionItem(label=n, kind=T.CompletionItemKind.Module) for n in names])
    items = []
    names = a.names()
    call = _call_at(a.text, position)
    if call is not None:
        v = _callee(names, call)
        if isinstance(v, (BlockRef, Fn)):
            for p in v.defn.params:
                items.append(T.CompletionItem(label=f"{p.name}=", kind=T.CompletionItemKind.Property,
                                              insert_text=f"{p.name}=", sort_text=f"0{p.name}"))
        elif v is not None:
            for at in v.attrs:
                if at.name.startswith("_") or at.type == "kwargs":
                    continue
                items.append(T.CompletionItem(label=f"{at.name}=", kind=T.CompletionItemKind.Property,
                                              detail=at.type + _legal(at), insert_text=f"{at.name}=",
                                              sort_text=f"0{at.name}"))
    for name, od in sorted(OPS.items()):
        if name.startswith("_"):
            continue
        items.append(T.CompletionItem(label=name, kind=T.CompletionItemKind.Function, detail=op_signature(od),
                                      documentation=T.MarkupContent(T.MarkupKind.Markdown, _op_doc(od))))
    for name, v in sorted(names.items()):
        if isinstance(v, BlockRef):
            kind = T.CompletionItemKind.Class
        elif isinstance(v, Fn):
            kind = T.CompletionItemKind.Function
        elif isinstance(v, tuple):
            kind = T.CompletionItemKind.Variable
        else:
            continue
        item = v.defn if hasattr(v, "defn") else v[1]
        path = item.span.source.path
        items.append(T.CompletionItem(label=name, kind=kind, detail=signature(item, _text_of(path, a))))
    for k in KEYWORDS:
        items.append(T.CompletionItem(label=k, kind=T.CompletionItemKind.Keyword))
    return T.CompletionList(is_incomplete=False, items=items)


# ------------------------------------------------------------------ symbols
@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: ResdslServer, params: T.DocumentSymbolParams):
    a = ls.analysis(params.text_document.uri)
    prog = a.program
    if prog is None:
        return []
    out = []
    for item in prog.root_module.items:
        if isinstance(item, ast.BlockDef):
            kind = T.SymbolKind.Module if item.is_network else T.SymbolKind.Class
            detail = "network" if item.is_network else "block"
        elif isinstance(item, ast.NetworkAlias):
            kind, detail = T.SymbolKind.Module, "network"
        elif isinstance(item, ast.FnDef):
            kind, detail = T.SymbolKind.Function, "fn"
        elif isinstance(item, ast.Let):
            kind, detail = T.SymbolKind.Constant, "let"
        elif isinstance(item, ast.Import):
            rng = _out(ls, a.text, _span_range(item.span))
            out.append(T.DocumentSymbol(name=item.module, kind=T.SymbolKind.Namespace, detail="import",
                                        range=rng, selection_range=rng))
            continue
        else:
            continue
        g = a.graphs.get(item.name)
        if g is not None:
            from ..ir.shapes import shape_str
            detail += f" -> {', '.join(shape_str(v.shape) for v in g.outputs)}; {g.num_params():,} parameters"
        out.append(T.DocumentSymbol(name=item.name, kind=kind, detail=detail,
                                    range=_out(ls, a.text, _span_range(item.span)),
                                    selection_range=_out(ls, a.text, _name_range(item, a.text))))
    return out


# ------------------------------------------------------------------ formatting
@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: ResdslServer, params: T.DocumentFormattingParams):
    from ..fmt import format_source
    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        new = format_source(doc.source, _path(params.text_document.uri))
    except ResdslError:
        return None  # the diagnostics say why
    if new == doc.source:
        return []
    end = T.Position(len(_lines(doc.source)), 0)
    return [T.TextEdit(range=T.Range(T.Position(0, 0), end), new_text=new)]


# ------------------------------------------------------------------ code actions
@server.feature(T.TEXT_DOCUMENT_CODE_ACTION)
def code_actions(ls: ResdslServer, params: T.CodeActionParams):
    a = ls.analysis(params.text_document.uri)
    out = []
    for d in params.context.diagnostics:
        help = (d.data or {}).get("help") if isinstance(d.data, dict) else None
        if not help:
            continue
        m = _MEAN.search(help)
        if m is None:
            continue
        fixes = re.findall(r"`([^`]+)`", help[m.start():].split("?", 1)[0])
        for fix in fixes:
            word, rng = _misspelt(a.text, _inp_range(ls, a.text, d.range), fix)
            if word is None or not _WORD.fullmatch(fix):
                continue
            out.append(T.CodeAction(
                title=f"Replace `{word}` with `{fix}`", kind=T.CodeActionKind.QuickFix, diagnostics=[d],
                edit=T.WorkspaceEdit(changes={params.text_document.uri: [T.TextEdit(_out(ls, a.text, rng), fix)]})))
    return out


def _misspelt(text: str, rng: T.Range, fix: str):
    """(word, range) in `rng` most like `fix` but not it (what a did-you-mean replaces)."""
    import difflib
    lines = _lines(text)
    best = (0.0, None, None)
    for i in range(rng.start.line, min(rng.end.line, len(lines) - 1) + 1):
        line = lines[i]
        lo = rng.start.character if i == rng.start.line else 0
        hi = rng.end.character if i == rng.end.line else len(line)
        for m in re.finditer(r"[A-Za-z_][\w.]*", line):
            if m.end() <= lo or m.start() >= max(hi, lo + 1) or m.group() == fix:
                continue
            r = difflib.SequenceMatcher(None, m.group(), fix).ratio()
            if r > best[0]:
                best = (r, m.group(), T.Range(T.Position(i, m.start()), T.Position(i, m.end())))
    return (best[1], best[2]) if best[0] >= 0.5 else (None, None)


def main() -> int:
    """Serve on stdin/stdout until the client exits. The protocol gets its own copies of the two
    descriptors; anything else written to stdout while serving goes to stderr."""
    import os
    import sys
    inp = os.fdopen(os.dup(sys.__stdin__.fileno()), "rb")
    out = os.fdopen(os.dup(sys.__stdout__.fileno()), "wb")
    real, sys.stdout = sys.stdout, sys.stderr
    # what the server imported (pygls, lsprotocol, resdsl, the op table) lives as long as it does:
    # out of the collector's sight, its full passes visit only the analyses' objects
    gc.collect()
    gc.freeze()
    gc.disable()  # its passes run when the editor is quiet (_collect_when_idle)
    try:
        server.start_io(inp, out)
    finally:
        sys.stdout = real
    return 0
