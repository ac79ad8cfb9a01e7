"""Regression tests for an audit of the inputs: every input below once ended in a traceback,
a hang, a valid program rejected, or an error without file:line:col.

Each case is elaborated from a real file (as `resdsl check` does) and must end either
in a graph ("ok") or in a ResdslError of the expected kind that points into the file."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resdsl.diagnostics import ResdslError
from resdsl.elaborate import Program, elaborate

IMG = "network N() {\n    input x: [1, 4, 8, 8]\n    %s\n}\n"
SEQ = "network N() {\n    input x: [1, 6, 8]\n    %s\n}\n"
VEC = "network N() {\n    input x: [4]\n    %s\n}\n"
USE = "network N() {\n    input x: [1, 4, 8, 8]\n    conv(len(str(a)) % 3 + 1, 1)\n}\n"


def outcome(tmp_path, src, name="t.res"):
    p = tmp_path / name
    if isinstance(src, bytes):
        p.write_bytes(src)
    else:
        p.write_text(src, encoding="utf-8")
    t = time.time()
    try:
        g = elaborate(Program.from_file(p))
    except ResdslError as e:
        return e, time.time() - t
    return g, time.time() - t


def expect_error(tmp_path, src, kind=None, line=None, fragment=None, seconds=20.0):
    res, dt = outcome(tmp_path, src)
    assert isinstance(res, ResdslError), f"accepted: {src[:200]!r}"
    assert res.span is not None, f"no location: {res}"
    assert res.span.source.path.endswith("t.res")
    if kind:
        assert res.kind == kind, res.render()
    if line:
        assert res.span.line == line, res.render()
    if fragment:
        assert fragment in res.render(), res.render()
    assert dt < seconds, f"took {dt:.1f}s"
    return res


# ---------------------------------------------------------------- valid programs once rejected
VALID = [
    ("value-name-clash", IMG % "relu -> relu -> conv(4, 1) as relu_1"),
    ("value-name-clash-2", IMG % "conv(4, 1) as conv_1 -> conv(4, 1) -> conv(4, 1)"),
    ("utf8-bom", "\ufeff" + IMG % "relu"),
    ("bom-crlf", "\ufeff" + (IMG % "relu").replace("\n", "\r\n")),
]


@pytest.mark.parametrize("src", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_programs_elaborate(tmp_path, src):
    res, _ = outcome(tmp_path, src)
    assert not isinstance(res, ResdslError), res.render()
    res.verify()


# ---------------------------------------------------------------- check accepts only what runs
ILLEGAL = [
    ("dropout-p", IMG % "dropout(5)", "argument `p` must be in [0, 1]"),
    ("embedding-negative", "network N() {\n    input x: [1, 4]\n    embedding(-3, 4)\n}\n", "`num` must be at least 1"),
    ("gn-negative", IMG % "gn(-1)", "`groups` must be at least 1"),
    ("init-string", IMG % 'conv(4, 1, weight_init=normal("a"))', "float32 numbers"),
    ("float32-overflow", IMG % "layer_scale(1e308)", "float32"),
    ("init-float32-overflow", IMG % "conv(4, 1, weight_init=constant(1e300))", "float32"),
    ("init-onehot-range", IMG % "conv(4, 1, bias=false, weight_init=onehot(99999))", "index below"),
    ("init-arity", IMG % "conv(4, 1, weight_init=uniform(1))", "takes 0 to 2"),
    ("init-rank", IMG % "conv(4, 1, bias_init=kaiming_normal)", "at least 2 axes"),
    ("init-uniform-order", IMG % "conv(4, 1, weight_init=uniform(1, 0))", "low <= high"),
    ("padding-mode", IMG % 'conv(4, 3, padding_mode="mirror")', "padding_mode"),
    ("reflect-too-wide", IMG % 'conv(4, 3, padding=8, padding_mode="reflect")', "smaller than the input"),
    ("conv-kernel-0", IMG % "conv(4, 0)", "`kernel` must be at least 1"),
    ("conv-dilation-0", IMG % "conv(4, 3, dilation=0)", "`dilation` must be at least 1"),
    ("conv-negative-padding", IMG % "conv(4, 3, padding=-1)", "`padding` must be"),
    ("conv-stride-0", IMG % "conv(4, 3, stride=0)", "`stride` must be at least 1"),
    ("conv-groups-0", IMG % "conv(4, 3, groups=0)", "`groups` must be at least 1"),
    ("conv-out-0", IMG % "conv(0, 3)", "`out` must be at least 1"),
    ("convt-output-padding", IMG % "conv_transpose(4, 3, stride=1, output_padding=1)", "output_padding"),
    ("attention-heads-0", SEQ % "attention(0)", "`heads` must be at least 1"),
    ("split-0", IMG % "split(0)", "`sizes` must be at least 1"),
    ("chunk-0", IMG % "chunk(0)", "`n` must be at least 1"),
    ("pixel-shuffle-0", IMG % "pixel_shuffle(0)", "`factor` must be at least 1"),
    ("reshape-0", IMG % "reshape([0, 4, 8, 8])", "reshape"),
    ("reshape-negative", IMG % "reshape([-2, -2, 64])", "positive"),
    ("rearrange-size-0", IMG % 'rearrange("n c (h p) w -> n (c p) h w", p=0)', "positive"),
    ("rearrange-axis-twice", IMG % 'rearrange("n c h w -> n c h h")', "twice"),
    ("rearrange-axis-twice-left", IMG % 'rearrange("n c h h -> n c h h")', "twice"),
    # `()` is a size-1 axis (docs/language.md, "Size-1 axes"); on the left it must have size 1
    ("rearrange-size-one-not-one", IMG % 'rearrange("n () h w -> n h w")', "size-1 axis"),
    ("bn-eps-0", IMG % "bn(eps=0)", "`eps` must be above 0"),
    ("bn-eps-inf", IMG % "bn(eps=1e400)", "too large"),
    ("bn-momentum", IMG % "bn(momentum=2)", "`momentum` must be in [0, 1]"),
    ("gelu-approximate", IMG % 'gelu(approximate="fast")', "approximate"),
    ("upsample-mode", IMG % 'upsample(mode="cubic")', "mode"),
    ("upsample-mode-rank", IMG % 'upsample(mode="linear")', "rank 3"),
    ("upsample-scale-0", IMG % "upsample(0)", "`scale` must be at least 1"),
    ("pool-stride-0", IMG % "maxpool(2, stride=0)", "`stride` must be at least 1"),
    ("adaptive-0", IMG % "adaptive_avgpool(0)", "`size` must be at least 1"),
    ("pad-negative", IMG % "pad([-1, 1])", "`widths` must be at least 0"),
    ("drop-path-1", IMG % "drop_path(1.0)", "drop_path"),
    ("lstm-hidden-0", SEQ % "lstm(0)", "`hidden` must be at least 1"),
    ("param-0", IMG % "add(param([1, 0, 1, 1]))", "out of range"),
]


@pytest.mark.parametrize("src,fragment", [c[1:] for c in ILLEGAL], ids=[c[0] for c in ILLEGAL])
def test_check_rejects_what_backends_reject(tmp_path, src, fragment):
    expect_error(tmp_path, src, line=3, fragment=fragment)


# ---------------------------------------------------------------- tracebacks once
TRACEBACKS = [
    ("empty-file", "", "name", 1),
    ("blocks-only", "block B() { relu }\n", "name", 1),
    ("template-empty", IMG % 'relu as "a{}"', "syntax", 3),
    ("template-bad", IMG % 'relu as "a{)}"', "syntax", 3),
    ("permute-int", IMG % "permute(3)", "type", 3),
    ("mean-empty-dims", IMG % "mean(dim=[])", "type", 3),
    ("mean-string-dim", IMG % 'mean(dim="a")', "type", 3),
    ("gn-rank-1", VEC % "gn(2)", "shape", 3),
    ("float-slice", "network N() {\n    input x: [1, 4, 8, 8]\n    conv([1, 2, 3][0.5:2][0], 1)\n}\n", "type", 3),
    ("multi-output-end", IMG % "split(2)", "shape", 3),
    ("huge-int-literal", IMG % ("conv(" + "9" * 5000 + ", 1)"), "limit", 3),
    ("huge-int-in-message", IMG % ("conv(4, " + "9" * 5000 + ")"), "limit", 3),
    ("big-int-literal", IMG % "conv(99999999999999999999, 1)", "limit", 3),
    ("pow-chain", "let a = " + "2 ** " * 3000 + "2\n" + USE, "limit", 1),
    ("paren-nest", "let a = " + "[" * 3000 + "]" * 3000 + "\n" + USE, "limit", 1),
    ("str-repeat", 'let a = "a" * 10**10\n' + USE, "limit", 1),
    ("str-repeat-reversed", 'let a = 10**10 * "a"\n' + USE, "limit", 1),
    ("list-repeat", "let a = 10**9 * [0]\n" + USE, "limit", 1),
    ("nested-list-repeat", "let a = [[0] * 1000] * 1000\n" + USE, "limit", 1),
    ("pow-tower", "let b = 2**62\nlet a = b * b * b\n" + USE, "limit", 2),
    ("float-overflow", "let a = 1e300 * 1e300\n" + USE, "limit", 1),
    ("complex", "let a = (-8) ** 0.5\n" + USE, "value", 1),
    ("sum-of-lists", "let a = sum([[1]] * 1000, [])\n" + USE, "type", 1),
    ("int-builtin-huge", 'let a = int("9" * 4000)\n' + USE, "limit", 1),
    ("nan", 'let a = float("nan")\n' + USE, "limit", 1),
    ("input-in-group", IMG % "{ input i: [8] } as 10", "syntax", 3),
    ("input-in-residual", IMG % "residual { input i: [8] }", "syntax", 3),
    ("deep-regions", IMG % ("residual { " * 300 + "relu" + " }" * 300), "limit", 3),
    # found by a long fuzz run: an alias naming itself recursed until Python's stack ran out
    ("alias-cycle", "import resnet\nnetwork r = r(BasicBlock, [1, 1, 1, 1])\n", "name", 2),
    ("alias-cycle-2", "import resnet\nlet b = a\nnetwork a = b(BasicBlock, [1])\n", "name", 2),
]


@pytest.mark.parametrize("src,kind,line", [c[1:] for c in TRACEBACKS], ids=[c[0] for c in TRACEBACKS])
def test_once_a_traceback_now_a_located_error(tmp_path, src, kind, line):
    expect_error(tmp_path, src, kind=kind, line=line)


# ---------------------------------------------------------------- unbounded work
UNBOUNDED = [
    ("binary-recursion", "block B(d: int) {\n    if d > 0 { B(d - 1) -> B(d - 1) } else { relu }\n}\n"
                         + IMG % "B(60)"),
    ("nested-repeats", IMG % ("repeat 10000 { " * 3 + "relu" + " }" * 3)),
    ("nested-empty-for", "let xs = range(100000)\n" + IMG % "for i in xs { for j in xs { } }"),
    ("huge-network", IMG % "repeat 10000 { repeat 10000 { conv(4, 3, padding=1) } }"),
    ("huge-params", IMG % "flatten -> linear(2000000000) -> linear(2000000000)"),
    ("recursive-loop", "block B(d: int) {\n    loop 1000 shared { if d > 0 { B(d - 1) } else { relu } }\n}\n"
                       + IMG % "B(50)"),
]


@pytest.fixture(scope="module")
def calibration():
    """Seconds to elaborate resnet1202 (4,210 ops): the bound scales with the machine's speed now."""
    t = time.time()
    elaborate(Program.from_file(Path(__file__).resolve().parents[1] / "stdlib" / "cifar.res"), "resnet1202_cifar")
    return time.time() - t


