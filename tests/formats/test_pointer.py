"""Tests for gitrepro.formats.pointer: canonical TOML out, strict validation in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitrepro.formats import pointer
from gitrepro.util import tomlcompat
from gitrepro.formats.pointer import BadPointer, Pointer

MANIFEST = "ab" * 32

component = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\0"),
                    min_size=1, max_size=12).filter(lambda c: c not in (".", "..", ".git"))
dataset_path = st.lists(component, min_size=1, max_size=4).map("/".join)


@settings(max_examples=200, deadline=None)
@given(path=dataset_path, kind=st.sampled_from(["dir", "file"]),
       files=st.integers(0, 2**40), size=st.integers(0, 2**62))
def test_any_valid_pointer_round_trips(path, kind, files, size):
    p = Pointer(path=path, manifest=MANIFEST, kind=kind, files=files, bytes=size)
    assert pointer.parse(pointer.dumps(p)) == p


def test_pointer_bytes_are_stable_and_readable():
    data = pointer.dumps(Pointer("data/train", MANIFEST, "dir", 3, 1234))
    assert data.decode().splitlines()[2:] == [
        "version = 1", 'path = "data/train"', 'kind = "dir"', f'manifest = "{MANIFEST}"', "files = 3", "bytes = 1234"]


def test_a_path_that_is_not_utf8_cannot_become_a_pointer():
    with pytest.raises(BadPointer, match="UTF-8"):
        pointer.dumps(Pointer("caf\udce9", MANIFEST, "dir", 0, 0))


HEADER = ("# gitrepro data pointer: commit this file, not the data it names.\n"
          "# Restore the data with `gitrepro checkout`.\n")


def good(**changes) -> str:
    fields = {"version": "1", "path": '"data"', "kind": '"dir"', "manifest": f'"{MANIFEST}"',
              "files": "1", "bytes": "5", **changes}
    return "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)


@pytest.mark.parametrize("text,fragment", [
    (good(version="2"), "version"),
    (good(version=None), "version"),
    (good(version='"1"'), "version"),
    (good(path='"../x"'), "unsafe path"),
    (good(path='"/abs"'), "unsafe path"),
    (good(path='"a/.git/b"'), "unsafe path"),
    (good(path='"a//b"'), "unsafe path"),
    (good(path='"a\\\\b"'), "unsafe path"),
    (good(path='""'), "unsafe path"),
    (good(path=None), "path"),
    (good(path="3"), "path"),
    (good(manifest='"ABAB"'), "manifest"),
    (good(manifest=f'"{MANIFEST.upper()}"'), "manifest"),
    (good(kind='"link"'), "kind"),
    (good(files="-1"), "negative"),
    (good(bytes="true"), "bytes"),
    (good(files="1.5"), "files"),
    ("version = 1\npath = ", "not a valid pointer"),
    ("\xff\xfe", "not a valid pointer"),
])
@pytest.mark.parametrize("header", ["", HEADER], ids=["bare", "canonical"])
def test_parse_refuses_bad_pointers_naming_the_origin(text, fragment, header):
    text = header + text
    data = text.encode("latin-1") if "\xff" in text else text.encode()
    with pytest.raises(BadPointer) as e:
        pointer.parse(data, "x/data.gitrepro")
    assert str(e.value).startswith("x/data.gitrepro:") and fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_pointer_file_names():
    assert pointer.pointer_path_for("a/b") == "a/b.gitrepro"
    assert pointer.dataset_for_pointer("a/b.gitrepro") == "a/b"
    with pytest.raises(BadPointer):
        pointer.dataset_for_pointer("a/b.toml")


def toml_fields(data: bytes) -> dict:
    return tomlcompat.loads(data.decode())


@settings(max_examples=200, deadline=None)
@given(path=dataset_path, kind=st.sampled_from(["dir", "file"]),
       files=st.integers(0, 2**40), size=st.integers(0, 2**62))
def test_a_canonical_pointer_is_read_without_toml_as_toml_reads_it(path, kind, files, size):
    data = pointer.dumps(Pointer(path=path, manifest=MANIFEST, kind=kind, files=files, bytes=size))
    fields = pointer._read_canonical(data)
    needs_escapes = any(c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F for c in path)
    assert fields == toml_fields(data) if not needs_escapes else fields in (None, toml_fields(data))


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from([pointer.dumps(Pointer("data/train", MANIFEST, "dir", 3, 1234)),
                             pointer.dumps(Pointer('we"ird\\name', MANIFEST, "file", 0, 0))]),
       at=st.integers(0, 400), insert=st.sampled_from([b" ", b"\n", b"#", b"0", b'"', b"\\", b"x", b""]),
       cut=st.integers(0, 2))
def test_an_edited_pointer_is_read_as_toml_reads_it_or_not_at_all(base, at, insert, cut):
    at = min(at, len(base))
    data = base[:at] + insert + base[at + cut:]
    fields = pointer._read_canonical(data)
    if fields is not None:
        assert fields == toml_fields(data)
