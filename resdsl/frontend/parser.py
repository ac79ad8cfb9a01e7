"""The reference parser: Lark setup and the parse-tree -> AST transformer.

`parse_lark(text, src)` returns an :class:`ast.Module` or raises a ResdslError of kind
``syntax`` that names what the parser expected at the failing position. Importing this
module imports lark: read.py comes here only for what the fast parser hands over.
"""
from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..diagnostics import ResdslError, SourceFile, Span
from . import ast
from .syntax import MAX_LITERAL_DIGITS, MAX_SYNTAX_DEPTH, split_index, template_pieces, unchain, unquote

GRAMMAR_PATH = Path(__file__).resolve().parents[1] / "grammar" / "res.lark"
if not GRAMMAR_PATH.exists():  # source checkout: grammar/ sits beside resdsl/
    GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammar" / "res.lark"

_OPENERS = {"LPAR": 1, "LSQB": 1}
_CLOSERS = {"RPAR": -1, "RSQB": -1}
_JOINERS = {"__ANON_0", "MINUS_GT", "VBAR", "COMMA"}  # tokens after which a newline is not a separator


class _PostLex:
    """Drops newlines inside (...) / [...] and after `->`, `|`, `,`, `{`, `=`; merges runs of
    newlines (and `;`) into one separator. Never looks ahead, so the contextual lexer
    always sees the parser state it needs."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        prev = None
        for tok in stream:
            if tok.type == "_NL":
                if depth > 0 or prev is None or prev.type == "_NL" or prev.value in ("->", "|", ",", "{", "="):
                    continue
            if tok.value in ("(", "["):
                depth += 1
            elif tok.value in (")", "]"):
                depth = max(0, depth - 1)
            prev = tok
            yield tok


@functools.lru_cache(maxsize=None)
def lark_parser(start: str = "start") -> Lark:
    grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", start=start, postlex=_PostLex(),
                propagate_positions=True, maybe_placeholders=True, cache=_cache_file(grammar, start))


def _cache_file(grammar: str, start: str):
    """Lark's tables, cached in the user cache folder (building them is most of a small
    `resdsl check`). Lark checks the grammar's hash on load and rebuilds on any mismatch
    or damage; False (no cache) where the folder cannot be made."""
    import hashlib
    import os
    import sys

    import lark
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "resdsl")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    if not os.access(folder, os.W_OK):
        return False
    key = hashlib.sha256(f"{grammar}\0{start}\0{lark.__version__}\0{sys.version_info[:2]}".encode()).hexdigest()
    return os.path.join(folder, f"grammar-{key[:20]}.lark-cache")


_TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
    "_NL": "a newline", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`",
    "LBRACE": "`{`", "RBRACE": "`}`", "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`",
    "SEMICOLON": "`;`", "DOT": "`.`", "VBAR": "`|`", "TEMPLATE_NAME": "a name",
    "$END": "end of file", "COMP_OP": "a comparison", "ADD_OP": "`+`/`-`", "MUL_OP": "`*`",
    "MINUS": "`-`", "PLUS": "`+`",
}


def _describe(expected) -> str:
    words = set()
    for e in expected:
        if e in _TOKEN_WORDS:
            words.add(_TOKEN_WORDS[e])
        elif e.startswith("__ANON") or e.isupper():
            p = lark_parser().get_terminal(e).pattern if _has_terminal(e) else None
            words.add(f"`{p.value}`" if p is not None and p.type == "str" else e.lower())
        else:
            words.add(e)
    words = sorted(words)
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


def _has_terminal(name: str) -> bool:
    try:
        lark_parser().get_terminal(name)
        return True
    except KeyError:
        return False




def parse_lark(text: str, src: SourceFile) -> ast.Module:
    """The reference parse: Lark's LALR parser, then `_ToAst` (errors located by Lark)."""
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, src) from None
    check_depth(tree, src)
    return _transform(_ToAst(src), tree)


def _transform(transformer, tree):
    try:
        return transformer.transform(tree)
    except VisitError as e:  # lark wraps what a rule method raises (twice for a `{...}` in a name)
        orig = e.orig_exc
        while isinstance(orig, VisitError):
            orig = orig.orig_exc
        if isinstance(orig, ResdslError):
            raise orig from None
        raise


def check_depth(tree, src: SourceFile, at: Span | None = None) -> None:
    """Refuse a parse tree nested deeper than MAX_SYNTAX_DEPTH (a long `**` chain, brackets in
    brackets): the transformer and the elaborator recurse on it. Iterative, so it cannot overflow."""
    stack = [(tree, 1)]
    while stack:
        t, d = stack.pop()
        if d > MAX_SYNTAX_DEPTH:
            raise ResdslError("limit", f"the program nests deeper than {MAX_SYNTAX_DEPTH} levels here",
                              at or _span(src, t.meta),
                              help="split the expression or the nested regions with `let` or blocks")
        stack.extend((c, d + 1) for c in t.children if isinstance(c, Tree))


