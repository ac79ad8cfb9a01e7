"""Downloads of published weights through the real clients (torch.hub, huggingface_hub) from
servers on 127.0.0.1 that serve checkpoints made here from the reference architectures:
equal outputs to the reference, a warm cache makes no request, a bad hash or no network is a
clear error that leaves the cache as it was. No test reaches the internet."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import resdsl
from resdsl import pretrained
from resdsl.diagnostics import ResdslError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrained_servers import (free_port_url, hub_name, hub_path, make_timm_checkpoint,  # noqa: E402
                                make_tv_checkpoint, serve, torch_save_bytes)

ROOT = Path(__file__).resolve().parents[1]
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch.hub cache (TORCH_HOME); returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _point(monkeypatch, network, tag, url):
    """Point a registry entry at a local URL (the download code stays the real one)."""
    entry = next(e for e in pretrained.registry_data()["networks"][network]["tags"] if e["tag"] == tag)
    monkeypatch.setitem(entry, "url", url)
    monkeypatch.setitem(entry, "hash", url.rsplit("-", 1)[-1].split(".")[0])


def test_torch_hub_download_gives_the_reference_outputs_and_a_warm_cache_asks_nothing(torch_home, monkeypatch):
    ref, data = make_tv_checkpoint("resnet18")
    name = hub_name("resnet18", data)
    with serve() as srv:
        srv.files["/models/" + name] = data
        _point(monkeypatch, "resnet18", "IMAGENET1K_V1", f"{srv.url}/models/{name}")
        m = resdsl.create_model("resnet18", pretrained=True).eval()
        assert [r[0] for r in srv.requests] == ["GET"]
        assert (torch_home / name).read_bytes() == data  # torch.hub's cache, under TORCH_HOME
        with torch.no_grad():
            assert (m(X) - ref(X)).abs().max().item() == 0.0
            assert ref(X).std() > 1e-3
        assert m.pretrained_cfg.name == "resnet18.IMAGENET1K_V1" and len(m.pretrained_cfg.class_names) == 1000
        state, cfg = resdsl.load_pretrained("resnet18")  # second load: from the cache, no request
        assert len(srv.requests) == 1 and cfg.tag == "IMAGENET1K_V1"
        assert all(torch.equal(state[k], v) for k, v in ref.state_dict().items())
        assert not any(p.is_meta for p in m.parameters()) and all(p.requires_grad for p in m.parameters())


def test_bad_hash_is_an_error_the_partial_file_removed_the_cache_untouched(torch_home, monkeypatch):
    _, data = make_tv_checkpoint("resnet18")
    torch_home.mkdir(parents=True)
    (torch_home / "other-01234567.pth").write_bytes(b"cached before")
    with serve() as srv:
        srv.files["/models/resnet18-deadbeef.pth"] = data  # the name promises another file
        _point(monkeypatch, "resnet18", "IMAGENET1K_V1", f"{srv.url}/models/resnet18-deadbeef.pth")
        with pytest.raises(ResdslError) as e:
            resdsl.load_pretrained("resnet18", "IMAGENET1K_V1")
    assert e.value.kind == "download" and "not the published one" in e.value.message and "deadbeef" in e.value.message
    assert sorted(p.name for p in torch_home.iterdir()) == ["other-01234567.pth"]  # no partial, no bad file
    assert (torch_home / "other-01234567.pth").read_bytes() == b"cached before"


def test_server_down_is_a_clear_error(torch_home, monkeypatch):
    _point(monkeypatch, "resnet18", "IMAGENET1K_V1", f"{free_port_url()}/models/resnet18-f37072fd.pth")
    with pytest.raises(ResdslError) as e:
        resdsl.create_model("resnet18", pretrained=True)
    assert e.value.kind == "download" and "cannot download resnet18.IMAGENET1K_V1" in e.value.message
    assert "TORCH_HOME" in e.value.help and str(torch_home) in e.value.help
    assert not torch_home.exists() or not any(torch_home.iterdir())


def test_densenet_keys_renamed_as_torchvision_does(torch_home):
    """torchvision's densenet files keep LuaTorch-era keys (`norm.1`); the registry's rename
    must give what torchvision's own loader gives, from the same file in the same cache."""
    import re

    import torchvision
    ref, _ = make_tv_checkpoint("densenet121")
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.", r"\1.\2.", k): v for k, v in ref.state_dict().items()
           if not k.endswith("num_batches_tracked")}  # the 2017 files predate it
    assert any(".norm.1." in k for k in old)
    file_name = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    torch_home.mkdir(parents=True)
    (torch_home / file_name).write_bytes(torch_save_bytes(old))  # torch.hub does not re-hash a cached file
    tv = torchvision.models.densenet121(weights="IMAGENET1K_V1").eval()
    m = resdsl.create_model("densenet121", pretrained=True).eval()
    with torch.no_grad():
        assert torch.equal(m(X), tv(X)) and torch.equal(tv(X), ref(X))


