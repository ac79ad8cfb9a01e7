"""The fast path of the parser: a hand-written lexer and recursive-descent parser that
builds the AST in one pass, for programs that parse cleanly.

grammar/res.lark stays the definition of the language, and Lark's LALR parser
(`parser.py`) stays its reference implementation: it is the one that reports syntax
errors and the one that decides anything unusual. This module accepts a subset of what
the grammar accepts and gives, for it, exactly the AST (spans included) that Lark's parse
plus `_ToAst` would give. Whenever it meets anything else -- a syntax error, a keyword
spelled where a name goes, a literal out of range, nesting deeper than `MAX_NEST` -- it
raises :class:`Bail` and `parser.parse` runs Lark on the same text, so errors, their
locations and the rare corner cases are Lark's, byte for byte.

Why: Lark's LALR parser in pure Python builds a parse tree (about a dozen reductions per
atom, each with position propagation) and then transforms it; that is ~10 s per MB of
source. This parser does ~1 s per MB (see benchmarks/fuzz.py --big-mb).

Things it reproduces from Lark on purpose (tests/test_fastparse.py checks all of them
against Lark on every repo file, every docs sample and fuzzed programs):

- the post-lexer: newlines inside (...) / [...] and after `->`, `|`, `,`, `{`, `=` are
  dropped, runs of newlines (and `;`) are one separator;
- the contextual lexer: after `as` the next token is lexed as Lark's `as` state does
  (TEMPLATE_NAME first, then NAME, INT, STRING), so `as layer{i}` is one token and `as in`
  is a name; a keyword elsewhere is a keyword (where Lark would read it as a name this
  parser bails);
- the one shift/reduce conflict, resolved as shift: `(` after an expression is always
  a call, so `repeat n (i)` is the call `n(i)` that `_split_index` reads back;
- positions: a node spans from the first to the last token its grammar rule consumed,
  anonymous tokens and newlines included; `(x)` yields x's node but its parent's span
  covers the parentheses; `+x` yields x's node;
- `_check_depth`: the depth of Lark's parse tree is computed alongside (`self.d`), and a
  program whose tree would be deeper than MAX_SYNTAX_DEPTH bails.
"""
from __future__ import annotations

import re

from .._gc import paused
from ..diagnostics import Span
from . import ast

MAX_SYNTAX_DEPTH = 200  # parser.MAX_SYNTAX_DEPTH (Lark parse-tree depth)
MAX_LITERAL_DIGITS = 100  # parser.MAX_LITERAL_DIGITS
MAX_NEST = 40  # brackets, bodies and prefix operators nested deeper than this go to Lark


class Bail(Exception):
    """Not a clean parse by this parser's rules: let Lark decide."""


# words the grammar spells as literals (and the SHARED terminal): never a NAME here
KEYWORDS = frozenset("""import block network fn input output let as residual if shortcut parallel repeat
    loop for in else or and not true false none shared""".split())

# a comment runs to the end of its line: (?![^\n]) keeps the regex from backtracking into it
_SKIP = r"(?:[ \t\f]|\\[ \t\f]*\r?\n|#[^\n]*(?![^\n]))*"
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_STRING = r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
_TEMPLATE = r"(?:[A-Za-z_][A-Za-z_0-9]*)?(?:\{[^{}\n]*\}[A-Za-z_0-9]*)+"
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?"
_TOKEN = re.compile(
    rf"({_SKIP})(?:"
    rf"(?P<NL>(?:\r?\n[\t ]*)+|;)"
    rf"|(?P<AS>as(?![A-Za-z_0-9]){_SKIP}(?:(?P<ASTPL>{_TEMPLATE})|(?P<ASNAME>{_NAME})|(?P<ASINT>[0-9]+)"
    rf"|(?P<ASSTR>{_STRING}))?)"
    rf"|(?P<NAME>{_NAME})"
    rf"|(?P<NUMBER>{_NUMBER})"
    rf"|(?P<STRING>{_STRING})"
    r"|(?P<OP>->|\*\*|//|==|!=|<=|>=|[-+*/%=<>(){}\[\],:.|?])"
    r")")
_TAIL = re.compile(rf"{_SKIP}\Z")
_CONTINUATION = re.compile(r"\\[ \t\f]*\r?\n")
_COMPARE = frozenset(("==", "!=", "<=", ">=", "<", ">"))
_JOINERS = frozenset(("->", "|", ",", "{", "="))  # a newline after one of these is dropped
_AS_KINDS = (("ASTPL", "TEMPLATE"), ("ASNAME", "ASNAME"), ("ASINT", "INT"), ("ASSTR", "STRING"))


