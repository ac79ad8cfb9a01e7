"""Command-line habits: --version, python -m resdsl, networks by name, stdin and
stdout, exit statuses, several files, colour, completion, help everywhere."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import resdsl
from resdsl.cli import make_parser

from conftest import ROOT, run_cli

CIFAR = str(ROOT / "examples" / "cifar_resnet.res")
SMALL = "network n(c: int = 4) {\n    input x: [N, 3, H, W]\n    conv(c, 3, padding=1) -> relu\n}\n"


def cli(*args, stdin=None, env=None, cwd=None):
    return run_cli(*args, module="resdsl", input=stdin, env=env, cwd=cwd)


def test_version_both_entry_points():
    for cmd in ([sys.executable, "-m", "resdsl", "--version"], [sys.executable, "-m", "resdsl.cli", "--version"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == f"resdsl {resdsl.__version__}"


def test_network_by_name_matches_torchvision(tmp_path):
    import torchvision
    r = cli("check", "resnet50", cwd=tmp_path)  # from a folder without the file
    n = sum(p.numel() for p in torchvision.models.resnet50().parameters())
    assert r.returncode == 0 and f"{n:,} parameters" in r.stdout, r.stderr
    r = cli("summary", "resnet18", "--input-shape", "1,3,64,64", cwd=tmp_path)
    n18 = sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert r.returncode == 0 and f"{n18:,}" in r.stdout


def test_neither_file_name_nor_source_is_a_clear_usage_error(tmp_path):
    r = cli("check", "resnet5O", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error[usage]" in r.stderr and "neither a file, a stdlib network nor .res source" in r.stderr
    assert "`resnet50`" in r.stderr and "resdsl list" in r.stderr
    with pytest.raises(resdsl.ResdslError, match="neither a file"):
        resdsl.graph("resnet5O")


def test_name_and_conflicting_network_is_a_usage_error():
    r = cli("check", "resnet50", "-n", "resnet18")
    assert r.returncode == 2 and "names network resnet50" in r.stderr


def test_stdin_and_several_files_and_input_shape(tmp_path):
    r = cli("check", "-", stdin=SMALL)
    assert r.returncode == 0 and "n: (x: [N, 3, H, W]) -> [N, 4, H, W]; 112 parameters" in r.stdout
    (tmp_path / "a.res").write_text(SMALL)
    r = cli("check", str(tmp_path / "a.res"), CIFAR, "--input-shape", "2,3,32,32")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2
    assert "(x: [2, 3, 32, 32]) -> [2, 4, 32, 32]" in lines[0] and "-> [2, 10]" in lines[1]
    # one bad file among good ones: the others are still checked, the status says it failed
    (tmp_path / "bad.res").write_text("network b() {\n    input x: [N, 3, H, W]\n    conv(4, 3, paddin=1)\n}\n")
    r = cli("check", str(tmp_path / "bad.res"), str(tmp_path / "a.res"))
    assert r.returncode == 1 and "error[type]" in r.stderr and "112 parameters" in r.stdout


def test_output_to_stdout_status_to_stderr(tmp_path):
    r = cli("compile", CIFAR, "-t", "torch", "-o", "-")
    assert r.returncode == 0 and "wrote" in r.stderr and "wrote" not in r.stdout
    ns = {}
    exec(compile(r.stdout, "resnet20.py", "exec"), ns)  # the .py itself, complete, on stdout
    m = ns["resnet20"](seed=0).eval()
    ref = resdsl.build(CIFAR, seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), ref(x))
    r = cli("render", CIFAR, "-f", "dot", "-o", "-")
    assert r.returncode == 0 and r.stdout.startswith("digraph")
    r = cli("summary", CIFAR, "-f", "csv", "-o", "-")
    assert r.returncode == 0 and r.stdout.startswith("level,name,kind")


def test_exit_status_two_for_usage_one_for_input(tmp_path):
    assert cli("check").returncode == 2                       # argparse: missing FILE
    assert cli("compile", CIFAR, "-t", "tf", "-o", "x").returncode == 2
    assert cli("check", CIFAR, "--set", "nokey").returncode == 2
    (tmp_path / "bad.res").write_text("network b() {\n    input x: [N, 3, H, W]\n    conv(4, 3, paddin=1)\n}\n")
    assert cli("check", str(tmp_path / "bad.res")).returncode == 1


def test_colour_rules(tmp_path):
    bad = tmp_path / "bad.res"
    bad.write_text("network b() {\n    input x: [N, 3, H, W]\n    conv(4, 3, paddin=1)\n}\n")
    plain = cli("check", str(bad), env={"NO_COLOR": "", "FORCE_COLOR": ""})
    assert "\x1b[" not in plain.stderr  # not a terminal: no colour
    forced = cli("check", str(bad), env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert "\x1b[1;31merror[type]\x1b[0m" in forced.stderr
    off = cli("check", str(bad), env={"FORCE_COLOR": "0", "NO_COLOR": "1"})
    assert "\x1b[" not in off.stderr
    from resdsl import cli as C

    class Tty:
        def isatty(self):
            return True
    for env, want in (({}, True), ({"NO_COLOR": "1"}, False), ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True)):
        old = {k: os.environ.pop(k, None) for k in ("NO_COLOR", "FORCE_COLOR", "TERM")}
        try:
            os.environ.update(env)
            assert C.color_enabled(Tty()) is want, env
        finally:
            for k in ("NO_COLOR", "FORCE_COLOR"):
                os.environ.pop(k, None)
            os.environ.update({k: v for k, v in old.items() if v is not None})


def test_every_subcommand_and_option_has_help():
    import argparse
    ap = make_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    assert {"check", "compile", "ir", "render", "summary", "list", "completion"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.description and "examples:" in (p.epilog or ""), name
        for a in p._actions:
            if not isinstance(a, argparse._HelpAction):
                assert a.help, f"{name} {a.option_strings or a.dest}"
    text = sub.choices["compile"].format_help()
    assert "fold-bn" in text and "dead-code-elimination" in text  # pass names listed where accepted
    assert "resdsl list" in " ".join(sub.choices["check"].format_help().split())  # where names come from


def test_bash_completion_runs(tmp_path):
    r = cli("completion", "bash")
    assert r.returncode == 0
    script = tmp_path / "c.bash"
    script.write_text(r.stdout)

    def complete(words):
        prog = (f'source {script}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); '
                '_resdsl; printf "%s\\n" "${COMPREPLY[@]}"')
        out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()
    assert "compile" in complete("resdsl co") or "completion" in complete("resdsl co")
    assert set(complete("resdsl comp")) == {"compile", "completion"}
    assert "resnet50" in complete("resdsl check resnet5")
    assert set(complete("resdsl compile x.res --target ''")) == {"torch", "onnx"}
    assert "--input-shape" in complete("resdsl render x.res --in")


def test_zsh_completion_is_valid_zsh():
    r = cli("completion", "zsh")
    assert r.returncode == 0 and r.stdout.startswith("#compdef resdsl")
    zsh = subprocess.run(["bash", "-c", "command -v zsh"], capture_output=True, text=True).stdout.strip()
    if zsh:
        assert subprocess.run([zsh, "-n"], input=r.stdout, text=True).returncode == 0
    assert "resnet50" in r.stdout and "compile)" in r.stdout


def test_list_and_list_models():
    import torchvision
    names = resdsl.list_models()
    assert "resnet50" in names and "vit_b_16" in names and names == sorted(names)
    assert resdsl.list_models("resnet*") == [n for n in names if n.lower().startswith("resnet")]
    assert "vit_b_16" not in resdsl.list_models("resnet")
    r = cli("list", "resnet18")
    assert r.returncode == 0
    row = next(line for line in r.stdout.splitlines() if line.startswith("resnet18 "))
    n = sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert f"{n:,}" in row and "Deep Residual Learning" in row and "stdlib/resnet.res" in row
    assert cli("list", "nosuchnet").returncode == 2


def test_create_model_loads_torchvision_weights(tmp_path):
    import torchvision
    tv = torchvision.models.resnet18(num_classes=10).eval()
    ckpt = tmp_path / "r18.pt"
    torch.save(tv.state_dict(), ckpt)
    m = resdsl.create_model("resnet18", weights=str(ckpt), classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), tv(x))


def test_progress_only_on_a_terminal_and_only_for_long_work(monkeypatch):
    import io
    import time
    from resdsl import cli as C

    class Term(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty
    for tty, work, want in ((True, 0.8, True), (True, 0.0, False), (False, 0.8, False)):
        err = Term(tty)
        monkeypatch.setattr(sys, "stderr", err)
        with C.progress("exporting ONNX", after=0.2):
            time.sleep(work)
        assert ("exporting ONNX ..." in err.getvalue()) is want, (tty, work, err.getvalue())


def test_the_command_delivers_all_output_before_it_leaves(tmp_path, capsys):
    """`resdsl` leaves with os._exit once main() returns (no interpreter teardown): every byte
    of a long standard output, the status line on standard error, the output file and the
    exit status must still arrive, as they do from main() in process."""
    from resdsl.cli import main
    assert main(["ir", "resnet1202_cifar"]) == 0  # more than a pipe buffer (64 KiB) holds
    want = capsys.readouterr().out
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as for most users
    r = subprocess.run([sys.executable, "-m", "resdsl", "ir", "resnet1202_cifar"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and r.stdout == want and len(want) > 200_000
    r = subprocess.run([sys.executable, "-m", "resdsl", "check", CIFAR], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("resnet20: ") and r.stdout.endswith(" ops\n")
    out = tmp_path / "r.py"
    r = cli("compile", "resnet18", "--target", "torch", "-o", str(out))
    assert r.returncode == 0 and r.stderr.startswith("wrote ") and out.read_text().endswith("\n")
    bad = tmp_path / "bad.res"
    bad.write_text("network n() {\n    input x: [1, 4]\n    relu relu\n}\n")
    r = cli("check", str(bad))
    assert r.returncode == 1 and "error[syntax]" in r.stderr and f"{bad}:3:10" in r.stderr
