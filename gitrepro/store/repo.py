"""The repository context: where the worktree, git dir and store are, and the project
settings in the committed `gitrepro.toml`. See docs/design.md, "Project settings".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gitrepro.errors import GitreproError
from gitrepro.formats.project import DEFAULT_PROJECT, PROJECT_FILE, Project, parse_project
from gitrepro.util.fsutil import atomic_write
from gitrepro.git.plumbing import RepoPaths, find_repo
from gitrepro.store import layout

if TYPE_CHECKING:  # imported in `Repo.store`: a no-op `status` never opens the store (see there)
    from gitrepro.store.store import Store

class Repo:
    def __init__(self, paths: RepoPaths):
        self.paths = paths
        self._store: Store | None = None
        self._project: Project | None = None

    @classmethod
    def find(cls, start: str | os.PathLike | None = None) -> "Repo":
        return cls(find_repo(start))

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def store_path(self) -> Path:
        return layout.store_dir(self.paths.common_dir)

    @property
    def project(self) -> Project:
        if self._project is None:
            path = self.root / PROJECT_FILE
            self._project = parse_project(path.read_bytes()) if path.exists() else Project()
        return self._project

    @property
    def store(self) -> Store:
        """The store, created on first use from the committed chunker settings (so a fresh clone just works)."""
        if self._store is None:
            # The one deferred import below the CLI: `status` needs a Repo but never the store, and
            # store.py's imports (sqlite3, the pack format) add ~10 ms (+14 %) to a no-op `status`
            # (CPU, medians of 40 runs).
            from gitrepro.store.store import Store, StoreConfig

            if Store.exists(self.store_path):   # the project file is read only to make one
                self._store = Store.open(self.store_path)
            else:
                self._store = Store.open(self.store_path, create_with=StoreConfig(chunker=self.project.chunker()))
        return self._store

    def init(self) -> bool:
        """Create gitrepro.toml (if absent) and the store; return True if anything was created."""
        created = False
        path = self.root / PROJECT_FILE
        if not path.exists():
            with atomic_write(path) as f:
                f.write(DEFAULT_PROJECT.encode())
            self._project = None
            created = True
        created |= not layout.config_file(self.store_path).exists()
        _ = self.store
        return created

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def relpath(self, path: str | os.PathLike) -> str:
        """A user-given path as a '/'-separated path relative to the worktree root."""
        absolute = Path(os.path.abspath(path))
        try:
            rel = absolute.relative_to(self.root)
        except ValueError:
            raise GitreproError(f"{path} is outside the repository {self.root}") from None
        if not rel.parts:
            raise GitreproError("cannot track the repository root itself; give a data directory or file")
        if rel.parts[0] == ".git":
            raise GitreproError(f"{path} is inside .git")
        return "/".join(rel.parts)


def log_traceback() -> str:
    """Append the exception being handled to `<git common dir>/gitrepro/log`; return where it went.

    Unexpected errors print one line; the details go here for a bug report.
    """
    import traceback  # only on the error path: start-up must not pay for it

    try:
        log = layout.log_file(layout.store_dir(find_repo().common_dir))
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(traceback.format_exc() + "\n")
        return str(log)
    except Exception:  # noqa: BLE001 - logging must never hide the original error
        sys.stderr.write(traceback.format_exc())
        return "the traceback above"
