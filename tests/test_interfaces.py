"""The command line and the API do what their help and the docs say: FILE arguments that
are file names, `--depth all` in Python, `check` of a file with several networks, one kind
of status line for every file written, inputs checked before torch is imported."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import resdsl
from resdsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
NET = "network {name}(c: int = 4) {{\n    input x: [N, 3, H, W]\n    conv(c, 3, padding=1) -> relu\n}}\n"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "resdsl", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1"))


# ------------------------------------------------------------------ FILE arguments
@pytest.mark.parametrize("fname", ["block.res", "network.res", "import.res", "let.res", "fn.res", "from.res"])
def test_a_file_named_after_a_keyword_is_the_file(tmp_path, fname, monkeypatch, capsys):
    (tmp_path / fname).write_text(NET.format(name="kw"))
    monkeypatch.chdir(tmp_path)
    assert resdsl.graph(fname).name == "kw"  # relative, as docs/optimizer.md runs it
    assert resdsl.graph(str(tmp_path / fname)).name == "kw"
    assert main(["ir", fname]) == 0
    assert capsys.readouterr().out.startswith("network kw(")


def test_a_missing_file_named_after_a_keyword_cannot_be_read(tmp_path):
    r = cli("check", "block.res", cwd=tmp_path)
    assert r.returncode == 1 and "cannot read block.res" in r.stderr and "syntax" not in r.stderr


def test_one_line_source_is_still_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = resdsl.graph("import resnet\nnetwork tiny = ResNet(BasicBlock, [1, 1, 1, 1])")
    assert g.name == "tiny"
    with pytest.raises(resdsl.ResdslError) as e:  # one line of source: a syntax error, not "no such file"
        resdsl.graph("network tiny = ResNet(")
    assert e.value.kind == "syntax"
    assert resdsl.graph("import resnet;network t = ResNet(BasicBlock, [1, 1, 1, 1])").name == "t"


# ------------------------------------------------------------------ depth in Python as on the command line
def test_api_depth_all_is_every_op():
    every = resdsl.render("resnet18", format="dot", depth=None)
    fig = resdsl.render("resnet18", format="dot", depth="all")
    assert fig.data == every.data and fig.info["depth"] is None
    assert str(resdsl.summary("resnet18", depth="all")) == str(resdsl.summary("resnet18", depth=None))
    assert str(resdsl.summary("resnet18", depth="all")) != str(resdsl.summary("resnet18"))


@pytest.mark.parametrize("bad", [-1, "deep", 1.5, True])
def test_api_bad_depth_is_a_usage_error(bad):
    for draw in (resdsl.render, resdsl.summary):
        with pytest.raises(resdsl.ResdslError) as e:
            draw("resnet18", depth=bad)
        assert e.value.kind == "usage" and "depth" in e.value.message and "all" in e.value.help


# ------------------------------------------------------------------ check: one line per network
def test_check_of_a_file_with_several_networks_checks_each(capsys):
    rc = main(["check", str(ROOT / "stdlib" / "resnet.res")])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    names = [line.split(":")[0] for line in out]
    assert names[0] == "ResNet(block, layers)" and "generic" in out[0]  # no defaults: listed, not elaborated
    assert names[1:4] == ["resnet18", "resnet34", "resnet50"] and len(out) == 10
    assert "resnet50: (x: [N, 3, H, W]) -> [N, 1000]; 25,557,032 parameters" in out[3]
    # --set reaches every network; set, a generic network is checked too
    rc = main(["check", str(ROOT / "stdlib" / "resnet.res"), "--set", "classes=10", "--set", "layers=[1, 1, 1, 1]",
               "--set", "block=BasicBlock"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out) == 10 and all("-> [N, 10]" in line for line in out)


def test_check_of_several_networks_reports_each_failure_and_goes_on(tmp_path, capsys):
    bad = NET.format(name="b").replace("padding=1", "paddin=1")
    p = tmp_path / "two.res"
    p.write_text(NET.format(name="a") + "\n" + bad + "\n" + NET.format(name="c"))
    rc = main(["check", str(p)])
    cap = capsys.readouterr()
    assert rc == 1 and [line.split(":")[0] for line in cap.out.splitlines()] == ["a", "c"]
    assert "error[type]" in cap.err and "paddin" in cap.err
    r = subprocess.run([sys.executable, "-m", "resdsl", "check", "-"], input=p.read_text(), capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 1 and r.stdout.count(" parameters") == 2 and "<stdin>" in r.stderr


# ------------------------------------------------------------------ status lines
def test_every_command_that_writes_a_file_says_so_the_same_way(tmp_path, monkeypatch, capsys):
    src = tmp_path / "n.res"
    src.write_text(NET.format(name="n"))
    runs = {
        ("n.py",): ["compile", str(src), "-o", "n.py"],
        ("o2.pt", "o2.py"): ["compile", str(src), "-O2", "-o", "o2.py"],
        ("n.onnx",): ["compile", str(src), "-t", "onnx", "-o", "n.onnx"],
        ("n.svg",): ["render", str(src), "-o", "n.svg"],
        ("n.txt",): ["summary", str(src), "-o", "n.txt"],
        ("n.ir",): ["ir", str(src), "-o", "n.ir"],
    }
    monkeypatch.chdir(tmp_path)
    for files, args in runs.items():
        assert main(args) == 0
        cap = capsys.readouterr()
        lines = cap.err.splitlines()
        assert [re.match(r"wrote (\S+): n\b", line).group(1) for line in lines] == list(files), (args, cap.err)
        assert all((tmp_path / f).is_file() for f in files)
        assert cap.out == ""


# ------------------------------------------------------------------ start-up
def test_compile_reads_its_input_before_importing_torch(tmp_path):
    code = ("import sys; from resdsl.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, sorted(m for m in ('torch', 'onnx', 'numpy') if m in sys.modules))")
    for target in ("torch", "onnx"):
        r = subprocess.run([sys.executable, "-c", code, "compile", "missing.res", "-t", target, "-o", "x.out"],
                           capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert "cannot read missing.res" in r.stderr and r.stdout.split() == ["1", "[]"], (target, r.stdout)
        r = subprocess.run([sys.executable, "-c", code, "compile", "resnet18", "-t", target, "-o", "no/x.out"],
                           capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert "folder no does not exist" in r.stderr and r.stdout.split() == ["1", "[]"], (target, r.stdout)
