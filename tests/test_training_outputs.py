"""Outputs marked `training` (`output logits, training aux = ...`): returned in training mode
only, as torchvision's GoogLeNet and Inception-v3 return their auxiliary logits.

Eval mode returns the main output alone and does not run what only the training outputs
need; training mode returns a namedtuple of every output under its `.res` name. Checked
on the module tree (hooks, state_dict, torch.compile), the standalone file, ONNX (the eval
form), the summary and diagrams, the parsers, and `check`'s errors.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

import resdsl
from resdsl import fuzz
from resdsl.diagnostics import ResdslError

SRC = """
block Aux(classes: int) {
    adaptive_avgpool([2, 2]) -> conv(4, 1) as conv -> flatten -> linear(classes) as fc
}

network Net(classes: int = 5) {
    input x: [N, 3, H, W]
    conv(8, 3, padding=1) as stem -> bn as bn -> relu
    a = conv(8, 3, padding=1) as body1 -> relu
    aux = a -> Aux(classes) as head_aux
    a -> conv(16, 3, stride=2, padding=1) as body2 -> relu -> dropout(0.5) as drop
    logits = adaptive_avgpool([1, 1]) -> flatten -> linear(classes) as fc
    output logits = logits, training aux_logits = aux
    @features stem, body2
    @classifier fc
}
"""


def x_of(size=16, batch=2, seed=0):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def calls(model, path):
    seen = []
    model.get_submodule(path).register_forward_hook(lambda m, i, o: seen.append(1))
    return seen


def test_eval_returns_the_main_output_without_the_aux_head():
    m = resdsl.build(SRC, seed=0)
    seen = calls(m, "head_aux")
    m.eval()
    y = m(x_of())
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5)
    assert seen == []  # the auxiliary head was not run
    m.train()
    out = m(x_of())
    assert type(out).__name__.endswith("Outputs") and out._fields == ("logits", "aux_logits")
    assert seen == [1]
    assert out.aux_logits.shape == (2, 5)
    # the eval logits are the train graph's logits with the same weights (BN in eval: compare in eval form)
    m.eval()
    with torch.no_grad():
        manual = m.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(
            torch.relu(m.body2(torch.relu(m.body1(torch.relu(m.bn(m.stem(x_of()))))))), 1), 1))
    torch.testing.assert_close(m(x_of()), manual)


def test_state_dict_holds_the_aux_head_and_loads_strictly():
    m = resdsl.build(SRC, seed=0)
    keys = set(m.state_dict())
    assert {"head_aux.conv.weight", "head_aux.fc.weight", "fc.weight"} <= keys
    m2 = resdsl.build(SRC, seed=1)
    m2.load_state_dict(m.state_dict(), strict=True)
    m.eval(), m2.eval()
    torch.testing.assert_close(m(x_of()), m2(x_of()))


def test_torch_compile_follows_the_mode():
    m = resdsl.build(SRC, seed=0)
    c = torch.compile(m, backend="eager")
    for mode in ("eval", "train"):
        getattr(m, mode)()
        with torch.no_grad():
            torch.manual_seed(3)
            want = m(x_of())
            torch.manual_seed(3)
            got = c(x_of())
        if mode == "eval":
            assert isinstance(got, torch.Tensor)
            torch.testing.assert_close(got, want)
        else:
            assert got._fields == want._fields
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b)


def test_model_interface_uses_the_eval_output():
    m = resdsl.build(SRC, seed=0).eval()
    f = m.forward_features(x_of())
    torch.testing.assert_close(m.forward_head(f), m(x_of()))
    m.reset_classifier(3)
    assert m(x_of()).shape == (2, 3)


def load_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_standalone_file_branches_on_self_training(tmp_path):
    text = resdsl.to_python(SRC)
    assert "        if self.training:\n            head_aux = self.head_aux(out)\n" in text
    assert "class NetOutputs(NamedTuple):" in text
    p = tmp_path / "net_file.py"
    p.write_text(text)
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select",
                           "E,W,F,N,B", "--line-length", "100", str(p)], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    mod = load_file(p, "net_file")
    ours, tree = mod.Net(seed=0), resdsl.build(SRC, seed=0)
    ours.load_state_dict(tree.state_dict(), strict=True)
    ours.eval(), tree.eval()
    got = ours(x_of())
    assert isinstance(got, torch.Tensor)
    torch.testing.assert_close(got, tree(x_of()))
    ours.train(), tree.train()
    torch.manual_seed(5)
    a = ours(x_of())
    torch.manual_seed(5)
    b = tree(x_of())
    assert a._fields == b._fields == ("logits", "aux_logits")
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)


def test_onnx_exports_the_eval_form():
    import onnxruntime as ort
    from resdsl.backends.onnx.export import to_onnx_model
    g = resdsl.graph(SRC)
    m = resdsl.build(SRC, seed=0).eval()
    model = to_onnx_model(g, weights={k: v.detach() for k, v in m.state_dict().items()})
    assert [o.name for o in model.graph.output] == ["logits"]
    assert not any(t.name.startswith("head_aux") for t in model.graph.initializer)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x_of().numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, m(x_of()).numpy(), rtol=1e-4, atol=1e-5)


def test_summary_and_diagram_mark_the_training_only_parts():
    g = resdsl.graph(SRC)
    text = str(resdsl.summary(SRC))
    assert "head_aux (Aux) (training only)" in text
    assert "[N, 5] (training only)" in text
    assert "stem (training only)" not in text
    from resdsl.backends.diagram.dot import to_dot
    dot = to_dot(g)
    assert "aux_logits (training only)" in dot
    assert dot.count("<B>training only</B>") == 1  # the badge of the head_aux box, nothing else


def test_fast_parser_and_lark_agree():
    for text in (SRC, "network N() {\n  input x: [1, 4]\n  output y = relu, training a = x, training b = x\n}\n"):
        assert fuzz.parser_differential(text, "<t>") == "same"
    # `training` opens an output item as a keyword (Lark's contextual lexer): not a tensor's name there
    assert fuzz.parser_differential("network N() {\n  input x: [1, 4]\n  output training, y = relu\n}\n") == "bail"


@pytest.mark.parametrize("src,line,col,what", [
    ("block B() {\n    a = conv(8, 3) as c\n    output a, training b = a -> relu\n}\n"
     "network n() {\n    input x: [N, 3, H, W]\n    B()\n}\n", 3, 15, "an output of a network, not of a block"),
    ("network n() {\n    input x: [N, 3, H, W]\n    a = conv(8, 3) as c\n    output training b = a -> relu\n}\n",
     4, 12, "only `training` outputs"),
])
def test_check_errors_point_at_the_output(src, line, col, what):
    with pytest.raises(ResdslError) as e:
        resdsl.graph(src)
    assert what in str(e.value)
    assert (e.value.span.line, e.value.span.column) == (line, col)


def test_googlenet_eval_skips_both_aux_heads():
    m = resdsl.build("stdlib/googlenet.res", network="googlenet", seed=0)
    seen1, seen2 = calls(m, "aux1"), calls(m, "aux2")
    m.eval()
    with torch.no_grad():
        assert m(x_of(64, batch=1)).shape == (1, 1000)
    assert seen1 == seen2 == []
    m.train()
    with torch.no_grad():
        out = m(x_of(64))
    assert out._fields == ("logits", "aux_logits2", "aux_logits1") and seen1 == seen2 == [1]