def parse_expr_lark(text: str, span: Span) -> object:
    try:
        tree = lark_parser().parse(f"let __tmp__ = {text}")
    except UnexpectedInput:
        raise ResdslError("syntax", f"cannot parse `{{{text}}}` in a name", span,
                          help="inside `{...}` in a name write an expression, e.g. `layer{s + 1}`") from None
    check_depth(tree, span.source, span)
    module = _transform(_ToAst(span.source, base=span), tree)
    return module.items[0].value


def _syntax_error(e: UnexpectedInput, src: SourceFile) -> ResdslError:
    line, col = getattr(e, "line", 1), getattr(e, "column", 1)
    if line is None or line < 1:
        lines = src.text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    if isinstance(e, UnexpectedCharacters):
        ch = src.text[e.pos_in_stream] if e.pos_in_stream < len(src.text) else "?"
        msg = f"unexpected character `{ch}`"
        width = 1
    elif isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            msg = "unexpected end of file"
            width = 1
        elif tok.type == "_NL":
            msg = "unexpected end of line"
            width = 1
        else:
            msg = f"unexpected `{tok.value}`"
            width = max(1, len(str(tok.value)))
    elif isinstance(e, UnexpectedEOF):
        msg, width = "unexpected end of file", 1
    else:  # pragma: no cover - lark has no other kinds today
        msg, width = "syntax error", 1
    expected = getattr(e, "expected", None) or getattr(e, "allowed", None) or set()
    exp = _describe(expected) if expected else None
    span = Span(src, line, col, line, col + width)
    hint = None
    if "end of file" in msg:
        opener = _unclosed(src.text)
        if opener is not None:
            ch, ln, cl = opener
            close = {"{": "}", "(": ")", "[": "]"}[ch]
            hint = f"the `{ch}` at line {ln}, column {cl} is never closed; add the matching `{close}`"
    return ResdslError("syntax", msg, span, label=f"expected {exp}" if exp else None, help=hint)


def _unclosed(text: str):
    """The innermost bracket left open at the end of `text` (skipping strings and comments)."""
    stack = []
    line, col, i = 1, 1, 0
    quote = None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
                col += 1
            elif c == quote or c == "\n":
                quote = None
        elif c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif c in "\"'":
            quote = c
        elif c in "{([":
            stack.append((c, line, col))
        elif c in "})]" and stack:
            stack.pop()
        if c == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return stack[-1] if stack else None


