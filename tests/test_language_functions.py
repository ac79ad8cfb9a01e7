"""`fn` definitions (recursion, closures, keywords), list comprehensions and `for` over
pairs; make_divisible checked against timm's."""

import pytest
from conftest import check_error, out_channels

import resdsl

MAKE_DIV = """
import helpers
network n(v: float = 10.0, d: int = 8) {
    input x: [N, 3, H, W]
    conv(make_divisible(v, d), 1)
}
"""


@pytest.mark.parametrize("v,d", [(10.0, 8), (3.0, 8), (37.5, 8), (96 * 0.25, 8), (100.0, 16), (8.0, 1),
                                 (27.0, 4), (500.7, 32)])
def test_fn_make_divisible_matches_timm(v, d):
    from timm.layers import make_divisible
    assert out_channels(MAKE_DIV, v=v, d=d) == make_divisible(v, d)


def test_fn_recursion_closure_and_keywords():
    src = """
    fn fact(n: int) = 1 if n <= 1 else n * fact(n - 1)
    block B(k: int) {
        let base = in.C
        fn widen(c, by = 2) = c * by + base - base + k - k
        conv(widen(base, by=fact(3)), 1)
    }
    network n { input x: [N, 4, H, W]; B(1) }
    """
    assert out_channels(src) == 24


def test_fn_recursion_is_bounded_and_errors_are_clear():
    e = check_error("fn f(n) = f(n + 1)\nnetwork n { input x: [N, 3, H, W]; conv(f(1), 1) }")
    assert e.kind == "limit" and "deeper than 64" in e.message
    e = check_error("fn f(a) = a\nnetwork n { input x: [N, 3, H, W]; conv(f(), 1) }")
    assert e.kind == "type" and "needs a value for `a`" in e.message
    e = check_error("fn f(a: int) = a\nnetwork n { input x: [N, 3, H, W]; conv(f(1.5), 1) }")
    assert e.kind == "type" and "must be int" in e.message
    e = check_error("fn f(a) = a\nnetwork n { input x: [N, 3, H, W]; y = f(x) }")
    assert e.kind == "type" and "compile-time function" in e.message
    e = check_error("fn relu(a) = a\nnetwork n { input x: [N, 3, H, W] }")
    assert e.kind == "name" and "primitive op" in e.message


def test_list_comprehensions():
    src = """
    network n(widths: list[int] = [8, 16, 24, 32]) {
        input x: [N, 3, H, W]
        let a = [w * 2 for w in widths if w > 8 if w != 24]              # [32, 64]
        let b = [i * 10 + j for i in range(3) for j in range(i)]        # [10, 20, 21]
        let c = [p + q for p, q in zip(widths, [1, 2, 3, 4])]            # [9, 18, 27, 36]
        let d = [i for i, w in enumerate(widths) if w >= 16]             # [1, 2, 3]
        let cfg = [[1, 16, 1], [6, 24, 2], [6, 32, 3]]
        let e = sum([cfg[j][2] for j in range(2)])                       # 3
        conv(sum(a) + sum(b) + sum(c) + sum(d) + e, 1)
    }
    """
    assert out_channels(src) == 96 + 51 + 90 + 6 + 3
    e = check_error("network n { input x: [N, 3, H, W]; let a = [i for i, j in [1, 2]] }")
    assert e.kind == "type" and "cannot unpack" in e.message


def test_for_statement_unpacks_pairs():
    src = """
    network n {
        input x: [N, 3, H, W]
        for c, k in zip([4, 6], [1, 3]) { conv(c, k, padding=k // 2) as "c{c}-{k}" }
    }
    """
    gm = resdsl.build(src, seed=0)
    assert list(gm.state_dict()) == ["c4-1.weight", "c4-1.bias", "c6-3.weight", "c6-3.bias"]
