"""`resdsl preview`: the routes over HTTP on 127.0.0.1 (urllib), the watch, the command's
start and Ctrl-C, and a real headless browser (Debian's chromium driven by playwright) that
edits the file on disk and waits for the new figure, sees an error located, and saves."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from resdsl import api
from resdsl.preview import Preview, start, stop
from resdsl.preview.sanitize import clean_svg

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

NET = "import resnet\nnetwork net = resnet50\n"
TWO = """\
network small() {
    input x: [N, 3, 32, 32]
    conv(8, 3, padding=1) -> bn -> relu
}

network wide(c: int = 16) {
    input x: [N, 3, 32, 32]
    conv(c, 3, padding=1) -> relu -> conv(c, 3, padding=1)
}
"""
# names that are markup: graphviz writes them into the SVG (titles, ids); the page must show them as text
EVIL = """\
network evil() {
    input x: [N, 3, 32, 32]
    conv(8, 3, padding=1) as "<script>window.pwned=1</script>" -> relu
    conv(8, 3, padding=1) as "<img src=x onerror=window.pwned=2>" -> relu
    conv(8, 3, padding=1) as "<svg onload=window.pwned=3>"
}
"""
BAD = """\
network small() {
    input x: [N, 3, 32, 32]
    conv(8, 3, padding=1) -> bn -> relu
    linear(10, 7)
}
"""


# ---------------------------------------------------------------------------- helpers
def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def post(url, body, ctype="application/json", headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body.decode()


def check_error_text(path) -> str:
    """What `resdsl check FILE` prints on stderr (the reference for the page's diagnostics)."""
    r = subprocess.run([sys.executable, "-m", "resdsl", "check", str(path)], check=False, capture_output=True,
                       text=True, env={**ENV, "NO_COLOR": "1"}, timeout=120)
    assert r.returncode == 1, r.stderr
    return r.stderr.strip()


@pytest.fixture
def served(tmp_path):
    """start(files) -> (url, preview): an in-process server on a free port, stopped after."""
    running = []

    def go(text, name="net.res", network=None, **files):
        for n, t in files.items():
            (tmp_path / n).write_text(t)
        p = tmp_path / name
        p.write_text(text)
        preview = Preview(str(p), network, poll=0.05)
        server, threads = start(preview, 0)
        running.append((server, threads))
        return server.url, preview

    yield go
    for server, threads in running:
        stop(server, threads)


# ---------------------------------------------------------------------------- routes
def test_page_and_its_assets_carry_a_policy_that_forbids_inline_script(served):
    url, _ = served(TWO)
    status, headers, body = get(url)
    assert status == 200 and b"<title>resdsl preview</title>" in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert get(url + "app.js")[2].startswith(b"'use strict'")
    assert get(url + "app.css")[0] == 200


def test_only_fixed_routes_no_file_is_served(served, tmp_path):
    url, _ = served(TWO)
    (tmp_path / "secret.txt").write_text("top secret")
    for path in ("net.res", "secret.txt", "../secret.txt", "%2e%2e/secret.txt", "etc/passwd", "/etc/passwd",
                 "app.js/../net.res", "static/net.res", "view/../net.res", "favicon.ico"):
        status, _, body = get(url + path)
        assert status == 404, path
        assert b"secret" not in body and b"network" not in body


def raw_status(port, host, path="/view") -> int:
    """The status of GET `path` sent with exactly this Host header (None: no Host at all)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest("GET", path, skip_host=True)
    if host is not None:
        c.putheader("Host", host)
    c.endheaders()
    status = c.getresponse().status
    c.close()
    return status


def test_host_header_other_than_localhost_is_refused(served):
    url, _ = served(TWO)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", "", None,
                 f"127.0.0.1:{port}.evil.example"):
        for path in ("/", "/view", "/events", "/app.js"):
            assert raw_status(port, host, path) == 421, (host, path)
    assert raw_status(port, f"localhost:{port}") == 200 and raw_status(port, f"127.0.0.1:{port}") == 200


def test_view_draws_the_network_as_render_does(served, tmp_path):
    url, _ = served(TWO)
    status, _, body = get(url + "view?style=block&depth=1")
    data = json.loads(body)
    assert status == 200 and data["diagnostics"] == []
    assert data["networks"] == ["small", "wide"] and data["network"] == "small"
    ref = api.render(tmp_path / "net.res", "small", depth=1)
    assert data["svg"] == clean_svg(ref.data)
    assert data["summary"] == str(api.summary(tmp_path / "net.res", "small", depth=1))
    # the network and style the page asks for
    data = json.loads(get(url + "view?network=wide&style=circuit&depth=all")[2])
    assert data["network"] == "wide" and data["depth"] == "all"
    assert data["svg"] == clean_svg(api.render(tmp_path / "net.res", "wide", depth="all", style="circuit").data)


def test_network_option_picks_the_first_shown(served):
    url, _ = served(TWO, network="wide")
    assert json.loads(get(url + "view")[2])["network"] == "wide"


def test_bad_view_parameters_are_usage_errors(served):
    url, _ = served(TWO)
    for q in ("depth=-1", "depth=x", "depth=1000", "style=fancy"):
        status, _, body = get(url + "view?" + q)
        assert status == 400 and "error[usage]" in json.loads(body)["error"], q


def test_a_network_renamed_since_the_page_listed_it_shows_the_default(served, tmp_path):
    url, preview = served(TWO)
    (tmp_path / "net.res").write_text(TWO.replace("network small", "network tiny"))
    preview.check_files()
    data = json.loads(get(url + "view?network=small")[2])
    assert data["network"] == "tiny" and data["networks"] == ["tiny", "wide"] and data["diagnostics"] == []
    assert "tiny" in data["svg"]


def test_diagnostics_locate_the_error_as_check_prints_it(served, tmp_path):
    url, _ = served(BAD)
    data = json.loads(get(url + "view")[2])
    assert data["svg"] == ""
    [d] = data["diagnostics"]
    ref = check_error_text(tmp_path / "net.res")
    assert d["text"] in ref  # the same message, snippet and help as `resdsl check`
    where = re.search(r"--> (\S+:\d+:\d+)", ref).group(1)
    assert d["where"] == where and d["line"] == 4
    assert d["message"] in ref and (not d["help"] or d["help"] in ref)


MANY = """\
network small() {
    input x: [N, 3, 32, 32]
    conv(8, 3, padding=1) -> bn -> relu
}

network a() {
    input x: [N, 3, 32, 32]
    conv(8, 3, stride=0)
}

network b() {
    input x: [N, 3, 32, 32]
    conv(8, 3) -> linear(10, bias=maybe)
}
"""


def _blocks(check_stderr: str) -> list:
    """The errors `resdsl check` printed, one text each."""
    return ["error[" + b.rstrip() for b in check_stderr.split("error[")[1:]]


def test_every_error_of_the_file_is_shown_not_only_the_drawn_network_s(served, tmp_path):
    url, preview = served(MANY)
    data = json.loads(get(url + "view")[2])
    assert data["network"] == "small" and data["svg"]  # the first network is fine and drawn
    ref = _blocks(check_error_text(tmp_path / "net.res"))
    assert len(ref) == 2 and [d["text"].rstrip() for d in data["diagnostics"]] == ref
    # the drawn network fails too: its error and the other two, in file order as `check` prints them
    (tmp_path / "net.res").write_text(MANY.replace("-> bn -> relu", "-> bn -> nosuchop"))
    preview.check_files()
    data = json.loads(get(url + "view")[2])
    ref = _blocks(check_error_text(tmp_path / "net.res"))
    assert data["svg"] == "" and len(ref) == 3 and [d["text"].rstrip() for d in data["diagnostics"]] == ref


def test_error_in_an_import_is_located_in_the_import(served, tmp_path):
    lib = "block B(c: int) {\n    conv(c, 3, padding=1) -> relu\n    linear(3, 4, 5)\n}\n"
    url, _ = served("import lib\nnetwork net() {\n    input x: [N, 3, 8, 8]\n    B(4)\n}\n", **{"lib.res": lib})
    [d] = json.loads(get(url + "view")[2])["diagnostics"]
    assert d["file"].endswith("lib.res") and d["text"] in check_error_text(tmp_path / "net.res")


def test_svg_shown_carries_no_script_even_with_markup_in_names(served):
    url, _ = served(EVIL)
    for depth in ("1", "all"):
        for style in ("block", "circuit"):
            svg = json.loads(get(url + f"view?depth={depth}&style={style}")[2])["svg"]
            root = ET.fromstring(svg)
            if style == "block":  # the name is there, as text (the circuit style draws op kinds only)
                assert "<script>window.pwned=1</script>" in "".join(root.itertext())
            for el in root.iter():
                assert not el.tag.endswith(("script", "foreignObject", "iframe", "img")), el.tag
                assert not any(a.lower().startswith("on") or "javascript:" in v for a, v in el.attrib.items())


def test_sanitizer_drops_script_handlers_and_outside_links():
    dirty = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
             b'xmlns:xlink="http://www.w3.org/1999/xlink" onload="alert(1)" width="10pt">'
             b'<script>alert(2)</script><g id="a" onclick="alert(3)"><text x="1" y="2">keep</text>'
             b'<a xlink:href="javascript:alert(4)"><path d="M0 0" fill="url(http://x/y)"/></a>'
             b'<a href="#a"><path d="M1 1" fill="url(#a)"/></a></g>'
             b'<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>'
             b'<style>@import url(http://x)</style><image href="http://x/y.png"/></svg>')
    out = clean_svg(dirty)
    for bad in ("script", "alert", "javascript", "foreignObject", "style", "image", "http://x"):
        assert bad not in out, bad
    root = ET.fromstring(out)
    assert "keep" in "".join(root.itertext()) and root.get("width") == "10pt"
    assert [p.get("fill") for p in root.iter("{http://www.w3.org/2000/svg}path")] == [None, "url(#a)"]
    with pytest.raises(ValueError):
        clean_svg(b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>')


# ---------------------------------------------------------------------------- save
@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("pdf", b"%PDF-"), ("png", b"\x89PNG"),
                                       ("tikz", b"\\begin{tikzpicture}")])
def test_save_writes_beside_the_file_never_over_it(served, tmp_path, fmt, magic):
    url, _ = served(TWO)
    source = (tmp_path / "net.res").read_bytes()
    status, data = post(url + "save", {"format": fmt, "network": "wide", "style": "block", "depth": "1"})
    assert status == 200, data
    out = Path(data["wrote"])
    ext = "tex" if fmt == "tikz" else fmt
    assert out == tmp_path / f"net.wide.preview.{ext}"
    assert magic in out.read_bytes()[:4000]
    assert (tmp_path / "net.res").read_bytes() == source
    if fmt in ("svg", "tikz"):  # the same bytes as `resdsl render`
        ref = tmp_path / f"ref.{ext}"
        subprocess.run([sys.executable, "-m", "resdsl", "render", str(tmp_path / "net.res"), "-n", "wide",
                        "-d", "1", "-o", str(ref)], check=True, env=ENV, capture_output=True, timeout=120)
        assert out.read_bytes() == ref.read_bytes()


def test_save_refuses_what_the_page_would_not_send(served, tmp_path):
    url, _ = served(TWO)
    port = url.rsplit(":", 1)[1].strip("/")
    assert post(url + "save", {"format": "res"})[0] == 400
    assert post(url + "save", {"format": "../../x"})[0] == 400
    assert post(url + "save", {"format": "svg", "depth": "9999"})[0] == 400
    assert post(url + "save", {"format": "svg", "network": "nope"})[0] == 400
    assert post(url + "save", b"[1]")[0] == 400
    assert post(url + "save", b'format=svg', ctype="application/x-www-form-urlencoded")[0] == 415
    assert post(url + "save", {"format": "svg"}, headers={"Origin": "http://evil.example"})[0] == 403
    assert post(url + "save", {"format": "svg"}, headers={"Origin": f"http://localhost:{port}"})[0] == 200
    assert post(url + "nope", {"format": "svg"})[0] == 404
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.preview.svg", "net.res"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["net.res", "net.small.preview.svg"]


def test_save_with_an_error_in_the_file_reports_it_and_writes_nothing(served, tmp_path):
    url, _ = served(BAD)
    status, data = post(url + "save", {"format": "svg"})
    assert status == 400 and "error[" in data["error"]
    assert [p.name for p in tmp_path.iterdir()] == ["net.res"]


def test_a_stdlib_name_is_previewed_and_saved_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preview = Preview("resnet18")
    server, threads = start(preview, 0)
    try:
        data = json.loads(get(server.url + "view")[2])
        assert data["network"] == "resnet18" and data["svg"].startswith("<svg")
        status, saved = post(server.url + "save", {"format": "svg"})
        assert status == 200 and saved["wrote"] == str(tmp_path / "resnet.resnet18.preview.svg")
    finally:
        stop(server, threads)


def test_other_methods_are_refused(served):
    url, _ = served(TWO)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        req = urllib.request.Request(url + "save", data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 405, method
    assert urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30).status == 200


# ---------------------------------------------------------------------------- watch
def test_events_announce_a_save_of_the_file_or_an_import(served, tmp_path):
    url, preview = served("import lib\nnetwork net() {\n    input x: [N, 3, 8, 8]\n    B(4)\n}\n",
                          **{"lib.res": "block B(c: int) {\n    conv(c, 3, padding=1)\n}\n"})
    get(url + "view")  # the first view reads the imports: they are watched from then on
    with urllib.request.urlopen(url + "events", timeout=10) as stream:
        def next_event():
            lines = []
            while True:
                line = stream.readline().decode()
                if line == "\n" and lines:
                    return lines
                if line.startswith("data:"):
                    lines.append(int(line[5:]))
        assert next_event() == [0]
        for name in ("lib.res", "net.res"):
            t0 = time.monotonic()
            p = tmp_path / name
            p.write_text(p.read_text() + "# edited\n")
            v = next_event()
            assert time.monotonic() - t0 < 1.0 and v == [preview.version]
    data = json.loads(get(url + "view")[2])
    assert data["version"] == 2 and data["diagnostics"] == []


# ---------------------------------------------------------------------------- the command
def start_command(path, *args):
    proc = subprocess.Popen([sys.executable, "-m", "resdsl", "preview", str(path), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stdout.readline()
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\n", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.strip()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_command_prints_its_url_and_stops_cleanly(tmp_path, sig):
    p = tmp_path / "net.res"
    p.write_text(TWO)
    proc, url = start_command(p)
    try:
        assert get(url + "view")[0] == 200
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130) and "Traceback" not in err, err


def test_command_refuses_a_missing_file_and_a_bad_port(tmp_path):
    r = subprocess.run([sys.executable, "-m", "resdsl", "preview", str(tmp_path / "none.res")],
                       check=False, capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 1 and "error[io]" in r.stderr and "none.res" in r.stderr
    (tmp_path / "n.res").write_text(TWO)
    r = subprocess.run([sys.executable, "-m", "resdsl", "preview", str(tmp_path / "n.res"), "--port", "70000"],
                       check=False, capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2 and "error[usage]" in r.stderr
    r = subprocess.run([sys.executable, "-m", "resdsl", "preview", str(tmp_path / "n.res"), "-n", "wdie"],
                       check=False, capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2 and "defines no network wdie" in r.stderr and "did you mean `wide`?" in r.stderr


# ---------------------------------------------------------------------------- a real browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SAVE_TO_SVG_BUDGET_S = 1.0  # issue 20's target for resnet50 at depth 1


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by playwright (`make setup-test` installs both); never
    `playwright install`."""
    from playwright.sync_api import sync_playwright  # `make setup-test` installs it
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: make setup-test installs it"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def command(tmp_path):
    procs = []

    def go(text, name="net.res"):
        p = tmp_path / name
        p.write_text(text)
        proc, url = start_command(p)
        procs.append(proc)
        return p, url

    yield go
    for proc in procs:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode in (0, 130) and "Traceback" not in err, err


def open_page(browser, url):
    page = browser.new_page()
    problems = []
    page.on("dialog", lambda d: (problems.append("dialog: " + d.message), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    page.wait_for_selector("#figure[data-ok=true] svg", timeout=60_000)
    return page, problems


def wait_new_figure(page, version, timeout_s=30.0):
    """Wait until the figure shows a version after `version`; returns the browser's clock (ms)
    when it changed, recorded by a MutationObserver on the figure."""
    page.wait_for_function(f"() => document.querySelector('#figure').dataset.version !== '{version}'",
                           timeout=timeout_s * 1000, polling="raf")
    return page.evaluate("() => window.__figureChangedAt")


OBSERVE = """() => {
  const fig = document.querySelector('#figure');
  window.__figureChangedAt = null;
  new MutationObserver(() => { if (window.__figureChangedAt === null) window.__figureChangedAt = Date.now(); })
    .observe(fig, {attributes: true, attributeFilter: ['data-version']});
}"""


def test_browser_redraws_on_save_shows_errors_and_saves(browser, command, tmp_path):
    path, url = command(NET)
    page, problems = open_page(browser, url)
    first = page.inner_html("#figure")
    assert "conv1" in page.inner_text("#summary") and page.inner_text("#diagnostics") == ""

    # a save: the new figure within the budget (resnet50 -> resnet101 at depth 1: layer3 x23)
    times = []
    for net in ("resnet101", "resnet50", "resnet101"):
        version = page.get_attribute("#figure", "data-version")
        page.evaluate(OBSERVE)
        t0 = time.time()
        path.write_text(f"import resnet\nnetwork net = {net}\n")
        changed = wait_new_figure(page, version)
        times.append(changed / 1000 - t0)
    assert page.inner_html("#figure") != first and "23" in page.inner_text("#figure")
    print(f"\nsave-to-new-SVG in the browser, resnet50/101 at depth 1: "
          f"{', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    assert sorted(times)[1] <= SAVE_TO_SVG_BUDGET_S, times

    # an error: located in the page as `resdsl check` prints it
    version = page.get_attribute("#figure", "data-version")
    path.write_text("import resnet\nnetwork net = resnet50(classes=nope)\n")
    wait_new_figure(page, version)
    page.wait_for_selector("#diagnostics .diagnostic", timeout=30_000)
    ref = check_error_text(path)
    where = re.search(r"--> (\S+:\d+:\d+)", ref).group(1)
    assert page.inner_text("#diagnostics .where") == where
    assert page.inner_text("#diagnostics .diagnostic pre") == ref
    assert "stale" in page.get_attribute("#figure", "class")

    # fixed again, then saved: the file beside the source, the page says where
    version = page.get_attribute("#figure", "data-version")
    path.write_text(NET)
    wait_new_figure(page, version)
    page.wait_for_selector("#figure[data-ok=true]")
    page.click("button[data-format=svg]")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('wrote ')", timeout=60_000)
    wrote = page.inner_text("#status")[len("wrote "):]
    assert wrote == str(tmp_path / "net.preview.svg") and Path(wrote).read_bytes().startswith(b"<?xml")
    assert path.read_text() == NET
    assert problems == []


def test_browser_shows_every_error_of_the_file(browser, command, tmp_path):
    """The page lists every error `resdsl check` prints for the file, the drawn network being fine."""
    path, url = command(MANY)
    page, problems = open_page(browser, url)
    page.wait_for_selector("#diagnostics .diagnostic", timeout=30_000)
    ref = _blocks(check_error_text(path))
    assert len(ref) == 2
    assert [t.rstrip() for t in page.eval_on_selector_all("#diagnostics .diagnostic pre",
                                                          "ps => ps.map(p => p.textContent)")] == ref
    assert page.eval_on_selector_all("#diagnostics .where", "ws => ws.map(w => w.textContent)") == [
        re.search(r"--> (\S+:\d+:\d+)", r).group(1) for r in ref]
    # one fixed and saved: one is left
    version = page.get_attribute("#figure", "data-version")
    path.write_text(MANY.replace("stride=0", "stride=1"))
    wait_new_figure(page, version)
    page.wait_for_function("() => document.querySelectorAll('#diagnostics .diagnostic').length === 1",
                           timeout=30_000)
    assert page.inner_text("#diagnostics .diagnostic pre").rstrip() == _blocks(check_error_text(path))[0]
    assert problems == []


def test_browser_keeps_markup_in_names_inert(browser, command):
    _, url = command(EVIL)
    page, problems = open_page(browser, url)
    page.select_option("#depth", "all")
    page.wait_for_function("() => document.querySelector('#figure').dataset.version === '0' && "
                           "document.querySelector('#depth').value === 'all' && "
                           "document.querySelector('#figure').textContent.includes('window.pwned=1')",
                           timeout=60_000)
    page.wait_for_timeout(300)  # a handler, had one got through, would have run by now
    assert page.evaluate("() => window.pwned") is None
    assert page.evaluate("() => document.querySelectorAll('#figure script, #figure foreignObject, img').length") == 0
    assert page.evaluate("""() => Array.from(document.querySelectorAll('#figure *')).every(
        el => Array.from(el.attributes).every(a => !a.name.toLowerCase().startsWith('on')))""")
    assert "<svg onload=window.pwned=3>" in page.inner_text("#figure") or \
        "<svg onload=window.pwned=3>" in page.text_content("#figure")
    assert problems == []


def test_browser_switches_network_style_and_depth(browser, command, tmp_path):
    path, url = command(TWO)
    page, problems = open_page(browser, url)
    assert page.eval_on_selector_all("#network option", "os => os.map(o => o.value)") == ["small", "wide"]
    assert page.input_value("#network") == "small"
    shown = {}
    for network, style, depth in (("small", "block", "1"), ("wide", "block", "1"), ("wide", "circuit", "1"),
                                  ("wide", "circuit", "all")):
        page.select_option("#network", network)
        page.select_option("#style", style)
        page.select_option("#depth", depth)
        page.wait_for_function(f"""() => {{ const f = document.querySelector('#figure');
            return f.dataset.style === '{style}' && f.dataset.depth === '{depth}' &&
                   document.querySelector('#summary').textContent.startsWith('{network}('); }}""", timeout=60_000)
        page.wait_for_timeout(100)
        svg = page.inner_html("#figure")
        ref = clean_svg(api.render(path, network, style=style, depth=depth if depth == "all" else int(depth)).data)
        # the page holds the cleaned SVG the renderer made (compared as text: the DOM rewrites the markup)
        assert page.text_content("#figure") == "".join(ET.fromstring(ref).itertext())
        shown[svg] = ref
    assert len(shown) == len(set(shown.values())) >= 3 and problems == []  # (a flat network: depth 1 is all)
