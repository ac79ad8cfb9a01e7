"""timm's model interface on resdsl models (resdsl/factory.py, resdsl/backends/torch/heads.py) and
the annotations it comes from (`@classifier`, `@features`, `@forward_features`).

References: timm's own models and `adapt_input_conv`, torchvision's models,
`create_feature_extractor` and `FeaturePyramidNetwork`, all given the same weights."""
from __future__ import annotations

import copy
import logging
import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import timm
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

import resdsl
from resdsl import ResdslError

ROOT = Path(__file__).resolve().parents[1]
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tv18():
    torch.manual_seed(1)
    m = torchvision.models.resnet18().eval()
    _randomise_bn(m)
    return m


def _randomise_bn(m):
    """Give BatchNorm statistics other than 0 / 1, so that a wrong one shows."""
    g = torch.Generator().manual_seed(2)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


def _timm18(sd, **kw):
    m = timm.create_model("resnet18", pretrained=False, **kw).eval()
    m.load_state_dict(sd)
    return m


# ------------------------------------------------------------------ forward_features / forward_head
def test_resnet18_features_and_head_equal_timm_s(tv18):
    sd = tv18.state_dict()
    m = resdsl.create_model("resnet18", weights=sd).eval()
    t = _timm18(sd)
    with torch.no_grad():
        f, tf = m.forward_features(X), t.forward_features(X)
        assert torch.equal(f, tf)
        assert torch.equal(m.forward_head(f), t.forward_head(tf))
        assert torch.equal(m.forward_head(f, pre_logits=True), t.forward_head(tf, pre_logits=True))
        assert torch.equal(m.forward_head(f), m(X))
    assert (m.num_features, m.head_hidden_size, m.num_classes) == (t.num_features, t.head_hidden_size, 1000)
    assert m.get_classifier() is m.fc
    assert m.feature_info == [{k: d[k] for k in ("num_chs", "reduction", "module")} for d in t.feature_info]


def test_state_dict_keys_and_forward_are_build_s(tv18):
    m = resdsl.create_model("resnet18", seed=0)
    b = resdsl.build("resnet18", seed=0)
    assert list(m.state_dict()) == list(b.state_dict()) == list(tv18.state_dict())
    assert all(torch.equal(a, c) for a, c in zip(m.state_dict().values(), b.state_dict().values()))
    assert m.code == b.code
    assert hasattr(b, "forward_features")  # build gives the interface too


# ------------------------------------------------------------------ a new head on a checkpoint
@pytest.mark.parametrize("how", ["num_classes", "classes"])
def test_a_1000_class_checkpoint_with_10_classes_gets_a_new_head(tv18, tmp_path, caplog, how):
    ckpt = tmp_path / "r18.pt"
    torch.save(tv18.state_dict(), ckpt)
    with caplog.at_level(logging.WARNING, logger="resdsl"):
        m = resdsl.create_model("resnet18", weights=str(ckpt), seed=3, **{how: 10}).eval()
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "fc.weight [1000, 512]" in msg and "fc.bias [1000]" in msg and "[10, 512]" in msg and str(ckpt) in msg
    assert m(X).shape == (2, 10) and m.num_classes == 10
    sd = tv18.state_dict()
    for k, v in m.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(v, sd[k]), k
    # the head is the network's own initialisation for that seed, as without a checkpoint
    fresh = resdsl.create_model("resnet18", seed=3, num_classes=10)
    assert torch.equal(m.fc.weight, fresh.fc.weight) and torch.equal(m.fc.bias, fresh.fc.bias)
    with torch.no_grad():
        assert torch.equal(m.forward_features(X), _timm18(sd).forward_features(X))


def test_a_fitting_classifier_loads_and_a_bad_other_key_still_fails(tv18):
    sd = tv18.state_dict()
    m = resdsl.create_model("resnet18", weights=sd)
    assert torch.equal(m.fc.weight, sd["fc.weight"])
    bad = dict(sd)
    bad["layer1.0.conv1.weight"] = bad["layer1.0.conv1.weight"][:, :3]
    with pytest.raises(ResdslError, match=r"wrong shape \(1\): layer1.0.conv1.weight"):
        resdsl.create_model("resnet18", weights=bad, num_classes=10)