def tokenize(text: str) -> list:
    """Tokens after the post-lexer, as tuples (kind, value, line, column, end_line, end_column).

    kind is the keyword or punctuation itself, "CMP" for comparisons, NAME, NUMBER, STRING,
    NL, and after `as`: TEMPLATE, ASNAME, INT or STRING. Ends with two EOF tokens."""
    toks = []
    append = toks.append
    line, lstart, pos = 1, 0, 0
    depth = 0
    prev_kind, prev_val = None, None
    count_lines = _CONTINUATION.search(text) is not None
    for m in _TOKEN.finditer(text):
        if m.start() != pos:
            if _TAIL.match(text, pos):  # only skipped text is left (a last comment, say)
                break
            raise Bail  # a character no terminal matches
        kind = m.lastgroup
        s = m.end(1)
        e = pos = m.end()
        if count_lines and s != m.start():  # a `\` line continuation in the skipped text
            n = text.count("\n", m.start(), s)
            if n:
                line += n
                lstart = text.rfind("\n", m.start(), s) + 1
        if kind == "NAME":
            v = text[s:e]
            kd = v if v in KEYWORDS else "NAME"
        elif kind == "OP":
            v = text[s:e]
            if v in _COMPARE:
                kd = "CMP"
            else:
                kd = v
                if v == "(" or v == "[":
                    depth += 1
                elif v == ")" or v == "]":
                    if depth:
                        depth -= 1
        elif kind == "NL":
            v = text[s:e]
            if v == ";":
                tok = ("NL", v, line, s - lstart + 1, line, e - lstart + 1)
            else:
                n = v.count("\n")
                nl = text.rfind("\n", s, e) + 1
                tok = ("NL", v, line, s - lstart + 1, line + n, e - nl + 1)
                line += n
                lstart = nl
            if depth or prev_kind is None or prev_kind == "NL" or prev_val in _JOINERS:
                continue
            append(tok)
            prev_kind, prev_val = "NL", v
            continue
        elif kind == "AS":
            c = s - lstart + 1
            append(("as", "as", line, c, line, c + 2))
            prev_kind = prev_val = "as"
            for group, kd in _AS_KINDS:
                ts = m.start(group)
                if ts >= 0:
                    break
            else:
                ts = -1
            if count_lines:  # a `\` continuation between `as` and its name
                stop = ts if ts >= 0 else e
                n = text.count("\n", s + 2, stop)
                if n:
                    line += n
                    lstart = text.rfind("\n", s + 2, stop) + 1
            if ts >= 0:
                v = text[ts:e]
                append((kd, v, line, ts - lstart + 1, line, e - lstart + 1))
                prev_kind, prev_val = kd, v
            continue
        else:  # NUMBER, STRING
            v = text[s:e]
            kd = kind
        append((kd, v, line, s - lstart + 1, line, e - lstart + 1))
        prev_kind, prev_val = kd, v
    if pos != len(text):  # only skipped text (spaces, a comment, a `\` continuation) may follow
        m = _TAIL.match(text, pos)
        if m is None:
            raise Bail
        if count_lines:
            n = text.count("\n", pos)
            if n:
                line += n
                lstart = text.rfind("\n", pos) + 1
        pos = len(text)
    eof = ("EOF", "", line, pos - lstart + 1, line, pos - lstart + 1)
    toks.append(eof)
    toks.append(eof)
    return toks


