"""`resdsl lsp` driven as an editor drives it: a real client over stdio (pytest-lsp)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp  # a test extra (pyproject: test), with pytest-asyncio
from lsprotocol import types as T
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

NET = """\
import resnet

# A plain 3x3 block: conv, norm, relu.
block Stem(width: int, stride: int = 1) {
    conv(width, 3, stride=stride, padding=1, bias=false) -> bn -> relu
}

network Small(classes: int = 10) {
    input x: [N, 3, H, W]
    Stem(16) as stem
    BasicBlock(32, stride=2) as b1
    adaptive_avgpool(1) -> flatten -> linear(classes) as fc
}
"""


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "resdsl", "lsp"], server_env=ENV))
async def client(lsp_client: LanguageClient, tmp_path):
    await lsp_client.initialize_session(T.InitializeParams(
        capabilities=T.ClientCapabilities(), root_uri=tmp_path.as_uri()))
    yield
    await lsp_client.shutdown_session()


def _open(client, path: Path, text: str, version: int = 1) -> str:
    path.write_text(text)
    uri = path.resolve().as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(text_document=T.TextDocumentItem(uri=uri, language_id="resdsl", version=version, text=text)))
    return uri


def _change(uri: str, text: str, version: int = 2):
    return T.DidChangeTextDocumentParams(
        text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[T.TextDocumentContentChangeWholeDocument(text=text)])


def _at(cls, uri: str, pos, **kw):
    return cls(text_document=T.TextDocumentIdentifier(uri=uri), position=T.Position(*pos), **kw)


async def _diagnostics(client, uri):
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics.get(uri, []))


def _check(path: Path) -> str:
    return subprocess.run([sys.executable, "-m", "resdsl", "check", str(path)], check=False, capture_output=True,
                          text=True, env=ENV, cwd=path.parent).stderr


@pytest.mark.asyncio
async def test_diagnostics_on_open_and_change_match_check(client: LanguageClient, tmp_path):
    path = tmp_path / "net.res"
    uri = _open(client, path, NET)
    assert await _diagnostics(client, uri) == []
    bad = NET.replace("BasicBlock(32, stride=2)", "BasicBlok(32, stride=2)")
    client.text_document_did_change(_change(uri, bad))
    (d,) = await _diagnostics(client, uri)
    path.write_text(bad)
    cli = _check(path)  # the same kind, message and place as `resdsl check`
    assert cli.startswith(f"error[{d.code}]: ")
    assert d.message.splitlines()[0] in cli.splitlines()[0]
    assert f"net.res:{d.range.start.line + 1}:{d.range.start.character + 1}" in cli
    assert "BasicBlok" in bad.splitlines()[d.range.start.line][d.range.start.character:]
    # the did-you-mean fix, as a code action
    actions = await client.text_document_code_action_async(T.CodeActionParams(
        text_document=T.TextDocumentIdentifier(uri=uri), range=d.range, context=T.CodeActionContext(diagnostics=[d])))
    edits = [e for a in actions for e in a.edit.changes[uri]]
    assert [e.new_text for e in edits][:1] == ["BasicBlock"]
    line = bad.splitlines()[edits[0].range.start.line]
    assert line[edits[0].range.start.character:edits[0].range.end.character] == "BasicBlok"


@pytest.mark.asyncio
async def test_error_in_import_shown_at_the_import(client: LanguageClient, tmp_path):
    (tmp_path / "lib.res").write_text("block Broken() {\n    conv(8, 3) -> nosuchop\n}\n")
    text = "import lib\n\nnetwork N() {\n    input x: [N, 3, 8, 8]\n    Broken()\n}\n"
    path = tmp_path / "main.res"
    uri = _open(client, path, text)
    (d,) = await _diagnostics(client, uri)
    assert d.range.start.line == 0  # at the import
    assert d.related_information and d.related_information[0].location.uri.endswith("lib.res")
    assert d.related_information[0].location.range.start.line == 1
    assert "nosuchop" in d.message
    assert d.code == _check(path).split("]")[0].removeprefix("error[")
    # the imported file fixed in the editor and saved: the importer's diagnostics go too
    lib = tmp_path / "lib.res"
    lib_uri = _open(client, lib, lib.read_text())
    await _diagnostics(client, lib_uri)
    good = "block Broken() {\n    conv(8, 3) -> relu\n}\n"
    client.text_document_did_change(_change(lib_uri, good))
    await _diagnostics(client, lib_uri)
    lib.write_text(good)
    client.text_document_did_save(T.DidSaveTextDocumentParams(text_document=T.TextDocumentIdentifier(uri=lib_uri)))
    for _ in range(4):
        await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if not client.diagnostics.get(uri):
            break
    assert list(client.diagnostics[uri]) == [] and _check(path) == ""


@pytest.mark.asyncio
async def test_hover_inlay_hints_definition(client: LanguageClient, tmp_path):
    path = tmp_path / "net.res"
    uri = _open(client, path, NET)
    await _diagnostics(client, uri)
    lines = NET.splitlines()
    # hover on an op: its signature, legal values, and the shape it gives there
    ln = next(i for i, s in enumerate(lines) if "conv(width" in s)
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (ln, lines[ln].index("conv") + 1)))
    assert "conv(" in h.contents.value and "padding_mode" in h.contents.value
    assert '"zeros"' in h.contents.value  # a legal value from the op record
    assert "[N, 16, H, W]" in h.contents.value
    # hover on a block call: its signature and doc comment
    ln = next(i for i, s in enumerate(lines) if "Stem(16)" in s)
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (ln, lines[ln].index("Stem") + 1)))
    assert "block Stem(width: int, stride: int = 1)" in h.contents.value
    assert "A plain 3x3 block" in h.contents.value
    # inlay hints: the shape at the end of each statement, the parameters of each block instance
    hints = await client.text_document_inlay_hint_async(T.InlayHintParams(
        text_document=T.TextDocumentIdentifier(uri=uri), range=T.Range(T.Position(0, 0), T.Position(len(lines), 0))))
    by_line = {h.position.line: h.label for h in hints}
    b1 = next(i for i, s in enumerate(lines) if "as b1" in s)
    assert "[N, 32, H/2, W/2]" in by_line[b1]
    # BasicBlock(32, stride=2) from 16 channels: two 3x3 convs, a 1x1 shortcut and three norms
    expected = 32 * 16 * 9 + 32 * 32 * 9 + 32 * 16 + 3 * 2 * 32
    assert f"{expected:,} params" in by_line[b1]
    fc = next(i for i, s in enumerate(lines) if "as fc" in s)
    assert "[N, 10]" in by_line[fc]
    # definition into the stdlib file
    at = (b1, lines[b1].index("BasicBlock") + 2)
    loc = await client.text_document_definition_async(_at(T.DefinitionParams, uri, at))
    assert loc.uri.endswith("resnet.res")
    target = Path(loc.uri.removeprefix("file://")).read_text().splitlines()[loc.range.start.line]
    assert target.startswith("block BasicBlock(")
    # an import goes to its file
    loc = await client.text_document_definition_async(_at(T.DefinitionParams, uri, (0, 9)))
    assert loc.uri.endswith("resnet.res")
    refs = await client.text_document_references_async(_at(T.ReferenceParams, uri, (3, 7), context=T.ReferenceContext(include_declaration=True)))
    assert sorted(r.range.start.line for r in refs) == [3, lines.index("    Stem(16) as stem")]


@pytest.mark.asyncio
async def test_completion_symbols_formatting(client: LanguageClient, tmp_path):
    path = tmp_path / "net.res"
    uri = _open(client, path, NET)
    await _diagnostics(client, uri)
    lines = NET.splitlines()
    ln = next(i for i, s in enumerate(lines) if "conv(width" in s)
    pos = T.Position(ln, lines[ln].index("stride=stride"))
    res = await client.text_document_completion_async(_at(T.CompletionParams, uri, (pos.line, pos.character)))
    labels = {i.label: i for i in res.items}
    assert "padding_mode=" in labels and "groups=" in labels  # keyword arguments of the op
    assert "Stem" in labels and "BasicBlock" in labels  # blocks in scope, the imported too
    assert labels["linear"].detail.startswith("linear(")
    res = await client.text_document_completion_async(_at(T.CompletionParams, uri, (0, len("import res"))))
    assert {"resnet", "cifar"} <= {i.label for i in res.items}
    syms = await client.text_document_document_symbol_async(T.DocumentSymbolParams(text_document=T.TextDocumentIdentifier(uri=uri)))
    assert [s.name for s in syms] == ["resnet", "Stem", "Small"]
    messy = NET.replace("stride=stride, padding=1", "stride = stride,padding=1")
    client.text_document_did_change(_change(uri, messy))
    edits = await client.text_document_formatting_async(T.DocumentFormattingParams(
        text_document=T.TextDocumentIdentifier(uri=uri), options=T.FormattingOptions(tab_size=4, insert_spaces=True)))
    from resdsl.fmt import format_source
    assert len(edits) == 1 and edits[0].new_text == format_source(messy) == NET


TWO = """\
network A() {
    input x: [N, 3, 32, 32]
    conv(8, 3, padding=1) -> linear(10, bias=maybe)
}

