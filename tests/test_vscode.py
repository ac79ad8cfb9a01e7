"""The VS Code extension in editors/vscode: its TextMate grammar tokenizes every repository
.res file and docs sample with vscode-textmate + vscode-oniguruma (VS Code's own engine,
from npm; `make setup` installs them into editors/vscode/node_modules).

Every non-blank piece of text gets a scope below `source.res` (nothing unmatched), none is
`invalid.*`, comments get comment scopes and statement keywords keyword scopes."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

EXT = ROOT / "editors" / "vscode"
RES_FILES = sorted(p for d in ("stdlib", "examples", "tests", "docs") for p in (ROOT / d).rglob("*.res"))
KEYWORD_AT_LINE_START = re.compile(
    r"^[ \t]*(?:\}[ \t]*)?(residual|parallel|repeat|loop|for|if|else|let|input|output|import|block|network|"
    r"shortcut)\b(?![ \t]*[:=(,)])", re.M)
COMMENT = re.compile(r"""^((?:[^#"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*)(#.*)$""")


def _tokenize(files):
    node = shutil.which("node")
    if node is None or not (EXT / "node_modules" / "vscode-textmate").is_dir():
        pytest.fail("needs node and editors/vscode/node_modules: run `make setup` (npm ci --prefix editors/vscode)")
    p = subprocess.run([node, str(EXT / "test" / "tokenize.js"), *map(str, files)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    files = list(RES_FILES)
    tmp = tmp_path_factory.mktemp("samples")
    for doc in sorted(ROOT.glob("docs/**/*.md")) + [ROOT / "README.md"]:
        for k, m in enumerate(re.finditer(r"```res\n(.*?)```", doc.read_text(), re.S)):
            f = tmp / f"{doc.stem}_{k}.res"
            f.write_text(m.group(1))
            files.append(f)
    return _tokenize(files)


def test_covers_repo_files_and_samples(tokenized):
    assert len(tokenized) >= len(RES_FILES) + 10


def test_every_token_is_scoped_and_valid(tokenized):
    problems = []
    for file, lines in tokenized.items():
        text = Path(file).read_text().split("\n")
        for n, (line, toks) in enumerate(zip(text, lines), 1):
            pos = 0
            for start, end, scopes in toks:
                assert start == pos, f"{file}:{n}: tokens do not cover the line"
                pos = end
                piece = line[start:end]
                if piece.strip() and len(scopes) < 2:
                    problems.append(f"{file}:{n}: {piece!r} unmatched")
                if any(s.startswith("invalid") for s in scopes):
                    problems.append(f"{file}:{n}: {piece!r} is {scopes[-1]}")
            assert pos >= len(line.rstrip()), f"{file}:{n}: tokens end early"
    assert not problems, "\n".join(problems[:20])


def _scope_at(toks, col):
    for start, end, scopes in toks:
        if start <= col < end:
            return scopes
    raise AssertionError(f"no token at column {col}")


def test_comments_and_keywords(tokenized):
    checked = {"comment": 0, "keyword": 0, "chain": 0}
    for file, lines in tokenized.items():
        src = Path(file).read_text()
        text = src.split("\n")
        for n, (line, toks) in enumerate(zip(text, lines)):
            m = COMMENT.match(line)
            if m:
                for col in range(len(m.group(1)), len(line)):
                    assert any(s.startswith("comment.") for s in _scope_at(toks, col)), f"{file}:{n + 1}:{col}"
                checked["comment"] += 1
            code = m.group(1) if m else line
            for k in re.finditer(r"->", re.sub(r"\"[^\"]*\"", lambda x: " " * len(x.group()), code)):
                assert "keyword.operator.chain.res" in _scope_at(toks, k.start())
                checked["chain"] += 1
        for m in KEYWORD_AT_LINE_START.finditer(src):
            n = src.count("\n", 0, m.start(1))
            col = m.start(1) - (src.rfind("\n", 0, m.start(1)) + 1)
            scopes = _scope_at(lines[n], col)
            assert any(s.startswith(("keyword.", "storage.type.")) for s in scopes), \
                f"{file}:{n + 1}: `{m.group(1)}` has {scopes}"
            checked["keyword"] += 1
    assert min(checked.values()) > 50, checked


def test_a_bad_character_is_invalid(tmp_path):
    f = tmp_path / "bad.res"
    f.write_text("network n() {\n    relu $ bn  # fine\n}\n")
    toks = _tokenize([f])[str(f)][1]
    line = f.read_text().split("\n")[1]
    assert any(s.startswith("invalid.illegal") for s in _scope_at(toks, line.index("$")))
    assert "comment.line.number-sign.res" in _scope_at(toks, line.index("#"))


def test_extension_manifest_and_language_configuration():
    pkg = json.loads((EXT / "package.json").read_text())
    lang = pkg["contributes"]["languages"][0]
    assert lang["id"] == "res" and ".res" in lang["extensions"]
    gram = pkg["contributes"]["grammars"][0]
    assert gram["scopeName"] == "source.res" and (EXT / gram["path"]).is_file()
    conf = json.loads((EXT / lang["configuration"]).read_text())
    assert conf["comments"]["lineComment"] == "#"
    assert ["{", "}"] in conf["brackets"] and ["(", ")"] in conf["brackets"]
    inc = re.compile(conf["indentationRules"]["increaseIndentPattern"])
    dec = re.compile(conf["indentationRules"]["decreaseIndentPattern"])
    for opens in ("block A(c: int) {", "    residual {  # skip", "    conv(64,", "    h = a -> conv1 ->"):
        assert inc.match(opens), opens
    for closes in ("    relu", "    } as downsample", "block A() { relu }"):
        assert not inc.match(closes), closes
    assert dec.match("    } shortcut {") and dec.match("    )") and not dec.match("    relu")


def test_extension_starts_the_language_server():
    """extension.js, loaded with stand-ins for the VS Code API, starts `resdsl lsp` over stdio for
    the language package.json declares, with the command of the `resdsl.server.command` setting."""
    node = shutil.which("node")
    if node is None or not (EXT / "node_modules" / "vscode-languageclient").is_dir():
        pytest.fail("needs node and editors/vscode/node_modules: run `make setup` (npm ci --prefix editors/vscode)")
    pkg = json.loads((EXT / "package.json").read_text())
    assert (EXT / pkg["main"]).is_file() and pkg["dependencies"]["vscode-languageclient"]
    lock = json.loads((EXT / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == pkg["dependencies"]  # `npm ci` installs what package.json says

    def run(*setting):
        p = subprocess.run([node, str(EXT / "test" / "extension.js"), *setting], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    seen = run()
    default = pkg["contributes"]["configuration"]["properties"]["resdsl.server.command"]["default"]
    assert [seen["server"]["command"], *seen["server"]["args"]] == default == ["resdsl", "lsp"]
    assert seen["selector"] == [{"language": lang["id"]} for lang in pkg["contributes"]["languages"]]
    assert seen["started"] and "error" not in seen
    assert seen["commands"] == [c["command"] for c in pkg["contributes"]["commands"]]
    assert f"onLanguage:{pkg['contributes']['languages'][0]['id']}" in pkg["activationEvents"]
    seen = run('["/venv/bin/python", "-m", "resdsl", "lsp"]')
    assert seen["server"]["command"] == "/venv/bin/python" and seen["server"]["args"] == ["-m", "resdsl", "lsp"]
    seen = run("[]")  # a bad setting is reported, not a crash
    assert "must be a list of strings" in seen["error"] and "started" not in seen
    # the command it starts is a real subcommand
    p = subprocess.run([sys.executable, "-m", "resdsl", *default[1:], "--help"], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0 and "language server" in p.stdout
