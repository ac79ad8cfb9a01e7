"""The fuzzer (resdsl/fuzz.py) on a fixed budget: generated and mutated `.res` inputs must
each end in a network or in a located ResdslError; never a traceback, a hang, a blow-up
or an error without file:line:col. benchmarks/fuzz.py runs the same fuzzer for long.

The targets of resdsl/fuzz_targets.py (fmt round trips, whitespace runs for the lexer,
hostile checkpoints and configs) run on a budget of their own each
(RESDSL_FUZZ_TARGET_SECONDS, default 15)."""
import os
import time

import pytest

import pytest

from resdsl import fuzz
from resdsl import fuzz_targets as T

BUDGET_S = float(os.environ.get("RESDSL_FUZZ_SECONDS", "60"))


@pytest.mark.slow
def test_fuzz_check_never_crashes_hangs_or_loses_the_location():
    res = fuzz.run(seconds=BUDGET_S, seed=int(os.environ.get("RESDSL_FUZZ_SEED", "0")), timeout=20.0,
                   mem_mb=2048)
    counts = res["counts"]
    assert res["inputs"] >= 200, res  # the budget bought a real run
    assert counts["ok"] > 0 and counts["located"] > 0, counts
    report = "\n\n".join(f"[{cls}] from {gen}:\n{text[:1500]}\n--> {detail[:1500]}"
                         for cls, gen, text, detail in res["bad"][:5])
    assert not res["bad"], f"{counts}\n{report}"


def test_every_generator_makes_inputs_check_accepts():
    gens = {}
    for gen, text in _take(200):
        cls, _ = fuzz.classify(text)
        gens.setdefault(gen, set()).add(cls)
    assert set(gens) == {"mutate", "grammar", "oneop", "network"}
    for gen in ("mutate", "oneop", "network"):
        assert "ok" in gens[gen], gen  # each generator reaches the elaborator, not only the parser


def test_the_classifier_sees_internal_errors(monkeypatch):
    # the classes mean what they say: an exception that is not a ResdslError is "internal"
    from resdsl.elaborate import elaborator
    monkeypatch.setattr(elaborator.Elaborator, "network", lambda *a, **k: 1 / 0)
    cls, detail = fuzz.classify("network N() {\n    input x: [1, 4]\n    relu\n}\n")
    assert cls == "internal" and "ZeroDivisionError" in detail


def test_the_runner_sees_hangs():
    r = fuzz.Runner(timeout=0.5)
    try:
        import resdsl.elaborate.budget as B
        old = B.MAX_STEPS_BASE
        B.MAX_STEPS_BASE = 10 ** 12  # the worker forks from here: without the budget this hangs
        cls, _, _ = r.classify("block B(d: int) {\n    if d > 0 { B(d - 1) -> B(d - 1) } else { relu }\n}\n"
                               "network N() {\n    input x: [1, 4]\n    B(60)\n}\n")
    finally:
        B.MAX_STEPS_BASE = old
        r.close()
    assert cls == "hang"


def _take(n):
    it = fuzz.inputs(seed=3)
    return [next(it) for _ in range(n)]


def test_names_with_markup_survive_every_output():
    # networks whose names hold markup (backtick, |, <, >, &, :, $, %, leading = + - @; ", \ and newline
    # escapes must be refused with a location) through markdown, HTML, CSV, DOT (the graphviz binary),
    # SVG, TikZ, ONNX names and the torch file, each read back by the program that interprets it
    res = fuzz.markup_run(int(os.environ.get("RESDSL_FUZZ_MARKUP", "6")), seed=int(os.environ.get(
        "RESDSL_FUZZ_SEED", "0")))
    assert res["counts"]["ok"] > 0, res["counts"]
    assert res["counts"]["unlocated"] == res["counts"]["internal"] == 0, res
    assert not res["bad"], "\n\n".join(f"{t}\n{p}" for t, p in res["bad"][:3])


