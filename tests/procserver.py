"""A test server that is its own process on 127.0.0.1: started on a free port, killed, restarted.

The fault tests kill it mid-transfer (`kill()`, SIGKILL: no goodbye to clients) and start it
again on the same port over the same data directory (`start()`), as a crashed and restarted
server would be. Used by gcsserver (fake-gcs-server), azureserver (Azurite) and sftpserver
(asyncssh). A server the machine lacks is a failure under CI=true and a skip elsewhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

_SERVERS = pytest.StashKey[dict]()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(what: str, install: str) -> None:
    """Fail in CI (where .ci/run installs everything), skip on a developer's machine."""
    message = f"{what} is not installed ({install}; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class ProcessServer:
    """`command(port)` is the argv of a server listening on 127.0.0.1:port with its data in `data_dir`."""

    name = "server"

    def __init__(self, data_dir: Path, port: int = 0):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return dict(os.environ)

    def start(self) -> "ProcessServer":
        log = open(self.data_dir / f"{self.name}.log", "ab")
        self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=self.env())
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._proc.returncode}; see {self.data_dir}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                self.ready()
                return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not listen on 127.0.0.1:{self.port} within 60 s")

    def ready(self) -> None:
        """Called once the port accepts connections; wait here for anything else the server needs."""

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    stop = kill


def shared(request, cls, env: dict | None = None):
    """The session's one server of `cls` (one per xdist worker), started on first use and stopped when
    the session ends; `env` goes into the calling test's environment. Reached through `request`, not
    a fixture, so a remote fixture imported into a test module can start any kind of server."""
    servers = request.config.stash.setdefault(_SERVERS, {})
    if cls.name not in servers:
        server = cls(request.getfixturevalue("tmp_path_factory").mktemp(cls.name)).start()
        request.config.add_cleanup(server.stop)
        servers[cls.name] = server
    monkeypatch = request.getfixturevalue("monkeypatch")
    for key, value in (env(servers[cls.name]) if callable(env) else env or {}).items():
        monkeypatch.setenv(key, value)
    return servers[cls.name]
