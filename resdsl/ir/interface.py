"""What a network says about itself, on its IR graph: `@classifier fc`, `@features act1, layer1`,
`@forward_features features` (docs/language.md, "Annotations").

The annotations name dotted paths (an op, a block instance, a repeat, a group). A path's
*output* is the one tensor its ops compute that is used after it; a path's *members* are the
ops whose state or scope lies at or under it. From these the torch backend builds
`forward_features` (the graph up to the features tensor), `forward_head` (from there to the
logits, or to the classifier's input with pre_logits), the feature extractor of
`features_only` (:func:`prune`) and `feature_info`.

:func:`resolve` checks the annotations when a network is elaborated (errors point at the
annotation); :func:`interface` and :func:`split` read them back later, on the graph a backend
gets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import ResdslError, did_you_mean
from .graph import Graph, Node, Value
from .runsizes import CEIL
from .shapes import Size, shape_str

# annotation -> what it declares (the elaborator refuses any other name)
KINDS = {
    "classifier": "the classifier op: a linear or a convolution (`@classifier fc`)",
    "features": "the feature stages, in order (`@features act1, layer1, layer2`)",
    "forward_features": "the tensor forward_features returns (default: the last feature stage)",
}
CLASSIFIER_OPS = ("linear", "conv")


@dataclass(frozen=True)
class Interface:
    """The resolved annotations of a network: paths, and where each was written."""
    classifier: str | None = None
    features: tuple = ()  # paths, in order
    forward_features: str | None = None
    spans: dict = field(default_factory=dict, compare=False)  # (kind, path) -> Span


@dataclass(frozen=True)
class Split:
    """The values that cut a graph into forward_features and forward_head."""
    inputs: tuple  # graph inputs forward_features reads
    features: Value  # what forward_features returns (forward_head's input)
    pre_logits: Value | None  # the classifier's input
    classifier: Node | None


def interface(graph: Graph) -> Interface | None:
    return graph.root.info.get("interface")


# ------------------------------------------------------------------ paths
def _in(p: str | None, path: str) -> bool:
    return p is not None and (p == path or p.startswith(path + "."))


def members(graph: Graph, path: str, index: dict | None = None) -> list:
    """The nodes at or under `path`: their state path or their scope's path (`index`: the graph's
    member_index, when several paths are asked about)."""
    if index is not None:
        return index.get(path, [])
    dot = path + "."
    return [n for n in graph.nodes
            if (p := n.path) is not None and (p == path or p.startswith(dot))
            or (p := n.scope.path) is not None and (p == path or p.startswith(dot))]


def member_index(graph: Graph) -> dict:
    """Every path an annotation may name (op paths, scope paths and their prefixes) -> its
    members, in graph order: one pass for all the paths of a network's annotations."""
    index = {}
    for n in graph.nodes:
        for p in (n.path, n.scope.path):
            while p:
                at = index.get(p)
                if at is None:
                    index[p] = [n]
                elif at[-1] is not n:
                    at.append(n)
                else:
                    break  # reached through the other path: its prefixes have `n` already
                p = p.rpartition(".")[0]
    return index


def named_index(graph: Graph, wanted) -> dict:
    """member_index restricted to the paths in `wanted` (those with members): what resolve needs,
    without indexing every prefix of every path. A path's wanted prefixes are worked out once
    (ops of a block share their scope's path, and an op's path extends its parent's)."""
    index = {p: [] for p in wanted}
    pre = {"": (), None: ()}

    def prefixes(p):
        parent = p.rpartition(".")[0]
        up = pre.get(parent)
        if up is None:
            up = prefixes(parent)
        hit = pre[p] = up + (p,) if p in index else up
        return hit

    for n in graph.nodes:
        a = pre.get(n.path)
        if a is None:
            a = prefixes(n.path)
        b = pre.get(n.scope.path)
        if b is None:
            b = prefixes(n.scope.path)
        for p in a:
            index[p].append(n)
        for p in b:
            if p not in a:
                index[p].append(n)
    return {p: v for p, v in index.items() if v}


def known_paths(graph: Graph) -> set:
    """Every path an annotation may name: op paths, scope paths and their prefixes."""
    out = set()
    for n in graph.nodes:
        for p in (n.path, n.scope.path):
            while p and p not in out:
                out.add(p)
                p = p.rpartition(".")[0]
    return out


def output_of(graph: Graph, path: str, users: dict | None = None, index: dict | None = None) -> list:
    """The tensors the ops under `path` compute that are used outside it (or are graph outputs)."""
    users = graph.users() if users is None else users
    ordered = members(graph, path, index)  # in graph order
    inside = set(ordered)
    outs = []
    for n in ordered:
        for v in n.outputs:
            if any(u is None or u not in inside for u in users.get(v, ())):
                outs.append(v)
    return outs


