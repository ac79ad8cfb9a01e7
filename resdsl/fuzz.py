"""A fuzzer for `resdsl check`: no input may end in a traceback, a hang or a blow-up.

Inputs come from four generators (all seeded, so a run is reproducible):

* ``grammar``  random derivations of grammar/res.lark (terminals drawn from edge cases);
* ``mutate``   mutations of every `.res` in the repo and of the docs' ```res samples
               (deleted/duplicated/swapped lines and tokens, edge-case numbers, op names,
               odd characters, splices of two files);
* ``oneop``    one-op programs: every op of the op table with edge-case arguments on
               inputs of rank 1 to 5;
* ``network``  random chains of ops, regions and blocks with mostly sensible arguments;
* ``fmt``, ``lexer``, ``weights``, ``config``: the targets of resdsl/fuzz_targets.py (fmt
               round trips, whitespace runs for the lexer, hostile checkpoints and configs).

Each input of the first four is elaborated (every network in it) the way `resdsl check` does, in a worker
process with a time and memory limit, and lands in one class:

    ok           the network elaborated
    located      a ResdslError with file:line:col
    unlocated    a ResdslError without a location
    internal     any other exception (a traceback)
    hang         over the time limit
    memory       over the memory limit

`run(...)` is used by tests/test_fuzz.py (bounded budget) and benchmarks/fuzz.py (long runs).
"""
from __future__ import annotations

import multiprocessing as mp
import random
import re
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("ok", "located", "unlocated", "internal", "hang", "memory")
BAD = ("unlocated", "internal", "hang", "memory")

INTS = ["0", "1", "2", "3", "4", "8", "-1", "-3", "7", "16", "2147483648", "99999999999999999999", "10**20",
        "2**62", "1e400", "0.5"]
NUMS = ["0", "0.0", "1e-5", "0.5", "1", "2", "-1.0", "1e400", "1e308", "5"]
STRS = ['"same"', '"valid"', '"zeros"', '"reflect"', '"circular"', '"replicate"', '"mirror"', '"tanh"',
        '"none"', '"nearest"', '"bilinear"', '"linear"', '"bicubic"', '"trilinear"', '""', '"a{}"',
        '"n c h w -> n (c h) w"', '"n c (h p) w -> n (c p) h w"', '"n c h w -> n c h h"', '"n l d -> n d l"',
        '"fan_out"', '"x" * 3']
INITS = ["zeros", "ones", "normal(0.02)", 'normal("a")', "uniform(-1, 1)", "uniform(1)", "uniform(1, 0)",
         'kaiming_normal("fan_out")', "kaiming_uniform", "xavier_uniform", "orthogonal", "eye", "onehot(3)",
         "onehot(1000000)", "trunc_normal(0.02)", "constant(1e400)", "default", "2.5"]
SHAPES = ["[1, 4, 8, 8]", "[2, 6, 8]", "[1, 4]", "[4]", "[1, 2, 4, 4, 4]", "[N, 4, H, W]", "[1, 8, 4, 4]",
          "[2, 3, 5]", "[1, 16, 2, 2]"]