def test_markup_names_cover_the_characters_and_the_refusals():
    import random
    rng = random.Random(0)
    text = "".join(fuzz.markup_program(rng) for _ in range(200))
    for ch in ["`", "|", "<", ">", "&", ":", "$", "%", "{", "}", 'as "=', 'as "+', 'as "-', 'as "@', "\\n"]:
        assert ch in text, ch
    assert fuzz.check_outputs('network M() {\n    input x: [1, 4]\n    relu as "a\\nb"\n}\n')[0] == "located"


TARGET_S = float(os.environ.get("RESDSL_FUZZ_TARGET_SECONDS", "15"))


@pytest.mark.parametrize("gen", ["fmt", "lexer", "weights", "config"])
def test_fuzz_targets_never_crash_hang_or_change_meaning(gen):
    # weights: some inputs are catastrophic --rename patterns that run to the rename limit (10 s), so
    # fewer inputs fit the budget and an input may take 10 s plus a loaded machine's start-up
    res = fuzz.run(seconds=TARGET_S, seed=int(os.environ.get("RESDSL_FUZZ_SEED", "0")),
                   timeout=60.0 if gen == "weights" else 20.0, mem_mb=2048, generators=[gen])
    assert res["inputs"] >= (5 if gen == "weights" else 20) and set(res["by_generator"]) == {gen}, res["counts"]
    report = "\n\n".join(f"[{cls}] from {g}:\n{text[:1500]}\n--> {detail[:1500]}"
                         for cls, g, text, detail in res["bad"][:5])
    assert not res["bad"], f"{res['counts']}\n{report}"


def test_the_fmt_target_sees_a_formatter_that_changes_meaning(monkeypatch):
    # the check compares IR: a formatter that renamed a layer would be caught (and refused by fmt itself)
    from resdsl import fmt as F
    real = F.format_tokens
    monkeypatch.setattr(F, "format_tokens", lambda t, w=F.WIDTH: real(t, w).replace("conv(4", "conv(5"))
    cls, detail = T.check_fmt("network N() {\n    input x: [1, 3, 8, 8]\n    conv( 4, 1 )\n}\n")
    assert cls == "internal" and "bug in resdsl fmt" in detail
    monkeypatch.setattr(F, "format_source", lambda text, path="", strict=True: text.replace("conv(4", "conv(5"))
    cls, detail = T.check_fmt("network N() {\n    input x: [1, 3, 8, 8]\n    conv(4, 1)\n}\n")
    assert cls == "internal" and "changed the IR" in detail


def test_the_fmt_generator_makes_layouts_the_old_formatter_broke():
    # `as` followed by a newline in brackets or a `\` continuation: what fmt once rewrote as `as a { 1 }`
    import random
    rng = random.Random(0)
    texts = [T.relayout("network N() {\n    input x: [1, 3, 8, 8]\n    (conv(4, 1) as c{1})\n}\n", rng)
             for _ in range(200)]
    assert any("as\n" in t or "as \\\n" in t for t in texts)
    assert any("\r\n" in t for t in texts) and any(t.startswith("\ufeff") for t in texts)


def test_the_lexer_generator_reaches_long_runs_and_is_timed():
    import random
    rng = random.Random(1)
    sizes = [len(T.lexer_input(rng)) for _ in range(400)]
    assert max(sizes) > 50_000  # runs up to 100,000 characters
    # the time limit is what finds a quadratic lexer: 100,000 spaces took minutes
    cls, detail = T.run_task("lexer", "network N() {\n    input x: [1, 4]\n    relu" + " " * 100_000 + "$\n}\n")
    assert cls == "located", detail
    t = time.process_time()
    T.run_task("lexer", "network N() {\n    input x: [1, 4]\n    relu" + " " * 100_000 + "$\n}\n")
    assert time.process_time() - t < T.LEXER_BUDGET_S


def test_every_generator_of_benchmarks_fuzz_is_known():
    assert set(fuzz.GENERATORS) == {"mutate", "grammar", "oneop", "network", "fmt", "lexer", "weights", "config"}
    assert fuzz.mix_of("all") == fuzz.ALL_MIX and fuzz.mix_of(None) == fuzz.CHECK_MIX
    with pytest.raises(ValueError):
        fuzz.mix_of(["nope"])
