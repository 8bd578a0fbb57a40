"""Command line: parse arguments, call one operation, render its result (rich or --json).

`COMMANDS` maps every command to the cli module that defines it (one module per command
group); a module, and the operations it imports at its top, loads only when one of its
commands runs or help lists it. With `cli.fast.FAST` this is the one lazy-import boundary.

The conventions every command keeps are applied here, once, as each is built (`conventions`):
`-q/--quiet`, help text printed as written (no rich markup), the pager for long output, and
gitrepro.toml checked before a command that reads it runs. The root takes git's global
options: `-C DIR`, `--no-pager`, `--version`, and the shell completion options (docs/cli.md).

Errors are converted once, in `main` (by `fast.converted`, as the fast path converts them): a
GitreproError is one stderr line and exit 1; verification findings exit 2; anything unexpected
exits 3 with the traceback written to `<git dir>/gitrepro/log`.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import List, Optional

import typer
from typer.core import TyperGroup, TyperOption

try:  # typer >= 0.20 vendors its own click; use (and catch) whichever one it runs on
    from typer._click import exceptions as click_exc
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc
    from click import get_current_context

from gitrepro.cli import common
from gitrepro.cli.common import err
from gitrepro.cli.fast import converted
from gitrepro.cli.projectfile import check_project
from gitrepro.errors import GitreproError

CORE, CHECKOUT, RUN, REMOTE = "gitrepro.cli.core", "gitrepro.cli.checkout", "gitrepro.cli.run", "gitrepro.cli.remote"
PROVENANCE, VERIFY, CONFIG = "gitrepro.cli.provenance", "gitrepro.cli.verify", "gitrepro.cli.config"

# Command (or group) -> the module whose `register(app)` defines it, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "init": CORE, "add": CORE, "status": CORE, "checkout": CHECKOUT, "fsck": CORE, "demo": CORE,
    "run": RUN, "repro": "gitrepro.cli.pipeline", "install-hooks": RUN, "uninstall-hooks": RUN, "hook-impl": RUN,
    "push": REMOTE, "fetch": REMOTE, "pull": REMOTE, "gc": REMOTE,
    "show": PROVENANCE, "log": PROVENANCE, "diff": PROVENANCE, "lineage": PROVENANCE, "reproduce": PROVENANCE,
    "verify": VERIFY,
    "config": CONFIG, "policy": RUN, "remote": REMOTE,
    "model": "gitrepro.cli.model", "import": "gitrepro.cli.imports", "update": "gitrepro.cli.imports",
    "get": "gitrepro.cli.imports",
    "merge-resolve": "gitrepro.cli.gitops", "stash": "gitrepro.cli.gitops",
    "metrics": "gitrepro.cli.metrics", "params": "gitrepro.cli.metrics", "exp": "gitrepro.cli.metrics",
    "report": "gitrepro.cli.metrics", "migrate": "gitrepro.cli.migrate",
}

_modules: dict[str, TyperGroup] = {}   # module -> its commands, built once

# Commands whose output can run long: through the pager on a terminal (cli.pager).
PAGED = {("log",), ("show",), ("diff",), ("exp", "show")}
# Commands that never read gitrepro.toml: they run even when it is broken.
NO_PROJECT = {"status", "hook-impl", "demo", "fsck"}


def module_commands(module: str) -> TyperGroup:
    """The commands `module` registers, as one click group (importing the module, on first use)."""
    if module not in _modules:
        sub = typer.Typer(rich_markup_mode=None)
        importlib.import_module(module).register(sub)
        _modules[module] = typer.main.get_group(sub)
        for name, command in _modules[module].commands.items():
            conventions(command, (name,))
    return _modules[module]


def conventions(command, path: tuple[str, ...]) -> None:
    """What every command does alike, applied as it is built (and to its sub-commands): help text
    as written, `-q/--quiet`, the project file checked first, the pager for long output."""
    command.rich_markup_mode = None   # rich markup would eat `[k=v ...]` and `[REMOTE]` from help
    names = {opt for param in command.params for opt in getattr(param, "opts", ())}
    if not names & {"-q", "--quiet"}:
        command.params.append(TyperOption(param_decls=["-q", "--quiet"], is_flag=True, expose_value=False,
                                          callback=_quiet, help="Print nothing but errors."))
    if path in PAGED:
        command.params.append(TyperOption(param_decls=["--no-pager"], is_flag=True, expose_value=False,
                                          callback=_no_pager, help="Do not page long output (see docs/cli.md)."))
    if command.callback is not None:
        command.callback = _wrapped(command.callback, path)
    for name, sub in getattr(command, "commands", {}).items():
        conventions(sub, path + (name,))


def _quiet(ctx, param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        common.quiet(ctx)


def _no_pager(ctx, param, value: bool) -> None:
    if value:
        ctx.meta[NO_PAGER] = True


NO_PAGER = "gitrepro.no_pager"


def _wrapped(callback, path: tuple[str, ...]):
    @functools.wraps(callback)
    def run(*args, **kwargs):
        if path[0] not in NO_PROJECT:
            check_project()
        if path not in PAGED:
            return callback(*args, **kwargs)
        from gitrepro.cli import pager

        with pager.paged(enabled=not get_current_context().meta.get(NO_PAGER)):
            return callback(*args, **kwargs)
    return run


class _CommandTable(MutableMapping):
    """The root group's commands: those registered on `app` itself, then COMMANDS, each built
    when it is first looked up. Listing the names loads nothing."""

    def __init__(self, registered: dict):
        self.registered = dict(registered)
        for name, command in self.registered.items():   # commands registered on `app` itself keep them too
            conventions(command, (name,))

    def __getitem__(self, name: str):
        if name in self.registered:
            return self.registered[name]
        if name not in COMMANDS:
            raise KeyError(name)
        command = module_commands(COMMANDS[name]).get_command(None, name)
        if command is None:
            raise KeyError(name)
        return command

    def __setitem__(self, name: str, command) -> None:
        self.registered[name] = command

    def __delitem__(self, name: str) -> None:
        del self.registered[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self.registered]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*COMMANDS, *self.registered]))


class LazyGroup(TyperGroup):
    """The root `gitrepro` group, whose commands come from `_CommandTable`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.commands = _CommandTable(self.commands)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)