def _ancestors(values) -> set:
    """The nodes that compute `values`."""
    seen, stack = set(), [v.producer for v in values if v.producer is not None]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(v.producer for v in n.inputs if v.producer is not None and v.producer not in seen)
    return seen


def _head(graph, feat: Value, outs) -> list | None:
    """The ops the outputs need and `feat` does not (the head), in graph order, found walking back
    from the outputs and stopping at `feat`: what split's two ancestor sets give, when every op
    reached comes after the one computing `feat` (the usual, short head: avgpool, flatten, fc),
    since in the graph's topological order no op after it can be among its ancestors. None
    otherwise (split then works out the two sets)."""
    seen, stack = set(), [v.producer for v in outs if v is not feat and v.producer is not None]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(v.producer for v in n.inputs if v is not feat and v.producer is not None)
    nodes, start = graph.nodes, 0
    if feat.producer is not None:
        start = next((i for i in range(len(nodes) - 1, -1, -1) if nodes[i] is feat.producer), None)
        if start is None:
            return None
        start += 1
    head = [n for n in nodes[start:] if n in seen]
    return head if len(head) == len(seen) else None


# ------------------------------------------------------------------ checking (at elaboration)
def resolve(graph: Graph, annotations: list) -> Interface:
    """Check `(kind, [(path, span)], span)` annotations against the graph; the Interface, or a
    ResdslError at the annotation that is wrong."""
    cls, feats, ff, spans = None, [], None, {}
    for kind, targets, span in annotations:
        if kind == "classifier" or kind == "forward_features":
            if len(targets) != 1 or (cls if kind == "classifier" else ff) is not None:
                raise ResdslError("type", f"a network has one `@{kind}`, naming one path", span,
                                  help=f"e.g. `@{kind} {'fc' if kind == 'classifier' else 'features'}`")
            if kind == "classifier":
                cls = targets[0][0]
            else:
                ff = targets[0][0]
        else:
            feats += [p for p, _ in targets]
        for p, sp in targets:
            spans[(kind, p)] = sp
    index = named_index(graph, {p for _, p in spans})
    for (kind, p), sp in spans.items():
        if p not in index:  # no op at or under it
            known = member_index(graph)  # = known_paths(graph), for the hint
            hint = did_you_mean(p, sorted(known))
            raise ResdslError("name", f"`@{kind}` names `{p}`, which is not a path in network `{graph.name}`", sp,
                              help=(hint + " " if hint else "") + "name an op or block with `as NAME` and give "
                                   "its dotted path (`layer1`, `classifier.1`)")
    if len(set(feats)) != len(feats):
        dup = next(p for p in feats if feats.count(p) > 1)
        raise ResdslError("name", f"`@features` lists `{dup}` twice", spans[("features", dup)])
    iface = Interface(cls, tuple(feats), ff, spans)
    users = graph.users()
    for p in feats:
        v = _one_output(graph, "features", p, spans[("features", p)], users, index)
        _stage_info(graph, v, p, spans[("features", p)])
    split(graph, iface, users, index, check_only=True)
    return iface


def _one_output(graph, kind, path, span, users, index=None) -> Value:
    outs = output_of(graph, path, users, index)
    if len(outs) != 1:
        what = "no tensor used after it" if not outs else \
            f"{len(outs)} tensors used after it ({', '.join('%' + v.name for v in outs[:4])})"
        raise ResdslError("shape", f"`@{kind}` names `{path}`, which computes {what}", span,
                          help="name a path with one output: an op, a block or a stage")
    return outs[0]


def _classifier(graph, path, span, index=None) -> Node:
    ops = list(members(graph, path, index))
    node = ops[0] if len(ops) == 1 and ops[0].path == path else None
    if node is None or node.op not in CLASSIFIER_OPS or not node.params:
        inner = [n.path for n in ops if n.op in CLASSIFIER_OPS and n.params]
        what = f"a `{node.op}`" if node is not None else f"{len(ops)} ops"
        raise ResdslError("type", f"`@classifier` names `{path}`, which is {what}; the classifier is one linear "
                                  "or convolution op", span,
                          help=f"did you mean `{inner[-1]}`?" if inner else "name the op: `linear(classes) as fc`")
    return node


