"""Cross-cutting: the package's shape. Imports point only down the layers and form no cycle; the
top level holds only the entry modules; no module or function is too long; every exception is a
GitreproError; no two classes share a name.

The layer table is docs/design.md's "Module map". Imports are read with `ast` from the source,
so nothing here imports the code except the exception test; every test lists all offenders at
once.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gitrepro"
ROOT = PACKAGE.parent

# Lower first; each layer may import the ones listed (and itself; gitrepro.errors is open to all).
LAYERS: dict[str, set[str]] = {
    "util": set(),
    "formats": {"util"},
    "git": {"util", "formats"},
    "store": {"util", "formats", "git"},
    "worktree": {"util", "formats", "git", "store"},
    "remote": {"util", "formats", "git", "store"},            # a peer of worktree: neither imports the other
    "repro": {"util", "formats", "git", "store", "worktree", "remote"},
}
ENTRY_MODULES = ("__init__", "__main__", "api", "errors", "demo")   # top level: may import anything
TOP = "top"
LAYERS["cli"] = set(LAYERS) | {TOP}
OPEN_TO_ALL = {"gitrepro.errors"}

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


# ---------------------------------------------------------------- reading the source

@dataclass(frozen=True)
class Edge:
    source: str          # importing module
    target: str          # imported gitrepro module (or package)
    path: str            # source file, relative to the repository root
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`: a layering edge, not a run-time one
    local: bool          # inside a function (runs when called, not on import)

    def where(self) -> str:
        kinds = [k for k, on in (("function-level", self.local), ("TYPE_CHECKING", self.type_checking)) if on]
        return f"{self.path}:{self.line}" + (f" ({', '.join(kinds)})" if kinds else "")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def resolve_relative(module: str, level: int, name: str | None) -> str:
    """The absolute name `from <level dots><name> import ...` means inside `module`."""
    base = module.split(".") if is_package(module) else module.split(".")[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _ImportFinder(ast.NodeVisitor):
    """Every import of a gitrepro module: `import`, `from ... import` (absolute and relative; a
    name that is a submodule counts as that submodule), and `importlib.import_module` /
    `lazy_module` calls with a literal name, at any depth."""

    def __init__(self, module: str, path: str):
        self.module, self.path, self.edges = module, path, []
        self._type_checking = self._local = 0

    def _add(self, target: str, node: ast.AST) -> None:
        if target == "gitrepro" or target.startswith("gitrepro."):
            self.edges.append(Edge(self.module, target, self.path, node.lineno,
                                   self._type_checking > 0, self._local > 0))

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _scope(self, node: ast.AST) -> None:
        self._local += 1
        self.generic_visit(node)
        self._local -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope   # a class body runs at import

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = resolve_relative(self.module, node.level, node.module) if node.level else node.module
        for target in dict.fromkeys(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                                    for a in node.names):
            self._add(target, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "lazy_module") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            target = node.args[0].value
            if target.startswith("."):
                dots = len(target) - len(target.lstrip("."))
                # import_module(".x", __name__) is relative to the calling package (or module's package)
                target = resolve_relative(self.module, dots, target[dots:] or None)
            self._add(target, node)
        self.generic_visit(node)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def edges_in(module: str, source: str, path: str = "<source>") -> list[Edge]:
    finder = _ImportFinder(module, path)
    finder.visit(ast.parse(source, filename=path))
    return finder.edges


def import_edges() -> list[Edge]:
    return [e for name, path in MODULES.items()
            for e in edges_in(name, path.read_text(), str(path.relative_to(ROOT)))]


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    return TOP


# ---------------------------------------------------------------- imports

def test_every_import_names_a_module_that_exists():
    """An import of a module path with no file (an old path such as gitrepro.config, served to
    users' code by the finder in gitrepro/__init__) hides the real edge from the layer check."""
    bad = sorted({f"{e.source} imports {e.target}, which has no module file, at {e.where()}"
                  for e in import_edges() if e.target not in MODULES})
    assert not bad, f"{len(bad)} import(s) of gitrepro modules that do not exist:\n  " + "\n  ".join(bad)


def upward(edges: list[Edge]) -> list[str]:
    found = []
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if e.target in OPEN_TO_ALL or src == dst or src == TOP or dst in LAYERS.get(src, set()):
            continue
        found.append(f"{e.source} ({src}) imports {e.target} ({dst}) at {e.where()}")
    return sorted(found)


def test_imports_point_only_down_the_layers():
    bad = upward(import_edges())
    table = "\n  ".join(f"{layer} -> {{{', '.join(sorted(allowed, key=list(LAYERS).index))}}}"
                        for layer, allowed in LAYERS.items() if layer != "cli") + \
        "\n  cli -> everything; top-level entry modules -> anything; gitrepro.errors open to all"
    assert not bad, f"{len(bad)} import(s) point up the layers (allowed:\n  {table}):\n  " + "\n  ".join(bad)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): components with more than one module, or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest import path from the component's first module back to itself, inside it."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph.get(node, ())):
            if child == start:
                return paths[node] + [start]
            if child in members and child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return component


