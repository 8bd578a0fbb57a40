"""A start-up fast path for `gitrepro status`, which editors, prompts and scripts run constantly.

Importing typer and rich costs more than checking 50,000 unchanged files, so a
plain `gitrepro status [--json] [DATASET...]` is parsed here by hand and
rendered as plain text; anything else (help, unknown options) falls through to
the full CLI. `cli.py` uses the same `status_lines`, so both paths print the same.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from . import status as status_op
from .errors import GitreproError
from .repo import Repo


def status_lines(results: list[status_op.DatasetStatus]) -> list[str]:
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


def try_fast(argv: list[str]) -> int | None:
    """Run `status` (or a git hook) without the full CLI when the arguments are plain;
    None means "not handled"."""
    if argv and argv[0] == "hook-impl" and "--help" not in argv:
        from . import hooks  # loaded only for hooks: `status` must not pay for the policy's imports

        return hooks.main(argv[1:])
    if not argv or argv[0] != "status":
        return None
    args = argv[1:]
    as_json = "--json" in args
    datasets = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in datasets):
        return None
    try:
        results = status_op.status(Repo.find(), datasets or None)
    except GitreproError as e:
        sys.stderr.write(f"gitrepro: error: {e}\n")
        return 1
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2, sort_keys=True))
    else:
        sys.stdout.write("".join(line + "\n" for line in status_lines(results)))
    return 0
