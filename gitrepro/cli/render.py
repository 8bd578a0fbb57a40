"""Plain-text rendering of command results, shared by the full CLI (`app`) and the start-up fast
path (`fast`): so it imports nothing, not even rich, and both paths print the same lines.
"""

from __future__ import annotations


def status_lines(results: list) -> list[str]:
    """The text of `status` (a list of unchanged.DatasetStatus)."""
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
    """The summary of `add` (a list of unchanged.SnapshotResult), one line per dataset."""
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
