"""benchmarks/gpu.py on the CPU with --smoke (batch 2, 64x64, one step, eager): the script a
device machine runs measures all three implementations and writes its ratios against
torchvision. The figures themselves need a GPU (docs/training.md, "GPU figures")."""
import importlib.util
import json

import pytest

from conftest import ROOT


def gpu_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def smoke(models, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_benchmark().main(["--smoke", "--models", models, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    rows = data["throughput"]
    assert [(r["network"], r["implementation"], r["mode"]) for r in rows] == \
        [(m, impl, "eager") for m in models.split(",") for impl in ("torchvision", "resdsl.build", "standalone")]
    for r in rows:
        assert r["inference"] > 0 and r["training"] > 0
        if r["implementation"] == "torchvision":
            assert r["inference_ratio"] == r["training_ratio"] == 1.0
    assert "peak memory: CUDA only" in printed and data["memory"] == []
    return printed


def test_smoke_resnet50(tmp_path, capsys):
    printed = smoke("resnet50", tmp_path, capsys)
    assert "resnet50       standalone" in printed


@pytest.mark.slow
def test_smoke_all_networks(tmp_path, capsys):
    smoke("resnet50,vit_b_16,convnext_tiny", tmp_path, capsys)
