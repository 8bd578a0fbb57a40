"""The project file `gitrepro.toml` (committed): chunker settings, run outputs, policy,
hooks and remotes. Pure: bytes in, a `Project` out. See docs/design.md, "Project settings".
"""

from __future__ import annotations

from gitrepro.errors import GitreproError
from gitrepro.formats.chunker import ChunkerParams
from gitrepro.util import tomlcompat

PROJECT_FILE = "gitrepro.toml"
DEFAULT_PROJECT = """\
# gitrepro project settings (commit this file).
# Chunker parameters decide chunk identity; all clones must agree on them.
[chunker]
min_size = 16384
avg_size = 65536
max_size = 262144

[run]
outputs = []             # paths `gitrepro run` snapshots after the command, e.g. ["models"]

[policy]
training = []            # globs of results: a commit touching these is a training commit,
                         # e.g. ["models.gitrepro", "metrics/*.json"]

# Pipeline stages (docs/pipelines.md); `gitrepro repro` runs the stale ones:
# [stages.train]
# cmd = ["python", "train.py"]
# deps = ["train.py", "data/train"]
# config = "configs/train.toml"
# outputs = ["models"]

# [remote.origin]
# url = "s3://bucket/prefix"
# endpoint_url = "http://127.0.0.1:9000"
"""


class ProjectError(GitreproError):
    pass


class Project:
    """The committed project settings (gitrepro.toml). Plain classes here and in the rest of
    `status`'s path: importing dataclasses costs a no-op `status` about 15 ms."""

    def __init__(self, doc: dict | None = None):
        self.doc = doc if doc is not None else {}

    def section(self, name: str) -> dict:
        value = self.doc.get(name, {})
        if not isinstance(value, dict):
            raise ProjectError(f"{PROJECT_FILE}: [{name}] must be a table")
        return value

    def chunker(self) -> ChunkerParams:
        c = self.section("chunker")
        try:
            return ChunkerParams(min_size=c.get("min_size", 16384), avg_size=c.get("avg_size", 65536),
                                 max_size=c.get("max_size", 262144)).check()
        except TypeError as e:
            raise ProjectError(f"{PROJECT_FILE}: bad [chunker] ({e})") from None


def parse_project(data: bytes) -> Project:
    try:
        return Project(tomlcompat.loads(data.decode()))
    except (UnicodeDecodeError, tomlcompat.TomlError) as e:
        raise ProjectError(f"{PROJECT_FILE} is not valid TOML ({e}); fix it and retry") from None
