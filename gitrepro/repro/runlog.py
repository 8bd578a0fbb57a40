"""Run logs: a command's stdout and stderr, passed through to the terminal as they come and kept,
redacted, as a one-file manifest in the store that the run record names (`log`); `gitrepro show
RUN --log` reads it back. See docs/metrics.md, "Logs".

A log is stored as a dataset of one file is, so push, fetch and gc treat it as they treat a run's
outputs (remote.reach reads a record's `log`), and every chunk is re-hashed when it is read back.
Only the redacted text is ever written, even to the temporary spool: a training script that
prints a credential (`AWS_SECRET_ACCESS_KEY=...`, an `hf_` token) leaves `<redacted>` in its place.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.chunker import iter_chunk_batches, new_cutter
from gitrepro.formats.hashing import hash_bytes, new_hasher
from gitrepro.repro import redact
from gitrepro.store.repo import Repo
from gitrepro.store.store import MissingBlob
from gitrepro.util.words import plural, verb

LOG_NAME = "log.txt"                  # the one file of a log's manifest
MAX_LOG_BYTES = 256 * 1024 * 1024     # kept per run; the rest still streams to the terminal
MAX_LINE = 64 * 1024                  # a longer line is redacted in pieces, cut at a space if it has one
READ_SIZE = 64 * 1024
TRUNCATED = b"\n[gitrepro: log truncated: more than 256 MiB]\n"
LINGER = 5.0                          # seconds to wait for the pipes after the command exits
LEFT_OPEN = b"\n[gitrepro: log ends when the command exited; a process it started still writes]\n"

# `name = value`, `name: value`, `"name": "value"` where the name names a credential.
_NAMED_VALUE = re.compile(r"""(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<q>["']?)(?P<sep>[ \t]*[:=][ \t]*)"""
                          r"""(?P<open>["']?)(?P<value>[^\s"',;]+)""")
_LONG_WORD = re.compile(r"""[^\s'"`,;()\[\]{}<>]{16,}""")   # no credential shape is shorter


class CommandNotStarted(GitreproError):
    pass


class RunLogError(GitreproError):
    pass


def redact_text(text: str) -> str:
    """Log text with credentials hidden by redact's rules: a value named by a credential-like
    name (`token=...`, `"password": "..."`), known token formats, and credential-shaped words
    (long hex, long random-looking runs)."""
    text = redact.TOKEN_FORMAT.sub(redact.REDACTED, text)     # first: `Authorization: Bearer X` is one match
    text = _NAMED_VALUE.sub(_hide_named, text)
    return _LONG_WORD.sub(lambda m: redact.REDACTED if redact.looks_secret(m.group()) else m.group(), text)


def _hide_named(m: re.Match) -> str:
    name = m.group("name")
    # by its words (`db_password`, `AWS_SECRET_ACCESS_KEY`), not inside words: `max_tokens=512` is a number
    if not (redact.CREDENTIAL_KEY.search(name) or redact.SECRET_WORD.search(name)):
        return m.group()
    return name + m.group("q") + m.group("sep") + m.group("open") + redact.REDACTED


# ---------------------------------------------------------------- running


class _Spool:
    """The redacted log so far, in an unnamed temporary file; both pipes' readers write to it."""

    def __init__(self, file: BinaryIO):
        self.file, self.size, self.full = file, 0, False
        self._lock = threading.Lock()

    def close(self, note: bytes = b"") -> None:
        """Take no more: what a process the command started still prints is not kept."""
        with self._lock:
            if not self.full and note:
                self.file.write(note)
                self.size += len(note)
            self.full = True

    def write(self, raw: bytes) -> None:
        data = redact_text(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        with self._lock:
            if self.full:
                return
            if self.size + len(data) > MAX_LOG_BYTES:
                data, self.full = TRUNCATED, True
            self.file.write(data)
            self.size += len(data)


def _pump(pipe: BinaryIO, terminal_fd: int, spool: _Spool) -> None:
    """Copy one pipe to the terminal as it comes; hand whole lines (cut at \\n or \\r) to the spool."""
    pending = b""
    terminal_ok = True
    while True:
        block = pipe.read1(READ_SIZE)
        if not block:
            break
        if terminal_ok:
            terminal_ok = _write_all(terminal_fd, block)
        pending += block
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
        if not cut and len(pending) > MAX_LINE:
            cut = max(pending.rfind(b" ", 0, MAX_LINE), pending.rfind(b"\t", 0, MAX_LINE)) + 1 or MAX_LINE
        if cut:
            spool.write(pending[:cut])
            pending = pending[cut:]
    if pending:
        spool.write(pending)


def _write_all(fd: int, data: bytes) -> bool:
    """False once the terminal is gone: the command goes on, and so does its log."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        return False
    return True


def execute(repo: Repo, command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the command with its stdout and stderr streaming through to ours, and store what it
    printed, redacted; return its exit status and the log's id ('' when it printed nothing).
    On Ctrl-C let it finish (it got the signal too), on a second Ctrl-C kill it."""
    # Python block-buffers a pipe; unbuffered, a script's lines still show as they are printed
    env = {**env, "PYTHONUNBUFFERED": env.get("PYTHONUNBUFFERED", "1")}
    with tempfile.TemporaryFile(prefix="gitrepro-log-") as file:
        spool = _Spool(file)
        try:
            proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise CommandNotStarted(f"cannot run {command[0]!r}: {e.strerror}; check the command after `--`") from None
        pumps = [threading.Thread(target=_pump, args=(pipe, fd, spool), daemon=True)
                 for pipe, fd in ((proc.stdout, 1), (proc.stderr, 2))]
        for t in pumps:
            t.start()
        status = _wait(proc)
        for t in pumps:
            t.join(LINGER)   # a process the command started may hold the pipes open for long
        spool.close(LEFT_OPEN if any(t.is_alive() for t in pumps) else b"")
        return status, store_log(repo, file) if spool.size else ""


def _wait(proc: subprocess.Popen) -> int:
    interrupts = 0
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts > 1:
                proc.kill()


# ---------------------------------------------------------------- storing and reading


def store_log(repo: Repo, file: BinaryIO) -> str:
    """Store the file's bytes as a one-file manifest (chunks first, the manifest root last);
    return the manifest id."""
    store = repo.store
    file.seek(0)
    hasher, chunks, size = new_hasher(), [], 0
    with store.writer() as w:
        for batch in iter_chunk_batches(file, new_cutter(store.config.chunker)):
            for chunk in batch:
                chunk_id = hash_bytes(chunk)
                w.add(chunk_id, chunk)
                hasher.update(chunk)
                chunks.append(chunk_id.hex())
                size += len(chunk)
        entry = manifestfmt.Entry(LOG_NAME, manifestfmt.FILE, 0o644, size, hasher.hexdigest(), tuple(chunks))
        return store.write_manifest(w, manifestfmt.dumps(manifestfmt.Manifest((entry,))))


def read_log(repo: Repo, log_id: str, *, fetch: bool = True) -> Iterator[bytes]:
    """The stored log's bytes, chunk by chunk, each re-hashed; fetched from the default remote
    first when the local store lacks it."""
    store = repo.store
    if fetch and store.missing([bytes.fromhex(log_id)]):
        _fetch(repo, log_id)
    try:
        manifest = manifestfmt.parse(store.read_manifest(log_id), f"log {log_id[:12]}")
    except MissingBlob:
        raise RunLogError(f"log {log_id[:12]} is not in the local store; run `gitrepro fetch`") from None
    if not manifest.single_file:
        raise RunLogError(f"log {log_id[:12]} is not a one-file manifest; it cannot be a log")
    entry = manifest.entries[0]
    ids = [bytes.fromhex(c) for c in entry.chunks]
    missing = store.missing(ids)
    if missing and fetch:
        _fetch(repo, log_id)
        missing = store.missing(ids)
    if missing:
        raise RunLogError(f"{plural(len(missing), 'chunk')} of log {log_id[:12]} {verb(len(missing), 'is', 'are')} "
                          f"not in the local store; "
                          f"run `gitrepro fetch`")
    yield from store.iter_blobs(ids)


def _fetch(repo: Repo, log_id: str) -> None:
    from gitrepro.remote.fetch import make_fetcher   # only a log that is not here needs a remote

    fetcher = make_fetcher(repo)
    if fetcher is None:
        raise RunLogError(f"log {log_id[:12]} is not in the local store and no remote is configured; "
                          f"add one (`gitrepro remote add`) or run `gitrepro show --log` where the run ran")
    fetcher(repo.store, {bytes.fromhex(log_id)})
