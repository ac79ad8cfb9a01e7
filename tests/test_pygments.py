"""The Pygments lexer: no Error token on any repository .res file or docs sample; comments
and keywords as the formatter's tokenizer finds them; `pygmentize -l res` through the
entry point that pyproject.toml declares."""
import re
import shutil
import subprocess

import pytest
from pygments.token import Comment, Error, Keyword

from _pygments_ep import declared_entry_points, env_with_lexer
from resdsl.fmt import tokenize
from resdsl.pygments_lexer import ResLexer

from conftest import ROOT, doc_res_blocks

RES_FILES = sorted(p for d in ("stdlib", "examples", "tests", "docs") for p in (ROOT / d).rglob("*.res"))


def _sources():
    docs = sorted(ROOT.glob("docs/**/*.md")) + [ROOT / "README.md"]
    return [pytest.param(p.read_text(), id=str(p.relative_to(ROOT))) for p in RES_FILES] + doc_res_blocks(docs)


@pytest.mark.parametrize("src", _sources())
def test_no_error_tokens_and_classes_agree(src):
    toks = list(ResLexer().get_tokens_unprocessed(src))
    errors = [(src[:i].count("\n") + 1, v) for i, t, v in toks if t in Error]
    assert not errors, f"Error tokens at (line, text): {errors[:5]}"
    assert "".join(v for _, _, v in toks) == src
    # every comment and every statement keyword the formatter's tokenizer sees is classed so by the lexer
    comments = [v for _, t, v in toks if t in Comment]
    assert comments == [t.text for t in tokenize(src) if t.kind == "comment"]
    # a statement keyword at the start of a line (or after `}`), not used as a name, is a keyword
    kw_at = {i for i, t, v in toks if t in Keyword}
    for m in re.finditer(r"^[ \t]*(?:\}[ \t]*)?(residual|parallel|repeat|loop|for|if|else|let|input|output|"
                         r"import|block|network|shortcut)\b(?![ \t]*[:=(,)])", src, re.M):
        assert m.start(1) in kw_at, f"`{m.group(1)}` at line {src[:m.start()].count(chr(10)) + 1} is not a keyword"


def test_bad_character_is_an_error_token():
    toks = list(ResLexer().get_tokens("network n() {\n    relu $ bn\n}\n"))
    assert (Error, "$") in toks


def test_entry_point_is_declared():
    eps = declared_entry_points()
    assert eps == {"res": "resdsl.pygments_lexer:ResLexer"}


def test_pygmentize_finds_the_lexer(tmp_path):
    assert shutil.which("pygmentize"), "pygmentize comes with pygments, a dependency of resdsl"
    env = env_with_lexer(tmp_path)
    src = ROOT / "examples" / "transformer.res"
    for alias in ("res", "resdsl"):
        p = subprocess.run(["pygmentize", "-l", alias, "-f", "html", str(src)], capture_output=True, text=True,
                           env=env)
        assert p.returncode == 0, p.stderr
        assert '<span class="k">residual</span>' in p.stdout and '<span class="err">' not in p.stdout
    p = subprocess.run(["pygmentize", "-N", str(src)], capture_output=True, text=True, env=env)
    assert p.stdout.strip() == "res"
