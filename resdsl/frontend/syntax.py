"""What both parsers share: the literal limits, string unquoting, and the two readings the
grammar leaves to the AST builder (an argument that is a plain expression, and
`repeat n (i)`)."""
from __future__ import annotations

from . import ast

MAX_SYNTAX_DEPTH = 200  # nesting of the parse tree: brackets, operators, bodies (Lark's tree)
MAX_LITERAL_DIGITS = 100  # digits in a number literal

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def unquote(s: str) -> str:
    """The value of a STRING token (quotes removed, `\\n`, `\\t` and escaped quotes read)."""
    body = s[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def unchain(chain):
    """An argument that is a plain expression (one link, no `as`) stays an expression."""
    if len(chain.links) == 1 and chain.links[0].as_name is None \
            and not isinstance(chain.links[0].expr, (ast.Body, ast.Residual, ast.Parallel, ast.Repeat, ast.Loop)):
        return chain.links[0].expr
    return chain


def split_index(count, index):
    """`repeat n (i) {` parses as the call `n(i)`; read it as count `n`, index `i`."""
    if index is None and isinstance(count, ast.Call) and len(count.args) == 1 \
            and count.args[0].name is None and isinstance(count.args[0].value, ast.Name):
        return count.func, count.args[0].value.id
    return count, index


def template_pieces(text: str):
    """The pieces of a name written `layer{s + 1}_{i}`: literal text as str, each `{...}` as a
    1-tuple of the expression's text; None when a `{` is never closed."""
    pieces, i = [], 0
    while i < len(text):
        j = text.find("{", i)
        if j < 0:
            pieces.append(text[i:])
            break
        if j > i:
            pieces.append(text[i:j])
        k = text.find("}", j)
        if k < 0:
            return None
        pieces.append((text[j + 1:k],))
        i = k + 1
    return pieces
