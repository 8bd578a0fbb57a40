"""Commands for runs and hooks: `run`, `install-hooks`, `uninstall-hooks`, `policy check`,
and the hidden `hook-impl` the installed hooks (and the pre-commit framework) call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from gitrepro.cli.common import AFTER_DASHES, JsonOpt, after_dashes, err, out, print_json
from gitrepro.cli.paths import Shown, in_repo
from gitrepro.errors import GitreproError
from gitrepro.repro import hooks as hooks_op
from gitrepro.repro.hooks import shims
from gitrepro.repro import policy as policy_op
from gitrepro.repro import run as run_op
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural


class BadSeedOption(GitreproError):
    pass


def run(ctx: typer.Context,
        overrides: Optional[List[str]] = typer.Argument(None, metavar="[KEY=VALUE]...",
                                                        help="Config overrides key=value (before `--`)."),
        config: Optional[Path] = typer.Option(None, "--config", "-c",
                                              help="Source config to resolve, or a resolved one."),
        seed: Optional[str] = typer.Option(None, "--seed", help="Seed: an integer, or 'auto' if the config has none."),
        output: Optional[List[str]] = typer.Option(None, "--output", "-o",
                                                   help="Output path to snapshot (repeatable)."),
        inputs: Optional[List[str]] = typer.Option(None, "--input", "-i",
                                                   help="Dataset the run reads (repeatable; default: those the "
                                                        "config names)."),
        dep: Optional[List[str]] = typer.Option(None, "--dep", help="Code path the run depends on, relative to the "
                                                                    "current directory (repeatable; default: [run] "
                                                                    "code, else the whole tree)."),
        name: str = typer.Option("", "--name", help="Name of this sweep point: its resolved config is "
                                                    "<config>.<name>.resolved.toml."),
        allow_dirty: bool = typer.Option(False, "--allow-dirty", help="Run over uncommitted code (recorded)."),
        metrics: Optional[List[str]] = typer.Option(None, "--metrics", "-M", help="Metrics file the command writes "
                                                    "(JSON, TOML or YAML; repeatable): read into the record."),
        as_json: bool = JsonOpt) -> None:
    """Run a training command with provenance: `gitrepro run -c cfg.toml [k=v ...] -- python train.py`."""
    repo = Repo.find()
    result = run_op.run(repo, ctx.meta.get(AFTER_DASHES, []), config=config, overrides=overrides or [],
                        seed=_seed(seed), outputs=output or [], allow_dirty=allow_dirty, inputs=inputs,
                        code=[in_repo(repo.root, d) or "." for d in dep] if dep else dep, name=name, metrics=metrics,
                        say=lambda line: err.print(line, markup=False, soft_wrap=True))
    if as_json:
        print_json(result)
    for missing in result.missing_outputs:
        err.print(f"warning: declared output {missing} does not exist; nothing snapshotted for it", markup=False)
    rec = result.record
    files = [rec.path] + ([rec.config.path] if rec.config else []) + [f"{o}.gitrepro" for o in rec.outputs]
    files += [".gitignore"] if rec.outputs else []
    shown = Shown(repo.root)   # paths relative to the current directory, as the user types them
    err.print(f"next: git add {' '.join(shown(f) for f in files)} && git commit", markup=False, soft_wrap=True)
    if result.exit_status:
        raise typer.Exit(128 - result.exit_status if result.exit_status < 0 else result.exit_status)


def _seed(text: str | None) -> int | str | None:
    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise BadSeedOption(f"--seed must be an integer or 'auto', not {text!r}") from None


HookOpt = typer.Option(None, "--hook", help="Only this hook (repeatable).")


def install_hooks(hook: Optional[List[str]] = HookOpt) -> None:
    """Install gitrepro's hooks (pre-commit, pre-push; post-checkout, post-merge, post-commit and post-rewrite,
    which bring the data along with git) and the pointer merge driver, chaining existing hooks."""
    changes = shims.install(Repo.find(), hook or hooks_op.HOOK_TYPES)
    for c in changes:
        out.print(f"{c.hook}: {c.action} ({c.path})", markup=False)


def uninstall_hooks(hook: Optional[List[str]] = HookOpt) -> None:
    """Remove gitrepro's hooks and restore the hooks they chained."""
    for c in shims.uninstall(Repo.find(), hook or hooks_op.HOOK_TYPES):
        out.print(f"{c.hook}: {c.action} ({c.path})", markup=False)


def hook_impl(hook: str = typer.Argument(..., help="pre-commit, pre-push or post-checkout."),
              args: Optional[List[str]] = typer.Argument(None, help="git's hook arguments.")) -> None:
    """What an installed hook runs (also the pre-commit framework's entry)."""
    outcome = hooks_op.run_hook(Repo.find(), hook, args or [], sys.stdin.read)
    for line in outcome.messages:
        err.print(line, markup=False, soft_wrap=True)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def policy_check(rev: Optional[str] = typer.Argument(None, help="Commit to judge (default HEAD)."),
                 staged: bool = typer.Option(False, "--staged", help="Judge the staged index, as pre-commit does."),
                 as_json: bool = JsonOpt) -> None:
    """Judge a commit (or the index) by the training-commit policy; exit 2 on violations."""
    repo = Repo.find()
    result = policy_op.check_staged(repo) if staged else policy_op.check_commit(repo, rev or "HEAD")
    if as_json:
        print_json(result)
    else:
        kind = "training commit" if result.training else "not a training commit"
        out.print(f"{result.target}: {kind}; {plural(len(result.records), 'run record')}, "
                  f"{plural(len(result.pointers), 'changed pointer')}: {plural(len(result.violations), 'violation')}",
                  markup=False)
        for v in result.violations:
            out.print(f"  {v}", markup=False, soft_wrap=True)
    if result.violations:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command(cls=after_dashes("-- COMMAND [ARG]..."))(run)
    app.command("install-hooks")(install_hooks)
    app.command("uninstall-hooks")(uninstall_hooks)
    app.command("hook-impl", hidden=True)(hook_impl)
    policy = typer.Typer(help="The training-commit policy the pre-commit hook enforces.", no_args_is_help=True)
    policy.command("check")(policy_check)
    app.add_typer(policy, name="policy")

