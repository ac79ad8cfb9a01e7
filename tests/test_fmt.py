"""`resdsl fmt`: idempotent, keeps every comment, changes no meaning (IR text before == after).

The properties run over every .res file in the repository, every ```res sample in the docs
and hypothesis-generated programs laid out at random (spaces, line breaks where the
grammar allows them, `;`, comments, blank lines)."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resdsl.api import graph, load
from resdsl.diagnostics import ResdslError
from resdsl.fmt import WIDTH, format_source, format_text, significant
from resdsl.ir.printer import print_graph

from conftest import ROOT, doc_res_blocks, run_cli

RES_FILES = sorted(p for d in ("stdlib", "examples", "tests", "docs") for p in (ROOT / d).rglob("*.res"))
DOCS = sorted(ROOT.glob("docs/**/*.md")) + [ROOT / "README.md"]


def doc_samples():
    return doc_res_blocks(DOCS)


def _comments(text: str) -> list[str]:
    """Comment texts, found without the formatter's tokenizer (strings may hold `#`)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"""^(?:[^#"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*(#.*)$""", line)
        if m:
            out.append(m.group(1).rstrip())
    return out


def _irs(path: Path) -> dict:
    """network -> IR text, or the error message where a network needs arguments."""
    out = {}
    for name in load(str(path)).networks:
        try:
            out[name] = print_graph(graph(str(path), name))
        except ResdslError as e:
            out[name] = f"error[{e.kind}]: {e.message}"
    return out


def _check_meaning(src: str, tmp_path: Path, name: str = "prog.res"):
    out = format_source(src, name, strict=True)
    assert format_text(out) == out, "fmt is not idempotent"
    assert _comments(out) == _comments(src), "fmt lost, added or reordered a comment"
    assert out.endswith("\n") and "\t" not in out and not re.search(r"[ \t]+\n", out)
    if out != src:
        a, b = tmp_path / "a", tmp_path / "b"
        a.mkdir(exist_ok=True)
        b.mkdir(exist_ok=True)
        (a / name).write_text(src)
        (b / name).write_text(out)
        assert _irs(b / name) == _irs(a / name)
    return out


