"""`gpt2` (stdlib/gpt2.res) against Hugging Face transformers' GPT2LMHeadModel, built locally with
random weights (no download): the state_dict loads strictly both ways (Conv1D layouts, the tied
head, no buffer), the logits are equal in the module tree, the standalone file and ONNX; the
Loop-Residual GPT-2 (stdlib/loop_gpt2.res) starts from those weights. transformers is a test
dependency only: nothing under resdsl/ imports it."""

import pathlib
import re

import pytest
import torch
from conftest import import_file

import resdsl

ROOT = pathlib.Path(__file__).resolve().parents[1]
GPT2 = str(ROOT / "stdlib" / "gpt2.res")
LOOP = str(ROOT / "stdlib" / "loop_gpt2.res")
SMALL = dict(vocab=100, ctx=32, d=64, layers=2, heads=4)
RTOL, ATOL = 1e-4, 1e-5


def hf_model(vocab=100, ctx=32, d=64, layers=2, heads=4, seed=0, attn="eager"):
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=d, n_layer=layers, n_head=heads,
                     bos_token_id=0, eos_token_id=0, attn_implementation=attn)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def small():
    hf = hf_model(**SMALL)
    with torch.no_grad():  # randomise the LayerNorms and biases too (HF starts them at 1 and 0)
        for k, v in hf.state_dict().items():
            if k.endswith("bias") or "ln_" in k:
                v.add_(torch.randn_like(v) * 0.1)
    return hf


def logits(hf, ids):
    with torch.no_grad():
        return hf(ids).logits


def test_small_state_dict_strict_both_ways_and_logits(small):
    sd = small.state_dict()
    m = resdsl.build(GPT2, network="GPT2", **SMALL).eval()
    assert list(m.state_dict()) == list(sd)  # the same keys in the same order, no buffer on either side
    for k, v in m.state_dict().items():
        assert v.shape == sd[k].shape, k
    assert m.state_dict()["transformer.h.0.attn.c_attn.weight"].shape == (64, 3 * 64)  # Conv1D: [in, out]
    m.load_state_dict(sd, strict=True)
    assert m.lm_head.weight is m.transformer.wte.weight  # tied, as HF ties it
    fresh = hf_model(**SMALL, seed=1)
    fresh.load_state_dict(m.state_dict(), strict=True)
    for ids in (torch.randint(0, 100, (2, 32)), torch.randint(0, 100, (3, 7)), torch.randint(0, 100, (1, 1))):
        want = logits(small, ids)
        with torch.no_grad():
            torch.testing.assert_close(m(ids), want, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(logits(fresh, ids), want, rtol=RTOL, atol=ATOL)
    assert resdsl.graph(GPT2, network="GPT2", **SMALL).num_params() == sum(p.numel() for p in small.parameters())


def test_small_standalone_file_and_onnx(small, tmp_path):
    import onnxruntime as ort
    sd = small.state_dict()
    ids = torch.randint(0, 100, (2, 12))
    want = logits(small, ids)
    path = tmp_path / "gpt2_small.py"
    path.write_text(resdsl.to_python(GPT2, network="GPT2", **SMALL))
    text = path.read_text()
    assert "transformers" not in text and "class LinearInOut" in text
    m = import_file(path).GPT2().eval()
    m.load_state_dict(sd, strict=True)
    small_copy = hf_model(**SMALL, seed=2)
    small_copy.load_state_dict(m.state_dict(), strict=True)
    assert m.lm_head.weight is m.transformer.wte.weight
    with torch.no_grad():
        torch.testing.assert_close(m(ids), want, rtol=RTOL, atol=ATOL)
    model = resdsl.to_onnx(GPT2, network="GPT2", weights=sd, **SMALL)
    inits = {i.name for i in model.graph.initializer}
    assert "transformer.wte.weight" in inits and "lm_head.weight" not in inits  # one tensor for the tied pair
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in (ids, torch.randint(0, 100, (1, 30))):  # any length up to ctx: the positions are computed at run time
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(out), logits(small, x), rtol=RTOL, atol=ATOL)


