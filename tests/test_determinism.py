"""Same input, same bytes: every output format, written by two separate processes (with
different hash seeds, a second apart) must be byte-identical. PDF included: graphviz's
cairo stamps the current time, which resdsl replaces by SOURCE_DATE_EPOCH (or 1970)."""
import os
import shutil
import subprocess
import sys
import time

import pytest

EXAMPLE = "examples/cifar_resnet.res"

# (name, CLI arguments with {out}, files written: suffixes after the base name)
COMMANDS = [
    ("torch-py", ["compile", EXAMPLE, "-t", "torch", "-o", "{out}.py"], [".py"]),
    ("torch-O2", ["compile", EXAMPLE, "-t", "torch", "-O2", "--seed", "0", "-o", "{out}.py"], [".py", ".pt"]),
    ("onnx", ["compile", EXAMPLE, "-t", "onnx", "--seed", "0", "-o", "{out}.onnx"], [".onnx"]),
    ("onnx-no-seed", ["compile", EXAMPLE, "-t", "onnx", "-o", "{out}.onnx"], [".onnx"]),
    ("torch-O2-no-seed", ["compile", EXAMPLE, "-t", "torch", "-O2", "-o", "{out}.py"], [".py", ".pt"]),
    ("onnx-O2", ["compile", EXAMPLE, "-t", "onnx", "-O2", "--seed", "0", "-o", "{out}.onnx"], [".onnx"]),
    ("ir", ["ir", EXAMPLE], []),
    ("ir-O2", ["ir", EXAMPLE, "-O2"], []),
    ("summary-text", ["summary", EXAMPLE, "-o", "{out}.txt"], [".txt"]),
    ("summary-markdown", ["summary", EXAMPLE, "-f", "markdown", "-o", "{out}.md"], [".md"]),
    ("summary-latex", ["summary", EXAMPLE, "-f", "latex", "-o", "{out}.tex"], [".tex"]),
    ("summary-csv", ["summary", EXAMPLE, "-f", "csv", "-o", "{out}.csv"], [".csv"]),
    ("render-dot", ["render", EXAMPLE, "-o", "{out}.dot"], [".dot"]),
    ("render-tex", ["render", EXAMPLE, "-o", "{out}.tex"], [".tex"]),
    ("render-svg", ["render", EXAMPLE, "-o", "{out}.svg"], [".svg"]),
    ("render-pdf", ["render", EXAMPLE, "-o", "{out}.pdf"], [".pdf"]),
    ("render-png", ["render", EXAMPLE, "-o", "{out}.png"], [".png"]),
]
NEEDS_DOT = {"render-svg", "render-pdf", "render-png", "render-tex"}


DRIVER = """
import contextlib, io, json, sys
from resdsl.cli import main
outs = {}
for name, args in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    outs[name] = [rc, buf.getvalue()]
print(json.dumps(outs))
"""


def _run_all(root, folder, hashseed, commands, env_extra=None):
    """Run every command in one fresh process (imports once), writing under `folder`."""
    import json
    env = dict(os.environ, PYTHONHASHSEED=str(hashseed))
    env.pop("SOURCE_DATE_EPOCH", None)
    env.update(env_extra or {})
    folder.mkdir()
    todo = [(name, [a.format(out=str(folder / name)) for a in args]) for name, args, _ in commands]
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(todo)], cwd=root, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_write_the_same_bytes(root, tmp_path):
    commands = [c for c in COMMANDS if c[0] not in NEEDS_DOT or shutil.which("dot")]
    runs = []
    for k, seed in enumerate((1, 2)):
        folder = tmp_path / f"run{k}"
        runs.append((folder, _run_all(root, folder, seed, commands)))
        if k == 0:
            time.sleep(1.1)  # a timestamp would now differ
    (fa, oa), (fb, ob) = runs
    for name, _, suffixes in commands:
        assert oa[name][0] == 0 and ob[name][0] == 0, name
        assert oa[name][1].replace(str(fa), "OUT") == ob[name][1].replace(str(fb), "OUT"), f"{name}: stdout differs"
        for sfx in suffixes:
            a, b = (fa / (name + sfx)).read_bytes(), (fb / (name + sfx)).read_bytes()
            assert a, f"{name}{sfx} is empty"
            assert a == b, f"{name}{sfx}: the two processes wrote different bytes"
    assert {c[0] for c in commands} >= {"torch-py", "onnx", "ir", "summary-text", "render-dot"}


def test_pdf_date_follows_source_date_epoch(root, tmp_path):
    assert shutil.which("dot"), "graphviz's dot is needed (make setup installs it)"
    cmd = [c for c in COMMANDS if c[0] == "render-pdf"]
    _run_all(root, tmp_path / "a", 0, cmd, {"SOURCE_DATE_EPOCH": "1700000000"})
    data = (tmp_path / "a" / "render-pdf.pdf").read_bytes()
    assert b"/CreationDate (D:20231114221320" in data
    assert data.startswith(b"%PDF")
