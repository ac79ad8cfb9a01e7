"""`training` (an output item's mark) and the name forms `as .` / `as +` (docs/language.md, "Names and
structure") are keywords for the editor too: the Pygments lexer classes them so, and the language
server offers them among its completions."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as T
from pygments.token import Keyword, Name
from pytest_lsp import ClientServerConfig, LanguageClient

from resdsl.pygments_lexer import ResLexer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

SRC = """\
block Stem(c: int) {
    conv(c, 3, padding=1) as + -> bn as +
}

network N() {
    input x: [N, 3, 16, 16]
    let training = 2
    Stem(8 * training) as .
    a = relu
    output logits = a, training aux = a
}
"""


def _tokens(src):
    return [(t, v) for t, v in ResLexer().get_tokens(src) if v.strip()]


def test_lexer_classes_training_and_the_name_forms():
    toks = _tokens(SRC)
    i = toks.index((Keyword, "training"))  # the output item's mark
    assert toks[i + 1] == (Name, "aux") and toks.count((Keyword, "training")) == 1
    assert (Name, "training") in toks  # `let training = 2`, `8 * training`: a name as any other
    marks = [toks[j + 1] for j, tv in enumerate(toks) if tv == (Keyword, "as")]
    assert marks == [(Name.Label, "+"), (Name.Label, "+"), (Name.Label, ".")]
    assert not any(t in Name.Label for t, v in _tokens("a = b + c.d\n") if v in "+.")  # not after `as`


def test_the_sample_checks():
    """The sample above is a real program (what the lexer is shown is the language)."""
    from resdsl.elaborate import Program, elaborate
    g = elaborate(Program.from_source(SRC), "N")
    assert g.output_names == ["logits", "aux"] and g.train_only == (1,)
    assert {n.path for n in g.nodes if n.params} == {"0", "1"}  # `as .`: Stem's `as +` layers at the top


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "resdsl", "lsp"], server_env=ENV))
async def client(lsp_client: LanguageClient, tmp_path):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=T.ClientCapabilities(),
                                                           root_uri=tmp_path.as_uri()))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_completion_offers_training_and_the_name_forms(client: LanguageClient, tmp_path):
    path = tmp_path / "n.res"
    path.write_text(SRC)
    uri = path.resolve().as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(
        text_document=T.TextDocumentItem(uri=uri, language_id="resdsl", version=1, text=SRC)))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics.get(uri, [])) == []
    res = await client.text_document_completion_async(T.CompletionParams(
        text_document=T.TextDocumentIdentifier(uri=uri), position=T.Position(8, 4)))
    kws = {i.label for i in res.items if i.kind == T.CompletionItemKind.Keyword}
    assert {"training", "as .", "as +", "residual", "shortcut"} <= kws
