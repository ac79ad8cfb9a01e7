"""A buffer's value in the torch file as the `fn` call that computed it (``rel_index(7)``), with
those compile-time functions translated to Python: the file reads like hand-written code, not
like a list of 2,401 numbers.

Only top-level `fn`s whose bodies use their parameters, comprehension variables, other such
`fn`s, numbers, strings and the builtins translate; names are checked to be plain lowercase
identifiers the file does not use, and every constant goes through :func:`pyfmt.lit`. Anything
else (a closure, a name the file uses, a line over 100 columns) gives None, and the caller writes
the values as a literal instead. No user text reaches the file unchecked.
"""
from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import fields, is_dataclass

from ...frontend import ast
from .pyfmt import INDENT, WIDTH, lit

# .res builtin -> Python spelling (the same semantics on the values a fn computes)
_BUILTINS = {"range": "range", "len": "len", "sum": "sum", "min": "min", "max": "max", "abs": "abs",
             "int": "int", "float": "float", "str": "str", "round": "round", "list": "list", "zip": "zip",
             "enumerate": "enumerate", "any": "any", "all": "all", "sqrt": "math.sqrt", "floor": "math.floor",
             "ceil": "math.ceil", "log": "math.log"}
_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 6, "-": 6, "*": 7, "/": 7, "//": 7, "%": 7, "neg": 8,
         "**": 9}


class Untranslatable(Exception):
    pass


def _negative(e) -> bool:
    return (isinstance(e, ast.UnaryOp) and e.op == "-") or (
        isinstance(e, ast.Const) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool)
        and e.value < 0)


def _simple(e) -> bool:
    """An operand ruff hugs `**` with: a name, a number, a unary minus of one, or such a power."""
    if isinstance(e, ast.BinOp) and e.op == "**":
        return _simple(e.left) and _simple(e.right)
    if isinstance(e, ast.UnaryOp):
        return e.op == "-" and _simple(e.operand)
    return isinstance(e, ast.Name) or (isinstance(e, ast.Const) and isinstance(e.value, (int, float)))


def _name(n: str, reserved) -> str:
    """A fn's name: a module-level name of the file, so none the file or Python already uses."""
    if n in reserved or n in dir(builtins):
        raise Untranslatable(n)
    return _local(n)


def _local(n: str) -> str:
    """A parameter or comprehension variable (shadowing as in the .res file, never `math`); `l`,
    which pycodestyle calls ambiguous (E741), is written `l_` (_define checks the fn has no `l_`)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", n) or keyword.iskeyword(n) or n.startswith("__") or n == "math":
        raise Untranslatable(n)
    return RENAMED.get(n, n)


RENAMED = {"l": "l_"}


def _names(node, out) -> set:
    """Every identifier in a fn's syntax tree (parameters, variables, keyword names)."""
    if isinstance(node, str):
        out.add(node)
    elif isinstance(node, (list, tuple)):
        for x in node:
            _names(x, out)
    elif is_dataclass(node):
        for f in fields(node):
            _names(getattr(node, f.name), out)
    return out


