"""The stdlib networks against the implementations people trust (torchvision 0.29.1, timm). For each network: the reference's state_dict loads
with strict=True, parameter counts are equal, and eval-mode outputs agree (rtol 1e-4,
atol 1e-5, fp32) after every constant tensor of the reference (BN affine, zero-initialised
last layers, layer scales, class tokens) and the BN running statistics are randomised,
so that no branch hides behind a zero or a near-zero scale."""
import math
import os

import pytest
import timm
import torch
import torchvision
from conftest import ROOT

import resdsl


def tv(name):
    return lambda: getattr(torchvision.models, name)()


def tv_cpu(name):
    """torchvision's RegNet computes its widths with torch tensors: not on the meta device."""
    def make():
        with torch.device("cpu"):
            return getattr(torchvision.models, name)()
    return make


def tm(name):
    return lambda: timm.create_model(name, pretrained=False)


# (stdlib file, network, reference, image size, batch)
CASES = [
    ("densenet.res", "densenet121", tv("densenet121"), 64, 2),
    ("convnext.res", "convnext_tiny", tv("convnext_tiny"), 64, 2),
    ("resnetv2.res", "resnetv2_50", tm("resnetv2_50"), 64, 2),
    ("senet.res", "seresnet50", tm("seresnet50"), 64, 2),
    ("vit.res", "vit_b_16", tv("vit_b_16"), 224, 1),            # ViT takes 224x224 only
    ("res2net.res", "res2net50_26w_4s", tm("res2net50_26w_4s"), 64, 2),
    ("sknet.res", "skresnet18", tm("skresnet18"), 64, 2),
    ("resmlp.res", "resmlp_12_224", tm("resmlp_12_224"), 224, 2),  # the token MLP fixes 14x14 patches
    ("dpn.res", "dpn68", tm("dpn68"), 64, 2),
    ("inception_resnet.res", "inception_resnet_v2", tm("inception_resnet_v2"), 75, 2),  # 75: smallest size
    # 72: odd sizes reach the ResNet-D shortcut's ceil_mode avgpool
    ("resnet_t.res", "resnet26t", tm("resnet26t"), 72, 2),
    ("mobilenetv3.res", "mobilenet_v3_large", tv("mobilenet_v3_large"), 64, 2),
    ("efficientnet.res", "efficientnet_v2_s", tv("efficientnet_v2_s"), 64, 2),
    ("regnet.res", "regnet_x_400mf", tv("regnet_x_400mf"), 64, 2),
]


@torch.no_grad()
def randomise(model, seed=0):
    """Give every constant tensor random values; random BN statistics."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.numel() == 1 or p.max() == p.min():
            c = 1.0 if abs(p.flatten()[0].item() - 1.0) < 0.5 else 0.0
            fan = math.prod(p.shape[1:]) if p.dim() >= 2 else 1
            std = 1 / math.sqrt(fan) if fan > 1 else 0.1
            p.copy_(c + std * torch.randn(p.shape, generator=g))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


@pytest.mark.slow
@pytest.mark.parametrize("path,network,make,size,batch", CASES, ids=[c[1] for c in CASES])
def test_same_weights_same_outputs(path, network, make, size, batch):
    torch.manual_seed(0)
    ref = make().eval()
    randomise(ref)
    # built on the meta device (no initialisation: the reference's weights replace it all)
    gm = resdsl.build(os.path.join(ROOT, "stdlib", path), network=network, device="meta")
    sd = ref.state_dict()
    assert set(gm.state_dict()) == set(sd), (
        sorted(set(sd) - set(gm.state_dict()))[:5], sorted(set(gm.state_dict()) - set(sd))[:5])
    gm.load_state_dict(sd, strict=True, assign=True)
    assert not any(t.is_meta for t in gm.state_dict().values())
    assert sum(p.numel() for p in gm.parameters()) == sum(p.numel() for p in ref.parameters())
    gm.eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), gm(x)
    assert want.shape == got.shape == (batch, 1000)
    assert want.std() > 1e-3  # the comparison is not between two constants
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# The other networks of each family: same parameter names and shapes as the reference
# (both built on the meta device: no memory, no initialisation).
FAMILY = [("densenet.res", n, tv(n)) for n in ("densenet161", "densenet169", "densenet201")] + \
    [("convnext.res", n, tv(n)) for n in ("convnext_small", "convnext_base", "convnext_large")] + \
    [("resnetv2.res", "resnetv2_101", tm("resnetv2_101"))] + \
    [("senet.res", n, tm(n)) for n in ("seresnet101", "seresnet152", "seresnext50_32x4d")] + \
    [("vit.res", n, tv(n)) for n in ("vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")] + \
    [("res2net.res", n, tm(n)) for n in ("res2net50_26w_6s", "res2net50_26w_8s", "res2net50_48w_2s",
                                         "res2net50_14w_8s", "res2net101_26w_4s")] + \
    [("sknet.res", "skresnet34", tm("skresnet34"))] + \
    [("resmlp.res", n, tm(n)) for n in ("resmlp_24_224", "resmlp_36_224", "resmlp_big_24_224")] + \
    [("dpn.res", n, tm(n)) for n in ("dpn92", "dpn98", "dpn131")] + \
    [("resnet_t.res", "resnet50t", tm("resnet50t")), ("mobilenetv3.res", "mobilenet_v3_small", tv("mobilenet_v3_small")),
     ("regnet.res", "regnet_x_800mf", tv_cpu("regnet_x_800mf"))]


@pytest.mark.parametrize("path,network,make", FAMILY, ids=[c[1] for c in FAMILY])
def test_family_parameter_names_and_shapes(path, network, make):
    with torch.device("meta"):
        ref = make()
    gm = resdsl.build(os.path.join(ROOT, "stdlib", path), network=network, device="meta")
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in gm.state_dict().items()}
    assert got == want
