"""The fast path of the parser: a hand-written recursive-descent parser that builds the
AST in one pass, for programs that parse cleanly.

grammar/res.lark stays the definition of the language, and Lark's LALR parser
(`parser.py`) stays its reference implementation: it reports every syntax error and
decides anything unusual. This parser accepts a subset of what the grammar accepts and
gives, for it, exactly the AST (spans included) that Lark's parse plus `_ToAst` would.
Whenever it meets anything else -- a syntax error, a keyword where it cannot tell whether
Lark reads a name, a literal out of range, nesting deeper than `fastexpr.MAX_NEST` -- it
raises :class:`Bail` and `read.parse` runs Lark on the same text, so errors and their
locations are Lark's, byte for byte.

Why: Lark's LALR parser in pure Python builds a parse tree (a dozen reductions per atom,
each propagating positions) and then transforms it: about 10 s per MB of source. This
parser takes about 1.2 s per MB (benchmarks/parse.py prints both on the same file).

Modules: lexer.py (tokens, with Lark's post-lexer folded in), fastexpr.py (expressions
and the helpers every rule uses), this file (statements, regions, blocks, the module),
syntax.py (what both parsers share). What it reproduces from Lark on purpose, each
checked against Lark by tests/test_fastparse.py on every repo file, every docs sample,
corner cases and fuzzed programs:

- the post-lexer and the contextual lexer's reading of `as` (see lexer.py);
- where Lark's contextual lexer reads a keyword as a name: wherever its parser state does
  not accept that keyword (`network ResNet(block)`, `block(64)` in a body, `x.in`); the
  sets NAME_AT_EXPR / NAME_AT_LINK / NAME_AT_STMT in fastexpr.py say where;
- the grammar's one shift/reduce conflict, resolved as shift: `(` after an expression is
  always a call, so `repeat n (i)` is the call `n(i)` that `split_index` reads back;
- positions: a node spans from the first to the last token its grammar rule consumed,
  anonymous tokens and newlines included; `(x)` yields x's node but its parent's span
  covers the parentheses; `+x` yields x's node;
- `_check_depth`: the depth of Lark's parse tree is computed alongside (`self.d`), and a
  program whose tree would be deeper than MAX_SYNTAX_DEPTH bails.
"""
from __future__ import annotations

from .._gc import paused
from ..diagnostics import Span
from . import ast
from .fastexpr import NAME_AT_EXPR, NAME_AT_LINK, NAME_AT_STMT, REGIONS, ExprParser
from .lexer import Bail
from .syntax import MAX_SYNTAX_DEPTH, split_index, template_pieces, unquote

__all__ = ["Bail", "Parser", "parse", "parse_expr"]


