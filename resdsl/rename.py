"""`--rename REGEX=REPL` (and `rename=` in the API): checkpoint key rewrites, safely.

* Each rule is Python's `re.sub(REGEX, REPL, key)`, applied to every key, rules in order.
* Two keys that a rule maps onto one name are an error naming both (the later used to win
  silently, so a tensor was lost without a word).
* A pattern cannot hang resdsl: Python's `re` has no timeout and backtracks exponentially on
  patterns such as `(a+)+$`, so the rules run in a child Python process (`python -I -S`, the
  standard library's `re`, exactly the semantics the docs promise) that is killed after
  :data:`TIMEOUT_S` seconds; the error names the rule that was running. Only key names cross
  over, never tensors, so the child costs a few tens of milliseconds.
"""
from __future__ import annotations

import json
import subprocess
import sys

from .diagnostics import ResdslError

TIMEOUT_S = 10.0  # for all rules together; a checkpoint of 100,000 keys and plain rules takes well under 1 s

_HELP = r"e.g. --rename '^backbone\.=' or --rename 'blocks\.(\d+)=layer\1'"

# runs in the child: rules and keys on stdin (JSON), per rule the new keys on stdout (JSON);
# before each rule its index on stderr, so that after a timeout the parent can name it
_CHILD = r"""
import json, re, sys
rules, keys = json.loads(sys.stdin.buffer.read())
out = []
for i, (pat, repl) in enumerate(rules):
    sys.stderr.write("rule %d\n" % i)
    sys.stderr.flush()
    try:
        rx = re.compile(pat)
        keys = [rx.sub(repl, k) for k in keys]
    except (re.error, IndexError, ValueError, OverflowError, RecursionError) as e:
        sys.stdout.write(json.dumps({"error": [i, str(e)]}))
        sys.exit(0)
    out.append(keys)
sys.stdout.write(json.dumps({"keys": out}))
"""


def split_rules(rules) -> list[tuple[str, str, str]]:
    """(rule text, regex, replacement) of each `REGEX=REPL` rule."""
    if isinstance(rules, str):  # one rule given as a string (the API)
        rules = [rules]
    out = []
    for rule in rules or ():
        if not isinstance(rule, str) or "=" not in rule:
            raise ResdslError("usage", f"--rename {rule!r} is not REGEX=REPL", help=_HELP)
        pat, repl = rule.split("=", 1)
        out.append((rule, pat, repl))
    return out


def rename_keys(keys: list[str], rules, timeout: float | None = None) -> list[str]:
    """The keys after the rules, in the same order. Raises ResdslError (usage) for a bad
    rule, a rule that maps two keys onto one name, or rules that run past the time limit."""
    parsed = split_rules(rules)
    if not parsed or not keys:
        return list(keys)
    limit = TIMEOUT_S if timeout is None else timeout
    payload = json.dumps([[[p, r] for _, p, r in parsed], list(keys)])
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise ResdslError("io", f"cannot run the --rename rules: cannot start Python ({e.strerror})") from None
    try:
        out, err = proc.communicate(payload.encode(), timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        running = [line for line in err.decode(errors="replace").splitlines() if line.startswith("rule ")]
        i = int(running[-1].split()[1]) if running else 0
        longest = max(len(k) for k in keys)
        raise ResdslError("usage", f"--rename {parsed[i][0]!r} ran for over {limit:g} s on the checkpoint's "
                                   f"{len(keys):,} key{'s' if len(keys) != 1 else ''} (the longest has {longest:,} characters) and was stopped",
                          help="the pattern backtracks catastrophically: a quantifier inside a quantified group, "
                               "such as (a+)+ or (a|a)*, takes time exponential in the key length; write it "
                               "without the nesting (a+ instead of (a+)+)") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        res = json.loads(out.decode())
    except ValueError:
        tail = err.decode(errors="replace").strip().splitlines()
        why = tail[-1] if tail else f"exit status {proc.returncode}"
        raise ResdslError("usage", f"the --rename rules failed: {why}", help=_HELP) from None
    if "error" in res:
        i, msg = res["error"]
        raise ResdslError("usage", f"--rename {parsed[i][0]!r}: {msg}", help=_HELP)
    current = list(keys)
    for (rule, _, _), new in zip(parsed, res["keys"]):
        _check_collisions(rule, current, new, keys)
        current = new
    return current


def _check_collisions(rule: str, before: list[str], after: list[str], original: list[str]) -> None:
    first: dict[str, int] = {}
    for k, name in enumerate(after):
        j = first.setdefault(name, k)
        if j != k:
            a, b = original[j], original[k]
            shown = f"`{a}` and `{b}`" if (a, b) == (before[j], before[k]) else \
                f"`{a}` (now `{before[j]}`) and `{b}` (now `{before[k]}`)"
            raise ResdslError("usage", f"--rename {rule!r} maps two keys onto `{name}`: {shown}; "
                                       "one tensor would silently replace the other",
                              help="make the pattern more specific (anchor it with ^ and $), so each key gets "
                                   "its own name")
