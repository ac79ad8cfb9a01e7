"""Make a rendered SVG safe to show inline: only drawing elements, no script, no event
handler, no link leaving the document.

Graphviz escapes the names it draws (`<script>` in a block name comes out as
`&lt;script&gt;` text), so its SVG holds no script; this is the second guard, an allow-list
that parses the SVG and writes back only what a figure needs. Anything it does not know
is dropped, not escaped: a figure loses a decoration, never runs code."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

# what graphviz and the circuit renderer draw with
ELEMENTS = {"svg", "g", "title", "desc", "path", "polygon", "polyline", "ellipse", "circle", "rect", "line",
            "text", "tspan", "defs", "linearGradient", "radialGradient", "stop", "clipPath", "marker", "a"}
ATTRIBUTES = {"id", "class", "width", "height", "viewBox", "transform", "fill", "fill-opacity", "stroke",
              "stroke-width", "stroke-opacity", "stroke-dasharray", "stroke-linecap", "stroke-linejoin",
              "stroke-miterlimit", "d", "points", "cx", "cy", "r", "rx", "ry", "x", "y", "x1", "y1", "x2", "y2",
              "dx", "dy", "text-anchor", "font-family", "font-size", "font-weight", "font-style", "text-decoration",
              "dominant-baseline", "baseline-shift", "opacity", "offset", "stop-color", "stop-opacity",
              "gradientUnits", "gradientTransform", "fx", "fy", "clip-path", "preserveAspectRatio", "markerWidth",
              "markerHeight", "refX", "refY", "orient", "markerUnits", "marker-end", "marker-start", "letter-spacing",
              "xml:space", "clipPathUnits", "visibility", "fill-rule", "clip-rule", "lengthAdjust", "textLength"}
# attribute values that may refer to something: only to a fragment of this document
_URL = re.compile(r"url\s*\(", re.IGNORECASE)
_LOCAL_URL = re.compile(r"^\s*url\(\s*#[\w.-]+\s*\)\s*$")
_FORBIDDEN_VALUE = re.compile(r"javascript:|data:|expression\s*\(|@import", re.IGNORECASE)


class UnsafeSvg(ValueError):
    """The renderer's output is not SVG this module can read."""


def _local(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def _clean_attrs(el) -> None:
    for name in list(el.attrib):
        ns, local = _local(name)
        value = el.attrib[name]
        keep = False
        if ns == XLINK_NS and local == "href" or ns == "" and local == "href":
            keep = value.startswith("#") and re.fullmatch(r"#[\w.-]+", value) is not None
        elif ns == "http://www.w3.org/XML/1998/namespace" and local == "space":
            keep = True
        elif ns == "" and local in ATTRIBUTES:
            keep = not _FORBIDDEN_VALUE.search(value) and (not _URL.search(value) or bool(_LOCAL_URL.match(value)))
        if not keep:
            del el.attrib[name]


def _walk(el) -> None:
    for child in list(el):
        ns, local = _local(child.tag) if isinstance(child.tag, str) else ("", "")
        if ns != SVG_NS or local not in ELEMENTS:  # script, foreignObject, style, image, comments, ...
            el.remove(child)
            continue
        _clean_attrs(child)
        _walk(child)


def clean_svg(data: bytes) -> str:
    """The SVG `data` with only allow-listed elements and attributes, as text (no XML
    declaration, no doctype): ready to place in a page."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    # graphviz writes a DOCTYPE without an internal subset; one with entities is refused outright
    if re.search(rb"<!ENTITY", data, re.IGNORECASE):
        raise UnsafeSvg("the SVG declares entities")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise UnsafeSvg(f"the renderer's SVG does not parse: {e}") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise UnsafeSvg("the renderer's output is not an <svg> document")
    _clean_attrs(root)
    _walk(root)
    return ET.tostring(root, encoding="unicode")
