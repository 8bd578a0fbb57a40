"""Remote settings: the `[remote]` and `[remote.<name>]` tables of the committed gitrepro.toml.

    [remote]
    default = "origin"                 # needed once there are two remotes
    [remote.origin]
    url = "s3://bucket/prefix"         # gs://, az://, ssh://, or a directory (absolute or relative to the repo)
    endpoint_url = "http://127.0.0.1:9000"
    jobs = 8

Which remote a command uses: the one it is given (`--remote NAME`, or a first word naming one),
else `[remote] default`, else the only remote; two or more with no default is an error that says
`gitrepro remote default NAME`. The pre-push check uses the gitrepro remote named like the git
remote being pushed to, when there is one (`for_git_remote`), else that default.

Credentials never go here: they come from each platform's standard sources (docs/remotes.md).
Edits keep the rest of the file, comments included, whenever a plain text edit yields exactly the
intended document; otherwise the file is rewritten from its parsed form.
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
from gitrepro.remote import BACKENDS, Remote, RemoteError, open_remote, scheme_of, urls

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SECRET = re.compile(r"secret|access_key|password|token|credential", re.I)
_URL_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")            # a custom store's region name
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")          # us-east-1, eu-central-2, us-gov-west-1
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")                           # an Azure storage account
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
    account: str | None = None

    def options(self) -> dict:
        """Keyword options for `open_remote`: everything set but name, url and retries."""
        skip = {"name", "url", "retries"}
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in skip and getattr(self, f.name) is not None}


_KEYS = {f.name for f in fields(RemoteSettings)} - {"name"}
_EVERY_REMOTE = {"url", "jobs", "retries", "timeout"}


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == "default":
        raise RemoteConfigError(f"bad remote name {name!r}: use letters, digits, '_', '.', '-' (not 'default')")
    return name


def _settings(name: str, table: dict) -> RemoteSettings:
    secrets = [k for k in table if _SECRET.search(k)]
    if secrets:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] holds {secrets[0]!r}: credentials must never be "
                                "committed; remove it and use the platform's usual sources (environment, "
                                "credential files, ~/.ssh; docs/remotes.md)")
    unknown = sorted(table.keys() - _KEYS)
    if unknown:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] has unknown key {unknown[0]!r}; "
                                f"known keys: {', '.join(sorted(_KEYS))}")
    if not isinstance(table.get("url"), str) or not table["url"]:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{name}] needs url = \"s3://bucket/prefix\" or a directory "
                                f"(forms: {urls.FORMS})")
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
    for key in ("endpoint_url", "region", "profile", "addressing_style", "account"):
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
            bad = (f"{key} holds a user:password@: credentials must never be committed; "
                   "use the environment or the platform's credential files")
    if bad:
        raise RemoteConfigError(f"{PROJECT_FILE}: [remote.{s.name}] {bad}")


def _check_place(s: RemoteSettings) -> str:
    """What makes the url, region, account or endpoint unusable (checked here, not at the first
    transfer), or ""."""
    try:
        scheme = urls.parse(s.url).scheme
    except urls.BadUrl as e:
        return str(e)
    takes = _EVERY_REMOTE | (set(BACKENDS[scheme][2]) if scheme in BACKENDS else set())
    stray = next((f.name for f in fields(s) if f.name not in takes | {"name"} and getattr(s, f.name) is not None
                  and getattr(s, f.name) != f.default), None)
    if stray:
        kind = "directory" if scheme == "file" else f"{scheme_of(s.url)}://"
        return f"{stray} does not apply to {kind} remotes (they take {', '.join(sorted(takes))})"
    if isinstance(s.region, str) and s.region and not _REGION.fullmatch(s.region):
        return f"region {s.region!r} is not a region name like us-east-1 (letters, digits, '-', '_')"
    if isinstance(s.region, str) and s.region and not s.endpoint_url and not _AWS_REGION.fullmatch(s.region):
        return (f"region {s.region!r} is not an AWS region name like eu-west-1 "
                "(for another S3-compatible store, set endpoint_url too)")
    if isinstance(s.account, str) and not _ACCOUNT.fullmatch(s.account):
        return f"account {s.account!r} is not an Azure storage account name (3 to 24 lowercase letters and digits)"
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
    """`[remote] default`, else the only remote; None when there is none, or several and no default."""
    configured = remotes(project)
    name = project.section("remote").get("default")
    if name is not None:
        if not isinstance(name, str) or name not in configured:
            raise RemoteConfigError(f"{PROJECT_FILE}: [remote] default = {name!r} names no [remote.{name}] table")
        return name
    return next(iter(configured)) if len(configured) == 1 else None


def resolve(repo: Repo, name: str | None = None, *, git_remote: str | None = None) -> RemoteSettings:
    """The named remote, else (for the pre-push check) the one named like `git_remote`, else the
    default one; a clear error when there is none or it is ambiguous."""
    configured = remotes(repo.project)
    name = name or (for_git_remote(repo.project, git_remote) if git_remote else None) or default_name(repo.project)
    if name is None and configured:
        raise RemoteConfigError(f"{PROJECT_FILE} has {len(configured)} remotes ({', '.join(configured)}) and no "
                                "default: run `gitrepro remote default NAME`, or name one with --remote NAME")
    if name is None:
        raise RemoteConfigError("no remote configured; run `gitrepro remote add origin s3://BUCKET/PREFIX` "
                                "or `gitrepro remote add NAME /path/to/dir`")
    if name not in configured:
        raise RemoteConfigError(f"no remote named {name!r} in {PROJECT_FILE}; "
                                f"known: {', '.join(configured) or 'none'} (see `gitrepro remote list`)")
    return configured[name]


def for_git_remote(project: Project, git_remote: str) -> str | None:
    """The gitrepro remote the pre-push check uses when git pushes to `git_remote`: the one with the
    same name (git-lfs's rule: data follows the remote you push to), else None for the default."""
    return git_remote if git_remote in remotes(project) else None


def resolve_remote(repo: Repo, name_or_url: str, committed: Project | None = None) -> RemoteSettings:
    """For `verify --remote`: a remote named in the working tree's gitrepro.toml, else in `committed`
    (the verified commit's), else a URL (checked like one in gitrepro.toml, default settings)."""
    for project in (repo.project, committed):
        if project is not None and name_or_url in remotes(project):
            return remotes(project)[name_or_url]
    if "://" in name_or_url or "/" in name_or_url or name_or_url.startswith("."):
        return _settings("url", {"url": name_or_url})
    known = sorted(set(remotes(repo.project)) | (set(remotes(committed)) if committed is not None else set()))
    raise RemoteConfigError(f"no remote named {name_or_url!r} in {PROJECT_FILE} (here or in the verified commit); "
                            f"known: {', '.join(known) or 'none'}; or give a url ({urls.FORMS})")


def open_settings(repo: Repo, settings: RemoteSettings) -> Remote:
    """Open a configured remote; a relative directory url is relative to the repository root."""
    url = settings.url
    if scheme_of(url) == "file" and "://" not in url and not Path(url).is_absolute():
        url = str(repo.root / url)
    return open_remote(url, retries=settings.retries, **settings.options())


# -- editing gitrepro.toml -------------------------------------------------------

def add(repo: Repo, name: str, url: str, *, endpoint_url: str | None = None, region: str | None = None,
        jobs: int | None = None, account: str | None = None, make_default: bool = False) -> RemoteSettings:
    """Append `[remote.<name>]`. Adding a second remote writes down which one is the default (the
    new one with `make_default`, else the one that was already there), so it is never a guess."""
    check_name(name)
    table = {k: v for k, v in (("url", url), ("endpoint_url", endpoint_url), ("region", region),
                                ("account", account), ("jobs", jobs)) if v is not None}
    settings = _settings(name, table)
    doc = _read(repo)
    section = doc.setdefault("remote", {})
    if not isinstance(section, dict):
        raise RemoteConfigError(f"{PROJECT_FILE}: remote must be a table")
    if name in section:
        raise RemoteConfigError(f"remote {name!r} already exists; `gitrepro remote remove {name}` first")
    others = [k for k, v in section.items() if isinstance(v, dict)]
    default = name if make_default else (others[0] if len(others) == 1 and "default" not in section else None)
    appended = tomli_w.dumps({"remote": {name: table}})
    section[name] = table
    if default is not None:
        section["default"] = default
    _write(repo, doc, lambda text: _with_default(
        text + ("\n" if text and not text.endswith("\n") else "") + "\n" + appended, default))
    return settings


def set_default(repo: Repo, name: str) -> None:
    """`[remote] default = name`: the remote push, fetch, pull, gc and verify use when given none."""
    doc = _read(repo)
    section = doc.get("remote", {})
    if not isinstance(section, dict) or not isinstance(section.get(name), dict):
        raise RemoteConfigError(f"no remote named {name!r} in {PROJECT_FILE}; see `gitrepro remote list`")
    section["default"] = name
    _write(repo, doc, lambda text: _with_default(text, name))


def set_url(repo: Repo, name: str, url: str) -> RemoteSettings:
    """Point `[remote.<name>]` at `url`, checked with the table's other settings as they stand."""
    doc = _read(repo)
    section = doc.get("remote", {})
    table = section.get(name) if isinstance(section, dict) else None
    if not isinstance(table, dict):
        raise RemoteConfigError(f"no remote named {name!r} in {PROJECT_FILE}; see `gitrepro remote list`")
    settings = _settings(name, {**table, "url": url})
    table["url"] = url
    _write(repo, doc, lambda text: _replace_key(text, f"remote.{name}", "url", tomli_w.dumps({"url": url})))
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


def _with_default(text: str, name: str | None) -> str:
    """`default = "name"` in the `[remote]` table: replace the line, or add it under the header, or
    add a `[remote]` table before the first `[remote.*]` one."""
    if name is None:
        return text
    line = tomli_w.dumps({"default": name})
    if any(table == "remote" for table, _ in _sections(text)):
        replaced = _replace_key(text, "remote", "default", line)
        if replaced != text:
            return replaced
        return "".join(ln + line if table == "remote" and ln.strip().startswith("[") else ln
                       for table, ln in _sections(text))
    lines = text.splitlines(keepends=True)
    at = next((i for i, ln in enumerate(lines) if ln.strip().replace(" ", "").startswith("[remote.")), len(lines))
    return "".join(lines[:at]) + "[remote]\n" + line + "\n" + "".join(lines[at:])


def _replace_key(text: str, table_name: str, key: str, line: str) -> str:
    """Replace the `key = ...` line of `[table_name]` with `line`."""
    return "".join(line if table == table_name and "=" in ln and ln.split("=", 1)[0].strip() == key else ln
                   for table, ln in _sections(text))


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
