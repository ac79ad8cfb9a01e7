#!/usr/bin/env python3
"""Make docs/img/preview.png: a screenshot of `resdsl preview` on a small network with an
error in it, then fixed, in Debian's chromium driven by playwright (as tests/test_preview.py).

    python docs/screenshot_preview.py [--out docs/img/preview.png] [--chromium /usr/bin/chromium]

Needs `pip install playwright` and chromium (`make setup-test` installs both); it never runs
`playwright install`. The page is the real one: the command is started on a temporary copy
of the network below, the figure is waited for, the shot taken, the command stopped."""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
NET = """\
import resnet

# a ResNet-18 for 10 classes
network cifar_resnet18 = ResNet(BasicBlock, [2, 2, 2, 2], classes=10)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "preview.png"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "net.res"
        src.write_text(NET)
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen([sys.executable, "-m", "resdsl", "preview", str(src), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp)
        try:
            url = proc.stdout.readline().strip()
            if not re.fullmatch(r"http://127\.0\.0\.1:\d+/", url):
                raise SystemExit(f"resdsl preview did not start (printed {url!r})")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
                page.goto(url)
                page.wait_for_selector("#figure[data-ok=true] svg", timeout=60_000)
                page.select_option("#depth", "2")
                page.wait_for_function("() => document.querySelector('#figure').dataset.depth === '2'",
                                       timeout=60_000)
                # an edit with a mistake: the page keeps the last figure, dimmed, under the error
                src.write_text(NET.replace("classes=10", "classes=10, widht=2"))
                page.wait_for_selector("#diagnostics .diagnostic", timeout=60_000)
                page.screenshot(path=args.out, full_page=False)
                browser.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
