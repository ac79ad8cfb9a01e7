"""`resdsl summary`: parameter totals equal torch's count, MACs within 1% of torch.utils.flop_counter.

References: torchvision's ResNets (parameter counts), the torch module resdsl builds
(its parameters; torch's FlopCounterMode running it on meta tensors, flops / 2).
"""
from __future__ import annotations

import csv
import io

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.api import graph, load
from resdsl.backends.summary import format_summary, summary_rows
from resdsl.cli import main
from resdsl.ir.shapes import Size

from conftest import ROOT, size_value

RESNET = str(ROOT / "stdlib" / "resnet.res")
SIDE = 128  # every symbolic axis but the batch (Inception-ResNet needs more than 64)
LARGER = {"Inception3": 320, "inception_v3": 320}  # Inception-v3's auxiliary head (Inception3): 299 and up;
# an even size keeps its unpadded stride-2 convs exact in the symbolic sizes (H/2 - 1 is (H - 3) // 2 + 1 for
# even H). The total MACs are the eval form's, as the eval-mode model runs (googlenet: no auxiliary heads)
BIG = 1000  # ops


def _stdlib_networks():
    out = []
    for f in sorted((ROOT / "stdlib").glob("*.res")):
        for net, ref in load(str(f)).networks.items():
            defn = getattr(ref, "defn", None)
            if defn is not None and any(p.default is None for p in defn.params):
                continue  # generic (ResNet(block, layers)): counted through its variants
            out.append((f"stdlib/{f.name}", net))
    return out


def _inputs(g, side=SIDE):
    env, tensors = {}, []
    for v in g.inputs:
        dims = []
        for i, a in enumerate(v.shape):
            if isinstance(a.size, Size):
                (sym,) = a.size.symbols
                env.setdefault(sym, 1 if i == 0 else side)
            dims.append(int(size_value(a.size, env)))
        # ids: read by an embedding, directly or after `select` picks a field (AutoInt)
        picked = {o for n in g.nodes if n.op == "select" and v in n.inputs for o in n.outputs}
        integer = any(n.op == "embedding" and ({v} | picked) & set(n.inputs) for n in g.nodes)
        tensors.append(torch.zeros(dims, dtype=torch.long, device="meta") if integer
                       else torch.empty(dims, device="meta"))
    return env, tensors


@pytest.mark.parametrize("path,net", _stdlib_networks())
def test_params_and_macs_match_torch(path, net):
    g = graph(str(ROOT / path), net)
    rows, total = summary_rows(g, 1)
    assert sum(r.params for r in rows) == total["params"]
    if len(g.nodes) > BIG:
        return  # the deepest variants: the same blocks as their smaller siblings, checked there; 5-20 s each
    gm = resdsl.build(str(ROOT / path), net, device="meta").eval()
    assert total["params"] == sum(p.numel() for p in gm.parameters())
    assert sum(r.params for r in rows) == total["params"]
    env, xs = _inputs(g, LARGER.get(net, SIDE))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        gm(*xs)
    ref = fc.get_total_flops() / 2
    macs = size_value(total["macs"], env)
    assert macs == pytest.approx(ref, rel=0.01, abs=1.0), (macs, ref)


@pytest.mark.parametrize("net", ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"])
def test_resnets_match_torchvision(net):
    with torch.device("meta"):
        tv = getattr(torchvision.models, net)()
    g = graph(RESNET, net, input_shape=[1, 3, 224, 224])
    rows, total = summary_rows(g, 2)
    assert total["params"] == sum(p.numel() for p in tv.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        tv(torch.empty(1, 3, 224, 224, device="meta"))
    assert total["macs"] == pytest.approx(fc.get_total_flops() / 2, rel=0.01)
    # stage rows: torchvision's layer1..4 parameter counts
    stages = {r.name.split(" ")[0]: r.params for r in rows if r.kind == "repeat"}
    assert stages == {f"layer{i}": sum(p.numel() for p in getattr(tv, f"layer{i}").parameters())
                      for i in range(1, 5)}


def test_depths_and_formats():
    g = graph(RESNET, "resnet50", input_shape=[1, 3, 224, 224])
    tv = torchvision.models.resnet50
    with torch.device("meta"):
        m = tv()
    r1, _ = summary_rows(g, 1)
    r2, _ = summary_rows(g, 2)
    rall, _ = summary_rows(g, None)
    assert len(r1) < len(r2) < len(rall)
    assert [r.name for r in r1 if r.level == 0] == [r.name for r in r2 if r.level == 0]
    blocks = [r for r in r2 if r.level == 1]
    assert [r.name.split(" ")[0] for r in blocks] == [n for n, mod in m.named_modules()
                                                       if type(mod).__name__ == "Bottleneck"]
    assert [r.shape for r in blocks][-1] == "[1, 2048, 7, 7]"
    # csv: machine readable, totals exact
    rows = list(csv.DictReader(io.StringIO(format_summary(g, 1, "csv"))))
    assert rows[-1]["name"] == "total" and int(rows[-1]["params"]) == sum(p.numel() for p in m.parameters())
    assert sum(int(r["params"]) for r in rows[:-1]) == int(rows[-1]["params"])
    md = format_summary(g, 1, "markdown")
    assert md.count("\n|") >= 13 and "| `layer3 (repeat x6)` | [1, 1024, 14, 14] | 7,098,368 |" in md
    tex = format_summary(g, 1, "latex")
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex and "25,557,032" in tex
    txt = format_summary(g, 1, "text")
    assert "total" in txt and "4.09G" in txt


def test_symbolic_macs_are_polynomials():
    g = graph(str(ROOT / "examples" / "cifar_resnet.res"))
    rows, total = summary_rows(g, 1)
    assert isinstance(total["macs"], Size) and total["macs"].symbols == {"N"}
    assert "pass --input-shape" in format_summary(g, 1, "text")


def test_cli_summary(capsys, tmp_path):
    assert main(["summary", RESNET, "-n", "resnet18", "--input-shape", "1,3,224,224", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    # torchvision resnet18: 11,689,512 parameters; FlopCounterMode at 224x224: 3,628,146,688 flops / 2
    assert out.splitlines()[-1].split(",")[-2:] == ["11689512", "1814073344"]
    p = tmp_path / "s.md"
    assert main(["summary", RESNET, "-n", "resnet18", "--depth", "all", "-f", "markdown", "-o", str(p)]) == 0
    assert "layer4.1.conv2" in p.read_text()
