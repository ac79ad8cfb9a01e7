"""Variants of one block definition written as one class, as torchvision writes MBConv.

Instances of a `.res` block that an `if` shapes differently (an expansion conv that exists only
when the expansion ratio is not 1, so the `block` Sequential's numbering shifts; a residual
only where the shape is kept) share one class: its `nn.Sequential` is built from a list with
the optional layers appended under a condition, and the residual runs under
`self.use_res_connect`. A condition is written from the constructor arguments where one
matches every instance (`se`, `not fused`, `exp != in_channels`, `stride == 1 and
in_channels == out`), else it is a flag argument. Per-instance floats that follow their index
in a repeat (stochastic depth rates) are written as `c * (a + i) / n`, exactly as computed.
"""
from __future__ import annotations

import itertools


class Code(str):
    """Constructor text of a layer (an activation) that differs between instances."""


def align(lists, key):
    """Per list, the positions of its entries in the longest list (a template of which every
    list is a subsequence by `key`), or None where one is not."""
    present = [x for x in lists if x is not None]
    tmpl = max(present, key=len)
    tkeys = [key(e) for e in tmpl]
    maps = []
    for x in lists:  # matched from the end: the layers an `if` leaves out come first (expansion)
        if x is None:
            maps.append(None)
            continue
        pos, m = len(tkeys) - 1, []
        for e in reversed(x):
            k = key(e)
            while pos >= 0 and tkeys[pos] != k:
                pos -= 1
            if pos < 0:
                return None
            m.append(pos)
            pos -= 1
        maps.append(m[::-1])
    return len(tmpl), maps


def _atoms(params):
    """(text, values per instance) of the tests a condition may be built from."""
    out = []
    names = list(params)
    for p in names:
        vals = params[p]
        if all(isinstance(v, bool) for v in vals):
            out.append((p, tuple(vals)))
            out.append((f"not {p}", tuple(not v for v in vals)))
        elif all(isinstance(v, float) for v in vals):
            out.append((f"{p} > 0", tuple(v > 0 for v in vals)))
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            out.append((f"{p} == 1", tuple(v == 1 for v in vals)))
            out.append((f"{p} != 1", tuple(v != 1 for v in vals)))
    for p, q in itertools.combinations(names, 2):
        a, b = params[p], params[q]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in list(a) + list(b)):
            out.append((f"{p} == {q}", tuple(x == y for x, y in zip(a, b))))
            out.append((f"{p} != {q}", tuple(x != y for x, y in zip(a, b))))
    return out


def condition(pattern, params, within=None):
    """A test on the constructor arguments true exactly for the instances in `pattern` (only
    those where `within` is true count), or None."""
    want = tuple(pattern)
    care = tuple(within) if within is not None else (True,) * len(want)

    def fits(vals):
        return all(v == w for v, w, c in zip(vals, want, care) if c)
    atoms = _atoms(params)
    for text, vals in atoms:
        if fits(vals):
            return text
    for (t1, v1), (t2, v2) in itertools.combinations(atoms, 2):
        if fits(tuple(a and b for a, b in zip(v1, v2))):
            return f"{t1} and {t2}"
    for (t1, v1), (t2, v2) in itertools.combinations(atoms, 2):
        if fits(tuple(a or b for a, b in zip(v1, v2))):
            return f"{t1} or {t2}"
    return None


def _dens(dens):
    """Denominators to try: the network's own integers (a block count) first."""
    return list(dict.fromkeys(sorted(d for d in dens if isinstance(d, int) and not isinstance(d, bool) and d > 0)
                              + list(range(1, 2001))))


def progression(values, consts, lit, dens=()):
    """`c * (a + i) / n` (i = 0, 1, ...) giving exactly `values`, for c among `consts`."""
    if len(values) < 2 or not all(isinstance(v, float) for v in values):
        return None
    for c in consts:
        if not isinstance(c, float) or c == 0:
            continue
        for n in _dens(dens):
            a = round(values[0] * n / c)
            if all(c * (a + i) / n == v for i, v in enumerate(values)):
                return f"{lit(c)} * {'i' if a == 0 else f'({a} + i)'} / {n}"
    return None


def _ints(c):
    return all(isinstance(v, int) and not isinstance(v, bool) for v in c)


def express(vals, cols, text_of, absent, depth=1):
    """(text, names used) of an expression in `cols` (name -> value per instance) equal to
    `vals` wherever a value is present: a name, `a * k`, `a // k`, `a * b`, a constant inside a
    choice, or `x if flag else y` on a flag among `cols`; None where none is."""
    idx = [k for k, v in enumerate(vals) if v is not absent]
    if not idx:
        return None
    got = [vals[k] for k in idx]

    def typed(v):
        return (type(v).__name__, repr(v))
    if depth == 0 and len({typed(v) for v in got}) == 1:
        return text_of(got[0]), set()
    if any(isinstance(v, Code) for v in got):
        if depth == 0:
            return None
    else:
        for n, c in cols.items():
            if all(typed(v) == typed(c[k]) for k, v in zip(idx, got)):
                return n, {n}
        ok = _ints(got)
        for n, c in cols.items():
            cv = [c[k] for k in idx]
            if not ok or not _ints(cv):
                continue
            for m in range(2, 9):
                if all(v == p * m for v, p in zip(got, cv)):
                    return f"{n} * {m}", {n}
                if all(v == p // m for v, p in zip(got, cv)):
                    return f"{n} // {m}", {n}
            for n2, c2 in cols.items():
                cv2 = [c2[k] for k in idx]
                if n2 != n and _ints(cv2) and all(v == p * q for v, p, q in zip(got, cv, cv2)):
                    return f"{n} * {n2}", {n, n2}
    if depth == 0:
        return None
    for b, c in cols.items():
        if not all(isinstance(c[k], bool) for k in idx):
            continue
        yes = [v if v is not absent and c[k] else absent for k, v in enumerate(vals)]
        no = [v if v is not absent and not c[k] else absent for k, v in enumerate(vals)]
        if all(v is absent for v in yes) or all(v is absent for v in no):
            continue
        a = express(yes, cols, text_of, absent, 0)
        z = express(no, cols, text_of, absent, 0)
        if a is not None and z is not None:
            return f"{a[0]} if {b} else {z[0]}", a[1] | z[1] | {b}
    return None


def fraction(v, consts, lit, dens=()):
    """`c * a / n` giving exactly `v` (c among `consts`), for a float whose shortest repr is
    long (`0.030000000000000006`, computed in the source as `0.2 * 6 / 40`), or None."""
    if type(v) is not float or len(repr(v)) <= 8:
        return None
    for c in consts:
        if not isinstance(c, float) or c == 0:
            continue
        for n in _dens(dens):
            a = round(v * n / c)
            if a and c * a / n == v:
                return f"{lit(c)} * {a} / {n}"
    return None
