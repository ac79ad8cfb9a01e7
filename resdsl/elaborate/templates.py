"""String templates: a `{...}` in any string literal is an expression whose value is
spliced in, as in an `as` name (`let p = "stage{s + 2}"`, `tie="h{i}.attn"`,
`conv(4, 1) as "{p}.conv"`). Braces in a string are always a template: a `{` that is never
closed, a `}` that was never opened, or an empty `{}` is an error, so no string keeps its
braces by accident; `{{` and `}}` write a literal brace.
"""
from __future__ import annotations

from ..diagnostics import ResdslError
from ..frontend.read import parse_expr
from .values import type_name

_CACHE: dict = {}  # id(node) -> (node, pieces): a node in a loop is parsed once


def pieces_of(e):
    """The pieces of the string constant `e`: str, or a parsed expression per `{...}`
    (`{{` and `}}` are a literal brace)."""
    hit = _CACHE.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    text = e.value
    out, buf, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "{" and text.startswith("{{", i) or c == "}" and text.startswith("}}", i):
            buf.append(c)
            i += 2
        elif c == "{":
            j = text.find("}", i)
            if j < 0 or "{" in text[i + 1:j]:
                raise ResdslError("syntax", f"unclosed `{{` in the string \"{text}\"", e.span,
                                  help="a `{...}` in a string is a template: `\"stage{s + 2}\"`; close it with `}`, "
                                       "or write `{{` for a literal brace")
            if not text[i + 1:j].strip():
                raise ResdslError("syntax", f"empty `{{}}` in the string \"{text}\"", e.span,
                                  help="write an expression inside the braces (`\"stage{s + 2}\"`), or `{{}}` for "
                                       "literal braces")
            if buf:
                out.append("".join(buf))
                buf = []
            out.append(parse_expr(text[i + 1:j], e.span))
            i = j + 1
        elif c == "}":
            raise ResdslError("syntax", f"`}}` without a `{{` in the string \"{text}\"", e.span,
                              help="a `{...}` in a string is a template: `\"stage{s + 2}\"`; write `}}` for a "
                                   "literal brace")
        else:
            buf.append(c)
            i += 1
    if buf:
        out.append("".join(buf))
    out = tuple(out)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[id(e)] = (e, out)
    return out


def fill(el, e, ctx) -> str:
    """The value of the template string `e` in `ctx`; each piece must be an int or a str."""
    out = []
    for p in pieces_of(e):
        if isinstance(p, str):
            out.append(p)
            continue
        v = el.evaluate(p, ctx)
        if not isinstance(v, (int, str)) or isinstance(v, bool):
            raise ResdslError("type", f"a `{{...}}` piece of a string must be an int or str, got {type_name(v)}",
                              e.span, help="convert it first: `{str(x)}`, `{int(x)}`")
        out.append(str(v))
    text = "".join(out)
    el.budget.step(e.span)
    return text
