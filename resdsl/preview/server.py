"""The preview's HTTP server: standard library only, bound to 127.0.0.1, fixed routes.

    GET  /            the page            GET /app.js, /app.css   its script and style
    GET  /view?...    the page's data as JSON (network, style, depth)
    GET  /events      server-sent events: `change` with the new version after each save
    POST /save        {format, network, style, depth} -> writes the figure beside the file

Nothing else is served: no file is read by a name a request gives. Every request's Host
must be 127.0.0.1:PORT or localhost:PORT (a page of another site that rebinds its DNS name
to 127.0.0.1 sends its own name), a POST must be JSON from the page's own origin, and every
response forbids inline script (Content-Security-Policy), so a name that slipped through
into the page could not run."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..diagnostics import ResdslError
from . import page
from .state import Preview, parse_depth

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
STATIC = {"/": ("text/html; charset=utf-8", page.HTML), "/app.js": ("text/javascript; charset=utf-8", page.JS),
          "/app.css": ("text/css; charset=utf-8", page.CSS)}
MAX_BODY = 4096
KEEPALIVE_S = 10.0


class Handler(BaseHTTPRequestHandler):
    server_version = "resdsl-preview"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @property
    def preview(self) -> Preview:
        return self.server.preview

    def log_message(self, format, *args):  # quiet: the terminal shows the URL and saves only
        pass

    # ------------------------------------------------------------ checks
    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").strip().lower()
        return host in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _origin_ok(self) -> bool:
        port = self.server.server_address[1]
        origin = self.headers.get("Origin")
        return origin is None or origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}")

    def _send(self, code: int, ctype: str, body: bytes, extra=()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")

    def _json(self, code: int, data) -> None:
        self._send(code, "application/json", json.dumps(data).encode())

    def _refuse(self, code: int, message: str) -> None:
        self._send(code, "text/plain; charset=utf-8", (message + "\n").encode(), [("Connection", "close")])
        self.close_connection = True

    # ------------------------------------------------------------ routes
    def do_GET(self):
        if not self._host_ok():
            return self._refuse(421, "this server answers only http://127.0.0.1 and http://localhost")
        url = urlsplit(self.path)
        if url.path in STATIC:
            ctype, text = STATIC[url.path]
            return self._send(200, ctype, text.encode())
        if url.path == "/view":
            q = {k: v[-1] for k, v in parse_qs(url.query, max_num_fields=8).items()}
            try:
                data = self.preview.view(q.get("network") or None, q.get("style", "block"),
                                         parse_depth(q.get("depth", "1")))
            except ResdslError as e:
                return self._json(400, {"error": e.render()})
            return self._json(200, data)
        if url.path == "/events":
            return self._events()
        return self._refuse(404, "not found")

    def do_HEAD(self):
        return self.do_GET() if urlsplit(self.path).path in STATIC else self._refuse(405, "method not allowed")

    def do_POST(self):
        if not self._host_ok() or not self._origin_ok():
            return self._refuse(403, "forbidden: not from the preview page")
        if urlsplit(self.path).path != "/save":
            return self._refuse(404, "not found")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._refuse(415, "send application/json")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 < n <= MAX_BODY:
            return self._refuse(413, "the request body must be under 4 kB")
        try:
            q = json.loads(self.rfile.read(n))
            if not isinstance(q, dict):
                raise ValueError
            result = self.preview.save(str(q.get("format")), q.get("network") or None,
                                       str(q.get("style", "block")), parse_depth(q.get("depth", 1)))
        except ValueError:
            return self._json(400, {"error": "error[usage]: the request is not a JSON object"})
        except ResdslError as e:
            return self._json(400, {"error": e.render()})
        print(f"wrote {result['wrote']}", file=sys.stderr, flush=True)
        return self._json(200, result)

    def do_PUT(self):
        self._refuse(405, "method not allowed")

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    def _events(self) -> None:
        """Server-sent events: `change` with the version now, then at each change; a comment
        every few seconds keeps the stream open and finds a page that left."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self._common_headers()
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seen = self.preview.version
        try:
            self.wfile.write(f"retry: 500\nevent: change\ndata: {seen}\n\n".encode())
            self.wfile.flush()
            while not self.preview.stopped and not self.server.closing.is_set():
                v = self.preview.wait_change(seen, KEEPALIVE_S)
                if v != seen:
                    seen = v
                    self.wfile.write(f"event: change\ndata: {v}\n\n".encode())
                else:
                    self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, preview: Preview, port: int = 0):
        self.preview = preview
        self.closing = threading.Event()
        super().__init__(("127.0.0.1", port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


def start(preview: Preview, port: int = 0) -> tuple[PreviewServer, list[threading.Thread]]:
    """Bind 127.0.0.1:`port` (0: a free one), then serve and watch in background threads.
    `stop(server, threads)` ends both."""
    server = PreviewServer(preview, port)
    threads = [threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                name="preview-http"),
               threading.Thread(target=preview.watch, daemon=True, name="preview-watch")]
    for t in threads:
        t.start()
    return server, threads


def stop(server: PreviewServer, threads) -> None:
    server.closing.set()
    server.preview.stop()
    server.shutdown()
    server.server_close()
    for t in threads:
        t.join(timeout=2)