network B() {
    input y: [N, 3, 32, 32]
    conv(8, 3, stride=0)
}
"""


@pytest.mark.asyncio
async def test_every_failing_network_and_save(client: LanguageClient, tmp_path):
    path = tmp_path / "two.res"
    uri = _open(client, path, TWO)
    diags = await _diagnostics(client, uri)
    cli = _check(path)
    assert len(diags) == 2 == cli.count("error[")  # one per network, as `resdsl check` reports them
    for d in diags:
        assert f"two.res:{d.range.start.line + 1}:{d.range.start.character + 1}" in cli
        assert f"error[{d.code}]: {d.message.splitlines()[0]}" in cli
    # fixed and saved: the diagnostics go
    fixed = TWO.replace("bias=maybe", "bias=false").replace("stride=0", "stride=1").replace(
        "conv(8, 3, padding=1) -> linear", "conv(8, 3, padding=1) -> flatten -> linear")
    client.text_document_did_change(_change(uri, fixed))
    await _diagnostics(client, uri)
    path.write_text(fixed)
    client.text_document_did_save(T.DidSaveTextDocumentParams(text_document=T.TextDocumentIdentifier(uri=uri)))
    assert await _diagnostics(client, uri) == []
    assert _check(path) == ""
    # hover on an input name gives its shape; on an op, the shape it gives there
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (6, 10)))
    assert "`y`: `[N, 3, 32, 32]`" in h.contents.value
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (7, 5)))
    assert "output: `[N, 8, 30, 30]`" in h.contents.value  # 3x3, no padding: 32 - 2


@pytest.mark.asyncio
async def test_syntax_error_is_located(client: LanguageClient, tmp_path):
    path = tmp_path / "syn.res"
    uri = _open(client, path, "network A() {\n    input x: [N, 3, 8, 8]\n    conv(8, 3 ->\n}\n")
    (d,) = await _diagnostics(client, uri)
    cli = _check(path)
    assert cli.startswith(f"error[{d.code}]") and d.code == "syntax"
    assert f"syn.res:{d.range.start.line + 1}:{d.range.start.character + 1}" in cli


@pytest.mark.parametrize("edit", [lambda t: "\n\n" + t,  # every definition moves down
                                  lambda t: t.replace("\nnetwork Small", "\n# a comment\nnetwork Small"),
                                  lambda t: t.replace("    Stem(16) as stem", "    Stem(16)  as stem")])
def test_cached_analysis_is_the_fresh_one(tmp_path, edit):
    """An edit keeps the graphs of unchanged definitions (moved lines included): what the editor
    is shown is what a fresh analysis of the new text gives."""
    from resdsl.lsp.analysis import Analyzer
    path = str(tmp_path / "net.res")
    a = Analyzer()
    a.analyze(NET, path)
    new = edit(NET)
    cached, fresh = a.analyze(new, path), Analyzer().analyze(new, path)
    assert cached.shapes == fresh.shapes and cached.params == fresh.params and cached.hints() == fresh.hints()
    assert sorted((*x[:4], x[4].op) for x in cached.nodes) == sorted((*x[:4], x[4].op) for x in fresh.nodes)
    assert fresh.shapes and fresh.params
    bad = edit(NET.replace("linear(classes)", "linear(classes, bias=maybe)"))
    a.analyze(NET.replace("linear(classes)", "linear(classes, bias=maybe)"), path)
    got, want = a.analyze(bad, path).problems, Analyzer().analyze(bad, path).problems
    assert [p.__dict__ for p in got] == [p.__dict__ for p in want] and len(want) == 1


LET = """\
let kc = conv(bias=false, padding=1)

