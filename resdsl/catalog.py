"""The networks of stdlib/ by name: `resdsl list`, `list_models`, and FILE arguments
that name a network (`resdsl summary resnet50`).

Names come from a scan of `network NAME` lines (no parsing: this runs on every command);
papers from each file's `# paper NAMES: "Title", YEAR, arXiv:ID` lines. Parameter counts need elaboration and are
computed only when asked (`resdsl list`), then cached per stdlib content.
"""
from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from pathlib import Path

from .diagnostics import ResdslError, did_you_mean

_NETWORK = re.compile(r"^network\s+([A-Za-z_][A-Za-z0-9_]*)\s*(\(|=|\{)?", re.M)
# `# paper NAME NAME...: "Title", YEAR, arXiv:ID` lines of a stdlib file (YEAR: the preprint's)
_PAPER = re.compile(r'^#\s*paper\s+([A-Za-z0-9_ ,]+):\s*"([^"]+)",\s*(\d{4})(?:,\s*arXiv:(\d{4}\.\d{4,5}))?\s*$',
                    re.M)  # a paper never posted to arXiv (GPT-2's) has no ID: "arxiv" is None


def stdlib_dir() -> Path:
    from .elaborate.loader import STDLIB
    return STDLIB


@lru_cache(maxsize=None)
def index() -> dict:
    """network name -> (stdlib file, file text); the first file that defines a name wins."""
    out = {}
    for f in sorted(stdlib_dir().glob("*.res")):
        text = f.read_text(encoding="utf-8")
        for m in _NETWORK.finditer(text):
            out.setdefault(m.group(1), (f, text))
    return out


@lru_cache(maxsize=None)
def generic() -> frozenset:
    """The networks that need arguments (`network ResNet(block: Block, layers: list[int], ...)`):
    `create_model` cannot build them by name alone. Read from the text, without parsing."""
    out = set()
    for name, (_, text) in index().items():
        m = re.search(rf"^network\s+{name}\s*\(", text, re.M)
        if m and any("=" not in p for p in _top_level_params(text, m.end())):
            out.add(name)
    return frozenset(out)


def _top_level_params(text: str, i: int) -> list[str]:
    """The comma-separated parameters from just after `(` to its matching `)`."""
    depth, cur, out = 0, [], []
    for ch in text[i:]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [p.strip() for p in out if p.strip()]


def _patterns(pattern) -> list[str]:
    if not pattern:
        return []
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    if not all(isinstance(p, str) for p in pats):
        raise ResdslError("usage", f"a name pattern must be a string or a list of strings, got {pattern!r}")
    # a pattern without wildcards matches as a substring
    return [p.lower() if any(c in p for c in "*?[") else f"*{p.lower()}*" for p in pats if p]


def _match(names, include, exclude) -> list[str]:
    out = [n for n in names if not include or any(fnmatch.fnmatchcase(n.lower(), p) for p in include)]
    return [n for n in out if not any(fnmatch.fnmatchcase(n.lower(), p) for p in exclude)]


def list_models(pattern="", pretrained: bool = False, exclude=None, include_tags: bool | None = None,
                generic: bool = False) -> list[str]:
    """Sorted stdlib network names, as `timm.list_models`.

    `pattern`: a shell wildcard (`resnet*`) or a list of them (a name matching any is listed);
    a pattern without wildcards matches as a substring. `exclude`: the same, for names to
    leave out. `pretrained=True`: only networks with published weights (`resdsl weights`),
    as `name.tag` (every tag) unless `include_tags=False`. `generic=True`: the networks that
    need arguments (`ResNet`, `ResNetT`), which the default list leaves out."""
    include, excl = _patterns(pattern), _patterns(exclude)
    gen = globals()["generic"]()
    if generic:
        return _match(sorted(gen), include, excl)
    names = [n for n in sorted(index()) if n not in gen]
    if not pretrained:
        return _match(names, include, excl)
    from .pretrained import registry_data
    nets = registry_data()["networks"]
    names = [n for n in names if n in nets]
    if include_tags is False:
        return _match(names, include, excl)
    full = [f"{n}.{e['tag']}" for n in names for e in nets[n]["tags"]]
    # a pattern matches a `name.tag` or its name (as timm: `resnet50` lists every resnet50 tag)
    def ok(item, pats):
        base = item.split(".", 1)[0].lower()
        return any(fnmatch.fnmatchcase(item.lower(), p) or fnmatch.fnmatchcase(base, p) for p in pats)
    return [x for x in full if (not include or ok(x, include)) and not ok(x, excl)]


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


def paper(name: str) -> dict | None:
    """The paper a network comes from, from its file's `# paper NAMES: "Title", YEAR, arXiv:ID`
    lines: {"title", "year", "arxiv"}, or None when the file names none."""
    _, text = index()[name]
    for m in _PAPER.finditer(text):
        if name in m.group(1).replace(",", " ").split():
            return {"title": m.group(2), "year": int(m.group(3)), "arxiv": m.group(4)}
    return None


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
        p = paper(name) or {"title": "", "year": None, "arxiv": None}
        rows.append({"name": name, "params": counts[name], "paper": p["title"], "year": p["year"],
                     "arxiv": p["arxiv"], "file": f"stdlib/{f.name}"})
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
