"""The HTML of `gitrepro report` (a provenance.report.Report): one self-contained file — styles, a
small table-sorting script and every chart inline (SVG), nothing fetched at view time (its Content
Security Policy allows no network at all, and only this one script, by hash). Every string from
history (subjects, paths, values) is escaped. See docs/metrics.md, "Report".
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from gitrepro.cli.render import human_size
from gitrepro.cli.render_metrics import exp_cells
from gitrepro.util.words import plural

CHART_W, CHART_H, PAD = 520, 220, 44
NODE_W, NODE_H, COL_GAP, ROW_GAP = 250, 34, 60, 16
MAX_NODES = 400                    # lineage nodes drawn; the rest are counted
KIND_COLOURS = {"dataset": "#dbeafe", "config": "#fef3c7", "run": "#dcfce7", "output": "#f3e8ff"}

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2937}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb}table.sortable th{cursor:pointer}code{font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{margin:0;border:1px solid #e5e7eb;padding:8px}
.chart polyline{fill:none;stroke:#2563eb;stroke-width:2}.chart circle{fill:#2563eb}
.axis{stroke:#9ca3af}.lbl{font-size:11px;fill:#4b5563}.bad{color:#b91c1c}.ok{color:#15803d}
.node text{font-size:11px}.edge{stroke:#9ca3af;stroke-width:1.2;marker-end:url(#arrow)}
"""

_SCRIPT = """(function () {
  var table = document.getElementById("experiments");
  if (!table || !table.tHead) { return; }
  table.classList.add("sortable");
  var heads = table.tHead.rows[0].cells;
  function cell(row, col) { var c = row.cells[col]; return c ? c.textContent : ""; }
  function sortBy(col) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var dir = table.getAttribute("data-sort") === String(col) ? -1 : 1;
    table.setAttribute("data-sort", dir === 1 ? String(col) : "");
    rows.sort(function (a, b) {
      var x = cell(a, col), y = cell(b, col), nx = parseFloat(x), ny = parseFloat(y);
      if (!isNaN(nx) && !isNaN(ny)) { return (nx - ny) * dir; }
      return x.localeCompare(y) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  for (var i = 0; i < heads.length; i++) { heads[i].addEventListener("click", sortBy.bind(null, i)); }
})();"""