def test_full_small_config_124m():
    """GPT2Config() defaults: 12 layers, 768 wide, 12 heads, vocab 50257, 1024 positions."""
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config()).eval()
    sd = hf.state_dict()
    m = resdsl.build(GPT2, network="gpt2", weights=sd).eval()
    assert list(m.state_dict()) == list(sd)
    assert resdsl.graph(GPT2, network="gpt2").num_params() == 124_439_808 == sum(p.numel() for p in hf.parameters())
    ids = torch.randint(0, 50257, (1, 48))
    with torch.no_grad():
        torch.testing.assert_close(m(ids), hf(ids).logits, rtol=RTOL, atol=ATOL)


def test_causal_attention_future_tokens_do_not_leak():
    m = resdsl.build(GPT2, network="GPT2", seed=0, **SMALL).eval()
    a = torch.randint(0, 100, (1, 10))
    b = a.clone()
    b[0, 6:] = (b[0, 6:] + 1) % 100
    with torch.no_grad():
        ya, yb = m(a), m(b)
    torch.testing.assert_close(ya[:, :6], yb[:, :6])
    assert not torch.allclose(ya[:, 6:], yb[:, 6:])


def test_loop_residual_gpt2_starts_from_gpt2_weights(small):
    """docs/architectures.md: `load_state_dict(gpt2_sd, strict=False)` fills every tensor of the loop
    model; only the blocks past `layers` are left over. Its output is HF's first blocks looped."""
    # sdpa: a GPT2Block called alone (no mask from GPT2Model) is causal with it, not with eager
    hf = hf_model(vocab=100, ctx=32, d=64, layers=3, heads=4, attn="sdpa")
    sd = hf.state_dict()
    loop = resdsl.build(LOOP, network="LoopGPT2", layers=2, loops=3, vocab=100, ctx=32, d=64, heads=4).eval()
    missing, unexpected = loop.load_state_dict(sd, strict=False)
    assert missing == []
    assert unexpected and all(k.startswith("transformer.h.2.") for k in unexpected)
    for k, v in loop.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert loop.lm_head.weight is loop.transformer.wte.weight
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        t = hf.transformer
        x = t.wte(ids) + t.wpe(torch.arange(9))
        for _ in range(3):  # one set of weights, applied three times
            for blk in t.h[:2]:
                out = blk(x)
                x = out[0] if isinstance(out, tuple) else out
        want = hf.lm_head(t.ln_f(x))
        torch.testing.assert_close(loop(ids), want, rtol=RTOL, atol=ATOL)
    # with loops=1 and every layer it is GPT-2 itself, loaded strictly
    same = resdsl.build(LOOP, network="LoopGPT2", layers=3, loops=1, vocab=100, ctx=32, d=64, heads=4,
                        weights=sd).eval()
    with torch.no_grad():
        torch.testing.assert_close(same(ids), hf(ids).logits, rtol=RTOL, atol=ATOL)


def test_nothing_in_the_package_imports_transformers():
    pattern = re.compile(r"^\s*(import|from)\s+transformers\b", re.MULTILINE)
    offenders = [str(p) for p in (ROOT / "resdsl").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
    text = (ROOT / "pyproject.toml").read_text()
    deps = text[text.index("dependencies"):text.index("[project.optional-dependencies]")]
    assert "transformers" not in deps
    test_extra = re.search(r"^test\s*=\s*\[(.*?)\]", text, re.MULTILINE | re.DOTALL).group(1)
    assert "transformers" in test_extra


def test_initial_weights_follow_the_file_and_the_tied_head_keeps_them(tmp_path):
    """wte is drawn from normal(0.02) as written; the tied lm_head (a Linear whose only tensor is
    wte's) does not redraw it. The standalone file draws the same numbers for a seed."""
    big = dict(SMALL, vocab=4000)
    m = resdsl.build(GPT2, network="GPT2", seed=0, **big)
    w = m.transformer.wte.weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    path = tmp_path / "gpt2_init.py"
    path.write_text(resdsl.to_python(GPT2, network="GPT2", **big))
    f = import_file(path).GPT2(seed=0)
    for k, v in m.state_dict().items():
        assert torch.equal(v, f.state_dict()[k]), k