def split(graph: Graph, iface: Interface, users: dict | None = None, index: dict | None = None,
          check_only: bool = False) -> Split | None:
    """Where forward_features ends and forward_head begins; None when the network declares
    neither a classifier nor features. The head (everything the output needs that the
    features tensor does not) may only read the features tensor. `check_only`: the errors
    only (the Split is not made; resolve at elaboration)."""
    users = graph.users() if users is None else users
    sp = iface.spans
    node = _classifier(graph, iface.classifier, sp.get(("classifier", iface.classifier)), index) \
        if iface.classifier else None
    if iface.forward_features:
        where = sp.get(("forward_features", iface.forward_features))
        feat = _one_output(graph, "forward_features", iface.forward_features, where, users, index)
    elif iface.features:
        where = sp.get(("features", iface.features[-1]))
        feat = _one_output(graph, "features", iface.features[-1], where, users, index)
    elif node is not None:
        where = sp.get(("classifier", iface.classifier))
        feat = node.inputs[0]
    else:
        return None
    outs = graph.eval_outputs()  # outputs marked `training` are not the head's
    if len(outs) != 1:
        raise ResdslError("type", f"network `{graph.name}` has {len(outs)} outputs; forward_head needs one",
                          where, help="a network with a classifier or features ends in one tensor (mark "
                                      "auxiliary outputs `training`: `output y, training aux = ...`)")
    head, body = _head(graph, feat, outs), None
    if head is None:
        body = _ancestors([feat])
        need = _ancestors(outs)
        head = [n for n in graph.nodes if n in need and n not in body]
    hs = set(head)
    for n in head:
        for v in n.inputs:
            if v is not feat and (v.producer is None or v.producer not in hs):
                raise ResdslError("shape", f"the head of `{graph.name}` (after %{feat.name}, the output of "
                                           f"forward_features) also reads %{v.name}", where,
                                  help="forward_features must end where every later op reads only its output: "
                                       "name that point with `@forward_features PATH`")
    if node is not None and node not in hs:
        raise ResdslError("shape", f"the classifier `{iface.classifier}` comes before the end of forward_features",
                          sp.get(("classifier", iface.classifier)))
    if check_only:
        return None
    if body is None:
        body = _ancestors([feat])
    ins = tuple(v for v in graph.inputs if any(v in n.inputs for n in body)) or tuple(graph.inputs[:1])
    return Split(ins, feat, node.inputs[0] if node is not None else None, node)


# ------------------------------------------------------------------ features
def _stage_info(graph, v: Value, path, span) -> dict:
    inp = graph.inputs[0]
    if (len(v.shape) == 4 and len(inp.shape) == 4 and not isinstance(v.shape[1].size, int)
            and isinstance(v.shape[3].size, int)):  # channels last, [N, H, W, C] (Swin): sized by the input
        return {"num_chs": v.shape[3].size, "reduction": _reduction(inp.shape[2].size, v.shape[1].size),
                "module": path}
    if len(v.shape) < 3 or len(inp.shape) < 3 or not isinstance(v.shape[1].size, int):
        raise ResdslError("shape", f"`@features` stage `{path}` is {shape_str(v.shape)}; a feature stage is a map "
                                   "[N, C, ...] of an image input", span)
    return {"num_chs": v.shape[1].size, "reduction": _reduction(inp.shape[2].size, v.shape[2].size), "module": path}


def _reduction(a, b) -> int:
    """How many input pixels one feature pixel spans along the first spatial axis (H)."""
    if isinstance(a, int) and isinstance(b, int):
        return max(1, round(a / b))
    ca, cb = _linear(a), _linear(b)
    return max(1, round(ca / cb)) if ca and cb else 1


def _linear(s):
    if isinstance(s, Size):
        lin = [(k[0], c) for k, c in s.terms.items() if len(k) == 1]
        if len(lin) != 1:
            return None
        sym, c = lin[0]
        if sym in CEIL:  # `ceil2(H/4)`, a padded size: about the size it rounds up
            inner = _linear(CEIL[sym][1])
            return c * inner if inner else None
        return c
    return None


def feature_values(graph: Graph, iface: Interface) -> list:
    users = graph.users()
    return [_one_output(graph, "features", p, iface.spans.get(("features", p)), users) for p in iface.features]


def feature_info(graph: Graph, iface: Interface) -> list:
    """timm's feature_info: one dict per stage, {num_chs, reduction, module}."""
    return [_stage_info(graph, v, p, iface.spans.get(("features", p)))
            for v, p in zip(feature_values(graph, iface), iface.features)]


def prune(graph: Graph, outputs: list, names: list) -> Graph:
    """The graph computing only `outputs` (the ops they need), its inputs unchanged."""
    need = _ancestors(outputs)
    nodes = [n for n in graph.nodes if n in need]
    g = Graph(graph.name, list(graph.inputs), list(outputs), nodes, graph.root, list(names))
    g.verify()
    return g