network L() {
    input x: [N, 3, 16, 16]
    kc(8, 3) -> kc(16, 3, stride=2)
}
"""


@pytest.mark.asyncio
async def test_a_let_of_an_op(client: LanguageClient, tmp_path):
    uri = _open(client, tmp_path / "let.res", LET)
    assert await _diagnostics(client, uri) == []
    # hover: the let as written, the op it calls (signature, legal values), the shape there
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (4, 6)))
    assert "let kc = conv(bias=false, padding=1)" in h.contents.value and "padding_mode" in h.contents.value
    assert "output: `[N, 8, 16, 16]`" in h.contents.value
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (4, 17)))
    assert "output: `[N, 16, 8, 8]`" in h.contents.value
    loc = await client.text_document_definition_async(_at(T.DefinitionParams, uri, (4, 5)))
    assert loc.range.start.line == 0 and loc.range.start.character == 4
    res = await client.text_document_completion_async(_at(T.CompletionParams, uri, (4, 11)))
    assert "groups=" in {i.label for i in res.items}  # the keywords of the op the let calls


def test_alias_line_shows_the_network_output_and_parameters(tmp_path):
    """`network r = ResNet(...)`: its line shows the output shape and the parameter count, which is
    torchvision's for the same network."""
    import torchvision.models.resnet as tv

    from resdsl.lsp.analysis import Analyzer
    text = "import resnet\n\nnetwork r = ResNet(BasicBlock, [1, 1, 1, 1], classes=3)\n"
    a = Analyzer().analyze(text, str(tmp_path / "r.res"))
    (hint,) = [h for h in a.hints() if h.line == 3]
    ref = sum(p.numel() for p in tv.ResNet(tv.BasicBlock, [1, 1, 1, 1], num_classes=3).parameters())
    assert hint.text.split() == ["[N,", "3]", f"{ref:,}", "params"]
    assert hint.column == len(text.splitlines()[2]) + 1


