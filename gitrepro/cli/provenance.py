"""Commands for provenance: `show`, `log`, `diff`, `lineage` and `reproduce` (docs/provenance.md).

`reproduce` exits 0 when the outputs are identical, 2 when they differ, 4 when the re-run
failed and 5 when it failed before running (missing or corrupt data, command cannot start).
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Optional

import typer

from gitrepro.cli.common import AFTER_DASHES, BadFormat, JsonOpt, WordsAfterDashes, err, out, print_json
from gitrepro.cli.render import human_size
from gitrepro.repro import provenance as prov_op
from gitrepro.repro import reproduce as repro_op
from gitrepro.store.repo import Repo


def _format(value: str, allowed: tuple[str, ...], as_json: bool) -> str:
    if as_json:
        return "json"
    if value not in allowed:
        raise BadFormat(f"--format must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _print(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- commands

def show(rev: Optional[str] = typer.Argument(None, help="Commit to show (default HEAD)."),
         fmt: str = typer.Option("text", "--format", "-f", help="text, md (audit report) or json."),
         read_data: bool = typer.Option(False, "--read-data", help="Re-hash every chunk the commit names."),
         as_json: bool = JsonOpt) -> None:
    """Everything a commit's training rests on: code, data, config, environment, runs, outputs."""
    fmt = _format(fmt, ("text", "md", "json"), as_json)
    repo = Repo.find()
    result = prov_op.show(repo, rev, read_data=read_data)
    if fmt == "json":
        return print_json(result)
    _print(prov_op.render_markdown(result) if fmt == "md" else "\n".join(show_lines(result)))


def log(ctx: typer.Context, rev_range: Optional[str] = typer.Argument(None, help="Revision range (default HEAD)."),
        as_json: bool = JsonOpt) -> None:
    """Training commits only, one line each: commit, date, config hash, data, seed, exit status, outputs."""
    entries = prov_op.log(Repo.find(), rev_range, ctx.meta.get(AFTER_DASHES, []))
    if as_json:
        return print_json(entries)
    for entry in entries:
        _print(log_line(entry))


def diff(old: str = typer.Argument(..., help="Old commit."), new: str = typer.Argument(..., help="New commit."),
         as_json: bool = JsonOpt) -> None:
    """What changed between two commits: dataset files, config keys, environment packages."""
    result = prov_op.diff(Repo.find(), old, new)
    if as_json:
        return print_json(result)
    for line in diff_lines(result):
        _print(line)


def lineage(rev_range: Optional[str] = typer.Argument(None, help="Revision range (default HEAD)."),
            fmt: str = typer.Option("mermaid", "--format", "-f", help="mermaid, dot or json."),
            as_json: bool = JsonOpt) -> None:
    """The graph dataset versions and configs -> runs -> outputs, across the training commits of a range."""
    fmt = _format(fmt, ("mermaid", "dot", "json"), as_json)
    graph = prov_op.lineage(Repo.find(), rev_range)
    if fmt == "json":
        return print_json(graph)
    _print((prov_op.to_mermaid(graph) if fmt == "mermaid" else prov_op.to_dot(graph)).rstrip("\n"))


