"""`resdsl fmt`: one canonical layout for .res files.

The formatter works on tokens, not on the AST, so it keeps every comment and needs no
change when the grammar grows: layout is driven by brackets, braces, newlines, `->`,
`,` and `|` only. Steps:

1. `tokenize` splits the text into tokens (comments and newlines included).
2. `_Parser` groups them into a tree of blocks (`{ ... }` bodies and the file) holding
   statements, standalone comments and blank-line marks. Statement ends follow the
   parser's post-lexer: a newline at bracket depth 0 ends a statement unless it comes
   after `->`, `,`, `|` or `{`.
3. `_Printer` writes each statement on one line when it fits in WIDTH columns, else
   wraps greedily after `->` (continuation +4) and after `,` (aligned just inside the
   open bracket), breaking outer levels before inner ones. A statement with a comment
   inside it keeps its line breaks (only spacing and indentation change).

`format_source` refuses to return text whose syntax tree differs from the input's
(the check is two parses), so a formatter bug can never change a program's meaning.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .diagnostics import ResdslError, Span, SourceFile

WIDTH = 100
INDENT = 4

KEYWORDS = frozenset("""import block network fn let input output as residual shortcut if else parallel
    repeat loop shared for in and or not true false none return""".split())
# keywords after which `(` / `[` open an expression, not a call or an index (others, like `block`, may be names)
_SPACED_KEYWORDS = frozenset("if else and or not in for as return import let input output shortcut".split())

_TEMPLATE = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)?(\{[^{}\n]*\}[A-Za-z_0-9]*)+")
_TOKEN = re.compile(r"""
    (?P<nl>\r?\n)
  | (?P<ws>[ \t\f]+|\\[ \t\f]*\r?\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`\n]*`)
  | (?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>->|\*\*|//|==|!=|<=|>=|[^\sA-Za-z_0-9])
""", re.X)


_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_SEG = rf"(?:{_TEMPLATE.pattern}|{_NAME})"
# an annotation's target (`@features layer{s + 1}, features.1`): one token, spaces around `.` dropped
_TARGET = re.compile(rf"""{_SEG}(?:[ \t\f]*\.[ \t\f]*(?:{_SEG}|[0-9]+))*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""")
_TARGET_PART = re.compile(rf"[ \t\f]*\.?[ \t\f]*({_SEG}|[0-9]+)")


def _target_text(text: str) -> str:
    if text[0] in "\"'":
        return text
    return ".".join(m.group(1) for m in _TARGET_PART.finditer(text))
def _rstrip(text: str) -> str:
    """`text` without trailing spaces and tabs: the only bytes of a comment fmt changes (a no-break
    space or any other character is kept, also at the end of a comment)."""
    return text.rstrip(" \t\f")


class Tok:
    __slots__ = ("kind", "text", "key")

    def __init__(self, kind: str, text: str):
        self.kind = kind  # nl, comment, string, number, name, template, op (and "soft" inside statements)
        self.text = text
        self.key = text if kind in ("op", "name") else None  # what `is_` compares

    def is_(self, *texts) -> bool:
        return self.key in texts

    def __repr__(self):
        return f"Tok({self.kind}, {self.text!r})"


_AS_GAP = re.compile(r"[ \t\f]+|\\[ \t\f]*\r?\n")  # what Lark skips after `as` at any depth
_AS_GAP_NESTED = re.compile(r"\r?\n|\#[^\n]*")  # and inside (...) / [...], where newlines are dropped


def tokenize(text: str, path: str = "<string>") -> list[Tok]:
    """Tokens of `text`, whitespace dropped; `as` followed by `name{...}` gives one template token.

    Between `as` and its name the parser skips what it always skips (spaces, `\\` line
    continuations, comments) and, inside brackets, newlines (the post-lexer drops them), so
    `(conv(4, 1) as\n c{1})` names the conv `c1`: the template token must be found there too."""
    out: list[Tok] = []
    i, n = 0, len(text)
    depth = 0
    match = _TOKEN.match
    target = False  # after `@NAME` or an annotation's `,`: a target comes next
    while i < n:
        if target:  # spaces, newlines and comments may come first
            j = i
            while j < n and text[j] in " \t\f":
                j += 1
            if j < n and text[j] not in "\r\n#":
                t = _TARGET.match(text, j)
                target = False
                if t:
                    out.append(Tok("template", _target_text(t.group())))
                    i = t.end()
                    continue
        m = match(text, i)
        if m is None:  # only an unterminated string gets here
            line = text.count("\n", 0, i) + 1
            col = i - (text.rfind("\n", 0, i) + 1) + 1
            raise ResdslError("syntax", "unterminated string", Span(SourceFile(path, text), line, col, line, col + 1))
        kind = m.lastgroup
        if kind == "op" and m.group() == "," and out and out[-1].kind == "template" and _in_annotation(out):
            target = True
        if kind != "ws":
            out.append(Tok(kind, "\n" if kind == "nl" else m.group()))
            if kind == "name" and len(out) > 1 and out[-2].is_("@"):
                target = True
            if kind == "op":
                if m.group() in ("(", "["):
                    depth += 1
                elif m.group() in (")", "]"):
                    depth = max(0, depth - 1)
            if kind == "name" and m.group() == "as":  # `as layer{s + 1}`: one name token, as the parser reads it
                j, between = _after_as(text, m.end(), depth > 0)
                t = _TEMPLATE.match(text, j)
                if t:
                    out += between
                    out.append(Tok("template", t.group()))
                    i = t.end()
                    continue
                if j < n and text[j] in ".+" and not text[j + 1:j + 2].isdigit():  # `as .` / `as +`: a name
                    out += between
                    out.append(Tok("template", text[j]))
                    i = j + 1
                    continue
        i = m.end()
    return out


def _in_annotation(out: list) -> bool:
    """Do the tokens end in an annotation's targets (`@NAME target, ... target`)? Newlines and
    comments may follow each `,`."""
    i = len(out) - 1
    while i >= 0 and out[i].kind == "template":
        i -= 1
        if i >= 1 and out[i].kind == "name" and out[i - 1].is_("@"):
            return True
        while i >= 0 and out[i].kind in ("nl", "comment"):
            i -= 1
        if i < 0 or not out[i].is_(","):
            return False
        i -= 1
    return False
def _after_as(text: str, j: int, nested: bool):
    """Where the parser lexes the name after an `as` ending at `j`, and the comment and
    newline tokens passed on the way."""
    between: list[Tok] = []
    while True:
        g = _AS_GAP.match(text, j)
        if g is None and nested:
            g = _AS_GAP_NESTED.match(text, j)
            if g is not None:
                between.append(Tok("comment", g.group()) if g.group().startswith("#") else Tok("nl", "\n"))
        if g is None:
            return j, between
        j = g.end()


# ---------------------------------------------------------------- structure
@dataclass
class Group:
    """A `{ ... }` body inside a statement."""
    body: "Block"
    open_comment: str | None = None
    one_line: bool = False  # written on one line in the source, with no comment


@dataclass
class Stmt:
    elems: list  # Tok (kind "soft" = a newline inside the statement) or Group
    comment: str | None = None  # trailing comment
    blank_before: bool = False

    @property
    def has_inner_comment(self) -> bool:
        return any(isinstance(e, Tok) and e.kind == "comment" for e in self.elems)


@dataclass
class Comment:
    text: str
    blank_before: bool = False


@dataclass
class Block:
    items: list = field(default_factory=list)


_JOINERS = ("->", ",", "|", "=")  # a newline after these does not end a statement


class _Parser:
    def __init__(self, toks: list[Tok]):
        self.toks = toks
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def block(self, top: bool) -> Block:
        b = Block()
        blank = False
        while (t := self.peek()) is not None:
            if t.kind == "nl":
                n = 0
                while (t := self.peek()) is not None and t.kind == "nl":
                    n += 1
                    self.i += 1
                blank = blank or (n > 1 and bool(b.items))
                continue
            if t.is_(";"):
                self.i += 1
                continue
            if t.is_("}") and not top:
                return b
            if t.is_("}"):  # a stray `}` at top level: the parser reports it first, keep going
                self.i += 1
                continue
            if t.kind == "comment":
                b.items.append(Comment(_rstrip(t.text), blank))
                self.i += 1
            else:
                s = self.stmt()
                s.blank_before = blank
                b.items.append(s)
            blank = False
        return b

    def stmt(self) -> Stmt:
        elems: list = []
        depth = 0

        def last_sig():
            for e in reversed(elems):
                if isinstance(e, Group):
                    return e
                if e.kind not in ("comment", "soft"):
                    return e
            return None

        while (t := self.peek()) is not None:
            if t.kind == "nl" or t.is_(";"):
                prev = last_sig()
                if depth > 0 or (isinstance(prev, Tok) and prev.is_(*_JOINERS)):
                    elems.append(Tok("soft", ""))
                    self.i += 1
                    continue
                break
            if depth == 0 and (t.is_("}") or (t.is_("|") and elems)):
                break
            if t.is_("{"):
                elems.append(self.group())
                continue
            if t.is_("(", "["):
                depth += 1
            elif t.is_(")", "]"):
                depth = max(0, depth - 1)
            elems.append(t)
            self.i += 1
        # a comment last on the statement's line is its trailing comment
        comment = None
        while elems and isinstance(elems[-1], Tok) and elems[-1].kind == "soft":
            elems.pop()
        if elems and isinstance(elems[-1], Tok) and elems[-1].kind == "comment":
            comment = _rstrip(elems.pop().text)
        return Stmt(elems, comment)

    def group(self) -> Group:
        start = self.i
        self.i += 1  # `{`
        open_comment = None
        t = self.peek()
        if t is not None and t.kind == "comment":
            open_comment = _rstrip(t.text)
            self.i += 1
        body = self.block(top=False)
        if self.peek() is not None:
            self.i += 1  # `}`
        inner = self.toks[start:self.i]
        one_line = not any(x.kind in ("nl", "comment") for x in inner)
        return Group(body, open_comment, one_line)


# ---------------------------------------------------------------- spacing
_OPENERS = ("(", "[")
_CLOSERS = (")", "]")


def _operand_end(t) -> bool:
    """Does `t` end an operand (so a following `-` is binary)?"""
    if isinstance(t, Group):
        return True
    if t.kind in ("number", "string", "template"):
        return True
    if t.kind == "name":
        return t.text not in KEYWORDS or t.text in ("true", "false", "none", "in")
    return t.text in _CLOSERS or t.text in ("}", "?")


def _spaces(elems: list) -> list:
    """(elem, space_before) for the statement's elements (soft newlines and comments kept)."""
    out = []
    stack: list[list] = []  # per open bracket: [char, saw_colon]
    prev = prev2 = None
    header = None  # last of repeat/loop/-> seen: `(i)` after a repeat count is an index, not a call
    unary = False
    for k, e in enumerate(elems):
        if isinstance(e, Tok) and e.kind in ("soft", "comment"):
            out.append((e, True))
            continue
        sp = True
        if prev is None:
            sp = False
        elif isinstance(e, Group):
            sp = not (isinstance(prev, Tok) and prev.is_(*_OPENERS))
        else:
            t = e.text if e.kind in ("op",) else None
            p = prev.text if isinstance(prev, Tok) and prev.kind == "op" else None
            if p in _OPENERS or p in (".", "@") or unary:
                sp = False
            elif t in _CLOSERS or t in (",", ".", "?"):
                sp = False
            elif t == ":":
                sp = False
            elif p == "=" or t == "=":
                sp = not stack or (stack[-1][0] == "(" and stack[-1][1])
            elif t in _OPENERS:
                if t == "(" and header in ("repeat", "loop") and _index_paren(elems, k):
                    sp = True
                elif t == "(" and isinstance(prev, Tok) and prev.kind == "name" and prev2 is not None \
                        and isinstance(prev2, Tok) and prev2.is_("as") and prev2.kind == "name":
                    sp = True  # `as blocks (i)`: the repeat index
                elif isinstance(prev, Tok) and (prev.kind in ("name", "template", "string") and
                                                prev.text not in _SPACED_KEYWORDS or prev.text in _CLOSERS):
                    sp = False
            elif p == ":":
                sp = not (stack and stack[-1][0] == "[")
            if t == ":" and stack and stack[-1][0] == "[":
                sp = False
        out.append((e, sp))
        # state after e
        unary = False
        if isinstance(e, Tok):
            if e.kind == "op" and e.text in ("-", "+", "*", "**") and (prev is None or not _operand_end(prev)):
                unary = True
            if e.is_(*_OPENERS):
                stack.append([e.text, False])
            elif e.is_(*_CLOSERS) and stack:
                stack.pop()
            elif e.is_(",") and stack:
                stack[-1][1] = False
            elif e.is_(":") and stack:
                stack[-1][1] = True
            if e.kind == "name" and e.text in ("repeat", "loop") or e.is_("->"):
                header = e.text
        elif isinstance(e, Group):
            header = None
        prev2, prev = prev, e
    return out


def _index_paren(elems, k) -> bool:
    """elems[k] is `(` of `( NAME ) {`."""
    try:
        a, b, c = elems[k + 1], elems[k + 2], elems[k + 3]
    except IndexError:
        return False
    return isinstance(a, Tok) and a.kind == "name" and isinstance(b, Tok) and b.is_(")") and isinstance(c, Group)


# ---------------------------------------------------------------- printing
class _Out:
    """Lines under construction: (code, trailing comment) pairs."""

    def __init__(self):
        self.lines: list[list] = []
        self.cur = ""

    @property
    def col(self) -> int:
        return len(self.cur)

    def newline(self, col: int):
        self.lines.append([_rstrip(self.cur), None])
        self.cur = " " * col


class _Printer:
    def __init__(self, width: int = WIDTH):
        self.width = width

    # -- flat rendering (None: cannot be one line)
    def flat_group(self, g: Group) -> str | None:
        if not g.one_line:
            return None
        stmts = g.body.items
        if not stmts:
            return "{}"
        if any(not isinstance(s, Stmt) for s in stmts):
            return None
        if len(stmts) > 1 and not all(s.elems and isinstance(s.elems[0], Tok) and s.elems[0].is_("|")
                                      for s in stmts[1:]):
            return None  # `{ a; b }`: one statement a line
        parts = []
        for s in stmts:
            f = self.flat(_spaces(s.elems))
            if f is None:
                return None
            parts.append(f)
        return "{ " + " ".join(parts) + " }"

    def flat(self, spaced) -> str | None:
        out = []
        for e, sp in spaced:
            if isinstance(e, Group):
                f = self.flat_group(e)
                if f is None:
                    return None
                out.append((" " if sp and out else "") + f)
            elif e.kind in ("soft",):
                continue
            elif e.kind == "comment":
                return None
            else:
                out.append((" " if sp and out else "") + e.text)
        return "".join(out)

    # -- blocks
    def block(self, b: Block, indent: int, out: _Out, top: bool = False):
        items = b.items
        # comments directly above a definition (no blank line between) belong to it
        attached = set()
        if top:
            for k, item in enumerate(items):
                if isinstance(item, Stmt) and _is_def(item) and not item.blank_before:
                    j = k - 1
                    while j >= 0 and isinstance(items[j], Comment):
                        attached.add(j)
                        if items[j].blank_before:
                            break
                        j -= 1
        prev = None
        for k, item in enumerate(items):
            blank = item.blank_before
            if top and prev is not None:
                starts_def = (isinstance(item, Stmt) and _is_def(item)) or (k in attached and k - 1 not in attached)
                if starts_def or (isinstance(prev, Stmt) and _is_def(prev)):
                    blank = True
                if k in attached and k - 1 in attached or (k - 1 in attached and isinstance(item, Stmt)):
                    blank = False
            if blank and prev is not None:
                out.lines.append(["", None])
            out.cur = " " * indent
            if isinstance(item, Comment):
                out.cur += item.text
                out.newline(0)
            else:
                self.stmt(item, indent, out)
            prev = item

    def stmt(self, s: Stmt, indent: int, out: _Out):
        elems = s.elems
        if elems and isinstance(elems[0], Tok) and elems[0].is_("|"):  # a parallel branch: `| ` left of the body
            out.cur = " " * max(0, indent - 2) + "| "
            elems = elems[1:]
        spaced = _spaces(elems)
        if spaced:
            spaced[0] = (spaced[0][0], False)
        cont = indent + INDENT
        if s.has_inner_comment:
            self.keep_breaks(spaced, out, indent, cont)
        else:
            flat = self.flat(spaced)
            if flat is not None and out.col + len(flat) <= self.width:
                out.cur += flat
            else:
                self.fill(_tree(spaced), out, indent, cont)
        code = _rstrip(out.cur)
        out.lines.append([code, s.comment])
        out.cur = ""

    # -- greedy fill, outer levels first
    def fill(self, items, out: _Out, indent: int, cont: int):
        for chunk in _chunks(items):
            text = self.flat(_flatten(chunk))
            lead = chunk[0][1]
            at_start = not out.cur.strip() or out.cur.endswith(("(", "[", "| "))
            piece = (" " if lead and not at_start else "") + (text or "")
            if text is not None and out.col + len(piece) <= self.width:
                out.cur += piece
                continue
            if not at_start:
                if text is not None and cont + len(text) <= self.width:
                    out.newline(cont)
                    out.cur += text
                    continue
                # it will not be one line anyway: stay if the text up to its first `{` fits here. (Whether a
                # `{ ... }` could be flat must not matter: after this run it is not, and the next run must agree.)
                head = self.flat(_head(chunk))
                if head is None or out.col + (1 if lead else 0) + len(head) + 2 > self.width:
                    out.newline(cont)
            self.broken(chunk, out, indent, cont)

    def broken(self, chunk, out: _Out, indent: int, cont: int):
        for e, sp in chunk:
            at_start = not out.cur.strip() or out.cur.endswith(("(", "["))
            pre = " " if sp and not at_start else ""
            if isinstance(e, list):  # a bracket group: [(open, sp), inner items..., (close, sp)]
                text = self.flat(_flatten([(e, sp)]))
                if text is not None and out.col + len(pre) + len(text) <= self.width:
                    out.cur += pre + text
                    continue
                out.cur += pre + e[0][0].text
                inner = e[1:-1]
                if inner:
                    self.fill(inner, out, indent, out.col)
                out.cur += e[-1][0].text
            elif isinstance(e, Group):
                text = self.flat_group(e)
                if text is not None and out.col + len(pre) + len(text) <= self.width:
                    out.cur += pre + text
                    continue
                self.expand(e, out, indent, pre)
            else:
                out.cur += pre + e.text

    def expand(self, g: Group, out: _Out, indent: int, pre: str = " "):
        out.cur += pre + "{"
        out.lines.append([_rstrip(out.cur), g.open_comment])
        out.cur = ""
        self.block(g.body, indent + INDENT, out)
        out.cur = " " * indent + "}"

    # -- statements with comments inside: keep the author's line breaks
    def keep_breaks(self, spaced, out: _Out, indent: int, cont: int):
        stack: list[int] = []
        comment = None
        fresh = True
        for e, sp in spaced:
            if isinstance(e, Tok) and e.kind == "soft":
                if fresh and comment is None:
                    continue
                out.lines.append([out.cur if not out.cur.strip() else _rstrip(out.cur), comment])
                comment = None
                out.cur = " " * (stack[-1] if stack else cont)
                fresh = True
                continue
            if isinstance(e, Tok) and e.kind == "comment":
                comment = _rstrip(e.text)
                continue
            pre = " " if sp and not fresh and not out.cur.endswith(("(", "[")) else ""
            if isinstance(e, Group):
                text = self.flat_group(e)
                if text is not None:
                    out.cur += pre + text
                else:
                    self.expand(e, out, indent, pre)
            else:
                out.cur += pre + e.text
                if e.is_(*_OPENERS):
                    stack.append(out.col)
                elif e.is_(*_CLOSERS) and stack:
                    stack.pop()
            fresh = False
        if comment is not None:
            out.lines.append([_rstrip(out.cur), comment])
            out.cur = " " * cont


def _is_def(s: Stmt) -> bool:
    e = s.elems
    return bool(e) and isinstance(e[0], Tok) and e[0].kind == "name" and e[0].text in ("block", "network", "fn") \
        and any(isinstance(x, Group) and not x.one_line for x in e)


def _tree(spaced):
    """Nest bracket groups: a group is a list [(open, sp), items..., (close, sp)] standing in as one item."""
    root: list = []
    stack = [root]
    for e, sp in spaced:
        if isinstance(e, Tok) and e.kind == "soft":
            continue
        if isinstance(e, Tok) and e.is_(*_OPENERS):
            g = [(e, sp)]
            stack[-1].append((g, sp))
            stack.append(g)
        elif isinstance(e, Tok) and e.is_(*_CLOSERS) and len(stack) > 1:
            stack[-1].append((e, sp))
            stack.pop()
        else:
            stack[-1].append((e, sp))
    return root


def _flatten(items):
    out = []
    for e, sp in items:
        if isinstance(e, list):
            sub = _flatten(e)
            out.append((sub[0][0], sp))
            out.extend(sub[1:])
        else:
            out.append((e, sp))
    return out


def _chunks(items):
    """Split a level's items after `->` and `,`: the places a line may break."""
    out, cur = [], []
    for e, sp in items:
        cur.append((e, sp))
        if isinstance(e, Tok) and e.is_("->", ","):
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def _head(chunk):
    """The chunk's elements (flattened) before its first `{`, at any bracket depth."""
    out = []
    for e, sp in _flatten(chunk):
        if isinstance(e, Group):
            break
        out.append((e, sp))
    return out


def _drop_trailing_commas(toks: list[Tok]) -> list[Tok]:
    out = []
    for k, t in enumerate(toks):
        if t.is_(","):
            j = k + 1
            while j < len(toks) and toks[j].kind == "nl":
                j += 1
            if j < len(toks) and toks[j].is_(")", "]"):
                continue
        out.append(t)
    return out


def _align_comments(lines) -> list[str]:
    """Trailing comments of consecutive lines at one indentation start in one column."""
    out = []
    k = 0
    while k < len(lines):
        code, com = lines[k]
        if com is None:
            out.append(code)
            k += 1
            continue
        if not code.strip():  # a comment alone on a line inside a statement
            out.append(code + com)
            k += 1
            continue
        ind = len(code) - len(code.lstrip())
        j = k
        while j < len(lines) and lines[j][1] is not None and lines[j][0].strip() \
                and len(lines[j][0]) - len(lines[j][0].lstrip()) == ind:
            j += 1
        col = max(len(c) for c, _ in lines[k:j]) + 2
        for c, m in lines[k:j]:
            out.append(c.ljust(col) + m)
        k = j
    return out


def format_text(text: str, path: str = "<string>", width: int = WIDTH) -> str:
    """The canonical layout of `text` (no syntax check; see `format_source`)."""
    return format_tokens(tokenize(text, path), width)


def format_tokens(toks: list[Tok], width: int = WIDTH) -> str:
    tree = _Parser(_drop_trailing_commas(toks)).block(top=True)
    out = _Out()
    _Printer(width).block(tree, 0, out, top=True)
    lines = _align_comments(out.lines)
    body = "\n".join(_rstrip(line) for line in lines).strip("\n")
    return body + "\n" if body else ""


def significant(text_or_tokens, path: str = "<string>") -> list[str]:
    """What the parser sees: the tokens, with newlines only where they separate statements
    (the post-lexer's rule) and trailing commas dropped (the grammar allows them)."""
    toks = tokenize(text_or_tokens, path) if isinstance(text_or_tokens, str) else text_or_tokens
    out: list[str] = []
    depth = 0
    for t in _drop_trailing_commas(toks):
        if t.kind == "comment":
            continue
        if t.kind == "nl" or t.is_(";"):
            if depth > 0 or not out or out[-1] in ("\n", "->", "|", ",", "{", "="):
                continue
            out.append("\n")
            continue
        if t.is_("(", "["):
            depth += 1
        elif t.is_(")", "]"):
            depth = max(0, depth - 1)
        elif t.is_("}", "|") and out and out[-1] == "\n":
            out.pop()  # `_NL? "}"` and `_NL? "|"`: optional before these
        out.append(t.text)
    while out and out[-1] == "\n":
        out.pop()
    return out


def skeleton(node):
    """The AST without positions, for comparing two parses."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(skeleton(getattr(node, f.name)) for f in dataclasses.fields(node)
                                              if not isinstance(getattr(node, f.name), Span))
    if isinstance(node, (list, tuple)):
        return tuple(skeleton(x) for x in node)
    return node


BOM = "\ufeff"


def line_ending(text: str) -> str:
    """The file's line ending: that of its first line (as black decides), "\\n" without one."""
    k = text.find("\n")
    return "\r\n" if k > 0 and text[k - 1] == "\r" else "\n"


def format_source(text: str, path: str = "<string>", strict: bool = True) -> str:
    """Format `text`; a syntax error in it is raised as ResdslError.

    A byte-order mark is kept, and the file's line ending (that of its first line) is used
    for every line. Before anything is returned, fmt proves it kept the meaning: the result
    must give the parser the same tokens and statement breaks, and its syntax tree must be the
    input's, positions aside (as black's `assert_equivalent`). Otherwise error[internal] says
    this is a bug in fmt; the caller writes nothing. (`strict` is accepted for compatibility:
    the check always runs.)"""
    from .frontend.read import parse
    before = parse(text, path)  # a syntax error is reported as usual; `check` accepts the same files
    bom = BOM if text.startswith(BOM) else ""
    body = text[len(bom):]
    eol = line_ending(body)
    toks = tokenize(body.replace("\r\n", "\n"), path)
    new = format_tokens(toks)
    if eol != "\n":
        new = new.replace("\n", eol)
    new = bom + new
    if new == text:
        return new
    where = Span(SourceFile(path, text), 1, 1, 1, 2)

    def bug(what: str) -> ResdslError:
        return ResdslError("internal", f"this is a bug in resdsl fmt: {what}; the file is left untouched", where,
                           help="please report it with this file; `resdsl fmt --diff` shows what fmt would do")

    if significant(new[len(bom):].replace("\r\n", "\n"), path) != significant(toks, path):
        raise bug("its output would give the parser other tokens")
    try:
        after = parse(new, path)
    except ResdslError as e:
        raise bug(f"its output does not parse ({e.message} at line {e.span.line if e.span else '?'})") from None
    if skeleton(after) != skeleton(before):
        raise bug("its output would change the meaning of the program (another syntax tree)")
    return new


# ---------------------------------------------------------------- command line
def _expand(paths) -> list[str]:
    from pathlib import Path
    out = []
    for p in paths:
        if p != "-" and Path(p).is_dir():
            out += sorted(str(f) for f in Path(p).rglob("*.res"))
        else:
            out.append(p)
    return out


def _write(path: str, text: str) -> None:
    """In place, by the CLI's output rules: atomic, the file keeps its mode, a symlink is
    written through."""
    from .outputs import write_output
    write_output(path, text)


def cmd_fmt(args) -> int:
    import difflib
    import sys
    changed = failed = 0
    files = _expand(args.files)
    for path in files:
        try:
            if path == "-":  # bytes: text mode would turn CRLF into LF
                data = sys.stdin.buffer.read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ResdslError("io", f"standard input is not UTF-8 text (byte {e.start})") from None
            else:
                try:
                    with open(path, encoding="utf-8", newline="") as f:
                        text = f.read()
                except (OSError, UnicodeDecodeError) as e:
                    raise ResdslError("io", f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
            new = format_source(text, "<stdin>" if path == "-" else path)
        except ResdslError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
            continue
        if path == "-" and not (args.check or args.diff):
            sys.stdout.write(new)
            continue
        if new == text:
            continue
        changed += 1
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       f"{path} (original)", f"{path} (formatted)"))
        if args.check:
            print(f"would reformat {path}", file=sys.stderr)
        elif not args.diff:
            _write(path, new)
            print(f"reformatted {path}", file=sys.stderr)
    if path_count := sum(1 for p in files if p != "-"):
        verb = "would be reformatted" if (args.check or args.diff) else "reformatted"
        print(f"{changed} of {path_count} file{'s' if path_count != 1 else ''} {verb}"
              + (f", {failed} with errors" if failed else ""), file=sys.stderr)
    return 1 if failed or (args.check and changed) else 0
