"""The networks of stdlib/ by name: `resdsl list`, `list_models`, and FILE arguments
that name a network (`resdsl summary resnet50`).

Names come from a scan of `network NAME` lines (no parsing: this runs on every command);
papers from each file's header comment. Parameter counts need elaboration and are
computed only when asked (`resdsl list`), then cached per stdlib content.
"""
from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from pathlib import Path

from .diagnostics import ResdslError, did_you_mean

_NETWORK = re.compile(r"^network\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)
_TITLE = re.compile(r"[\"\u201c]([^\"\u201d]{8,})[\"\u201d]")


def stdlib_dir() -> Path:
    from .elaborate.loader import STDLIB
    return STDLIB


@lru_cache(maxsize=None)
def index() -> dict:
    """network name -> (stdlib file, header text); the first file that defines a name wins."""
    out = {}
    for f in sorted(stdlib_dir().glob("*.res")):
        text = f.read_text(encoding="utf-8")
        for name in _NETWORK.findall(text):
            out.setdefault(name, (f, text))
    return out


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted stdlib network names matching `pattern` (shell wildcards, as
    `timm.list_models`; a pattern without wildcards matches as a substring)."""
    names = sorted(index())
    if not pattern:
        return names
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]


def lookup(name: str):
    """(stdlib file, network) for a network name or a stdlib file name (`cifar.res`,
    `cifar`: network None); None when it names neither."""
    hit = index().get(name)
    if hit is not None:
        return hit[0], name
    stem = name[:-4] if name.endswith(".res") else name
    if re.fullmatch(r"[A-Za-z0-9_]+", stem) and (stdlib_dir() / f"{stem}.res").is_file():
        return stdlib_dir() / f"{stem}.res", None
    return None


def not_found(spec: str) -> ResdslError:
    hint = did_you_mean(spec, index())
    return ResdslError("usage", f"`{spec}` is neither a file, a stdlib network nor .res source",
                       help=(hint + " " if hint else "") + "`resdsl list` shows the stdlib networks")


def paper(name: str) -> str:
    """The paper a network comes from, as its file's header names it ('' when unknown)."""
    f, text = index()[name]
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    family = re.sub(r"\d.*$", "", name.lower()).rstrip("_")
    best = ""
    for i, line in enumerate(header):  # the line that names this network (or its family)
        low = line.lower()
        if name.lower() in low or (family and re.search(rf"\b{re.escape(family)}", low)):
            joined = " ".join(header[i:i + 3])
            m = _TITLE.search(joined)
            if m:
                best = m.group(1)
                break
    if not best:
        m = _TITLE.search(" ".join(header))
        best = m.group(1) if m else ""
    return best.rstrip(",. ")


def describe(names, progress=None) -> list[dict]:
    """Rows for `resdsl list`: name, parameter count (None when the network needs
    arguments), paper, file. Counts are cached per stdlib content in the user cache."""
    import hashlib
    import json
    digest = hashlib.sha256()
    for f in sorted(stdlib_dir().glob("*.res")):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    from ._version import __version__
    cache = _cache_dir() / f"params-{__version__}-{digest.hexdigest()[:16]}.json"
    try:
        counts = json.loads(cache.read_text())
    except (OSError, ValueError):
        counts = {}
    rows, dirty = [], False
    for i, name in enumerate(names):
        f, _ = index()[name]
        if name not in counts:
            if progress:
                progress(i, len(names), name)
            counts[name] = _count(f, name)
            dirty = True
        rows.append({"name": name, "params": counts[name], "paper": paper(name), "file": f"stdlib/{f.name}"})
    if dirty:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(counts, sort_keys=True))
            tmp.replace(cache)
        except OSError:
            pass  # a read-only home: counted again next time
    return rows


def _count(f: Path, name: str):
    from .elaborate import Program, elaborate
    try:
        return elaborate(Program.from_file(f), name).num_params()
    except ResdslError:
        return None  # a generic network (ResNet(block, layers)) has no count of its own


def _cache_dir() -> Path:
    import os
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "resdsl"
