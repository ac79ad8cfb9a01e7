"""Quoted names (`as "trunk_output.block1-0"`): dotted state_dict keys that load strictly
in build() and the standalone file; names that cannot be keys are refused."""

import pytest
import torch
from conftest import check_error, import_file

import resdsl

REGNET_LIKE = """
network q {
    input x: [N, 3, H=8, W=8]
    conv(4, 3, padding=1) as "stem.0"
    conv(4, 1) as "trunk_output.block1.block1-0.a"
    conv(4, 1) as "trunk_output.block1.block1-1.a"
    conv(2, 1) as "x y<z>&'é"
}
"""


def _ref_regnet_like():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
            blk = torch.nn.Module()
            for i in range(2):
                sub = torch.nn.Module()
                sub.a = torch.nn.Conv2d(4, 4, 1)
                blk.add_module(f"block1-{i}", sub)
            self.trunk_output = torch.nn.Module()
            self.trunk_output.block1 = blk
            self.add_module("x y<z>&'é", torch.nn.Conv2d(4, 2, 1))

        def forward(self, x):
            x = self.stem(x)
            for i in range(2):
                x = getattr(self.trunk_output.block1, f"block1-{i}").a(x)
            return getattr(self, "x y<z>&'é")(x)
    return M()


def test_quoted_names_load_strictly_in_build_and_standalone(tmp_path):
    ref = _ref_regnet_like()
    gm = resdsl.build(REGNET_LIKE, seed=0)
    gm.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(gm(x), ref(x))
    path = tmp_path / "q_mod.py"
    path.write_text(resdsl.to_python(REGNET_LIKE))
    mod = import_file(path)
    m = mod.q()
    m.load_state_dict(ref.state_dict(), strict=True)
    torch.testing.assert_close(m(x), ref(x))


@pytest.mark.parametrize("name,why", [('"a\\"b"', '`"`'), ('"a..b"', "empty segment"), ("forward", "attribute"),
                                      ('"graph"', "attribute"), ('"a\\\\b"', "`\\`"), ('"a\\tb"', "control")])
def test_bad_names(name, why):
    e = check_error(f"network n {{ input x: [N, 3, H, W]; conv(4, 1) as {name} }}")
    assert e.kind == "name" and why in e.message
