"""A parameter or buffer of a plain container in the standalone torch file (torch_geometric's
GINConv layout, `conv.eps` beside `conv.nn.0`): the file registers it on the container and
initialises it in the order resdsl.build() does, so the state_dict keys, their order, the seeded
values and the outputs are equal."""
import importlib.util

import pytest
import torch

import resdsl

GIN = """
block G(c: int) {
    input adj, h
    z = h -> relu
    eps = param([1], init=INIT) as "conv.eps"
    (1.0 + eps) * z + matmul(adj, z) -> linear(c) as "conv.nn.0" -> relu -> linear(c) as "conv.nn.2"
}
network n {
    input adj: [N, 5, 5], h: [N, 5, 4]
    a = G(adj, h, 4) as g
    G(adj, a, 4) as g2
}
"""

BUF = """
block B(c: int) {
    input x
    w = param([c, c], init=normal(0.02)) as "mix.weight"
    s = buffer([1.0, 2.0, 3.0, 4.0], persistent=false) as "mix.scale"
    i = buffer([[1, 0], [0, 1]], dtype="int64") as "mix.sub.pair"
    matmul(x, w) * s -> linear(c) as "mix.out"
}
network nb {
    input x: [N, 4]
    x -> B(4) as b -> B(4) as b2
}
"""


def _load(tmp_path, name, src):
    f = tmp_path / f"{name}_file.py"
    f.write_text(src)
    spec = importlib.util.spec_from_file_location(f"{name}_file", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _equal(ours, built, *inputs):
    a, b = ours.state_dict(), built.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [k for k, _ in ours.named_buffers()] == [k for k, _ in built.named_buffers()]
    for (k, x), (_, y) in zip(ours.named_buffers(), built.named_buffers()):
        assert torch.equal(x, y), k
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), built(*inputs), rtol=0, atol=0)


@pytest.mark.parametrize("init", ["zeros", "normal(0.5)"])
def test_parameter_of_a_plain_container(tmp_path, init):
    src = GIN.replace("INIT", init)
    text = resdsl.to_python(src)
    assert 'self.conv.register_parameter("eps"' in text
    ours, built = _load(tmp_path, "gin", text).n(seed=5), resdsl.build(src, seed=5)
    assert list(built.state_dict())[:3] == ["g.conv.eps", "g.conv.nn.0.weight", "g.conv.nn.0.bias"]
    if init != "zeros":  # drawn, in build()'s order, by the container's own class
        assert not torch.equal(built.g.conv.eps, built.g2.conv.eps) and "isinstance(m, GConv)" in text
    else:  # drawn nowhere: in the branch of G
        assert "nn.init.zeros_(m.conv.eps)" in text
    adj, h = torch.rand(2, 5, 5), torch.randn(2, 5, 4)
    _equal(ours, built, adj, h)


def test_random_container_init_after_a_drawing_layer_is_drawn_where_build_draws_it(tmp_path):
    """`pre` draws before the container `conv` in build()'s walk: the container is the file's own
    ModuleDict subclass, initialised in its own branch of init_weights, so the order is build()'s."""
    src = GIN.replace("INIT", "normal(0.5)").replace("    z = h -> relu\n", "    z = h -> linear(4) as pre\n")
    text = resdsl.to_python(src)
    assert "class GConv(nn.ModuleDict):" in text and "isinstance(m, GConv)" in text
    ours, built = _load(tmp_path, "gin2", text).n(seed=7), resdsl.build(src, seed=7)
    assert list(built.state_dict())[:3] == ["g.pre.weight", "g.pre.bias", "g.conv.eps"]
    _equal(ours, built, torch.rand(2, 5, 5), torch.randn(2, 5, 4))


def test_buffers_and_parameters_of_nested_plain_containers(tmp_path):
    text = resdsl.to_python(BUF)
    assert "register_buffer" in text and "register_parameter" in text
    ours, built = _load(tmp_path, "nb", text).nb(seed=2), resdsl.build(BUF, seed=2)
    assert "b.mix.sub.pair" in built.state_dict() and "b.mix.scale" not in built.state_dict()
    _equal(ours, built, torch.randn(3, 4))


def test_container_file_is_ruff_clean(tmp_path):
    import shutil
    import subprocess
    import sys
    ruff = [shutil.which("ruff")] if shutil.which("ruff") else [sys.executable, "-m", "ruff"]
    (tmp_path / "gin_file.py").write_text(resdsl.to_python(GIN.replace("INIT", "zeros")))
    (tmp_path / "gin2_file.py").write_text(resdsl.to_python(GIN.replace("INIT", "normal(0.5)")))
    (tmp_path / "nb_file.py").write_text(resdsl.to_python(BUF))
    for args in (["check", "--select", "E,W,F,N,B,A"], ["format", "--check"]):
        r = subprocess.run(ruff + args + ["--no-cache", "--isolated", "--line-length", "100", str(tmp_path)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
