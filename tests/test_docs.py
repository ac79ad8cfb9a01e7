"""Every ```res sample in docs/*.md and README.md compiles, builds and runs."""
import re

import pytest
import torch

import resdsl
from resdsl.elaborate import elaborate

from conftest import ROOT

DOCS = sorted(ROOT.glob("docs/**/*.md")) + [ROOT / "README.md"]


def samples():
    out = []
    for doc in DOCS:
        if not doc.exists():
            continue
        text = doc.read_text()
        for k, m in enumerate(re.finditer(r"```res\n(.*?)```", text, re.S)):
            line = text[:m.start()].count("\n") + 2
            out.append(pytest.param(doc, m.group(1), id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


def _example_input(v, g):
    dims = []
    for ax in v.shape:
        dims.append(ax.size if isinstance(ax.size, int) else 8 if ax.name != "N" else 2)
    users = [n for n in g.users().get(v, []) if n is not None]
    if any(n.op == "embedding" for n in users) and all(n.op in ("embedding", "positions") for n in users):  # ids
        return torch.randint(0, min(n.attrs["num"] for n in users if n.op == "embedding"), dims)
    return torch.randn(*dims)


@pytest.mark.parametrize("doc,src", samples())
def test_doc_sample_compiles_and_runs(doc, src, tmp_path):
    # samples may import stdlib files; write them beside nothing else
    path = tmp_path / "sample.res"
    path.write_text(src)
    program = resdsl.load(str(path))
    assert program.networks, "a doc sample must define at least one network"
    for name in program.networks:
        g = elaborate(resdsl.load(str(path)), name)
        gm = resdsl.build(str(path), network=name, seed=0)
        gm.eval()
        xs = [_example_input(v, g) for v in g.inputs]
        with torch.no_grad():
            out = gm(*xs)
        outs = out if isinstance(out, tuple) else (out,)
        for o, v in zip(outs, g.outputs):
            sym = {ax.name: None for ax in v.shape}
            assert o.dim() == len(v.shape)
            for size, ax in zip(o.shape, v.shape):
                if isinstance(ax.size, int):
                    assert size == ax.size


def test_there_are_samples():
    assert len(samples()) >= 10
