"""Tests for the conventions every command keeps (gitrepro.cli.app, common, fast, paths, render,
completion; docs/cli.md): --version, -C, -q, status --quiet/--porcelain, verify --json, shell
completion, paths relative to the current directory, one meaning per short flag, usage and help
lines, units and plurals, progress and ^C on a real terminal, and gitrepro.toml's errors. Through
`cli.main` (the full CLI), `cli.fast.main` (the start-up fast path: both must agree) or a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import typer

from conftest import run_git
from gitrepro.cli import app as cli
from gitrepro.cli import fast
from gitrepro.cli.render import add_lines
from gitrepro.worktree.unchanged import SnapshotResult
from helpers_trees import make_tree
from helpers_tty import PY, on_tty, reader_waits, tty_env


@pytest.fixture
def run_fast(capsys):
    """run_fast(*args) -> (code, out, err) through the start-up fast path (`gitrepro` itself)."""
    def run(*args):
        capsys.readouterr()
        code = fast.main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


@pytest.fixture
def tracked(git_repo, run_cli, commit):
    """Two committed datasets, data/train and data/test, with a warm stat cache."""
    make_tree(git_repo / "data" / "train", {"a": b"1", "b": b"2"})
    make_tree(git_repo / "data" / "test", {"c": b"3"})
    assert run_cli("init").code == 0 and run_cli("add", "data/train", "data/test").code == 0
    commit("data")
    return git_repo


def commands() -> list[tuple[str, ...]]:
    """Every command path (groups and sub-commands), and its click command."""
    found = []

    def walk(group, prefix):
        for name in group.list_commands(None) if hasattr(group, "list_commands") else []:
            command = group.get_command(None, name) if hasattr(group, "get_command") else group.commands[name]
            found.append((prefix + (name,), command))
            walk(command, prefix + (name,))

    walk(typer.main.get_command(cli.app), ())
    return found


def option_names(command) -> set[str]:
    return {o for p in command.params for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}


# ---------------------------------------------------------------- --version, -C, -q

def test_version_is_printed_by_the_fast_path_and_the_full_cli(run_cli, run_fast):
    from gitrepro.util.version import __version__

    assert run_fast("--version") == (0, f"gitrepro {__version__}\n", "")
    full = run_cli("--version")
    assert full.code == 0 and full.out == f"gitrepro {__version__}\n"


def test_dash_C_runs_as_if_started_in_that_directory(tracked, run_cli, run_fast, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    assert run_fast("-C", "../repo", "status") == (0, "data/test: clean\ndata/train: clean\n", "")
    assert run_fast("-C", "..", "-C", "repo/data", "status", "train") == (0, "train: clean\n", "")
    full = run_cli("-C", "../repo", "fsck")
    assert full.code == 0 and "0 problems" in full.out
    assert os.getcwd() == str(elsewhere), "the full CLI leaves the working directory as it was"
    assert "cannot change to 'nowhere'" in run_cli("-C", "nowhere", "fsck").error_line()
    code, out, err = run_fast("-C", "nowhere", "status")
    assert code == 1 and err.startswith("gitrepro: error: cannot change to 'nowhere'")


def test_every_command_takes_quiet():
    missing = [" ".join(path) for path, command in commands() if not {"-q", "--quiet"} <= option_names(command)]
    assert not missing, f"no -q/--quiet: {missing}"


def test_quiet_prints_nothing_but_errors(git_repo, run_cli, commit):
    make_tree(git_repo / "data", {"a": b"1"})
    assert run_cli("init", "-q").out == "" and run_cli("add", "--quiet", "data").out == ""
    commit()
    (git_repo / "data" / "a").write_bytes(b"2")
    for args in (["add", "-q", "data"], ["fsck", "-q"], ["checkout", "-q", "-f"], ["log", "-q"], ["show", "-q"]):
        done = run_cli(*args)
        assert (done.code, done.out, done.err) == (0, "", ""), (args, done)
    assert "no-such-rev" in run_cli("checkout", "-q", "no-such-rev").error_line()


# ---------------------------------------------------------------- status --quiet / --porcelain

@pytest.mark.parametrize("path", ["fast", "full"])
def test_status_quiet_exits_1_when_any_dataset_differs(tracked, run_cli, run_fast, path):
    def quiet(*args):
        if path == "fast":
            return run_fast("status", *args)
        done = run_cli("status", *args)
        return done.code, done.out, done.err

    assert quiet("--quiet") == (0, "", "") and quiet("-q", "data/train") == (0, "", "")
    (tracked / "data" / "train" / "a").write_bytes(b"changed")
    assert quiet("-q") == (1, "", "") and quiet("--quiet", "data/train") == (1, "", "")
    assert quiet("-q", "data/test") == (0, "", ""), "only the datasets named count"


def test_status_porcelain_is_one_stable_line_per_difference_on_both_paths(tracked, run_cli, run_fast):
    train = tracked / "data" / "train"
    (train / "a").write_bytes(b"changed")
    (train / "b").unlink()
    (train / "new\nline").write_bytes(b"odd name")
    (train / "plain").write_bytes(b"new")
    (tracked / "data" / "test" / "c").unlink()
    (tracked / "data" / "test").rmdir()
    expected = '! data/test\nM data/train/a\nA "data/train/new\\nline"\nA data/train/plain\nD data/train/b\n'
    code, out, _ = run_fast("status", "--porcelain")
    full = run_cli("status", "--porcelain")
    assert sorted(out.splitlines()) == sorted(expected.splitlines()) and code == 0
    assert full.code == 0 and full.out == out
    os.chdir(train)
    assert run_fast("status", "--porcelain")[1] == out, "porcelain paths stay relative to the root"


# ---------------------------------------------------------------- verify --json

def test_verify_json_is_the_json_report(tracked, run_cli):
    as_json, as_format = run_cli("verify", "--json"), run_cli("verify", "--format", "json")
    assert as_json.code == as_format.code == 0
    report = json.loads(as_json.out)
    assert report.keys() == json.loads(as_format.out).keys() and report["stats"]["commits"] == 1
    assert "--json or --format junit" in run_cli("verify", "--json", "--format", "junit").error_line()


# ---------------------------------------------------------------- shell completion

@pytest.mark.parametrize("shell,marker", [("bash", "complete -o default -F"), ("zsh", "#compdef gitrepro"),
                                          ("fish", "complete --command gitrepro")])
def test_show_completion_prints_the_script_for_each_shell(run_cli, shell, marker):
    done = run_cli("--show-completion", shell)
    assert done.code == 0 and marker in done.out and "_GITREPRO_COMPLETE" in done.out


def test_install_completion_writes_the_script_where_the_shell_reads_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    done = run_cli("--install-completion", "bash")
    script = tmp_path / ".bash_completions" / "gitrepro.sh"
    assert done.code == 0 and str(script) in done.out
    assert "_GITREPRO_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    assert "tcsh" in run_cli("--show-completion", "tcsh").error_line()


def test_a_tab_press_is_answered_from_the_command_table(tmp_path):
    env = {**os.environ, "_GITREPRO_COMPLETE": "complete_bash"}
    words = subprocess.run([PY, "-m", "gitrepro"], cwd=tmp_path, capture_output=True, text=True,
                           env={**env, "COMP_WORDS": "gitrepro pu", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["push", "pull"], words
    options = subprocess.run([PY, "-m", "gitrepro"], cwd=tmp_path, capture_output=True, text=True,
                             env={**env, "COMP_WORDS": "gitrepro checkout --fo", "COMP_CWORD": "2"})
    assert options.stdout.split() == ["--force"], options


def test_completion_costs_other_commands_nothing(tmp_path):
    """A full-CLI command (help of the whole app, and a real command) loads no gitrepro completion
    code (typer imports its own with itself; the fast paths load neither: tests/test_startup.py)."""
    probe = ("import sys\nfrom gitrepro.cli import app\n"
             "app.main(['--help']); app.main(['fsck'])\n"
             "print('gitrepro.cli.completion' in sys.modules)")
    done = subprocess.run([PY, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "False", done


# ---------------------------------------------------------------- paths relative to the current directory

def test_paths_are_relative_to_the_current_directory_from_a_subdirectory(git_repo, run_cli, run_fast, commit):
    make_tree(git_repo / "data" / "train", {"a": b"1", "b": b"2"})
    assert run_cli("init").code == 0
    os.chdir(git_repo / "data")
    added = run_cli("add", "train/")
    assert added.code == 0 and added.out.splitlines()[0].startswith("train: 2 files, ")
    assert added.out.splitlines()[-1] == "next: git add train.gitrepro ../.gitignore ../gitrepro.toml && git commit"
    commit("data")
    for status in (run_fast("status", "train/")[1], run_cli("status", ".").out, run_cli("status", "train").out):
        assert status == "train: clean\n"
    (git_repo / "data" / "train" / "a").write_bytes(b"changed")
    assert run_fast("status")[1] == run_cli("status").out == "train: modified\n  modified: train/a\n"
    restored = run_cli("checkout", "-d", "train/", "--force")
    assert restored.code == 0 and restored.out.startswith("train: wrote 1 file (1 B)")
    assert run_cli("checkout", "--to", "../copy").code == 0
    assert (git_repo / "copy" / "data" / "train" / "b").read_bytes() == b"2"
    assert "not a tracked dataset: data/nope" in run_cli("status", "nope").error_line()


# ---------------------------------------------------------------- flags, usage lines, help text

def test_one_meaning_per_short_flag():
    meanings: dict[str, dict[str, list[str]]] = {}
    for path, command in commands():
        for p in command.params:
            opts = [*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())]
            long = next((o for o in opts if o.startswith("--")), p.name)
            for short in (o for o in opts if re.fullmatch(r"-[A-Za-z]", o)):
                meanings.setdefault(short, {}).setdefault(long, []).append(" ".join(path) or "gitrepro")
    clashes = {s: m for s, m in meanings.items() if len(m) > 1}
    assert not clashes, clashes
    assert set(meanings["-f"]) == {"--force"}


@pytest.mark.parametrize("command,usage", [("run", "Usage: gitrepro run [OPTIONS] [KEY=VALUE]... -- COMMAND [ARG]..."),
                                           ("log", "Usage: gitrepro log [OPTIONS] [RANGE] [-- PATH]...")])
def test_usage_lines_show_what_follows_the_dashes(run_cli, command, usage):
    assert run_cli(command, "--help").out.splitlines()[0] == usage


def test_help_text_keeps_its_brackets(run_cli):
    """Rich markup would eat `[k=v ...]` and `[REMOTE]`: every bracketed piece of help survives."""
    lost = []
    for path, command in commands():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        pieces = {m for t in texts for m in re.findall(r"\[[^\]\n]*\]", " ".join(t.split()))}
        if pieces:
            shown = " ".join(run_cli(*path, "--help").out.split())
            lost += [f"{' '.join(path)}: {piece}" for piece in pieces if piece not in shown]
    assert not lost, lost
    assert "[k=v ...]" in run_cli("run", "--help").out


# ---------------------------------------------------------------- units, dedup, plurals

def snapshot(files: int, size: int, stored: int, changed: bool = True) -> SnapshotResult:
    return SnapshotResult("data", "data.gitrepro", "0" * 64, "dir", files, size, size, 0, stored, 1, changed)


def test_add_summary_names_no_ratio_it_cannot_give_and_counts_in_the_singular():
    [unchanged] = add_lines([snapshot(1, 5, 0, changed=False)])
    [tiny, hint] = add_lines([snapshot(0, 0, 300)])
    [one, _] = add_lines([snapshot(1, 2048, 1024)])
    assert unchanged.startswith("data: 1 file, 5 B;") and "nothing new stored" in unchanged
    assert "dedup" not in tiny and "stored 300 B new ->" in tiny and tiny.startswith("data: 0 files")
    assert "stored 1.0 KiB new, dedup 2.0x -> data.gitrepro" in one
    assert hint == "next: git add data.gitrepro .gitignore && git commit"
    assert not any("inf" in line or "0.0x" in line for line in unchanged + tiny + one)


# ---------------------------------------------------------------- progress and ^C on a terminal

@pytest.fixture
def pushed(tracked, run_cli, commit, tmp_path):
    """data/train grown to 3 MiB, committed, and a directory remote `origin` (nothing pushed yet)."""
    (tracked / "data" / "train" / "big").write_bytes(os.urandom(3 << 20))
    assert run_cli("add", "data/train").code == 0
    assert run_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default").code == 0
    commit("big")
    return tracked


def plain(seen: str) -> str:
    """What a terminal shows, without colour and cursor escapes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)