@pytest.mark.parametrize("src", [c[1] for c in UNBOUNDED], ids=[c[0] for c in UNBOUNDED])
def test_unbounded_work_fails_fast(tmp_path, src, calibration):
    # a few seconds on an idle machine; on a loaded one, at most 15x a real large network
    err = expect_error(tmp_path, src, kind="limit", seconds=max(8.0, 15 * calibration))
    assert "limit" in err.render() or "over" in err.render()


def test_limits_are_documented(root):
    text = (root / "docs" / "language.md").read_text()
    from resdsl.elaborate import budget
    assert "## Limits" in text
    for value in (budget.MAX_OPS, budget.MAX_SEQ, budget.MAX_NEST, budget.MAX_STEPS_BASE):
        assert f"{value:,}" in text, value


# ---------------------------------------------------------------- files: encodings, folders
def test_latin1_comment_is_a_located_encoding_error(tmp_path):
    src = (IMG % "relu").replace("relu", "relu  # caf\xe9").encode("latin-1")
    err = expect_error(tmp_path, src, kind="encoding", line=3)
    assert "0xe9" in err.message


def test_utf16_file_is_an_encoding_error(tmp_path):
    expect_error(tmp_path, (IMG % "relu").encode("utf-16"), kind="encoding", line=1)


def test_non_utf8_import_points_at_the_import(tmp_path):
    (tmp_path / "lib.res").write_bytes(b"# \xff\xfe\nblock B() { relu }\n")
    res, _ = outcome(tmp_path, "import lib\n" + IMG % "B()")
    err = res
    assert isinstance(err, ResdslError) and err.kind == "encoding"
    assert err.span.source.path.endswith("lib.res") and err.span.line == 1
    assert any("imported here" in text for text, _ in err.notes)


