"""Root of every error gitrepro raises on purpose (leaf module: imports nothing from gitrepro).

Each module keeps its own subclasses next to the code that raises them; the CLI
turns any GitreproError into one stderr line and exit status 1.
"""


class GitreproError(Exception):
    """An expected failure whose message tells the user what to do next."""
