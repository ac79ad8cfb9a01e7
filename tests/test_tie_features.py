"""`tie=` beyond tying to an earlier op: a tie to an op defined later, a transposed tie (a linear
that stores its weight [in, out] reading another linear's [out, in] weight), one module shared by
a whole stage, `tie=` on a block call, templates in the tie string; each checked in build(), the
standalone file and ONNX against plain tensor arithmetic; and the errors of a bad tie."""

import pytest
import torch
from conftest import check_error, import_file

import resdsl

TIES = """
block MLP(d: int) {
    linear(2 * d) as fc1 -> relu -> linear(d) as fc2
}

network ties(d: int = 8, n: int = 3) {
    input x: [N, L=4, D=8]
    h = linear(16, tie="dec") as enc                      # tied to an op defined later
    h = h -> relu -> linear(8) as mid
    y = h -> linear(16) as dec                            # the owner
    y -> linear(8, layout="in_out", tie="dec") as back    # transposed: reads dec.weight as [in, out]
    repeat n as h (i) { MLP(d, tie="h.0") }               # one module shared by the whole stage
    repeat n as g (i) { MLP(d, tie="h.{n - 1 - i}") }     # a template: g.i shares h.(n-1-i)
}
"""

F = torch.nn.functional


def reference(sd, x, n=3):
    """The network written out with the owners' tensors only."""
    h = F.linear(x, sd["dec.weight"], sd["dec.bias"])                 # enc is dec
    h = F.linear(F.relu(h), sd["mid.weight"], sd["mid.bias"])
    y = F.linear(h, sd["dec.weight"], sd["dec.bias"])
    y = y @ sd["dec.weight"] + sd["back.bias"]                        # back: dec's weight, transposed
    for _ in range(2 * n):                                            # h.*, g.*: all h.0
        y = F.linear(F.relu(F.linear(y, sd["h.0.fc1.weight"], sd["h.0.fc1.bias"])),
                     sd["h.0.fc2.weight"], sd["h.0.fc2.bias"])
    return y


def owners(g):
    return {n.path: dict(n.attrs["_tie"]) for n in g.nodes if n.attrs.get("_tie")}


def test_tie_graph_later_transposed_stage_and_template():
    g = resdsl.graph(TIES)
    ties = owners(g)
    assert ties["enc"] == {"weight": "dec.weight", "bias": "dec.bias"}    # the owner comes later
    assert ties["back"] == {"weight": "dec.weight"}                        # transposed: the weight only
    assert "h.0.fc1" not in ties                                           # the stage's first owns
    for i in (1, 2):
        assert ties[f"h.{i}.fc1"] == {"weight": "h.0.fc1.weight", "bias": "h.0.fc1.bias"}
    for i in range(3):  # g.i -> h.(2-i) -> h.0: a chain of ties ends at the first owner
        assert ties[f"g.{i}.fc2"] == {"weight": "h.0.fc2.weight", "bias": "h.0.fc2.bias"}
    # counted once: mid, dec, back's bias and one MLP
    assert g.num_params() == (8 * 16 + 8) + (16 * 8 + 16) + 8 + (8 * 16 + 16 + 16 * 8 + 8)


def test_tie_features_build_standalone_and_onnx(tmp_path):
    import onnxruntime as ort
    gm = resdsl.build(TIES, seed=0).eval()
    sd = gm.state_dict()
    assert gm.enc.weight is gm.dec.weight and gm.back.weight is gm.dec.weight
    assert gm.back.bias is not gm.dec.bias and gm.back.weight.shape == (16, 8)
    assert gm.get_submodule("g.0.fc1").weight is gm.get_submodule("h.0.fc1").weight
    assert sum(p.numel() for p in gm.parameters()) == resdsl.graph(TIES).num_params()
    x = torch.randn(2, 4, 8)
    ref = reference(sd, x)
    torch.testing.assert_close(gm(x), ref)
    # a state_dict with every key loads strictly and keeps the ties
    gm.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=True)
    assert gm.enc.weight is gm.dec.weight
    # the standalone file
    path = tmp_path / "ties_mod.py"
    path.write_text(resdsl.to_python(TIES))
    m = import_file(path).ties(seed=0).eval()
    assert m.enc.weight is m.dec.weight and m.back.weight is m.dec.weight
    assert m.get_submodule("g.2.fc2").weight is m.get_submodule("h.0.fc2").weight
    m.load_state_dict(sd, strict=True)
    torch.testing.assert_close(m(x), ref)
    # ONNX: one initializer per owner
    model = resdsl.to_onnx(TIES, weights=sd)
    names = {i.name for i in model.graph.initializer}
    assert {"dec.weight", "h.0.fc1.weight", "back.bias"} <= names
    assert not names & {"enc.weight", "back.weight", "h.1.fc1.weight", "g.0.fc2.weight"}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-5)


