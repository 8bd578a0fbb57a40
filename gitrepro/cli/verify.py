"""`gitrepro verify`: every commit in a range judged reproducible, rendered for people (text) and
for CI systems (JSON, JUnit XML). Registered on the main app by `register(app)`; docs/ci.md shows
it in GitHub Actions and GitLab CI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Optional

import typer

from gitrepro.cli.common import BadFormat, err, out
from gitrepro.cli.render import human_size
from gitrepro.errors import GitreproError
from gitrepro.repro import verify as verify_op
from gitrepro.util.fsutil import atomic_write
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural

FORMATS = ("text", "json", "junit")
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class BadOutput(GitreproError):
    pass


def verify(revs: Optional[List[str]] = typer.Argument(None, metavar="REV",
                                                      help="REV (that commit alone), A..B or several REVs "
                                                           "(as git rev-list); default HEAD."),
           all_refs: bool = typer.Option(False, "--all", help="Every commit reachable from a branch, tag or "
                                                              "remote-tracking branch."),
           remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Judge data on this gitrepro remote "
                                                                            "(by its pack indexes), not locally."),
           deep: bool = typer.Option(False, "--deep", help="Also read back and re-hash every chunk and file."),
           models: bool = typer.Option(False, "--models", help="The commits of every registered model version "
                                                               "(`gitrepro model list`), with any REVs given."),
           fmt: str = typer.Option("text", "--format", help="text, json or junit."),
           output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                 help="Write the report to this file (the text summary still "
                                                      "prints)."),
           as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (--format json).")) -> None:
    """Prove every commit in a range is reproducible: policy, pointers, data, configs, run records."""
    if as_json and fmt not in ("text", "json"):
        raise BadFormat(f"give --json or --format {fmt}, not both")
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise BadFormat(f"unknown --format {fmt!r}; use one of: {', '.join(FORMATS)}")
    repo = Repo.find()
    if models:
        from gitrepro.repro import registry
        registered = sorted(registry.registered_commits(repo))
        if not registered and not revs:
            raise registry.RegistryError("no model versions are registered (`gitrepro model register NAME VERSION`)")
        revs = list(revs or []) + registered
    with _progress(enabled=err.is_terminal and not err.quiet) as advance:
        result = verify_op.verify(repo, revs, all_refs=all_refs, remote=remote, deep=deep, progress=advance)
    if output is not None:
        write_report(output, RENDERERS[fmt](result))
    if output is not None or fmt == "text":
        for line in text_lines(result):
            out.print(line, markup=False, soft_wrap=True)
    else:
        print(RENDERERS[fmt](result), end="")
    if not result.ok:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command()(verify)


def write_report(path: Path, text: str) -> None:
    try:
        with atomic_write(path, durable=False) as f:
            f.write(text.encode())
    except OSError as e:
        raise BadOutput(f"cannot write the report to {path} ({e.strerror or e}); check the directory exists "
                        f"and is writable") from None


# ---------------------------------------------------------------- renderers

def text_lines(result: verify_op.VerifyResult) -> list[str]:
    """One line per failing commit and reason, notes, then the summary."""
    lines = [str(f) for r in result.failing for f in r.findings]
    lines += [f"note: {n}" for n in result.notes]
    return lines + [summary(result)]


def summary(result: verify_op.VerifyResult) -> str:
    s = result.stats
    data = (f"{human_size(s.bytes_verified)} re-hashed" if result.deep
            else "data judged by index (add --deep to re-hash it)")
    verdict = "all reproducible" if result.ok else plural(len(result.failing), "failing commit")
    return (f"verify: {plural(s.commits, 'commit')} checked ({s.training_commits} training), "
            f"{plural(s.datasets, 'dataset version')}, {plural(s.chunks, 'chunk')}, {data}, against {result.where} "
            f"in {s.seconds:.1f} s: {verdict}")


def render_text(result: verify_op.VerifyResult) -> str:
    return "".join(line + "\n" for line in text_lines(result))


def render_json(result: verify_op.VerifyResult) -> str:
    return json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True) + "\n"


def render_junit(result: verify_op.VerifyResult) -> str:
    """JUnit XML: one testcase per commit, one <failure> per failing commit listing every reason."""
    s = result.stats
    failures = str(len(result.failing))
    suites = ET.Element("testsuites", name="gitrepro verify", tests=str(s.commits), failures=failures, errors="0",
                        time=f"{s.seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name="gitrepro verify", tests=str(s.commits), failures=failures,
                          errors="0", skipped="0", time=f"{s.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for key, value in (("where", result.where), ("deep", str(result.deep).lower()),
                       *((k, str(v)) for k, v in dataclasses.asdict(s).items())):
        ET.SubElement(props, "property", name=key, value=_xml(value))
    for r in result.reports:
        case = ET.SubElement(suite, "testcase", classname="gitrepro.repro.verify", name=_xml(f"{r.commit[:12]} {r.subject}"),
                             time="0")
        if r.findings:
            failure = ET.SubElement(case, "failure", type="gitrepro.repro.verify",
                                    message=_xml(f"{plural(len(r.findings), 'problem')}: {r.findings[0]}"))
            failure.text = _xml("".join(f"{f}\n" for f in r.findings))
    ET.SubElement(suite, "system-out").text = _xml(render_text(result))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _xml(text: str) -> str:
    """Text XML 1.0 can carry: control characters and lone surrogates become '?'."""
    return _NOT_XML.sub("?", text)


RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit}


# ---------------------------------------------------------------- progress

@contextlib.contextmanager
def _progress(enabled: bool = True):
    """Commits checked (n of N), then bytes re-hashed for --deep, on stderr; yields the callback or None."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[amount]}"),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(stage: str, done: int, total: int) -> None:
            amount = f"{done}/{total} commits" if stage == "commits" else f"{human_size(done)}/{human_size(total)}"
            if stage not in tasks:
                tasks[stage] = bar.add_task("verify" if stage == "commits" else "re-hash", total=total, amount="")
            bar.update(tasks[stage], completed=done, total=total, amount=amount)

        yield advance
