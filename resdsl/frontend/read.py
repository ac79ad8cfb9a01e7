"""Reading a program: the parser's entry points.

`parse(text, path)` returns an :class:`ast.Module` or raises a ResdslError of kind
``syntax`` that names what the parser expected at the failing position. The fast parser
(fastparse.py) reads well-formed programs; what it hands over (every error, a few corner
cases) goes to Lark's LALR parser (parser.py), the reference, imported only then: checking
a valid program never imports lark.
"""
from __future__ import annotations

from ..diagnostics import SourceFile, Span
from . import ast, fastparse


def parse(text: str, path: str = "<string>") -> ast.Module:
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark, as some editors write: not part of the program
        text = text[1:]
    src = SourceFile(path, text)
    try:
        return fastparse.parse(text, src)
    except fastparse.Bail:  # an error or a corner case: Lark's LALR parser decides
        pass
    from .parser import parse_lark
    return parse_lark(text, src)


def parse_expr(text: str, span: Span) -> object:
    """Parse one expression (used for `{...}` pieces of `as layer{s + 1}` names)."""
    try:
        return fastparse.parse_expr(text, span)
    except fastparse.Bail:
        pass
    from .parser import parse_expr_lark
    return parse_expr_lark(text, span)
