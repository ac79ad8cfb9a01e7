"""Fuzz targets beyond `resdsl check` (used by resdsl/fuzz.py; see docs/fuzzing.md).

* ``fmt``      a valid file laid out at random (spaces, tabs, line breaks in brackets and
               after `as`, `\\` continuations, comments with odd characters, CRLF, a BOM,
               blank lines), sometimes also mutated: `resdsl fmt` must not fail on it unless
               it is a syntax error, its output must be a fixed point, and every network must
               give the same IR (or the same kind of error) before and after;
* ``lexer``    a run of up to 100,000 spaces, tabs, continuations, comments, newlines or `;`
               before a character no token matches (or a good one), somewhere in a file:
               a located error or a network, in under :data:`LEXER_BUDGET_S` seconds;
* ``weights``  hostile checkpoints for a small network: sparse, meta, quantized, nested,
               complex, non-tensor and odd-dtype values, wrong shapes, renamed, missing
               and extra keys, wrappers, `--rename` rules (bad, colliding, catastrophic),
               files saved by torch.save or safetensors, truncated, empty, garbage or
               plain pickles: a network or a ResdslError;
* ``config``   hostile YAML for `--config`: huge numbers, infinities, deep nesting, alias
               bombs, Python tags, non-mappings, odd keys and values: a network or a
               ResdslError that points into the config or names it.

Each generator yields a picklable task ``(kind, payload)``; :func:`run_task` runs one
in the fuzzer's worker process and returns (class, detail) with the fuzzer's classes.
"""
from __future__ import annotations

import random
import time
import traceback

LEXER_BUDGET_S = 2.0  # a linear lexer reads 100,000 spaces in well under 0.1 s

# ---------------------------------------------------------------- fmt
_COMMENTS = ["# c", "# no-break\u00a0space\u00a0", "# tab\tinside", "# é ü 漢", "#", "# trailing   ", "# \u2003em"]


def relayout(text: str, rng: random.Random) -> str:
    """`text` with its layout changed in ways the grammar allows (mostly)."""
    import re
    out = []
    depth = 0
    i, n = 0, len(text)
    string = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|`[^`\n]*`|#[^\n]*")
    while i < n:
        m = string.match(text, i)
        if m:  # strings and comments stay as they are
            out.append(m.group())
            i = m.end()
            continue
        c = text[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        if c == " " and rng.random() < 0.3:
            out.append(rng.choice(["  ", "\t", "   ", " \t "]))
        elif c == "," and depth and rng.random() < 0.3:
            out.append("," + rng.choice(["\n", "\n        ", "  # c\n"]))
        elif c == "\n" and rng.random() < 0.15:
            out.append(rng.choice(["  " + rng.choice(_COMMENTS) + "\n", "\n\n", "   \n"]))
        elif text.startswith("as ", i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) \
                and rng.random() < 0.5:
            out.append(rng.choice(["as\n        " if depth else "as \\\n        ", "as \\\n", "as  "]))
            i += 3
            continue
        elif text.startswith("->", i) and rng.random() < 0.2:
            out.append(rng.choice(["->\n       ", "-> \\\n    ", "->"]))
            i += 2
            continue
        else:
            out.append(c)
        i += 1
    text = "".join(out)
    if rng.random() < 0.2:
        text = text.replace("\n", "\r\n")
    if rng.random() < 0.1:
        text = "\ufeff" + text
    return text


def _irs(text: str) -> dict:
    """network -> IR text, or the error's kind (positions differ after fmt), for the first two networks."""
    from .diagnostics import ResdslError
    from .elaborate import Program, elaborate
    from .ir.printer import print_graph
    out = {}
    try:
        names = list(Program.from_source(text, "fuzz.res").networks)[:2]
    except ResdslError as e:
        return {"": f"error[{e.kind}]"}
    for name in names:
        try:
            out[name] = print_graph(elaborate(Program.from_source(text, "fuzz.res"), name))
        except ResdslError as e:
            out[name] = f"error[{e.kind}]"
    return out


def check_fmt(text: str) -> tuple[str, str]:
    from .diagnostics import ResdslError
    from .fmt import format_source
    try:
        out = format_source(text, "fuzz.res")
    except ResdslError as e:
        if e.kind == "internal":  # fmt refused to write: a formatter bug, caught before it did harm
            return "internal", f"fmt: {e.message}"
        return ("located" if e.span is not None else "unlocated"), f"{e.kind}: {e.message[:200]}"
    again = format_source(out, "fuzz.res")
    if again != out:
        return "internal", "fmt is not idempotent:\n" + out[:1500]
    if _irs(out) != _irs(text):
        return "internal", "fmt changed the IR:\n" + out[:1500]
    return "ok", ""


# ---------------------------------------------------------------- lexer
_RUNS = [" ", "\t", " \\\n", "  # c\n", "\n", "\n    ", ";", "\f", " # é\n"]
_BAD = ["$", "\u00a0", "\x00", "@", "!", "~", "^", "&", "\u2028", "é", "\ufeff", "'open", '"open', "`", "\\", "relu"]
_WHERE = ["network N() {{\n    input x: [1, 4]\n    relu{run}{bad}\n}}\n",
          "network N() {{\n    input x: [1, {run}{bad} 4]\n    relu\n}}\n",
          "network N() {{\n    input x: [1, 4]\n    relu as{run}{bad}\n}}\n",
          "{run}{bad}network N() {{\n    input x: [1, 4]\n}}\n",
          "network N() {{\n    input x: [1, 4]\n    (relu{run}{bad})\n}}\n",
          "network N() {{{run}{bad}\n}}\n"]


