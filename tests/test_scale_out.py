"""Scale-out with PyTorch's own engine: FSDP2 per block and DDP on 2 CPU processes
(gloo) equal a single-process step; torch.compile without graph breaks, torch.export, feature
extraction by block name."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

import resdsl

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from dist_worker import NET, data  # noqa: E402


def _torchrun(mode, out):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "tests" / "dist_worker.py"), mode, str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return torch.load(out, weights_only=True)


def _single_step():
    model = resdsl.build(NET, seed=0)
    x, y = data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return model.state_dict()


@pytest.mark.parametrize("mode", ["fsdp", "ddp"])
def test_two_processes_equal_one(tmp_path, mode):
    got = _torchrun(mode, tmp_path / "state.pt")
    ref = _single_step()
    start = resdsl.build(NET, seed=0).state_dict()
    assert list(got) == list(ref)
    assert any(not torch.equal(ref[k], start[k]) for k in ref)  # the step changed the weights
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-5, msg=k)


def test_fully_shard_needs_block_modules():
    model = resdsl.build(NET, seed=0)
    names = [n for n, _ in resdsl.blocks(model)]
    assert names == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]


def test_compile_fullgraph_and_export():
    model = resdsl.build(NET, seed=0).eval()
    x = torch.randn(2, 3, 8, 8)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # fullgraph: a graph break is an error
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    ck = resdsl.build(NET, seed=0, checkpoint="blocks").train()
    out = torch.compile(ck, fullgraph=True, backend="eager")(x)
    assert out.shape == (2, 5)
    ep = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), model(x))


def test_feature_extractor_on_block_names():
    tv = torchvision.models.resnet18().eval()
    gm = resdsl.build(str(ROOT / "stdlib" / "resnet.res"), network="resnet18").eval()
    gm.load_state_dict(tv.state_dict())
    nodes = {"layer2.0": "a", "layer3": "b", "layer4.1": "c"}
    ours = create_feature_extractor(gm, return_nodes=nodes)
    ref = create_feature_extractor(tv, return_nodes=nodes)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert list(a) == ["a", "b", "c"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
