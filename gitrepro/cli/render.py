"""Plain-text rendering of command results, shared by the full CLI (`app`) and the start-up fast
path (`fast`): so it imports nothing heavy (no rich; `shlex` costs the fast path about
0.5 ms), and both paths print the same lines. Also the provenance renderings: the text of show,
log, diff and reproduce, the Markdown audit report, and the lineage graph as Mermaid and DOT.
"""

from __future__ import annotations

import shlex

from gitrepro.util.words import plural  # noqa: F401  (cli modules import it from here)


def status_lines(results: list, shown=str) -> list[str]:
    """The text of `status` (a list of unchanged.DatasetStatus), paths as `shown` spells them
    (relative to the current directory: cli.paths.Shown)."""
    if not results:
        return ["no tracked datasets; run `gitrepro add <path>`"]
    lines = []
    for r in results:
        if r.clean:
            lines.append(f"{shown(r.dataset)}: clean")
            continue
        lines.append(f"{shown(r.dataset)}: {'missing (run `gitrepro checkout`)' if r.missing else 'modified'}")
        lines += [f"  {c.kind:>8}: {shown(_member(r.dataset, c.path))}" for c in r.changes]
    return lines


PORCELAIN_CODES = {"added": "A", "modified": "M", "removed": "D"}   # docs/cli.md, "status --porcelain"


def status_porcelain(results: list) -> list[str]:
    """`status --porcelain` (format v1, docs/cli.md): one line `<code> <path>` per difference, paths
    relative to the repository root, C-quoted when they hold a control character, `"` or `\\`;
    `!` for a dataset missing altogether. A clean dataset prints nothing."""
    lines = []
    for r in results:
        if r.missing:
            lines.append(f"! {_quoted(r.dataset)}")
        lines += [f"{PORCELAIN_CODES[c.kind]} {_quoted(_member(r.dataset, c.path))}" for c in r.changes]
    return lines


def _member(dataset: str, path: str) -> str:
    return f"{dataset}/{path}" if path else dataset


def _quoted(path: str) -> str:
    """A path on one line, as git quotes it: in double quotes with C escapes when it needs them
    (bytes that are not UTF-8, kept as surrogates by the file system encoding, as octal)."""
    if not any(ch in '"\\' or ch < " " or ch == "\x7f" or "\udc80" <= ch <= "\udcff" for ch in path):
        return path
    escapes = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    body = "".join(escapes.get(ch) or (f"\\{ord(ch) - 0xdc00:03o}" if "\udc80" <= ch <= "\udcff"
                                       else f"\\{ord(ch):03o}" if ch < " " or ch == "\x7f" else ch)
                   for ch in path)
    return f'"{body}"'


def add_lines(results: list, shown=str, project_file: str | None = None) -> list[str]:
    """The summary of `add` (a list of unchanged.SnapshotResult), one line per dataset, then what
    to commit: the pointers, .gitignore, and `project_file` (gitrepro.toml) when it is not committed."""
    lines = [f"{shown(r.dataset)}: {plural(r.files, 'file')}, {human_size(r.bytes)}; read {human_size(r.bytes_read)} "
             f"({plural(r.files_cached, 'file')} unchanged), {_stored(r)} -> {shown(r.pointer_path)}"
             f"{'' if r.changed else ' (unchanged)'}" for r in results]
    files = [r.pointer_path for r in results if r.changed]
    files += ([".gitignore"] if files else []) + ([project_file] if project_file else [])
    if files:
        lines.append(f"next: git add {' '.join(shown(f) for f in files)} && git commit")
    return lines


def _stored(r) -> str:
    """What `add` stored: no dedup ratio when nothing new was stored, or when it would read 0.0x."""
    if not r.new_bytes_stored:
        return "nothing new stored"
    ratio = r.bytes / r.new_bytes_stored
    return f"stored {human_size(r.new_bytes_stored)} new" + (f", dedup {ratio:.1f}x" if ratio >= 0.05 else "")


def human_size(n: float) -> str:
    """Bytes in binary units (KiB, MiB, GiB, TiB): the one unit system of all output, bars included."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_rate(n: int, seconds: float) -> str:
    """`1.2 GiB in 3.0 s (410.0 MiB/s)`: a transfer's amount, time and rate, in binary units."""
    return f"{human_size(n)} in {seconds:.1f} s ({human_size(n / seconds if seconds else 0)}/s)"


