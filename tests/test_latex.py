"""A real TeX compiles the paper snippet of docs/render.md: TikZ figures from `resdsl render`
(three networks) and a minted listing of a .res file through the `res` Pygments lexer.

TeX comes from Debian's texlive-latex-base, texlive-pictures and texlive-latex-extra,
which `make setup` installs when pdflatex or minted.sty is missing."""
import re
import shutil
import subprocess
import sys

import pytest

from _pygments_ep import env_with_lexer

from conftest import ROOT

PACKAGES = "texlive-latex-base texlive-pictures texlive-latex-extra"


def _tex():
    pdflatex, kpsewhich = shutil.which("pdflatex"), shutil.which("kpsewhich")
    if not pdflatex or not kpsewhich:
        pytest.fail(f"no pdflatex: `make setup` installs it (apt-get install --no-install-recommends {PACKAGES})")
    for sty in ("tikz.sty", "minted.sty", "standalone.sty"):
        if subprocess.run([kpsewhich, sty], capture_output=True).returncode != 0:
            pytest.fail(f"TeX has no {sty}: `make setup` installs {PACKAGES}")
    return pdflatex


def _doc_snippet() -> tuple[str, list[str]]:
    text = (ROOT / "docs" / "render.md").read_text()
    sec = text[text.index("### In a LaTeX paper"):]
    cmds = re.search(r"```\n(.*?)```", sec, re.S).group(1)
    latex = re.search(r"```latex\n(.*?)```", sec, re.S).group(1)
    return latex, [c for c in cmds.splitlines() if c.startswith("resdsl render")]


def test_paper_with_tikz_figures_and_minted_listing_compiles(tmp_path):
    pdflatex = _tex()
    latex, renders = _doc_snippet()
    assert len(renders) >= 3
    for cmd in renders:
        args = cmd.split()[2:]
        args[0] = str(ROOT / args[0])
        p = subprocess.run([sys.executable, "-m", "resdsl.cli", "render", *args], cwd=tmp_path,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    shutil.copy(ROOT / "examples" / "transformer.res", tmp_path / "transformer.res")
    (tmp_path / "paper.tex").write_text(latex)
    p = subprocess.run([pdflatex, "-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                       cwd=tmp_path, capture_output=True, text=True, env=env_with_lexer(tmp_path), timeout=300)
    assert p.returncode == 0, p.stdout[-3000:]
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert "Float too large" not in log and "Overfull \\hbox" not in log

    # the listing went through our lexer: keywords classed, no error tokens
    pyg = "".join(f.read_text() for f in tmp_path.glob("_minted-paper/*.pygtex"))
    assert r"\PYG{k}{residual}" in pyg and r"\PYG{c+c1}{" in pyg and r"\PYG{err}" not in pyg

    from pypdf import PdfReader
    pages = [pg.extract_text() for pg in PdfReader(str(tmp_path / "paper.pdf")).pages]
    text = "\n".join(pages)
    for label in ("Bottleneck(planes=64)", "EncoderLayer(d=64, heads=4, hidden=128)", "Pre-norm transformer"):
        assert label in text, f"{label!r} not in the PDF"
    assert "U-Net." in text and "ResNet-50 as written" in text
