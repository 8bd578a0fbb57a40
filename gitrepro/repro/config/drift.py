"""The drift check: is a resolved file still what its recorded sources resolve to now? Used by
`gitrepro config check`, the commit hook, `verify`, and `load_config` before a run trains
(docs/config.md, "Drift check").
"""

from __future__ import annotations

import copy
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats import pointer
from gitrepro.formats.hashing import hash_bytes
from gitrepro.repro.config.keys import ConfigError, flatten, same_value
from gitrepro.repro.config.resolve import (NotAFile, ReadFile, compute, default_output_rel, locate, names_output,
                                           read_pointer)
from gitrepro.repro.config.resolved import ResolvedConfig, content_hash, load, parse_resolved

ENV_VAR = "GITREPRO_CONFIG"


DRIFT_CODES = ("edited", "source-missing", "source-changed", "data-missing", "data-changed", "data-added",
                 "stale", "unresolvable")


@dataclass(frozen=True)
class Drift:
    code: str      # one of DRIFT_CODES
    path: str      # the repo-relative file or dataset the finding is about
    message: str


class StaleConfig(ConfigError):
    def __init__(self, message: str, findings: list[Drift]):
        super().__init__(message)
        self.findings = findings


def check(path: str | os.PathLike, *, read_file: ReadFile | None = None) -> list[Drift]:
    """Drift between a resolved file and what its recorded sources resolve to now.

    Without `read_file`, `path` is a worktree path and files are read from the
    worktree. With it, `path` is repo-relative and every read (the resolved file,
    sources, pointers) goes through `read_file`, e.g. blobs of the staged index.
    Returns [] when nothing drifted.
    """
    rel, read = locate(path, read_file)
    data = read(rel)
    if data is None:
        raise ConfigError(f"{rel}: no such resolved config")
    rc = parse_resolved(data, Path(rel))
    return _drift(rc, rel, read)


def load_config(path: str | os.PathLike | None = None) -> dict:
    """The values of a resolved, up-to-date config for a training script.

    `path` defaults to $GITREPRO_CONFIG (set by `gitrepro run`). An unresolved
    source or a stale resolved file is refused, so a run never silently trains
    on a config that differs from what was committed.
    """
    target = path if path is not None else os.environ.get(ENV_VAR)
    if not target:
        raise ConfigError(f"no config given: pass a path to load_config() or set {ENV_VAR} (gitrepro run sets it)")
    rc = load(target)
    findings = check(target)
    if findings:
        more = f" (and {len(findings) - 1} more; see `gitrepro config check {target}`)" if len(findings) > 1 else ""
        raise StaleConfig(f"{target} is stale: {findings[0].message}{more}", findings)
    return copy.deepcopy(rc.values)


def _drift(rc: ResolvedConfig, rel: str, read: ReadFile) -> list[Drift]:
    hint = f"re-run `{_resolve_command(rc, rel)}`"
    findings = []
    if content_hash(rc.values) != rc.hash:
        findings.append(Drift("edited", rel, f"{rel} was edited by hand (its values no longer match "
                                               f"the recorded hash); {hint}"))
    for src, digest in rc.sources.items():
        try:
            data = read(src)
        except NotAFile:
            data = None        # a source replaced by a directory is gone as a source
        if data is None:
            findings.append(Drift("source-missing", src, f"source {src} of {rel} is gone; {hint}"))
        elif hash_bytes(data).hex() != digest:
            findings.append(Drift("source-changed", src, f"source {src} changed after {rel} was resolved; {hint}"))
    findings += _data_drift(rc, rel, read, hint)
    return findings + _recompute_drift(rc, rel, read, hint)


def _data_drift(rc: ResolvedConfig, rel: str, read: ReadFile, hint: str) -> list[Drift]:
    findings = []
    for dataset, manifest in rc.data_pointers.items():
        try:
            ptr = read_pointer(dataset, read)
        except pointer.BadPointer as e:
            findings.append(Drift("data-changed", dataset, f"{e}; {hint}"))
            continue
        if ptr is None:
            findings.append(Drift("data-missing", dataset, f"dataset {dataset} used by {rel} is no longer "
                                                             f"tracked (no {dataset}.gitrepro); {hint}"))
        elif ptr.manifest != manifest:
            findings.append(Drift("data-changed", dataset, f"dataset {dataset} now points at manifest "
                                                             f"{ptr.manifest[:12]}, not {manifest[:12]} as when "
                                                             f"{rel} was resolved; {hint}"))
    return findings


def _recompute_drift(rc: ResolvedConfig, rel: str, read: ReadFile, hint: str) -> list[Drift]:
    replay = rc.seed if rc.seed_source in ("auto", "argument") else None
    try:
        fresh = compute(rc.source, rc.overrides, replay, rc.force, read)
    except GitreproError as e:
        return [Drift("unresolvable", rc.source, f"{rc.source} no longer resolves: {e}")]
    findings = []
    if fresh.hash != rc.hash:
        d = _flat_diff(rc.values, fresh.values)
        keys = ", ".join(d[:5]) + (", ..." if len(d) > 5 else "")
        findings.append(Drift("stale", rel, f"{rel} differs from what its sources resolve to now "
                                              f"(keys: {keys or 'none'}); {hint}"))
    for dataset in sorted(d for d in fresh.data.keys() - rc.data_pointers.keys() if not names_output(d, rc.outputs)):
        findings.append(Drift("data-added", dataset, f"{rel} names dataset {dataset}, which is tracked now "
                                                       f"but was not when resolved; {hint}"))
    return findings


def _resolve_command(rc: ResolvedConfig, rel: str) -> str:
    parts = ["gitrepro config resolve", shlex.quote(rc.source), *map(shlex.quote, rc.overrides)]
    if rc.seed_source in ("auto", "argument"):
        parts.append(f"--seed {rc.seed}")
    if rc.force:
        parts.append("--force")
    if rel != default_output_rel(rc.source):
        parts.append(f"-o {shlex.quote(rel)}")
    return " ".join(parts)


def _flat_diff(a: dict, b: dict) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    return [k for k in sorted(fa.keys() | fb.keys()) if k not in fa or k not in fb or not same_value(fa[k], fb[k])]
