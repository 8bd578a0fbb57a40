"""Tests for gitrepro.remote.settings: the `[remote]` and `[remote.<name>]` tables of the committed
gitrepro.toml, read strictly (a typo is one line; credentials are never accepted) and edited
so the rest of the file, comments included, stays as the user wrote it; and the same through the
`remote` commands and `push`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitrepro.errors import GitreproError
from gitrepro.formats.project import parse_project
from gitrepro.remote import RetryingRemote, settings
from gitrepro.remote import fetch as fetch_op
from gitrepro.remote import push as push_op
from gitrepro.remote.settings import RemoteConfigError, RemoteSettings
from gitrepro.store.repo import Repo
from gitrepro.util import tomlcompat
from s3server import ensure_cli


def project(text: str):
    return parse_project(text.encode())


def write_project(root: Path, text: str) -> Repo:
    (root / "gitrepro.toml").write_text(text)
    return Repo.find(root)


FULL = """\
[remote]
default = "nas"

[remote.origin]
url = "s3://bucket/prefix"
endpoint_url = "http://127.0.0.1:9000"
region = "eu-west-1"
profile = "ml"
addressing_style = "path"
jobs = 16
retries = 3
timeout = 12.5
multipart_threshold = 1048576
multipart_chunksize = 8388608

[remote.nas]
url = "/mnt/nas/store"
"""


def test_every_setting_is_read_and_the_open_options_leave_out_name_url_and_retries():
    found = settings.remotes(project(FULL))
    assert list(found) == ["origin", "nas"]                       # file order
    origin = found["origin"]
    assert origin == RemoteSettings("origin", "s3://bucket/prefix", "http://127.0.0.1:9000", "eu-west-1", "ml",
                                    "path", 16, 3, 12.5, 1048576, 8388608)
    assert origin.options() == {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1", "profile": "ml",
                                "addressing_style": "path", "jobs": 16, "timeout": 12.5,
                                "multipart_threshold": 1048576, "multipart_chunksize": 8388608}
    assert found["nas"] == RemoteSettings("nas", "/mnt/nas/store")
    assert (found["nas"].jobs, found["nas"].retries, found["nas"].timeout) == (8, 5, 60)


def test_the_default_remote_is_the_named_one_else_the_only_one_never_a_guess(git_repo):
    assert settings.default_name(project(FULL)) == "nas"
    assert settings.default_name(project('[remote.nas]\nurl = "/mnt/nas/store"\n')) == "nas"
    assert settings.default_name(project(FULL.replace('default = "nas"\n', ""))) is None
    assert settings.default_name(project("")) is None
    with pytest.raises(RemoteConfigError, match=r"\[remote\] default = 'gone' names no \[remote.gone\] table"):
        settings.default_name(project(FULL.replace('default = "nas"', 'default = "gone"')))
    repo = write_project(git_repo, FULL.replace('default = "nas"\n', ""))
    with pytest.raises(RemoteConfigError, match=r"has 2 remotes \(origin, nas\) and no default: run "
                                                r"`gitrepro remote default NAME`, or name one with --remote NAME"):
        settings.resolve(repo)
    assert settings.resolve(repo, "nas").name == "nas"


def test_resolve_finds_the_named_or_default_remote_and_says_what_exists(git_repo):
    repo = write_project(git_repo, FULL)
    assert settings.resolve(repo).name == "nas" and settings.resolve(repo, "origin").jobs == 16
    with pytest.raises(RemoteConfigError, match=r"no remote named 'backup' in gitrepro.toml; known: origin, nas"):
        settings.resolve(repo, "backup")
    with pytest.raises(RemoteConfigError, match=r"no remote configured; run `gitrepro remote add origin s3://"):
        settings.resolve(write_project(git_repo, "[run]\noutputs = []\n"))


BAD = [
    ('aws_secret_access_key = "x"', "holds 'aws_secret_access_key': credentials must never be committed"),
    ('session_token = "x"', "credentials must never be committed"),
    ('password = "x"', "credentials must never be committed"),
    ('colour = "blue"', "has unknown key 'colour'; known keys:"),
    ("", 'needs url = "s3://bucket/prefix" or a directory'),
    ('url = ""', 'needs url = "s3://bucket/prefix" or a directory'),
    ("url = 3", 'needs url = "s3://bucket/prefix" or a directory'),
    ("jobs = 0", "jobs must be an integer from 1 to 256"),
    ("jobs = 257", "jobs must be an integer from 1 to 256"),
    ("jobs = true", "jobs must be an integer from 1 to 256"),
    ('jobs = "8"', "jobs must be an integer from 1 to 256"),
    ("retries = 0", "retries must be an integer from 1 to 256"),
    ('endpoint_url = "127.0.0.1:9000"', "endpoint_url must start with http:// or https://"),
    ('endpoint_url = ""', "endpoint_url must"),
    ('region = ""', "region must be a non-empty string"),
    ("profile = 1", "profile must be a non-empty string"),
    ('addressing_style = "sideways"', 'addressing_style must be "path", "virtual" or "auto"'),
    ("timeout = 0", "timeout must be a positive number of seconds"),
    ("timeout = -1.5", "timeout must be a positive number of seconds"),
    ("timeout = false", "timeout must be a positive number of seconds"),
    ("multipart_threshold = 0", "multipart_threshold must be a whole number of bytes, at least 1"),
    ("multipart_chunksize = 1024", "multipart_chunksize must be a whole number of bytes, at least 5242880"),
    ("multipart_chunksize = 8388608.0", "multipart_chunksize must be a whole number of bytes"),
    ('endpoint_url = "http://me:secret@127.0.0.1:9000"', "endpoint_url holds a user:password@"),
]


@pytest.mark.parametrize("line, message", BAD, ids=[b[0].split(" ")[0] or "no-url" for b in BAD])
def test_a_bad_remote_table_is_one_line_that_names_the_table_and_the_fix(line, message):
    url = "" if line.startswith("url") or line == "" else 'url = "s3://bucket/prefix"\n'
    with pytest.raises(RemoteConfigError) as e:
        settings.remotes(project(f"[remote.origin]\n{url}{line}\n"))
    text = str(e.value)
    assert text.startswith("gitrepro.toml: [remote.origin]") and message in text and "\n" not in text, text


def test_a_url_holding_a_password_is_refused():
    with pytest.raises(RemoteConfigError, match="url holds a user:password@: credentials must never be committed"):
        settings.remotes(project('[remote.origin]\nurl = "s3://key:secret@bucket/prefix"\n'))


def test_a_gitrepro_toml_that_is_not_toml_is_one_error_naming_the_file(git_repo):
    repo = write_project(git_repo, "[remote.origin\nurl = 'x'\n")
    with pytest.raises(GitreproError, match=r"gitrepro.toml is not valid TOML .*fix it and retry"):
        settings.remotes(repo.project)


@pytest.mark.parametrize("name", ["default", "", "-x", ".x", "a/b", "a b", "x" * 65, "ünï"])
def test_a_bad_remote_name_is_refused(name):
    with pytest.raises(RemoteConfigError, match="bad remote name"):
        settings.check_name(name)


@pytest.mark.parametrize("name", ["origin", "nas-2", "eu.west_1", "A", "x" * 64])
def test_a_good_remote_name_is_accepted(name):
    assert settings.check_name(name) == name


# ---------------------------------------------------------------- opening

def test_a_relative_directory_url_is_relative_to_the_repository_root_and_retries_are_applied(git_repo):
    repo = write_project(git_repo, '[remote.here]\nurl = "../store"\nretries = 2\n[remote.abs]\nurl = "/srv/store"\n')
    here = settings.open_settings(repo, settings.resolve(repo, "here"))
    assert isinstance(here, RetryingRemote) and here.attempts == 2
    assert here.url == str(git_repo / "../store")
    assert settings.open_settings(repo, settings.resolve(repo, "abs")).url == "/srv/store"


# ---------------------------------------------------------------- editing gitrepro.toml

USER_FILE = """\
# my project
[chunker]
min_size = 16384   # keep
avg_size = 65536
max_size = 262144