def lexer_input(rng: random.Random) -> str:
    run = rng.choice(_RUNS)
    n = int(10 ** rng.uniform(0, 5)) // len(run) + 1  # log-uniform up to 100,000 characters
    return rng.choice(_WHERE).format(run=run * n, bad=rng.choice(_BAD))


# ---------------------------------------------------------------- weights
WEIGHTS_NET = ("network n {\n    input x: [N, 3, 8, 8]\n"
               "    conv(4, 3, padding=1) as conv -> bn as bn -> relu -> flatten -> linear(2) as fc\n}\n")
_RULES = [r"^module\.=", r"^backbone\.=", r"conv=cv", r".*=x", r"(a+)+$=x", r"(=x", r"x=\2", "noeq",
          r"^(\w+)\.weight=\1.w", r"bn\.=norm.", r"^=pre.", r"fc=conv", r"\.=", r"$=\g<0>"]


def weights_input(rng: random.Random) -> dict:
    return {"seed": rng.randrange(2 ** 31)}


def _hostile(t, rng, torch):
    kind = rng.randrange(14)
    if kind == 0:
        return t.to_sparse()
    if kind == 1:
        return torch.empty(t.shape, device="meta")
    if kind == 2:
        return torch.quantize_per_tensor(t.float(), 0.1, 0, torch.qint8)
    if kind == 3:
        return t.to(torch.complex64)
    if kind == 4:
        return t.tolist()
    if kind == 5:
        return t.to(rng.choice([torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool, torch.uint8]))
    if kind == 6:
        return torch.full(t.shape, rng.choice([float("nan"), float("inf"), 1e38]))
    if kind == 7:
        return torch.randn(*[s + 1 for s in t.shape]) if t.dim() else torch.randn(2)
    if kind == 8:
        return t.reshape(-1) if t.dim() > 1 else t.reshape(1, -1)
    if kind == 9:
        return torch.nested.nested_tensor([torch.randn(3), torch.randn(2)])
    if kind == 10:
        return t.t() if t.dim() == 2 else t.flip(0) if t.dim() else t
    if kind == 11:
        return rng.choice([None, 3, "x", {"a": 1}])
    if kind == 12 and t.dim():
        return t.to_sparse_csr() if t.dim() == 2 else t
    return torch.tensor(1.0)


def check_weights(spec: dict) -> tuple[str, str]:
    import io
    import os
    import pickle
    import warnings

    import torch

    import resdsl
    from .diagnostics import ResdslError
    from .weights import initial_state
    rng = random.Random(spec["seed"])
    warnings.simplefilter("ignore")
    g = resdsl.graph(WEIGHTS_NET)
    sd: dict = dict(initial_state(g, 0))
    for _ in range(rng.randint(0, 3)):
        k = rng.choice(sorted(sd))
        r = rng.random()
        if r < 0.5:
            try:  # (torch cannot make every odd tensor from every tensor: then this key stays)
                sd[k] = _hostile(sd[k] if isinstance(sd[k], torch.Tensor) else torch.randn(2), rng, torch)
            except Exception:  # noqa: BLE001 - the generator's own failure is not a finding
                pass
        elif r < 0.65:
            del sd[k]
        elif r < 0.8:
            sd[rng.choice(["extra", "a" * rng.choice([10, 40]) + "!", k + "_", "module." + k])] = torch.randn(2)
        else:
            sd = {rng.choice(["module.", "backbone.", "_orig_mod.", ""]) + kk: v for kk, v in sd.items()}
    obj = sd
    r = rng.random()
    if r < 0.15:
        obj = {rng.choice(["state_dict", "model", "model_state_dict", "module"]): sd, "epoch": 3}
    elif r < 0.2:
        obj = rng.choice([list(sd.values()), {1: torch.randn(2)}, None, 3, torch.nn.Linear(2, 2)])
    rules = [rng.choice(_RULES) for _ in range(rng.choice([0, 0, 1, 2]))]
    how = rng.random()
    try:
        try:
            if how < 0.35:
                resdsl.build(WEIGHTS_NET, weights=obj, rename=rules)
                return "ok", ""
            path = os.path.abspath("w.pt")
            if how < 0.7:
                buf = io.BytesIO()
                try:
                    torch.save(obj, buf)
                except Exception:  # noqa: BLE001 - what torch cannot save is not our input
                    return "ok", "unsavable"
                data = buf.getvalue()
            elif how < 0.8 and isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
                from safetensors.torch import save
                try:
                    data = save({k: v.contiguous() for k, v in obj.items()})
                except Exception:  # noqa: BLE001
                    return "ok", "unsavable"
                path = os.path.abspath("w.safetensors")
            else:
                data = rng.choice([b"", b"\0" * 64, b"PK\x03\x04", pickle.dumps([1, 2]), bytes(range(256)),
                                   b"\x80\x02}q\x00."])
            if rng.random() < 0.2 and data:
                data = data[:rng.randrange(len(data))]
            with open(path, "wb") as f:
                f.write(data)
            resdsl.build(WEIGHTS_NET, weights=path, rename=rules)
        except ResdslError as e:  # a checkpoint has no line:col; the error names the file or the key
            return "located", f"{e.kind}: {e.message[:200]}"
    except MemoryError:
        return "memory", "MemoryError"
    except Exception as e:  # noqa: BLE001
        return "internal", f"{type(e).__name__}: {e}"[:300] + "\n" + traceback.format_exc(limit=-6)
    return "ok", ""


