"""Shell completion for bash, zsh and fish: the script `gitrepro --show-completion [SHELL]` prints,
the one `--install-completion [SHELL]` installs (typer's scripts and install locations), and the
answer to a TAB press (the script runs `gitrepro` with `_GITREPRO_COMPLETE` set; click answers
from the command table, loading only the module of the command being completed).

Loaded only for these: no other command imports it, so completion costs their start-up nothing
(docs/cli.md, "Shell completion").
"""

from __future__ import annotations

import os
from pathlib import Path

from gitrepro.errors import GitreproError

PROG = "gitrepro"
COMPLETE_VAR = "_GITREPRO_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


class UnknownShell(GitreproError):
    """A shell gitrepro has no completion script for."""


class CannotInstall(GitreproError):
    """The completion script cannot be written where the shell reads it."""


def prepare() -> None:
    """Teach click typer's completion classes (the protocol the scripts speak), before a TAB is answered."""
    from typer._completion_classes import completion_init

    completion_init()


def shell_name(given: str | None) -> str:
    """The shell asked for, else the one this process runs under ($SHELL when it cannot be told)."""
    name = given
    if not name:
        import shellingham

        try:
            name = shellingham.detect_shell()[0]
        except shellingham.ShellDetectionFailure:
            name = os.path.basename(os.environ.get("SHELL", ""))
    if name not in SHELLS:
        raise UnknownShell(f"no completion for shell {name or '(unknown)'!r}; name one of {', '.join(SHELLS)}, "
                           f"e.g. `gitrepro --show-completion bash`")
    return name


def script(shell: str) -> str:
    """The completion script for `shell`, to source or copy."""
    from typer._completion_shared import get_completion_script

    prepare()
    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell_name(shell))


def install(shell: str | None) -> tuple[str, Path]:
    """Install the script where `shell` reads it at start-up (bash: ~/.bash_completions/ sourced
    from ~/.bashrc; zsh: ~/.zfunc/ with ~/.zshrc; fish: ~/.config/fish/completions/)."""
    from typer import _completion_shared as shared

    prepare()
    name = shell_name(shell)
    installer = {"bash": shared.install_bash, "zsh": shared.install_zsh, "fish": shared.install_fish}[name]
    try:
        return name, installer(prog_name=PROG, complete_var=COMPLETE_VAR, shell=name)
    except OSError as e:
        raise CannotInstall(f"cannot install {name} completion: {e.strerror or e} ({e.filename or '~'}); "
                            f"`gitrepro --show-completion {name}` prints the script to install by hand") from None
