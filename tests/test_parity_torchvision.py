"""stdlib/resnet.res against torchvision's ResNet family: names, counts, outputs.

Each torchvision model is built once per module (a fixture per network); BatchNorm
running statistics and affine weights are randomised so that eval mode is not a
near-identity and a wrong BN wiring shows up.
"""

import pytest
import torch
import torchvision

import resdsl

from conftest import ROOT

RESNET = str(ROOT / "stdlib" / "resnet.res")
NETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2",
        "resnext50_32x4d", "resnext101_32x8d"]
TOL = dict(rtol=1e-4, atol=1e-5)


def _randomise_bn(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.5)
                m.bias.copy_(torch.rand(c, generator=gen) * 0.2 - 0.1)
                m.num_batches_tracked.fill_(7)


@pytest.fixture(scope="module", params=NETS)
def pair(request):
    """(name, torchvision model with randomised BN, its state_dict copy, resdsl GraphModule)."""
    name = request.param
    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)()
    _randomise_bn(tv, torch.Generator().manual_seed(1))
    state = {k: v.clone() for k, v in tv.state_dict().items()}
    gm = resdsl.build(RESNET, network=name, seed=0)
    yield name, tv, state, gm


@pytest.mark.slow
def test_state_dict_names_order_and_counts(pair):
    name, tv, state, gm = pair
    assert list(gm.state_dict()) == list(state)  # same keys, same order
    for k, v in gm.state_dict().items():
        assert v.shape == state[k].shape and v.dtype == state[k].dtype, k
    gm.load_state_dict(state, strict=True)
    n = sum(p.numel() for p in gm.parameters())
    assert n == sum(p.numel() for p in tv.parameters())
    assert n == resdsl.graph(RESNET, network=name).num_params()
    if name == "resnet50":
        assert n == 25_557_032  # torchvision's documented figure


@pytest.mark.slow
def test_outputs_eval_and_train(pair):
    name, tv, state, gm = pair
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    gm.load_state_dict(state, strict=True)
    tv.load_state_dict(state, strict=True)
    gm.eval()
    tv.eval()
    with torch.no_grad():
        ref = tv(x)
        assert ref.abs().max() > 1e-3  # not a degenerate comparison
        torch.testing.assert_close(gm(x), ref, **TOL)
    gm.train()
    tv.train()
    with torch.no_grad():
        torch.testing.assert_close(gm(x), tv(x), **TOL)
    tsd, gsd = tv.state_dict(), gm.state_dict()
    assert not torch.equal(tsd["bn1.running_mean"], state["bn1.running_mean"])  # train mode did update
    for k, v in tsd.items():  # the updated running statistics agree
        torch.testing.assert_close(gsd[k], v, **TOL, msg=k)


def test_seed_reproducible():
    a = resdsl.build(RESNET, network="resnet18", seed=5).state_dict()
    b = resdsl.build(RESNET, network="resnet18", seed=5).state_dict()
    c = resdsl.build(RESNET, network="resnet18", seed=6).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert not torch.equal(a["layer4.1.conv2.weight"], c["layer4.1.conv2.weight"])
    # initialisation follows torchvision's: kaiming_normal(fan_out) convs, so the same std
    tv = torchvision.models.resnet18()
    for k in ("conv1.weight", "layer3.0.conv2.weight", "layer4.0.downsample.0.weight"):
        std, tstd = a[k].std().item(), tv.state_dict()[k].std().item()
        assert abs(std - tstd) / tstd < 0.1, (k, std, tstd)


def test_generated_code_reads_like_torchvision():
    gm = resdsl.build(RESNET, network="resnet50", device="meta")
    code = gm.code
    assert "self.conv1(x)" in code and "self.layer1" in code and "self.fc(" in code
    assert "downsample" in code and "torch.relu_(" in code
    assert "torch.fx" not in code and "wrap" not in code and "call_module" not in code
    assert isinstance(gm.layer1, torch.nn.Sequential) and isinstance(gm.layer1[0].conv1, torch.nn.Conv2d)
    assert gm.layer2[0].downsample[0].stride == (2, 2)  # ResNet v1.5: stride on the 3x3 conv and downsample
    assert gm.layer2[0].conv2.stride == (2, 2) and gm.layer2[0].conv1.stride == (1, 1)