# ---------------------------------------------------------------- config
CONFIG_NET = ("network n(c: int = 4, k: int = 1, p: float = 0.0, depth: int = 1) {\n"
              "    input x: [N, 3, 8, 8]\n    repeat depth { conv(c, k) -> dropout(p) }\n}\n")
_VALUES = ["9" * 5000, "9" * 4301, "-" + "1" * 4400, "0x" + "f" * 5000, "1e400", ".inf", "-.inf", ".nan", "1_000",
           "2", "0", "-1", "true", "null", "~", "[1, 2]", "{a: 1}", '"[3, 4, 6, 3]"', '"Bottleneck"', '"1/0"',
           '"2**10000"', '"' + "x" * 20000 + '"', "!!python/object/apply:os.system ['echo hi']", "!!binary aGk=",
           "2001-12-14", "&a [*a]", "'c'", "0o777", "1.5", '"relu"', "!!float 1", "!!int 3"]
_KEYS = ["c", "k", "p", "depth", "missing", "1", "true", "null", "c c", "[c]", "? complex"]


def config_input(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.1:  # an alias bomb
        return "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
            f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(rng.randint(1, 8)))
    if r < 0.15:  # deep nesting
        d = rng.choice([50, 200, 5000])
        return "c: " + "[" * d + "1" + "]" * d + "\n"
    if r < 0.2:
        return rng.choice(["", "---\n", "- 1\n- 2\n", "just text\n", "c: [\n", "\x00\x01", "c: 1\nc: 2\n",
                           "%YAML 1.1\n---\nc: 1\n", "c: *undefined\n"])
    return "".join(f"{rng.choice(_KEYS)}: {rng.choice(_VALUES)}\n" for _ in range(rng.randint(1, 4)))


def check_config(text: str) -> tuple[str, str]:
    import os

    import resdsl
    from .diagnostics import ResdslError
    path = os.path.abspath("c.yaml")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    try:
        try:
            resdsl.graph(CONFIG_NET, config=path)
        except ResdslError as e:
            if e.span is None and path not in e.message:
                return "unlocated", str(e)[:300]
            return "located", f"{e.kind}: {e.message[:200]}"
    except MemoryError:
        return "memory", "MemoryError"
    except RecursionError:
        return "internal", "RecursionError\n" + traceback.format_exc(limit=-8)
    except Exception as e:  # noqa: BLE001
        return "internal", f"{type(e).__name__}: {e}"[:300] + "\n" + traceback.format_exc(limit=-6)
    return "ok", ""


# ---------------------------------------------------------------- dispatch
def run_task(kind: str, payload) -> tuple[str, str]:
    """(class, detail) of one task, in this process."""
    if kind == "fmt":
        try:
            return check_fmt(payload)
        except MemoryError:
            return "memory", "MemoryError"
        except Exception as e:  # noqa: BLE001
            return "internal", f"{type(e).__name__}: {e}"[:300] + "\n" + traceback.format_exc(limit=-6)
    if kind == "lexer":
        from .fuzz import classify
        t = time.process_time()
        cls, detail = classify(payload)
        dt = time.process_time() - t
        if dt > LEXER_BUDGET_S and cls in ("ok", "located"):
            return "hang", f"took {dt:.1f} s of CPU (budget {LEXER_BUDGET_S} s): not linear"
        return cls, detail
    if kind == "weights":
        return check_weights(payload)
    if kind == "config":
        return check_config(payload)
    raise ValueError(f"unknown fuzz task {kind}")


def describe(item) -> str:
    """A task as text, to show or save."""
    if isinstance(item, str):
        return item
    kind, payload = item
    if kind == "weights":
        return f"# weights recipe: resdsl.fuzz_targets.check_weights({payload!r})\n" + WEIGHTS_NET
    if kind == "config":
        return f"# --config for:\n{CONFIG_NET}\n# the YAML:\n{payload}"
    return payload
