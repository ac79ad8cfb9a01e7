"""How fast `resdsl lsp` answers, driven over stdio as an editor drives it.

Prints the time from a `didChange` to its `publishDiagnostics` on stdlib/resnet.res (an edit in
one network's line, an edit inside the Bottleneck block seven of its networks use, and a line
inserted at the top, which moves every definition) and on a file with the 1202-layer CIFAR ResNet,
hover and inlay hints on resnet.res, beside `resdsl check`'s whole-process time on the same files:
median and 90th percentile of the wall time, and the server's CPU time per request (mean; it
does not grow with the machine's load as the wall time does), with the load average.
Targets (issue 20): diagnostics <= 50 ms on resnet.res and <= 500 ms on the 1202-layer network,
hover and inlay hints <= 50 ms (medians).

    python benchmarks/lsp.py [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Client:
    """A minimal LSP client: Content-Length framed JSON-RPC over the server's pipes."""

    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-m", "resdsl", "lsp"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=ENV)
        self.next_id = 0

    def send(self, method, params, request=False):
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            msg["id"] = self.next_id
        body = json.dumps(msg).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.p.stdin.flush()
        return msg.get("id")

    def read(self):
        length = 0
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("the server exited")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.p.stdout.read(length))

    def wait(self, pred):
        while True:
            m = self.read()
            if m.get("method") == "workspace/configuration" or ("id" in m and "method" in m):
                self.reply(m["id"], None)
                continue
            if pred(m):
                return m

    def reply(self, id_, result):
        body = json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.p.stdin.flush()

    def request(self, method, params):
        i = self.send(method, params, request=True)
        return self.wait(lambda m: m.get("id") == i and "method" not in m)

    def close(self):
        self.request("shutdown", None)
        self.send("exit", None)
        self.p.wait(timeout=10)


def _cpu(pid) -> float:
    """Seconds of CPU the process has used (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Times(list):
    """Wall times of the requests, and the server's CPU seconds over all of them."""
    cpu = 0.0


def _diagnostics_after(c, uri):
    return c.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri)


def change_times(c, uri, texts, repeat):
    """Seconds from each didChange (cycling through `texts`) to its diagnostics."""
    out = Times()
    cpu = _cpu(c.p.pid)
    for i in range(repeat):
        text = texts[i % len(texts)]
        t = time.perf_counter()
        c.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": i + 2},
                                          "contentChanges": [{"text": text}]})
        m = _diagnostics_after(c, uri)
        out.append(time.perf_counter() - t)
        assert m["params"]["diagnostics"] == [], m["params"]["diagnostics"][:1]
    out.cpu = _cpu(c.p.pid) - cpu
    return out


def request_times(c, method, params, repeat):
    out = Times()
    cpu = _cpu(c.p.pid)
    for _ in range(repeat):
        t = time.perf_counter()
        r = c.request(method, params)
        out.append(time.perf_counter() - t)
        assert r.get("result"), r
    out.cpu = _cpu(c.p.pid) - cpu
    return out


