"""`python -m gitrepro` and the `gitrepro` console script."""

import sys

from gitrepro.cli.fast import main


def run() -> None:
    raise SystemExit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
