#!/usr/bin/env python3
"""Docs that run: every shell command and Python block of README.md and docs/*.md, in order,
from an empty folder, against the resdsl of the Python that runs this script (in CI: the
wheel installed alone into a fresh virtual environment, .ci/wheel_test.sh).

How a fenced block is treated, by its language:

* no language, ``sh``, ``bash``, ``shell``: shell commands, run by ``bash -e -o pipefail``
  (a block holds commands only: output goes in a ``text`` block, and a line starting with
  ``$ `` is refused);
* ``python``: run in one interpreter per doc, so a block sees the names of the blocks above it;
* anything else (``text``, ``res``, ``latex``, ``yaml``, ...): shown, not run.

An HTML comment on the last non-blank line before a fence changes that, visible in the
source of the doc and invisible on its rendered page:

* ``<!-- not run: REASON -->``: the block is not run; REASON says why (it needs a GPU, a
  data set, a checkout, it trains for minutes...). A reason is required;
* ``<!-- file: NAME -->``: the block is the file NAME (a ``.res`` network, a config, a
  LaTeX paper), written into the folder at its place in the doc; the prose around it should
  say so ("save it as NAME").

Each doc runs in a folder of its own that starts empty but for a copy of the checkout's
``examples/`` (the docs' ``examples/...`` paths; it holds no package source), with HOME and
the caches inside it. PATH starts with this interpreter's folder, so ``resdsl``, ``python``
and ``pip`` are the environment under test; PYTHONPATH is cleared.

    python .ci/docs_run.py [--work DIR] [--timeout S] [--installed] [DOC.md ...]   # default: README.md docs/*.md
    python .ci/docs_run.py --list                                    # what would run, nothing run

Exit status 1 if a block fails (the doc stops there; the other docs go on) or a marker is
malformed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL = {"", "sh", "bash", "shell"}
PYTHON = {"python", "py", "python3"}
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*(not run|file)\s*:(.*?)-->\s*$")
LOOSE_MARKER = re.compile(r"^\s*<!--\s*(not[ -]?run|file|skip|no[ -]?run)\b", re.I)


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    action: str  # "sh", "python", "file", "skip" (marked not run), "show" (not code to run)
    arg: str = ""  # the file name, or the reason it is not run

    @property
    def where(self) -> str:
        try:
            name = self.doc.relative_to(ROOT)
        except ValueError:
            name = self.doc
        return f"{name}:{self.line}"


class DocError(Exception):
    """A malformed doc: a marker without a reason, a shell block holding output, ..."""


def parse(doc: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a markdown file, each with what to do with it."""
    lines = (doc.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        start, body = i, []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and set(lines[i].strip()) == {fence[0]}):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i].lstrip())
            i += 1
        if i >= len(lines):
            raise DocError(f"{doc}:{start + 1}: a code block that is never closed")
        i += 1
        blocks.append(_classify(doc, start, lines, lang, "\n".join(body) + "\n"))
    return blocks


def _classify(doc, start, lines, lang, body) -> Block:
    prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
    block = Block(doc, start + 1, lang, body, "sh" if lang in SHELL else "python" if lang in PYTHON else "show")
    m = MARKER.match(prev)
    if m is None:
        if LOOSE_MARKER.match(prev):
            raise DocError(f"{block.where}: write the marker as `<!-- not run: REASON -->` or `<!-- file: NAME -->`, "
                           f"not {prev.strip()!r}")
        if block.action == "sh":
            for k, ln in enumerate(body.splitlines()):
                if ln.startswith("$ "):
                    raise DocError(f"{doc}:{start + 2 + k}: a shell block holds commands, not a session: drop the "
                                   "`$ ` prompt, or put the session in a ```text block")
        return block
    kind, arg = m.group(1), m.group(2).strip()
    if kind == "not run":
        if not arg:
            raise DocError(f"{block.where}: `<!-- not run: -->` needs the reason the block cannot run")
        if block.action == "show":
            raise DocError(f"{block.where}: a `{lang}` block is not run anyway; drop the `not run` marker")
        block.action, block.arg = "skip", arg
    else:
        p = Path(arg)
        if not arg or p.is_absolute() or ".." in p.parts:
            raise DocError(f"{block.where}: `<!-- file: NAME -->` needs a relative file name inside the folder")
        block.action, block.arg = "file", arg
    return block


