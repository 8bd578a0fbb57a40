"""Remote settings: the `[remote]` and `[remote.<name>]` tables of the committed gitrepro.toml.

    [remote]
    default = "origin"                 # optional; else the first remote listed
    [remote.origin]
    url = "s3://bucket/prefix"         # or a directory path, absolute or relative to the repo root
    endpoint_url = "http://127.0.0.1:9000"
    jobs = 8

Credentials never go here: they come from the standard AWS chain. Edits keep
the rest of the file, comments included, whenever a plain text edit yields
exactly the intended document; otherwise the file is rewritten from its parsed
form. See docs/remotes.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import tomli_w

from gitrepro.util.fsutil import atomic_write
from gitrepro.formats.project import PROJECT_FILE, Project, parse_project
from gitrepro.store.repo import Repo
from gitrepro.util import tomlcompat
from gitrepro.remote import Remote, RemoteError, open_remote, scheme_of

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SECRET = re.compile(r"secret|access_key|password|token|credential", re.I)
_URL_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")          # S3 and S3-compatible bucket names
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")            # us-east-1, or a custom store's name
_HOST = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class RemoteConfigError(RemoteError):
    pass


@dataclass(frozen=True)
class RemoteSettings:
    name: str
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    addressing_style: str | None = None
    jobs: int = 8
    retries: int = 5
    timeout: float = 60
    multipart_threshold: int | None = None
    multipart_chunksize: int | None = None

    def options(self) -> dict:
        """Keyword options for `open_remote` (everything but name, url and retries)."""
        skip = {"name", "url", "retries"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


_KEYS = {f.name for f in fields(RemoteSettings)} - {"name"}


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == "default":
        raise RemoteConfigError(f"bad remote name {name!r}: use letters, digits, '_', '.', '-' (not 'default')")
    return name


def _settings(name: str, table: dict) -> RemoteSettings:
    secrets = [k for k in table if _SECRET.search(k)]
    if secrets:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] holds {secrets[0]!r}: credentials must never be "
                                "committed; remove it and use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    unknown = sorted(table.keys() - _KEYS)
    if unknown:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] has unknown key {unknown[0]!r}; "
                                f"known keys: {', '.join(sorted(_KEYS))}")
    if not isinstance(table.get("url"), str) or not table["url"]:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] needs url = \"s3://bucket/prefix\" or a directory")
    try:
        s = RemoteSettings(name=name, **table)
    except TypeError as e:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}]: {e}") from None
    for key in ("jobs", "retries"):
        value = getattr(s, key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 256:
            raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] {key} must be an integer from 1 to 256")
    _check_types(s)
    return s


def _check_types(s: RemoteSettings) -> None:
    """Every other value has the type and range its user expects, so a typo is one line, not a crash."""
    bad = ""
    for key in ("endpoint_url", "region", "profile", "addressing_style"):
        if getattr(s, key) is not None and (not isinstance(getattr(s, key), str) or not getattr(s, key)):
            bad = f"{key} must be a non-empty string"
    if isinstance(s.endpoint_url, str) and not s.endpoint_url.startswith(("http://", "https://")):
        bad = "endpoint_url must start with http:// or https://"
    if s.addressing_style not in (None, "path", "virtual", "auto"):
        bad = 'addressing_style must be "path", "virtual" or "auto"'
    if not isinstance(s.timeout, (int, float)) or isinstance(s.timeout, bool) or not 0 < s.timeout < math.inf:
        bad = "timeout must be a positive number of seconds"
    for key, least in (("multipart_threshold", 1), ("multipart_chunksize", 5 * 1024 * 1024)):   # S3's part minimum
        value = getattr(s, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            bad = f"{key} must be a whole number of bytes, at least {least}"
    bad = _check_place(s) or bad
    for key in ("url", "endpoint_url"):
        if isinstance(getattr(s, key), str) and _URL_PASSWORD.search(getattr(s, key)):
            bad = f"{key} holds a user:password@: credentials must never be committed; use AWS_PROFILE or the environment"
    if bad:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{s.name}] {bad}")


def _check_place(s: RemoteSettings) -> str:
    """What makes the url, region or endpoint unusable (checked here, not at the first transfer), or ""."""
    scheme = scheme_of(s.url)
    if scheme not in ("file", "s3"):
        return f"unsupported remote url {s.url!r}: use s3://BUCKET/PREFIX or a directory path"
    if scheme == "s3":
        bucket = s.url.split("://", 1)[1].partition("/")[0]
        if not bucket:
            return f"url {s.url} names no bucket: use s3://BUCKET/PREFIX"
        if not _BUCKET.fullmatch(bucket):
            return f"url {s.url!r}: {bucket!r} is not a bucket name (letters, digits, '.', '-', '_')"
    if isinstance(s.region, str) and s.region and not _REGION.fullmatch(s.region):
        return f"region {s.region!r} is not a region name like us-east-1 (letters, digits, '-', '_')"
    if isinstance(s.endpoint_url, str) and s.endpoint_url.startswith(("http://", "https://")):
        host = s.endpoint_url.split("://", 1)[1].partition("/")[0].rpartition("@")[2]
        if not host or not _HOST.fullmatch(host):
            return f"endpoint_url {s.endpoint_url!r} names no host: use http://HOST[:PORT]"
    return ""


def remotes(project: Project) -> dict[str, RemoteSettings]:
    """Every configured remote, in file order."""
    section = project.section("remote")
    return {name: _settings(name, table) for name, table in section.items() if isinstance(table, dict)}


def default_name(project: Project) -> str | None:
    configured = remotes(project)
    name = project.section("remote").get("default")
    if name is not None:
        if not isinstance(name, str) or name not in configured:
            raise RemoteConfigError(f"{PROJECT_FILE}: [remote] default = {name!r} names no [remote.{name}] table")
        return name
    return next(iter(configured), None)


def resolve(repo: Repo, name: str | None = None) -> RemoteSettings:
    """The named remote, or the default one; a clear error when there is none."""
    configured = remotes(repo.project)
    name = name or default_name(repo.project)
    if name is None:
        raise RemoteConfigError("no remote configured; run `gitrepro remote add origin s3://BUCKET/PREFIX` "
                                "or `gitrepro remote add NAME /path/to/dir`")
    if name not in configured:
        raise RemoteConfigError(f"no remote named {name!r} in {PROJECT_FILE}; "
                                f"known: {', '.join(configured) or 'none'} (see `gitrepro remote list`)")
    return configured[name]


def open_settings(repo: Repo, settings: RemoteSettings) -> Remote:
    """Open a configured remote; a relative directory url is relative to the repository root."""
    url = settings.url
    if scheme_of(url) == "file" and "://" not in url and not Path(url).is_absolute():
        url = str(repo.root / url)
    return open_remote(url, retries=settings.retries, **settings.options())


# -- editing gitrepro.toml -------------------------------------------------------

def add(repo: Repo, name: str, url: str, *, endpoint_url: str | None = None, region: str | None = None,
        jobs: int | None = None, make_default: bool = False) -> RemoteSettings:
    check_name(name)
    table = {k: v for k, v in (("url", url), ("endpoint_url", endpoint_url), ("region", region),
                                ("jobs", jobs)) if v is not None}
    settings = _settings(name, table)
    doc = _read(repo)
    section = doc.setdefault("remote", {})
    if not isinstance(section, dict):
        raise RemoteConfigError(f"{PROJECT_FILE}: remote must be a table")
    if name in section:
        raise RemoteConfigError(f"remote {name!r} already exists; `gitrepro remote remove {name}` first")
    appended = tomli_w.dumps({"remote": {name: table}})
    if make_default and "default" not in section:
        appended = f'[remote]\ndefault = "{name}"\n\n' + appended
    section[name] = table
    if make_default:
        section["default"] = name
    _write(repo, doc, lambda text: (text + ("\n" if text and not text.endswith("\n") else "") + "\n" + appended))
    return settings


def remove(repo: Repo, name: str) -> None:
    doc = _read(repo)
    section = doc.get("remote", {})
    if not isinstance(section, dict) or not isinstance(section.get(name), dict):
        raise RemoteConfigError(f"no remote named {name!r} in {PROJECT_FILE}; see `gitrepro remote list`")
    del section[name]
    if section.get("default") == name:
        del section["default"]
    if not section:
        del doc["remote"]
    _write(repo, doc, lambda text: _drop_empty_table(_drop_default(_drop_table(text, f"remote.{name}"), name),
                                                     "remote"))


def _read(repo: Repo) -> dict:
    path = repo.root / PROJECT_FILE
    return parse_project(path.read_bytes()).doc if path.exists() else {}


def _write(repo: Repo, doc: dict, text_edit: Callable[[str], str]) -> None:
    """Write `doc`; keep the file's text (and comments) when `text_edit` yields exactly `doc`."""
    path = repo.root / PROJECT_FILE
    text = path.read_text() if path.exists() else ""
    candidate = text_edit(text)
    try:
        same = _pruned(tomlcompat.loads(candidate)) == _pruned(doc)
    except tomlcompat.TomlError:
        same = False
    with atomic_write(path) as f:
        f.write((candidate if same else tomli_w.dumps(doc)).encode())
    repo._project = None  # re-read on next use


def _pruned(doc: dict) -> dict:
    """`doc` without empty tables (an empty `[remote]` means the same as none)."""
    out = {}
    for key, value in doc.items():
        value = _pruned(value) if isinstance(value, dict) else value
        if value != {}:
            out[key] = value
    return out


def _sections(text: str):
    """Yield (table name or None before the first header, line) for every line."""
    table = None
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            table = stripped.split("]")[0].strip("[ ").replace(" ", "")
        yield table, line


def _drop_default(text: str, name: str) -> str:
    return "".join(line for table, line in _sections(text)
                   if not (table == "remote" and line.replace(" ", "").strip() in
                           (f'default="{name}"', f"default='{name}'")))


def _drop_empty_table(text: str, name: str) -> str:
    """Drop a `[name]` header whose table holds no keys."""
    body = [line for table, line in _sections(text) if table == name]
    if any(line.strip() and not line.strip().startswith(("#", "[")) for line in body):
        return text
    return "".join(line for table, line in _sections(text) if not (table == name and line.strip().startswith("[")))


def _drop_table(text: str, table: str) -> str:
    """Remove the `[table]` header line and its key lines, up to the next header."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped.replace(" ", "") == f"[{table}]"
        if not skipping:
            out.append(line)
    return "".join(out)
