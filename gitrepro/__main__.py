"""`python -m gitrepro` and the `gitrepro` console script."""

import sys


def run() -> None:
    from .cli import main

    raise SystemExit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