def checkout_lines(result, shown=str) -> list[str]:
    """What `checkout` (and `pull`) wrote, one line per dataset (a checkout.CheckoutResult)."""
    return [f"{shown(d.dataset)}: wrote {plural(d.written, 'file')} ({human_size(d.bytes_written)}), "
            f"removed {d.removed}, {d.unchanged} already up to date" for d in result.datasets]


# ---------------------------------------------------------------- provenance: show, log, diff, reproduce
# Status values are spelled here as the operations define them (provenance.manifests.ADDED ...,
# reproduce.IDENTICAL ...): importing those modules would load them on the fast path.

def show_lines(p) -> list[str]:
    """The text of `show` (a provenance.show.Provenance)."""
    c, v = p.commit, p.verification
    lines = [f"commit {c.id}  {c.date}  {c.subject}",
             f"training commit: {', '.join(p.training_paths)}" if p.training else "not a training commit"]
    for r in p.runs:
        lines += _run_lines(r)
    for d in p.datasets:
        lines.append(f"{d.role:<7} {d.path}  manifest {d.manifest[:12]}  {plural(d.files, 'file')}  "
                     f"{human_size(d.bytes)}  {'; '.join(d.problems) if d.problems else 'ok'}")
    for cfg in p.configs:
        lines += _config_lines(cfg)
    chunks = "re-hashed" if v.chunks_rehashed is not None else "present (not re-hashed)"
    lines.append(f"verified {v.at}: policy {'passed' if v.policy_ok else 'FAILED'}; "
                 f"{v.manifests_present}/{v.manifests_total} manifests, {v.chunks_present}/{v.chunks_total} chunks "
                 f"{chunks}; configs {'drifted' if v.config_findings else 'no drift'}"
                 f"{'' if v.ok else ' -- PROBLEMS FOUND'}")
    lines += [f"  problem: {x}" for x in v.policy_violations + v.records_bad + v.config_findings + v.problems]
    return lines + _chain_lines(p.chain)


def _chain_lines(chain) -> list[str]:
    """The whole chain a training commit rests on, back to the source datasets."""
    if chain is None or len(chain.steps) + len(chain.sources) <= 1:
        return []
    lines = ["rests on:"]
    for s in chain.steps:
        ins = ", ".join(f"{d}@{m[:8]}" for d, m in sorted(s.inputs.items())) or "no inputs"
        outs = ", ".join(f"{d}@{m[:8]}" for d, m in sorted(s.outputs.items())) or "no outputs"
        lines.append(f"  run {s.run} @ {s.commit[:12]}: {ins} -> {outs}")
    lines += [f"  source {d.path}@{d.manifest[:8]} (first in {d.commit[:12]})"
              + (f", imported from {d.imported_from}" if d.imported_from else "") for d in chain.sources]
    return lines


def _run_lines(r) -> list[str]:
    lines = [f"run {r.id}  exit {r.exit_status}  {r.wall_seconds:.1f} s  seed {r.seed}",
             f"  command  {shlex.join(r.command)}  (in {r.cwd})",
             f"  code     {r.code_commit}{'  (DIRTY)' if r.dirty else ''}",
             f"  config   {r.config_path} hash {r.config_hash[:16]}" if r.config_path else "  config   (none)"]
    lines += [f"  imported {d} from {s['url']} @ {s['commit'][:12]}:{s['path']}"
              for d, s in sorted(getattr(r, "input_sources", {}).items())]
    env = r.environment
    if env is None:
        return lines + ["  env      (not recorded)"]
    keys = ", ".join(f"{k} {v}" for k, v in env.key_packages.items())
    lines.append(f"  env      Python {env.python} ({env.implementation}), hash {env.hash[:16]}, "
                 f"{len(env.packages)} packages{': ' + keys if keys else ''}")
    lines += [f"  lock     {name} {h[:16]}" for name, h in sorted(env.lock_files.items())]
    return lines


