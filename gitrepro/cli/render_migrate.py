"""Text of `gitrepro migrate dvc` (a dvcmigrate.plan.Migration) and of a checkout of a commit from
before it (a dvcmigrate.restore.DvcCheckout)."""

from __future__ import annotations


def migration_lines(m) -> list[str]:
    """What the migration did (or, with --dry-run, will do), one line per fact, and what is next."""
    will = "" if m.applied else "would "
    lines = []
    for s in m.stages:
        rename = f" (DVC's {s.dvc_name})" if s.dvc_name != s.name else ""
        record = "record imported from dvc.lock" if not s.not_imported else \
            f"no record: {s.not_imported}; `gitrepro repro` runs it"
        lines.append(f"stage {s.name}{rename}: {record}")
    for d in m.data:
        origin = "written from DVC's cache, md5 checked" if d.source == "DVC cache" else "md5 checked"
        leaves = "; leaves git for a pointer" if d.git_tracked else ""
        lines.append(f"data {d.path} ({d.owner}): {will}snapshot, {origin}{leaves}")
    if m.removed:
        lines.append(f"{will}remove: {', '.join(m.removed)} (git history keeps them)")
    if m.untracked:
        lines.append(f"{will}untrack, kept on disk: {', '.join(m.untracked)}")
    for ignore, dropped in sorted(m.ignore_edits.items()):
        lines.append(f"{ignore}: {will}drop DVC's {', '.join(dropped)}")
    lines.append(f"{will}ignore .dvc/ (DVC's cache and remote are not touched: checkouts of older commits read them)")
    for record in m.records:
        lines.append(f"wrote {record}")
    lines += [f"note: {n}" for n in m.notes]
    lines.append("next: review `git status` and `git diff --cached`, then `git commit`" if m.applied else
                 "next: `gitrepro migrate dvc` to do it")
    return lines


def dvc_checkout_lines(result) -> list[str]:
    where = {"DVC cache": "restored from DVC's cache, md5 checked", "git": "restored from git",
             "up to date": "already up to date"}
    return [f"{d.path}: {where[d.source]} (commit {result.commit[:12]}, from before `migrate dvc`)"
            for d in result.data]
