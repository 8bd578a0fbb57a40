"""Hierarchical TOML configs resolved into one concrete, canonical, hashed file with a seed.

The API of docs/config.md, "API" (also importable as `gitrepro.config`); it never imports
the CLI. The package owns the source syntax and its resolution (`resolve`: `extends`,
`delete`, overrides in `overrides`, `${a.b}` in `interpolate`), the resolved-file format
(`resolved`: the `[gitrepro]` metadata table, version 1), the drift check that the commit
hook and `verify` reuse (`drift`), and dotted keys (`keys`). It imports util, formats, git
and `repro.redact`.
"""

from gitrepro.repro.config.drift import DRIFT_CODES, ENV_VAR, Drift, StaleConfig, check, load_config
from gitrepro.repro.config.keys import ConfigError, flatten, format_key, parse_key, parse_value
from gitrepro.repro.config.resolve import ReadFile, resolve, worktree_reader
from gitrepro.repro.config.resolved import (RESOLVED_SUFFIX, ConfigDiff, ConfigEntry, NotResolved, ResolvedConfig,
                                            canonical_bytes, content_hash, diff, load, parse_resolved, render, show)

Finding = Drift   # its name in gitrepro <= 0.1, which users' code may catch or build; new code says Drift

__all__ = [
    "resolve", "load", "check", "diff", "show", "load_config", "worktree_reader",
    "canonical_bytes", "content_hash", "flatten", "format_key", "parse_key", "parse_value",
    "parse_resolved", "render",
    "ConfigError", "NotResolved", "StaleConfig", "ResolvedConfig", "Drift", "Finding", "ConfigEntry", "ConfigDiff",
    "ReadFile", "ENV_VAR", "RESOLVED_SUFFIX", "DRIFT_CODES",
]
