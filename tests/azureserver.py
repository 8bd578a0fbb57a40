"""Azurite (Microsoft's Azure Storage emulator, from the npm registry) on 127.0.0.1 for tests.

Its blobs live in `data_dir`, so a killed and restarted Azurite still has them. The well-known
Azurite account and key are put only in the test's environment (AZURE_STORAGE_ACCOUNT_NAME /
AZURE_STORAGE_ACCOUNT_KEY, the variables real users set), never in gitrepro.toml.
"""

from __future__ import annotations

import itertools
import os
import shutil

import pytest

from procserver import ProcessServer, missing, shared

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_ENV = {"AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": KEY,
             # never ask a metadata endpoint off this machine for a token
             "AZURE_MSI_ENDPOINT": "http://127.0.0.1:9", "IDENTITY_ENDPOINT": "http://127.0.0.1:9"}
_containers = itertools.count()


class AzureServer(ProcessServer):
    """`stop()` is a SIGTERM here: Azurite saves its metadata database a few seconds late, so a
    SIGKILL loses the containers and blobs of those seconds (a real store keeps what it acknowledged)."""

    name = "azurite"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except Exception:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def command(self) -> list[str]:
        binary = shutil.which("azurite-blob")
        if binary is None:
            missing("azurite-blob", "npm install -g azurite")
        return [binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.data_dir),
                "--silent", "--skipApiVersionCheck", "--loose"]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def new_container(self) -> str:
        """A fresh container (Azure names: 3-63 lowercase letters, digits and dashes)."""
        name = f"c{os.getpid()}-{next(_containers)}"
        _create_container(self.endpoint_url, name)
        return name


def _create_container(endpoint_url: str, name: str) -> None:
    """PUT ?restype=container with a Shared Key signature (obstore cannot create containers)."""
    import base64
    import hashlib
    import hmac
    import urllib.request
    from email.utils import formatdate
    date = formatdate(usegmt=True)
    version = "2021-08-06"
    canonical_headers = f"x-ms-date:{date}\nx-ms-version:{version}\n"
    canonical_resource = f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
    to_sign = "PUT\n\n\n\n\n\n\n\n\n\n\n\n" + canonical_headers + canonical_resource
    signature = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
    request = urllib.request.Request(f"{endpoint_url}/{name}?restype=container", method="PUT", headers={
        "x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
        "Authorization": f"SharedKey {ACCOUNT}:{signature}"})
    urllib.request.urlopen(request, timeout=10).read()


def use_azure(request) -> AzureServer:
    """The session's Azurite, with its account key in this test's environment."""
    return shared(request, AzureServer, AZURE_ENV)


@pytest.fixture
def azure(request) -> AzureServer:
    return use_azure(request)
