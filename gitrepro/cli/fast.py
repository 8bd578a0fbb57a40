"""A start-up fast path for commands that editors, prompts, scripts and hooks run constantly.

Importing typer and rich costs more than checking 50,000 unchanged files, so a
plain `gitrepro status [--json] [DATASET...]`, an `add` of datasets that have
not changed, and the git hooks are handled here by hand and rendered as plain
text; anything else (help, options, real work needing progress bars) falls
through to the full CLI. `cli.py` renders with the same functions.
"""

from __future__ import annotations

import sys

from gitrepro.errors import GitreproError
from gitrepro.store.repo import Repo


def status_lines(results: list) -> list[str]:
    """The text of `status` (a list of status.DatasetStatus)."""
    if not results:
        return ["no tracked datasets; run `gitrepro add <path>`"]
    lines = []
    for r in results:
        if r.clean:
            lines.append(f"{r.dataset}: clean")
            continue
        lines.append(f"{r.dataset}: {'missing (run `gitrepro checkout`)' if r.missing else 'modified'}")
        lines += [f"  {c.kind:>8}: {r.dataset}/{c.path}" for c in r.changes]
    return lines


def add_lines(results: list) -> list[str]:
    """The summary of `add` (a list of snapshot.SnapshotResult), one line per dataset."""
    lines = [f"{r.dataset}: {r.files} files, {human_size(r.bytes)}; read {human_size(r.bytes_read)} "
             f"({r.files_cached} files unchanged), stored {human_size(r.new_bytes_stored)} new, "
             f"dedup {r.dedup_ratio:.1f}x -> {r.pointer_path}{'' if r.changed else ' (unchanged)'}" for r in results]
    if any(r.changed for r in results):
        lines.append(f"next: git add {' '.join(r.pointer_path for r in results)} .gitignore && git commit")
    return lines


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _fast_add(args: list[str]) -> int | None:
    if not args or any(a.startswith("-") for a in args):
        return None
    from gitrepro.worktree import snapshot  # loaded only for `add`: `status` must not pay for it

    results = snapshot.unchanged(Repo.find(), args)
    if results is None:
        return None
    sys.stdout.write("".join(line + "\n" for line in add_lines(results)))
    return 0


def try_fast(argv: list[str]) -> int | None:
    """Run `status` (or a git hook) without the full CLI when the arguments are plain;
    None means "not handled"."""
    if argv and argv[0] == "hook-impl" and "--help" not in argv:
        from gitrepro.repro import hooks  # loaded only for hooks: `status` must not pay for the policy's imports

        return hooks.main(argv[1:])
    if argv and argv[0] == "add":
        try:
            return _fast_add(argv[1:])
        except GitreproError:
            return None  # let the full CLI report it
    if not argv or argv[0] != "status":
        return None
    args = argv[1:]
    as_json = "--json" in args
    datasets = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in datasets):
        return None
    from gitrepro.worktree import status as status_op  # loaded only for `status`: a no-op `add` must not pay for it

    try:
        results = status_op.status(Repo.find(), datasets or None)
    except GitreproError as e:
        sys.stderr.write(f"gitrepro: error: {e}\n")
        return 1
    if as_json:
        import json

        print(json.dumps([r.as_dict() for r in results], indent=2, sort_keys=True))
    else:
        sys.stdout.write("".join(line + "\n" for line in status_lines(results)))
    return 0
