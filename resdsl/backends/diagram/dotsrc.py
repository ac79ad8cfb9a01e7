"""DOT source written with every identifier and value quoted.

The `graphviz` package quotes an identifier only when it is not a plain DOT ID, reads
`a:b` in an edge as node `a`, port `b`, and takes any value that starts with `<` and ends with
`>` for an HTML-like label. Names in a `.res` file may hold `:`, `<`, `>`, `&` (quoted names),
so this writer quotes every node name, subgraph name and attribute value as a DOT string and
passes HTML-like labels only when they are marked as such (:class:`Html`, built from escaped
text). The layout `dot` computes is the same as for the package's output: statements come in
the same order.
"""
from __future__ import annotations

from contextlib import contextmanager


class Html(str):
    """An HTML-like label (`<...>`), emitted as is: every text inside it must be escaped."""


def quote(s) -> str:
    """A DOT double-quoted string holding `s` literally (in an escString, `\\` is escaped too)."""
    s = str(s).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\n", "\\n").replace("\r", "\\r") + '"'


def node_name(s: str) -> str:
    """The DOT name of a node called `s`. Graphviz reads a name that starts with `%` as an anonymous,
    internal one (cgraph's local-name prefix): each mention makes a new node. Such a name gets a
    leading space; the node's `id` attribute (the SVG id) keeps the name exactly."""
    s = str(s)
    return " " + s if s.startswith("%") else s


def svg_id(s: str) -> str:
    """An `id` value that reaches the SVG as `s`: graphviz escapes `&` for XML only where it does not
    already start an entity (`&amp;` passes as is and would read back as `&`), so every `&` is
    written as `&amp;` here."""
    return str(s).replace("&", "&amp;")


def _value(v) -> str:
    return f"<{v}>" if isinstance(v, Html) else quote(v)


def attr_list(attrs: dict) -> str:
    """`[label=... a="b" ...]`: the label first, then the others sorted (as the graphviz package does)."""
    items = [(k, v) for k, v in attrs.items() if v is not None]
    items.sort(key=lambda kv: (kv[0] != "label", kv[0]))
    return " ".join(f"{k}={_value(v)}" for k, v in items)


class Graph:
    """A directed graph or a subgraph: `node`, `edge`, `attr`, `subgraph`, then `source`."""

    def __init__(self, name: str, graph_attr=None, node_attr=None, edge_attr=None, _indent=1, _kind="digraph"):
        self.name, self._indent, self._kind = name, _indent, _kind
        self.body: list[str] = []
        tab = "\t" * _indent
        for key, a in (("graph", graph_attr), ("node", node_attr), ("edge", edge_attr)):
            if a:
                self.body.append(f"{tab}{key} [{attr_list(a)}]")

    def attr(self, **attrs):
        self.body.append("\t" * self._indent + attr_list(attrs))

    def node(self, name: str, **attrs):
        self.body.append("\t" * self._indent + f"{quote(node_name(name))} [{attr_list(attrs)}]")

    def edge(self, tail: str, head: str, **attrs):
        a = f" [{attr_list(attrs)}]" if attrs else ""
        self.body.append("\t" * self._indent + f"{quote(node_name(tail))} -> {quote(node_name(head))}{a}")

    @contextmanager
    def subgraph(self, name: str):
        sg = Graph(name, _indent=self._indent + 1, _kind="subgraph")
        yield sg
        tab = "\t" * self._indent
        self.body.append(f"{tab}subgraph {quote(node_name(name))} {{")
        self.body.extend(sg.body)
        self.body.append(tab + "}")

    @property
    def source(self) -> str:
        return "\n".join([f"{self._kind} {quote(node_name(self.name))} {{", *self.body, "}"]) + "\n"
