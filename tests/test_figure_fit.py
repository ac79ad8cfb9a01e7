"""Figures that fit the page they are for: `--width VENUE` (column or text width, from the venue's style
file) and the height (`--height`, by default the venue's text height). A TikZ figure is set by pdflatex
in a page of the venue's exact geometry and must not overflow (`Overfull \\hbox`, `Overfull \\vbox`)."""
import re
import shutil
import subprocess
from xml.etree import ElementTree

import pytest

import resdsl
from resdsl.backends.diagram import block, circuit
from resdsl.backends.diagram.page import VENUES, parse_page
from resdsl.diagnostics import ResdslError
from resdsl.cli import main

# the geometry each venue's style sets (TeX points), written independently of page.py: the
# test's page is built from these numbers, the renderer's fit from its own table
GEOMETRY = {  # venue: (\textwidth, \columnsep, columns, \textheight) as the style files state them
    "ieee": ("43pc", "1pc", 2, "9.25in"),
    "acm": ("506.295pt", "2pc", 2, "9in"),
    "cvpr": ("6.875in", "0.3125in", 2, "8.875in"),
    "iccv": ("6.875in", "0.3125in", 2, "8.875in"),
    "neurips": ("5.5in", "0pt", 1, "9in"),
    "icml": ("6.75in", "0.25in", 2, "9in"),
    "iclr": ("5.5in", "0pt", 1, "9in"),
    "lncs": ("12.2cm", "0pt", 1, "19.3cm"),
}


def test_every_venue_has_column_text_and_height():
    assert set(GEOMETRY) == set(VENUES)
    for name in VENUES:
        col, text = parse_page(name), parse_page(f"{name}-text")
        assert parse_page(f"{name}-column") == col
        assert col.width <= text.width and col.height == text.height > 0
    assert parse_page("cvpr").width < 237 and parse_page("acm").width < 241.2 < parse_page("single").width == 252
    assert parse_page("double").width == 504 and parse_page(340).width == 340 and parse_page("340pt").width == 340
    assert parse_page(None).height is None and parse_page("single").height is None
    assert parse_page("cvpr", 300).height == 300 and parse_page(None, "lncs").height < 548


@pytest.mark.parametrize("bad", ["cvpr-wide", "foo", "-3", "0", "inf", "nan"])
def test_bad_widths_say_what_is_accepted(bad):
    with pytest.raises(ResdslError) as e:
        parse_page(bad)
    assert "venue" in e.value.render() or "positive" in e.value.render()


def _compile(tmp_path, venue, figures):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.fail("no pdflatex: `make setup` installs texlive-latex-base and texlive-pictures")
    tw, sep, cols, th = GEOMETRY[venue]
    body = "\n".join(f"\\begin{{figure}}[p]\\centering\\input{{{f}}}\\end{{figure}}" for f in figures)
    (tmp_path / "paper.tex").write_text(
        f"\\documentclass[10pt,{'twocolumn' if cols == 2 else 'onecolumn'}]{{article}}\n"
        f"\\usepackage[letterpaper,textwidth={tw},columnsep={sep},textheight={th}]{{geometry}}\n"
        "\\usepackage{tikz}\\usepackage{standalone}\n\\begin{document}\n" + body + "\n\\end{document}\n")
    p = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert p.returncode == 0, log[-3000:]
    return log


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_tikz_figures_fit_the_venue_column_without_overfull_boxes(tmp_path, venue):
    figs = []
    for k, (mod, net, depth) in enumerate([(block, "resnet50", "auto"), (circuit, "vit_b_16", "auto")]):
        g = resdsl.graph(net)
        tex, info = mod.render(g, "tex", depth=depth, width=venue)
        (tmp_path / f"f{k}.tex").write_bytes(tex)
        figs.append(f"f{k}.tex")
    log = _compile(tmp_path, venue, figs)
    assert not re.search(r"Overfull \\[hv]box", log), re.findall(r"Overfull.*", log)


def test_single_is_ieee_and_overflows_a_cvpr_column(tmp_path):
    # why venues exist: a figure 252 pt wide is too wide for CVPR's 237 pt column
    g = resdsl.graph("vit_b_16")
    tex, info = circuit.render(g, "tex", depth=2, width="single")
    assert 237 < info["width"] <= 252
    (tmp_path / "f.tex").write_bytes(tex)
    assert re.search(r"Overfull \\hbox", _compile(tmp_path, "cvpr", ["f.tex"]))


def _svg_size(svg: bytes):
    root = ElementTree.fromstring(svg)
    return tuple(float(root.get(k).removesuffix("pt")) for k in ("width", "height"))


def test_block_fit_respects_the_height():
    g = resdsl.graph("resnet18")
    svg, info = block.render(g, "svg", depth=3, width=400)
    full = _svg_size(svg)[1]
    assert full > 1000  # depth 3 is tall: a page's height is what limits it
    for h in (0.75 * full, 0.9 * full):  # shrunk to fit, no less than 70 %
        svg, info = block.render(g, "svg", depth=3, width=400, height=h)
        w_, h_ = _svg_size(svg)
        assert h_ <= h + 1 and w_ <= 401
    with pytest.raises(ResdslError, match="cannot fit .* tall"):
        block.render(g, "svg", depth=3, width=400, height=0.6 * full)
    svg, info = block.render(g, "svg", width="cvpr")  # auto: the deepest depth that fits the text height
    assert _svg_size(svg)[1] <= parse_page("cvpr").height + 1 and info["depth"] >= 1


def test_circuit_fit_respects_the_height_with_a_clear_message(capsys):
    g = resdsl.graph("vit_b_16")
    svg, info = circuit.render(g, "svg", width="cvpr")
    page = parse_page("cvpr")
    assert info["width"] <= page.width and info["height"] <= page.height
    with pytest.raises(ResdslError, match=r"at depth 3 is \d+ pt wide, more than 236 pt and \d+ pt tall, more "
                                          r"than 639 pt \(cvpr column"):
        circuit.render(g, "svg", depth=3, width="cvpr")
    # with a width only, auto depth still keeps to a page's height (it ran 519 pt past it)
    svg, info = circuit.render(g, "svg", width="single")
    assert info["height"] <= block.PAGE_HEIGHT


def test_cli_and_api_take_venues(tmp_path, capsys):
    out = tmp_path / "r.svg"
    assert main(["render", "resnet18", "--width", "acm-text", "--height", "300", "-o", str(out)]) == 0
    assert "pt" in capsys.readouterr().err
    assert _svg_size(out.read_bytes())[1] <= 301
    fig = resdsl.render("resnet18", width="lncs", style="circuit")
    assert fig.info["width"] <= parse_page("lncs").width