@pytest.mark.parametrize("path", RES_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repo_file_properties(path, tmp_path):
    _check_meaning(path.read_text(), tmp_path, path.name)


@pytest.mark.parametrize("src", doc_samples())
def test_doc_sample_properties(src, tmp_path):
    _check_meaning(src, tmp_path)


def test_there_are_inputs():
    assert len(RES_FILES) >= 25 and len(doc_samples()) >= 10


def test_repo_files_already_formatted_stay_so():
    """Once the repository is formatted (`resdsl fmt stdlib examples`), every file is checked here."""
    formatted = [p for p in RES_FILES if format_text(p.read_text()) == p.read_text()]
    assert len(formatted) >= 5
    proc = subprocess.run([sys.executable, "-m", "resdsl.cli", "fmt", "--check", *map(str, formatted)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- the style, written out by hand
MESSY = """\


# header
import resnet
let   k=conv( bias = false ,)   # trailing
block  A( c:int , s:int=1 ){
  residual{conv(c,3,padding=1)as conv1;bn;relu}shortcut if s!=1{conv(c,1,stride=s)}as down


  x = in->relu
  parallel(merge=concat){x->bn|x
  | relu}
  y=-x ->scale(-1.5e-3)
}
# doc for N
network N(){
    input x:[N,3,H=8,W=8]
    repeat 2 as layer{i}(i){A(3)}
    x ->  mean(dim=[2,3])
}
network M = N()
"""

TIDY = """\
# header
import resnet
let k = conv(bias=false)  # trailing

block A(c: int, s: int = 1) {
    residual {
        conv(c, 3, padding=1) as conv1
        bn
        relu
    } shortcut if s != 1 { conv(c, 1, stride=s) } as down

    x = in -> relu
    parallel(merge=concat) {
        x -> bn
      | x
      | relu
    }
    y = -x -> scale(-1.5e-3)
}

# doc for N
network N() {
    input x: [N, 3, H=8, W=8]
    repeat 2 as layer{i} (i) { A(3) }
    x -> mean(dim=[2, 3])
}

network M = N()
"""


def test_canonical_style():
    assert format_source(MESSY, strict=True) == TIDY


def test_long_lines_wrap_at_the_width():
    args = ", ".join(f"a{i}: int = {i}" for i in range(12))
    chain = " -> ".join(f"conv(8, 3, padding=1) as c{i}" for i in range(6))
    src = f"block B({args}) {{\n    {chain}\n    relu\n}}\n"
    out = format_source(src, strict=True)
    lines = out.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    assert lines[0].startswith("block B(a0: int = 0,") and lines[1].startswith(" " * len("block B(") + "a")
    assert lines[-3].rstrip().endswith("as c5") and lines[-3].startswith(" " * 8)  # chain continues at +4
    assert format_text(out) == out


def test_comment_inside_arguments_keeps_its_line():
    src = "network n() {\n    input x: [N, 3, 8, 8]\n    conv(4,   # out\n 3, padding=1)\n}\n"
    out = format_source(src, strict=True)
    assert "    conv(4,  # out\n         3, padding=1)\n" in out


def test_syntax_error_is_reported_not_formatted():
    with pytest.raises(ResdslError) as e:
        format_source("network n() {\n    conv(4,\n}\n", "bad.res")
    assert e.value.kind == "syntax" and e.value.span.line == 3


# ---------------------------------------------------------------- generated programs
_SIMPLE = ["bn", "relu", "conv(4, 3, padding=1)", "conv(4, 1, bias=false)", "scale(0.5)", "gelu",
           "dropout(0.1)", "add(x, x)", "add(x -> bn -> relu, x -> conv(4, 3, padding=1, bias=false))",
           "add(x, x -> { bn -> sigmoid })", "add(x * 2 - -x, x)",
           "conv(4,  # kernel next\n   3, padding=1)"]


@st.composite
def chains(draw, depth=0):
    n = draw(st.integers(1, 3))
    links = []
    for _ in range(n):
        kind = draw(st.sampled_from(["op"] * 4 + ["residual", "parallel", "repeat", "group"] * (depth < 2)))
        if kind == "op":
            links.append([draw(st.sampled_from(_SIMPLE))])
        elif kind == "residual":
            body = draw(bodies(depth + 1))
            short = draw(st.booleans())
            links.append(["residual", "{", *body, "}"] + (["shortcut", "{", "conv(4, 1)", "}"] if short else []))
        elif kind == "parallel":
            a, b = draw(chains(depth + 1)), draw(chains(depth + 1))
            links.append(["parallel(merge=add)", "{", *a, "|", *b, "}"])
        elif kind == "repeat":
            links.append(["repeat", "2", "{", *draw(bodies(depth + 1)), "}"])
        else:
            links.append(["{", *draw(bodies(depth + 1)), "}", "as", f"g{draw(st.integers(0, 10**6))}"])
    out = links[0]
    for link in links[1:]:
        out = out + ["->"] + link
    return out


@st.composite
def bodies(draw, depth=0):
    stmts = draw(st.lists(chains(depth), min_size=1, max_size=3))
    out = []
    for k, s in enumerate(stmts):
        if k:
            out.append(";")
        out += s
    return out


@st.composite
def programs(draw):
    counter = iter(range(1000))
    words = ["network", "n()", "{", "input", "x: [N, 4, 8, 8]", ";", "let", "w = 1 + 2 * 3", ";",
             *draw(bodies()), "}"]
    parts = []
    for k, w in enumerate(words):
        parts.append(w)
        if k == len(words) - 1:
            break
        nxt = words[k + 1]
        if w == ";":  # a statement break: newline(s), `;`, or a comment
            sep = draw(st.sampled_from(["\n", "\n\n", ";", " ; ", "\n\n\n", "comment"]))
            parts[-1] = f"  # c{next(counter)}\n" if sep == "comment" else sep
        elif w in ("->", "|", "{") or nxt in ("|", "}"):  # a newline is allowed here too
            gap = draw(st.sampled_from([" ", "  ", "\n", "\n      ", "comment"]))
            if nxt == "}" and gap == "comment" and w == "{":
                gap = " "
            parts.append(f"  # c{next(counter)}\n" if gap == "comment" and w in ("->", "|", "{") else
                         (" " if gap == "comment" else gap))
        else:
            parts.append(draw(st.sampled_from([" ", "  ", "\t"])))
    head = draw(st.sampled_from(["", "# top\n", "\n\n# top\n\n"]))
    return head + "".join(parts) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_generated_programs(src):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        load(src)  # the generator writes valid programs only
        out = _check_meaning(src, Path(d))
        assert significant(out) == significant(src)


def test_stdlib_formats_in_under_a_second():
    files = sorted((ROOT / "stdlib").glob("*.res"))
    texts = [(p.read_text(), str(p)) for p in files]
    format_source(*texts[0])  # parser tables built (or read from Lark's cache) once
    t = time.process_time()  # CPU time: the test machine may be shared
    for text, path in texts:
        format_source(text, path)
    assert time.process_time() - t < 1.0


# ---------------------------------------------------------------- command line


def test_cli_check_diff_and_rewrite(tmp_path):
    f = tmp_path / "m.res"
    f.write_text(MESSY)
    p = run_cli("fmt", "--check", str(f))
    assert p.returncode == 1 and f"would reformat {f}" in p.stderr and f.read_text() == MESSY
    p = run_cli("fmt", "--diff", str(f))
    assert p.returncode == 0 and "-let   k=conv( bias = false ,)" in p.stdout and "+let k = conv(bias=false)" in p.stdout
    assert f.read_text() == MESSY
    p = run_cli("fmt", str(tmp_path))  # a folder: every .res under it
    assert p.returncode == 0 and f.read_text() == TIDY
    p = run_cli("fmt", "--check", str(f))
    assert p.returncode == 0 and p.stdout == ""
    p = run_cli("fmt", "-", input=MESSY)
    assert p.returncode == 0 and p.stdout == TIDY


def test_cli_syntax_error(tmp_path):
    f = tmp_path / "bad.res"
    f.write_text("network n() {\n    conv(4,,)\n}\n")
    p = run_cli("fmt", str(f))
    assert p.returncode == 1 and "error[syntax]" in p.stderr and f"{f}:2:" in p.stderr
    assert "Traceback" not in p.stderr and f.read_text() == "network n() {\n    conv(4,,)\n}\n"


def test_round_two_syntax(tmp_path):
    """fn (a newline after `=` continues it), comprehensions, `residual if`, `Tensor?`, tensor arithmetic,
    a chain in parentheses, `for a, b in`, `network name {`."""
    src = ("fn make_divisible(v, divisor=8) =\n    max(divisor, int(v+divisor/2)//divisor*divisor)\n"
           "fn half( v ) = v//2\nblock B(c:int, v:Tensor?=none) {\n"
           "    let ws=[make_divisible(c*i) for i in range(4) if i!=2]\n"
           "    residual if c==in.C { conv(c,3,padding=1) -> bn }\n    y = in*2 + -in\n"
           "    z = (y -> sigmoid) * y\n    for a, b in [[1,2],[3,4]] { relu }\n    z\n}\n"
           "network tiny {\n    input x:[N,8,4,4]\n    B(8)\n}\n")
    want = ("fn make_divisible(v, divisor=8) = max(divisor, int(v + divisor / 2) // divisor * divisor)\n"
            "fn half(v) = v // 2\n\nblock B(c: int, v: Tensor? = none) {\n"
            "    let ws = [make_divisible(c * i) for i in range(4) if i != 2]\n"
            "    residual if c == in.C { conv(c, 3, padding=1) -> bn }\n    y = in * 2 + -in\n"
            "    z = (y -> sigmoid) * y\n    for a, b in [[1, 2], [3, 4]] { relu }\n    z\n}\n\n"
            "network tiny {\n    input x: [N, 8, 4, 4]\n    B(8)\n}\n")
    assert _check_meaning(src, tmp_path) == want


def test_annotations(tmp_path):
    """`@NAME target, ...`: no space after `@`, none around a target's `.`, templates kept whole,
    a list that goes on after `,` (with a comment) keeps its line break."""
    src = ("network n(k: int = 2) {\n    input x:[N,3,H,W]\n    conv(8,3) as stem->relu as act\n"
           "    for s in range(k) {\n        conv(8,3) as layer{s+1}\n        @ features  layer{s+1}\n    }\n"
           "    @features stem . 0 ,act,\n        \"b{k}-0\",  # c\n        a . {k} . x\n"
           "    @classifier   fc\n}\n")
    want = ("network n(k: int = 2) {\n    input x: [N, 3, H, W]\n    conv(8, 3) as stem -> relu as act\n"
            "    for s in range(k) {\n        conv(8, 3) as layer{s+1}\n        @features layer{s+1}\n    }\n"
            "    @features stem.0, act,\n        \"b{k}-0\",  # c\n        a.{k}.x\n"
            "    @classifier fc\n}\n")
    from resdsl.fmt import format_source
    assert format_source(src, strict=True) == want  # strict: both parse to one syntax tree
    assert format_source(want, strict=True) == want
