"""The ops and language features the model-zoo networks (test_parity_zoo.py) needed, each
against a direct torch transcription: LayerNorm2d, a class token expanded over the batch, a
weighted sum of paths, lists of tensors with dotted names, EfficientNet's stochastic depth."""
import os

import pytest
import torch
import torchvision
from conftest import ROOT

import resdsl


def _net(decl, stmts):
    src = f"network n() {{\n    input x: {decl}\n    {stmts}\n}}\n"
    return resdsl.build(src, seed=0).eval()


def test_ln2d_is_torchvision_layernorm2d():
    gm = _net("[N, C=6, H=3, W=5]", "ln2d(eps=1e-6) as norm")
    norm = torchvision.models.convnext.LayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    gm.load_state_dict({"norm." + k: v for k, v in norm.state_dict().items()}, strict=True)
    x = torch.randn(2, 6, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), norm(x))


def test_expand_repeats_a_class_token_over_the_batch():
    gm = _net("[N, L=4, D=3]", "concat(expand(param([1, 1, 3], init=normal(1.0)) as cls, x), x, dim=1)")
    x = torch.randn(5, 4, 3)
    with torch.no_grad():
        y = gm(x)
        torch.testing.assert_close(y, torch.cat([gm.cls.expand(5, -1, -1), x], 1))


def test_stack_weighted_sum_of_paths():
    gm = _net("[N, C=4, H=3, W=3]", "s = stack(x, x -> relu, dim=1)\n"
                                    "    w = s -> sum(dim=[3, 4], keepdim=true) -> softmax(dim=1)\n"
                                    "    mul(s, w) -> sum(dim=1)")
    x = torch.randn(2, 4, 3, 3)
    s = torch.stack([x, x.relu()], 1)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), (s * s.sum((3, 4), keepdim=True).softmax(1)).sum(1))


def test_tensor_lists_dotted_names_and_the_current_tensor_filling_an_op():
    # parts = split(...) binds a list of tensors; a list passed to concat spreads; `as "convs.{i}"`
    # names nested parameters; `add(p)` at a statement's start adds p to the current tensor;
    # `sum` is the compile-time builtin in an expression and the op in a chain.
    gm = _net("[N, C=6, H=4, W=4]", """parts = split(2)
    let outs = []
    for i in range(3) {
        p = parts[i] -> conv(2, 1) as "convs.{i}"
        let outs = outs + [p]
    }
    concat(outs)
    add(param([1, sum([3, 3]), 1, 1], init=normal(1.0)) as bias)
    sum(dim=1)""")
    assert sorted(k for k in gm.state_dict()) == ["bias"] + [f"convs.{i}.{p}" for i in range(3)
                                                              for p in ("bias", "weight")]
    x = torch.randn(2, 6, 4, 4)
    convs = [gm.get_submodule(f"convs.{i}") for i in range(3)]
    with torch.no_grad():
        want = (torch.cat([c(x[:, 2 * i:2 * i + 2]) for i, c in enumerate(convs)], 1) + gm.bias).sum(1)
        torch.testing.assert_close(gm(x), want)


def test_a_dotted_name_must_be_well_formed():
    with pytest.raises(resdsl.ResdslError, match="not a valid name"):
        _net("[N, C=2, H=4, W=4]", 'conv(2, 1) as "convs..0"')


def test_efficientnet_v2_stochastic_depth_follows_torchvision():
    # torchvision: p = 0.2 * block index / blocks, on the blocks with a residual (p = 0 leaves no op)
    with torch.device("meta"):
        ref = torchvision.models.efficientnet_v2_s()
    want = [m.stochastic_depth.p for m in ref.modules() if getattr(m, "use_res_connect", False)]
    g = resdsl.graph(os.path.join(ROOT, "stdlib", "efficientnet.res"), "efficientnet_v2_s")
    got = [n.attrs["p"] for n in g.nodes if n.op == "drop_path"]
    assert got == pytest.approx([p for p in want if p > 0])
    assert len(got) == 34
