"""Text, Markdown and CSV of metrics, params and experiments: `metrics show/diff`, `params diff`,
`exp show`, the stale-config lines of `diff` and the tolerance lines of `reproduce` (rendering as
gitrepro.cli.render does for the other commands; the HTML report is gitrepro.cli.report_html).
"""

from __future__ import annotations

import csv
import io
import json
import math

MAX_CELL = 40                     # characters of a table cell in text; Markdown and CSV keep all


def value_text(value) -> str:
    """A metric or param value as written in tables and diffs: 0.25, true, "adam", - for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(value) if math.isnan(value) or math.isinf(value) else format(value, ".10g")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _change_text(change, relative) -> str:
    if change is None:
        return "-"
    rel = f" ({relative * 100:+.2f}%)" if relative is not None else ""
    return f"{change:+.6g}{rel}"


# ---------------------------------------------------------------- tables


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell (cut at MAX_CELL characters)."""
    cut = [[c if len(c) <= MAX_CELL else c[:MAX_CELL - 1] + "…" for c in row] for row in [header] + rows]
    widths = [max(len(r[i]) for r in cut) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cut]


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().rstrip("\n")


def as_format(fmt: str, header: list[str], rows: list[list[str]]) -> str:
    if fmt == "csv":
        return csv_text(header, rows)
    return "\n".join(md_table(header, rows) if fmt == "md" else text_table(header, rows))


# ---------------------------------------------------------------- exp show


def exp_cells(table) -> tuple[list[str], list[list[str]]]:
    """Header and cells of `exp show` (an experiments.ExperimentTable)."""
    header = ["commit", "refs", "run", "stage", *table.params, *table.metrics]
    rows = []
    for r in table.rows:
        refs = ",".join(r.refs + r.branches[:2]) + (f",+{len(r.branches) - 2}" if len(r.branches) > 2 else "")
        rows.append([r.commit[:12], refs or "-", r.run, r.stage or "-",
                     *(value_text(r.params.get(k)) for k in table.params),
                     *(value_text(r.value(c)) for c in table.metrics)])
    return header, rows


def exp_text(table, fmt: str) -> str:
    header, rows = exp_cells(table)
    text = as_format(fmt, header, rows)
    if fmt == "text":
        text += "".join(f"\nwarning: {p}" for p in table.problems)
        if not table.rows:
            text = "no runs recorded in these commits"
    return text


# ---------------------------------------------------------------- metrics show / diff


def metrics_show_cells(results) -> tuple[list[str], list[list[str]]]:
    """One row per revision, file and key (a list of experiments.RevisionMetrics)."""
    rows = []
    for r in results:
        for file, values in sorted(r.metrics.items()):
            for key, value in sorted(values.items()):
                rows.append([r.rev, r.commit[:12], file, key, value_text(value)])
    return ["rev", "commit", "file", "key", "value"], rows


def metrics_show_text(results, fmt: str) -> str:
    header, rows = metrics_show_cells(results)
    if fmt == "text" and not rows:
        return "\n".join(f"{r.rev}: no metrics recorded" for r in results)
    return as_format(fmt, header, rows)


def metrics_diff_text(changes, fmt: str) -> str:
    """`metrics diff` (a list of metrics.MetricChange)."""
    if fmt == "text" and not changes:
        return "no metric changed"
    rows = [[c.file, c.key, value_text(c.old), value_text(c.new), _change_text(c.change, c.relative)]
            for c in changes]
    return as_format(fmt, ["file", "key", "old", "new", "change"], rows)


# ---------------------------------------------------------------- params diff, stale configs


def params_diff_lines(p) -> list[str]:
    """`params diff` (a provenance.diff.ParamsDiff): `key old -> new` per changed key."""
    lines = []
    for c in p.configs + p.sources:
        name = c.old_path if c.old_path == c.new_path else f"{c.old_path or '(none)'} -> {c.new_path or '(none)'}"
        lines.append(f"{c.kind} config {name}" + (f": {c.error}" if c.error else ""))
        lines += [f"  {k} {value_text(a)} -> {value_text(b)}" for k, (a, b) in c.changed.items()]
        lines += [f"  {k} - -> {value_text(v)}" for k, v in c.added.items()]
        lines += [f"  {k} {value_text(v)} -> -" for k, v in c.removed.items()]
    lines += stale_lines(p.stale)
    return lines or [f"no params changed between {p.old[:12]} and {p.new[:12]}"]


def source_config_lines(changes) -> list[str]:
    """The source configs of `diff` (provenance.diff.ConfigChange, kind source), as cli.render
    writes its resolved ones."""
    lines = []
    for c in changes:
        if c.error:
            lines.append(f"source config {c.old_path or c.new_path}: {c.error}")
            continue
        lines.append(f"source config {c.old_path or c.new_path} (hash {(c.old_hash or '-')[:12]} -> "
                     f"{(c.new_hash or '-')[:12]})")
        lines += [f"  + {k} = {v!r}" for k, v in c.added.items()]
        lines += [f"  - {k} = {v!r}" for k, v in c.removed.items()]
        lines += [f"  ~ {k}: {a!r} -> {b!r}" for k, (a, b) in c.changed.items()]
    return lines


def stale_lines(drifts) -> list[str]:
    """Resolved configs that no longer match their sources (a list of config.Drift)."""
    return [f"stale: {d.message}" for d in drifts]


# ---------------------------------------------------------------- reproduce --rtol/--atol


def tolerance_lines(r) -> list[str]:
    """The metrics `reproduce` compared under a tolerance (a reproduce.ReproduceResult)."""
    if not r.metrics:
        return []
    lines = [f"  metrics (rtol {r.rtol or 0:g}, atol {r.atol or 0:g}):"]
    for c in r.metrics:
        diff = f"difference {c.difference:.3g}" if c.difference is not None else "compared as equal or not"
        lines.append(f"    {'ok ' if c.within else 'OUT'} {c.file}:{c.key} recorded {value_text(c.recorded)}, "
                     f"now {value_text(c.reproduced)}, {diff}")
    return lines
