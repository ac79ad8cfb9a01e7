"""The helpers that write variants of one block as one class (backends/torch/variants.py):
alignment of Sequentials whose numbering shifts, conditions on the block's arguments, and
floats written from the index exactly as the source computes them."""
from resdsl.backends.torch import variants
from resdsl.backends.torch.pyfmt import lit


def test_align_matches_from_the_end_where_a_leading_layer_is_absent():
    # expand, depthwise, se, project; a block without expansion and squeeze-excitation
    full, short = ["cba", "cba", "se", "cb"], ["cba", "cb"]
    n, maps = variants.align([full, short], key=lambda e: e)
    assert n == 4 and maps == [[0, 1, 2, 3], [1, 3]]
    assert variants.align([["cb"], ["x"]], key=lambda e: e) is None


def test_condition_is_written_from_the_arguments():
    params = {"in_channels": [16, 16, 24, 40, 40, 24], "out": [16, 24, 24, 40, 80, 24],
              "stride": [1, 2, 1, 1, 1, 2], "se": [False, False, True, True, True, False]}
    assert variants.condition([False, False, True, True, True, False], params) == "se"
    assert variants.condition([True, False, True, True, False, False], params) \
        == "stride == 1 and in_channels == out"
    # only the instances that `within` marks count
    want, within = [False, False, False, True, True, False], [False, False, False, True, True, True]
    assert variants.condition(want, params) is None
    assert variants.condition(want, params, within=within) in ("se", "stride == 1")  # both fit
    assert variants.condition([True, False, False, True], {"a": [1, 2, 3, 4]}) is None


def test_rates_that_follow_the_index_are_written_as_computed():
    total, sd = 40, 0.2
    rates = [sd * (3 + i) / total for i in range(3)]
    assert rates[0] == 0.015000000000000003  # what a literal would show
    text = variants.progression(rates, [sd], lit, [total])
    assert text == "0.2 * (3 + i) / 40"
    assert [eval(text, {"i": i}) for i in range(3)] == rates
    assert variants.progression([0.1, 0.3, 0.31], [0.2], lit) is None


def test_a_lone_long_float_is_written_as_its_fraction():
    v = 0.2 * 6 / 40
    assert repr(v) == "0.030000000000000006"
    assert variants.fraction(v, [0.2], lit, [40]) == "0.2 * 6 / 40"
    assert variants.fraction(0.015, [0.2], lit, [40]) is None  # already as written


def test_express_writes_a_choice_on_a_flag():
    absent = object()
    cols = {"in_channels": [24, 48, 64, 128], "expand": [1, 4, 4, 6], "fused": [True, True, False, False]}
    got = variants.express([1, 1, 256, 768], cols, lit, absent)
    assert got == ("1 if fused else in_channels * expand", {"fused", "in_channels", "expand"})
    assert variants.express([24, 192, 256, 768], cols, lit, absent)[0] == "in_channels * expand"
    assert variants.express([absent, absent, 16, 32], cols, lit, absent)[0] == "in_channels // 4"
    assert variants.express([1, 2, 3, 5], cols, lit, absent) is None