def test_num_classes_zero_gives_the_pooled_features(tv18):
    sd = tv18.state_dict()
    m = resdsl.create_model("resnet18", weights=sd, num_classes=0).eval()
    t = _timm18(sd)
    with torch.no_grad():
        assert torch.equal(m(X), t.forward_head(t.forward_features(X), pre_logits=True))
    assert isinstance(m.get_classifier(), torch.nn.Identity) and m.num_classes == 0
    assert not any(k.startswith("fc.") for k in m.state_dict())
    t.reset_classifier(0)
    with torch.no_grad():
        assert torch.equal(m(X), t(X))


def test_reset_classifier_and_deepcopy():
    m = resdsl.create_model("resnet18", seed=0).eval()
    m.reset_classifier(7)
    assert m(X).shape == (2, 7) and m.get_classifier().in_features == 512
    m2 = copy.deepcopy(m)
    with torch.no_grad():
        assert torch.equal(m2.forward_head(m2.forward_features(X)), m(X))
    m.reset_classifier(0)
    assert m(X).shape == (2, 512)
    with pytest.raises(ResdslError, match="non-negative"):
        m.reset_classifier(-1)


# ------------------------------------------------------------------ in_chans
@pytest.mark.parametrize("c", [1, 2, 4, 5])
def test_adapt_input_conv_equals_timm_s(c):
    from timm.models import adapt_input_conv as ref

    from resdsl.backends.torch.heads import adapt_input_conv
    w = torch.randn(64, 3, 7, 7, generator=torch.Generator().manual_seed(c))
    assert torch.equal(adapt_input_conv(c, w), ref(c, w.clone()))
    w6 = torch.randn(8, 6, 3, 3)  # a stem trained on two stacked RGB frames, to 1 channel
    assert torch.equal(adapt_input_conv(1, w6), ref(1, w6.clone()))


@pytest.mark.parametrize("c", [1, 4])
def test_in_chans_adapts_the_first_convolution(tv18, c):
    from timm.models import adapt_input_conv as ref
    sd = tv18.state_dict()
    m = resdsl.create_model("resnet18", weights=sd, in_chans=c).eval()
    t = timm.create_model("resnet18", pretrained=False, in_chans=c).eval()
    t.load_state_dict(dict(sd, **{"conv1.weight": ref(c, sd["conv1.weight"].clone())}))
    x = torch.randn(2, c, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), t(x))
    assert m.conv1.in_channels == c


