"""Checkpoints as people save them, checked against torchvision's model."""
from __future__ import annotations


import pytest
import torch
import torchvision

import resdsl
from resdsl.cli import main


@pytest.fixture(scope="module")
def tv():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10).eval()
    for mod in m.modules():  # non-trivial BN statistics, so a wrong load shows
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m


def same(tv, weights, **kw):
    m = resdsl.build("resnet18", weights=weights, classes=10, **kw).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(m(x), tv(x))


def test_wrapped_and_prefixed_forms(tv, tmp_path):
    sd = tv.state_dict()
    ddp = torch.nn.DataParallel(tv).state_dict()          # real `module.` keys
    compiled = torch.compile(tv).state_dict()              # real `_orig_mod.` keys (no compilation runs)
    assert next(iter(ddp)).startswith("module.") and next(iter(compiled)).startswith("_orig_mod.")
    forms = {"plain": sd, "state_dict": {"state_dict": ddp, "epoch": 3}, "model": {"model": compiled, "opt": {}}}
    for name, obj in forms.items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        same(tv, str(path))
        same(tv, obj)


def test_safetensors(tv, tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tv.state_dict().items()}, str(path))
    same(tv, str(path))
    odd = tmp_path / "w.bin"  # recognised by content, not only by extension
    odd.write_bytes(path.read_bytes())
    same(tv, str(odd))


def test_rename_maps_keys_from_another_codebase(tv, tmp_path, capsys):
    other = {"backbone." + k.replace("layer", "stage"): v for k, v in tv.state_dict().items()}
    path = tmp_path / "other.pt"
    torch.save(other, path)
    same(tv, str(path), rename=[r"^backbone\.=", r"stage(\d)=layer\1"])
    out = tmp_path / "r.onnx"
    assert main(["compile", "resnet18", "--set", "classes=10", "-t", "onnx", "-o", str(out), "--weights", str(path),
                 "--rename", r"^backbone\.=", "--rename", r"stage(\d)=layer\1"]) == 0
    assert main(["compile", "resnet18", "-t", "onnx", "-o", str(out), "--weights", str(path),
                 "--rename", "nokey"]) == 2


def test_pickled_module_is_refused_with_how_to(tv, tmp_path, capsys):
    path = tmp_path / "whole.pt"
    torch.save(tv, path)
    assert main(["compile", "resnet18", "--set", "classes=10", "-t", "onnx", "-o", str(tmp_path / "x.onnx"),
                 "--weights", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error[weights]" in err and "state_dict()" in err and "Traceback" not in err
    with pytest.raises(resdsl.ResdslError, match="whole"):
        resdsl.build("resnet18", weights=tv, classes=10)


def test_missing_and_unexpected_keys_with_did_you_mean(tv):
    sd = dict(tv.state_dict())
    sd["fc.weights"] = sd.pop("fc.weight")
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.build("resnet18", weights=sd, classes=10)
    assert "missing (1): fc.weight" in e.value.message and "unexpected (1): fc.weights" in e.value.message
    assert "`fc.weights` for `fc.weight`" in e.value.help
