"""Symbolic sizes and shapes on named axes.

A :class:`Size` is a polynomial with rational coefficients over axis symbols (``N``,
``H``...): ``H/4``, ``64*H*W/16`` (printed ``4*H*W``), ``L + 1``. Integer sizes are plain
``int``. Division and strided windows assume that a symbolic axis is divisible by the
strides applied to it (``H`` an even number when a stride 2 conv halves it); the
documented rule is ``floor((a*H + c) / s) = a*H/s + floor(c / s)``.

An :class:`Axis` is a size with an optional name; a shape is a tuple of axes.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

Dim = "int | Size"


class Size:
    """Polynomial over symbols: {(sym, ...) sorted: Fraction coefficient}."""

    __slots__ = ("_hash", "_key", "terms")  # a Size is never changed once made: its hash and key are kept

    def __init__(self, terms: dict):
        self.terms = {k: Fraction(v) for k, v in terms.items() if v != 0}
        self._hash = self._key = None

    def key(self) -> tuple:
        """A tuple of plain ints and strings equal for equal Sizes (compared without Fraction's
        Python-level equality: what a memo keyed by shapes compares)."""
        k = self._key
        if k is None:
            k = self._key = tuple(sorted((m, c.numerator, c.denominator) for m, c in self.terms.items()))
        return k

    @staticmethod
    def sym(name: str) -> "Size":
        return Size({(name,): 1})

    @staticmethod
    def lift(v) -> "Size":
        if isinstance(v, Size):
            return v
        return Size({(): Fraction(v)})

    @staticmethod
    def norm(v):
        """Return an int when the polynomial is an integer constant."""
        if isinstance(v, Size):
            if not v.terms:
                return 0
            if list(v.terms) == [()] and v.terms[()].denominator == 1:
                return int(v.terms[()])
        return v

    @property
    def constant(self) -> Fraction:
        return self.terms.get((), Fraction(0))

    @property
    def symbols(self) -> set:
        return {s for k in self.terms for s in k}

    def __add__(self, o):
        t = dict(self.terms)
        for k, v in Size.lift(o).terms.items():
            t[k] = t.get(k, 0) + v
        return Size.norm(Size(t))

    __radd__ = __add__

    def __neg__(self):
        return Size({k: -v for k, v in self.terms.items()})

    def __sub__(self, o):
        return self + (-Size.lift(o))

    def __rsub__(self, o):
        return Size.lift(o) - self

    def __mul__(self, o):
        o = Size.lift(o)
        t = {}
        for k1, v1 in self.terms.items():
            for k2, v2 in o.terms.items():
                k = tuple(sorted(k1 + k2))
                t[k] = t.get(k, 0) + v1 * v2
        return Size.norm(Size(t))

    __rmul__ = __mul__

    def truediv(self, d: int):
        return Size.norm(Size({k: v / d for k, v in self.terms.items()}))

    def floordiv(self, d: int):
        """floor(self / d) under the divisibility assumption on symbolic terms."""
        var = Size({k: v / d for k, v in self.terms.items() if k != ()})
        return Size.norm(var + (self.constant // d))

    def __eq__(self, o):
        if isinstance(o, (int, Fraction)):
            return Size.norm(self) == o if not isinstance(Size.norm(self), Size) else False
        return isinstance(o, Size) and self.terms == o.terms

    def __hash__(self):
        h = self._hash
        if h is None:
            h = self._hash = hash(tuple(sorted(self.terms.items())))
        return h

    def __repr__(self):
        return str(self)

    def __str__(self):
        if not self.terms:
            return "0"
        keys = sorted(self.terms, key=lambda k: (-len(k), k))
        out = []
        for k in keys:
            c = self.terms[k]
            if k == ():
                piece, sign = str(abs(c)) if c.denominator == 1 else f"{abs(c.numerator)}/{c.denominator}", c < 0
            else:
                mono = "*".join(k)
                a = abs(c)
                num = "" if a.numerator == 1 else f"{a.numerator}*"
                den = "" if a.denominator == 1 else f"/{a.denominator}"
                piece, sign = f"{num}{mono}{den}", c < 0
            if not out:
                out.append(("-" if sign else "") + piece)
            else:
                out.append((" - " if sign else " + ") + piece)
        return "".join(out)


def is_static(d) -> bool:
    return isinstance(d, int)


def dim_str(d) -> str:
    return str(d)


def add(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return Size.lift(a) + b


def mul(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return Size.lift(a) * b


def floordiv(a, d: int):
    if isinstance(a, int):
        return a // d
    return a.floordiv(d)


def truediv(a, d: int):
    if isinstance(a, int):
        if a % d:
            return Size.lift(a).truediv(d)
        return a // d
    return a.truediv(d)


def window_out(size, kernel: int, stride: int, pad_total: int, dilation: int = 1, ceil: bool = False):
    """Output length of a conv/pool window: floor((size + pad - d*(k-1) - 1) / s) + 1."""
    if stride == 1 and pad_total == dilation * (kernel - 1):
        return size  # size-keeping window (3x3 pad 1, 1x1): skip the symbolic arithmetic (hot path)
    c = pad_total - dilation * (kernel - 1) - 1
    if ceil:
        c += stride - 1
    if isinstance(size, int):
        return (size + c) // stride + 1
    return add(floordiv(add(size, c), stride), 1)


@dataclass(frozen=True)
class Axis:
    size: object  # int | Size
    name: str | None = None

    def __str__(self):
        return str(self.size)


def shape_str(shape) -> str:
    return "[" + ", ".join(str(a.size) for a in shape) + "]"


def sizes(shape) -> tuple:
    return tuple(a.size for a in shape)


def same_sizes(a, b) -> bool:
    return len(a) == len(b) and all(x.size == y.size for x, y in zip(a, b))


def numel(shape):
    n = 1
    for a in shape:
        n = mul(n, a.size)
    return n
