"""A Pygments lexer for .res files (names `res`, `resdsl`; files `*.res`).

Registered through the `pygments.lexers` entry point in pyproject.toml, so once resdsl
is installed `pygmentize -l res file.res` and LaTeX's `\\begin{minted}{res}` work.

Every character a .res file may hold has a rule, and there is deliberately no catch-all:
anything else comes out as an Error token, which the tests look for in every repository
file and docs sample (so a grammar addition the lexer misses shows up as a failure).
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, default, words
from pygments.token import (Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Text,  # noqa: F401
                            Whitespace)

__all__ = ["ResLexer"]


def _builtin_names() -> tuple:
    """The primitive ops and compile-time functions, highlighted as builtins."""
    try:
        from .elaborate.values import BUILTINS
        from .ir.ops import OPS
    except Exception:  # the lexer must work even if the compiler cannot be imported
        return ()
    return tuple(sorted(set(OPS) | set(BUILTINS)))


_IDENT = r"[A-Za-z_][A-Za-z_0-9]*"
_TEMPLATE = r"(?:[A-Za-z_][A-Za-z_0-9]*)?(?:\{[^{}\n]*\}[A-Za-z_0-9]*)+"


class ResLexer(RegexLexer):
    name = "Res"
    aliases = ["res", "resdsl"]
    filenames = ["*.res"]
    mimetypes = ["text/x-resdsl"]
    url = "https://github.com/resdsl/resdsl"

    tokens = {
        "root": [
            (r"\n", Whitespace),
            (r"[ \t\f]+", Whitespace),
            (r"\\[ \t\f]*\r?\n", Whitespace),  # line continuation
            (r"\r", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"'(?:[^'\\\n]|\\.)*'", String.Single),
            (r"`[^`\n]*`", String.Backtick),  # a quoted name
            # definitions: the defined name is a class (block, network) or a function (fn)
            (r"\b(block|network)(\s+)(" + _IDENT + ")", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"\b(fn)(\s+)(" + _IDENT + ")", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            # `@classifier fc`, `@features layer1, layer{s + 1}`: an annotation and the paths it names
            (r"(@)([ \t\f]*)(" + _IDENT + ")", bygroups(Name.Decorator, Whitespace, Name.Decorator), "annotation"),
            # `as layer{s + 1}` / `as conv1` / `as 0` / `as "a.b"`: the name a module gets
            (r"\b(as)(\s+)(" + _TEMPLATE + ")", bygroups(Keyword, Whitespace, Name.Label)),
            (r"\b(as)(\s+)(" + _IDENT + "|[0-9]+)", bygroups(Keyword, Whitespace, Name.Label)),
            # `as .` (an inline block call, no name level) and `as +` (the next index): name forms too
            (r"\b(as)([ \t\f]+)([.+])(?![\w.+])", bygroups(Keyword, Whitespace, Name.Label)),
            # `output logits = y, training aux = a`: `training` before an output item's name is a keyword
            (r"\b(training)(\s+)(?=" + _IDENT + r"\s*=(?!=))", bygroups(Keyword, Whitespace)),
            (words(("import", "let", "input", "output", "residual", "shortcut", "parallel", "repeat", "loop",
                    "shared", "if", "else", "for", "in", "as", "return"), suffix=r"\b"),
             Keyword),
            (words(("and", "or", "not"), suffix=r"\b"), Operator.Word),
            (words(("true", "false", "none"), suffix=r"\b"), Keyword.Constant),
            (r"[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+",
             Number.Float),
            (r"[0-9]+", Number.Integer),
            (words(_builtin_names(), prefix=r"\b", suffix=r"\b"), Name.Builtin),
            (_IDENT + r"(?=\s*\()", Name.Function),
            (_IDENT, Name),
            (r"->", Operator),
            (r"\*\*|//|==|!=|<=|>=|[-+*/%<>=|?@]", Operator),
            (r"[()\[\]{},:;.]", Punctuation),
        ],
        "annotation": [  # the targets: dotted names (templates, numbered segments) or strings, split by `,`
            (r"[ \t\f]+", Whitespace),
            (r"(,)([ \t\f]*)(#[^\n]*)?(\r?\n)", bygroups(Punctuation, Whitespace, Comment.Single, Whitespace),
             "annotation_next"),  # a list goes on after `,` on the next line
            (_TEMPLATE + "|" + _IDENT + r"|[0-9]+", Name.Label),
            (r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', String),
            (r"[.,]", Punctuation),
            default("#pop"),
        ],
        "annotation_next": [  # newlines and comments before the next target
            (r"[ \t\f]+|\r?\n", Whitespace),
            (r"#.*?$", Comment.Single),
            default("#pop"),
        ],
    }
