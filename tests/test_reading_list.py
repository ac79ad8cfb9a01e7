"""docs/architectures.md's reading-list table: every `.res` file and every network or block it
names exists, rows are numbered in order, and each row says what it is."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architectures.md"
STDLIB = ROOT / "stdlib"
CHECKS = {"parity", "count", "equations", "**not yet written**", "no architecture"}


def _rows():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## The reading list\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not re.match(r"^\| \d+ \|", line):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 6, line
        rows.append(cells)
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_rows_are_numbered_in_order_and_titles_are_unique():
    rows = _rows()
    assert len(rows) >= 100
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    titles = [r[1] for r in rows]
    assert len(set(titles)) == len(titles)


def test_every_row_says_how_it_is_checked_or_why_not():
    for n, title, check, files, names, note in _rows():
        assert check in CHECKS, (n, check)
        if check in {"parity", "count", "equations"}:
            assert files and names, f"row {n} ({title}) is checked but names no file"
        else:
            assert note, f"row {n} ({title}) needs a one-line note"
            assert not files, f"row {n} names a file but says {check}"


def test_named_files_and_networks_exist():
    defined = re.compile(r"^(?:network|block|fn)\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)
    for n, title, check, files, names, note in _rows():
        texts = []
        for f in _ticked(files):
            path = STDLIB / f
            assert path.is_file(), f"row {n}: stdlib/{f} does not exist"
            texts.append(path.read_text(encoding="utf-8"))
        known = {m for t in texts for m in defined.findall(t)}
        for name in _ticked(names):
            assert name in known, f"row {n} ({title}): {name} is not defined in {files}"
