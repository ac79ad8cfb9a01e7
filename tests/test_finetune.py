"""examples/finetune.py (docs/training.md): a pretrained network, a new head, a few hundred
upsampled digits; the weights come from a server on 127.0.0.1 through torch.hub."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import resdsl
from resdsl import pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrained_servers import hub_name, make_tv_checkpoint, serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_finetune_example_learns_digits_from_a_served_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    _, data = make_tv_checkpoint("resnet18")
    name = hub_name("resnet18", data)
    entry = next(e for e in pretrained.registry_data()["networks"]["resnet18"]["tags"] if e["tag"] == "IMAGENET1K_V1")
    spec = importlib.util.spec_from_file_location("finetune", ROOT / "examples" / "finetune.py")
    finetune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(finetune)
    with serve() as srv:
        srv.files["/models/" + name] = data
        monkeypatch.setitem(entry, "url", f"{srv.url}/models/{name}")
        out = finetune.main(["--images", "192", "--test-images", "200", "--size", "32", "--epochs", "2",
                             "--lr", "3e-3"])
        assert len(srv.requests) == 1
    losses = out["losses"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    assert out["test_acc"] > 0.3  # ten classes: chance is 0.1
    m = finetune.pretrained_with_new_head("resnet18", None, 10)  # the cached file: no server needed
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert resdsl.data_config(m)["mean"] == (0.485, 0.456, 0.406)