async def _until(client, uri, pred, tries=6):
    """Diagnostics of `uri` once `pred` holds for them (each publish of any file is one try)."""
    for _ in range(tries):
        got = list(client.diagnostics.get(uri, []))
        if uri in client.diagnostics and pred(got):
            return got
        try:
            await asyncio.wait_for(client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 20)
        except asyncio.TimeoutError:
            break
    return list(client.diagnostics.get(uri, []))


WIDE = """\
block Stem(width: int) {
    conv(width, 3, padding=1) -> relu
}

network W() {
    input x: [N, 3, 8, 8]
    Stem(8) as "\N{GRINNING FACE}s" -> Stem(16) -> conv(8, 3) as "\N{GRINNING FACE}c" -> nosuchop(3)
}
"""


def _u16(line: str, i: int) -> int:
    return len(line[:i].encode("utf-16-le")) // 2


@pytest.mark.asyncio
async def test_positions_count_utf16_code_units(client: LanguageClient, tmp_path):
    """A line with characters outside the BMP (2 UTF-16 units each): diagnostics, hover and definition
    are placed in UTF-16 code units, the encoding a client gets when it offers no other."""
    path = tmp_path / "wide.res"
    uri = _open(client, path, WIDE)
    (d,) = await _diagnostics(client, uri)
    lines = WIDE.splitlines()
    line = lines[6]
    i = line.index("nosuchop")
    assert _u16(line, i) == i + 2  # two emoji before it
    assert (d.range.start.line, d.range.start.character) == (6, _u16(line, i))
    assert d.range.end.character == _u16(line, i + len("nosuchop"))
    assert f"wide.res:7:{i + 1}\n" in _check(path)  # the CLI counts characters
    # hover on the second `Stem` (after one emoji), given in UTF-16 units: the block and its shape
    j = line.index("Stem(16)")
    h = await client.text_document_hover_async(_at(T.HoverParams, uri, (6, _u16(line, j) + 1)))
    assert "block Stem(width: int)" in h.contents.value
    assert h.range.start.character == _u16(line, j) and h.range.end.character == _u16(line, j + 4)
    # a position counted in characters would land 1 unit short: on the `>` of `->`, not a word
    assert await client.text_document_hover_async(_at(T.HoverParams, uri, (6, j - 2))) is None
    loc = await client.text_document_definition_async(_at(T.DefinitionParams, uri, (6, _u16(line, j) + 2)))
    assert loc.range.start.line == 0 and loc.range.start.character == len("block ")
    refs = await client.text_document_references_async(_at(T.ReferenceParams, uri, (0, 7),
                                                            context=T.ReferenceContext(include_declaration=True)))
    assert sorted((r.range.start.line, r.range.start.character) for r in refs) == [
        (0, 6), (6, 4), (6, _u16(line, j))]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "resdsl", "lsp"], server_env=ENV))
