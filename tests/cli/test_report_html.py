"""Tests for `gitrepro report` (gitrepro.cli.report_html over gitrepro.repro.provenance.report): the
file is rendered for real in headless Chromium (Debian's `chromium`; .ci/run installs it) and the
test asserts on the DOM Chromium built: a table row per run, one chart per numeric metric, the
lineage graph, a provenance section per training commit, the table script run, no console errors."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers_metrics import new_repo, make_lr_project, set_lr, train_commit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here and could not "
                                                             "be (.ci/run runs `apt-get install -y chromium`)")
HOSTILE = '<script>alert("x")</script> & <img src=http://example.com/a.png>'


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def having(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.found if t == tag and all(
            v in (a.get(k.rstrip("_")) or "").split() for k, v in attrs.items())]


def chromium_dom(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM headless Chromium builds for `page` (scripts run), and the console lines it logged."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A project with three training commits (lr 0.5, 0.25, 0.1; one with a hostile subject) and its report."""
    root = new_repo(tmp_path_factory, "report")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        make_lr_project(root, lr=0.5)
        train_commit(root, "train lr 0.5")
        for lr, subject in ((0.25, "train lr 0.25"), (0.1, HOSTILE)):
            set_lr(root, lr)
            train_commit(root, subject)
        from gitrepro.cli import app as cli
        assert cli.main(["report", "-o", "report.html"]) == 0
    return root / "report.html"


@needs_chromium
def test_the_report_renders_in_headless_chromium_with_a_row_per_run_and_a_chart_per_metric(report, tmp_path):
    dom, console = chromium_dom(report, tmp_path / "profile")
    assert console == []
    page = Elements(dom)
    assert len(page.having("table", id="experiments", class_="sortable")) == 1      # its script ran
    rows = page.having("tr", class_="run")
    assert len(rows) == 3 and len({r["data-commit"] for r in rows}) == 3
    assert sorted(f["data-metric"] for f in page.having("figure", class_="chart")) == ["eval.acc", "loss"]
    assert len(page.having("polyline")) == 2 and len(page.having("circle")) == 6
    kinds = [g["data-kind"] for g in page.having("g", class_="node")]
    assert kinds.count("run") == 3 and "dataset" in kinds and "config" in kinds and "output" in kinds
    assert len(page.having("section", class_="commit")) == 3
    assert not page.having("img") and not [s for s in page.having("script") if s.get("src")]


@needs_chromium
def test_the_chromium_check_fails_on_a_page_with_a_script_error_or_a_missing_chart(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><table id='experiments'><tbody></tbody></table>"
                      "<script>no_such_function();</script></body></html>")
    dom, console = chromium_dom(broken, tmp_path / "profile")
    assert any("no_such_function is not defined" in line for line in console)
    assert Elements(dom).having("figure", class_="chart") == []


def test_the_report_is_one_self_contained_file_with_history_text_escaped(report):
    text = report.read_text()
    assert HOSTILE not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    page = Elements(text)
    (csp,) = [a["content"] for t, a in page.found if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp.startswith("default-src 'none';")          # the page may load nothing at all
    linked = [(t, a) for t, a in page.found if a.get("src") or a.get("href")]
    assert linked == [("link", {"rel": "icon", "href": "data:,"})]
    assert len(page.having("script")) == 1 and not page.having("img")