def _unquote(s: str) -> str:
    body = s[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _unchain(chain):
    """An argument that is a plain expression (one link, no `as`) stays an expression."""
    if len(chain.links) == 1 and chain.links[0].as_name is None \
            and not isinstance(chain.links[0].expr, (ast.Body, ast.Residual, ast.Parallel, ast.Repeat, ast.Loop)):
        return chain.links[0].expr
    return chain


def _split_index(count, index):
    """`repeat n (i) {` parses as the call `n(i)`; read it as count `n`, index `i`."""
    if index is None and isinstance(count, ast.Call) and len(count.args) == 1 \
            and count.args[0].name is None and isinstance(count.args[0].value, ast.Name):
        return count.func, count.args[0].value.id
    return count, index


# kinds after which an atom can go on being an expression; anything else ends it
_CONTINUES = frozenset(("(", "[", ".", "**", "*", "/", "//", "%", "+", "-", "CMP", "and", "or", "if"))
_ATOMS = frozenset(("NAME", "NUMBER", "STRING"))
_MUL = frozenset(("*", "/", "//", "%"))
_ADD = frozenset(("+", "-"))
# Lark's contextual lexer reads a keyword as a NAME wherever its parser state does not
# accept that keyword. These sets say where each keyword is accepted:
# `as` is left out: the lexer reads the word after it as a name already (see tokenize)
_KEYWORD_NAMES = KEYWORDS - {"as"}
_EXPR_KEYWORDS = frozenset(("not", "true", "false", "none", "in"))  # where an expression may start
_LINK_KEYWORDS = _EXPR_KEYWORDS | {"residual", "parallel", "repeat", "loop"}  # where a chain may start
_STMT_KEYWORDS = _LINK_KEYWORDS | {"input", "output", "let", "fn", "for", "if"}  # a statement's start
# a word that is a NAME where an expression, a chain or a statement may start
_NAME_AT_EXPR = frozenset({"NAME"} | (_KEYWORD_NAMES - _EXPR_KEYWORDS))
_NAME_AT_LINK = frozenset({"NAME"} | (_KEYWORD_NAMES - _LINK_KEYWORDS))
_NAME_AT_STMT = frozenset({"NAME"} | (_KEYWORD_NAMES - _STMT_KEYWORDS))
_REGIONS = frozenset(("residual", "parallel", "repeat", "loop"))


class _Parser:
    __slots__ = ("t", "k", "i", "src", "base", "d", "nest", "last_i0", "last_i1", "last_span")

    def __init__(self, text: str, src, base: Span | None = None):
        self.t = tokenize(text)
        self.k = [tok[0] for tok in self.t]
        self.i = 0
        self.src = src
        self.base = base
        self.d = 0  # Lark parse-tree depth of what the last rule method returned
        self.nest = 0
        self.last_i0 = self.last_i1 = -1
        self.last_span = None

    # ------------------------------------------------------------------ helpers
    def span(self, i0: int, i1: int) -> Span:
        """The span of tokens i0..i1. Spans are immutable, so nested nodes over the same
        tokens, made one after the other (a name, its link, its chain, its argument), share
        one: 40% fewer spans."""
        if self.base is not None:
            return self.base
        if i0 == self.last_i0 and i1 == self.last_i1:
            return self.last_span
        a = self.t[i0]
        b = self.t[i1]
        self.last_i0, self.last_i1 = i0, i1
        self.last_span = sp = Span(self.src, a[2], a[3], b[4], b[5])
        return sp

    def expect(self, kind: str) -> None:
        if self.k[self.i] != kind:
            raise Bail
        self.i += 1

    def name(self) -> str:
        """A NAME where the grammar allows nothing else (Lark's state there lexes any word,
        keywords included, as a NAME: `network ResNet(block, ...)`)."""
        i = self.i
        kd = self.k[i]
        if kd != "NAME" and kd not in _KEYWORD_NAMES:
            raise Bail
        self.i = i + 1
        return self.t[i][1]

    def enter(self) -> None:
        self.nest += 1
        if self.nest > MAX_NEST:
            raise Bail

    # ------------------------------------------------------------------ top level
    def module(self) -> ast.Module:
        k = self.k
        if k[0] == "EOF":
            self.d = 1
            return ast.Module(self.base or Span(self.src, 1, 1, 1, 2), ())
        items = []
        d = 0
        while True:
            items.append(self.top())
            if self.d > d:
                d = self.d
            kd = k[self.i]
            if kd == "NL":
                self.i += 1
                if k[self.i] == "EOF":
                    break
            elif kd == "EOF":
                break
            else:
                raise Bail
        self.d = d + 1
        if self.d > MAX_SYNTAX_DEPTH:
            raise Bail
        return ast.Module(self.span(0, self.i - 1), tuple(items))

    def top(self):
        kd = self.k[self.i]
        if kd == "block":
            return self.block_def(False)
        if kd == "network":
            if self.k[self.i + 2] == "=":
                return self.network_alias()
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

    def network_alias(self) -> ast.NetworkAlias:
        i0 = self.i
        self.i += 1
        name = self.name()
        self.expect("=")
        value = self.expr()
        self.d += 1
        return ast.NetworkAlias(self.span(i0, self.i - 1), name, value)

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
        self.expect("=")
        value = self.expr()
        self.d = 1 + (d if d > self.d else self.d)
        return ast.FnDef(self.span(i0, self.i - 1), name, params, value)

    def let_stmt(self) -> ast.Let:
        i0 = self.i
        self.i += 1
        name = self.name()
        self.expect("=")
        value = self.expr()
        self.d += 1
        return ast.Let(self.span(i0, self.i - 1), name, value)

    def body(self) -> ast.Body:
        i0 = self.i
        self.expect("{")
        self.enter()
        k = self.k
        stmts, d = [], 0
        if k[self.i] != "}":
            while True:
                stmts.append(self.stmt())
                if self.d > d:
                    d = self.d
                kd = k[self.i]
                if kd == "NL":
                    self.i += 1
                    if k[self.i] == "}":
                        break
                elif kd == "}":
                    break
                else:
                    raise Bail
        self.i += 1
        self.nest -= 1
        self.d = d + 1
        return ast.Body(self.span(i0, self.i - 1), tuple(stmts))

    # ------------------------------------------------------------------ statements
    def stmt(self):
        k = self.k
        kd = k[self.i]
        if kd in _NAME_AT_STMT:
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

    def input_stmt(self) -> ast.Input:
        i0 = self.i
        self.i += 1
        decls = [self.input_decl()]
        d = self.d
        while self.k[self.i] == ",":
            self.i += 1
            decls.append(self.input_decl())
            if self.d > d:
                d = self.d
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
            if k[j0 + 1] == "=" and k[j0] in _NAME_AT_EXPR:
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
            name = None
            if k[j0 + 1] == "=" and k[j0] in _NAME_AT_LINK:
                name = self.t[j0][1]
                self.i += 2
            chain = self.chain()
            items.append(ast.OutputItem(self.span(j0, self.i - 1), name, chain))
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
        links = [self.link()]
        d = self.d
        k = self.k
        while k[self.i] == "->":
            self.i += 1
            links.append(self.link())
            if self.d > d:
                d = self.d
        self.d = d + 1
        return ast.Chain(self.span(i0, self.i - 1), tuple(links))

    def link(self) -> ast.Link:
        i0 = self.i
        kd = self.k[i0]
        if kd in _REGIONS:
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
        if kd == "ASNAME" or kd == "TEMPLATE":
            text = tok[1]
        elif kd == "STRING":
            text = _unquote(tok[1])
        elif kd == "INT":
            text = tok[1]
        else:
            raise Bail
        self.i = i + 1
        span = self.base or Span(self.src, tok[2], tok[3], tok[4], tok[5])
        self.d = 1
        if "{" not in text:
            return ast.AsName(span, (text,) if text else ())
        parts = []
        j = 0
        while j < len(text):
            a = text.find("{", j)
            if a < 0:
                parts.append(text[j:])
                break
            if a > j:
                parts.append(text[j:a])
            b = text.find("}", a)
            if b < 0:
                raise Bail  # Lark's path reports the unclosed `{`
            parts.append(parse_expr(text[a + 1:b], span))
            j = b + 1
        return ast.AsName(span, tuple(parts))

    def residual(self) -> ast.Residual:
        i0 = self.i
        self.i += 1
        k = self.k
        args, d = (), 0
        if k[self.i] == "(":
            args = self.call_args()
            d = self.d
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
        i0 = self.i
        self.i += 1
        k = self.k
        args, d = (), 0
        if k[self.i] == "(":
            args = self.call_args()
            d = self.d
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
        count, index = _split_index(count, index)
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
        count, index = _split_index(count, index)
        self.d = d + 1
        return ast.Loop(self.span(i0, self.i - 1), count, shared, index, body, as_name)

    def index(self) -> str:
        self.i += 1  # `(`
        name = self.name()
        self.expect(")")
        return name

    # ------------------------------------------------------------------ expressions
    def expr(self):
        i0 = self.i
        k = self.k
        if k[i0] in _ATOMS and k[i0 + 1] not in _CONTINUES:  # the common case: a lone atom
            return self.atom()
        then = self.or_expr()
        if k[self.i] != "if":
            return then
        d = self.d
        self.i += 1
        cond = self.or_expr()
        if self.d > d:
            d = self.d
        self.expect("else")
        self.enter()
        other = self.expr()
        self.nest -= 1
        if self.d > d:
            d = self.d
        self.d = d + 1
        return ast.CondExpr(self.span(i0, self.i - 1), cond, then, other)

    def or_expr(self):
        i0 = self.i
        left = self.and_expr()
        k = self.k
        while k[self.i] == "or":
            d = self.d
            self.i += 1
            right = self.and_expr()
            self.d = 1 + (d if d > self.d else self.d)
            left = ast.BoolOp(self.span(i0, self.i - 1), "or", left, right)
        return left

    def and_expr(self):
        i0 = self.i
        left = self.not_expr()
        k = self.k
        while k[self.i] == "and":
            d = self.d
            self.i += 1
            right = self.not_expr()
            self.d = 1 + (d if d > self.d else self.d)
            left = ast.BoolOp(self.span(i0, self.i - 1), "and", left, right)
        return left

    def not_expr(self):
        if self.k[self.i] != "not":
            return self.comparison()
        i0 = self.i
        self.i += 1
        self.enter()
        operand = self.not_expr()
        self.nest -= 1
        self.d += 1
        return ast.UnaryOp(self.span(i0, self.i - 1), "not", operand)

    def comparison(self):
        i0 = self.i
        left = self.sum()
        if self.k[self.i] != "CMP":
            return left
        d = self.d
        op = self.t[self.i][1]
        self.i += 1
        right = self.sum()
        self.d = 1 + (d if d > self.d else self.d)
        return ast.Compare(self.span(i0, self.i - 1), op, left, right)

    def sum(self):
        i0 = self.i
        left = self.term()
        k = self.k
        while k[self.i] in _ADD:
            d = self.d
            op = k[self.i]
            self.i += 1
            right = self.term()
            self.d = 1 + (d if d > self.d else self.d)
            left = ast.BinOp(self.span(i0, self.i - 1), op, left, right)
        return left

    def term(self):
        i0 = self.i
        left = self.factor()
        k = self.k
        while k[self.i] in _MUL:
            d = self.d
            op = k[self.i]
            self.i += 1
            right = self.factor()
            self.d = 1 + (d if d > self.d else self.d)
            left = ast.BinOp(self.span(i0, self.i - 1), op, left, right)
        return left

    def factor(self):
        kd = self.k[self.i]
        if kd == "-":
            i0 = self.i
            self.i += 1
            self.enter()
            operand = self.factor()
            self.nest -= 1
            self.d += 1
            return ast.UnaryOp(self.span(i0, self.i - 1), "-", operand)
        if kd == "+":  # `?factor: "+" factor` is inlined: x's own node
            self.i += 1
            self.enter()
            operand = self.factor()
            self.nest -= 1
            return operand
        i0 = self.i
        base = self.postfix()
        if self.k[self.i] != "**":
            return base
        d = self.d
        self.i += 1
        self.enter()
        exp = self.factor()
        self.nest -= 1
        self.d = 1 + (d if d > self.d else self.d)
        return ast.BinOp(self.span(i0, self.i - 1), "**", base, exp)

    def postfix(self):
        i0 = self.i
        node = self.atom()
        k = self.k
        while True:
            kd = k[self.i]
            if kd == "(":
                d = self.d
                args = self.call_args()
                self.d = 1 + (d if d > self.d else self.d)
                node = ast.Call(self.span(i0, self.i - 1), node, args)
            elif kd == "[":
                d = self.d
                self.i += 1
                self.enter()
                sub = self.subscript()
                self.expect("]")
                self.nest -= 1
                self.d = 1 + (d if d > self.d else self.d)
                node = ast.Index(self.span(i0, self.i - 1), node, sub)
            elif kd == ".":
                self.i += 1
                name = self.name()
                self.d += 1
                node = ast.Attr(self.span(i0, self.i - 1), node, name)
            else:
                return node

    def subscript(self):
        j0 = self.i
        k = self.k
        if k[j0] == ":":
            lower, d = None, 0
        else:
            lower = self.expr()
            if k[self.i] != ":":
                return lower
            d = self.d
        self.i += 1  # `:`
        upper = None
        if k[self.i] != "]":
            upper = self.expr()
            if self.d > d:
                d = self.d
        self.d = d + 1
        return ast.Slice(self.span(j0, self.i - 1), lower, upper)

    def call_args(self) -> tuple:
        self.i += 1  # `(`
        self.enter()
        k = self.k
        args, d = [], 0
        while k[self.i] != ")":
            j0 = self.i
            if k[j0 + 1] == "=" and k[j0] in _NAME_AT_LINK:
                name = self.t[j0][1]
                self.i += 2
            else:
                name = None
            chain = self.chain()
            args.append(ast.Arg(self.span(j0, self.i - 1), name, _unchain(chain)))
            if self.d + 1 > d:
                d = self.d + 1
            if k[self.i] != ",":
                break
            self.i += 1
        self.expect(")")
        self.nest -= 1
        self.d = d + 1
        return tuple(args)

    def atom(self):
        i = self.i
        kd = self.k[i]
        if kd == "NAME":
            self.i = i + 1
            self.d = 1
            return ast.Name(self.span(i, i), self.t[i][1])
        if kd == "NUMBER":
            self.i = i + 1
            self.d = 1
            return ast.Const(self.span(i, i), _number(self.t[i][1]))
        if kd == "STRING":
            self.i = i + 1
            self.d = 1
            return ast.Const(self.span(i, i), _unquote(self.t[i][1]))
        if kd == "(":
            self.i = i + 1
            self.enter()
            chain = self.chain()
            self.expect(")")
            self.nest -= 1
            self.d += 1
            return _unchain(chain)
        if kd == "[":
            return self.list_()
        if kd == "true" or kd == "false" or kd == "none":
            self.i = i + 1
            self.d = 1
            return ast.Const(self.span(i, i), True if kd == "true" else False if kd == "false" else None)
        if kd == "in":
            self.i = i + 1
            self.d = 1
            return ast.InRef(self.span(i, i))
        if kd in _KEYWORD_NAMES:
            # a keyword this position does not accept is a NAME to Lark: `block(...)` in a body
            # (the callers took every keyword they accept here: regions in link(), statements in
            # stmt(), `not` in not_expr(); after `-`, `**` or `<` even `not` is a name)
            self.i = i + 1
            self.d = 1
            return ast.Name(self.span(i, i), self.t[i][1])
        raise Bail

    def list_(self):
        i0 = self.i
        self.i += 1
        self.enter()
        k = self.k
        if k[self.i] == "]":
            self.i += 1
            self.nest -= 1
            self.d = 1
            return ast.ListExpr(self.span(i0, self.i - 1), ())
        first = self.expr()
        d = self.d
        if k[self.i] == "for":
            clauses = []
            while k[self.i] == "for":
                clauses.append(self.comp_for())
                if self.d > d:
                    d = self.d
            self.expect("]")
            self.nest -= 1
            self.d = d + 1
            return ast.ListComp(self.span(i0, self.i - 1), first, tuple(clauses))
        items = [first]
        while k[self.i] == ",":
            self.i += 1
            if k[self.i] == "]":
                break
            items.append(self.expr())
            if self.d > d:
                d = self.d
        self.expect("]")
        self.nest -= 1
        self.d = d + 1
        return ast.ListExpr(self.span(i0, self.i - 1), tuple(items))

    def comp_for(self) -> ast.CompFor:
        i0 = self.i
        self.i += 1
        targets = self.targets()
        self.expect("in")
        iterable = self.or_expr()
        d = max(1, self.d)
        conds = []
        k = self.k
        while k[self.i] == "if":
            self.i += 1
            conds.append(self.or_expr())
            if self.d + 1 > d:
                d = self.d + 1
        self.d = d + 1
        return ast.CompFor(self.span(i0, self.i - 1), targets, iterable, tuple(conds))


def _number(t: str):
    if len(t) > MAX_LITERAL_DIGITS and sum(c.isdigit() for c in t) > MAX_LITERAL_DIGITS:
        raise Bail
    if "." in t or "e" in t or "E" in t:
        v = float(t)
        if v == float("inf"):
            raise Bail
        return v
    v = int(t)
    if v.bit_length() > 63:
        raise Bail
    return v


def parse(text: str, src) -> ast.Module:
    """The AST of `text`, or Bail. `text` has no byte order mark.

    The cyclic garbage collector is paused meanwhile (see resdsl._gc): on a 5 MB file its
    passes over the new nodes cost more than the parse itself."""
    with paused():
        try:
            return _Parser(text, src).module()
        except RecursionError:
            raise Bail from None


def parse_expr(text: str, span: Span):
    """The expression of a `{...}` piece of a template name (parser.parse_expr), or Bail."""
    p = _Parser(f"let __tmp__ = {text}", span.source, base=span)
    try:
        module = p.module()
    except RecursionError:
        raise Bail from None
    return module.items[0].value
