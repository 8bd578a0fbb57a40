"""`gitrepro migrate dvc`: carry out a migration plan (dvcmigrate.plan) as one staged change the
user reviews and commits. See docs/dvc.md, "What `migrate dvc` does".

Write order (the crash contract): data DVC's cache holds is written into the working tree (each
file checked against its md5), every dataset and output is snapshotted (store, then pointers and
root .gitignore entries), DVC's .gitignore lines are dropped, and only then do DVC's files leave
the index; gitrepro.toml's stages and the run records imported from dvc.lock come last. Until
DVC's files leave the index the DVC project is whole. Nothing in DVC's cache or remote is written
or deleted; .dvc/ stays on disk (ignored), for checkouts of older commits.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from gitrepro.formats.pointer import pointer_path_for
from gitrepro.formats.project import PROJECT_FILE
from gitrepro.formats.runrecord import CodeState, RunRecord, new_run_id
from gitrepro.git import plumbing, tracking
from gitrepro.repro import codeid
from gitrepro.repro import params as paramsmod
from gitrepro.repro.dvcmigrate import dvccache
from gitrepro.repro.dvcmigrate.plan import DVC_DIR, Migration, StagePlan, objects_for, plan
from gitrepro.repro.run import write_record
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write
from gitrepro.worktree import snapshot

IMPORTED = "dvc.lock"
DVC_IGNORE = f"/{DVC_DIR}/"
ENVIRONMENT = {"python": "unknown", "packages": {},
               "note": "imported from dvc.lock: DVC does not record the environment a stage ran in"}


def migrate(root: Path, *, dry_run: bool = False) -> Migration:
    """Plan the migration of the DVC project at `root`; unless `dry_run`, carry it out and stage it."""
    m = plan(root)
    if dry_run:
        return m
    repo = Repo.find(root)
    try:
        repo.init()
        _write_data(repo, m)
        _drop_dvc_ignores(root, m)
        _leave_git(root, m)
        with atomic_write(root / PROJECT_FILE) as f:
            f.write(m.project_text.encode())
        repo.close()
        repo = Repo.find(root)                 # the stage table just written
        plumbing.git("add", "--", PROJECT_FILE, ".gitignore", *_pointers(m), *m.ignore_kept, cwd=root)
        m.records = _import_records(repo, m)
        if m.records:
            plumbing.git("add", "--", *m.records, cwd=root)
    finally:
        repo.close()
    m.applied = True
    return m


def _write_data(repo: Repo, m: Migration) -> None:
    objects = objects_for(repo.root)
    for item in m.data:
        if item.source == "DVC cache":
            dvccache.materialise(objects, item.md5, repo.root, item.path)
    tracked = [d.path for d in m.data if d.git_tracked]
    if tracked:                                       # DVC's `cache: false` files become datasets
        plumbing.git("rm", "-q", "--cached", "--", *tracked, cwd=repo.root)
    if m.data:
        snapshot.add(repo, [str(repo.root / d.path) for d in m.data])


def _pointers(m: Migration) -> list[str]:
    return [pointer_path_for(d.path) for d in m.data]


def _drop_dvc_ignores(root: Path, m: Migration) -> None:
    """Remove DVC's lines for its data from each .gitignore beside it (gitrepro's own are in the
    root .gitignore now); add .dvc/ to the root .gitignore (DVC's cache stays on disk)."""
    m.ignore_kept = []
    for ignore, lines in sorted(m.ignore_edits.items()):
        path = root / ignore
        kept = [line for line in path.read_text().splitlines() if line not in lines]
        if any(line.strip() for line in kept) or ignore == ".gitignore":
            with atomic_write(path) as f:
                f.write("".join(line + "\n" for line in kept).encode())
            m.ignore_kept.append(ignore)
        else:
            os.unlink(path)
            if plumbing.git("ls-files", "--", ignore, cwd=root):
                plumbing.git("rm", "-q", "--cached", "--", ignore, cwd=root)
    path = root / ".gitignore"
    text = path.read_text() if path.is_file() else ""
    if DVC_IGNORE not in text.splitlines():
        note = "# DVC's cache and config, kept for checkouts of commits before `gitrepro migrate dvc`\n"
        with atomic_write(path) as f:
            f.write((text + ("" if not text or text.endswith("\n") else "\n") + note + DVC_IGNORE + "\n").encode())


def _leave_git(root: Path, m: Migration) -> None:
    """DVC's files leave the index: dvc.yaml, dvc.lock, .dvc files, .dvcignore are deleted (git keeps
    them in history); .dvc/config and .dvc/.gitignore stay on disk."""
    index = {e.path for e in plumbing.ls_staged(cwd=root)}
    gone = [p for p in m.removed if p in index]
    if gone:
        plumbing.git("rm", "-q", "-f", "--", *gone, cwd=root)
    for p in m.removed:
        if p not in index and os.path.lexists(root / p):
            os.unlink(root / p)
    dvc_dir = [p for p in m.untracked if p.startswith(DVC_DIR + "/") and p in index]
    if dvc_dir:
        plumbing.git("rm", "-q", "--cached", "--", *dvc_dir, cwd=root)


def _import_records(repo: Repo, m: Migration) -> list[str]:
    """A run record for each stage dvc.lock describes as it is now, marked `imported`."""
    blobs = {e.path: e.sha for e in plumbing.ls_staged(cwd=repo.root) if e.mode != "160000"}
    head = plumbing.head_commit(repo.root)
    pointers = {t.pointer.path: t.pointer.manifest for t in tracking.in_worktree(repo.root)}
    now = datetime.now(timezone.utc).replace(microsecond=0)
    written = []
    for stage in m.stages:
        if stage.not_imported:
            continue
        rec = _record(repo, stage, blobs, head, pointers, now)
        write_record(repo.root, rec)
        written.append(rec.path)
    return written


def _record(repo: Repo, stage: StagePlan, blobs: dict[str, str], head: str, pointers: dict[str, str],
            now: datetime) -> RunRecord:
    code = stage.code or [codeid.WHOLE_TREE]
    values = paramsmod.values_for(stage.name, stage.params, lambda f: paramsmod.read_params_file(repo.root, f))
    ids = codeid.code_ids(blobs, code, frozenset(stage.params))
    return RunRecord(new_run_id(now), stage.command, CodeState(head, ids=ids), None, None,
                     {d: pointers[d] for d in stage.inputs}, {o: pointers[o] for o in stage.outputs},
                     dict(ENVIRONMENT), now, now, 0.0, 0, stage.cwd, stage=stage.name, params=values,
                     imported=IMPORTED)