class Parser(ExprParser):
    """Statements, regions, blocks and the module (expressions: fastexpr.ExprParser)."""

    __slots__ = ()

    # ------------------------------------------------------------------ top level
    def module(self) -> ast.Module:
        if self.k[0] == "EOF":
            self.d = 1
            return ast.Module(self.base or Span(self.src, 1, 1, 1, 2), ())
        items, d = self.sequence(self.top, "EOF")
        self.d = d + 1
        if self.d > MAX_SYNTAX_DEPTH:
            raise Bail
        return ast.Module(self.span(0, self.i - 1), tuple(items))

    def sequence(self, item, end: str):
        """Items separated by newlines up to `end` (a newline may come before it); the
        items and their deepest parse tree. Leaves `end` for the caller."""
        k = self.k
        items, d = [], 0
        while True:
            items.append(item())
            if self.d > d:
                d = self.d
            kd = k[self.i]
            if kd == "NL":
                self.i += 1
                if k[self.i] == end:
                    return items, d
            elif kd == end:
                return items, d
            else:
                raise Bail

    def top(self):
        kd = self.k[self.i]
        if kd == "block":
            return self.block_def(False)
        if kd == "network":
            if self.k[self.i + 2] == "=":
                return self.let_stmt(ast.NetworkAlias)
            return self.block_def(True)
        if kd == "let":
            return self.let_stmt()
        if kd == "fn":
            return self.fn_def()
        if kd == "import":
            i0 = self.i
            self.i += 1
            names = [self.name()]
            while self.k[self.i] == ".":
                self.i += 1
                names.append(self.name())
            self.d = 2  # import_stmt > dotted_name
            return ast.Import(self.span(i0, self.i - 1), ".".join(names))
        raise Bail

    def block_def(self, is_network: bool) -> ast.BlockDef:
        i0 = self.i
        self.i += 1
        name = self.name()
        params, d = (), 0
        if self.k[self.i] == "(":
            self.i += 1
            if self.k[self.i] != ")":
                params = self.params()
                d = self.d
            self.expect(")")
        body = self.body()
        self.d = 1 + (d if d > self.d else self.d)
        return ast.BlockDef(self.span(i0, self.i - 1), name, params, body, is_network)

    def params(self) -> tuple:
        items = [self.param()]
        d = self.d
        k = self.k
        while k[self.i] == ",":
            self.i += 1
            if k[self.i] == ")":
                break
            items.append(self.param())
            if self.d > d:
                d = self.d
        self.d = d + 1
        return tuple(items)

    def param(self) -> ast.Param:
        i0 = self.i
        name = self.name()
        typ = default = None
        d = 0
        if self.k[self.i] == ":":
            self.i += 1
            typ = self.type()
            d = self.d
        if self.k[self.i] == "=":
            self.i += 1
            default = self.expr()
            if self.d > d:
                d = self.d
        self.d = d + 1
        return ast.Param(self.span(i0, self.i - 1), name, typ, default)

    def type(self) -> ast.TypeExpr:
        i0 = self.i
        name = self.name()
        args, d = [], 0
        if self.k[self.i] == "[":
            self.enter()
            self.i += 1
            while True:
                args.append(self.type())
                if self.d > d:
                    d = self.d
                if self.k[self.i] != ",":
                    break
                self.i += 1
            self.expect("]")
            self.nest -= 1
        opt = False
        if self.k[self.i] == "?":
            self.i += 1
            opt = True
        self.d = d + 1
        return ast.TypeExpr(self.span(i0, self.i - 1), name, tuple(args), opt)

    def fn_def(self) -> ast.FnDef:
        i0 = self.i
        self.i += 1
        name = self.name()
        self.expect("(")
        params, d = (), 0
        if self.k[self.i] != ")":
            params = self.params()
            d = self.d
        self.expect(")")
        if self.k[self.i] == "{":  # `fn f(v) { let a = v * 2; a + 1 }`
            lets, value, db = self.fn_body()
            self.d = 1 + (d if d > db else db)
            return ast.FnDef(self.span(i0, self.i - 1), name, params, value, lets)
        self.expect("=")
        value = self.expr()
        self.d = 1 + (d if d > self.d else self.d)
        return ast.FnDef(self.span(i0, self.i - 1), name, params, value)

    def fn_body(self):
        """`{ (let_stmt NL)* expr NL? }`: the lets, the value and the parse-tree depth of fn_body."""
        self.i += 1  # `{`
        self.enter()
        k = self.k
        lets, d = [], 0
        while k[self.i] == "let":
            lets.append(self.let_stmt())
            if self.d > d:
                d = self.d
            self.expect("NL")
        value = self.expr()
        if self.d > d:
            d = self.d
        if k[self.i] == "NL":
            self.i += 1
        self.expect("}")
        self.nest -= 1
        return tuple(lets), value, d + 1

    def let_stmt(self, cls=ast.Let):
        """`let NAME = expr`, and `network NAME = expr` (cls=ast.NetworkAlias)."""
        i0 = self.i
        self.i += 1
        name = self.name()
        self.expect("=")
        value = self.expr()
        self.d += 1
        return cls(self.span(i0, self.i - 1), name, value)

    def body(self) -> ast.Body:
        i0 = self.i
        self.expect("{")
        self.enter()
        stmts, d = self.sequence(self.stmt, "}") if self.k[self.i] != "}" else ((), 0)
        self.i += 1
        self.nest -= 1
        self.d = d + 1
        return ast.Body(self.span(i0, self.i - 1), tuple(stmts))

    # ------------------------------------------------------------------ statements
    def stmt(self):
        k = self.k
        kd = k[self.i]
        if kd in NAME_AT_STMT:
            nxt = k[self.i + 1]
            if nxt == "=" or nxt == ",":
                return self.assign_stmt()
        elif kd == "input":
            return self.input_stmt()
        elif kd == "output":
            return self.output_stmt()
        elif kd == "let":
            return self.let_stmt()
        elif kd == "fn":
            return self.fn_def()
        elif kd == "for":
            return self.for_stmt()
        elif kd == "if":
            return self.if_stmt()
        elif kd == "@":
            return self.annotation()
        i0 = self.i
        chain = self.chain()
        self.d += 1
        return ast.ChainStmt(self.span(i0, self.i - 1), chain)

    def assign_stmt(self) -> ast.Assign:
        i0 = self.i
        self.i += 1
        names = [self.t[i0][1]]
        while self.k[self.i] == ",":
            self.i += 1
            names.append(self.name())
        self.expect("=")
        chain = self.chain()
        self.d += 1
        return ast.Assign(self.span(i0, self.i - 1), tuple(names), chain)

    def annotation(self) -> ast.Annotation:
        """`@NAME target, ...` (the lexer made its tokens: ATNAME, PSEG, PINT, STRING, `.`, `,`)."""
        i0 = self.i
        name = self.t[i0 + 1][1]
        self.i += 2
        targets = [self.annotation_target()]
        while self.k[self.i] == ",":
            self.i += 1
            targets.append(self.annotation_target())
        self.d = 2  # annotation_stmt > annotation_target
        return ast.Annotation(self.span(i0, self.i - 1), name, tuple(targets))

    def annotation_target(self) -> ast.AsName:
        k, t = self.k, self.t
        i0 = self.i
        if k[i0] == "STRING":
            text = unquote(t[i0][1])
            self.i += 1
        elif k[i0] == "PSEG":
            pieces = [t[i0][1]]
            self.i += 1
            while k[self.i] == "." and k[self.i + 1] in ("PSEG", "PINT"):
                pieces.append(t[self.i + 1][1])
                self.i += 2
            text = ".".join(pieces)
        else:
            raise Bail
        span = self.span(i0, self.i - 1)
        pieces = template_pieces(text)
        if pieces is None:
            raise Bail  # Lark's path reports the unclosed `{`
        if "{" not in text:
            return ast.AsName(span, (text,) if text else ())
        return ast.AsName(span, tuple(parse_expr(p[0], span) if isinstance(p, tuple) else p for p in pieces))

    def input_stmt(self) -> ast.Input:
        i0 = self.i
        self.i += 1
        decls, d = self.separated(self.input_decl, ",")
        self.d = d + 1
        return ast.Input(self.span(i0, self.i - 1), tuple(decls))

    def input_decl(self) -> ast.InputDecl:
        i0 = self.i
        name = self.name()
        shape, d = None, 0
        if self.k[self.i] == ":":
            self.i += 1
            shape = self.shape()
            d = self.d
        self.d = d + 1
        return ast.InputDecl(self.span(i0, self.i - 1), name, shape)

    def shape(self) -> tuple:
        self.expect("[")
        self.enter()
        k = self.k
        axes, d = [], 0
        while True:
            j0 = self.i
            if k[j0 + 1] == "=" and k[j0] in NAME_AT_EXPR:
                name = self.t[j0][1]
                self.i += 2
                size = self.expr()
                axis = ast.AxisDecl(self.span(j0, self.i - 1), name, size)
            else:
                e = self.expr()
                if isinstance(e, ast.Name):  # `N`: a named symbolic axis
                    axis = ast.AxisDecl(self.span(j0, self.i - 1), e.id, None)
                else:
                    axis = ast.AxisDecl(self.span(j0, self.i - 1), None, e)
            axes.append(axis)
            if self.d + 1 > d:
                d = self.d + 1
            if k[self.i] != ",":
                break
            self.i += 1
            if k[self.i] == "]":
                break
        self.expect("]")
        self.nest -= 1
        self.d = d + 1
        return tuple(axes)

    def output_stmt(self) -> ast.Output:
        i0 = self.i
        self.i += 1
        k = self.k
        items, d = [], 0
        while True:
            j0 = self.i
            name, training = None, False
            if k[j0] == "NAME" and self.t[j0][1] == "training":  # Lark's contextual lexer: a keyword here
                if k[j0 + 1] not in NAME_AT_LINK or k[j0 + 2] != "=":
                    raise Bail
                training = True
                self.i += 1
            if k[self.i + 1] == "=" and k[self.i] in NAME_AT_LINK:
                name = self.t[self.i][1]
                self.i += 2
            chain = self.chain()
            items.append(ast.OutputItem(self.span(j0, self.i - 1), name, chain, training))
            if self.d + 1 > d:
                d = self.d + 1
            if k[self.i] != ",":
                break
            self.i += 1
        self.d = d + 1
        return ast.Output(self.span(i0, self.i - 1), tuple(items))

    def targets(self) -> tuple:
        names = [self.name()]
        while self.k[self.i] == ",":
            self.i += 1
            names.append(self.name())
        return tuple(names)

    def for_stmt(self) -> ast.For:
        i0 = self.i
        self.i += 1
        targets = self.targets()
        self.expect("in")
        iterable = self.expr()
        d = self.d
        body = self.body()
        self.d = 1 + max(1, d, self.d)
        return ast.For(self.span(i0, self.i - 1), targets[0], iterable, body, targets if len(targets) > 1 else ())

    def if_stmt(self) -> ast.If:
        i0 = self.i
        self.i += 1
        cond = self.expr()
        d = self.d
        then = self.body()
        if self.d > d:
            d = self.d
        other = None
        if self.k[self.i] == "else":
            self.i += 1
            other = self.if_stmt() if self.k[self.i] == "if" else self.body()
            if self.d > d:
                d = self.d
        self.d = d + 1
        return ast.If(self.span(i0, self.i - 1), cond, then, other)

    # ------------------------------------------------------------------ chains and regions
    def chain(self) -> ast.Chain:
        i0 = self.i
        links, d = self.separated(self.link, "->")
        self.d = d + 1
        return ast.Chain(self.span(i0, self.i - 1), tuple(links))

    def link(self) -> ast.Link:
        i0 = self.i
        kd = self.k[i0]
        if kd in REGIONS:
            if kd == "residual":
                region = self.residual()
            elif kd == "parallel":
                region = self.parallel()
            elif kd == "repeat":
                region = self.repeat()
            else:
                region = self.loop()
            self.d += 1
            return ast.Link(self.span(i0, self.i - 1), region, None)
        expr = self.body() if kd == "{" else self.expr()
        d = self.d
        as_name = None
        if self.k[self.i] == "as":
            as_name = self.as_name()
            if d < 1:
                d = 1
        self.d = d + 1
        return ast.Link(self.span(i0, self.i - 1), expr, as_name)

    def as_name(self) -> ast.AsName:
        self.i += 1  # `as`
        i = self.i
        kd = self.k[i]
        tok = self.t[i]
        if kd == "." or kd == "+":  # `as .` (inline) / `as +` (the next index)
            self.i = i + 1
            self.d = 1
            span = self.base or Span(self.src, tok[2], tok[3], tok[4], tok[5])
            return ast.AsName(span, (), "inline" if kd == "." else "next")
        if kd == "ASNAME" or kd == "TEMPLATE":
            text = tok[1]
        elif kd == "STRING":
            text = unquote(tok[1])
        elif kd == "INT":
            text = tok[1]
        else:
            raise Bail
        self.i = i + 1
        span = self.base or Span(self.src, tok[2], tok[3], tok[4], tok[5])
        self.d = 1
        if "{" not in text:
            return ast.AsName(span, (text,) if text else ())
        pieces = template_pieces(text)
        if pieces is None:
            raise Bail  # Lark's path reports the unclosed `{`
        parts = [parse_expr(p[0], span) if isinstance(p, tuple) else p for p in pieces]
        return ast.AsName(span, tuple(parts))

    def region_args(self):
        """`residual` / `parallel` and their optional `(...)`: the first token's index, the
        arguments and their parse-tree depth."""
        i0 = self.i
        self.i += 1
        if self.k[self.i] != "(":
            return i0, (), 0
        args = self.call_args()
        return i0, args, self.d

    def residual(self) -> ast.Residual:
        i0, args, d = self.region_args()
        k = self.k
        cond = None
        if k[self.i] == "if":
            self.i += 1
            cond = self.expr()
            if self.d + 1 > d:
                d = self.d + 1
        body = self.body()
        if self.d > d:
            d = self.d
        scond = sbody = sspan = None
        if k[self.i] == "shortcut":
            j0 = self.i
            self.i += 1
            ds = 0
            if k[self.i] == "if":
                self.i += 1
                scond = self.expr()
                ds = self.d
            sbody = self.body()
            if self.d > ds:
                ds = self.d
            sspan = self.span(j0, self.i - 1)
            if ds + 1 > d:
                d = ds + 1
        as_name = None
        if k[self.i] == "as":
            as_name = self.as_name()
            if d < 1:
                d = 1
        self.d = d + 1
        return ast.Residual(self.span(i0, self.i - 1), args, body, sbody, scond, sspan, as_name, cond)

    def parallel(self) -> ast.Parallel:
        i0, args, d = self.region_args()
        k = self.k
        self.expect("{")
        self.enter()
        branches = [self.chain()]
        if self.d + 1 > d:
            d = self.d + 1
        while True:
            kd = k[self.i]
            if kd == "NL":
                self.i += 1
                kd = k[self.i]
            if kd == "|":
                self.i += 1
                branches.append(self.chain())
                if self.d + 1 > d:
                    d = self.d + 1
            elif kd == "}":
                break
            else:
                raise Bail
        self.i += 1
        self.nest -= 1
        self.d = d + 1
        return ast.Parallel(self.span(i0, self.i - 1), args, tuple(branches))

    def repeat(self) -> ast.Repeat:
        i0 = self.i
        self.i += 1
        count = self.expr()
        d = self.d
        as_name = index = None
        if self.k[self.i] == "as":
            as_name = self.as_name()
            if d < 1:
                d = 1
            if self.k[self.i] == "(":  # after `as`, `(` can only be the index
                index = self.index()
                if d < 1:
                    d = 1
        body = self.body()
        if self.d > d:
            d = self.d
        count, index = split_index(count, index)
        self.d = d + 1
        return ast.Repeat(self.span(i0, self.i - 1), count, as_name, index, body)

    def loop(self) -> ast.Loop:
        i0 = self.i
        self.i += 1
        count = self.expr()
        d = self.d
        shared, index = False, None
        if self.k[self.i] == "shared":
            self.i += 1
            shared = True
            if self.k[self.i] == "(":
                index = self.index()
                if d < 1:
                    d = 1
        body = self.body()
        if self.d > d:
            d = self.d
        as_name = None
        if self.k[self.i] == "as":
            as_name = self.as_name()
            if d < 1:
                d = 1
        count, index = split_index(count, index)
        self.d = d + 1
        return ast.Loop(self.span(i0, self.i - 1), count, shared, index, body, as_name)

    def index(self) -> str:
        self.i += 1  # `(`
        name = self.name()
        self.expect(")")
        return name


def parse(text: str, src) -> ast.Module:
    """The AST of `text`, or Bail. `text` has no byte order mark.

    The cyclic garbage collector is paused meanwhile (see resdsl._gc): on a 5 MB file its
    passes over the new nodes cost more than the parse itself."""
    with paused():
        try:
            return Parser(text, src).module()
        except RecursionError:
            raise Bail from None


def parse_expr(text: str, span: Span):
    """The expression of a `{...}` piece of a template name (parser.parse_expr), or Bail."""
    p = Parser(f"let __tmp__ = {text}", span.source, base=span)
    try:
        module = p.module()
    except RecursionError:
        raise Bail from None
    return module.items[0].value