def _config_lines(cfg) -> list[str]:
    if cfg.error:
        return [f"config  {cfg.path}: {cfg.error}"]
    head = (f"config  {cfg.path}  hash {cfg.hash[:16]}  seed {cfg.seed}  (from {cfg.source}"
            f"{' ' + ' '.join(cfg.overrides) if cfg.overrides else ''})")
    return [head] + [f"  {k} = {v!r}" for k, v in cfg.values.items()]


def log_line(e) -> str:
    """One line of `log` (a provenance.log.LogEntry)."""
    if not e.runs:
        detail = "no run record" + (f" ({e.problems[0]})" if e.problems else "")
    else:
        detail = " | ".join(_run_summary(r) for r in e.runs)
    return f"{e.commit[:12]} {e.date[:19]}  {detail}  {e.subject}"


def _run_summary(r) -> str:
    data = ",".join(f"{d}@{m[:8]}" for d, m in sorted(r.data.items())) or "-"
    outputs = ",".join(f"{o}@{m[:8]}" for o, m in sorted(r.outputs.items())) or "-"
    return (f"config {r.config_hash[:8] if r.config_hash else '-'} data {data} seed {r.seed} "
            f"exit {r.exit_status} out {outputs}")


def diff_lines(d) -> list[str]:
    """The text of `diff` (a provenance.diff.ProvenanceDiff)."""
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


_FILE_MARKS = {"added": "+", "removed": "-", "modified": "M"}


def _dataset_diff_lines(ds) -> list[str]:
    head = (f"dataset {ds.dataset} {ds.change}: {plural(len(ds.files), 'file')} changed "
            f"(manifest {(ds.old_manifest or '-')[:12]} -> {(ds.new_manifest or '-')[:12]})")
    if ds.error:
        return [head.split(":")[0] + f": files unknown, {ds.error}"]
    body = []
    for f in ds.files:
        sizes = (human_size(f.new_size) if f.old_size is None else human_size(f.old_size) if f.new_size is None
                 else f"{human_size(f.old_size)} -> {human_size(f.new_size)}")
        body.append(f"  {_FILE_MARKS[f.change]} {f.path} ({sizes})")
    return [head] + body


def _config_diff_lines(c) -> list[str]:
    name = c.old_path if c.old_path == c.new_path else f"{c.old_path or '(none)'} -> {c.new_path or '(none)'}"
    if c.error:
        return [f"config {name}: {c.error}"]
    lines = [f"config {name} (hash {(c.old_hash or '-')[:12]} -> {(c.new_hash or '-')[:12]})"]
    lines += [f"  + {k} = {v!r}" for k, v in c.added.items()]
    lines += [f"  - {k} = {v!r}" for k, v in c.removed.items()]
    lines += [f"  ~ {k}: {a!r} -> {b!r}" for k, (a, b) in c.changed.items()]
    return lines


def _environment_lines(e) -> list[str]:
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


_REPRODUCE_HEADLINES = {"identical": "identical outputs", "differ": "outputs differ", "failed": "the run failed",
                        "failed-before-run": "failed before running"}


def reproduce_lines(r) -> list[str]:
    """The text of `reproduce` (a reproduce.ReproduceResult)."""
    lines = [f"result: {_REPRODUCE_HEADLINES[r.status]} (run {r.run} of commit {r.commit[:12]}, "
             f"exit code {r.exit_code})"]
    if r.reason:
        lines.append(f"  {r.reason}")
    for o in r.outputs:
        state = "identical" if o.identical else f"reproduced {(o.reproduced or '(nothing)')[:12]}"
        lines.append(f"  output {o.path}: recorded {o.recorded[:12]}, {state}{'; ' + o.note if o.note else ''}")
        lines += [f"    {f.change} {f.path} ({_sizes(f)})" for f in o.files]
    if r.status == "failed":
        lines += ["  last lines of output:"] + [f"  | {line}" for line in r.output_tail]
    lines += [f"  environment: {w}" for w in r.warnings]
    if r.worktree:
        lines.append(f"  worktree kept at {r.worktree} (remove with `git worktree remove --force {r.worktree}`)")
    return lines


def _sizes(f) -> str:
    old = "-" if f.old_size is None else f"{f.old_size} B"
    new = "-" if f.new_size is None else f"{f.new_size} B"
    return f"{old} -> {new}"


