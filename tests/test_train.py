"""examples/train.py (issue 9, item 5): a few steps on one process and under torchrun with 2
processes (DDP and FSDP2 per block), on the built-in digits and on an ImageFolder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "examples" / "train.py")
DIGITS = str(ROOT / "examples" / "digits.res")
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

import sklearn  # noqa: E402,F401  (the digits data set ships with scikit-learn, a test extra: fail loudly without it)


def run(args, torchrun=False):
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                              if torchrun else []) + [TRAIN] + args
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_single_process_few_steps_with_checkpointing(tmp_path):
    out = run([DIGITS, "--data", "digits", "--epochs", "1", "--steps", "4", "--checkpoint", "sqrt",
               "--save", str(tmp_path / "w.pt")])
    assert "4 steps" in out and "test accuracy" in out
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert "layer1.0.conv1.weight" in state


@pytest.mark.parametrize("mode", [["--fsdp"], []])
def test_torchrun_two_processes(tmp_path, mode):
    out = run([DIGITS, "--data", "digits", "--epochs", "1", "--steps", "3", "--save", str(tmp_path / "w.pt")]
              + mode, torchrun=True)
    assert "2 process(es)" in out and ("FSDP2" in out) == bool(mode)
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert state["fc.weight"].shape == (10, 32)  # full tensors, gathered from the shards


def test_image_folder(tmp_path):
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            px = (torch.rand(12, 12, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(px).save(tmp_path / "imgs" / cls / f"{i}.png")
    out = run([str(ROOT / "examples" / "cifar_resnet.res"), "--set", "classes=2", "--data", str(tmp_path / "imgs"),
               "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--steps", "2"])
    assert "10 training images" in out and "test accuracy" in out


def test_the_script_uses_the_installed_package_not_the_checkout(tmp_path):
    """examples/train.py imports the resdsl the environment has (the wheel, an editable install),
    never the checkout beside it: a `resdsl` first on the path is the one it runs."""
    fake = tmp_path / "resdsl"
    fake.mkdir()
    (fake / "__init__.py").write_text("import sys\nprint('the installed resdsl')\nsys.exit(0)\n")
    r = subprocess.run([sys.executable, TRAIN, "--help"], capture_output=True, text=True, timeout=300,
                       env=dict(ENV, PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0 and r.stdout.strip() == "the installed resdsl", r.stdout + r.stderr
