"""Commands for remotes: `remote add/list/remove/default/set-url`, `push`, `fetch`, `pull`, `gc`.

Registered on the main app by `register(app)`. Each command parses, calls one
operation (pull calls two: fetch, then checkout), and renders the result.
"""

from __future__ import annotations

import math
from typing import List, Optional

import typer

from gitrepro.cli.common import JsonOpt, out, print_json, progress_bar
from gitrepro.cli.paths import Shown
from gitrepro.cli.render import checkout_lines, human_rate, human_size
from gitrepro.remote import datafetch as fetch_op
from gitrepro.remote import gc as gc_op
from gitrepro.remote import push as push_op
from gitrepro.remote import settings as remote_settings
from gitrepro.store.repo import Repo
from gitrepro.worktree import checkout as checkout_op
from gitrepro.util.words import plural

remote_app = typer.Typer(no_args_is_help=True, help="Configure remotes (stored in gitrepro.toml).")

RemoteOpt = typer.Option(None, "--remote", "-r", help="Remote name (default: [remote] default, else the only remote).")
JobsOpt = typer.Option(None, "--jobs", "-j", min=1, max=256,
                       help="Concurrent transfers, 1 to 256 (default: the remote's `jobs`, 8).")


def _split(repo: Repo, args: list[str] | None, remote: str | None) -> tuple[str | None, list[str]]:
    """`[REMOTE] REV...`: a first word naming a configured remote is the remote."""
    args = list(args or [])
    if remote is None and args and args[0] in remote_settings.remotes(repo.project):
        remote = args.pop(0)
    return remote, args


def _seconds(value: float | None) -> float | None:
    """A duration option: a finite number of seconds, 0 or more (refused before anything runs)."""
    if value is not None and not 0 <= value < math.inf:
        raise typer.BadParameter(f"{value} is not a number of seconds, 0 or more")
    return value


def _rate(n: int, seconds: float) -> str:
    return human_rate(n, seconds)   # binary units, as every other figure (cli.render)


@remote_app.command("add")
def remote_add(name: str = typer.Argument(..., help="Remote name, e.g. origin."),
               url: str = typer.Argument(..., help="s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX, "
                                                   "ssh://[USER@]HOST[:PORT]/PATH or a directory."),
               endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url",
                                                          help="S3-compatible, GCS or Azure (Azurite) endpoint."),
               region: Optional[str] = typer.Option(None, "--region", help="S3 region (default us-east-1)."),
               account: Optional[str] = typer.Option(None, "--account", help="Azure storage account name."),
               jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, max=256,
                                                  help="Concurrent transfers, 1 to 256."),
               default: bool = typer.Option(False, "--default", help="Make it the default remote.")) -> None:
    """Add a remote to gitrepro.toml (credentials come from the environment, never the file)."""
    repo = Repo.find()
    s = remote_settings.add(repo, name, url, endpoint_url=endpoint_url, region=region, account=account, jobs=jobs,
                            make_default=default)
    current = remote_settings.default_name(Repo.find().project)
    out.print(f"added remote {s.name} -> {s.url}; commit gitrepro.toml to share it"
              + (f"\n{current} is the default remote (change it with `gitrepro remote default NAME`)"
                 if current and current != s.name else ""), markup=False)


@remote_app.command("default")
def remote_default(name: Optional[str] = typer.Argument(None, help="Remote to make the default (none: show it).")
                   ) -> None:
    """Show or set the remote push, fetch, pull, gc and verify use when given none."""
    repo = Repo.find()
    if name is not None:
        remote_settings.set_default(repo, name)
    current = remote_settings.default_name(Repo.find().project)
    out.print(f"default remote: {current}" if current else "no default remote (`gitrepro remote default NAME`)",
              markup=False)


@remote_app.command("set-url")
def remote_set_url(name: str = typer.Argument(..., help="Remote to change."),
                   url: str = typer.Argument(..., help="Its new url (checked like `remote add`).")) -> None:
    """Point a remote at another url (the data is not moved)."""
    s = remote_settings.set_url(Repo.find(), name, url)
    out.print(f"remote {s.name} -> {s.url}; commit gitrepro.toml to share it", markup=False)


@remote_app.command("list")
def remote_list(as_json: bool = JsonOpt) -> None:
    """List the configured remotes."""
    project = Repo.find().project
    found, default = remote_settings.remotes(project), remote_settings.default_name(project)
    if as_json:
        return print_json({"default": default, "remotes": list(found.values())})
    for s in found.values():
        extra = f" (endpoint {s.endpoint_url})" if s.endpoint_url else ""
        out.print(f"{'*' if s.name == default else ' '} {s.name:<12} {s.url}{extra}", markup=False)


@remote_app.command("remove")
def remote_remove(name: str = typer.Argument(..., help="Remote to remove from gitrepro.toml.")) -> None:
    """Remove a remote from gitrepro.toml (the data on it is left alone)."""
    remote_settings.remove(Repo.find(), name)
    out.print(f"removed remote {name}")