# ------------------------------------------------------------------ running
@contextlib.contextmanager
def _output_to(log: Path):
    """Standard output and error (file descriptors 1 and 2, so subprocesses and C code too)
    go to `log` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    text = open(log, "a", buffering=1, encoding="utf-8", errors="replace")  # print() whatever sys.stdout was
    try:
        with text, contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextlib.contextmanager
def _time_limit(seconds: int, where: str):
    def expire(*_):
        raise TimeoutError(f"{where}: still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class DocRun:
    """One doc: its folder, its environment, its Python namespace."""

    def __init__(self, doc: Path, work: Path, timeout: int):
        self.doc, self.timeout = doc, timeout
        self.dir = work / re.sub(r"[^A-Za-z0-9_.-]", "_", str(doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc.name))
        self.dir.mkdir(parents=True)
        self.logs = work / "logs"
        self.logs.mkdir(exist_ok=True)
        shutil.copytree(ROOT / "examples", self.dir / "examples", ignore=shutil.ignore_patterns("__pycache__"))
        home = work / "home" / self.dir.name
        home.mkdir(parents=True)
        bindir = os.path.dirname(sys.executable)
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        self.env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), NO_COLOR="1", PYTHONUNBUFFERED="1",
                        PATH=bindir + os.pathsep + os.environ.get("PATH", ""), MPLBACKEND="Agg")
        self.ns = {"__name__": "__main__"}

    def log(self, block: Block) -> Path:
        return self.logs / f"{self.dir.name}-{block.line}.log"

    def run(self, block: Block) -> None:
        if block.action == "file":
            target = self.dir / block.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
        elif block.action == "sh":
            with open(self.log(block), "wb") as out:
                r = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", block.text],
                                   cwd=self.dir, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=self.timeout)
            if r.returncode:
                raise RuntimeError(f"exit status {r.returncode}")
        elif block.action == "python":
            self._python(block)

    def _python(self, block: Block) -> None:
        code = compile(block.text, block.where, "exec")
        old_env, old_cwd, old_path = dict(os.environ), os.getcwd(), list(sys.path)
        os.environ.clear()
        os.environ.update(self.env)
        os.chdir(self.dir)
        sys.path.insert(0, str(self.dir))  # as `python` in that folder: its files import
        try:
            with _output_to(self.log(block)), _time_limit(self.timeout, block.where):
                exec(code, self.ns)  # the doc's own example, as a reader runs it
        finally:
            sys.path[:] = old_path
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)


def run_docs(docs, work: Path, timeout: int, out=sys.stdout) -> int:
    failed, totals = [], {"sh": 0, "python": 0, "file": 0, "skip": 0}
    for doc in docs:
        try:
            blocks = parse(doc)
        except DocError as e:
            print(f"FAIL {e}", file=out)
            failed.append(str(e))
            continue
        todo = [b for b in blocks if b.action != "show"]
        if not todo:
            continue
        runner = DocRun(doc, work, timeout)
        t0 = time.monotonic()
        for b in todo:
            totals[b.action] += 1
            if b.action == "skip":
                print(f"  skip {b.where}: not run: {b.arg}", file=out)
                continue
            t1 = time.monotonic()
            try:
                runner.run(b)
            except BaseException as e:  # noqa: BLE001 - a doc block may raise anything, SystemExit included
                if isinstance(e, KeyboardInterrupt):
                    raise
                failed.append(b.where)
                tail = runner.log(b).read_text(errors="replace")[-4000:] if runner.log(b).exists() else ""
                print(f"FAIL {b.where} ({b.action}): {type(e).__name__}: {e}\n--- the block:\n{b.text}"
                      f"--- its output (last 4000 characters):\n{tail}", file=out)
                break
            if b.action != "file":
                print(f"  ok   {b.where} ({b.action}, {time.monotonic() - t1:.1f} s)", file=out)
        print(f"{doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}: {time.monotonic() - t0:.0f} s",
              file=out)
        out.flush()
    print(f"docs: {totals['sh']} shell and {totals['python']} Python blocks, {totals['file']} files written, "
          f"{totals['skip']} marked not run; {len(failed)} failed" + (": " + ", ".join(failed) if failed else ""),
          file=out)
    return 1 if failed else 0


def default_docs() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("docs", nargs="*", type=Path, help="markdown files (default: README.md docs/*.md)")
    ap.add_argument("--work", type=Path, help="an empty or missing folder to run in (default: a temporary one)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds a block may take (default 900)")
    ap.add_argument("--list", action="store_true", help="print each block and what would be done; run nothing")
    ap.add_argument("--installed", action="store_true",
                    help="fail unless resdsl is an installed copy (a wheel), not this checkout's source")
    args = ap.parse_args(argv)
    docs = [d.resolve() for d in args.docs] or default_docs()
    if args.list:
        rc = 0
        for doc in docs:
            try:
                for b in parse(doc):
                    print(f"{b.where:28} {b.lang or '(none)':8} {b.action:6} {b.arg}")
            except DocError as e:
                print(f"FAIL {e}")
                rc = 1
        return rc
    import resdsl
    where = Path(resdsl.__file__).resolve()
    print(f"docs run against resdsl {resdsl.__version__} from {where.parent} ({sys.executable})")
    if args.installed and where.is_relative_to(ROOT):
        print(f"FAIL resdsl is imported from the checkout ({where}), not from an installed wheel")
        return 1
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="resdsl-docs.") as tmp:
            return run_docs(docs, Path(tmp), args.timeout)
    args.work.mkdir(parents=True, exist_ok=True)
    if any(args.work.iterdir()):
        ap.error(f"{args.work} is not empty")
    return run_docs(docs, args.work.resolve(), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
