"""`python -m gitrepro` and the `gitrepro` console script."""

import sys


def run() -> None:
    from gitrepro.cli.fast import try_fast

    code = try_fast(sys.argv[1:])
    if code is None:
        from gitrepro.cli.app import main  # the full CLI (typer, rich) only when needed: see cli_fast

        code = main(sys.argv[1:])
    raise SystemExit(code)


if __name__ == "__main__":
    run()