# ------------------------------------------------------------------ the Hugging Face Hub (timm's tags)
def _run(code, env, cwd):
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}  # only the test's HF_ settings
    env = {**base, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_TELEMETRY": "1", **env}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=300)
    return r


def test_hf_hub_download_through_hf_endpoint_equals_timm_and_a_warm_cache_asks_nothing(tmp_path):
    make_timm_checkpoint("resnet18", tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    env = {"HF_HOME": str(tmp_path / "hf")}
    with serve("hub") as srv:
        srv.files[hub_path("timm/resnet18.a1_in1k", "model.safetensors")] = data
        env["HF_ENDPOINT"] = srv.url  # read when huggingface_hub is imported: set in the child
        r = _run("""
            import json, torch, timm, resdsl
            m = resdsl.create_model("resnet18", pretrained="a1_in1k").eval()
            ref = timm.create_model("resnet18.a1_in1k", pretrained=True).eval()  # timm's own download
            x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
            with torch.no_grad():
                print(json.dumps({"diff": (m(x) - ref(x)).abs().max().item(), "std": ref(x).std().item(),
                                  "tag": m.pretrained_cfg.name}))
            """, env, tmp_path)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out == {"diff": 0.0, "std": out["std"], "tag": "resnet18.a1_in1k"} and out["std"] > 1e-3
        assert ("GET", hub_path("timm/resnet18.a1_in1k", "model.safetensors")) in srv.requests
        n = len(srv.requests)
        r = _run("""
            import resdsl
            state, cfg = resdsl.load_pretrained("resnet18.a1_in1k")
            print(len(state), cfg.hf_hub_id)
            """, env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["122", "timm/resnet18.a1_in1k"] and len(srv.requests) == n  # warm: no request
    blobs = list((tmp_path / "hf" / "hub" / "models--timm--resnet18.a1_in1k" / "blobs").iterdir())
    assert [b.read_bytes() == data for b in blobs] == [True]  # huggingface_hub's cache, under HF_HOME


@pytest.mark.parametrize("how", ["offline", "server down"])
def test_hf_hub_offline_or_down_with_an_empty_cache_is_a_clear_error(tmp_path, how):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": free_port_url()}
    if how == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    r = _run("""
        import sys
        from resdsl.cli import main
        sys.exit(main(["compile", "resnet18", "-t", "onnx", "-o", "r.onnx", "--pretrained=a1_in1k"]))
        """, env, tmp_path)
    assert r.returncode == 1, r.stderr
    # (huggingface_hub may first log its retries of a refused connection)
    err = r.stderr[r.stderr.index("error[download]"):]
    assert err.startswith("error[download]: cannot download resnet18.a1_in1k"), r.stderr
    assert ("offline (HF_HUB_OFFLINE=1) and not in the cache" in err) == (how == "offline")
    assert "HF_HOME" in err and "Traceback" not in r.stderr
    assert not (tmp_path / "r.onnx").exists()