# ------------------------------------------------------------------ drop_path_rate
def test_drop_path_rate_sets_the_network_s_parameter():
    """ConvNeXt's stochastic depth rises linearly to drop_path_rate, as torchvision's does."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    from torchvision.ops import StochasticDepth
    dims, depths = [8, 16, 32, 64], [1, 2, 2, 1]
    m = resdsl.create_model("convnext_tiny", drop_path_rate=0.3, dims=dims, depths=depths, seed=0)
    ours = [mod.p for mod in m.modules() if type(mod).__name__ == "DropPath"]
    cfg = [CNBlockConfig(d, dims[i + 1] if i + 1 < len(dims) else None, n)
           for i, (d, n) in enumerate(zip(dims, depths))]
    ref = [mod.p for mod in ConvNeXt(cfg, stochastic_depth_prob=0.3).modules() if isinstance(mod, StochasticDepth)]
    assert ours == pytest.approx([p for p in ref if p > 0]) and max(ours) == pytest.approx(0.3)
    with pytest.raises(ResdslError, match="no drop-path parameter") as e:
        resdsl.create_model("resnet18", drop_path_rate=0.1)
    assert "classes" in e.value.help


# ------------------------------------------------------------------ features_only
def test_features_only_equals_timm_s(tv18):
    sd = tv18.state_dict()
    f = resdsl.create_model("resnet18", weights=sd, features_only=True).eval()
    t = timm.create_model("resnet18", pretrained=False, features_only=True).eval()
    t.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")})
    with torch.no_grad():
        ours, ref = f(X), t(X)
    assert isinstance(ours, list) and len(ours) == len(ref) == 5
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    for what in ("channels", "reduction", "module_name"):
        assert getattr(f.feature_info, what)() == getattr(t.feature_info, what)(), what
    assert f.feature_info.get_dicts() == t.feature_info.get_dicts()
    assert not any(k.startswith("fc.") for k in f.state_dict())


def test_out_indices_as_timm(tv18):
    f = resdsl.create_model("resnet18", features_only=True, out_indices=(-1, 2))
    assert f.feature_info.module_name() == ["layer4", "layer2"] and len(f(X)) == 2
    assert resdsl.create_model("resnet18", features_only=True, out_indices=2).feature_info.out_indices == (3, 4)
    with pytest.raises(ResdslError, match="stage 5 does not exist"):
        resdsl.create_model("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(ResdslError, match="features_only=True"):
        resdsl.create_model("resnet18", out_indices=(1,))


def test_resnet50_stages_equal_torchvision_feature_extractor():
    torch.manual_seed(4)
    tv = _randomise_bn(torchvision.models.resnet50().eval())
    f = resdsl.create_model("resnet50", weights=tv.state_dict(), features_only=True, out_indices=(1, 2, 3, 4)).eval()
    ref = create_feature_extractor(tv, {f"layer{i}": f"layer{i}" for i in range(1, 5)})
    with torch.no_grad():
        ours, theirs = f(X), ref(X)
    assert [tuple(o.shape[1:2]) for o in ours] == [(256,), (512,), (1024,), (2048,)]
    for o, k in zip(ours, f.feature_info.module_name()):
        torch.testing.assert_close(o, theirs[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_feature_pyramid_network_on_the_features(name):
    """torchvision's FPN on our stages gives what it gives on torchvision's own (same weights)."""
    from torchvision.ops import FeaturePyramidNetwork
    torch.manual_seed(5)
    tv = getattr(torchvision.models, name)().eval()
    f = resdsl.create_model(name, weights=tv.state_dict(), features_only=True, out_indices=(1, 2, 3, 4)).eval()
    fpn = FeaturePyramidNetwork(f.feature_info.channels(), out_channels=32).eval()
    ref = create_feature_extractor(tv, {f"layer{i}": f"layer{i}" for i in range(1, 5)})
    with torch.no_grad():
        ours = fpn(OrderedDict(zip(f.feature_info.module_name(), f(X))))
        theirs = fpn(ref(X))
    assert [tuple(v.shape) for v in ours.values()] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2)]
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_mobilenet_v3_features_and_head_equal_torchvision():
    torch.manual_seed(6)
    tv = torchvision.models.mobilenet_v3_large().eval()
    sd = tv.state_dict()
    m = resdsl.create_model("mobilenet_v3_large", weights=sd).eval()
    f = resdsl.create_model("mobilenet_v3_large", weights=sd, features_only=True).eval()
    ref = create_feature_extractor(tv, {p: p for p in f.feature_info.module_name()})
    with torch.no_grad():
        torch.testing.assert_close(m.forward_features(X), tv.features(X), rtol=0, atol=1e-6)
        for o, (k, v) in zip(f(X), ref(X).items()):
            torch.testing.assert_close(o, v, rtol=0, atol=1e-6)
    assert f.feature_info.channels() == [16, 24, 40, 112, 960] and f.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert (m.num_features, m.head_hidden_size) == (960, 1280)
    m.reset_classifier(5)
    assert m(X).shape == (2, 5) and m.get_classifier() is m.get_submodule("classifier.3")
    assert m.get_classifier().in_features == 1280


@pytest.mark.slow
def test_vit_forward_features_is_torchvision_s_encoder_output():
    torch.manual_seed(7)
    tv = torchvision.models.vit_b_32().eval()
    m = resdsl.create_model("vit_b_32", weights=tv.state_dict()).eval()
    x = torch.randn(1, 3, 224, 224)
    ref = create_feature_extractor(tv, ["encoder.ln"])
    with torch.no_grad():
        f = m.forward_features(x)
        torch.testing.assert_close(f, ref(x)["encoder.ln"], rtol=0, atol=1e-5)
        torch.testing.assert_close(m.forward_head(f), tv(x), rtol=0, atol=1e-5)
    assert (m.num_features, m.head_hidden_size) == (768, 768)


# ------------------------------------------------------------------ compile, export
def test_interface_models_compile_and_export():
    m = resdsl.create_model("resnet18", seed=0, num_classes=10).eval()
    with torch.no_grad():
        want = m(X)
        torch.testing.assert_close(torch.compile(m, backend="eager")(X), want)
        torch.testing.assert_close(torch.compile(m.forward_features, backend="eager")(X), m.forward_features(X))
    ep = torch.export.export(m, (X,))
    torch.testing.assert_close(ep.module()(X), want)
    f = resdsl.create_model("resnet18", seed=0, features_only=True).eval()
    outs = torch.export.export(f, (X,)).module()(X)
    assert [o.shape[1] for o in outs] == f.feature_info.channels()


# ------------------------------------------------------------------ pretrained= takes the same road
def test_pretrained_goes_through_load_pretrained(tv18, monkeypatch, caplog):
    """pretrained= with a new head takes the checkpoint from resdsl.pretrained.load_pretrained (the
    download itself is tested against local servers in test_pretrained_download.py; here it is
    replaced so that this test needs no server) and loads all but the classifier."""
    import resdsl.pretrained as P
    calls = []

    def load_pretrained(name, tag=None, progress=None):
        calls.append((name, tag))
        return tv18.state_dict(), P.get_pretrained_cfg(name, tag)

    monkeypatch.setattr(P, "load_pretrained", load_pretrained)
    with caplog.at_level(logging.WARNING, logger="resdsl"):
        m = resdsl.create_model("resnet18", pretrained="a1_in1k", num_classes=3).eval()
    assert calls == [("resnet18", "a1_in1k")] and m.pretrained_cfg.tag == "a1_in1k"
    assert "resnet18.a1_in1k: new classifier `fc` for 3 classes" in caplog.text
    assert m.fc.out_features == 3
    with torch.no_grad():
        assert torch.equal(m.forward_features(X), _timm18(tv18.state_dict()).forward_features(X))
    with pytest.raises(ResdslError, match="not both"):
        resdsl.create_model("resnet18", pretrained=True, weights=tv18.state_dict())
    with pytest.raises(ResdslError):
        resdsl.create_model("network n { input x: [N, 3, H, W]\n conv(4, 3) }", pretrained=True)


# ------------------------------------------------------------------ the annotations
NET = """block B(c: int) {{
    conv(c, 3, padding=1) as conv -> relu
}}