def test_import_of_a_folder(tmp_path):
    (tmp_path / "lib.res").mkdir()
    expect_error(tmp_path, "import lib\n" + IMG % "relu", kind="import", line=1, fragment="folder")


@pytest.mark.parametrize("content,kind", [
    (b"", "error[name]"),
    (b"\xff\xfe\x00", "error[encoding]"),
    ("\ufeffnetwork N() {\n    input x: [1, 4, 8, 8]\n    relu\n}\n".encode(), None),
])
def test_cli_check_never_shows_a_traceback(tmp_path, content, kind):
    p = tmp_path / "t.res"
    p.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "resdsl.cli", "check", str(p)], capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in r.stderr
    if kind is None:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1 and kind in r.stderr and f"{p}:" in r.stderr, r.stderr


def test_cli_check_on_a_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "resdsl.cli", "check", str(tmp_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "error[io]" in r.stderr and "folder" in r.stderr and "Traceback" not in r.stderr


def test_yaml_billion_laughs_is_refused_fast(tmp_path):
    from resdsl.api import load_config
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    t = time.time()
    with pytest.raises(ResdslError) as e:
        load_config(cfg, Program.from_source(IMG % "relu"))
    assert e.value.kind == "limit" and time.time() - t < 10


def test_yaml_values_obey_the_budget(tmp_path):
    from resdsl.api import load_config
    cfg = tmp_path / "c.yaml"
    cfg.write_text('width: "10**9 * [0]"\n')
    with pytest.raises(ResdslError) as e:
        load_config(cfg, Program.from_source(IMG % "relu"))
    assert e.value.kind == "limit"


@pytest.mark.parametrize("name", ['"a{99999999999999999999}"', '"a{' + "2 ** " * 300 + '2}"', '"a{1e400}"'])
def test_bad_expressions_inside_a_name_template(tmp_path, name):
    expect_error(tmp_path, IMG % f"relu as {name}", line=3)
