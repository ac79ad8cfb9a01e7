"""Local stand-ins for the two servers published weights come from, on 127.0.0.1 only:
a plain HTTP file server (download.pytorch.org, for torch.hub) and the file-resolve part of
the Hugging Face Hub API (`HEAD`/`GET /{repo_id}/resolve/{revision}/{filename}` with the
headers huggingface_hub reads: X-Repo-Commit, ETag, Content-Length). The client code under
test is the real one (torch.hub, huggingface_hub); these only serve bytes and count requests.

Also `make_tv_checkpoint` / `make_timm_checkpoint`: checkpoints made from the reference
architectures (random weights, BatchNorm statistics randomised so that eval mode is no
near-identity), named as the real ones are."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Files(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of `self.server.files[path]`."""

    def log_message(self, *a):  # quiet
        pass

    def _lookup(self):
        return self.server.files.get(self.path.split("?")[0])

    def _send(self, body: bool):
        self.server.requests.append((self.command, self.path))
        data = self._lookup()
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self.send_response(200)
        for k, v in self._headers(data).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _headers(self, data: bytes) -> dict:
        return {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}

    def do_GET(self):
        self._send(True)

    def do_HEAD(self):
        self._send(False)


class _Hub(_Files):
    def _headers(self, data: bytes) -> dict:
        h = super()._headers(data)
        h.update({"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})
        return h


@contextlib.contextmanager
def serve(kind: str = "files"):
    """A running server (`.url`, `.files` path -> bytes, `.requests`), stopped on exit."""
    srv = _Server(_Hub if kind == "hub" else _Files)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def hub_path(repo_id: str, filename: str, revision: str = "main") -> str:
    return f"/{repo_id}/resolve/{revision}/{filename}"


def randomise_bn(model, seed: int = 0):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


def torch_save_bytes(state: dict) -> bytes:
    import io

    import torch
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def hub_name(stem: str, data: bytes) -> str:
    """`<stem>-<sha256 prefix>.pth`, the name torch.hub checks the hash against."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"


def make_tv_checkpoint(name: str, seed: int = 0):
    """(torchvision model in eval mode, its state_dict as torch.save bytes)."""
    import torch
    import torchvision
    torch.manual_seed(seed)
    ref = randomise_bn(getattr(torchvision.models, name)(), seed).eval()
    return ref, torch_save_bytes(ref.state_dict())


def make_timm_checkpoint(name: str, path: Path, seed: int = 0):
    """timm model in eval mode; its state_dict written to `path` as safetensors."""
    import timm
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    ref = randomise_bn(timm.create_model(name, pretrained=False), seed).eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    return ref


def free_port_url() -> str:
    """The URL of a port nothing listens on (a server that is down)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
