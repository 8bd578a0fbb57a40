"""Nested tables as flat `a.b.c` keys: the one walker under metrics and params files."""

from __future__ import annotations

from typing import Callable, Iterator


class Leaves:
    """(dotted name, value) of every value that is not a non-empty table, depth first; a name
    that `skip`s is passed over (a table so named is not entered). Bounded: past `max_nodes`
    values visited (`spend` counts more, e.g. the items of a list), `too_many()` is raised: a YAML
    file's aliases can make a small file a huge tree."""

    def __init__(self, doc: dict, max_nodes: int, too_many: Callable[[], Exception],
                 skip: Callable[[str], bool] = lambda name: False):
        self.doc, self.max_nodes, self.too_many, self.skip = doc, max_nodes, too_many, skip
        self.visited = 0

    def spend(self, nodes: int) -> None:
        self.visited += nodes
        if self.visited > self.max_nodes:
            raise self.too_many()

    def __iter__(self) -> Iterator[tuple[str, object]]:
        stack = [("", self.doc)]
        while stack:
            prefix, table = stack.pop()
            for key, value in table.items():
                self.spend(1)
                name = f"{prefix}.{key}" if prefix else str(key)
                if self.skip(name):
                    continue
                if isinstance(value, dict) and value:
                    stack.append((name, value))
                else:
                    yield name, value