def test_push_and_pull_show_total_rate_and_eta_in_binary_units(pushed, tmp_path):
    code, seen = on_tty(["push"], pushed, tty_env())
    seen = plain(seen)
    assert code == 0 and re.search(r"push \S+ [\d.]+ (B|KiB|MiB) / 3\.\d MiB", seen), seen
    assert re.search(r"3\.\d MiB / 3\.\d MiB [\d.]+ (KiB|MiB|GiB)/s \d:\d\d:\d\d", seen), "rate and ETA"
    assert re.search(r"[\d.]+ (B|KiB|MiB|GiB)/s", seen) and not re.search(r"\bMB\b|\bkB\b|/\?|\?/", seen), seen
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(pushed), str(clone))
    code, seen = on_tty(["pull"], clone, tty_env())
    seen = plain(seen)
    assert code == 0 and re.search(r"fetch \S+ [\d.]+ (B|KiB|MiB) / [\d.]+ (KiB|MiB)", seen), seen
    assert re.search(r"checkout \S+ [\d.]+ (B|KiB|MiB) / 3\.\d MiB", seen), "pull's checkout has its own bar"
    assert (clone / "data" / "train" / "big").stat().st_size == 3 << 20


def test_a_checkout_that_fetches_missing_chunks_shows_the_fetch_on_its_own_row(pushed, tmp_path):
    assert on_tty(["push"], pushed, tty_env())[0] == 0
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(pushed), str(clone))
    code, seen = on_tty(["checkout"], clone, tty_env())    # no fetch first: checkout fetches what it needs
    seen = plain(seen)
    assert code == 0, seen
    assert re.search(r"fetch\s+\S+ 3\.\d MiB / 3\.\d MiB [\d.]+ (KiB|MiB|GiB)/s", seen), seen   # the chunks
    assert re.search(r"checkout\s+\S+ 3\.\d MiB / 3\.\d MiB", seen), seen
    assert "data/train: wrote 3 files (3.0 MiB)" in seen and not re.search(r"\bMB\b|/\?|\?/", seen)
    assert (clone / "data" / "train" / "big").stat().st_size == 3 << 20