async def client8(lsp_client: LanguageClient, tmp_path):
    result = await lsp_client.initialize_session(T.InitializeParams(
        capabilities=T.ClientCapabilities(general=T.GeneralClientCapabilities(
            position_encodings=[T.PositionEncodingKind.Utf8, T.PositionEncodingKind.Utf16])),
        root_uri=tmp_path.as_uri()))
    lsp_client.negotiated = result.capabilities.position_encoding
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_utf8_positions_when_the_client_offers_them(client8: LanguageClient, tmp_path):
    assert client8.negotiated == T.PositionEncodingKind.Utf8
    uri = _open(client8, tmp_path / "wide.res", WIDE)
    (d,) = await _diagnostics(client8, uri)
    line = WIDE.splitlines()[6]
    i = line.index("nosuchop")
    assert d.range.start.character == len(line[:i].encode("utf-8")) == i + 6  # 4 bytes an emoji
    j = line.index("Stem(16)")
    h = await client8.text_document_hover_async(_at(T.HoverParams, uri, (6, len(line[:j].encode()) + 1)))
    assert "block Stem(width: int)" in h.contents.value


@pytest.mark.asyncio
async def test_unsaved_import_is_seen_by_its_importers(client: LanguageClient, tmp_path):
    """An imported file open in the editor: its unsaved text is what the files importing it see, and
    their diagnostics follow each change of it (nothing is saved here)."""
    lib = tmp_path / "lib.res"
    lib_text = "block Stem(width: int) {\n    conv(width, 3, padding=1) -> relu\n}\n"
    lib_uri = _open(client, lib, lib_text)
    await _diagnostics(client, lib_uri)
    main = "import lib\n\nnetwork M() {\n    input x: [N, 3, 8, 8]\n    Stem(8) -> Extra(4)\n}\n"
    uri = _open(client, tmp_path / "main.res", main)
    (d,) = await _until(client, uri, lambda ds: len(ds) == 1)
    assert "Extra" in d.message and d.range.start.line == 4
    # `Extra` added to lib.res in the editor only: main.res is clean
    added = lib_text + "\nblock Extra(width: int) {\n    conv(width, 1)\n}\n"
    client.text_document_did_change(_change(lib_uri, added))
    assert await _until(client, uri, lambda ds: ds == []) == []
    assert lib.read_text() == lib_text  # not saved
    # an error typed into lib.res: main.res shows it at its import, in lib.res's unsaved text
    broken = added.replace("conv(width, 1)", "conv(width, 1) -> nosuchop")
    client.text_document_did_change(_change(lib_uri, broken, version=3))
    (d,) = await _until(client, uri, lambda ds: len(ds) == 1)
    assert d.range.start.line == 0 and "nosuchop" in d.message
    assert d.related_information[0].location.uri.endswith("lib.res")
    assert d.related_information[0].location.range.start.line == broken.splitlines().index(
        "    conv(width, 1) -> nosuchop")
    # closed without saving: main.res sees the file on disk again
    client.text_document_did_close(T.DidCloseTextDocumentParams(text_document=T.TextDocumentIdentifier(uri=lib_uri)))
    (d,) = await _until(client, uri, lambda ds: len(ds) == 1 and "Extra" in ds[0].message)
    assert "Extra" in d.message