def render_report(r) -> str:
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{escape(csp)}">',
             '<link rel="icon" href="data:,">', f"<title>gitrepro report: {escape(r.title)}</title>",
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>gitrepro report: {escape(r.title)}</h1>",
             f"<p>Generated {escape(r.generated)} from git history and the local store: "
             f"{plural(len(r.table.rows), 'run')}, "
             f"{plural(len(r.commits), 'training commit')}.</p>"]
    parts += _experiments(r.table) + _charts(r.series) + _lineage(r.graph) + _commits(r.commits, r.omitted_commits)
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _experiments(table) -> list[str]:
    header, rows = exp_cells(table)
    out = ['<h2 id="experiments-title">Experiments</h2>', '<table id="experiments"><thead><tr>']
    out += [f"<th>{escape(h)}</th>" for h in header] + ["</tr></thead><tbody>"]
    for row, cells in zip(table.rows, rows):
        out.append(f'<tr class="run" data-run="{escape(row.run)}" data-commit="{escape(row.commit)}">'
                   + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    out += [f'<p class="bad">{escape(p)}</p>' for p in table.problems]
    return out


# ---------------------------------------------------------------- charts


def _charts(series) -> list[str]:
    out = ['<h2 id="charts-title">Metrics over the commits</h2>', '<div class="charts" id="charts">']
    out += [_chart(s) for s in series]
    if not series:
        out.append("<p>No numeric metrics recorded.</p>")
    return out + ["</div>"]


def _chart(s) -> str:
    values = [p.value for p in s.points]
    low, high = min(values), max(values)
    if high == low:
        low, high = low - (abs(low) or 1) * 0.05, high + (abs(high) or 1) * 0.05
    width, height = CHART_W - 2 * PAD, CHART_H - 2 * PAD
    step = width / (len(values) - 1) if len(values) > 1 else 0

    def xy(i: int, v: float) -> tuple[float, float]:
        x = PAD + (i * step if len(values) > 1 else width / 2)
        return round(x, 1), round(PAD + height - (v - low) / (high - low) * height, 1)

    coords = [xy(i, v) for i, v in enumerate(values)]
    dots = "".join(f'<circle cx="{x}" cy="{y}" r="3.5"><title>{escape(p.commit[:12])} run {escape(p.run)}: '
                   f"{p.value:.6g}</title></circle>" for (x, y), p in zip(coords, s.points))
    first, last = s.points[0].commit[:8], s.points[-1].commit[:8]
    return (f'<figure class="chart" data-metric="{escape(s.metric)}"><figcaption><b>{escape(s.metric)}</b> '
            f"({plural(len(values), 'run')})</figcaption>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" role="img">'
            f'<line class="axis" x1="{PAD}" y1="{PAD + height}" x2="{PAD + width}" y2="{PAD + height}"/>'
            f'<line class="axis" x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + height}"/>'
            f'<text class="lbl" x="4" y="{PAD + 4}">{high:.4g}</text>'
            f'<text class="lbl" x="4" y="{PAD + height + 4}">{low:.4g}</text>'
            f'<text class="lbl" x="{PAD}" y="{CHART_H - 12}">{escape(first)}</text>'
            f'<text class="lbl" x="{PAD + width - 50}" y="{CHART_H - 12}">{escape(last)}</text>'
            f'<polyline points="{" ".join(f"{x},{y}" for x, y in coords)}"/>{dots}</svg></figure>')


# ---------------------------------------------------------------- lineage


def _depths(graph, nodes: list) -> dict[str, int]:
    """Column of each node: the longest path to it from a node nothing points at (cycles: column 0)."""
    ids = {n.id for n in nodes}
    preds: dict[str, list[str]] = {i: [] for i in ids}
    for e in graph.edges:
        if e.source in ids and e.target in ids:
            preds[e.target].append(e.source)
    depth: dict[str, int] = {}
    for _ in range(len(ids) + 1):
        changed = False
        for i in ids:
            d = max((depth.get(p, 0) + 1 for p in preds[i]), default=0)
            if depth.get(i) != d and d <= len(ids):
                depth[i], changed = d, True
        if not changed:
            break
    return depth


def _lineage(graph) -> list[str]:
    nodes = graph.nodes[:MAX_NODES]
    out = ['<h2 id="lineage-title">Lineage</h2>']
    if not nodes:
        return out + ["<p>No runs in this range.</p>"]
    depth = _depths(graph, nodes)
    columns: dict[int, list] = {}
    for n in nodes:
        columns.setdefault(depth.get(n.id, 0), []).append(n)
    pos = {n.id: (c * (NODE_W + COL_GAP) + 10, i * (NODE_H + ROW_GAP) + 10)
           for c, col in columns.items() for i, n in enumerate(col)}
    width = (max(columns) + 1) * (NODE_W + COL_GAP) + 20
    height = max(len(col) for col in columns.values()) * (NODE_H + ROW_GAP) + 20
    svg = [f'<svg id="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0L10,5L0,10z" fill="#9ca3af"/></marker></defs>']
    for e in graph.edges:
        if e.source in pos and e.target in pos:
            (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
            svg.append(f'<line class="edge" x1="{x1 + NODE_W}" y1="{y1 + NODE_H / 2}" x2="{x2}" '
                       f'y2="{y2 + NODE_H / 2}"/>')
    for n in nodes:
        x, y = pos[n.id]
        label = n.label if len(n.label) <= 38 else n.label[:37] + "…"
        svg.append(f'<g class="node" data-kind="{escape(n.kind)}"><title>{escape(n.kind)}: {escape(n.label)}</title>'
                   f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5" '
                   f'fill="{KIND_COLOURS.get(n.kind, "#f3f4f6")}" stroke="#9ca3af"/>'
                   f'<text x="{x + 8}" y="{y + 21}">{escape(label)}</text></g>')
    out += svg + ["</svg>"]
    if len(graph.nodes) > MAX_NODES:
        out.append(f"<p>{plural(len(graph.nodes) - MAX_NODES, 'more node')} not drawn.</p>")
    return out


# ---------------------------------------------------------------- training commits


def _commits(commits, omitted: int) -> list[str]:
    out = ['<h2 id="commits-title">What each training commit rests on</h2>']
    for p in commits:
        out += _commit(p)
    if omitted:
        out.append(f"<p>{plural(omitted, 'older training commit')} not shown (`gitrepro show` gives each).</p>")
    return out


def _commit(p) -> list[str]:
    c, v = p.commit, p.verification
    out = [f'<section class="commit" id="c-{escape(c.id)}"><h3><code>{escape(c.id[:12])}</code> '
           f"{escape(c.subject)}</h3><p>{escape(c.date)} by {escape(c.author)}</p>", "<table>"]
    for r in p.runs:
        env = r.environment
        rows = [("run", f"{r.id} (exit {r.exit_status}, {r.wall_seconds:.1f} s)"),
                ("code", r.code_commit + (" (DIRTY)" if r.dirty else "")),
                ("data", ", ".join(f"{d} @ {m[:12]}" for d, m in sorted(r.data.items())) or "-"),
                ("config", f"{r.config_path} hash {(r.config_hash or '')[:16]}" if r.config_path else "-"),
                ("environment", f"Python {env.python} ({env.implementation}), hash {env.hash[:16]}; "
                                + ", ".join(f"{k} {x}" for k, x in env.key_packages.items()) if env else "-"),
                ("seed", "-" if r.seed is None else str(r.seed)),
                ("outputs", ", ".join(f"{o} @ {m[:12]}" for o, m in sorted(r.outputs.items())) or "-")]
        out += [f"<tr><th>{escape(k)}</th><td>{escape(x)}</td></tr>" for k, x in rows]
    data_bytes = sum(d.bytes for d in p.datasets)
    verdict = '<span class="ok">ok</span>' if v.ok else '<span class="bad">PROBLEMS FOUND</span>'
    out.append(f"<tr><th>verified</th><td>{verdict} at {escape(v.at)}: policy "
               f"{'passed' if v.policy_ok else 'FAILED'}; {v.manifests_present}/{v.manifests_total} manifests, "
               f"{v.chunks_present}/{v.chunks_total} chunks in the local store ({escape(human_size(data_bytes))}); "
               f"configs {'drifted' if v.config_findings else 'no drift'}</td></tr></table>")
    problems = v.policy_violations + v.records_bad + v.config_findings + v.problems
    out += ["<ul>"] + [f'<li class="bad">{escape(x)}</li>' for x in problems] + ["</ul></section>"] if problems \
        else ["</section>"]
    return out