network n(classes: int = 4) {{
    input x: [N, 3, H, W]
    conv(8, 3, stride=2, padding=1) as stem -> relu as act
    for s in range(2) {{
        B(8 * (s + 1)) as stage{{s + 1}} -> maxpool(2)
        {features}
    }}
    {{ adaptive_avgpool(1) -> flatten -> linear(classes) as fc }} as head
    {classifier}
}}
"""


def _net(features="@features stage{s + 1}", classifier="@classifier head.fc"):
    return NET.format(features=features, classifier=classifier)


def test_annotations_in_a_user_network():
    m = resdsl.create_model(_net(), seed=0, num_classes=6).eval()
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 6)
    assert m.feature_info == [{"num_chs": 8, "reduction": 2, "module": "stage1"},
                              {"num_chs": 16, "reduction": 4, "module": "stage2"}]
    f = resdsl.create_model(_net(), seed=0, features_only=True)
    assert [tuple(o.shape) for o in f(torch.randn(1, 3, 32, 32))] == [(1, 8, 16, 16), (1, 16, 8, 8)]


@pytest.mark.parametrize("features,classifier,kind,msg,line,col,hint", [
    ("@features stage{s + 1}", "@classifier head.fcc", "name", "`@classifier` names `head.fcc`, which is not a path",
     13, 17, "did you mean `head.fc`"),
    ("@features stag{s + 1}", "@classifier head.fc", "name", "names `stag1`", 10, 19, "`stage1`"),
    ("@features stage{s + 1}", "@classifier head", "type", "which is 3 ops; the classifier is one linear", 13, 17,
     "did you mean `head.fc`"),
    ("@features stage{s + 1}", "@classify head.fc", "name", "unknown annotation `@classify`", 13, 5,
     "`classifier`"),
    ("@features stage{s + 1}, stage1", "", "name", "lists `stage1` twice", 10, 33, None),
    ("@features stage{s + 1}", "@features head", "shape", "a feature stage is a map [N, C, ...]", 13, 15, None),
])
def test_annotation_errors_point_at_the_annotation(features, classifier, kind, msg, line, col, hint):
    with pytest.raises(ResdslError) as e:
        resdsl.graph(_net(features, classifier))
    err = e.value
    assert err.kind == kind and msg in err.message
    if line is not None:
        assert (err.span.line, err.span.column) == (line, col)
    if hint is not None:
        assert hint in (err.help or "")


def test_annotation_in_a_block_is_an_error_and_a_network_used_as_a_block_keeps_its_own():
    src = "block B() {\n    relu as r\n    @features r\n}\nnetwork n {\n    input x: [N, 3, H, W]\n    B()\n}\n"
    with pytest.raises(ResdslError, match="cannot stand in a block") as e:
        resdsl.graph(src)
    assert (e.value.span.line, e.value.span.column) == (3, 5)
    outer = _net() + "\nnetwork outer {\n    input x: [N, 3, H, W]\n    n(4) as inner\n}\n"
    g = resdsl.graph(outer, network="outer")
    assert "interface" not in g.root.info


def test_head_that_reads_more_than_forward_features_is_an_error():
    src = """network n {
    input x: [N, 3, H, W]
    a = conv(8, 3, padding=1) as stem
    b = conv(8, 3, padding=1) as body
    @forward_features body
    (a + b) -> adaptive_avgpool(1) -> flatten -> linear(2) as fc
    @classifier fc
}
"""
    with pytest.raises(ResdslError, match="also reads") as e:
        resdsl.graph(src)
    assert e.value.span.line == 5


def test_stdlib_networks_declare_what_timm_declares():
    """feature_info of the stdlib networks against timm's models of the same architecture."""
    from resdsl.ir import interface as I
    pairs = {"resnet50": "resnet50", "resnext50_32x4d": "resnext50_32x4d", "densenet121": "densenet121",
             "convnext_tiny": "convnext_tiny",
             "mobilenet_v3_large": "mobilenetv3_large_100", "resnetv2_50": "resnetv2_50",
             "inception_resnet_v2": "inception_resnet_v2", "resnet26t": "resnet26t"}
    for ours, theirs in pairs.items():
        g = resdsl.graph(ours)
        info = I.feature_info(g, I.interface(g))
        ref = timm.create_model(theirs, pretrained=False, features_only=True).feature_info
        assert [d["num_chs"] for d in info] == ref.channels(), ours
        assert [d["reduction"] for d in info] == ref.reduction(), ours


def test_docs_feature_pyramid_sample_runs(capsys):
    text = (ROOT / "docs" / "api.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "FeaturePyramidNetwork" in b)
    exec(compile(block, "docs/api.md", "exec"), {})  # the repository's own docs, not user input
    out = capsys.readouterr().out
    assert "[64, 128, 256, 512] [4, 8, 16, 32]" in out and "'layer4': (1, 64, 2, 2)" in out


@pytest.mark.parametrize("kw,msg", [
    ({"pretrained": 1}, "pretrained must be True, False or a tag"), ({"num_classes": -1}, "non-negative"),
    ({"in_chans": 0}, "in_chans must be a positive int"), ({"drop_path_rate": 2}, r"in \[0, 1\)"),
    ({"num_classes": 5, "classes": 7}, "disagree"),
])
def test_bad_keywords_are_usage_errors(kw, msg):
    with pytest.raises(ResdslError, match=msg) as e:
        resdsl.create_model("resnet18", **kw)
    assert e.value.kind == "usage"