def push(args: Optional[List[str]] = typer.Argument(None, metavar="[REMOTE] [REV]...",
                                                    help="Remote, then commits (default HEAD; ancestors included)."),
         all_refs: bool = typer.Option(False, "--all", help="Every branch and tag."),
         remote: Optional[str] = RemoteOpt, jobs: Optional[int] = JobsOpt, as_json: bool = JsonOpt) -> None:
    """Upload the packs these commits' data needs and the remote lacks."""
    repo = Repo.find()
    remote, revs = _split(repo, args, remote)
    with progress_bar("push", None, not as_json) as advance:
        r = push_op.push(repo, remote, revs, all_refs=all_refs, jobs=jobs, progress=advance)
    if as_json:
        return print_json({**vars(r), "rate": r.rate})
    out.print(f"{r.remote}: {plural(r.manifests, 'manifest')}, {r.manifests_on_remote} already there; "
              f"uploaded {plural(r.packs_uploaded, 'pack')}, {_rate(r.bytes_uploaded, r.seconds)}"
              + (f"; rewrote {plural(r.indexes_repaired, 'damaged pack index', 'damaged pack indexes')}"
                 if r.indexes_repaired else "")
              + (f"; {plural(r.manifests_imported, 'imported dataset version')} not here left to "
                 f"{'its source' if r.manifests_imported == 1 else 'their sources'}" if r.manifests_imported else ""))


def fetch(args: Optional[List[str]] = typer.Argument(None, metavar="[REMOTE] [REV]...",
                                                     help="Remote, then commits (default HEAD)."),
          remote: Optional[str] = RemoteOpt, jobs: Optional[int] = JobsOpt, as_json: bool = JsonOpt) -> None:
    """Download what these commits need into the local store."""
    repo = Repo.find()
    remote, revs = _split(repo, args, remote)
    with progress_bar("fetch", None, not as_json) as advance:
        r = fetch_op.fetch(repo, remote, revs, jobs=jobs, progress=advance)
    if as_json:
        return print_json({**vars(r), "rate": r.rate})
    for one in ([r] if r.remote else []) + r.sources:
        out.print(f"{_fetched_from(one)}: {plural(one.manifests, 'manifest')}; fetched "
                  f"{plural(one.blobs_fetched, 'chunk')} in {plural(one.packs_downloaded, 'whole pack')} and "
                  f"{plural(one.ranges_downloaded, 'range')}, {_rate(one.bytes_downloaded, r.seconds)}",
                  markup=False)


def _fetched_from(r: fetch_op.FetchResult) -> str:
    """The repository's own remote by name; an imported dataset's source's remote by URL too."""
    return r.remote if r.source_url is None else f"{r.remote} of {r.source_url} (imported)"


def pull(remote: Optional[str] = typer.Argument(None, help="Remote (default: the default remote)."),
         force: bool = typer.Option(False, "--force", "-f", help="Discard local changes that are not snapshotted."),
         jobs: Optional[int] = JobsOpt, as_json: bool = JsonOpt) -> None:
    """Fetch what the working tree's pointers need, then check it out."""
    repo = Repo.find()
    with progress_bar("fetch", None, not as_json) as advance:
        fetched = fetch_op.fetch_worktree(repo, remote, jobs=jobs, progress=advance)
    with progress_bar("checkout", None, not as_json) as advance:   # its own bar: bytes written
        fetch_row = advance.row("fetch") if advance else None   # chunks the fetch did not bring (rare)
        result = checkout_op.checkout(repo, None, force=force, progress=advance,
                                      fetch=fetch_op.make_fetcher(repo, remote, progress=fetch_row))
    if as_json:
        return print_json({"fetch": fetched, "checkout": result})
    for one in ([fetched] if fetched.remote else []) + fetched.sources:
        out.print(f"{_fetched_from(one)}: fetched {plural(one.blobs_fetched, 'chunk')}, "
                  f"{_rate(one.bytes_downloaded, fetched.seconds)}", markup=False)
    for line in checkout_lines(result, Shown(repo.root)):
        out.print(line, markup=False)


def gc(dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would be removed."),
       remote: Optional[str] = typer.Option(None, "--remote", help="Also sweep this remote."),
       grace: Optional[float] = typer.Option(None, "--grace", callback=lambda v: _seconds(v),
                                             help="Seconds: never touch packs younger than this (default: one hour)."),
       as_json: bool = JsonOpt) -> None:
    """Remove data that no ref, reflog entry, stash, index, worktree or run record reaches."""
    r = gc_op.gc(Repo.find(), dry_run=dry_run, grace=gc_op.GRACE if grace is None else grace, remote_name=remote, sweep_remote=remote is not None)
    if as_json:
        return print_json(r)
    verb = "would free" if dry_run else "freed"
    for where, actions in (("local", r.local), (r.remote, r.remote_actions)):
        for a in actions:
            out.print(f"{where}: {a.action} pack {a.pack} ({human_size(a.size)}, frees {human_size(a.freed)})")
    for note in r.notes:
        out.print(f"note: {note}")
    out.print(f"{plural(r.manifests, 'reachable manifest')}; local: {verb} {human_size(r.local_freed)} in "
              f"{plural(len(r.local), 'pack')}"
              + (f"; remote {r.remote}: {verb} {human_size(r.remote_freed)} in {plural(len(r.remote_actions), 'pack')}"
                 if r.remote else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(remote_app, name="remote")
    for command in (push, fetch, pull, gc):
        app.command()(command)