# ---------------------------------------------------------------- provenance: the Markdown audit report

def show_markdown(prov) -> str:
    """`show --format md` (a provenance.show.Provenance): a self-contained audit report of what the
    commit rests on, and what was verified, and when."""
    c, v = prov.commit, prov.verification
    out = [f"# Provenance of commit {c.id[:12]}", "",
           "| | |", "|---|---|",
           f"| Commit | `{c.id}` |", f"| Date | {_cell(c.date)} |", f"| Author | {_cell(c.author)} |",
           f"| Subject | {_cell(c.subject)} |",
           f"| Training commit | {'yes: ' + _cell(', '.join(prov.training_paths)) if prov.training else 'no'} |",
           f"| Verified | {v.at} by {v.by}: **{'all checks passed' if v.ok else 'PROBLEMS FOUND'}** |", ""]
    out += _md_verification(prov)
    for run in prov.runs:
        out += _md_run(run)
    out += _md_datasets("Datasets read", [d for d in prov.datasets if d.role == "input"])
    out += _md_datasets("Other tracked datasets", [d for d in prov.datasets if d.role == "tracked"])
    for cfg in prov.configs:
        out += _md_config(cfg)
    for run in prov.runs:
        out += _md_environment(run)
    out += _md_datasets("Outputs", [d for d in prov.datasets if d.role == "output"])
    return "\n".join(out).rstrip("\n") + "\n"


def _md_verification(prov) -> list[str]:
    v = prov.verification
    policy_line = "passed" if v.policy_ok else f"**{plural(len(v.policy_violations), 'violation')}**"
    chunks = (f"{v.chunks_rehashed} ({v.bytes_rehashed} bytes) read back and re-hashed with BLAKE3: "
              f"{'all match' if not v.problems else 'see problems'}" if v.chunks_rehashed is not None
              else "looked up in the store index, not re-hashed (`gitrepro show --read-data` re-hashes them)")
    out = ["## Verification", "",
           f"Checked at {v.at} by {v.by}, against git objects and the local store only (not the working tree).", "",
           f"- Training-commit policy (`gitrepro policy check {prov.commit.id[:12]}`): {policy_line}",
           f"- Run records: {v.records_parsed} parsed and validated"
           + (f"; **{len(v.records_bad)} unreadable**" if v.records_bad else ""),
           f"- Manifests: {v.manifests_present} of {v.manifests_total} present in the local store, each read back "
           f"with every part's hash verified",
           f"- Chunks: {v.chunks_present} of {v.chunks_total} present; {chunks}"]
    for cfg in prov.configs:
        state = cfg.error or ("recomputed hash, sources and data pointers match: no drift" if not cfg.findings
                              else f"**{plural(len(cfg.findings), 'finding')}**")
        out.append(f"- Resolved config `{cfg.path}`: {state}")
    problems = v.policy_violations + v.records_bad + v.config_findings + v.problems
    if problems:
        out += ["", "### Problems", ""] + [f"- {_cell(p)}" for p in problems]
    return out + [""]


def _md_run(run) -> list[str]:
    cmd = " ".join(run.command)
    return [f"## Run {run.id}", "", "| | |", "|---|---|",
            f"| Record | `{run.path}` |", f"| Command | `{_cell(cmd)}` |", f"| Working directory | `{run.cwd}` |",
            f"| Code commit | `{run.code_commit}`{' **(dirty)**' if run.dirty else ''} |",
            f"| Config | `{run.config_path}` hash `{run.config_hash}` |" if run.config_path else "| Config | none |",
            f"| Seed | {run.seed if run.seed is not None else 'none'} |",
            f"| Started | {run.started} |", f"| Finished | {run.finished} ({run.wall_seconds:.1f} s) |",
            f"| Exit status | {run.exit_status} |", ""]


def _md_datasets(title: str, datasets: list) -> list[str]:
    if not datasets:
        return []
    out = [f"## {title}", "", "| Dataset | Manifest | Files | Bytes | Verified |", "|---|---|---:|---:|---|"]
    for d in datasets:
        out.append(f"| `{_cell(d.path)}` | `{d.manifest}` | {d.files} | {d.bytes} | {_cell(_dataset_state(d))} |")
    return out + [""]


