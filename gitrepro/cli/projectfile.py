"""gitrepro.toml as every command sees it: checked before a command that reads it runs, and
whether it is committed (`add` and `init` say to commit it). Shared by the full CLI (`app`,
`core`) and the start-up fast path (`fast`), so it loads neither typer nor rich.
"""

from __future__ import annotations

from gitrepro.errors import GitreproError
from gitrepro.formats.chunker import BadChunkerParams
from gitrepro.formats.project import PROJECT_FILE, ProjectError
from gitrepro.git import plumbing
from gitrepro.store.repo import Repo


def check_project() -> None:
    """A broken gitrepro.toml (invalid TOML, a bad [chunker] value) is the command's error, even
    when the store exists and the command would not otherwise look at the chunker settings."""
    try:
        repo = Repo.find()
    except GitreproError:
        return   # outside a repository: the command says so itself, if it needs one
    try:
        repo.project.chunker()
    except BadChunkerParams as e:
        raise ProjectError(f"{PROJECT_FILE}: bad [chunker] ({e}); fix it and retry") from None


def project_committed(repo: Repo) -> bool:
    """gitrepro.toml is absent, or committed as it is (it holds the chunker settings every clone needs)."""
    if not (repo.root / PROJECT_FILE).exists():
        return True
    return not plumbing.git("status", "--porcelain", "--untracked-files=all", "--", f":(literal){PROJECT_FILE}",
                            cwd=repo.root).strip()
