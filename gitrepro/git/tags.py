"""Annotated git tags: listing them with their target commit, tagger, message and whether they
are signed; creating one (signed as `git tag -s` signs); checking a signature with
`git verify-tag`. The model registry is built on these (docs/registry.md).

Tags arrive with a fetch from anyone who can push, so a tag object is untrusted: one larger than
MAX_TAG_BYTES or whose header does not parse is skipped, never an error.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

from gitrepro.git.plumbing import GitError, git, read_blobs

MAX_TAG_BYTES = 256 * 1024
_TAGGER = re.compile(r"(.*) <([^<>]*)> (\d{1,15}) ([+-]\d{4})")
_SIGNATURE_STARTS = ("-----BEGIN PGP SIGNATURE-----", "-----BEGIN SSH SIGNATURE-----",
                     "-----BEGIN SIGNED MESSAGE-----")


class TagExists(GitError):
    pass


class Tag(NamedTuple):
    name: str
    target: str        # the commit the tag names
    tagger: str        # "Name <email>"
    timestamp: int     # tagger date, seconds since the epoch
    offset: str        # the tagger's UTC offset, "+0100"
    message: str       # without the signature
    signed: bool


class Signature(NamedTuple):
    status: str        # "good", "bad" (signed, but git cannot vouch for it) or "unsigned"
    detail: str        # git's own words (the signer, or why it failed)


def list_annotated(root: Path) -> list[Tag]:
    """Every annotated tag that names a commit (lightweight tags and tags of other objects are not
    listed), in name order (two git processes, whatever the number of tags)."""
    out = git("for-each-ref", "--format=%(objectname) %(objecttype) %(*objecttype) %(*objectname) "
              "%(objectsize) %(refname:strip=2)", "refs/tags", cwd=root).decode(errors="replace")
    wanted: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        parts = line.split(" ", 5)
        if len(parts) == 6 and parts[1] == "tag" and parts[2] == "commit" and int(parts[4]) <= MAX_TAG_BYTES:
            wanted[parts[0]] = (parts[5], parts[3])
    objects = read_blobs(list(wanted), cwd=root)
    found = []
    for sha, (name, target) in sorted(wanted.items(), key=lambda item: item[1][0]):
        tag = parse_tag_object(name, target, objects[sha])
        if tag is not None:
            found.append(tag)
    return found


def parse_tag_object(name: str, target: str, data: bytes) -> Tag | None:
    """The tag object's tagger, message and signature; None when its header does not parse."""
    text = data.decode("utf-8", errors="replace")
    header, sep, message = text.partition("\n\n")
    tagger = next((line[7:] for line in header.splitlines() if line.startswith("tagger ")), None)
    found = _TAGGER.fullmatch(tagger) if sep and tagger else None
    if found is None:
        return None
    message, signed = _split_signature(message)
    return Tag(name, target, f"{found[1]} <{found[2]}>", int(found[3]), found[4], message, signed)


def _split_signature(message: str) -> tuple[str, bool]:
    """The message without a trailing signature block, and whether there was one."""
    lines = message.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip("\n") in _SIGNATURE_STARTS:
            return "".join(lines[:i]), True
    return message, False


def create(root: Path, name: str, target: str, message: str, *, sign: bool = False) -> None:
    """An annotated tag `name` on commit `target` with `message` kept verbatim; signed with the
    user's configured key when `sign` (as `git tag -s`: gpg, ssh or x509 per gpg.format)."""
    if git("tag", "--list", name, cwd=root).strip():
        raise TagExists(f"tag {name} already exists; a registered version or stage tag is never moved")
    git("check-ref-format", f"refs/tags/{name}", cwd=root)
    git("tag", "-s" if sign else "-a", "--cleanup=verbatim", "-F", "-", name, target, cwd=root,
        input=message.encode())


def verify(root: Path, tag: Tag) -> Signature:
    """Whether git vouches for the tag's signature (`git verify-tag`, with the user's keyring or
    allowed-signers file)."""
    if not tag.signed:
        return Signature("unsigned", "")
    proc = subprocess.run(["git", "verify-tag", "--", tag.name], cwd=root, capture_output=True,
                          env={**os.environ, "LC_ALL": "C"})
    lines = [line.strip() for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
    words = next((line for line in lines if line.startswith(("Good", "gpg: Good"))), lines[-1] if lines else "")
    return Signature("good" if proc.returncode == 0 else "bad", words[:300])
