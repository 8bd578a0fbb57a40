"""The local store's layout: the name of every file and directory under `<git common dir>/gitrepro/`.

Spelled here and nowhere else (docs/design.md, "Store layout (store version 1)"); `Store`
creates, locks and writes what these name. Names only, so the start-up path of `status`,
which finds a dataset's stat cache through here, loads none of the store's heavier modules
(sqlite3 and the pack format cost ~10 ms). Imports only pathlib and hashing.
"""

from __future__ import annotations

import os
from pathlib import Path

from gitrepro.formats.hashing import hash_bytes

STORE_DIR = "gitrepro"                 # in the git common dir, so linked worktrees share one store
CONFIG_FILE = "config.toml"            # the store config: its presence means a store exists
INDEX_FILE = "index.sqlite"
PACKS_DIR = "packs"                    # packs/<id[:2]>/<id>.pack
TMP_DIR = "tmp"                        # packs being written, before they are published
STATCACHE_DIR = "statcache"            # statcache/<key>.stat and <key>.entries
REMOTE_CACHE_DIR = "remote-cache"      # rebuildable hints about remotes
CHANGES_DIR = "changes"                # changes/<manifest[:2]>/<manifest>.<base>: what a version adds (a hint)
PROOFS_DIR = "proofs"                  # proofs/<digest[:2]>/<digest>: large-file hashes proven (a hint)
LOCK_FILE = "lock"
LOG_FILE = "log"                       # tracebacks of unexpected errors
DAMAGED_DIR = "damaged"                # packs `fsck --repair` salvaged and moved out of packs/
CREATED_DIRS = (PACKS_DIR, TMP_DIR, STATCACHE_DIR)   # made with the store


def store_dir(common_dir: Path) -> Path:
    return common_dir / STORE_DIR


def config_file(store: Path) -> Path:
    return store / CONFIG_FILE


def index_file(store: Path) -> Path:
    return store / INDEX_FILE


def packs_dir(store: Path) -> Path:
    return store / PACKS_DIR


def pack_file(store: Path, pack_id: str) -> Path:
    return store / PACKS_DIR / pack_id[:2] / f"{pack_id}.pack"


def damaged_pack_file(store: Path, pack_id: str) -> Path:
    return store / DAMAGED_DIR / f"{pack_id}.pack"


def tmp_dir(store: Path) -> Path:
    return store / TMP_DIR


def remote_cache_dir(store: Path) -> Path:
    return store / REMOTE_CACHE_DIR


def changes_dir(store: Path) -> Path:
    return store / CHANGES_DIR


def change_file(store: Path, manifest: str, base: str) -> Path:
    return store / CHANGES_DIR / manifest[:2] / f"{manifest}.{base}"


def proof_file(store: Path, digest: str) -> Path:
    return store / PROOFS_DIR / digest[:2] / digest


def lock_file(store: Path) -> Path:
    return store / LOCK_FILE


def log_file(store: Path) -> Path:
    return store / LOG_FILE


def statcache_dir(store: Path) -> Path:
    return store / STATCACHE_DIR


def statcache_files(store: Path, root: Path, dataset: str) -> tuple[Path, Path]:
    """The stat table and entries files of one dataset of the worktree at `root`."""
    # Keyed by worktree too: `git worktree`s share the store but not their files.
    key = hash_bytes(os.fsencode(f"{root}\0{dataset}")).hex()[:32]
    base = store / STATCACHE_DIR / key
    return base.with_suffix(".stat"), base.with_suffix(".entries")
