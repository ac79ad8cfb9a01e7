"""What the preview page shows, computed from the file on disk: the networks, the figure
(sanitized SVG), the summary table and the diagnostics; and the watch on the file and its
imports that tells the page to fetch them again.

Everything goes through resdsl.api (the page is a front end, as the CLI is)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .. import api
from ..diagnostics import ResdslError
from .sanitize import UnsafeSvg, clean_svg

STYLES = ("block", "circuit")
SAVE_FORMATS = {"svg": "svg", "pdf": "pdf", "png": "png", "tikz": "tex"}  # button -> render format (= extension)
MAX_DEPTH = 64


def diagnostic(e: ResdslError) -> dict:
    """One error as the page shows it: where (file:line:col), kind, message, help, and the
    text `resdsl check` prints for it."""
    span = e.span
    return {"kind": e.kind, "message": e.message, "help": e.help or "",
            "file": span.source.path if span else "", "line": span.line if span else 0,
            "column": span.column if span else 0, "where": span.where if span else "",
            "text": e.render()}


def parse_depth(value) -> int | None:
    """A depth from the page: "all" (None) or 0..MAX_DEPTH; anything else is a usage error."""
    if value in ("all", None):
        return None
    try:
        d = int(value)
    except (TypeError, ValueError):
        raise ResdslError("usage", f"depth {value!r} is not a depth", help="use 0, 1, 2, ... or all") from None
    if not 0 <= d <= MAX_DEPTH:
        raise ResdslError("usage", f"depth {d} is out of range", help=f"use 0 to {MAX_DEPTH}, or all")
    return d


class Preview:
    """The previewed file and what was last computed from it.

    `version` grows by one each time a watched file changes (its mtime, size or inode);
    `wait_change(seen, timeout)` blocks a page's event stream until it does."""

    def __init__(self, spec: str, network: str | None = None, poll: float = 0.1):
        path, _text, named = api.resolve(spec)
        if path is None:
            raise ResdslError("usage", "preview needs a file: it watches the file and redraws on each save",
                              help="save the text to a .res file and give its path")
        self.path = Path(os.path.abspath(path))
        self.stdlib = named is not None  # `resdsl preview resnet50`: saves go to the current folder
        if network is not None and named is not None and network != named:
            raise ResdslError("usage", f"`{spec}` names network {named}, but --network asks for {network}")
        self.network = network or named
        if not self.path.is_file():
            raise ResdslError("io", f"cannot read {path}: no such file",
                              help="give the path of an existing .res file")
        self.out_dir = Path.cwd() if self.stdlib else self.path.parent
        if self.network and not self.stdlib:  # a typo in --network is told now, not drawn as another network
            try:
                names = list(api.load(self.path).networks)
            except ResdslError:
                names = None  # the page shows that error
            if names is not None and self.network not in names:
                from ..diagnostics import did_you_mean
                guess = did_you_mean(self.network, names)
                raise ResdslError("usage", f"{path} defines no network {self.network}",
                                  help=(f"{guess} " if guess else "") + "networks: " + ", ".join(names))
        self.poll = poll
        self.version = 0
        self.changed_at = time.monotonic()
        self._watched = [str(self.path)]
        self._stamps = self._stamp_all()
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # one elaboration at a time
        self._cache: dict = {}
        self._networks: list[str] = []
        self._analyzer = None  # the language server's analysis: every error of the file, graphs kept
        self._stop = threading.Event()

    # ---------------------------------------------------------------- watching
    def _stamp_all(self) -> dict:
        out = {}
        for f in self._watched:
            try:
                st = os.stat(f)
                out[f] = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                out[f] = None
        return out

    def check_files(self) -> bool:
        """Stat every watched file; a difference bumps the version and wakes the pages."""
        stamps = self._stamp_all()
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        with self._cond:
            self.version += 1
            self.changed_at = time.monotonic()
            self._cond.notify_all()
        return True

    def watch(self) -> None:
        """Poll the watched files' stamps until stop() (a thread's loop: a few stats a poll)."""
        while not self._stop.wait(self.poll):
            self.check_files()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_change(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen or self._stop.is_set(), timeout)
            return self.version

    def _set_watched(self, files) -> None:
        files = sorted({str(self.path), *(os.path.abspath(f) for f in files)})
        if files != sorted(self._watched):  # a file watched before keeps its stamp: its change is not lost
            old = self._stamps
            self._watched = files
            self._stamps = {f: old[f] if f in old else stamp for f, stamp in self._stamp_all().items()}

    # ---------------------------------------------------------------- what the page shows
    def _program(self):
        program = api.load(self.path)
        self._networks = list(program.networks)
        return program

    def _pick_network(self, program, asked: str | None, strict: bool) -> str | None:
        """The network `asked` for; one the file no longer defines (renamed since the page
        listed it) is an error for a save, and the default for a view."""
        names = list(program.networks)
        if asked and (strict or asked in names):
            if asked not in names:
                raise ResdslError("usage", f"the file defines no network {asked}",
                                  help="networks: " + (", ".join(names) or "none"))
            return asked
        if self.network and (strict or self.network in names):
            return self.network
        for name in names:  # the first that needs no parameter (a generic one is not drawn alone)
            params = getattr(getattr(program.networks[name], "defn", None), "params", ())
            if all(p.default is not None for p in params):
                return name
        return names[0] if names else None

    def _analysis(self):
        """The file analysed as the language server does: every error `resdsl check FILE` reports, and
        the graph of each network that elaborates (a network whose definitions are unchanged since the
        last save is not elaborated again)."""
        from ..elaborate.loader import read_source
        from ..lsp.analysis import Analyzer
        if self._analyzer is None:
            self._analyzer = Analyzer()
        try:
            text = read_source(self.path)
        except OSError as e:
            raise ResdslError("io", f"cannot read {self.path}: {e.strerror}") from None
        return self._analyzer.analyze(text, str(self.path))

    def _graph(self, network, strict=False):
        """(graph, network, inputs) for `network` (None: the default), imports watched."""
        program = self._program()
        self._set_watched(api.sources(program))
        name = self._pick_network(program, network, strict)
        g, program = api.load_graph(self.path, name)
        inputs = api.sources(program)
        self._set_watched(inputs)
        return g, name or g.name, inputs

    def view(self, network=None, style="block", depth=1) -> dict:
        """The page's data: {version, networks, network, svg, summary, diagnostics, warnings, ms}."""
        if style not in STYLES:
            raise ResdslError("usage", f"unknown style {style!r}", help="use block or circuit")
        key = (self.version, network, style, depth)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            t0 = time.perf_counter()
            version = self.version
            out = {"version": version, "file": str(self.path), "networks": self._networks, "network": network,
                   "svg": "", "summary": "", "diagnostics": [], "warnings": "", "style": style,
                   "depth": "all" if depth is None else depth}
            diagnostics = out["diagnostics"]
            try:
                a = self._analysis()
                diagnostics.extend(diagnostic(e) for e in a.errors)  # all of them, not the drawn network's only
                g = name = None
                if a.program is not None:
                    self._networks = list(a.program.networks)
                    self._set_watched(api.sources(a.program))
                    name = self._pick_network(a.program, network, False)
                    g = a.graphs.get(name) if name else None
                if g is None:  # not elaborated there (generic, or failing): its error, as `check` gives it
                    g, name, _ = self._graph(network)
                out["network"], out["networks"] = name, self._networks
                data, info = _draw(g, style, "svg", depth)
                out["svg"] = clean_svg(data)
                out["warnings"] = info.get("warnings") or ""
                from ..backends.summary import format_summary
                out["summary"] = format_summary(g, depth, "text")
            except ResdslError as e:
                out["networks"] = self._networks
                d = diagnostic(e)
                if all(d["text"] != x["text"] for x in diagnostics):
                    diagnostics.insert(0, d)
            except UnsafeSvg as e:
                out["diagnostics"] = [{"kind": "render", "message": str(e), "help": "", "file": "", "line": 0,
                                       "column": 0, "where": "", "text": f"error[render]: {e}"}]
            except RecursionError:
                out["diagnostics"] = [{"kind": "limit", "message": "the description nests too deeply to elaborate",
                                       "help": "", "file": "", "line": 0, "column": 0, "where": "",
                                       "text": "error[limit]: the description nests too deeply to elaborate"}]
            out["ms"] = round((time.perf_counter() - t0) * 1000, 1)
            self._cache = {key: out}  # the latest only: a page asks again after each change
            return out

    def output_name(self, network: str, fmt: str) -> Path:
        """Where a saved figure goes: beside the file (the current folder for a stdlib name),
        `<stem>.preview.<ext>`, with the network in the name when it is not the file's stem."""
        ext = SAVE_FORMATS[fmt]
        stem = self.path.stem
        middle = "" if network in (stem, None) else f".{network}"
        return self.out_dir / f"{stem}{middle}.preview.{ext}"

    def save(self, fmt: str, network=None, style="block", depth=1) -> dict:
        """Render `fmt` (svg, pdf, png, tikz) and write it beside the file, never over an input."""
        if fmt not in SAVE_FORMATS:
            raise ResdslError("usage", f"cannot save as {fmt!r}", help="use svg, pdf, png or tikz")
        if style not in STYLES:
            raise ResdslError("usage", f"unknown style {style!r}", help="use block or circuit")
        from ..outputs import write_output
        with self._lock:
            g, name, inputs = self._graph(network, strict=True)
            data, _ = _draw(g, style, SAVE_FORMATS[fmt], depth)
            target = self.output_name(name, fmt)
            write_output(str(target), data, inputs)
        return {"wrote": str(target), "bytes": len(data)}


def _draw(g, style, fmt, depth):
    if style == "circuit":
        from ..backends.diagram.circuit import render
    else:
        from ..backends.diagram.block import render
    return render(g, fmt, depth=depth)
