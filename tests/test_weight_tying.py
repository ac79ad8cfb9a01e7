"""Weights tied across ops (`tie="wte"`): PyTorch semantics in build(), the standalone file
and ONNX, and the errors of a bad tie."""

import pytest
import torch
from conftest import check_error, import_file

import resdsl

TIED = """
network tiny_lm(vocab: int = 50, d: int = 16) {
    input idx: [N, T=8]
    x = idx -> embedding(vocab, d) as wte
    x -> ln as ln_f -> linear(vocab, bias=false, tie="wte") as lm_head
}
"""


def test_tied_weights_pytorch_semantics_build_standalone_and_onnx(tmp_path):
    import onnxruntime as ort
    gm = resdsl.build(TIED, seed=0).eval()
    sd = gm.state_dict()
    assert list(sd) == ["wte.weight", "ln_f.weight", "ln_f.bias", "lm_head.weight"]  # both keys, as GPT-2
    assert gm.lm_head.weight is gm.wte.weight
    assert sum(p.numel() for p in gm.parameters()) == resdsl.graph(TIED).num_params() == 50 * 16 + 32
    ids = torch.randint(0, 50, (2, 8))
    ref = F_linear_ref(gm, ids)
    torch.testing.assert_close(gm(ids), ref)
    # loading a checkpoint that has both keys (one tensor) works strictly; training moves both
    gm.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=True)
    assert gm.lm_head.weight is gm.wte.weight
    # the standalone file ties too
    path = tmp_path / "tied_mod.py"
    path.write_text(resdsl.to_python(TIED))
    mod = import_file(path)
    m = mod.tiny_lm(seed=0).eval()
    assert m.lm_head.weight is m.wte.weight
    torch.testing.assert_close(m(ids), gm(ids))
    # ONNX: one initializer for the shared matrix
    model = resdsl.to_onnx(TIED, seed=0)
    names = [i.name for i in model.graph.initializer]
    assert "wte.weight" in names and "lm_head.weight" not in names
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: ids.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-5)


def F_linear_ref(gm, ids):
    F = torch.nn.functional
    sd = gm.state_dict()
    x = F.embedding(ids, sd["wte.weight"])
    x = F.layer_norm(x, (16,), sd["ln_f.weight"], sd["ln_f.bias"])
    return x @ sd["wte.weight"].t()


@pytest.mark.parametrize("call,kind,msg", [
    ('linear(50, bias=false, tie="wtf")', "name", "no op with weights"),
    ('linear(40, bias=false, tie="wte")', "shape", "shapes differ"),
    ('scalar_mul(1.0, tie="wte")', "type", "no parameter in common"),
    ('relu(tie="wte")', "type", "no weights to tie"),
])
def test_tie_errors(call, kind, msg):
    e = check_error(TIED.replace('linear(vocab, bias=false, tie="wte")', call))
    assert e.kind == kind and msg in e.message