def check_time(path, network=None, repeat=3):
    args = [sys.executable, "-m", "resdsl", "check", str(path)] + (["-n", network] if network else [])
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=ENV)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def ms(xs):
    """median, 90th percentile (wall) and the server's mean CPU time per request, in ms."""
    xs = Times(xs) if not isinstance(xs, Times) else xs
    p90 = sorted(xs)[max(0, math.ceil(0.9 * len(xs)) - 1)]
    cpu = f"{xs.cpu / len(xs) * 1000:7.1f}" if xs.cpu else "      -"
    return f"{statistics.median(xs) * 1000:7.1f} {p90 * 1000:7.1f} {cpu}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    n = args.repeat
    resnet = ROOT / "stdlib" / "resnet.res"
    text = resnet.read_text()
    tmp = Path(tempfile.mkdtemp())
    big = tmp / "resnet1202.res"
    big_text = "import cifar\n\nnetwork resnet1202 = CifarResNet(200)\n"
    big.write_text(big_text)

    c = Client()
    c.request("initialize", {"processId": os.getpid(), "rootUri": tmp.as_uri(), "capabilities": {}})
    c.send("initialized", {})
    uri = resnet.as_uri()
    t = time.perf_counter()
    c.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "resdsl", "version": 1, "text": text}})
    _diagnostics_after(c, uri)
    first = time.perf_counter() - t
    net_edit = [text.replace("[2, 2, 2, 2])", f"[2, 2, 2, {k}])") for k in (3, 2)]
    # a real edit of the block (an argument added), then back: 7 networks call Bottleneck
    block_edit = [text.replace("kconv(width, 1) as conv1", "kconv(width, 1, padding=0) as conv1"), text]
    moved = ["\n" + text, text]
    rows = [("resnet.res: open (every network elaborated)", f"{first * 1000:7.1f}"),
            ("resnet.res: didChange -> diagnostics, edit in resnet18's line", ms(change_times(c, uri, net_edit, n))),
            ("resnet.res: didChange -> diagnostics, edit in Bottleneck (7 networks re-elaborated)",
             ms(change_times(c, uri, block_edit, max(4, n // 4)))),
            ("resnet.res: didChange -> diagnostics, a line inserted at the top (graphs kept, moved)",
             ms(change_times(c, uri, moved, max(4, n // 4))))]
    c.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 1000}, "contentChanges": [{"text": text}]})
    _diagnostics_after(c, uri)
    line = next(i for i, s in enumerate(text.splitlines()) if "kconv(width, 3" in s)
    col = text.splitlines()[line].index("kconv") + 2
    pos = {"textDocument": {"uri": uri}, "position": {"line": line, "character": col}}
    rows.append(("resnet.res: hover on an op", ms(request_times(c, "textDocument/hover", pos, n))))
    rng = {"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0},
                                                   "end": {"line": len(text.splitlines()), "character": 0}}}
    rows.append(("resnet.res: inlay hints, whole file", ms(request_times(c, "textDocument/inlayHint", rng, n))))
    # an editor asks for the hints right after each change: the shapes of the new graphs are worked
    # out then (the diagnostics went out before)
    after = Times()
    for i in range(max(4, n // 4)):
        c.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2000 + i},
                                          "contentChanges": [{"text": block_edit[i % 2]}]})
        _diagnostics_after(c, uri)
        t = time.perf_counter()
        assert c.request("textDocument/inlayHint", rng).get("result")
        after.append(time.perf_counter() - t)
    rows.append(("resnet.res: inlay hints right after the Bottleneck edit's diagnostics", ms(after)))

    buri = big.as_uri()
    t = time.perf_counter()
    c.send("textDocument/didOpen", {"textDocument": {"uri": buri, "languageId": "resdsl", "version": 1,
                                                     "text": big_text}})
    _diagnostics_after(c, buri)
    rows.append(("resnet1202 (4,210 ops): open", f"{(time.perf_counter() - t) * 1000:7.1f}"))
    big_edits = [big_text.replace("CifarResNet(200)", "CifarResNet( 200)"), big_text]
    rows.append(("resnet1202: didChange -> diagnostics (the network re-elaborated)",
                 ms(change_times(c, buri, big_edits, max(3, n // 5)))))
    edit_elsewhere = [big_text + "\n# a comment\n", big_text + "\n# a comment \n"]
    rows.append(("resnet1202: didChange -> diagnostics, a comment added below (cached)",
                 ms(change_times(c, buri, edit_elsewhere, n))))
    c.close()

    rows.append(("resdsl check stdlib/resnet.res (whole process)", f"{check_time(resnet) * 1000:7.1f}"))
    rows.append(("resdsl check resnet1202 file (whole process)", f"{check_time(big) * 1000:7.1f}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'ms':<{width}}   median     p90     cpu")
    for name, v in rows:
        print(f"{name:<{width}}  {v}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
