"""The page a figure must fit: `--width` and `--height` as points or as a venue's column, text width
and text height, read from the venue's LaTeX style.

Numbers in a style file are TeX points (1/72.27 in); a drawing is measured in PostScript points
(1/72 in, graphviz's unit, and the size of a PDF or SVG page), and a TikZ picture of a drawing
`w` points wide is `w` TeX points wide. A fit to a venue therefore aims at the smaller of the two
readings, the TeX-point width converted to PostScript points (x 72/72.27), so that neither the
PDF nor the TikZ figure overflows the column (`Overfull \\hbox`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...diagnostics import ResdslError

IN = 72.27          # TeX points per inch
CM = IN / 2.54


@dataclass(frozen=True)
class Venue:
    column: float   # TeX pt
    text: float     # TeX pt
    height: float   # TeX pt, \textheight
    source: str


# Each from the venue's own style file (TeX points); see docs/render.md#fitting-a-page.
VENUES = {
    "ieee": Venue(21 * 12.0, 43 * 12.0, 9.25 * IN,
                  "IEEEtran.cls: \\textwidth 43pc, \\columnsep 1pc (column 21pc); conference \\textheight 9.25in"),
    "acm": Venue((614.295 - 2 * 54 - 24) / 2, 614.295 - 2 * 54, 9.0 * IN,
                 "acmart.cls sigconf: geometry paperwidth=8.5in, inner=outer=54pt, columnsep=2pc; text height "
                 "11in - top 57pt - bottom 73pt less head and foot, about 9in"),
    "cvpr": Venue((6.875 - 0.3125) / 2 * IN, 6.875 * IN, 8.875 * IN,
                  "cvpr.sty: \\textwidth 6.875in, \\columnsep 0.3125in, \\textheight 8.875in"),
    "iccv": Venue((6.875 - 0.3125) / 2 * IN, 6.875 * IN, 8.875 * IN,
                  "iccv.sty (the CVPR author kit): \\textwidth 6.875in, \\columnsep 0.3125in, \\textheight 8.875in"),
    "neurips": Venue(5.5 * IN, 5.5 * IN, 9.0 * IN,
                     "neurips_2025.sty: geometry textwidth=5.5in, textheight=9in (one column)"),
    "icml": Venue((6.75 - 0.25) / 2 * IN, 6.75 * IN, 9.0 * IN,
                  "icml2025.sty: \\textwidth 6.75in, \\columnsep 0.25in (two columns), \\textheight 9.0in"),
    "iclr": Venue(5.5 * IN, 5.5 * IN, 9.0 * IN,
                  "iclr2025_conference.sty: \\textwidth 5.5in, \\textheight 9.0in (one column)"),
    "lncs": Venue(12.2 * CM, 12.2 * CM, 19.3 * CM,
                  "llncs.cls: \\textwidth 12.2cm, \\textheight 19.3cm (one column)"),
}
WIDTHS = {"single": 252.0, "double": 504.0}   # points, as before venues (IEEE's column and twice it)


def _bp(tex_pt: float) -> float:
    return tex_pt * 72.0 / IN


@dataclass(frozen=True)
class Page:
    width: float | None    # drawing points (1/72 in); None: any
    height: float | None
    name: str = ""         # `cvpr column`, `252 pt`: for messages

    def describe(self) -> str:
        return self.name or "the page"


def _venue(word: str):
    """(venue, part) for `cvpr`, `cvpr-column`, `cvpr-text`, or None."""
    base, _, part = word.partition("-")
    if base in VENUES and part in ("", "column", "text"):
        return VENUES[base], (part or "column"), base
    return None


def _number(word: str, flag: str) -> float:
    try:
        v = float(word[:-2] if word.endswith("pt") else word)
    except ValueError:
        raise ResdslError("usage", f"{flag} {word!r} is not a venue or a number of points",
                          help=f"venues: {', '.join(VENUES)} (add -column or -text, e.g. cvpr-text)"
                               + (", or single (252 pt), double (504 pt)" if flag == "--width" else "")
                               + "; or points, e.g. 340") from None
    if not v > 0 or v == float("inf"):
        raise ResdslError("usage", f"{flag} must be a positive number of points, got {word}")
    return v


def parse_width(w) -> float | None:
    """Target width in points: None, a number, single/double, or a venue (`cvpr`, `cvpr-text`)."""
    return parse_page(w, None).width


def parse_page(width=None, height=None) -> Page:
    """The page to fit. `width`: points, single, double or a venue (`acm`: its column, `acm-text`: the
    text width); `height`: points or a venue (its text height); by default a venue's text height
    when `width` names one, else no height."""
    w = h = None
    names = []
    vh = None
    if width is not None:
        if isinstance(width, (int, float)) and not isinstance(width, bool):
            w = _number(str(width), "--width")
            names.append(f"{w:g} pt")
        else:
            word = str(width).strip().lower()
            v = _venue(word)
            if word in WIDTHS:
                w = WIDTHS[word]
                names.append(f"{word} ({w:g} pt)")
            elif v is not None:
                venue, part, base = v
                w = _bp(venue.column if part == "column" else venue.text)
                vh = _bp(venue.height)
                names.append(f"{base} {part} ({w:.0f} pt)")
            else:
                w = _number(word, "--width")
                names.append(f"{w:g} pt")
    if height is not None:
        if isinstance(height, (int, float)) and not isinstance(height, bool):
            h = _number(str(height), "--height")
        else:
            word = str(height).strip().lower()
            v = _venue(word)
            h = _bp(v[0].height) if v is not None else _number(word, "--height")
        names.append(f"{h:.0f} pt high")
    elif vh is not None:
        h = vh
        names.append(f"text height {h:.0f} pt")
    return Page(w, h, ", ".join(names))