def _dataset_state(d) -> str:
    if d.problems:
        return "; ".join(d.problems)
    done = f"manifest present, {d.chunks_present}/{d.chunks} chunks present"
    return done + (f", {d.chunks_rehashed} re-hashed" if d.chunks_rehashed is not None else "")


def _md_config(cfg) -> list[str]:
    out = [f"## Config `{cfg.path}`", ""]
    if cfg.error:
        return out + [f"Not readable: {_cell(cfg.error)}", ""]
    out += [f"- Hash: `{cfg.hash}`", f"- Seed: {cfg.seed} (from {cfg.seed_source})", f"- Source: `{cfg.source}`"
            + (f" with overrides `{' '.join(cfg.overrides)}`" if cfg.overrides else ""),
            "- Source files: " + ", ".join(f"`{p}` (`{h[:16]}`)" for p, h in sorted(cfg.sources.items())), "",
            "| Key | Value |", "|---|---|"]
    out += [f"| `{_cell(k)}` | `{_cell(repr(v))}` |" for k, v in cfg.values.items()]
    return out + [""]


def _md_environment(run) -> list[str]:
    env = run.environment
    out = [f"## Environment of run {run.id}", ""]
    if env is None:
        return out + ["Not recorded.", ""]
    out += [f"- Python {env.python} ({env.implementation}) on {env.system} {env.machine}",
            f"- Environment hash: `{env.hash}`", f"- Packages recorded: {len(env.packages)}"]
    out += [f"- Lock file `{_cell(name)}`: `{h}`" for name, h in sorted(env.lock_files.items())]
    out += [f"- GPU: {_cell(str(g))}" for g in env.gpus]
    if env.key_packages:
        out += ["", "| Key package | Version |", "|---|---|"]
        out += [f"| {name} | {version} |" for name, version in env.key_packages.items()]
    return out + [""]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list item (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


# ---------------------------------------------------------------- provenance: the lineage graph

_MERMAID_STYLES = {"dataset": "fill:#e8f0fe", "output": "fill:#e6f4ea", "config": "fill:#fef7e0",
                   "run": "fill:#f3e8fd"}
_MERMAID_SHAPES = {"dataset": ('[("', '")]'), "output": ('[("', '")]'), "config": ('["', '"]'),
                   "run": ('(["', '"])')}


def to_mermaid(graph) -> str:
    """A Mermaid flowchart of a provenance.lineage.Graph: `graph LR`, one node line each, then
    `a --> b` edges."""
    lines = ["graph LR"]
    for n in graph.nodes:
        left, right = _MERMAID_SHAPES.get(n.kind, ('["', '"]'))
        lines.append(f"    {n.id}{left}{_mermaid_text(n.label)}{right}")
    lines += [f"    {e.source} --> {e.target}" for e in graph.edges]
    lines += [f"    classDef {kind} {style}" for kind, style in _MERMAID_STYLES.items()]
    lines += [f"    class {n.id} {n.kind}" for n in graph.nodes]
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Label text inside double quotes: quotes and markup characters as Mermaid entity codes."""
    return "".join(f"#{ord(ch)};" if ch in '"#<>&' or ord(ch) < 0x20 else ch for ch in text)


_DOT_SHAPES = {"dataset": "cylinder", "output": "cylinder", "config": "note", "run": "box"}


def to_dot(graph) -> str:
    """A Graphviz digraph of a provenance.lineage.Graph: quoted node ids with labels, then
    `"a" -> "b";` edges."""
    lines = ["digraph lineage {", "    rankdir=LR;"]
    for n in graph.nodes:
        lines.append(f'    "{n.id}" [label="{_dot_text(n.label)}", shape={_DOT_SHAPES.get(n.kind, "box")}, '
                     f'class="{n.kind}"];')
    lines += [f'    "{e.source}" -> "{e.target}";' for e in graph.edges]
    return "\n".join(lines + ["}"]) + "\n"


def _dot_text(text: str) -> str:
    return "".join("\\" + ch if ch in '"\\' else (" " if ord(ch) < 0x20 else ch) for ch in text)