def test_an_interrupted_command_leaves_its_interrupted_line_visible(tracked, run_cli, tmp_path):
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    os.mkfifo(stuck / "gitrepro-remote.toml")   # push waits to read the remote's config: ^C it there
    assert run_cli("remote", "add", "stuck", str(stuck)).code == 0
    opened: list[int] = []
    try:
        code, seen = on_tty(["push", "stuck"], tracked, tty_env(),
                            interrupt_when=lambda: reader_waits(stuck / "gitrepro-remote.toml", opened))
    finally:
        for fd in opened:
            os.close(fd)
    assert code == 130 and seen.endswith("gitrepro: interrupted\r\n"), seen
    assert "Traceback" not in seen


# ---------------------------------------------------------------- gitrepro.toml

def test_init_and_add_say_to_commit_gitrepro_toml(git_repo, run_cli, commit):
    init = run_cli("init")
    assert init.out.splitlines()[-1].startswith("next: git add gitrepro.toml && git commit")
    make_tree(git_repo / "data", {"a": b"1"})
    assert run_cli("add", "data").out.splitlines()[-1] == \
        "next: git add data.gitrepro .gitignore gitrepro.toml && git commit"
    commit()
    (git_repo / "data" / "b").write_bytes(b"2")
    assert run_cli("add", "data").out.splitlines()[-1] == "next: git add data.gitrepro .gitignore && git commit"
    assert "next:" not in run_cli("init").out


@pytest.mark.parametrize("broken,fragment", [("[chunker\n", "not valid TOML"),
                                             ("[chunker]\navg_size = 10\n", "bad [chunker]")])
@pytest.mark.parametrize("args", [["add", "data/train"], ["checkout", "--force"], ["remote", "list"],
                                  ["push"], ["log"]], ids=" ".join)
def test_a_broken_gitrepro_toml_is_reported_by_every_command_that_reads_it(tracked, run_cli, broken, fragment,
                                                                           args):
    (tracked / "data" / "train" / "a").write_bytes(b"changed")   # add has work to do (the store exists)
    (tracked / "gitrepro.toml").write_text(broken)
    line = run_cli(*args).error_line()
    assert "gitrepro.toml" in line and fragment in line

