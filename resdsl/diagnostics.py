"""Source positions and the one exception family of resdsl.

Every error a user can cause is a :class:`ResdslError` carrying a kind (``syntax``,
``name``, ``type``, ``shape``, ``import``, ``limit``, ...), a short message, an optional
:class:`Span` and an optional ``help`` line. :meth:`ResdslError.render` prints it the
way the CLI shows it::

    error[shape]: residual add needs matching shapes
      --> examples/bad.res:7:5
       |
     7 |     residual {
       |     ^^^^^^^^ body gives [N, 256, H/4, W/4], skip gives [N, 64, H/4, W/4]
       = help: add `shortcut { conv(256, 1, bias=false) -> bn }`, or use merge=concat
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    path: str
    text: str

    def line(self, n: int) -> str:
        lines = self.text.splitlines()
        return lines[n - 1] if 0 < n <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    source: SourceFile
    line: int
    column: int
    end_line: int
    end_column: int

    def __repr__(self) -> str:  # keep reprs of AST nodes short
        return f"{self.source.path}:{self.line}:{self.column}"

    @property
    def where(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"


class ResdslError(Exception):
    """Base of every error caused by user input (bad `.res` text, bad options)."""

    def __init__(self, kind: str, message: str, span: Span | None = None,
                 help: str | None = None, label: str | None = None,
                 notes: list[tuple[str, Span | None]] | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.span = span
        self.help = help
        self.label = label
        self.notes = notes or []

    def __str__(self) -> str:
        where = f" at {self.span.where}" if self.span else ""
        return f"error[{self.kind}]: {self.message}{where}"

    def render(self) -> str:
        out = [f"error[{self.kind}]: {self.message}"]
        out += _snippet(self.span, self.label)
        for text, span in self.notes:
            out.append(f"   = note: {text}")
            out += _snippet(span, None)
        if self.help:
            out.append(f"   = help: {self.help}")
        return "\n".join(out)


def _snippet(span: Span | None, label: str | None) -> list[str]:
    if span is None:
        return []
    num = str(span.line)
    pad = " " * len(num)
    src = span.source.line(span.line)
    width = (span.end_column - span.column) if span.end_line == span.line else len(src) - span.column + 1
    width = max(1, min(width, max(1, len(src) - span.column + 1)))
    caret = " " * (span.column - 1) + "^" * width
    return [
        f"{pad}--> {span.where}",
        f"{pad} |",
        f"{num} | {src}",
        f"{pad} | {caret}" + (f" {label}" if label else ""),
    ]


def did_you_mean(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