def cycles(edges: list[Edge], modules) -> list[str]:
    """One line per import cycle (TYPE_CHECKING imports never run, so they make none)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    where: dict[tuple[str, str], str] = {}
    for e in edges:
        if not e.type_checking and e.target in graph:
            graph[e.source].add(e.target)
            where.setdefault((e.source, e.target), e.where())
    found = []
    for component in strongly_connected(graph):
        path = one_cycle(graph, component)
        steps = ", ".join(f"{a} -> {b} ({where[a, b]})" for a, b in zip(path, path[1:]))
        found.append(f"{' <-> '.join(component)}\n      e.g. {steps}")
    return found


def test_no_import_cycles_between_modules():
    found = cycles(import_edges(), MODULES)
    assert not found, f"{len(found)} import cycle(s):\n  " + "\n  ".join(found)


# ---------------------------------------------------------------- the import reader itself

def targets(module: str, source: str) -> list[tuple[str, bool, bool]]:
    return [(e.target, e.local, e.type_checking) for e in edges_in(module, source)]


def test_the_reader_resolves_absolute_relative_and_submodule_imports():
    source = """
import gitrepro.git.plumbing
import gitrepro.util.fsutil as fs
from gitrepro.worktree import statwalk
from gitrepro.remote import RemoteError
from ..formats.pack import BlobEntry
from . import index
from .store import Store
import os, json
from typing import TYPE_CHECKING
"""
    assert [t for t, _, _ in targets("gitrepro.store.statcache", source)] == [
        "gitrepro.git.plumbing", "gitrepro.util.fsutil", "gitrepro.worktree.statwalk", "gitrepro.remote",
        "gitrepro.formats.pack", "gitrepro.store.index", "gitrepro.store.store"]
    # In a package's __init__, one dot is the package itself.
    assert [t for t, _, _ in targets("gitrepro.remote", "from . import base\nfrom .local import LocalRemote\n")] == [
        "gitrepro.remote.base", "gitrepro.remote.local"]


def test_the_reader_finds_function_level_type_checking_and_dynamic_imports():
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from gitrepro.formats.manifest import Entry
else:
    from gitrepro.util import fsutil
def f():
    from gitrepro.worktree import checkout
    return importlib.import_module(".s3", __name__), lazy_module("gitrepro.repro.policy")
class C:
    import gitrepro.git.tracking
"""
    assert targets("gitrepro.remote", source) == [
        ("gitrepro.formats.manifest", False, True), ("gitrepro.util.fsutil", False, False),
        ("gitrepro.worktree.checkout", True, False), ("gitrepro.remote.s3", True, False),
        ("gitrepro.repro.policy", True, False), ("gitrepro.git.tracking", False, False)]


def test_the_checks_report_an_upward_edge_and_a_cycle_but_not_allowed_ones():
    edges = (edges_in("gitrepro.store.statcache", "from gitrepro.worktree.statwalk import stat_key")
             + edges_in("gitrepro.worktree.statwalk", "def f():\n    from gitrepro.store import statcache")
             + edges_in("gitrepro.formats.pack", "from gitrepro.errors import GitreproError")
             + edges_in("gitrepro.cli.app", "from gitrepro.repro import policy")
             + edges_in("gitrepro.api", "from gitrepro.cli import app")
             + edges_in("gitrepro.formats.manifest", "if TYPE_CHECKING:\n    from gitrepro.store.store import Store")
             + edges_in("gitrepro.store.store", "from gitrepro.formats import manifest"))
    assert upward(edges) == [
        "gitrepro.formats.manifest (formats) imports gitrepro.store.store (store) at <source>:2 (TYPE_CHECKING)",
        "gitrepro.store.statcache (store) imports gitrepro.worktree.statwalk (worktree) at <source>:1"]
    found = cycles(edges, ["gitrepro.store.statcache", "gitrepro.worktree.statwalk", "gitrepro.formats.manifest",
                           "gitrepro.store.store", "gitrepro.formats.pack", "gitrepro.errors"])
    assert len(found) == 1 and found[0].startswith("gitrepro.store.statcache <-> gitrepro.worktree.statwalk\n")


