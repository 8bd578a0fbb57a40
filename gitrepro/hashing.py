"""Object identity: BLAKE3-256 ids, hex form, and validation of ids read from untrusted input.

See docs/design.md, "Identity".
"""

from __future__ import annotations

import re

from blake3 import blake3

from .errors import GitreproError

ID_BYTES = 32
ID_HEX = 2 * ID_BYTES
_HEX_ID = re.compile(r"[0-9a-f]{64}")


class BadId(GitreproError):
    pass


def hash_bytes(data) -> bytes:
    """BLAKE3 digest (32 bytes) of a bytes-like object."""
    return blake3(data).digest()


def new_hasher():
    return blake3()


def parse_id(text: str, what: str = "object id") -> str:
    """Return `text` if it is a lower-case 64-hex-digit id, else raise BadId."""
    if not isinstance(text, str) or not _HEX_ID.fullmatch(text):
        raise BadId(f"invalid {what} {text!r}: expected 64 lower-case hex digits")
    return text
