"""`gitrepro lineage`: the graph from dataset versions and configs through runs (and the stages
they ran as) to outputs, as data (`Graph` of `Node`s and `Edge`s), whole or narrowed to what one
artifact rests on (`narrow`); gitrepro.cli.render draws it as Mermaid or DOT.
See docs/provenance.md, "lineage".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.repro.provenance.records import training_history
from gitrepro.store.repo import Repo


@dataclass(frozen=True)
class Node:
    id: str
    kind: str                  # dataset, output, config or run
    label: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def add_node(self, node: Node) -> None:
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)

    def add_edge(self, source: str, target: str) -> None:
        edge = Edge(source, target)
        if edge not in self.edges:
            self.edges.append(edge)


def lineage(repo: Repo, rev_range: str | None = None, paths: list[str] | None = None) -> Graph:
    """Dataset versions and configs -> runs -> outputs, for every run in the training commits of
    `rev_range` (oldest first). A dataset version is (path, manifest id): one node however many
    runs read it, and an output that a later run reads is the same node."""
    graph = Graph()
    for t in reversed(training_history(repo.root, rev_range or "HEAD", list(paths or []))):
        for rec in t.records:
            run = _node_id("r", rec.id)
            for dataset, manifest in sorted(rec.inputs.items()):
                source = rec.input_sources.get(dataset)
                graph.add_node(Node(_node_id("v", dataset, manifest), "dataset", f"{dataset} @ {manifest[:12]}"
                                    + (f" imported from {source.url} @ {source.commit[:12]}" if source else "")))
                graph.add_edge(_node_id("v", dataset, manifest), run)
            if rec.config is not None:
                cfg = _node_id("c", rec.config.path, rec.config.hash)
                graph.add_node(Node(cfg, "config", f"{rec.config.path} hash {rec.config.hash[:12]}"))
                graph.add_edge(cfg, run)
            stage = f"stage {rec.stage}: " if rec.stage else ""
            graph.add_node(Node(run, "run", f"{stage}run {rec.id} @ {t.commit.id[:12]}"
                                             + (f" seed {rec.seed}" if rec.seed is not None else "")))
            for output, manifest in sorted(rec.outputs.items()):
                node = _node_id("v", output, manifest)
                graph.add_node(Node(node, "output", f"{output} @ {manifest[:12]}"))
                graph.add_edge(run, node)
    return graph


def narrow(graph: Graph, target: str) -> Graph:
    """The part of `graph` an artifact rests on: the run `target` names (a run id) or every version of
    the dataset or output at path `target`, and everything upstream of it, back to source data."""
    wanted = {n.id for n in graph.nodes if n.id == _node_id("r", target)
              or (n.kind in ("dataset", "output") and n.label.split(" @ ")[0] == target.rstrip("/"))}
    if not wanted:
        raise UnknownArtifact(f"no run or dataset {target!r} in the lineage of this range; "
                              f"`gitrepro log` lists runs, `gitrepro status` datasets")
    sources: dict[str, list[str]] = {}
    for e in graph.edges:
        sources.setdefault(e.target, []).append(e.source)
    keep, todo = set(wanted), list(wanted)
    while todo:
        for up in sources.get(todo.pop(), []):
            if up not in keep:
                keep.add(up)
                todo.append(up)
    return Graph([n for n in graph.nodes if n.id in keep],
                 [e for e in graph.edges if e.source in keep and e.target in keep])


class UnknownArtifact(GitreproError):
    pass


def _node_id(prefix: str, *parts: str) -> str:
    """A short id safe in Mermaid and DOT: prefix + hash of the parts."""
    return prefix + "_" + hash_bytes("\0".join(parts).encode("utf-8", "surrogateescape")).hex()[:16]
