"""Standard output that fails (a full disk, a closed stream, a reader that left) and Ctrl-C
while the command starts: a clean `error[io]` or a quiet exit, never a traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NET = str(ROOT / "examples" / "cifar_resnet.res")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CASES = {
    "ir": ["ir", NET],
    "check": ["check", NET],
    "list": ["list", "--names"],
    "help": ["--help"],
    "summary": ["summary", NET],
    "render-dot": ["render", NET, "-f", "dot", "-o", "-"],
    "compile": ["compile", NET, "-t", "torch", "-o", "-"],
    "completion": ["completion", "bash"],
}


def _sh(cmd: str, **kw):
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300, **kw)


def _resdsl(args) -> str:
    return " ".join([sys.executable, "-m", "resdsl", *(f"'{a}'" for a in args)])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", list(CASES.values()), ids=list(CASES))
def test_a_full_standard_output_is_error_io(args):
    p = _sh(_resdsl(args) + " > /dev/full")
    assert p.returncode == 1, p.stderr
    assert "error[io]: cannot write to standard output: No space left on device" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [CASES["ir"], CASES["check"], CASES["list"]], ids=["ir", "check", "list"])
def test_a_closed_standard_output_is_error_io(args):
    p = _sh(_resdsl(args) + " >&-")
    assert p.returncode == 1 and "error[io]: cannot write to standard output: it is closed" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_closed_standard_error_and_full_output_exit_1_without_a_word():
    p = _sh(_resdsl(CASES["check"]) + " 2>&- > /dev/full")
    assert p.returncode == 1 and p.stderr == "" and p.stdout == ""


@pytest.mark.parametrize("args", [CASES["ir"], CASES["list"], CASES["summary"]], ids=["ir", "list", "summary"])
def test_a_reader_that_left_is_not_an_error(args):
    proc = subprocess.Popen([sys.executable, "-m", "resdsl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV, cwd=ROOT)
    proc.stdout.close()  # `| head -0`: the reader is gone before the first write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0 and err == "", err


def test_fmt_to_a_full_standard_output():
    p = _sh(f"{sys.executable} -m resdsl fmt - < '{NET}' > /dev/full")
    assert p.returncode == 1 and "error[io]" in p.stderr and "Traceback" not in p.stderr


# the child says when the interpreter is up (a signal before that is Python's own start, not ours), then runs
# `python -m resdsl` as runpy does
_CHILD = ("import sys, runpy; sys.stderr.write('up\\n'); sys.stderr.flush(); "
          "sys.argv = ['resdsl', 'summary', 'resnet50']; runpy.run_module('resdsl', run_name='__main__')")


@pytest.mark.parametrize("delay", [0.03, 0.1, 0.2, 0.4, 0.8])
def test_ctrl_c_while_the_command_starts_exits_130_quietly(delay):
    # `summary` imports the parser, the elaborator and the backends: Ctrl-C lands somewhere in there
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV, cwd=ROOT)
    assert proc.stderr.readline() == b"up\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()
