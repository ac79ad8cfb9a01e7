"""An edit inside a block that several networks call (stdlib/resnet.res: Bottleneck, seven networks):
the language server re-elaborates them, copying identical calls (resdsl/lsp/memo.py) and reusing
op applications seen before (resdsl/elaborate/opmemo.py). What it shows after each edit is what
a fresh analysis and `resdsl check` give: an error brought into the block, and its fix."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_lsp import _graph_text

from resdsl.diagnostics import ResdslError
from resdsl.elaborate import Program
from resdsl.elaborate.elaborator import Elaborator
from resdsl.lsp.analysis import Analyzer
from resdsl.lsp.memo import MemoElaborator

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
RESNET = (ROOT / "stdlib" / "resnet.res").read_text()
LINE = "        kconv(width, 1) as conv1\n"


def _check(path: Path) -> str:
    return subprocess.run([sys.executable, "-m", "resdsl", "check", str(path)], check=False, capture_output=True,
                          text=True, env=ENV, cwd=path.parent).stderr


def _same(got, want):
    assert [p.__dict__ for p in got.problems] == [p.__dict__ for p in want.problems]
    assert sorted(got.graphs) == sorted(want.graphs)
    for name in want.graphs:
        assert _graph_text(got.graphs[name]) == _graph_text(want.graphs[name]), name
    assert got.hints() == want.hints()


@pytest.mark.parametrize("line, broken, kind", [
    (LINE, "        kconv(width, 1, padding=-1) as conv1\n", "value"),  # a bad value: every Bottleneck network
    (LINE, "        kconv(width, 1) as conv1 -> nosuchop\n", "name"),
    (LINE, "        kconv(width, 1) as conv2\n", "name"),  # conv2 twice: a name clash inside the block
    ("        kconv(planes * 4, 1) as conv3\n", "        kconv(planes * 3, 1) as conv3\n", "shape"),  # + shortcut
])
def test_an_error_in_a_shared_block_and_its_fix_as_a_fresh_analysis(tmp_path, line, broken, kind):
    path = tmp_path / "resnet.res"
    bad = RESNET.replace(line, broken)
    assert bad != RESNET
    a = Analyzer()
    first = a.analyze(RESNET, str(path))
    assert first.problems == [] and len(first.graphs) == 9
    got = a.analyze(bad, str(path))  # after an analysis of the good text: its graphs and copies are around
    _same(got, Analyzer().analyze(bad, str(path)))
    assert got.problems and {p.kind for p in got.problems} == {kind}
    assert sorted(got.graphs) == ["resnet18", "resnet34"]  # BasicBlock's networks are fine
    path.write_text(bad)
    cli = _check(path)
    for p in got.problems:
        assert f"error[{p.kind}]: {p.message}" in cli and f"resnet.res:{p.line}:{p.column}\n" in cli
    fixed = RESNET.replace(LINE, "        kconv(width, 1, padding=0) as conv1\n")  # another good text
    got = a.analyze(fixed, str(path))
    _same(got, Analyzer().analyze(fixed, str(path)))
    assert got.problems == [] and len(got.graphs) == 9
    assert all(g.verify() for g in got.graphs.values())  # the server leaves the IR's invariants to the tests
    _same(a.analyze(RESNET, str(path)), first)


NEST = """\
block B(c: int) {
    conv(c, 3, padding=1) as conv
}

network N(k: int = 2) {
    input x: [N, 4, 8, 8]
    repeat k as layer (i) { B(4) }
    conv(4, 1) as "layer.1"
}

network M = N(3)
"""


@pytest.mark.parametrize("text", [NEST,  # `layer.1` and M's copied `layer.1.conv` nest
                                  NEST.replace('as "layer.1"', 'as "layer"'),  # a prefix of the copy's path
                                  NEST.replace('as "layer.1"', 'as "layer.1.conv.w"'),  # nested in a copied op
                                  NEST.replace('    conv(4, 1) as "layer.1"\n', "")])  # no clash: copied
def test_a_copy_whose_names_would_nest_is_elaborated_and_fails_as_check_does(text):
    """traps.check_nesting's error (a layer and a container at once) for a copied call too: the
    copy checks the names it would claim against those taken, and elaborates the call when one nests."""
    plain_prog, memo_prog, memo = Program.from_source(text), Program.from_source(text), {}
    copies = 0
    for net in ("N", "M"):
        try:
            want = _graph_text(Elaborator(plain_prog).network(net))
        except ResdslError as e:
            want = str(e)
        el = MemoElaborator(memo_prog, memo)
        real = el._copy

        def counted(*a, real=real):
            nonlocal copies
            copies += 1
            return real(*a)
        el._copy = counted
        try:
            got = _graph_text(el.network(net))
        except ResdslError as e:
            got = str(e)
        assert got == want, net
    assert copies >= 2  # M's layer.0 and layer.1 were offered as copies


@pytest.mark.parametrize("name", ["resnet", "densenet", "convnext"])
def test_copies_note_the_prefixes_of_the_names_they_take(name):
    """What check_nesting keeps (each proper prefix of a state path, with the first path under it) is
    after copied calls what the elaborator keeps: the next name is checked against the same."""
    file = str(ROOT / "stdlib" / f"{name}.res")
    program, mine, memo = Program.from_file(file), Program.from_file(file), {}
    for net, target in program.networks.items():
        if any(p.default is None for p in getattr(getattr(target, "defn", None), "params", ())):
            continue
        plain, el = Elaborator(program), MemoElaborator(mine, memo)
        plain.network(net)
        el.network(net)
        assert el.__dict__.get("state_prefixes") == plain.__dict__.get("state_prefixes"), net


def test_the_collector_runs_when_the_editor_is_quiet(monkeypatch):
    """The server's cyclic collector passes (main() turns the automatic ones off): after each published
    analysis one is due IDLE_COLLECT_S later, put off by the next analysis, and run at once after
    MAX_UNCOLLECTED analyses in a row."""
    import asyncio

    from resdsl.lsp import server as S
    passes = []
    monkeypatch.setattr(S.gc, "collect", lambda: passes.append(1))
    monkeypatch.setattr(S, "IDLE_COLLECT_S", 0.05)
    monkeypatch.setattr(S._Idle, "uncollected", 0)
    monkeypatch.setattr(S._Idle, "collect_at", None)

    async def edits():
        for _ in range(S.MAX_UNCOLLECTED - 1):  # a burst: each analysis puts the pass off
            S._collect_when_idle(None)
            await asyncio.sleep(0.01)
        assert passes == []
        S._collect_when_idle(None)  # the bound: now
        assert passes == [1] and S._Idle.collect_at is None
        S._collect_when_idle(None)
        await asyncio.sleep(0.15)  # quiet: the pass runs
        assert passes == [1, 1] and S._Idle.uncollected == 0
    asyncio.run(edits())
    S._collect_when_idle(None)  # not serving: at once
    assert passes == [1, 1, 1]
