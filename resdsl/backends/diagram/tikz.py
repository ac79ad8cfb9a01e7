"""TikZ output: a standalone LaTeX page (pdflatex) that draws graphviz's layout from `dot -Tjson`, the TeX
escaping of label text, and the page around a tikzpicture (shared with the circuit renderer)."""
from __future__ import annotations

_TEX_CHARS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "×": r"$\times$", "→": r"$\rightarrow$", "·": r"$\cdot$", "–": "--", "α": r"$\alpha$",
              "γ": r"$\gamma$", "θ": r"$\theta$", "…": r"\dots{}", "\u1d40": r"$^{\top}$", "<": r"\textless{}", ">": r"\textgreater{}",
              "|": r"\textbar{}", "`": "{`}"}


def tex_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in _TEX_CHARS:
            out.append(_TEX_CHARS[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def json_to_tikz(data: str, name: str = "network") -> str:
    """A standalone LaTeX file (pdflatex) drawing graphviz's layout (`dot -Tjson` draw ops) with TikZ."""
    import json
    d = json.loads(data)
    colors = {}

    def color(c):
        c = c.lower()
        if len(c) == 9:  # #rrggbbaa
            if c.endswith("00"):
                return None
            c = c[:7]
        if c in ("none", "transparent"):
            return None
        if not c.startswith("#"):
            c = {"black": "#000000", "white": "#ffffff"}.get(c, "#000000")
        if c not in colors:
            colors[c] = f"rc{len(colors)}"
        return colors[c]

    body = []

    def ops(seq):
        pen, fill, font, bold, style = "rc_black", None, 10.0, False, []
        pen = color("#000000")
        for o in seq or ():
            k = o["op"]
            if k == "c":
                pen = color(o["color"])
            elif k == "C":
                fill = color(o["color"])
            elif k == "S":
                st = o["style"]
                if st in ("dashed", "dotted"):
                    style = [st]
                elif st.startswith("setlinewidth"):
                    style = [f"line width={float(st[13:-1]):.2f}pt"]
                elif st in ("solid",):
                    style = []
            elif k == "F":
                font = float(o["size"])
            elif k == "t":
                bold = bool(int(o["fontchar"]) & 1)
            elif k in ("p", "P", "L", "b", "B"):
                pts = o["points"]
                if k in ("b", "B"):
                    path = f"({pts[0][0]:.2f},{pts[0][1]:.2f})"
                    for i in range(1, len(pts) - 2, 3):
                        a, b, c = pts[i], pts[i + 1], pts[i + 2]
                        path += (f" .. controls ({a[0]:.2f},{a[1]:.2f}) and ({b[0]:.2f},{b[1]:.2f}) .. "
                                 f"({c[0]:.2f},{c[1]:.2f})")
                else:
                    path = " -- ".join(f"({x:.2f},{y:.2f})" for x, y in pts)
                closed = k in ("p", "P") or (k == "B")
                if closed:
                    path += " -- cycle" if k in ("p", "P") else ""
                opts = list(style)
                if pen:
                    opts.append(f"draw={pen}")
                if k in ("P", "B") and fill:
                    opts.append(f"fill={fill}")
                if not pen and not (k in ("P", "B") and fill):
                    continue
                body.append(f"\\path[{','.join(opts)}] {path};")
            elif k in ("e", "E"):
                x, y, rx, ry = o["rect"]
                opts = list(style)
                if pen:
                    opts.append(f"draw={pen}")
                if k == "E" and fill:
                    opts.append(f"fill={fill}")
                body.append(f"\\path[{','.join(opts)}] ({x:.2f},{y:.2f}) ellipse ({rx:.2f} and {ry:.2f});")
            elif k == "T":
                x, y = o["pt"]
                anchor = {"l": "base west", "r": "base east"}.get(o["align"], "base")
                txt = tex_escape(o["text"])
                if bold:
                    txt = f"\\textbf{{{txt}}}"
                body.append(f"\\node[anchor={anchor},inner sep=0pt,text={pen or 'black'},"
                            f"font=\\fontsize{{{font:.1f}}}{{{font * 1.2:.1f}}}\\selectfont] "
                            f"at ({x:.2f},{y:.2f}) {{{txt}}};")

    def walk(obj):
        for key in ("_draw_", "_ldraw_", "_hdraw_", "_tdraw_", "_hldraw_", "_tldraw_"):
            ops(obj.get(key))

    walk({k: v for k, v in d.items() if k == "_draw_"})
    objs = d.get("objects", [])
    for o in objs:  # clusters first (they are backgrounds), then nodes
        if "nodes" in o or o.get("name", "").startswith("cluster"):
            walk(o)
    for e in d.get("edges", []):
        walk(e)
    for o in objs:
        if not ("nodes" in o or o.get("name", "").startswith("cluster")):
            walk(o)
    defs = [f"\\definecolor{{{v}}}{{HTML}}{{{k[1:].upper()}}}" for k, v in colors.items()]
    x0, y0, x1, y1 = (float(t) for t in d.get("bb", "0,0,100,100").split(","))
    return tikz_document(f"{tex_escape(name)}: drawn by resdsl render (TikZ); compile with pdflatex.",
                         x1 - x0 + 14, y1 - y0 + 14, defs, body)


def tikz_document(comment: str, width: float, height: float, defs, body) -> str:
    """A standalone LaTeX page of exactly the picture's size around a tikzpicture."""
    return "\n".join([
        f"% {comment}",
        "% To include it in a paper, copy the color definitions and the tikzpicture (\\usepackage{tikz}).",
        "\\documentclass{article}",
        f"\\usepackage[paperwidth={width:.0f}pt,paperheight={height:.0f}pt,margin=4pt]{{geometry}}",
        "\\usepackage{tikz}",
        "\\pagestyle{empty}",
        "\\begin{document}",
        *defs,
        "\\noindent\\sffamily%",
        "\\begin{tikzpicture}[x=1pt,y=1pt]",
        *body,
        "\\end{tikzpicture}",
        "\\end{document}",
        "",
    ])
