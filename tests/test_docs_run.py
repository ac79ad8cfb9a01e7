""".ci/docs_run.py, the test that runs every shell command and Python block of the docs from an
empty folder (in CI against the installed wheel, .ci/wheel_test.sh): how it reads the blocks and
their markers, and that it runs them in order and stops a doc at its first failure. Every doc of
the repository must parse: a malformed marker fails here, before the slow run."""
from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_run", ROOT / ".ci" / "docs_run.py")
docs_run = importlib.util.module_from_spec(_spec)
sys.modules["docs_run"] = docs_run  # (its dataclass looks its module up)
_spec.loader.exec_module(docs_run)

DOC = """# A doc

```
echo one > one.txt
```

```text
$ not run: output
```

```python
x = open("one.txt").read().strip()
```

<!-- not run: needs a GPU -->
```python
raise SystemExit("must not run")
```

Save this as `net.res`:

<!-- file: sub/net.res -->
```res
network n() { input x: [N, 4]
relu }
```

```res
this is shown, never run or written
```

````
echo "$(cat one.txt) two" > two.txt   # a four-backtick fence holding ``` is one block
printf '```\\n' >> two.txt
````

```python
assert x == "one" and open("sub/net.res").read().startswith("network n()")
print(open("two.txt").read())
```
"""


def _actions(text, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    return [(b.lang, b.action, b.arg) for b in docs_run.parse(doc)]


def test_blocks_and_markers(tmp_path):
    assert _actions(DOC, tmp_path) == [
        ("", "sh", ""), ("text", "show", ""), ("python", "python", ""), ("python", "skip", "needs a GPU"),
        ("res", "file", "sub/net.res"), ("res", "show", ""), ("", "sh", ""), ("python", "python", "")]


@pytest.mark.parametrize("text,why", [
    ("<!-- not run: -->\n```\nls\n```\n", "needs the reason"),
    ("<!-- not run: shown anyway -->\n```text\nls\n```\n", "not run anyway"),
    ("<!-- skip -->\n```\nls\n```\n", "write the marker as"),
    ("<!-- file: ../up.res -->\n```res\nx\n```\n", "relative file name"),
    ("<!-- file: /etc/x -->\n```res\nx\n```\n", "relative file name"),
    ("```\n$ resdsl check resnet5O\nerror[usage]: ...\n```\n", "drop the `$ ` prompt"),
    ("```\nls\n", "never closed"),
])
def test_malformed_docs_are_refused(tmp_path, text, why):
    with pytest.raises(docs_run.DocError, match=why.replace("$", r"\$").replace("(", r"\(")):
        _actions(text, tmp_path)


def test_every_doc_of_the_repository_parses_and_runs_something():
    docs = docs_run.default_docs()
    assert ROOT / "README.md" in docs and ROOT / "docs" / "cli.md" in docs and len(docs) >= 10
    blocks = [b for d in docs for b in docs_run.parse(d)]
    ran = [b for b in blocks if b.action in ("sh", "python")]
    assert len(ran) >= 30 and {b.doc.name for b in ran} >= {"README.md", "cli.md", "api.md", "onnx.md"}
    for b in blocks:
        if b.action == "skip":
            assert len(b.arg) > 10, f"{b.where}: say why the block cannot run"


def test_blocks_run_in_order_in_one_folder_and_python_keeps_its_names(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    out = io.StringIO()
    assert docs_run.run_docs([doc], tmp_path / "work", timeout=120, out=out) == 0, out.getvalue()
    folder = tmp_path / "work" / "doc.md"
    assert (folder / "two.txt").read_text() == "one two\n```\n"
    assert (folder / "examples" / "cifar_resnet.res").is_file()  # the docs' examples/ paths
    assert "must not run" not in out.getvalue() and "skip" in out.getvalue() and "0 failed" in out.getvalue()
    logs = sorted((tmp_path / "work" / "logs").glob("*.log"))
    assert any("one two" in p.read_text() for p in logs)  # a block's output goes to its log


def test_a_failing_block_fails_the_run_and_stops_its_doc(tmp_path):
    doc = tmp_path / "bad.md"
    doc.write_text("```\nresdsl check no_such_network_xyz\n```\n\n```\ntouch after.txt\n```\n")
    good = tmp_path / "good.md"
    good.write_text("```python\nimport resdsl\nprint(resdsl.list_models('resnet5*'))\n```\n")
    out = io.StringIO()
    assert docs_run.run_docs([doc, good], tmp_path / "work", timeout=120, out=out) == 1
    text = out.getvalue()
    assert "FAIL " in text and "bad.md:1" in text and "no_such_network_xyz" in text and "neither a file" in text
    assert not (tmp_path / "work" / "bad.md" / "after.txt").exists()  # the doc stopped there
    assert "good.md:1 (python" in text  # the other docs go on
    assert "1 failed" in text