def _one_list(text: str) -> bool:
    """`[...]` is one bracketed list (its first `[` closes at the end), outside strings."""
    depth, quote = 0, None
    for k, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[k - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and k != len(text) - 1:
                return False
    return True


class Translator:
    """Python definitions for the fns that buffers come from, in the order they are first needed."""

    def __init__(self, reserved):
        self.reserved = set(reserved)
        self.defs = {}  # fn name -> lines
        self.fns = {}  # fn name -> Fn
        self.uses_math = False

    def call(self, built) -> str | None:
        """`rel_index(7)` for a Built list, or None when it does not translate."""
        saved = (dict(self.defs), dict(self.fns), self.uses_math)
        try:
            return self._call_text(built)
        except Untranslatable:
            self.defs, self.fns, self.uses_math = saved
            return None

    def parts(self, built):
        """(fn name, its arguments: a number or bool as it is, anything else as Python text) of
        the call that made a Built list, or None when it does not translate: the caller may
        write the numbers from the class's own arguments."""
        saved = (dict(self.defs), dict(self.fns), self.uses_math)
        try:
            self._define(built.fn)
            args = [v if isinstance(v, (bool, int, float)) else
                    self._call_text(v) if getattr(v, "fn", None) is not None else self._value(v) for v in built.args]
            return built.fn.name, args
        except Untranslatable:
            self.defs, self.fns, self.uses_math = saved
            return None

    def _call_text(self, built) -> str:
        self._define(built.fn)
        args = []
        for v in built.args:
            args.append(self._call_text(v) if getattr(v, "fn", None) is not None else self._value(v))
        return f"{built.fn.name}({', '.join(args)})"

    def _value(self, v) -> str:
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(self._value(x) for x in v) + "]"
        if isinstance(v, (bool, int, float, str)) or v is None:
            return lit(v)
        raise Untranslatable(type(v).__name__)

    def _define(self, fn):
        name = fn.name
        if name in self.fns:
            if self.fns[name] is not fn:
                raise Untranslatable(name)
            return
        if fn.closure is not None:
            raise Untranslatable(name)
        _name(name, self.reserved)
        if any(new in _names(fn.defn, set()) for new in RENAMED.values()):
            raise Untranslatable(name)  # a renamed local would meet one of the fn's own names
        self.fns[name] = fn
        params = [_local(p.name) for p in fn.defn.params]
        sig = []
        for p, local in zip(fn.defn.params, params):
            sig.append(local if p.default is None else f"{local}={self._expr(p.default, set(), fn)}")
        body = self._expr(fn.defn.value, set(params), fn)
        lines = [f"def {name}({', '.join(sig)}):", f"{INDENT}return {body}"]
        if len(lines[1]) > WIDTH and body[0] + body[-1] == "[]" and _one_list(body) \
                and len(INDENT * 2 + body[1:-1]) <= WIDTH:  # as ruff splits it: the brackets' content alone
            lines[1:] = [f"{INDENT}return [", INDENT * 2 + body[1:-1], f"{INDENT}]"]
        elif len(lines[1]) > WIDTH and isinstance(fn.defn.value, ast.ListExpr):  # one item a line
            items = [self._expr(i, set(params), fn) for i in fn.defn.value.items]
            lines[1:] = [f"{INDENT}return ["] + [f"{INDENT * 2}{i}," for i in items] + [f"{INDENT}]"]
        if any(len(ln) > WIDTH for ln in lines):
            raise Untranslatable(name)
        self.defs[name] = lines

    def lines(self) -> list:
        out = []
        for ls in self.defs.values():
            out += ls + ["", ""]
        return out

    # ---- expressions, parenthesised by Python's precedence
    def _expr(self, e, local, fn) -> str:
        return self._x(e, local, fn)[0]

    def _x(self, e, local, fn):
        """(text, precedence) of expression `e`."""
        if isinstance(e, ast.Const):
            if isinstance(e.value, (bool, int, float, str)) or e.value is None:
                neg = isinstance(e.value, (int, float)) and not isinstance(e.value, bool) and e.value < 0
                return lit(e.value), (_PREC["neg"] if neg else 10)
            raise Untranslatable("constant")
        if isinstance(e, ast.Name):
            if RENAMED.get(e.id, e.id) in local and e.id not in RENAMED.values():
                return RENAMED.get(e.id, e.id), 10
            target = fn.module.names.get(e.id)
            if type(target).__name__ == "Fn":
                self._define(target)
                return e.id, 10
            if e.id in _BUILTINS and (target is None or getattr(target, "name", None) == e.id
                                      and type(target).__name__ == "Builtin"):
                return self._builtin(e.id), 10
            raise Untranslatable(e.id)
        if isinstance(e, ast.ListExpr):
            return "[" + ", ".join(self._expr(i, local, fn) for i in e.items) + "]", 10
        if isinstance(e, ast.BinOp) and e.op == "**":  # as ruff writes it: `x**2`, `2.0 ** (a + 1)`
            if _negative(e.left):
                raise Untranslatable("a negative base")  # `(-1) ** a`: left to the literal
            a, pa = self._x(e.left, local, fn)
            b, pb = self._x(e.right, local, fn)
            a = a if pa > 9 else f"({a})"
            b = b if pb >= 8 else f"({b})"  # `2 ** -a` is 2 ** (-a)
            sep = "" if _simple(e.left) and _simple(e.right) else " "
            return f"{a}{sep}**{sep}{b}", 9
        if isinstance(e, ast.BinOp):
            p = _PREC[e.op]
            a, pa = self._x(e.left, local, fn)
            b, pb = self._x(e.right, local, fn)
            a = a if pa >= p else f"({a})"
            b = b if pb > p else f"({b})"
            return f"{a} {e.op} {b}", p
        if isinstance(e, ast.UnaryOp):
            p = _PREC["neg" if e.op == "-" else "not"]
            v, pv = self._x(e.operand, local, fn)
            v = v if pv >= p and not (pv == 9 and e.op == "-") else f"({v})"  # `-(x**2)`, as ruff
            return (f"-{v}" if e.op == "-" else f"not {v}"), p
        if isinstance(e, ast.BoolOp):
            p = _PREC[e.op]
            a, pa = self._x(e.left, local, fn)
            b, pb = self._x(e.right, local, fn)
            return f"{a if pa >= p else f'({a})'} {e.op} {b if pb > p else f'({b})'}", p
        if isinstance(e, ast.Compare):
            p = _PREC["cmp"]
            a, pa = self._x(e.left, local, fn)
            b, pb = self._x(e.right, local, fn)
            return f"{a if pa > p else f'({a})'} {e.op} {b if pb > p else f'({b})'}", p
        if isinstance(e, ast.CondExpr):
            c, pc = self._x(e.cond, local, fn)
            t, pt = self._x(e.then, local, fn)
            o, _ = self._x(e.other, local, fn)
            return f"{t if pt > 0 else f'({t})'} if {c if pc > 0 else f'({c})'} else {o}", 0
        if isinstance(e, ast.Call):
            head, _ = self._x(e.func, local, fn)
            args = []
            for a in e.args:
                v = self._expr(a.value, local, fn)
                args.append(v if a.name is None else f"{_local(a.name)}={v}")
            return f"{head}({', '.join(args)})", 10
        if isinstance(e, ast.Index):
            v, pv = self._x(e.value, local, fn)
            v = v if pv == 10 else f"({v})"
            if isinstance(e.index, ast.Slice):
                lo = self._expr(e.index.lower, local, fn) if e.index.lower is not None else ""
                hi = self._expr(e.index.upper, local, fn) if e.index.upper is not None else ""
                return f"{v}[{lo}:{hi}]", 10
            return f"{v}[{self._expr(e.index, local, fn)}]", 10
        if isinstance(e, ast.ListComp):
            inner = set(local)
            parts = []
            for cl in e.clauses:
                it = self._expr(cl.iterable, inner, fn)
                targets = [_local(t) for t in cl.targets]
                inner |= set(targets)
                parts.append(f"for {', '.join(targets)} in {it}")
                parts += [f"if {self._expr(c, inner, fn)}" for c in cl.conds]
            return f"[{self._expr(e.elt, inner, fn)} {' '.join(parts)}]", 10
        raise Untranslatable(type(e).__name__)

    def _builtin(self, name):
        py = _BUILTINS[name]
        if py.startswith("math."):
            self.uses_math = True
        return py
