"""Command line: parse arguments, call one operation, render its result (rich or --json).

`COMMANDS` maps every command to the cli module that defines it (one module per command
group); a module, and the operations it imports at its top, loads only when one of its
commands runs or help lists it. With `cli.fast.FAST` this is the one lazy-import boundary.

Errors are converted once, in `main`: a GitreproError is one stderr line and
exit 1; verification findings exit 2; anything unexpected exits 3 with the
traceback written to `<git dir>/gitrepro/log`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors its own click; catch whichever one raises
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

from gitrepro.cli.common import err
from gitrepro.errors import GitreproError, one_line
from gitrepro.store.repo import log_traceback

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
    "report": "gitrepro.cli.metrics",
}

_modules: dict[str, TyperGroup] = {}   # module -> its commands, built once


def module_commands(module: str) -> TyperGroup:
    """The commands `module` registers, as one click group (importing the module, on first use)."""
    if module not in _modules:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        _modules[module] = typer.main.get_group(sub)
    return _modules[module]


class _CommandTable(MutableMapping):
    """The root group's commands: those registered on `app` itself, then COMMANDS, each built
    when it is first looked up. Listing the names loads nothing."""

    def __init__(self, registered: dict):
        self.registered = dict(registered)

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


app = typer.Typer(cls=LazyGroup, add_completion=False, no_args_is_help=True,
                  help="Git-native data and config versioning for reproducible ML training.")


@app.callback()
def _root() -> None:
    # A callback makes typer build a group even though no command is registered on `app` itself.
    pass


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, prog_name="gitrepro", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except GitreproError as e:
        err.print(f"gitrepro: error: {one_line(e)}", markup=False, soft_wrap=True)
        return 1
    except typer.Exit as e:
        return e.exit_code
    except click_exc.ClickException as e:  # usage errors: one line, exit 1 (2 means "findings")
        if e.format_message():  # empty when no arguments were given and help was shown
            err.print(f"gitrepro: error: {e.format_message()} (see `gitrepro --help`)", markup=False)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        err.print("gitrepro: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:  # the one place allowed: nothing escapes as a traceback
        where = log_traceback()
        err.print(f"gitrepro: unexpected error: {type(e).__name__}: {one_line(e)} (details in {where})", markup=False)
        return 3
