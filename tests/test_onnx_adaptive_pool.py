"""adaptive_avgpool to sizes other than 1 in the ONNX target at symbolic input sizes (AlexNet's
6x6, VGG's 7x7, GoogLeNet's auxiliary 4x4): torch's windows [floor(j*I/O), ceil((j+1)*I/O))
computed from the run-time size, against the torch target through onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

import resdsl

SRC = """network pools() {
    input x: [N, 3, H, W]
    a = adaptive_avgpool([7, 5])
    b = x -> adaptive_avgpool([4, 4])
    c = x -> adaptive_avgpool([3, 1])
    output a = a, b = b, c = c
}
"""


@pytest.fixture(scope="module")
def pair():
    gm = resdsl.build(SRC, seed=0).eval()
    model = resdsl.to_onnx(SRC)
    assert "GlobalAveragePool" not in {nd.op_type for nd in model.graph.node}
    return gm, ort.InferenceSession(model.SerializeToString())


# smaller than the output (windows overlap), divisible, not divisible, H != W
@pytest.mark.parametrize("h,w", [(3, 2), (14, 20), (13, 17), (64, 67)])
def test_symbolic_adaptive_avgpool_matches_torch(pair, h, w):
    gm, sess = pair
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        want = gm(x)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert len(got) == 3
    for g, y in zip(got, want):
        assert g.shape == tuple(y.shape)
        np.testing.assert_allclose(g, y.numpy(), rtol=1e-5, atol=1e-6)
