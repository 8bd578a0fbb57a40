"""gitrepro: git-native data and config versioning for reproducible ML training.

The package root stays import-light (the CLI's start-up time matters for
`gitrepro status`); the public API below is loaded on first use.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_config": ("gitrepro.config", "load_config"),
    "resolve_config": ("gitrepro.config", "resolve"),
    "seed_everything": ("gitrepro.seeding", "seed_everything"),
    "show": ("gitrepro.provenance", "api_show"),
    "log": ("gitrepro.provenance", "api_log"),
    "diff": ("gitrepro.provenance", "api_diff"),
    "lineage": ("gitrepro.provenance", "api_lineage"),
    "reproduce": ("gitrepro.reproduce", "api_reproduce"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'gitrepro' has no attribute {name!r}")


__all__ = list(_LAZY)