app = typer.Typer(cls=LazyGroup, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Git-native data and config versioning for reproducible ML training.")


class BadDirectory(GitreproError):
    """`-C DIR` names a directory that cannot be entered."""


def _version(value: bool) -> None:
    if value:
        from gitrepro.util.version import __version__

        print(f"gitrepro {__version__}")
        raise typer.Exit(0)


COMPLETION = ("--show-completion", "--install-completion")
_SHELLS = "bash, zsh or fish, as in `gitrepro --show-completion zsh` (default: the shell you run)"


@app.callback()
def _root(ctx: typer.Context,
          directory: Optional[List[str]] = typer.Option(None, "-C", metavar="DIR",
                                                        help="Run as if started in DIR (repeatable, as git's -C)."),
          no_pager: bool = typer.Option(False, "--no-pager", "-P", help="Do not page long output."),
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print gitrepro's version and exit."),
          show: bool = typer.Option(False, "--show-completion", is_eager=True,
                                    callback=lambda v: _completion(["--show-completion"]) if v else None,
                                    help=f"Print the shell completion script for SHELL: {_SHELLS}."),
          install: bool = typer.Option(False, "--install-completion", is_eager=True,
                                       callback=lambda v: _completion(["--install-completion"]) if v else None,
                                       help="Install shell completion for SHELL: bash, zsh or fish (default: "
                                            "the shell you run).")) -> None:
    for d in directory or []:
        try:
            os.chdir(d or ".")
        except OSError as e:
            raise BadDirectory(f"cannot change to {d!r}: {e.strerror or e}") from None
    if no_pager:
        ctx.meta[NO_PAGER] = True


def _completion(argv: list[str]) -> int:
    """`--show-completion [SHELL]` and `--install-completion [SHELL]`: the shell is optional, so
    `main` answers these before typer parses (its click has no options with optional values)."""
    from gitrepro.cli import completion

    shell = argv[1] if len(argv) > 1 else None
    if argv[0] == "--install-completion":
        name, path = completion.install(shell)
        print(f"{name} completion installed in {path}; it takes effect in a new shell")
    else:
        print(completion.script(shell))
    raise typer.Exit(0)


def main(argv: list[str] | None = None) -> int:
    """`gitrepro ARGV` by the full CLI; the working directory and stdout are as they were after."""
    cwd, stdout = os.getcwd(), sys.stdout
    if "_GITREPRO_COMPLETE" in os.environ:   # a TAB press: the completion script asks for words
        from gitrepro.cli import completion

        completion.prepare()
    try:
        return _run(argv)
    finally:
        sys.stdout = stdout
        err.quiet = False
        os.chdir(cwd)


def _run(argv: list[str] | None) -> int:
    return converted(lambda: _typer_run(argv), _error)


def _typer_run(argv: list[str] | None) -> int:
    """typer's own outcomes (exit codes, usage errors, ^C) as exit codes; the rest `converted`."""
    try:
        if argv and argv[0] in COMPLETION and len(argv) <= 2:
            return _completion(argv)
        result = app(args=argv, prog_name="gitrepro", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130:   # typer returns ^C (KeyboardInterrupt) as exit code 130, silently
            return _error("gitrepro: interrupted", 130)
        return code
    except typer.Exit as e:
        return e.exit_code
    except click_exc.ClickException as e:  # usage errors: one line, exit 1 (2 means "findings")
        if e.format_message():  # empty when no arguments were given and help was shown
            return _error(f"gitrepro: error: {e.format_message()} (see `gitrepro --help`)", 1)
        return 1
    except typer.Abort:
        return _error("gitrepro: interrupted", 130)


def _error(line: str, code: int) -> int:
    """Errors print even under -q."""
    err.quiet = False
    err.print(line, markup=False, soft_wrap=True)
    return code