def test_layout_in_out_linear_matches_torch_linear():
    src = """
network conv1d(d: int = 6) {
    input x: [N, L=3, D=6]
    linear(10, layout="in_out") as c_fc
}
"""
    gm = resdsl.build(src, seed=0)
    assert tuple(gm.c_fc.weight.shape) == (6, 10)  # [in, out], as Hugging Face's Conv1D
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(gm(x), F.linear(x, gm.c_fc.weight.t(), gm.c_fc.bias))
    e = check_error(src.replace('"in_out"', '"inout"'))
    assert e.kind == "value" and "in_out" in e.message


@pytest.mark.parametrize("decl,shape", [("[N, D=6]", (3, 6)), ("[N, L=3, D=6]", (2, 3, 6))])
def test_layout_in_out_standalone_and_onnx(decl, shape, tmp_path):
    """Gemm without transB on rank 2, MatMul without a Transpose above; the file's LinearInOut."""
    import onnxruntime as ort
    src = f"network io() {{\n    input x: {decl}\n    linear(10, layout=\"in_out\") as a -> linear(4, layout=\"in_out\", bias=false) as b\n}}\n"
    gm = resdsl.build(src, seed=0).eval()
    x = torch.randn(*shape)
    want = (x @ gm.a.weight + gm.a.bias) @ gm.b.weight
    torch.testing.assert_close(gm(x), want)
    path = tmp_path / "io_mod.py"
    path.write_text(resdsl.to_python(src))
    m = import_file(path).io().eval()
    m.load_state_dict(gm.state_dict(), strict=True)
    torch.testing.assert_close(m(x), want)
    model = resdsl.to_onnx(src, weights=gm.state_dict())
    assert not [n for n in model.graph.node if n.op_type == "Transpose"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), want, rtol=1e-4, atol=1e-5)


def test_tie_names_itself_is_the_owner():
    src = """
network self_tie() {
    input x: [N, D=8]
    linear(8, tie="a") as a -> linear(8, tie="a") as b
}
"""
    assert owners(resdsl.graph(src)) == {"b": {"weight": "a.weight", "bias": "a.bias"}}


BASE = """
block MLP(d: int) {
    linear(2 * d) as fc1 -> relu -> linear(d) as fc2
}

network bad(d: int = 8) {
    input x: [N, L=4, D=8]
    y = linear(16) as dec
    LINE
}
"""


@pytest.mark.parametrize("line,kind,words", [
    ('y -> linear(8, tie="dce")', "name", ["no op with weights", "dce", "did you mean `dec`"]),
    ('y -> linear(16, tie="later") -> linear(8) as latr', "name", ["no op with weights", "later"]),
    ('y -> linear(8, tie="dec")', "shape", ["shapes differ", "[8, 16]", "[16, 8]", "transposed"]),
    ('y -> linear(4, layout="in_out", tie="dec")', "shape", ["shapes differ", "[16, 4]", "[16, 8]"]),
    ('y -> relu(tie="dec")', "type", ["no weights to tie"]),
    ('y -> linear(8, tie=3)', "type", ["must name an op"]),
    ('y -> linear(16, tie="d{1 + }c")', "syntax", []),
    ('y -> linear(16, tie="d{[1]}c")', "type", ["piece of a string", "got list"]),
    ('y -> MLP(8, tie="mpl") as mlp -> MLP(8) as mlp2', "name", ["mpl.fc1"]),
    ('y -> linear(16, tie="b") as a -> linear(16, tie="a") as b', "name", ["tied to each other"]),
])
def test_tie_errors_point_at_the_tie(line, kind, words):
    e = check_error(BASE.replace("LINE", line))
    assert e.kind == kind, e
    for w in words:
        assert w in e.message + (e.help or "") + (e.label or ""), (w, e)
    assert e.span is not None and e.span.line == 9


def test_block_tie_to_a_block_defined_later():
    src = """
block MLP(d: int) {
    linear(2 * d) as fc1 -> relu -> linear(d) as fc2
}

network later(d: int = 8) {
    input x: [N, D=8]
    MLP(d, tie="enc.{1 + 1}") as first
    repeat 3 as enc (i) { MLP(d) }
}
"""
    g = resdsl.graph(src)
    assert owners(g) == {"first.fc1": {"weight": "enc.2.fc1.weight", "bias": "enc.2.fc1.bias"},
                         "first.fc2": {"weight": "enc.2.fc2.weight", "bias": "enc.2.fc2.bias"}}
    gm = resdsl.build(src, seed=0).eval()
    assert gm.first.fc1.weight is gm.enc[2].fc1.weight
    x = torch.randn(2, 8)
    mlp = gm.enc[2]
    torch.testing.assert_close(gm(x), gm.enc[2](gm.enc[1](gm.enc[0](mlp(x)))))
