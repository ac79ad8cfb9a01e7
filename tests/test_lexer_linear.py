"""The fast parser's lexer is linear: a run of whitespace before a character no token
matches once took time quadratic in the run (10,000 spaces: 24 s; 40,000: over 2 minutes)."""
from __future__ import annotations

import time

import pytest

from resdsl.diagnostics import ResdslError
from resdsl.frontend import lexer
from resdsl.frontend.read import parse

HEAD = "network n {\n    input x: [N, 3]\n    relu"


def _text(n: int, ws: str = " ", bad: str = "$") -> str:
    return HEAD + ws * (n // len(ws)) + bad + "\n}\n"


def _lex_time(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        try:
            lexer.tokenize(text)
        except lexer.Bail:
            pass
        best = min(best, time.process_time() - t)
    return best


@pytest.mark.parametrize("ws", [" ", "\t", " \\\n", "  # c\n"], ids=["spaces", "tabs", "continuations", "comments"])
@pytest.mark.parametrize("bad", ["$", "\u00a0", "\x00"], ids=["dollar", "nbsp", "nul"])
def test_a_long_run_before_a_bad_character_is_a_located_error_in_under_a_second(ws, bad):
    text = _text(100_000, ws, bad)
    t = time.process_time()
    with pytest.raises(ResdslError) as e:
        parse(text, "t.res")
    assert time.process_time() - t < 1.0
    assert e.value.kind == "syntax" and e.value.span is not None and e.value.span.line >= 3


def test_lexer_time_grows_linearly():
    # 10x the input must not take 100x the time: allow 30x (the quadratic lexer took about 100x)
    small, large = _lex_time(_text(20_000)), _lex_time(_text(200_000))
    assert large < 1.0
    assert large < 30 * max(small, 1e-3), (small, large)


def test_the_lexer_still_reads_whitespace_and_comments_as_before():
    toks = lexer.tokenize("network n {  # c\n    input x: [N, 3] \\\n  \n    relu   \n}   # end")
    kinds = [t[0] for t in toks]
    assert kinds[:4] == ["network", "NAME", "{", "input"] and kinds[-2:] == ["EOF", "EOF"]
    assert ("NAME", "relu") in [(t[0], t[1]) for t in toks]
