"""An SSH signing key for tests of signed tags: `git tag -s` signs with it and `git verify-tag`
vouches for it (gpg.format = ssh; the key is listed in the repository's allowed-signers file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import run_git


def configure_ssh_signing(root: Path, key_dir: Path) -> Path:
    """Make a fresh ed25519 key and configure the repository at `root` to sign and verify with it."""
    key_dir.mkdir(parents=True, exist_ok=True)
    key = key_dir / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True)
    allowed = key_dir / "allowed_signers"
    allowed.write_text(f"test@example.com {(key_dir / 'signing_key.pub').read_text().strip()}\n")
    run_git(root, "config", "gpg.format", "ssh")
    run_git(root, "config", "user.signingkey", str(key_dir / "signing_key.pub"))
    run_git(root, "config", "gpg.ssh.allowedSignersFile", str(allowed))
    return key
