"""Bad input gives one clear error: kind, file:line:col, a caret, and help where a fix is known.

Each case runs the real CLI (resdsl.cli.main) on a small file and checks what a user sees."""
import re
import subprocess
import sys

import pytest

from resdsl.cli import main


def run_check(tmp_path, src, capsys, name="bad.res", extra=()):
    p = tmp_path / name
    p.write_text(src)
    rc = main(["check", str(p), *extra])
    err = capsys.readouterr().err
    return rc, err, str(p)


CASES = [
    # (id, source, kind, message fragment, line, col, help fragment)
    ("syntax-unclosed-paren",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(64, 3\n}\n",
     "syntax", "unexpected `}`", 4, 1, None),
    ("syntax-bad-char",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(64, 3) $ relu\n}\n",
     "syntax", "unexpected character `$`", 3, 17, None),
    ("syntax-eof",
     "network N() {\n    input x: [N, 3, H, W]\n",
     "syntax", "unexpected end of file", None, None, "`}`"),
    ("unknown-op",
     "network N() {\n    input x: [N, 3, H, W]\n    rellu\n}\n",
     "name", "unknown name `rellu`", 3, 5, "did you mean `relu`"),
    ("unknown-block",
     "block Stem(c: int) { conv(c, 3) }\nnetwork N() {\n    input x: [N, 3, H, W]\n    Stme(8)\n}\n",
     "name", "unknown name `Stme`", 4, 5, "`Stem`"),
    ("wrong-kwarg",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(64, 3, paddin=1)\n}\n",
     "type", "`conv` has no argument `paddin`", 3, 17, "`padding`"),
    ("wrong-type",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(64, 3, stride=\"two\")\n}\n",
     "type", "`stride` must be an int or a list of ints", 3, 17, "signature: conv("),
    ("too-many-args",
     "network N() {\n    input x: [N, 3, H, W]\n    relu(1)\n}\n",
     "type", "`relu` takes at most 0 positional argument(s), 1 given", 3, 5, None),
    ("missing-arg",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(kernel=3)\n}\n",
     "type", "`conv` needs `out`", 3, 5, "signature"),
    ("block-param-type",
     "block B(c: int) { conv(c, 3) }\nnetwork N() {\n    input x: [N, 3, H, W]\n    B(2.5)\n}\n",
     "type", "`B` parameter `c` must be int, got float 2.5", 4, 5, None),
    ("block-arg-count",
     "block B(c: int) { conv(c, 3) }\nnetwork N() {\n    input x: [N, 3, H, W]\n    B(1, 2)\n}\n",
     "type", "`B` takes 1 argument(s), 2 given", 4, 5, "signature: B(c: int)"),
    ("residual-shape",
     "network N() {\n    input x: [N, 64, H, W]\n    residual {\n        conv(256, 3, padding=1)\n    }\n}\n",
     "shape", "residual add needs matching shapes", 3, 5, "shortcut { conv(256, 1, bias=false) -> bn }"),
    ("concat-shape",
     "network N() {\n    input x: [N, 3, H, W]\n    a = x -> conv(8, 3, stride=2, padding=1)\n"
     "    concat(a, x)\n}\n",
     "shape", "`concat` needs matching shapes outside axis 1", 4, 5, None),
    ("op-input-rank",
     "network N() {\n    input x: [N, 3, H, W]\n    flatten -> conv(8, 3)\n}\n",
     "shape", "`conv` expects a tensor of rank 3 or 4 or 5", 3, 16, None),
    ("groups",
     "network N() {\n    input x: [N, 6, H, W]\n    conv(8, 3, groups=4)\n}\n",
     "type", "groups=4 must divide", 3, 5, None),
    ("linear-symbolic",
     "network N() {\n    input x: [N, 3, H, W]\n    flatten -> linear(10)\n}\n",
     "shape", "must be a known number", 3, 16, "declare that axis with a number"),
    ("recursion",
     "block F(k: int) { F(k + 1) }\nnetwork N() {\n    input x: [N, 3, H, W]\n    F(1)\n}\n",
     "limit", "blocks nest deeper than 64", 1, 19, None),
    ("repeat-limit",
     "network N() {\n    input x: [N, 3, H, W]\n    repeat 100000 { relu }\n}\n",
     "limit", "`repeat` count 100000 is over the limit of 10000", 3, 12, None),
    ("tensor-size-limit",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(4000000000, 1)\n}\n",
     "limit", "output channels 4000000000 is out of range", 3, 5, None),
    ("duplicate-name",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(8, 3) as c\n    conv(8, 3) as c\n}\n",
     "name", "the name `c` is used twice", 4, 5, "`as`"),
    ("loop-needs-shared",
     "network N() {\n    input x: [N, 3, H, W]\n    loop 3 { relu }\n}\n",
     "syntax", "needs the word `shared`", 3, 5, "repeat n"),
    ("shared-shape-change",
     "network N() {\n    input x: [N, 3, H, W]\n    loop 2 shared { conv(8, 3, padding=1) as c }\n}\n",
     "shape", "shared weights `c` are used with a different shape", 3, 21, None),
    ("no-input",
     "network N() {\n    relu\n}\n",
     "shape", "`relu` has no input tensor here", 2, 5, "input x"),
    ("in-outside",
     "let k = in.C\nnetwork N() {\n    input x: [N, 3, H, W]\n    conv(k, 3)\n}\n",
     "name", "`in` is only defined inside a block", 1, 9, None),
    ("axis-name",
     "network N() {\n    input x: [N, 3, H, W]\n    conv(x.Q, 3)\n}\n",
     "name", "has no axis named `Q`", 3, 10, None),
    ("let-cycle",
     "let k = k + 1\nnetwork N() {\n    input x: [N, 3, H, W]\n    conv(k, 3)\n}\n",
     "name", "`k` is defined in terms of itself", 1, 1, "own name"),
    ("division-by-zero",
     "network N(k: int = 0) {\n    input x: [N, 3, H, W]\n    conv(8 // k, 3)\n}\n",
     "value", "division by zero", 3, 10, None),
    ("shortcut-not-bool",
     "network N() {\n    input x: [N, 3, H, W]\n    residual { relu } shortcut if [1, 2] + 1 { relu }\n}\n",
     "type", "cannot compute list + int", 3, 35, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_message(case, tmp_path, capsys):
    _, src, kind, msg, line, col, help_ = case
    rc, err, path = run_check(tmp_path, src, capsys)
    assert rc == 1
    assert "Traceback" not in err
    assert err.startswith(f"error[{kind}]: "), err
    assert msg in err, err
    if line is not None:
        assert f"--> {path}:{line}:{col}" in err, err
        src_line = src.splitlines()[line - 1]
        assert f"{line} | {src_line}" in err, err
        caret = re.search(r"\n\s*\| ( *)\^", err)
        assert caret and len(caret.group(1)) == col - 1, err
    if help_ is not None:
        assert "= help: " in err and help_ in err, err


def test_several_networks_need_a_choice(tmp_path, capsys):
    src = ("network a() {\n input x: [N, 3, H, W]\n relu\n}\nnetwork b() {\n input x: [N, 3, H, W]\n relu\n}\n")
    (tmp_path / "two.res").write_text(src)
    rc = main(["summary", str(tmp_path / "two.res")])  # `check` checks both; a command that needs one asks
    err = capsys.readouterr().err
    assert rc == 1 and "defines 2 networks" in err and "--network" in err and "a, b" in err


def test_unknown_network_suggests(tmp_path, capsys):
    rc, err, _ = run_check(tmp_path, "network alpha() {\n input x: [N, 3, H, W]\n relu\n}\n", capsys,
                           extra=("--network", "alpah"))
    assert rc == 1 and "no network `alpah`" in err and "`alpha`" in err


def test_missing_import(tmp_path, capsys):
    rc, err, path = run_check(tmp_path, "import nothere\nnetwork n() {\n input x: [N, 3, H, W]\n}\n", capsys)
    assert rc == 1 and "error[import]: cannot find module `nothere`" in err
    assert f"--> {path}:1:1" in err


def test_cyclic_import(tmp_path, capsys):
    (tmp_path / "a.res").write_text("import b\nblock A() { relu }\n")
    (tmp_path / "b.res").write_text("import a\nblock B() { relu }\n")
    rc, err, _ = run_check(tmp_path, "import a\nnetwork n() {\n input x: [N, 3, H, W]\n A()\n}\n", capsys,
                           name="main.res")
    assert rc == 1 and "error[import]: cyclic import of `a`" in err and "a.res -> b.res -> a.res" in err


def test_bad_set_value(tmp_path, capsys):
    rc, err, _ = run_check(tmp_path, "network n(k: int = 3) {\n input x: [N, 3, H, W]\n conv(8, k)\n}\n",
                           capsys, extra=("--set", "k=2.5"))
    assert rc == 1 and "parameter `k` must be int, got float 2.5" in err


def test_unknown_set_key(tmp_path, capsys):
    rc, err, _ = run_check(tmp_path, "network n(k: int = 3) {\n input x: [N, 3, H, W]\n conv(8, k)\n}\n",
                           capsys, extra=("--set", "kk=2"))
    assert rc == 1 and "no parameter `kk`" in err and "`k`" in err


def test_bad_yaml_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- just\n- a list\n")
    rc, err, _ = run_check(tmp_path, "network n(k: int = 3) {\n input x: [N, 3, H, W]\n conv(8, k)\n}\n",
                           capsys, extra=("--config", str(cfg)))
    assert rc == 1 and "error[config]" in err and "mapping" in err


def test_missing_file(capsys, tmp_path):
    rc = main(["check", str(tmp_path / "nope.res")])
    assert rc == 1 and "error[io]: cannot read" in capsys.readouterr().err


def test_cli_process_exit_status_and_no_traceback(tmp_path):
    p = tmp_path / "bad.res"
    p.write_text("network N() {\n    input x: [N, 3, H, W]\n    conv(64, 3, paddin=1)\n}\n")
    r = subprocess.run([sys.executable, "-m", "resdsl.cli", "check", str(p)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "error[type]" in r.stderr


def test_failed_compile_leaves_no_output(tmp_path, capsys):
    good = tmp_path / "out.py"
    good.write_text("previous contents\n")
    p = tmp_path / "bad.res"
    p.write_text("network N() {\n    input x: [N, 3, H, W]\n    rellu\n}\n")
    assert main(["compile", str(p), "--target", "torch", "-o", str(good)]) == 1
    assert good.read_text() == "previous contents\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.res", "out.py"]
