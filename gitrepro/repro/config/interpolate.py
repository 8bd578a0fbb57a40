"""Interpolation of `${a.b}` references over a merged config tree (docs/config.md,
"Interpolation: `${a.b}`").
"""

from __future__ import annotations

import copy
import re

from gitrepro.repro.config.keys import (KeyPath, ConfigError, format_key, has_path, kind_of, origin_of, parse_key,
                                        stringify, value_at)

REF_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
WHOLE_REF_RE = re.compile(r"\$\{([^}]*)\}")


class Interpolator:
    """Expands `${a.b}` references over the merged tree; `$${` is a literal `${`.

    A whole-string reference keeps the target's type; an embedded one is
    stringified. Each key is expanded once (memoised); a key met again while it
    is being expanded is a cycle.
    """

    def __init__(self, values: dict, origins: dict):
        self.values, self.origins = values, origins
        self.done: dict[KeyPath, object] = {}
        self.stack: list[KeyPath] = []

    def run(self) -> dict:
        return self.at(())

    def at(self, path: KeyPath):
        if path in self.done:
            return self.done[path]
        if path in self.stack:
            cycle = " -> ".join(format_key(p) for p in self.stack[self.stack.index(path):] + [path])
            referrer = self.stack[-1]
            raise ConfigError(f"{origin_of(self.origins, referrer)}: {format_key(referrer)}: "
                              f"interpolation cycle {cycle}")
        self.stack.append(path)
        node = value_at(self.values, path)
        if isinstance(node, dict):
            result = {k: self.at(path + (k,)) for k in node}
        else:
            result = self.value(path, node)
        self.stack.pop()
        self.done[path] = result
        return result

    def value(self, path: KeyPath, node):
        if isinstance(node, list):
            return [self.value(path, item) for item in node]
        if isinstance(node, dict):   # a table inside an array
            return {k: self.value(path, v) for k, v in node.items()}
        if not isinstance(node, str):
            return node
        whole = WHOLE_REF_RE.fullmatch(node)
        if whole:
            return copy.deepcopy(self.target(path, whole.group(1)))
        return REF_RE.sub(lambda m: self.embed(path, m), node)

    def embed(self, path: KeyPath, m: re.Match) -> str:
        if m.group(0) == "$${":
            return "${"
        value = self.target(path, m.group(1))
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{origin_of(self.origins, path)}: {format_key(path)}: ${{{m.group(1)}}} is a "
                              f"{kind_of(value)} and cannot be embedded in a string; make it the whole value")
        return stringify(value)

    def target(self, path: KeyPath, ref: str):
        where = f"{origin_of(self.origins, path)}: {format_key(path)}"
        try:
            target = parse_key(ref.strip(), where)
        except ConfigError:
            raise ConfigError(f"{where}: ${{{ref}}} is not a reference like ${{optim.lr}}") from None
        if not has_path(self.values, target):
            raise ConfigError(f"{where}: unknown interpolation target ${{{ref}}}")
        return self.at(target)
