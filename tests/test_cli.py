"""The command line as a user runs it."""
import os

import torch
import torchvision

from conftest import ROOT, run_cli as cli

RESNET = os.path.join(ROOT, "stdlib", "resnet.res")


def test_check_reports_shape_and_torchvision_param_count():
    r = cli("check", RESNET, "--network", "resnet50")
    assert r.returncode == 0, r.stderr
    n = sum(p.numel() for p in torchvision.models.resnet50().parameters())
    assert f"{n:,} parameters" in r.stdout
    assert "resnet50: (x: [N, 3, H, W]) -> [N, 1000]" in r.stdout


def test_check_with_set_and_config(tmp_path):
    r = cli("check", RESNET, "-n", "resnet18", "--set", "classes=10", "--set", "layers=[1, 1, 1, 1]")
    assert r.returncode == 0, r.stderr
    m = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)
    assert f"{sum(p.numel() for p in m.parameters()):,} parameters" in r.stdout and "-> [N, 10]" in r.stdout
    cfg = tmp_path / "c.yaml"
    cfg.write_text("block: Bottleneck\nlayers: [3, 4, 6, 3]\n")
    r = cli("check", RESNET, "-n", "ResNet", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "25,557,032 parameters" in r.stdout


def test_ir_is_stable_text_across_processes():
    a = cli("ir", os.path.join(ROOT, "examples/cifar_resnet.res"), env={"PYTHONHASHSEED": "1"})
    b = cli("ir", os.path.join(ROOT, "examples/cifar_resnet.res"), env={"PYTHONHASHSEED": "7"})
    assert a.returncode == 0 and a.stdout == b.stdout
    assert a.stdout.startswith("network resnet20(%x: [N, 3, 32, 32]) -> ([N, 10]) {")
    assert "@stage2.0.shortcut.0 : [N, 32, 16, 16]" in a.stdout


def test_ir_input_shape_fixes_symbolic_axes():
    r = cli("ir", RESNET, "-n", "resnet18", "--input-shape", "1,3,64,64")
    assert r.returncode == 0, r.stderr
    assert "[1, 512, 2, 2]" in r.stdout and "H/" not in r.stdout


def test_compile_torch_writes_importable_module(tmp_path):
    out = tmp_path / "rn18.py"
    r = cli("compile", RESNET, "-n", "resnet18", "--target", "torch", "-o", str(out))
    assert r.returncode == 0, r.stderr
    ns = {}
    exec(compile(out.read_text(), str(out), "exec"), ns)
    model = ns["resnet18"](seed=0)
    tv = torchvision.models.resnet18()
    model.load_state_dict(tv.state_dict(), strict=True)
    model.eval(), tv.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x))
    assert model.layer1[0].conv1 is dict(model.named_modules())["layer1.0.conv1"]


def test_several_networks_listed():
    r = cli("ir", RESNET)  # a command that needs one network says which there are
    assert r.returncode == 1
    assert "resnet18, resnet34, resnet50" in r.stderr and "--network" in r.stderr


def test_usage_errors_are_argparse_errors(tmp_path):
    r = cli("compile", RESNET, "-n", "resnet18", "--target", "tflite", "-o", "x")
    assert r.returncode == 2 and "invalid choice" in r.stderr
