"""Tests for gitrepro.formats.pointer version 2: the [source] table of an imported dataset
(docs/design.md, "Pointer"). Version 1 pointers are unchanged; every source field is bounded."""

from __future__ import annotations

import pytest

from gitrepro.formats import pointer
from gitrepro.formats.pointer import IMPORTED_VERSION, BadPointer, Pointer, Source

MANIFEST = "ab" * 32
COMMIT = "cd" * 20
SOURCE = Source("https://example.com/team/data.git", COMMIT, "data/train", "main", "origin")


def imported(**source) -> Pointer:
    return Pointer("data/imported", MANIFEST, "dir", 3, 1234, IMPORTED_VERSION, SOURCE._replace(**source))


@pytest.mark.parametrize("ptr", [imported(), imported(rev="", remote=""), imported(url="/srv/repos/data"),
                                 imported(url="git@example.com:team/data.git"), imported(commit="ef" * 32)])
def test_an_imported_pointer_round_trips_with_its_source(ptr):
    assert pointer.parse(pointer.dumps(ptr)) == ptr


def test_an_imported_pointer_reads_well_and_a_plain_one_is_byte_for_byte_version_1():
    lines = pointer.dumps(imported()).decode().splitlines()
    assert lines[2] == "version = 2" and "[source]" in lines
    assert lines[lines.index("[source]") + 1:] == [
        'url = "https://example.com/team/data.git"', f'commit = "{COMMIT}"', 'path = "data/train"',
        'rev = "main"', 'remote = "origin"']
    plain = Pointer("data/train", MANIFEST, "dir", 3, 1234)
    assert pointer.dumps(plain).decode().splitlines()[2:] == [
        "version = 1", 'path = "data/train"', 'kind = "dir"', f'manifest = "{MANIFEST}"', "files = 3", "bytes = 1234"]
    assert pointer.parse(pointer.dumps(plain)).source is None


def test_a_source_and_a_version_go_together():
    with pytest.raises(BadPointer, match="exactly when"):
        pointer.dumps(Pointer("d", MANIFEST, "dir", 0, 0, source=SOURCE))
    with pytest.raises(BadPointer, match="exactly when"):
        pointer.dumps(Pointer("d", MANIFEST, "dir", 0, 0, IMPORTED_VERSION))


def text_with(source: str, version: int = 2) -> bytes:
    return (f'version = {version}\npath = "d"\nkind = "dir"\nmanifest = "{MANIFEST}"\nfiles = 0\nbytes = 0\n'
            + source).encode()


GOOD = f'[source]\nurl = "/srv/data"\ncommit = "{COMMIT}"\npath = "data/train"\n'


@pytest.mark.parametrize("source,fragment", [
    ("", "needs a [source] table"),
    ('source = "x"\n', "needs a [source] table"),
    (GOOD.replace('"/srv/data"', '"ext::sh -c touch% /tmp/pwned"'), "not a repository URL"),
    (GOOD.replace('"/srv/data"', '"--upload-pack=touch /tmp/x"'), "not a repository URL"),
    (GOOD.replace('"/srv/data"', '"relative/path"'), "not a repository URL"),
    (GOOD.replace('"/srv/data"', '"https://a\\nb"'), "not a repository URL"),
    (GOOD.replace('"/srv/data"', '"https://' + "a" * 3000 + '"'), "not a repository URL"),
    (GOOD.replace('"/srv/data"', '""'), "not a repository URL"),
    (GOOD.replace('"/srv/data"', "3"), "url"),
    (GOOD.replace(COMMIT, "abc"), "full git commit id"),
    (GOOD.replace(COMMIT, COMMIT.upper()), "full git commit id"),
    (GOOD.replace('"data/train"', '"../etc"'), "unsafe path"),
    (GOOD.replace('"data/train"', '"a/.git/b"'), "unsafe path"),
    (GOOD + 'rev = "--output=/tmp/x"\n', "rev"),
    (GOOD + 'rev = "main..evil"\n', "rev"),
    (GOOD + 'rev = "' + "a" * 300 + '"\n', "rev"),
    (GOOD + "rev = 1\n", "rev"),
    (GOOD + 'remote = "has space"\n', "remote"),
])
def test_parse_refuses_a_bad_source_naming_the_origin(source, fragment):
    with pytest.raises(BadPointer) as e:
        pointer.parse(text_with(source), "x/d.gitrepro")
    assert str(e.value).startswith("x/d.gitrepro") and fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_a_version_1_pointer_with_a_source_table_is_refused_and_unknown_versions_still_are():
    with pytest.raises(BadPointer, match="version 1 pointer has no"):
        pointer.parse(text_with(GOOD, version=1))
    with pytest.raises(BadPointer, match="versions 1 and 2"):
        pointer.parse(text_with(GOOD, version=3))
    assert pointer.parse(text_with(GOOD)).source == Source("/srv/data", COMMIT, "data/train")