def reproduce(rev: str = typer.Argument(..., help="The training commit to reproduce."),
              run: Optional[str] = typer.Option(None, "--run", help="Run id (when the commit has several)."),
              keep: bool = typer.Option(False, "--keep", help="Leave the temporary worktree for inspection."),
              as_json: bool = JsonOpt) -> None:
    """Re-run a recorded run in a fresh temporary worktree and compare its outputs with the record."""
    result = repro_op.reproduce(Repo.find(), rev, run, keep=keep,
                                say=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    if as_json:
        print_json({**dataclasses.asdict(result), "exit_code": result.exit_code})
    else:
        for line in reproduce_lines(result):
            _print(line)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command(cls=WordsAfterDashes)(log)
    app.command()(diff)
    app.command()(lineage)
    app.command()(reproduce)


# ---------------------------------------------------------------- text renderers

def show_lines(p: prov_op.Provenance) -> list[str]:
    c, v = p.commit, p.verification
    lines = [f"commit {c.id}  {c.date}  {c.subject}",
             f"training commit: {', '.join(p.training_paths)}" if p.training else "not a training commit"]
    for r in p.runs:
        lines += _run_lines(r)
    for d in p.datasets:
        lines.append(f"{d.role:<7} {d.path}  manifest {d.manifest[:12]}  {d.files} files  {human_size(d.bytes)}  "
                     f"{'; '.join(d.problems) if d.problems else 'ok'}")
    for cfg in p.configs:
        lines += _config_lines(cfg)
    chunks = "re-hashed" if v.chunks_rehashed is not None else "present (not re-hashed)"
    lines.append(f"verified {v.at}: policy {'passed' if v.policy_ok else 'FAILED'}; "
                 f"{v.manifests_present}/{v.manifests_total} manifests, {v.chunks_present}/{v.chunks_total} chunks "
                 f"{chunks}; configs {'drifted' if v.config_findings else 'no drift'}"
                 f"{'' if v.ok else ' -- PROBLEMS FOUND'}")
    lines += [f"  problem: {x}" for x in v.policy_violations + v.records_bad + v.config_findings + v.problems]
    return lines


def _run_lines(r: prov_op.RunInfo) -> list[str]:
    lines = [f"run {r.id}  exit {r.exit_status}  {r.wall_seconds:.1f} s  seed {r.seed}",
             f"  command  {shlex.join(r.command)}  (in {r.cwd})",
             f"  code     {r.code_commit}{'  (DIRTY)' if r.dirty else ''}",
             f"  config   {r.config_path} hash {r.config_hash[:16]}" if r.config_path else "  config   (none)"]
    env = r.environment
    if env is None:
        return lines + ["  env      (not recorded)"]
    keys = ", ".join(f"{k} {v}" for k, v in env.key_packages.items())
    lines.append(f"  env      Python {env.python} ({env.implementation}), hash {env.hash[:16]}, "
                 f"{len(env.packages)} packages{': ' + keys if keys else ''}")
    lines += [f"  lock     {name} {h[:16]}" for name, h in sorted(env.lock_files.items())]
    return lines


def _config_lines(cfg: prov_op.ConfigInfo) -> list[str]:
    if cfg.error:
        return [f"config  {cfg.path}: {cfg.error}"]
    head = (f"config  {cfg.path}  hash {cfg.hash[:16]}  seed {cfg.seed}  (from {cfg.source}"
            f"{' ' + ' '.join(cfg.overrides) if cfg.overrides else ''})")
    return [head] + [f"  {k} = {v!r}" for k, v in cfg.values.items()]


def log_line(e: prov_op.LogEntry) -> str:
    if not e.runs:
        detail = "no run record" + (f" ({e.problems[0]})" if e.problems else "")
    else:
        detail = " | ".join(_run_summary(r) for r in e.runs)
    return f"{e.commit[:12]} {e.date[:19]}  {detail}  {e.subject}"


def _run_summary(r: prov_op.RunSummary) -> str:
    data = ",".join(f"{d}@{m[:8]}" for d, m in sorted(r.data.items())) or "-"
    outputs = ",".join(f"{o}@{m[:8]}" for o, m in sorted(r.outputs.items())) or "-"
    return (f"config {r.config_hash[:8] if r.config_hash else '-'} data {data} seed {r.seed} "
            f"exit {r.exit_status} out {outputs}")


def diff_lines(d: prov_op.ProvenanceDiff) -> list[str]:
    lines = [f"diff {d.old[:12]} {d.new[:12]}"]
    for ds in d.datasets:
        lines += _dataset_diff_lines(ds)
    for c in d.configs:
        lines += _config_diff_lines(c)
    if d.environment is not None:
        lines += _environment_lines(d.environment)
    if d.empty:
        lines.append("no differences in datasets, resolved configs or environment")
    return lines


def _dataset_diff_lines(ds: prov_op.DatasetDiff) -> list[str]:
    head = (f"dataset {ds.dataset} {ds.change}: {len(ds.files)} file(s) changed "
            f"(manifest {(ds.old_manifest or '-')[:12]} -> {(ds.new_manifest or '-')[:12]})")
    if ds.error:
        return [head.split(":")[0] + f": files unknown, {ds.error}"]
    marks = {prov_op.ADDED: "+", prov_op.REMOVED: "-", prov_op.MODIFIED: "M"}
    body = []
    for f in ds.files:
        sizes = (human_size(f.new_size) if f.old_size is None else human_size(f.old_size) if f.new_size is None
                 else f"{human_size(f.old_size)} -> {human_size(f.new_size)}")
        body.append(f"  {marks[f.change]} {f.path} ({sizes})")
    return [head] + body


def _config_diff_lines(c: prov_op.ConfigChange) -> list[str]:
    name = c.old_path if c.old_path == c.new_path else f"{c.old_path or '(none)'} -> {c.new_path or '(none)'}"
    if c.error:
        return [f"config {name}: {c.error}"]
    lines = [f"config {name} (hash {(c.old_hash or '-')[:12]} -> {(c.new_hash or '-')[:12]})"]
    lines += [f"  + {k} = {v!r}" for k, v in c.added.items()]
    lines += [f"  - {k} = {v!r}" for k, v in c.removed.items()]
    lines += [f"  ~ {k}: {a!r} -> {b!r}" for k, (a, b) in c.changed.items()]
    return lines


def _environment_lines(e: prov_op.EnvironmentDiff) -> list[str]:
    lines = [f"environment (run {e.old_run or '-'} -> run {e.new_run or '-'})"]
    if e.note:
        return lines + [f"  {e.note}"]
    if e.python:
        lines.append(f"  python {e.python[0]} -> {e.python[1]}")
    if e.implementation:
        lines.append(f"  implementation {e.implementation[0]} -> {e.implementation[1]}")
    lines += [f"  package {p.name} {p.old or '(none)'} -> {p.new or '(none)'}" for p in e.packages]
    lines += [f"  lock file {p.name} {(p.old or '(none)')[:12]} -> {(p.new or '(none)')[:12]}" for p in e.lock_files]
    return lines if len(lines) > 1 else lines + ["  unchanged"]


def reproduce_lines(r: repro_op.ReproduceResult) -> list[str]:
    headline = {repro_op.IDENTICAL: "identical outputs", repro_op.DIFFER: "outputs differ",
                repro_op.FAILED: "the run failed", repro_op.FAILED_BEFORE_RUN: "failed before running"}[r.status]
    lines = [f"result: {headline} (run {r.run} of commit {r.commit[:12]}, exit code {r.exit_code})"]
    if r.reason:
        lines.append(f"  {r.reason}")
    for o in r.outputs:
        state = "identical" if o.identical else f"reproduced {(o.reproduced or '(nothing)')[:12]}"
        lines.append(f"  output {o.path}: recorded {o.recorded[:12]}, {state}{'; ' + o.note if o.note else ''}")
        lines += [f"    {f.change} {f.path} ({_sizes(f)})" for f in o.files]
    if r.status == repro_op.FAILED:
        lines += ["  last lines of output:"] + [f"  | {line}" for line in r.output_tail]
    lines += [f"  environment: {w}" for w in r.warnings]
    if r.worktree:
        lines.append(f"  worktree kept at {r.worktree} (remove with `git worktree remove --force {r.worktree}`)")
    return lines


def _sizes(f: prov_op.FileChange) -> str:
    old = "-" if f.old_size is None else f"{f.old_size} B"
    new = "-" if f.new_size is None else f"{f.new_size} B"
    return f"{old} -> {new}"
