"""The fast parser's expressions, and what every rule method shares.

`ExprParser` holds the token list and the position, builds spans, and parses the
expression grammar of grammar/res.lark (ternary down to atoms, calls, lists and
comprehensions); fastparse.Parser adds statements, regions and the module.

Every rule method returns its node and leaves in `self.d` the depth of the parse tree
Lark would build for it (1 + the deepest child for a rule that makes a tree node; the
child's own depth for one Lark inlines, `?rule`), so that the fast parser refuses exactly
the programs Lark's depth check refuses.
"""
from __future__ import annotations

from ..diagnostics import Span
from . import ast
from .lexer import KEYWORDS, Bail, tokenize
from .syntax import MAX_LITERAL_DIGITS, unchain, unquote

MAX_NEST = 40  # brackets, bodies and prefix operators nested deeper than this go to Lark

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
NAME_AT_EXPR = frozenset({"NAME"} | (_KEYWORD_NAMES - _EXPR_KEYWORDS))
NAME_AT_LINK = frozenset({"NAME"} | (_KEYWORD_NAMES - _LINK_KEYWORDS))
NAME_AT_STMT = frozenset({"NAME"} | (_KEYWORD_NAMES - _STMT_KEYWORDS))
REGIONS = frozenset(("residual", "parallel", "repeat", "loop"))
_COMP_ELT = frozenset(("for", "->", "as"))  # after a list's first expression: a comprehension's element


class ExprParser:
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

    def separated(self, item, sep: str):
        """`item (sep item)*`: the items and their deepest parse tree."""
        items = [item()]
        d = self.d
        k = self.k
        while k[self.i] == sep:
            self.i += 1
            items.append(item())
            if self.d > d:
                d = self.d
        return items, d

    def enter(self) -> None:
        self.nest += 1
        if self.nest > MAX_NEST:
            raise Bail

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
            if k[j0 + 1] == "=" and k[j0] in NAME_AT_LINK:
                name = self.t[j0][1]
                self.i += 2
            else:
                name = None
            chain = self.chain()
            args.append(ast.Arg(self.span(j0, self.i - 1), name, unchain(chain)))
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
            return ast.Const(self.span(i, i), unquote(self.t[i][1]))
        if kd == "(":
            self.i = i + 1
            self.enter()
            chain = self.chain()
            self.expect(")")
            self.nest -= 1
            self.d += 1
            return unchain(chain)
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
        j0 = self.i
        first = self.expr()
        d = self.d
        if k[self.i] in _COMP_ELT:  # `[p -> relu for p in parts]`: the element is a chain (grammar: comp_elt)
            as_name = None
            if k[self.i] == "as":
                as_name = self.as_name()
                if d < 1:
                    d = 1
            links = [ast.Link(self.span(j0, self.i - 1), first, as_name)]
            d += 1
            while k[self.i] == "->":
                self.i += 1
                links.append(self.link())
                if self.d > d:
                    d = self.d
            first = unchain(ast.Chain(self.span(j0, self.i - 1), tuple(links)))
            d += 1
            if k[self.i] != "for":
                raise Bail
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
