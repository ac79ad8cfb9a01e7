"""Make pyproject's `pygments.lexers` entry point visible to a subprocess (pygmentize,
minted) without installing the package: a minimal .dist-info on PYTHONPATH holds the
entry point exactly as pyproject.toml declares it."""
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def declared_entry_points() -> dict:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^\[project\.entry-points\."pygments\.lexers"\]\n((?:[^\[\n].*\n?)*)', text, re.M)
    assert m, "pyproject.toml declares no pygments.lexers entry point"
    return dict(re.findall(r'^(\w+)\s*=\s*"([^"]+)"', m.group(1), re.M))


def env_with_lexer(tmp_path: Path) -> dict:
    dist = tmp_path / "ep" / "resdsl_lexer_test-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: resdsl-lexer-test\nVersion: 0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in declared_entry_points().items())
    (dist / "entry_points.txt").write_text(f"[pygments.lexers]\n{lines}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "ep"), str(ROOT)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env