# ---------------------------------------------------------------- corpus
def corpus() -> list[tuple[str, str]]:
    """(name, text) of every `.res` file in the repo and every ```res sample in the docs."""
    out = []
    for p in sorted(list(ROOT.glob("examples/**/*.res")) + list(ROOT.glob("stdlib/**/*.res"))
                    + list(ROOT.glob("tests/**/*.res"))):
        try:
            out.append((str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    for doc in sorted(ROOT.glob("docs/**/*.md")) + [ROOT / "README.md"]:
        if doc.exists():
            for k, m in enumerate(re.finditer(r"```res\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
                out.append((f"{doc.relative_to(ROOT)}#{k}", m.group(1)))
    return out


# ---------------------------------------------------------------- grammar derivations
class GrammarGen:
    """Random derivations of grammar/res.lark: each rule picks an expansion at random, and past
    `max_depth` the cheapest one, so every derivation ends."""

    def __init__(self):
        from .frontend.parser import lark_parser
        p = lark_parser()
        self.rules: dict[str, list] = {}
        for r in p.rules:
            self.rules.setdefault(r.origin.name, []).append([(s.name, s.is_term) for s in r.expansion])
        self.terms = {t.name: t.pattern for t in p.terminals}
        self.cost = {name: 10 ** 9 for name in self.rules}
        changed = True
        while changed:  # fixed point: the fewest terminals each rule can derive
            changed = False
            for name, exps in self.rules.items():
                best = min(sum(1 if t else self.cost[s] for s, t in e) for e in exps)
                if best < self.cost[name]:
                    self.cost[name], changed = best, True
        from .ir.ops import OPS
        self.names = sorted(OPS) + ["x", "y", "N", "C", "H", "W", "i", "n", "B", "Block", "d", "range", "len",
                                    "add", "concat", "learned", "zeros", "normal"]

    def terminal(self, name, rng) -> str:
        table = {
            "NAME": lambda: rng.choice(self.names), "NUMBER": lambda: rng.choice(INTS + NUMS),
            "INT": lambda: rng.choice(["0", "1", "2", "10"]), "STRING": lambda: rng.choice(STRS),
            "TEMPLATE_NAME": lambda: rng.choice(["a{i}", "b{1 + 1}", "c{}", "d{i}_{i}", "{i}"]),
            "COMP_OP": lambda: rng.choice(["==", "!=", "<", ">", "<=", ">="]),
            "ADD_OP": lambda: rng.choice(["+", "-"]), "MUL_OP": lambda: rng.choice(["*", "/", "//", "%"]),
            "_NL": lambda: rng.choice(["\n", "\n", ";"]), "SHARED": lambda: "shared",
        }
        if name in table:
            return table[name]()
        pat = self.terms.get(name)
        if pat is not None and pat.type == "str":
            return pat.value
        return rng.choice(self.names)

    def generate(self, rng, start="start", max_depth=12) -> str:
        out = []
        stack = [(start, False, 0)]
        while stack and len(out) < 4000:
            sym, is_term, depth = stack.pop()
            if is_term:
                out.append(self.terminal(sym, rng))
                continue
            exps = self.rules[sym]
            if depth >= max_depth:
                exp = min(exps, key=lambda e: sum(1 if t else self.cost[s] for s, t in e))
            else:
                exp = rng.choice(exps)
            stack.extend((s, t, depth + 1) for s, t in reversed(exp))
        return " ".join(out)


# ---------------------------------------------------------------- mutations
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\"[^\"\n]*\"|->|\S")
ODD = ["\ufeff", "\t", "\r\n", "\x00", "\u00e9", "\u2028", "{", "}", "(", ")", "[", "]", "->", "|", ";", "#",
       "\\\n", "'", '"', ",", "as", "in", "residual", "repeat 3", "loop 2 shared", "shortcut", "**", "..."]


def mutate(text: str, rng: random.Random, others: list[str]) -> str:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.randrange(9)
        lines = text.split("\n")
        toks = [m for m in _TOKEN.finditer(text)]
        if kind == 0 and len(lines) > 1:  # delete lines
            i = rng.randrange(len(lines))
            del lines[i:i + rng.randint(1, 3)]
            text = "\n".join(lines)
        elif kind == 1 and lines:  # duplicate a line
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == 2 and toks:  # replace a number with an edge case
            nums = [m for m in toks if m.group()[0].isdigit()]
            if nums:
                m = rng.choice(nums)
                text = text[:m.start()] + rng.choice(INTS + NUMS) + text[m.end():]
        elif kind == 3 and toks:  # replace a name with another name
            names = [m for m in toks if m.group()[0].isalpha() or m.group()[0] == "_"]
            if names:
                m = rng.choice(names)
                other = rng.choice(names).group() if rng.random() < 0.5 else rng.choice(
                    ["relu", "conv", "bn", "x", "in", "N", "Block", "residual", "repeat", "none", "true"])
                text = text[:m.start()] + other + text[m.end():]
        elif kind == 4 and toks:  # delete a token
            m = rng.choice(toks)
            text = text[:m.start()] + text[m.end():]
        elif kind == 5:  # insert something odd
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(ODD) + text[i:]
        elif kind == 6 and text:  # truncate
            text = text[:rng.randrange(len(text))]
        elif kind == 7 and others:  # splice with another file
            o = rng.choice(others)
            i, j = rng.randrange(len(text) + 1), rng.randrange(len(o) + 1)
            text = text[:i] + o[j:j + rng.randint(1, 400)] + text[i:]
        elif kind == 8 and toks:  # swap two tokens
            a, b = sorted(rng.sample(range(len(toks)), 2)) if len(toks) > 1 else (0, 0)
            ma, mb = toks[a], toks[b]
            if a != b:
                text = text[:ma.start()] + mb.group() + text[ma.end():mb.start()] + ma.group() + text[mb.end():]
    return text


# ---------------------------------------------------------------- one-op programs
def _arg(a, rng) -> str:
    t = a.type
    if t == "int":
        return rng.choice(INTS)
    if t == "num":
        return rng.choice(NUMS)
    if t == "bool":
        return rng.choice(["true", "false", "1"])
    if t == "str":
        return rng.choice(STRS)
    if t in ("ints", "str_or_int", "sizes"):
        r = rng.random()
        if r < 0.5:
            return rng.choice(INTS[:8])
        if r < 0.9:
            return "[" + ", ".join(rng.choice(INTS[:8]) for _ in range(rng.randint(0, 4))) + "]"
        return rng.choice(STRS)
    if t == "init":
        return rng.choice(INITS)
    if t == "shape":
        return "[" + ", ".join(rng.choice(["1", "4", "-1", "0", "2", "N"]) for _ in range(rng.randint(0, 4))) + "]"
    if t == "any":
        return rng.choice(["1", "-1", "[1, 2]", "[]", "0", '"a"', "[0, 0]", "2"])
    return "1"


def one_op(rng) -> str:
    from .ir.ops import OPS
    od = OPS[rng.choice(sorted(OPS))]
    args = []
    for a in od.attrs:
        if a.type == "kwargs":
            if rng.random() < 0.5:
                args.append(f"{rng.choice(['p', 'h', 'q'])}={rng.choice(INTS[:8])}")
            continue
        required = a.default is not None and repr(a.default).startswith("<object")
        if required or rng.random() < 0.4:
            v = _arg(a, rng)
            args.append(v if required and rng.random() < 0.6 else f"{a.name}={v}")
    # positional arguments must come first
    args.sort(key=lambda s: "=" in s.split("(")[0])
    call = f"{od.name}({', '.join(args)})"
    lo = od.inputs if isinstance(od.inputs, int) else od.inputs[0]
    shape = rng.choice(SHAPES)
    if lo == 0:
        body = f"add({call})" if rng.random() < 0.5 else call
    elif lo >= 2:
        body = f"y = x -> relu\n    x -> {call.replace('(', '(y, ', 1) if args else call.replace('(', '(y')}"
    else:
        body = call
    return f"network N() {{\n    input x: {shape}\n    {body}\n}}\n"


# ---------------------------------------------------------------- random networks
def random_network(rng, legal_only=False) -> str:
    """A chain of ops and regions on [1, 4, 8, 8]; mostly sensible arguments, some edge cases."""
    def pick(good, bad):
        return rng.choice(good) if legal_only or rng.random() < 0.85 else rng.choice(bad)

    def op():
        r = rng.randrange(16)
        c = pick(["4", "8", "16"], ["0", "-1", "3", "2**31"])
        if r < 4:
            k = pick(["1", "3"], ["0", "9", "[1, 2, 3]"])
            pad = pick(["1", "0", "'same'"], ["-1", "'full'"])
            mode = pick(["'zeros'", "'reflect'", "'replicate'", "'circular'"], ["'mirror'"])
            bias, groups = pick(["false", "true"], ["1"]), pick(["1", "4"], ["0", "3"])
            return f"conv({c}, {k}, padding={pad}, bias={bias}, groups={groups}, padding_mode={mode})"
        if r == 4:
            return f"bn(eps={pick(['1e-5', '0.001'], ['0', '-1', '1e400'])}, momentum={pick(['0.1', '0.5'], ['2'])})"
        if r == 5:
            return f"gn({pick(['1', '2', '4'], ['0', '3', '-1'])})"
        if r == 6:
            return rng.choice(["relu", "silu", "gelu", "sigmoid", "tanh", "hardswish", "identity",
                               "gelu(approximate='tanh')", "leaky_relu(0.2)"])
        if r == 7:
            pool = rng.choice(["maxpool", "avgpool"])
            return (f"{pool}({pick(['2', '3'], ['0', '20'])}, stride={pick(['1', '2'], ['0'])}, "
                    f"padding={pick(['0', '1'], ['-1', '3'])})")
        if r == 8:
            return f"dropout({pick(['0.0', '0.1', '0.5'], ['5', '-0.5'])})"
        if r == 9:
            mode = pick(["'nearest'", "'bilinear'", "'bicubic'"], ["'linear'", "'cubic'"])
            return f"upsample({pick(['1', '2'], ['0'])}, mode={mode})"
        if r == 10:
            return f"layer_scale({pick(['1e-5', '0.1'], ['1e400'])})"
        if r == 11:
            return "ln2d"
        if r == 12:
            return f"residual {{ conv(C, 3, padding=1) -> {pick(['bn', 'relu'], ['relu -> relu'])} }}"
        if r == 13:
            return f"residual(merge={pick(['add', 'concat', 'mean'], ['mul'])}) {{ relu }}"
        if r == 14:
            init = pick(["normal(0.02)", "zeros", "kaiming_normal('fan_out')", "uniform(-0.1, 0.1)", "onehot(3)",
                         "orthogonal"], INITS)
            return f"conv(C, 1, weight_init={init})"
        return f"B({pick(['4', '8'], ['0'])})"

    chain = " -> ".join(op() for _ in range(rng.randint(1, 4)))
    tail = rng.choice(["", " -> flatten -> linear(10)", " -> adaptive_avgpool(1) -> flatten -> linear(3)",
                       " -> mean(dim=[2, 3])"])
    return ("block B(c: int) {\n    conv(c, 3, padding=1) -> bn -> relu\n}\n"
            "network N(C: int = 4) {\n    input x: [1, 4, 8, 8]\n    " + chain + tail + "\n}\n")


# ---------------------------------------------------------------- generation
CHECK_MIX = (("mutate", 4), ("grammar", 2), ("oneop", 3), ("network", 1))
ALL_MIX = CHECK_MIX + (("fmt", 3), ("lexer", 1), ("weights", 2), ("config", 1))
GENERATORS = tuple(k for k, _ in ALL_MIX)


def mix_of(generators) -> tuple:
    """The weighted mix for a list of generator names (None: the `check` generators; "all")."""
    if generators is None:
        return CHECK_MIX
    if generators == "all":
        return ALL_MIX
    names = generators.split(",") if isinstance(generators, str) else list(generators)
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown generator(s) {', '.join(unknown)}; known: {', '.join(GENERATORS)}")
    return tuple((k, w) for k, w in ALL_MIX if k in names)


def inputs(seed: int = 0, mix=CHECK_MIX):
    """An endless, reproducible stream of (generator, input): a `.res` text for the check
    generators, a task (kind, payload) for those of fuzz_targets."""
    from . import fuzz_targets as T
    rng = random.Random(seed)
    files = [t for _, t in corpus()]
    gram = GrammarGen()
    kinds = [k for k, w in mix for _ in range(w)]
    while True:
        k = rng.choice(kinds)
        if k == "fmt":
            text = T.relayout(rng.choice(files), rng)
            yield k, ("fmt", mutate(text, rng, files) if rng.random() < 0.25 else text)
            continue
        if k == "lexer":
            yield k, ("lexer", T.lexer_input(rng))
            continue
        if k == "weights":
            yield k, ("weights", T.weights_input(rng))
            continue
        if k == "config":
            yield k, ("config", T.config_input(rng))
            continue
        if k == "mutate":
            text = mutate(rng.choice(files), rng, files)
        elif k == "grammar":
            if rng.random() < 0.3:
                text = gram.generate(rng, max_depth=rng.randint(4, 14))
            else:  # a derived statement or chain inside a network that has an input
                part = gram.generate(rng, start=rng.choice(["stmt", "chain", "chain", "expr"]),
                                     max_depth=rng.randint(3, 10))
                text = f"network N() {{\n    input x: {rng.choice(SHAPES)}\n    {part}\n}}\n"
        elif k == "oneop":
            text = one_op(rng)
        else:
            text = random_network(rng)
        yield k, text


# ---------------------------------------------------------------- the two parsers
def ast_dump(x):
    """An AST as nested tuples, spans included (AST equality leaves spans out)."""
    import dataclasses

    from .diagnostics import Span
    if isinstance(x, Span):
        return ("@", x.source.path, x.line, x.column, x.end_line, x.end_column)
    if dataclasses.is_dataclass(x):
        return (type(x).__name__,) + tuple(ast_dump(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, (tuple, list)):
        return tuple(ast_dump(i) for i in x)
    return (type(x).__name__, x)


def lark_depth(text: str) -> int:
    """The depth of Lark's parse tree of `text` (what parser.check_depth limits)."""
    from lark import Tree

    from .frontend.parser import lark_parser
    best, stack = 0, [(lark_parser().parse(text), 1)]
    while stack:
        t, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in t.children if isinstance(c, Tree))
    return best


def parser_differential(text: str, path: str = "t.res") -> str:
    """Compare the fast parser with the reference (Lark + _ToAst) on one input:
    'same' (the fast parser's AST, spans and parse-tree depth equal Lark's), 'bail' (it
    handed an input Lark rejects to Lark, as it does for every error), 'slow' (it handed
    over an input Lark accepts: correct, only slower), or a sentence saying how they
    differ. `text` has no byte order mark."""
    from .diagnostics import ResdslError, SourceFile
    from .frontend import fastparse, parser
    src = SourceFile(path, text)
    try:
        ref, err = ast_dump(parser.parse_lark(text, src)), None
    except ResdslError as e:
        ref, err = None, e
    p = fastparse.Parser.__new__(fastparse.Parser)
    try:
        p.__init__(text, src)
        got = ast_dump(p.module())
    except (fastparse.Bail, RecursionError):
        return "bail" if err is not None else "slow"
    if err is not None:
        return f"the fast parser accepts what Lark rejects with: {err}"
    if got != ref:
        return "the ASTs differ"
    depth = lark_depth(text)
    if depth != p.d:
        return f"parse tree depth: Lark {depth}, fast {p.d}"
    return "same"


PUNCT = ["import", "block", "network", "fn", "input", "output", "let", "as", "residual", "if", "shortcut",
         "parallel", "repeat", "loop", "for", "in", "else", "or", "and", "not", "true", "false", "none",
         "shared", "\\\n", "\n", ";", "# c\n", "(", ")", "[", "]", "{", "}", "->", "|", ",", "=", "==", "-", "+",
         "**", "*", ".", ":", "?", "a{i}", "{i}", "1.5", ".5", "1e3", "'s'", '"t"', "x", "\t", "\r\n", "0",
         "@", "@features", "\n@features a, b.{i}.0\n", "\n@classifier fc\n"]


def insert_tokens(text: str, rng: random.Random) -> str:
    """`text` with one to three keywords, punctuation marks or layout pieces inserted."""
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(text) + 1)
        text = text[:pos] + rng.choice([" ", ""]) + rng.choice(PUNCT) + rng.choice([" ", ""]) + text[pos:]
    return text


def parser_inputs(seed: int = 0):
    """An endless, reproducible stream of texts for parser_differential: the fuzzer's inputs,
    and every third one a repo file with keywords and punctuation inserted."""
    rng = random.Random(seed)
    files = [t for _, t in corpus()]
    gen = inputs(seed)
    k = 0
    while True:
        text = insert_tokens(rng.choice(files), rng) if k % 3 == 0 else next(gen)[1]
        k += 1
        yield text[1:] if text.startswith("\ufeff") else text


# ---------------------------------------------------------------- running
def classify(text: str, path: str = "fuzz.res") -> tuple[str, str]:
    """(class, detail) for one input, elaborated in this process (no time or memory limit)."""
    from .diagnostics import ResdslError
    from .elaborate import Program, elaborate
    from .ir.shapes import shape_str
    try:
        try:
            prog = Program.from_source(text, path)
            names = list(prog.networks)[:3] or [None]
            for name in names:
                g = elaborate(Program.from_source(text, path), name)
                # what `resdsl check` prints
                ", ".join(shape_str(v.shape) for v in g.outputs + g.inputs)
                g.num_params()
        except ResdslError as e:
            if e.span is None:
                return "unlocated", str(e)[:300]
            e.render()
            return "located", f"{e.kind}: {e.message[:200]}"
    except MemoryError:
        return "memory", "MemoryError"
    except RecursionError:
        return "internal", "RecursionError\n" + traceback.format_exc(limit=-8)
    except Exception as e:  # noqa: BLE001 - any other exception is what we look for
        return "internal", f"{type(e).__name__}: {e}"[:300] + "\n" + traceback.format_exc(limit=-6)
    return "ok", ""


def _worker(conn, mem_bytes, warm=False):
    import os
    import resource
    import sys
    import tempfile
    if warm:  # what the tasks need, imported before the memory limit (torch maps GBs) and the clock
        import torch  # noqa: F401

        import resdsl.api  # noqa: F401
    if "torch" in sys.modules:  # forked from a process whose OpenMP threads ran (a test session): a parallel
        sys.modules["torch"].set_num_threads(1)  # region in the child can wait forever on them (libgomp and fork)
    if mem_bytes:  # on top of what the worker already maps (a parent that imported torch maps GBs)
        try:
            with open("/proc/self/statm") as f:
                mapped = int(f.read().split()[0]) * resource.getpagesize()
        except (OSError, ValueError):
            mapped = 0
        limit = mapped + mem_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(tempfile.mkdtemp(prefix="resdsl-fuzz-"))  # imports of the input resolve in an empty folder
    conn.send("ready")
    from . import fuzz_targets, rename
    rename.TIMEOUT_S = 2.0  # a catastrophic --rename must end as an error within the worker's time limit
    while True:
        item = conn.recv()
        if item is None:
            return
        t = time.time()
        cls, detail = classify(item) if isinstance(item, str) else fuzz_targets.run_task(*item)
        conn.send((cls, detail, time.time() - t))


class Runner:
    """Classifies inputs in a worker process; a worker over the time limit is killed (hang)."""

    def __init__(self, timeout: float = 10.0, mem_mb: int = 2048, warm: bool = False):
        self.timeout, self.mem, self.warm = timeout, mem_mb * 2 ** 20, warm
        self.ctx = mp.get_context("fork")
        self.proc = None

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.mem, self.warm), daemon=True)
        self.proc.start()
        if self.conn.poll(300):  # ready: torch's import (seconds, with `warm`) is not the input's time
            self.conn.recv()

    def classify(self, text) -> tuple[str, str, float]:
        """`text`: a `.res` input, or a task (kind, payload) of fuzz_targets."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        t = time.time()
        self.conn.send(text)
        if not self.conn.poll(self.timeout):
            self.proc.kill()
            self.proc.join()
            self.proc = None
            return "hang", f"over {self.timeout}s", time.time() - t
        try:
            return self.conn.recv()
        except EOFError:  # the worker died: out of memory (the OOM killer) or a crash in C
            self.proc.join()
            code = self.proc.exitcode
            self.proc = None
            return ("memory" if code in (-9, 137) else "internal"), f"worker died ({code})", time.time() - t

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()


def run(seconds: float = 60.0, max_inputs: int | None = None, seed: int = 0, timeout: float = 10.0,
        mem_mb: int = 2048, log=None, generators=None):
    """Fuzz for `seconds` (or `max_inputs`); returns counts per class, the bad inputs and the slowest.
    `generators`: None (the `check` generators), "all", or a list of names (GENERATORS)."""
    from .fuzz_targets import describe
    mix = mix_of(generators)
    counts = {c: 0 for c in CLASSES}
    by_gen: dict[str, dict] = {}
    bad, slowest = [], []
    runner = Runner(timeout, mem_mb, warm=any(k == "weights" for k, _ in mix))
    end = time.time() + seconds
    n = 0
    try:
        for gen, item in inputs(seed, mix):
            if time.time() > end or (max_inputs is not None and n >= max_inputs):
                break
            cls, detail, dt = runner.classify(item)
            text = describe(item)
            n += 1
            counts[cls] += 1
            by_gen.setdefault(gen, {c: 0 for c in CLASSES})[cls] += 1
            if cls in BAD:
                bad.append((cls, gen, text, detail))
                if log:
                    log(f"[{cls}] {gen}: {detail.splitlines()[0] if detail else ''}")
            slowest.append((dt, len(text), gen, cls, text[:2000]))
            slowest = sorted(slowest, reverse=True)[:5]
            if log and n % 1000 == 0:
                log(f"{n} inputs: " + ", ".join(f"{c} {counts[c]}" for c in CLASSES))
    finally:
        runner.close()
    return {"inputs": n, "counts": counts, "by_generator": by_gen, "bad": bad, "slowest": slowest}


# ---------------------------------------------------------------- names with markup, through every output
# A quoted name may hold any printable character but `"` and `\`; a block's string argument puts `{`, `}`
# (written `{{`, `}}`) into one through a template. Each generated network is elaborated (a located error
# is fine: a name with `"`, `\` or a newline escape must be refused there) and, when it elaborates,
# written in every format another program interprets; each output is read back by that program. `markup_run` is bounded
# (tests/test_fuzz.py); benchmarks/fuzz.py --markup runs it for long.
MARKUP = ["`", "``", "|", "<", ">", "<img src=x onerror=alert(1)>", "</td>", "&", "&amp;", ":", "{", "}", "$",
          "%", "#", "_", "~", "^", "*", "[x](y)", "**", "'", "!", "--", "a", "b1", " "]
FORMULA = ["=", "+", "-", "@", ""]
REFUSED = ['"', "\\", "\\n", "\\t", "\\\\"]  # cannot be in a name: the elaborator says where


def markup_name(rng: random.Random, refused: bool = False) -> str:
    """The text between the quotes of `as "..."`: a leading spreadsheet-formula character, markup."""
    parts = [rng.choice(FORMULA)] + [rng.choice(MARKUP) for _ in range(rng.randint(1, 5))]
    if refused:
        parts.insert(rng.randint(0, len(parts)), rng.choice(REFUSED))
    name = "".join(parts).replace("{", "").replace("}", "")  # braces come in through a template
    return name.strip(" ") or "a"


def markup_program(rng: random.Random) -> str:
    """A network whose statement, repeat and block names hold markup (braces through a block argument)."""
    bad = rng.random() < 0.15
    n = [markup_name(rng, refused=bad and i == 0) for i in range(5)]
    tag = "".join(rng.choice(MARKUP + ["{", "}", "{x}"]) for _ in range(rng.randint(1, 4))).replace('"', "")
    tag = tag.replace("{", "{{").replace("}", "}}")  # literal braces in a string (a lone one is a template)
    return ("block B(tag: str) {\n    conv(4, 1) as \"k{tag}\"\n}\n"
            "network M() {\n    input x: [1, 3, 8, 8]\n"
            f'    conv(4, 3, padding=1) as "{n[0]}"\n    relu as "{n[1]}"\n'
            f'    residual {{\n        conv(4, 3, padding=1) as "{n[2]}"\n    }}\n'
            f'    repeat 2 as "{n[3]}" {{ conv(4, 1) }}\n'
            f'    B("{tag}") as "{n[4]}"\n}}\n')


def tex_unescaped(tex: str) -> list[str]:
    """Label texts of a TikZ file (`\\node ... {text};`) that hold a character TeX reads as markup
    outside the escapes resdsl writes."""
    bad = []
    for m in re.finditer(r"\\node\[[^\n]*?\] at \([^)]*\) \{(.*)\};$", tex, re.M):
        t = re.sub(r"\\text(backslash|asciitilde|asciicircum|less|greater|bar)\{\}", "", m.group(1))
        t = re.sub(r"\$[^$]*\$", "", t.replace(r"\$", ""))
        t = re.sub(r"\\textbf\{|\\dots\{\}|\\[&%#_{}]|\{`\}", "", t)
        if re.search(r"[&%$#_~^<>|\\]", t.replace("{", "").replace("}", "")):
            bad.append(m.group(1))
    return bad


def check_outputs(text: str) -> tuple[str, list[str]]:
    """("ok" | "located", problems) for one program: every output format read back by its reader."""
    import csv
    import io
    import json
    import subprocess
    import xml.etree.ElementTree as ET

    from .api import graph
    from .backends.diagram import block, circuit
    from .backends.diagram.block import dot_binary
    from .backends.diagram.dotsrc import node_name
    from .backends.diagram.view import View
    from .backends.summary import format_summary, summary_rows
    from .diagnostics import ResdslError
    try:
        g = graph(text)
    except ResdslError as e:
        return ("located", []) if e.span is not None else ("unlocated", [f"unlocated: {e}"])
    problems = []
    names = [r.name for r in summary_rows(g, None)[0]]
    want_cells = 4
    # markdown, read by a CommonMark + GFM-table parser
    from markdown_it import MarkdownIt
    html = MarkdownIt("commonmark").enable("table").render(format_summary(g, None, "markdown"))
    root = ET.fromstring(f"<root>{html}</root>")
    tags = {el.tag for el in root.iter()} - {"root", "p", "strong", "table", "thead", "tbody", "tr", "th", "td",
                                             "code"}
    rows = root.findall(".//tbody/tr")
    if tags:
        problems.append(f"markdown: live HTML {sorted(tags)}")
    if any(len(r.findall("td")) != want_cells for r in rows):
        problems.append("markdown: a name split a table row")
    if ["".join(r.find("td/code").itertext()) for r in rows[:-1] if r.find("td/code") is not None] != names:
        problems.append("markdown: names changed")
    # HTML (Jupyter)
    table = ET.fromstring(format_summary(g, None, "html").split("\n")[0])
    if ["".join(r.find("td/code").itertext()) for r in table.findall("./tbody/tr")[:-1]] != names:
        problems.append("html: names changed")
    if {el.tag for el in table.iter()} - {"table", "caption", "b", "thead", "tbody", "tr", "th", "td", "code"}:
        problems.append("html: live markup")
    # CSV, read by a spreadsheet
    for row in csv.reader(io.StringIO(format_summary(g, None, "csv"))):
        if any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in row):
            problems.append(f"csv: a formula cell in {row}")
    # DOT, read by the graphviz binary: every item one node, every edge between the right two
    for depth in (1, 2, None):
        view = View(g, depth)
        src = block.plan(g, depth)[0]
        p = subprocess.run([dot_binary(), "-Tjson"], input=src.encode(), capture_output=True)
        if p.returncode or b"Warning" in p.stderr:
            problems.append(f"dot at depth {depth}: {p.stderr.decode(errors='replace')[:200]}")
            continue
        d = json.loads(p.stdout)
        objs = d.get("objects", [])
        nodes = sorted(o["name"] for o in objs if "nodes" not in o and not o["name"].startswith(("cluster",
                                                                                                   'title"')))
        if nodes != sorted(node_name(k) for k in view.items):
            problems.append(f"dot at depth {depth}: nodes {nodes} != {sorted(view.items)}")
            continue
        by_id = {o["_gvid"]: o["name"] for o in objs}
        edges = sorted((by_id[e["tail"]], by_id[e["head"]]) for e in d.get("edges", [])
                       if e.get("style") != "invis" and "loop" not in e.get("class", ""))
        if edges != sorted((node_name(s), node_name(t)) for s, t, _v, _c in view.edges):
            problems.append(f"dot at depth {depth}: edges differ")
    # SVG and TikZ, both styles
    for mod in (block, circuit):
        for depth in (1, None):
            svg, _ = mod.render(g, "svg", depth=depth)
            try:
                ET.fromstring(svg)
            except ET.ParseError as e:
                problems.append(f"{mod.__name__} svg: {e}")
            tex = mod.render(g, "tex", depth=depth)[0].decode()
            problems += [f"{mod.__name__} tex: unescaped {t!r}" for t in tex_unescaped(tex)]
    # ONNX initializer names and the standalone torch file's parameter names: the .res paths, exactly
    params = sorted(f"{n.path}.{k}" if k else n.path for n in g.nodes for k, s in n.params.items()
                    if s.kind == "param")
    from .backends.onnx.export import to_onnx_model
    model = to_onnx_model(g, seed=0)
    if sorted(i.name for i in model.graph.initializer if i.name in params) != params:
        problems.append("onnx: parameter names changed")
    from .backends.torch.build import to_python
    ns: dict = {}
    exec(compile(to_python(g, "<fuzz>"), "<fuzz>", "exec"), ns)  # noqa: S102 - our own generated file
    module = ns["M"](seed=0)
    if sorted(k for k, _ in module.named_parameters()) != params:
        problems.append("torch file: parameter names changed")
    return "ok", problems


def markup_run(n: int = 20, seed: int = 0) -> dict:
    """`n` markup programs through every output: counts of ok and located, and the problems found."""
    rng = random.Random(seed)
    counts = {"ok": 0, "located": 0, "unlocated": 0, "internal": 0}
    bad = []
    for _ in range(n):
        text = markup_program(rng)
        try:
            cls, problems = check_outputs(text)
        except Exception as e:  # noqa: BLE001 - a traceback in any output is a finding
            cls, problems = "internal", [f"{type(e).__name__}: {e}"[:300] + "\n" + traceback.format_exc(limit=-4)]
        counts[cls] = counts.get(cls, 0) + 1
        if problems:
            bad.append((text, problems))
    return {"inputs": n, "counts": counts, "bad": bad}
