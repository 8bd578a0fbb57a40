"""An SSH/SFTP server (asyncssh) on 127.0.0.1 for tests, as its own process.

`python tests/sftpserver.py PORT ROOT KEYDIR` serves ROOT (chrooted) over SFTP to the one client
key in KEYDIR. The fixtures make a throwaway HOME with that key in ~/.ssh/id_ed25519 and the
server's host key in ~/.ssh/known_hosts: exactly where OpenSSH users keep theirs, so the client
finds them through its usual sources and gitrepro.toml names only ssh://127.0.0.1:PORT/store.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from procserver import ProcessServer, shared


class SFTPServer(ProcessServer):
    name = "sftp-server"

    def __init__(self, data_dir: Path, port: int = 0):
        super().__init__(data_dir, port)
        self.root = self.data_dir / "root"
        self.keys = self.data_dir / "keys"
        self.home = self.data_dir / "home"
        if not (self.keys / "host").exists():
            self._make_keys()

    def _make_keys(self) -> None:
        import asyncssh
        self.root.mkdir(exist_ok=True)
        self.keys.mkdir(exist_ok=True)
        (self.home / ".ssh").mkdir(parents=True, exist_ok=True)
        host, client = asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519")
        host.write_private_key(str(self.keys / "host"))
        client.write_public_key(str(self.keys / "authorized_keys"))
        client.write_private_key(str(self.home / ".ssh" / "id_ed25519"))
        os.chmod(self.home / ".ssh" / "id_ed25519", 0o600)

    def command(self) -> list[str]:
        (self.home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {self._host_public()}\n")
        return [sys.executable, __file__, str(self.port), str(self.root), str(self.keys)]

    def _host_public(self) -> str:
        import asyncssh
        return asyncssh.read_private_key(str(self.keys / "host")).export_public_key("openssh").decode().strip()

    def url(self, path: str) -> str:
        return f"ssh://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def client_env(self) -> dict:
        """HOME with the client key and known_hosts; no agent, so only that key is offered."""
        return {"HOME": str(self.home)}


def use_sftp(request) -> SFTPServer:
    """The session's server, with a HOME whose ~/.ssh holds the client key and the host key (and no
    ssh-agent, so only that key is offered)."""
    server = shared(request, SFTPServer, SFTPServer.client_env)
    request.getfixturevalue("monkeypatch").delenv("SSH_AUTH_SOCK", raising=False)
    return server


@pytest.fixture
def sftp(request) -> SFTPServer:
    return use_sftp(request)


async def _serve(port: int, root: str, keys: str) -> None:
    import asyncssh
    await asyncssh.listen("127.0.0.1", port, server_host_keys=[os.path.join(keys, "host")],
                          authorized_client_keys=os.path.join(keys, "authorized_keys"),
                          sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root.encode()),
                          allow_scp=False)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
