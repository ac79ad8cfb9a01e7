"""A buffer built by a `fn` inside nested blocks: the standalone torch file writes the fn call with
the class's own arguments (`triu(length)`, the size passed down from the network), so the file
stays short (it was 36,000 lines of literals for Res-VMamba) and equal to resdsl.build()."""
import importlib.util
import shutil
import subprocess
import sys

import torch

import resdsl

SCAN = """
fn triu(l: int) = [[1.0 if s <= t else 0.0 for t in range(l)] for s in range(l)]
fn causal(l: int) = [[1 if s <= t else 0 for s in range(l)] for t in range(l)]
block Scan(length: int, k: int) {
    input u
    up = buffer(triu(length), persistent=false) as "cumsum_{k}"
    keep = buffer(causal(length), dtype="bool", persistent=false) as "causal_{k}"
    matmul(u, where(keep, up, 0.0))
}
block Outer(length: int) {
    input x
    x -> Scan(length, 0) as s0 -> Scan(length, 1) as s1
}
network n {
    input x: [N, 4, 64]
    x -> Outer(64) as o -> linear(64) as head
}
"""

# one class for every size: the instances differ only in the fn's argument
SIZES = """
fn triu(l: int) = [[1.0 if s <= t else 0.0 for t in range(l)] for s in range(l)]
block Scan(length: int) {
    input u
    up = buffer(triu(length)) as cumsum
    matmul(u, up)
}
block Outer(length: int) {
    input x
    x -> Scan(length) as s
}
network sizes {
    input x: [N, 4, 48]
    a = x -> Outer(48) as o1
    b = x -> reshape([-1, 4, 2, 24]) -> Outer(24) as o2 -> reshape([-1, 4, 48])
    a + b
}
"""


def _load(tmp_path, name, src):
    f = tmp_path / f"{name}_file.py"
    f.write_text(src)
    spec = importlib.util.spec_from_file_location(f"{name}_file", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _equal(ours, built, x):
    a, b = ours.state_dict(), built.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    bufs = dict(built.named_buffers())
    assert list(dict(ours.named_buffers())) == list(bufs)
    for k, v in ours.named_buffers():
        assert v.dtype == bufs[k].dtype and torch.equal(v, bufs[k]), k
    with torch.no_grad():
        torch.testing.assert_close(ours(x), built(x), rtol=0, atol=0)


def test_nested_fn_buffers_are_fn_calls_of_the_class_arguments(tmp_path):
    text = resdsl.to_python(SCAN)
    assert len(text.splitlines()) < 150  # 64 x 64 values a buffer were thousands of lines
    assert "def triu(l_):" in text and "def causal(l_):" in text  # `l` is E741: renamed
    assert "triu(length)" in text and "causal(length)" in text and "triu(64)" not in text
    assert "Outer(64)" in text and "Scan(length" in text
    ours, built = _load(tmp_path, "n", text).n(seed=1), resdsl.build(SCAN, seed=1)
    _equal(ours, built, torch.randn(2, 4, 64))


def test_instances_that_differ_in_the_fn_argument_share_a_class(tmp_path):
    text = resdsl.to_python(SIZES)
    assert text.count("class Scan") == 1 and text.count("class Outer") == 1
    assert "triu(length)" in text and "Outer(48)" in text and "Outer(24)" in text
    ours, built = _load(tmp_path, "sizes", text).sizes(seed=0), resdsl.build(SIZES, seed=0)
    assert list(ours.state_dict()) == ["o1.s.cumsum", "o2.s.cumsum"]
    _equal(ours, built, torch.randn(2, 4, 48))


def test_large_untranslatable_buffer_is_a_packed_literal(tmp_path):
    """A fn the file cannot write (its name is one the file uses) falls back to the values: many
    a line, not one a line."""
    src = SCAN.replace("triu", "torch")
    text = resdsl.to_python(src)
    assert "def torch" not in text and "# fmt: off" in text
    assert len(text.splitlines()) < 450  # two 64 x 64 literals (two classes: the names differ), ~140 lines each
    ours, built = _load(tmp_path, "n2", text).n(seed=1), resdsl.build(src, seed=1)
    _equal(ours, built, torch.randn(2, 4, 64))


def test_fn_buffer_files_are_ruff_clean(tmp_path):
    ruff = [shutil.which("ruff")] if shutil.which("ruff") else [sys.executable, "-m", "ruff"]
    (tmp_path / "n_file.py").write_text(resdsl.to_python(SCAN))
    (tmp_path / "m_file.py").write_text(resdsl.to_python(SIZES))
    (tmp_path / "p_file.py").write_text(resdsl.to_python(SCAN.replace("triu", "torch")))
    for args in (["check", "--select", "E,W,F,N,B,A"], ["format", "--check"]):
        r = subprocess.run(ruff + args + ["--no-cache", "--isolated", "--line-length", "100", str(tmp_path)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stdout + r.stderr


COINCIDENCE = """
fn triu(l: int) = [[1.0 if s <= t else 0.0 for t in range(l)] for s in range(l)]
block C(size: int, state: int = 16) {
    input x
    let l = size * size
    r = buffer(triu(l)) as t
    matmul(x, r)
}
network coin {
    input x: [N, 16]
    x -> C(4) as c
}
"""


def test_fn_argument_is_not_a_block_argument_that_only_shares_its_value(tmp_path):
    """`triu(l)` with `let l = size * size`: 16, as the default `state` is, but not `state`: the
    call is written with the value (Res-VMamba's SS2D had this shape)."""
    text = resdsl.to_python(COINCIDENCE)
    assert "triu(16)" in text and "triu(state)" not in text
    ours, built = _load(tmp_path, "coin", text).coin(seed=0), resdsl.build(COINCIDENCE, seed=0)
    _equal(ours, built, torch.randn(2, 16))
