"""The fuzzer (resdsl/fuzz.py) on a fixed budget: generated and mutated `.res` inputs must
each end in a network or in a located ResdslError; never a traceback, a hang, a blow-up
or an error without file:line:col. benchmarks/fuzz.py runs the same fuzzer for long."""
import os

import pytest

from resdsl import fuzz

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
