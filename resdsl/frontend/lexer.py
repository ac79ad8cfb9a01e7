"""The fast parser's lexer: one regular expression, Lark's post-lexer folded in.

It produces the token stream Lark's contextual lexer and `parser._PostLex` produce for a
well-formed program: newlines inside (...) / [...] and after `->`, `|`, `,`, `{`, `=` are
dropped and runs of newlines (and `;`) are one separator; after `as` the next token is
lexed as Lark's state after `as` lexes it (TEMPLATE_NAME first, then NAME, INT, STRING),
so `as layer{i}` is one token and `as in` is a name. Keywords come out as their own kind;
the parser decides where a keyword is read as a name (see fastexpr.py). A character no
terminal matches raises Bail: Lark reports it.
"""
from __future__ import annotations

import re


class Bail(Exception):
    """Not a clean parse by this parser's rules: let Lark decide."""


# words the grammar spells as literals (and the SHARED terminal): never a NAME here
KEYWORDS = frozenset("""import block network fn input output let as residual if shortcut parallel repeat
    loop for in else or and not true false none shared""".split())

# a comment runs to the end of its line: (?![^\n]) keeps the regex from backtracking into it
_SKIP = r"(?:[ \t\f]|\\[ \t\f]*\r?\n|#[^\n]*(?![^\n]))*+"  # possessive: what is skipped is never a token
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
    match = _TOKEN.match
    n_text = len(text)
    # `match` at the end of the last token, never `finditer`: a search would try again from
    # every position of a run of spaces before a bad character, each try reading the whole
    # rest of the run (quadratic: 10,000 spaces took 24 s); one failed match is linear
    while pos < n_text:
        m = match(text, pos)
        if m is None:
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