# ---------------------------------------------------------------- shape and size

def test_the_top_level_holds_only_the_entry_modules_and_the_layer_subpackages():
    allowed = {f"{m}.py" for m in ENTRY_MODULES} | set(LAYERS)
    stray = sorted(p.name + ("/" if p.is_dir() else "") for p in PACKAGE.iterdir()
                   if p.name not in allowed and p.name != "__pycache__" and not p.name.startswith("."))
    not_packages = sorted(f"{layer}/" for layer in LAYERS if not (PACKAGE / layer / "__init__.py").is_file())
    assert not stray and not not_packages, (
        f"gitrepro/ should hold only {', '.join(sorted(allowed))}; "
        f"stray: {', '.join(stray) or 'none'}; "
        f"layer directories without __init__.py: {', '.join(not_packages) or 'none'}")


def test_no_module_is_over_500_lines():
    long = sorted(((len(path.read_text().splitlines()), str(path.relative_to(ROOT))) for path in MODULES.values()),
                  reverse=True)
    long = [f"{name}: {n} lines" for n, name in long if n > MAX_MODULE_LINES]
    assert not long, f"{len(long)} module(s) over {MAX_MODULE_LINES} lines:\n  " + "\n  ".join(long)


def functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def test_no_function_is_over_60_lines():
    long = []
    for name, path in MODULES.items():
        for qualname, node in functions(parse(path)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append((lines, f"{name}.{qualname} ({path.relative_to(ROOT)}:{node.lineno}): {lines} lines"))
    assert not long, (f"{len(long)} function(s) over {MAX_FUNCTION_LINES} lines:\n  "
                      + "\n  ".join(text for _, text in sorted(long, reverse=True)))


# ---------------------------------------------------------------- classes

def classes(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every class, nested ones (in classes or functions) included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield prefix + node.name, node
            yield from classes(node, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from classes(node, f"{prefix}{node.name}.<locals>.")
        else:
            yield from classes(node, prefix)


def test_no_two_classes_share_a_name():
    by_name: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for qualname, node in classes(parse(path)):
            by_name.setdefault(node.name, []).append(f"{name}.{qualname} ({path.relative_to(ROOT)}:{node.lineno})")
    collisions = [f"{cls} x{len(where)}: " + ", ".join(where) for cls, where in sorted(by_name.items())
                  if len(where) > 1]
    assert not collisions, f"{len(collisions)} class name(s) defined more than once:\n  " + "\n  ".join(collisions)


def defined_classes(module) -> list[type]:
    """Classes defined in `module` (not imported into it), and the classes nested in them."""
    found, todo = [], [v for v in vars(module).values() if inspect.isclass(v) and v.__module__ == module.__name__]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo += [v for v in vars(cls).values() if inspect.isclass(v) and v.__module__ == module.__name__]
    return found


def test_every_exception_derives_from_gitrepro_error():
    from gitrepro.errors import GitreproError

    outside, unimportable = [], []
    for name in MODULES:
        if name == "gitrepro.__main__":
            continue   # runs the CLI on import as __main__ only, but holds no classes either way
        try:
            module = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - reported with the others
            unimportable.append(f"{name}: {type(e).__name__}: {e}")
            continue
        for cls in defined_classes(module):
            if issubclass(cls, Exception) and not issubclass(cls, GitreproError):
                bases = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in cls.__bases__)
                outside.append(f"{name}.{cls.__qualname__} (bases: {bases})")
    local = _local_exception_classes()
    assert not outside and not unimportable and not local, (
        f"{len(outside) + len(local)} exception class(es) outside gitrepro.errors.GitreproError:\n  "
        + "\n  ".join(sorted(outside) + local)
        + ("\nmodules that failed to import:\n  " + "\n  ".join(unimportable) if unimportable else ""))


def _local_exception_classes() -> list[str]:
    """Exception classes defined inside functions cannot be reached by importing; read them from
    the source (a base named like an exception and not GitreproError or a known subclass)."""
    found = []
    for name, path in MODULES.items():
        for qualname, node in classes(parse(path)):
            if "<locals>" not in qualname:
                continue
            bases = [ast.unparse(b) for b in node.bases]
            if any(b.split(".")[-1] in ("Exception", "BaseException", "RuntimeError", "ValueError", "OSError")
                   for b in bases):
                found.append(f"{name}.{qualname} (bases: {', '.join(bases)}; defined in a function)")
    return found
