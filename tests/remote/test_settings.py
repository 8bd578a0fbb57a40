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


# ---------------------------------------------------------------- which remote, and changing it

COMMENTED = """\
# data remotes
[remote]
default = "origin"   # CI verifies this one

[remote.origin]
url = "s3://bucket/prefix"   # the team bucket
region = "eu-west-1"

[remote.nas]
url = "/mnt/nas/store"
"""


def test_set_default_and_set_url_change_only_their_lines_and_keep_the_comments(git_repo):
    repo = write_project(git_repo, COMMENTED)
    settings.set_default(repo, "nas")
    assert (git_repo / "gitrepro.toml").read_text() == COMMENTED.replace(
        'default = "origin"   # CI verifies this one', 'default = "nas"')
    assert settings.resolve(repo).name == "nas"
    settings.set_url(repo, "origin", "s3://other-bucket/team")
    text = (git_repo / "gitrepro.toml").read_text()
    assert 'url = "s3://other-bucket/team"\n' in text and "# the team bucket" not in text and "# data remotes" in text
    assert settings.resolve(repo, "origin") == RemoteSettings("origin", "s3://other-bucket/team", region="eu-west-1")


def test_set_url_and_set_default_refuse_what_they_cannot_mean_and_leave_the_file_alone(git_repo):
    repo = write_project(git_repo, COMMENTED)
    with pytest.raises(RemoteConfigError, match="region does not apply to gs:// remotes"):
        settings.set_url(repo, "origin", "gs://bucket/prefix")           # origin's region is S3's
    with pytest.raises(RemoteConfigError, match="'-b' is not a bucket name"):
        settings.set_url(repo, "nas", "s3://-b/x")
    with pytest.raises(RemoteConfigError, match="no remote named 'backup'"):
        settings.set_url(repo, "backup", "/srv/x")
    with pytest.raises(RemoteConfigError, match="no remote named 'backup'"):
        settings.set_default(repo, "backup")
    assert (git_repo / "gitrepro.toml").read_text() == COMMENTED


def test_adding_a_second_remote_writes_down_which_one_is_the_default(git_repo):
    repo = write_project(git_repo, USER_FILE)
    settings.add(repo, "origin", "s3://b/p")
    assert "default" not in doc(git_repo)["remote"]                 # one remote: it is the default
    settings.add(repo, "nas", "/mnt/nas")
    assert doc(git_repo)["remote"]["default"] == "origin" and settings.resolve(repo).name == "origin"
    settings.add(repo, "backup", "gs://backup-bucket/p", make_default=True)
    assert doc(git_repo)["remote"]["default"] == "backup" and settings.resolve(repo).name == "backup"
    assert (git_repo / "gitrepro.toml").read_text().startswith(USER_FILE)


def test_the_pre_push_check_follows_the_git_remote_of_the_same_name_else_the_default():
    p = project(COMMENTED)
    assert settings.for_git_remote(p, "nas") == "nas"
    assert settings.for_git_remote(p, "github") is None              # None: the default, origin


def test_verify_can_name_a_remote_of_the_working_tree_or_of_the_verified_commit_or_give_a_url(git_repo):
    repo = write_project(git_repo, COMMENTED)
    old = project('[remote.archive]\nurl = "gs://old-bucket/p"\n')
    assert settings.resolve_remote(repo, "nas").url == "/mnt/nas/store"
    assert settings.resolve_remote(repo, "archive", old).url == "gs://old-bucket/p"
    assert settings.resolve_remote(repo, "ssh://me@host/srv/store").url == "ssh://me@host/srv/store"
    assert settings.resolve_remote(repo, "/srv/store").url == "/srv/store"
    with pytest.raises(RemoteConfigError, match=r"no remote named 'archive' .*known: nas, origin; or give a url"):
        settings.resolve_remote(repo, "archive")
    with pytest.raises(RemoteConfigError, match="is not a container name"):
        settings.resolve_remote(repo, "az://x/p")


def test_remote_default_and_set_url_through_the_cli(git_repo, repo, run_cli):
    ensure_cli()
    assert run_cli("remote", "add", "origin", "s3://b/p", "--region", "eu-west-1").code == 0
    added = run_cli("remote", "add", "nas", "/mnt/nas/store")
    assert added.code == 0 and "origin is the default remote" in added.out
    assert "default remote: origin" in run_cli("remote", "default").out
    assert run_cli("remote", "default", "nas").code == 0
    assert "* nas" in run_cli("remote", "list").out
    assert run_cli("remote", "set-url", "nas", "ssh://me@nas.internal:2222/srv/store").code == 0
    assert settings.resolve(Repo.find(git_repo)).url == "ssh://me@nas.internal:2222/srv/store"
    refused = run_cli("remote", "default", "backup")
    assert refused.code == 1 and "no remote named 'backup'" in refused.error_line()


@pytest.mark.parametrize("args, message", [
    (["gs://Bad_Bucket/p"], "is not a bucket name"),
    (["gs://"], "names no bucket"),
    (["az://ab/p"], "is not a container name"),
    (["az://my-container/p", "--account", "Not_An_Account"], "is not an Azure storage account name"),
    (["ssh://host:99999/srv"], "port from 1 to 65535"),
    (["ssh://host:0/srv"], "port must be a number from 1 to 65535"),
    (["ssh://[::1/srv"], "not HOST[:PORT]"),
    (["ssh://host/srv/../etc"], "absolute path"),
    (["ssh://me:hunter2@host/srv"], "credentials must never be committed"),
    (["ssh:///srv"], "names no host"),
    (["s3://bucket/p", "--region", "moon-base"], "is not an AWS region name"),
    (["s3://bucket/p", "--region", "eu west 1"], "not a region name"),
    (["gs://bucket/p", "--region", "us-east-1"], "region does not apply to gs:// remotes"),
    (["/srv/store", "--endpoint-url", "http://127.0.0.1:9000"], "endpoint_url does not apply to directory remotes"),
    (["az://my-container/p", "--endpoint-url", "127.0.0.1:10000"], "endpoint_url must start with http://"),
    (["s3://bucket/p", "--jobs", "0"], "--jobs"),
    (["s3://bucket/p", "--jobs", "many"], "--jobs"),
    (["ftp://host/x"], "unsupported remote url"),
])
def test_remote_add_refuses_bad_urls_regions_and_numbers_in_one_line(git_repo, repo, run_cli, args, message):
    ensure_cli()
    result = run_cli("remote", "add", "origin", *args)
    assert result.code in (1, 2) and message in result.err and not (git_repo / "gitrepro.toml").exists(), result.err
