"""gitrepro: git-native data and config versioning for reproducible ML training.

The package root stays import-light (the CLI's start-up time matters for
`gitrepro status`): the public API in `gitrepro.api` is loaded on first use.
Layers live in subpackages; docs/design.md, "Module map", says which may import which.
"""

import importlib
import importlib.machinery
import sys

_API = ("load_config", "resolve_config", "seed_everything", "show", "log", "diff", "lineage", "reproduce")

# Module paths of gitrepro <= 0.1 that users' code and installed hook shims name:
# `python -m gitrepro.hooks`, `gitrepro.config.ConfigError`, `gitrepro.provenance.to_mermaid`.
_MOVED = {
    "gitrepro.config": "gitrepro.repro.config",
    "gitrepro.hooks": "gitrepro.repro.hooks",
    "gitrepro.provenance": "gitrepro.api",   # to_mermaid, to_dot and the result types
    "gitrepro.seeding": "gitrepro.repro.seeding",
}


class _MovedModules:  # a meta path finder and loader (importlib.abc's bases, and importlib.util, cost start-up)
    """Serves an old module path as the very module object at its new path (so
    `except gitrepro.config.ConfigError` catches what the code raises), and its code
    for `python -m <old path>`."""

    def find_spec(self, name, path=None, target=None):
        if name in _MOVED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(_MOVED[spec.name])

    def exec_module(self, module):
        pass  # already executed under its new name

    def get_code(self, name):
        new = _MOVED[name]
        package = importlib.import_module(new.rpartition(".")[0])
        return importlib.machinery.PathFinder.find_spec(new, package.__path__).loader.get_code(new)


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name):
    if name == "__version__":
        return importlib.import_module("gitrepro.util.version").__version__
    if name in _API:
        return getattr(importlib.import_module("gitrepro.api"), name)
    if f"gitrepro.{name}" in _MOVED:
        return importlib.import_module(f"gitrepro.{name}")
    raise AttributeError(f"module 'gitrepro' has no attribute {name!r}")


__all__ = list(_API)
