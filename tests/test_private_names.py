"""Layering rule (docs: DESIGN, issue 17): a `_private` name of a resdsl module is used only in
that module. Another module that needs it is a sign the name is public: rename it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "resdsl"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: Path, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    pkg = _module(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    base = pkg[: len(pkg) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def crossings():
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    out = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}  # local name -> resdsl module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(path, node.level, node.module)
                if not target.startswith("resdsl"):
                    continue
                for a in node.names:
                    if f"{target}.{a.name}" in modules:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
                    elif a.name.startswith("_") and not a.name.startswith("__") and modules.get(target) != path:
                        out.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {a.name} from {target}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and modules[aliases[node.value.id]] != path):
                out.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return out


def test_no_private_name_crosses_a_module():
    assert crossings() == []


def test_the_rule_sees_a_crossing(tmp_path, monkeypatch):
    # the check itself: a module importing another's private name is reported
    pkg = tmp_path / "resdsl"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("_hidden = 1\n")
    (pkg / "sub" / "b.py").write_text("from .a import _hidden\nfrom . import a as A\nx = A._hidden\n")
    monkeypatch.setattr(__import__(__name__), "PKG", pkg)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found = crossings()
    assert any("imports _hidden" in f for f in found) and any("uses A._hidden" in f for f in found), found
