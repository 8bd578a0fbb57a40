"""Root of every error gitrepro raises on purpose (leaf module: imports nothing from gitrepro).

Each module keeps its own subclasses next to the code that raises them; the CLI
turns any GitreproError into one stderr line and exit status 1.
"""


class GitreproError(Exception):
    """An expected failure whose message tells the user what to do next."""


# Line breaks become spaces; every other C0/C1 control character (a message may quote bytes from a
# hostile file: a terminal escape, a carriage return that hides the start of the line) its escape.
_ONE_LINE = {c: " " for c in (0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029)}
_ONE_LINE.update({c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)] if c not in _ONE_LINE})


def one_line(message: object) -> str:
    """`message` as one printable line, as every error is printed; a message that ends in a
    `hint: ...` line (git's convention) keeps that one line break."""
    head, sep, hint = str(message).rpartition("\nhint: ")
    if not sep:
        return hint.translate(_ONE_LINE)
    return f"{head.translate(_ONE_LINE)}\nhint: {hint.translate(_ONE_LINE)}"