# ---------------------------------------------------------------- copied block calls (resdsl/lsp/memo.py)
def _graph_text(g) -> list:
    """Everything a graph holds, as comparable text: scopes (tree, kinds, paths, spans, info),
    nodes (op, path, attrs, parameters, value names, shapes, dtypes, scope, span), inputs, outputs."""
    from resdsl.ir.graph import Value

    def info(x):
        if isinstance(x, Value):
            return ("value", x.name)
        if isinstance(x, dict):
            return {k: info(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [info(v) for v in x]
        return x if isinstance(x, (int, float, str, bool, type(None))) else repr(x)

    def span(s):
        return s and (s.source.path, s.line, s.column, s.end_line, s.end_column)

    def val(v):
        return (v.name, v.shape, v.dtype)

    out = []

    def scope(s, depth):
        out.append((depth, s.kind, s.name, s.path, span(s.span), repr(info(s.info))))
        for c in s.children:
            scope(c, depth + 1)
    scope(g.root, 0)
    for n in g.nodes:
        out.append((n.op, n.path, [val(v) for v in n.inputs], [val(v) for v in n.outputs], repr(n.attrs),
                    repr(n.params), n.scope.kind, n.scope.path, span(n.span)))
    out.append(([val(v) for v in g.inputs], [val(v) for v in g.outputs], g.output_names))
    return out


@pytest.mark.parametrize("name", ["resnet", "densenet", "dpn", "vit", "senet", "repvgg", "inception_resnet", "edsr"])
def test_copied_block_calls_give_the_elaborated_graph(name):
    """The language server copies a block call identical to one elaborated before (memo.py): every
    network of these stdlib files, elaborated so (its calls copied from the file's other networks
    too), is the graph `resdsl check` elaborates, node for node, value names and budget included."""
    from resdsl.elaborate import Program, elaborate
    from resdsl.elaborate.elaborator import Elaborator
    from resdsl.lsp.memo import MemoElaborator
    file = str(ROOT / "stdlib" / f"{name}.res")
    # one program each, used in the same order (a module's `let`s are evaluated once, on first use)
    program, mine = Program.from_file(file), Program.from_file(file)
    memo, copies = {}, []
    real_copy = MemoElaborator._copy

    def counted(self, *a):
        copies.append(a[-1])
        return real_copy(self, *a)
    for net, target in program.networks.items():
        if any(p.default is None for p in getattr(getattr(target, "defn", None), "params", ())):
            continue  # generic
        plain = Elaborator(program)
        want = plain.network(net)
        el = MemoElaborator(mine, memo)
        el._copy = counted.__get__(el)
        got = el.network(net)
        assert _graph_text(got) == _graph_text(want), net
        assert el.states == plain.states and el.budget.steps == plain.budget.steps, net
        assert el.budget.params == plain.budget.params and el.used_names == plain.used_names, net
        assert elaborate(program, net).num_params() == got.num_params()
    assert len(copies) >= 5, copies  # calls were copied, not only elaborated


CLASH = """\
block B(c: int) {
    conv(c, 3, padding=1) as conv
}

network N() {
    input x: [N, 4, 8, 8]
    conv(4, 1) as "layer.1.conv"
    repeat 2 as layer (i) { B(4) }
}
"""


def test_a_copy_that_would_clash_is_elaborated_and_fails_as_check_does(tmp_path):
    """`layer.1` is the same call as `layer.0`, but a path it would claim is taken: it is elaborated
    (not copied), and the error is `resdsl check`'s."""
    from resdsl.lsp.analysis import Analyzer
    path = tmp_path / "clash.res"
    path.write_text(CLASH)
    (p,) = Analyzer().analyze(CLASH, str(path)).problems
    cli = _check(path)
    assert cli.startswith(f"error[{p.kind}]: {p.message}\n") and "`layer.1.conv` is used twice" in p.message
    assert f"clash.res:{p.line}:{p.column}\n" in cli


def test_a_failure_of_the_copying_falls_back_to_the_elaborator(tmp_path, monkeypatch):
    """Should memo.py break (the elaborator changed under it), the editor still gets `check`'s answer."""
    from resdsl.lsp import memo
    from resdsl.lsp.analysis import Analyzer
    text = "import resnet\n\nnetwork r = ResNet(BasicBlock, [2, 2, 1, 1], classes=3)\n"
    want = Analyzer().analyze(text, str(tmp_path / "r.res"))

    def broken(*a, **k):
        raise AttributeError("an attribute the elaborator no longer has")
    monkeypatch.setattr(memo.MemoElaborator, "_copy", broken)
    got = Analyzer().analyze(text, str(tmp_path / "r.res"))
    assert got.problems == [] and want.problems == []
    assert _graph_text(got.graphs["r"]) == _graph_text(want.graphs["r"]) and got.hints() == want.hints()


def test_shapes_moved_twice_before_being_asked_for(tmp_path):
    """Lines inserted twice above the definitions while nothing asked for the shapes (the diagnostics
    need none): when asked, they are where a fresh analysis puts them."""
    from resdsl.lsp.analysis import Analyzer
    path = str(tmp_path / "net.res")
    a = Analyzer()
    a.analyze(NET, path)
    a.analyze("\n" + NET, path)
    new = "\n\n# a comment\n" + NET.replace("\nnetwork Small", "\n\nnetwork Small")
    got, want = a.analyze(new, path), Analyzer().analyze(new, path)
    assert got.graphs["Small"] is not want.graphs["Small"]  # kept, not elaborated again
    assert got.shapes == want.shapes and got.params == want.params and got.hints() == want.hints()
    assert sorted((*x[:4], x[4].op) for x in got.nodes) == sorted((*x[:4], x[4].op) for x in want.nodes)


def test_a_bug_in_the_analysis_is_reported_not_hung(tmp_path):
    """An exception inside the server's analysis (a bug) gives an `internal` diagnostic, and the
    server keeps answering; run in-process on the server's publish with a broken analyzer."""
    from resdsl.lsp import server as S

    class Broken:
        def __init__(self):
            self.trash = []

        def analyze(self, text, path):
            raise KeyError("a bug")

        def empty_trash(self):
            pass

    sent = []

    class Fake:
        analyzer, results = Broken(), {}

        class workspace:
            @staticmethod
            def get_text_document(uri):
                return type("Doc", (), {"source": "network A() {}\n", "version": 1})()

        def text_document_publish_diagnostics(self, params):
            sent.append(params)
    fake = Fake()
    fake.analysis = lambda uri: S.ResdslServer.analysis(fake, uri)
    S.publish(fake, (tmp_path / "a.res").as_uri())
    (p,) = sent
    (d,) = p.diagnostics
    assert d.code == "internal" and "KeyError" in d.message


TIES_INTO_COPIES = """\
block B(c: int) {
    conv(c, 3, padding=1) as conv
}

network n() {
    input x: [N, 4, H=8, W=8]
    conv(4, 3, padding=1, tie="b2.conv") as early
    for i in range(3) {
        B(4) as b{i}
    }
    conv(4, 3, padding=1, tie="b1.conv") as head
}
"""


def test_ties_into_and_out_of_copied_calls_are_what_check_elaborates(tmp_path):
    """A `tie=` naming a layer inside a copied block call (`b1.conv`, a copy of `b0`), and one naming
    a layer defined later: the language server's graph is check's, with no diagnostic."""
    from resdsl.elaborate import Program
    from resdsl.elaborate.elaborator import Elaborator
    from resdsl.lsp.analysis import Analyzer
    path = tmp_path / "ties.res"
    path.write_text(TIES_INTO_COPIES)
    got = Analyzer().analyze(TIES_INTO_COPIES, str(path))
    assert got.problems == [], [p.message for p in got.problems]
    want = Elaborator(Program.from_file(str(path))).network("n")
    assert _graph_text(got.graphs["n"]) == _graph_text(want)
    assert "error" not in _check(path)