[run]
outputs = ["models"]
"""


def doc(root: Path) -> dict:
    return tomlcompat.loads((root / "gitrepro.toml").read_text())


def test_add_appends_a_table_and_keeps_every_byte_before_it(git_repo):
    repo = write_project(git_repo, USER_FILE)
    added = settings.add(repo, "origin", "s3://b/p", endpoint_url="http://127.0.0.1:9000", jobs=4)
    assert added == RemoteSettings("origin", "s3://b/p", "http://127.0.0.1:9000", jobs=4)
    text = (git_repo / "gitrepro.toml").read_text()
    assert text.startswith(USER_FILE)
    assert doc(git_repo)["remote"] == {"origin": {"url": "s3://b/p", "endpoint_url": "http://127.0.0.1:9000",
                                                  "jobs": 4}}
    assert settings.resolve(repo).name == "origin"                 # the repo re-reads the file


def test_add_then_remove_gives_back_the_file_as_it_was(git_repo):
    repo = write_project(git_repo, USER_FILE)
    settings.add(repo, "origin", "s3://b/p")
    settings.add(repo, "nas", "/mnt/nas", make_default=True)
    assert doc(git_repo)["remote"]["default"] == "nas" and settings.resolve(repo).name == "nas"
    settings.remove(repo, "nas")
    assert "default" not in doc(git_repo)["remote"] and settings.resolve(repo).name == "origin"
    settings.remove(repo, "origin")
    assert (git_repo / "gitrepro.toml").read_text().strip() == USER_FILE.strip()


def test_add_refuses_a_duplicate_a_bad_url_and_credentials_and_leaves_the_file_alone(git_repo):
    repo = write_project(git_repo, USER_FILE)
    settings.add(repo, "origin", "s3://b/p")
    before = (git_repo / "gitrepro.toml").read_bytes()
    with pytest.raises(RemoteConfigError, match="remote 'origin' already exists; `gitrepro remote remove origin`"):
        settings.add(repo, "origin", "s3://b/q")
    with pytest.raises(RemoteConfigError, match="unsupported remote url 'ftp://host/x'"):
        settings.add(repo, "ftp", "ftp://host/x")
    with pytest.raises(RemoteConfigError, match="credentials must never be committed"):
        settings.add(repo, "leaky", "s3://key:secret@b/p")
    with pytest.raises(RemoteConfigError, match="bad remote name"):
        settings.add(repo, "default", "s3://b/p")
    assert (git_repo / "gitrepro.toml").read_bytes() == before


def test_remove_of_an_unknown_remote_is_an_error(git_repo):
    repo = write_project(git_repo, USER_FILE)
    with pytest.raises(RemoteConfigError, match="no remote named 'origin' in gitrepro.toml"):
        settings.remove(repo, "origin")


def test_a_file_the_text_edit_cannot_follow_is_rewritten_from_its_parsed_form(git_repo):
    """An inline table cannot be cut out line by line: the edit falls back to writing the
    parsed document, which still means exactly what was intended."""
    repo = write_project(git_repo, 'remote = { origin = { url = "s3://b/p" }, nas = { url = "/mnt/nas" } }\n'
                                   '[run]\noutputs = ["models"]\n')
    settings.remove(repo, "origin")
    assert doc(git_repo) == {"remote": {"nas": {"url": "/mnt/nas"}}, "run": {"outputs": ["models"]}}
    settings.remove(repo, "nas")
    assert doc(git_repo) == {"run": {"outputs": ["models"]}}


def test_add_to_a_repository_without_gitrepro_toml_creates_it(git_repo):
    repo = Repo.find(git_repo)
    settings.add(repo, "origin", "/srv/store")
    assert doc(git_repo) == {"remote": {"origin": {"url": "/srv/store"}}}


# ---------------------------------------------------------------- through the commands

def test_remote_add_keeps_the_rest_of_gitrepro_toml_and_remove_undoes_it(git_repo, repo, run_cli):
    ensure_cli()
    repo.init()
    before = (git_repo / "gitrepro.toml").read_text()
    assert run_cli("remote", "add", "origin", "s3://b/p", "--endpoint-url", "http://127.0.0.1:9000",
                   "--jobs", "4").code == 0
    assert run_cli("remote", "add", "nas", "/mnt/nas/store", "--default").code == 0
    text = (git_repo / "gitrepro.toml").read_text()
    assert text.startswith(before) and "# [remote.origin]" in text
    listed = run_cli("remote", "list")
    assert "* nas" in listed.out and "s3://b/p (endpoint http://127.0.0.1:9000)" in listed.out
    r = Repo.find(git_repo)
    assert settings.resolve(r).name == "nas" and settings.resolve(r, "origin").jobs == 4
    assert run_cli("remote", "remove", "nas").code == 0
    assert run_cli("remote", "remove", "origin").code == 0
    assert (git_repo / "gitrepro.toml").read_text().strip() == before.strip()
    assert "no remote named" in run_cli("remote", "remove", "origin").err


def test_credentials_in_gitrepro_toml_are_refused(git_repo, repo, run_cli):
    (git_repo / "gitrepro.toml").write_text('[remote.origin]\nurl = "s3://b/p"\naws_secret_access_key = "x"\n')
    with pytest.raises(settings.RemoteConfigError, match="credentials must never be committed"):
        settings.resolve(Repo.find(git_repo))


def test_no_remote_configured_is_a_clear_error_and_checkout_gets_no_fetcher(git_repo, repo):
    assert fetch_op.make_fetcher(repo) is None
    with pytest.raises(settings.RemoteConfigError, match="gitrepro remote add"):
        push_op.push(repo)


def test_a_relative_directory_url_is_relative_to_the_repository_root(git_repo, repo, tmp_path):
    (git_repo / "gitrepro.toml").write_text('[remote.here]\nurl = "../store"\n')
    r = Repo.find(git_repo)
    assert settings.open_settings(r, settings.resolve(r)).url == str(git_repo / "../store")


@pytest.mark.parametrize("line", ['timeout = "abc"', 'multipart_threshold = "x"', "region = 5", "endpoint_url = 7",
                                  'addressing_style = "weird"', 'endpoint_url = "minio:9000"',
                                  'endpoint_url = "https://me:hunter2@minio:9000"'])
def test_a_mistyped_remote_setting_is_one_line_not_a_crash(git_repo, repo, run_cli, line):
    (git_repo / "gitrepro.toml").write_text(f'[remote.origin]\nurl = "s3://bucket/p"\n{line}\n')
    key = line.split()[0]
    assert f"[remote.origin] {key} " in run_cli("push").error_line()