def _span(src: SourceFile, meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(src, 1, 1, 1, 2)
    return Span(src, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(src: SourceFile, tok: Token) -> Span:
    return Span(src, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)


@v_args(meta=True)
class _ToAst(Transformer):
    """One method per grammar rule; each returns a frozen AST node with a Span."""

    def __init__(self, src: SourceFile, base: Span | None = None):
        super().__init__()
        self.src = src
        self.base = base

    def _call_userfunc(self, tree, new_children=None):
        # Fast path: call the rule method itself. Lark's v_args wrapper rebuilds itself (functools
        # update_wrapper) on every attribute access, a sixth of the time of parsing a large file.
        f = _RULES.get(tree.data)
        if f is None:
            return super()._call_userfunc(tree, new_children)
        return f(self, tree.meta, tree.children if new_children is None else new_children)

    def sp(self, meta) -> Span:
        if self.base is not None:  # sub-expression of a template name: point at the name
            return self.base
        return _span(self.src, meta)

    # top level
    def start(self, meta, items):
        return ast.Module(self.sp(meta), tuple(items))

    def import_stmt(self, meta, items):
        return ast.Import(self.sp(meta), items[0])

    def dotted_name(self, meta, items):
        return ".".join(str(t) for t in items)

    def block_def(self, meta, items):
        name, params, body = items
        return ast.BlockDef(self.sp(meta), str(name), params or (), body, False)

    def network_def(self, meta, items):
        name, params, body = items
        return ast.BlockDef(self.sp(meta), str(name), params or (), body, True)

    def network_alias(self, meta, items):
        return ast.NetworkAlias(self.sp(meta), str(items[0]), items[1])

    def params(self, meta, items):
        return tuple(items)

    def param(self, meta, items):
        name, typ, default = items
        return ast.Param(self.sp(meta), str(name), typ, default)

    def type(self, meta, items):
        opt = items[-1] is not None and isinstance(items[-1], Token) and items[-1].type == "OPTIONAL"
        args = tuple(i for i in items[1:] if i is not None and not isinstance(i, Token))
        return ast.TypeExpr(self.sp(meta), str(items[0]), args, opt)

    def fn_def(self, meta, items):
        name, params, value = items
        return ast.FnDef(self.sp(meta), str(name), params or (), value)

    def fn_block(self, meta, items):
        name, params, (lets, value) = items
        return ast.FnDef(self.sp(meta), str(name), params or (), value, lets)

    def fn_body(self, meta, items):
        return tuple(items[:-1]), items[-1]

    def body(self, meta, items):
        return ast.Body(self.sp(meta), tuple(items))

    # statements
    def input_stmt(self, meta, items):
        return ast.Input(self.sp(meta), tuple(items))

    def input_decl(self, meta, items):
        return ast.InputDecl(self.sp(meta), str(items[0]), items[1])

    def shape(self, meta, items):
        return tuple(items)

    def named_axis(self, meta, items):
        return ast.AxisDecl(self.sp(meta), str(items[0]), items[1])

    def plain_axis(self, meta, items):
        e = items[0]
        if isinstance(e, ast.Name):  # `N`: a named symbolic axis
            return ast.AxisDecl(self.sp(meta), e.id, None)
        return ast.AxisDecl(self.sp(meta), None, e)

    def output_stmt(self, meta, items):
        return ast.Output(self.sp(meta), tuple(items))

    def output_item(self, meta, items):
        name, chain = items
        return ast.OutputItem(self.sp(meta), str(name) if name is not None else None, chain)

    def training_output_item(self, meta, items):
        _, name, chain = items
        return ast.OutputItem(self.sp(meta), str(name), chain, True)

    def assign_stmt(self, meta, items):
        return ast.Assign(self.sp(meta), tuple(str(t) for t in items[:-1]), items[-1])

    def let_stmt(self, meta, items):
        return ast.Let(self.sp(meta), str(items[0]), items[1])

    def annotation_stmt(self, meta, items):
        return ast.Annotation(self.sp(meta), str(items[0]), tuple(items[1:]))

    def annotation_target(self, meta, items):
        span = self.sp(meta)
        if items[0].type == "STRING":
            text = unquote(str(items[0]))
        else:
            text = ".".join(str(t) for t in items)
        pieces = template_pieces(text)
        if pieces is None:
            raise ResdslError("syntax", f"unclosed `{{` in name `{text}`", span)
        parts = [parse_expr_lark(p[0], span) if isinstance(p, tuple) else p for p in pieces]
        return ast.AsName(span, tuple(parts))

    def chain_stmt(self, meta, items):
        return ast.ChainStmt(self.sp(meta), items[0])

    def chain(self, meta, items):
        return ast.Chain(self.sp(meta), tuple(items))

    def expr_link(self, meta, items):
        return ast.Link(self.sp(meta), items[0], items[1])

    group_link = expr_link

    def region_link(self, meta, items):
        return ast.Link(self.sp(meta), items[0], None)

    def as_name(self, meta, items):
        tok = items[0]
        span = _tok_span(self.src, tok) if self.base is None else self.base
        if tok.type == "STRING":
            text = unquote(str(tok))
        else:
            text = str(tok)
        pieces = template_pieces(text)
        if pieces is None:
            raise ResdslError("syntax", f"unclosed `{{` in name `{text}`", span)
        parts = [parse_expr_lark(p[0], span) if isinstance(p, tuple) else p for p in pieces]
        return ast.AsName(span, tuple(parts))

    def as_inline(self, meta, items):
        return ast.AsName(self._mark_span(meta), (), "inline")

    def as_next(self, meta, items):
        return ast.AsName(self._mark_span(meta), (), "next")

    def _mark_span(self, meta):
        """The span of the one-character mark after `as` (`.` or `+`): the rule's last character."""
        if self.base is not None:
            return self.base
        return Span(self.src, meta.end_line, meta.end_column - 1, meta.end_line, meta.end_column)

    def residual_stmt(self, meta, items):
        args, rcond, body, shortcut, as_name = items
        cond, sbody, sspan = None, None, None
        if shortcut is not None:
            cond, sbody, sspan = shortcut
        return ast.Residual(self.sp(meta), args or (), body, sbody, cond, sspan, as_name, rcond)

    def residual_cond(self, meta, items):
        return items[0]

    def shortcut(self, meta, items):
        return (items[0], items[1], self.sp(meta))

    def parallel_stmt(self, meta, items):
        return ast.Parallel(self.sp(meta), items[0] or (), tuple(items[1:]))

    def branch(self, meta, items):
        return items[0]

    def repeat_stmt(self, meta, items):
        count, as_name, index, body = items
        count, index = split_index(count, index)
        return ast.Repeat(self.sp(meta), count, as_name, index, body)

    def loop_stmt(self, meta, items):
        count, shared, index, body, as_name = items
        count, index = split_index(count, index)
        return ast.Loop(self.sp(meta), count, shared is not None, index, body, as_name)

    def index(self, meta, items):
        return str(items[0])

    def for_stmt(self, meta, items):
        targets = items[0]
        return ast.For(self.sp(meta), targets[0], items[1], items[2], targets if len(targets) > 1 else ())

    def targets(self, meta, items):
        return tuple(str(t) for t in items)

    def comp_for(self, meta, items):
        return ast.CompFor(self.sp(meta), items[0], items[1], tuple(items[2:]))

    def comp_if(self, meta, items):
        return items[0]

    def list_comp(self, meta, items):
        return ast.ListComp(self.sp(meta), unchain(items[0]), tuple(items[1:]))

    def if_stmt(self, meta, items):
        cond, then, other = items
        return ast.If(self.sp(meta), cond, then, other)

    # expressions
    def cond_expr(self, meta, items):
        then, cond, other = items
        return ast.CondExpr(self.sp(meta), cond, then, other)

    def or_op(self, meta, items):
        return ast.BoolOp(self.sp(meta), "or", items[0], items[1])

    def and_op(self, meta, items):
        return ast.BoolOp(self.sp(meta), "and", items[0], items[1])

    def not_op(self, meta, items):
        return ast.UnaryOp(self.sp(meta), "not", items[0])

    def compare(self, meta, items):
        return ast.Compare(self.sp(meta), str(items[1]), items[0], items[2])

    def binop(self, meta, items):
        return ast.BinOp(self.sp(meta), str(items[1]), items[0], items[2])

    def pow_op(self, meta, items):
        return ast.BinOp(self.sp(meta), "**", items[0], items[1])

    def neg(self, meta, items):
        return ast.UnaryOp(self.sp(meta), "-", items[0])

    def factor(self, meta, items):  # unary plus
        return items[0]

    def call(self, meta, items):
        return ast.Call(self.sp(meta), items[0], items[1])

    def call_args(self, meta, items):
        return tuple(i for i in items if i is not None)

    def pos_arg(self, meta, items):
        return ast.Arg(self.sp(meta), None, unchain(items[0]))

    def kw_arg(self, meta, items):
        return ast.Arg(self.sp(meta), str(items[0]), unchain(items[1]))

    def index_op(self, meta, items):
        return ast.Index(self.sp(meta), items[0], items[1])

    def slice_op(self, meta, items):
        return ast.Slice(self.sp(meta), items[0], items[1])

    def attr(self, meta, items):
        return ast.Attr(self.sp(meta), items[0], str(items[1]))

    def number(self, meta, items):
        t = str(items[0])
        if sum(c.isdigit() for c in t) > MAX_LITERAL_DIGITS:
            raise ResdslError("limit", f"a number literal of {len(t)} characters is too long", self.sp(meta),
                              help=f"number literals have at most {MAX_LITERAL_DIGITS} digits")
        v = float(t) if any(c in t for c in ".eE") else int(t)
        if isinstance(v, float) and v == float("inf"):
            raise ResdslError("limit", f"the number {t} is too large for a float", self.sp(meta),
                              help="floats stay below 1.8e308")
        if isinstance(v, int) and v.bit_length() > 63:
            raise ResdslError("limit", f"the integer {t} is too large", self.sp(meta),
                              help="compile-time integers stay below 2**63")
        return ast.Const(self.sp(meta), v)

    def string(self, meta, items):
        return ast.Const(self.sp(meta), unquote(str(items[0])))

    def name(self, meta, items):
        return ast.Name(self.sp(meta), str(items[0]))

    def in_ref(self, meta, items):
        return ast.InRef(self.sp(meta))

    def true(self, meta, items):
        return ast.Const(self.sp(meta), True)

    def false(self, meta, items):
        return ast.Const(self.sp(meta), False)

    def none(self, meta, items):
        return ast.Const(self.sp(meta), None)

    def paren(self, meta, items):
        return unchain(items[0])

    def list_expr(self, meta, items):
        return ast.ListExpr(self.sp(meta), tuple(i for i in items if i is not None))


# rule name -> the undecorated method of _ToAst (see _ToAst._call_userfunc)
_RULES = {name: getattr(v, "base_func") for name, v in vars(_ToAst).items()
          if hasattr(v, "visit_wrapper") and hasattr(v, "base_func")}


