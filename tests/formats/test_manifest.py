"""Tests for gitrepro.formats.manifest: canonical bytes, and parse refusing anything unsafe or malformed."""

from __future__ import annotations

import base64
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, BadManifest, Entry, Manifest

H = "cd" * 32

name = st.binary(min_size=1, max_size=8).filter(
    lambda b: b"/" not in b and b"\\" not in b and b"\0" not in b and b not in (b".", b"..", b".git"))
rel_path = st.lists(name, min_size=1, max_size=3).map(lambda parts: os.fsdecode(b"/".join(parts)))


def file_entry(path, **kw):
    return Entry(path, FILE, kw.pop("mode", 0o644), kw.pop("size", 3), kw.pop("hash", H), kw.pop("chunks", (H,)))


@st.composite
def manifests(draw):
    paths = draw(st.lists(rel_path, max_size=12, unique_by=os.fsencode))
    # Drop paths beneath another path, which would make that one a directory.
    paths = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]
    entries = []
    for p in paths:
        kind = draw(st.sampled_from([FILE, FILE, SYMLINK, DIR]))
        if kind == FILE:
            chunks = tuple(draw(st.lists(st.sampled_from([H, "ef" * 32]), max_size=3)))
            entries.append(Entry(p, FILE, draw(st.sampled_from([0o644, 0o755, 0o600])),
                                 draw(st.integers(0, 2**40)), H, chunks))
        elif kind == SYMLINK:
            entries.append(Entry(p, SYMLINK, target=os.fsdecode(draw(name))))
        else:
            entries.append(Entry(p, DIR, draw(st.sampled_from([0o755, 0o700]))))
    return Manifest(tuple(sorted(entries, key=lambda e: manifestfmt.sort_key(e.path))))


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_any_manifest_round_trips_through_its_canonical_bytes(m):
    data = manifestfmt.dumps(m)
    assert manifestfmt.parse(data) == m
    assert manifestfmt.dumps(Manifest(tuple(reversed(m.entries)))) == data   # order-independent


def test_names_that_are_not_utf8_are_stored_as_bytes():
    path = os.fsdecode(b"caf\xe9/\xff")
    data = manifestfmt.dumps(Manifest((file_entry(path),)))
    line = json.loads(data.splitlines()[1])
    assert base64.b64decode(line["pb"]) == b"caf\xe9/\xff" and "p" not in line
    assert manifestfmt.parse(data).entries[0].path == path


def test_entries_sort_by_path_bytes():
    m = Manifest((file_entry("b"), file_entry("a/z"), file_entry("a-"), file_entry("\u00e9")))
    paths = [e.path for e in manifestfmt.parse(manifestfmt.dumps(m)).entries]
    assert paths == ["a-", "a/z", "b", "\u00e9"]


def test_summary_properties():
    m = Manifest((file_entry("a", size=5), Entry("d", DIR, 0o755), Entry("l", SYMLINK, target="a")))
    assert (m.files, m.bytes, m.chunk_ids()) == (2, 5, {H})
    assert file_entry("a").same_content(file_entry("a")) and not file_entry("a").same_content(None)
    assert not file_entry("a").same_content(file_entry("a", mode=0o755))


HEADER = '{"format":"gitrepro-manifest","version":1}'


def lines(*entries: dict, header: str = HEADER) -> bytes:
    return ("\n".join([header, *(json.dumps(e) for e in entries)]) + "\n").encode()


def canonical(data: bytes) -> bytes:
    """The same lines re-encoded as `dumps` writes them (keys sorted, no spaces): the form
    `parse` reads on its bulk path, which must refuse exactly what the exact path refuses."""
    head, *rest = data.split(b"\n")
    body = [json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode() for line in rest[:-1]]
    return b"\n".join([head, *body, *rest[-1:]])


def f(path, **kw):
    return {"t": "f", "p": path, "m": 0o644, "s": 3, "h": H, "c": [H], **kw}


def link(path, target):
    return {"t": "l", "p": path, "l": base64.b64encode(target.encode()).decode()}


@pytest.mark.parametrize("data,fragment", [
    (b"", "not a gitrepro manifest"),
    (lines(f("a"))[:-1], "truncated"),
    (b"not json\n", "not a gitrepro manifest"),
    (lines(header='{"format":"other","version":1}'), "not a gitrepro manifest"),
    (lines(header='{"format":"gitrepro-manifest","version":2}'), "version 2"),
    (lines(f("b"), f("a")), "unsorted"),
    (lines(f("a"), f("a")), "duplicated"),
    (lines(f("a"), f("a/b")), "beneath"),
    (lines(link("a", "x"), f("a/b")), "beneath"),
    (lines(f("../a")), "unsafe path"),
    (lines(f("a/../../b")), "unsafe path"),
    (lines(f("/etc/passwd")), "unsafe path"),
    (lines(f(".git/config")), "unsafe path"),
    (lines(f("a/./b")), "unsafe path"),
    (lines(f("a//b")), "unsafe path"),
    (lines(f("a/")), "unsafe path"),
    (lines(f("a\\b")), "unsafe path"),
    (lines(f("")), "unsafe path"),
    (lines({"t": "f", "pb": base64.b64encode(b"../x").decode(), "m": 420, "s": 3, "h": H, "c": [H]}), "unsafe path"),
    (lines({"t": "f", "pb": "!!notbase64", "m": 420, "s": 3, "h": H, "c": [H]}), "malformed"),
    (lines(f("a", h="zz")), "file hash"),
    (lines(f("a", c=["../../x"])), "chunk id"),
    (lines(f("a", c=H)), "chunk id"),
    (lines(f("a", s=-1)), "bad size"),
    (lines(f("a", s=True)), "bad size"),
    (lines(f("a", m=0o10000)), "bad mode"),
    (lines(f("a", m="644")), "bad mode"),
    (lines({"t": "f", "p": "a"}), "malformed"),
    (lines({"t": "x", "p": "a"}), "unknown entry type"),
    (lines(["a list"]), "malformed"),
    (lines(link("a", "/etc")), "outside the dataset"),
    (lines(link("a", "")), "outside the dataset"),
    (lines(link("a", "../x")), "outside the dataset"),
    (lines(link("a/b", "../../x")), "outside the dataset"),
    (lines(link("d/out", "up/../.."), link("d/up", "..")), "outside the dataset"),
    (lines(link("p/q/top", "../.."), link("p/q/via", "top"), link("x", "p/q/via/..")), "outside the dataset"),
])
@pytest.mark.parametrize("encode", [lambda d: d, canonical], ids=["spaced", "canonical"])
def test_parse_refuses_bad_manifests_in_one_line(data, fragment, encode):
    try:
        data = encode(data)
    except ValueError:
        pytest.skip("not JSON lines to re-encode")
    with pytest.raises(BadManifest) as e:
        manifestfmt.parse(data, "manifest m1")
    assert str(e.value).startswith("manifest m1") and fragment in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


path_text = st.lists(st.sampled_from(["a", "b", "/", ".", "..", ".git", "\\", "\0", "\n", "\t", '"', "é", " "]),
                     max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "p": path_text, "m": st.sampled_from([0, 0o644, 0o777, 0o1000, 0o7777]),
    "s": st.sampled_from([0, 3, 2**63, 10**19, 10**20]),
    "h": st.sampled_from([H, H.upper(), H[:-1], H + "0"]),
    "c": st.lists(st.sampled_from([H, "ef" * 32, "EF" * 32, "e"]), max_size=3)}), max_size=6))
def test_bulk_path_accepts_only_what_the_exact_path_accepts_and_reads_it_alike(docs):
    body = [json.dumps({"t": "f", **d}, sort_keys=True, separators=(",", ":")) for d in docs]
    fast = manifestfmt._parse_plain_files("\n".join(body)) if body else []   # as `parse` calls it
    try:
        exact = manifestfmt._parse_exactly(body, "m")
    except BadManifest:
        assert fast is None
    else:
        assert fast is None or fast == exact


def test_bulk_path_takes_the_common_manifest():
    m = Manifest(tuple(file_entry(f"d{i // 100}/f{i:05}", size=i, chunks=(H, "ef" * 32)[:i % 3]) for i in range(1000)))
    body = manifestfmt.dumps(m).decode()[:-1].partition("\n")[2]
    assert manifestfmt._parse_plain_files(body) == list(m.entries)


@pytest.mark.parametrize("links", [
    [link("a", "b/c")],
    [link("a/b/up", ".."), link("a/b/x", "up/b/f")],
    [link("d/up", ".."), link("d/x", "up/d/up/d")],
    [link("loop1", "loop2/z"), link("loop2", "loop1/z")],
    [link("self", "self/self")],
    [link("a", "./b/../c")],
])
def test_parse_accepts_symlinks_that_stay_inside_the_dataset(links):
    manifestfmt.parse(lines(*sorted(links, key=lambda e: e["p"])))


def test_a_long_symlink_chain_is_checked_without_blowing_up():
    chain = [link(f"l{i:03d}", f"l{i + 1:03d}") for i in range(500)] + [link("l500", "x")]
    manifestfmt.parse(lines(*chain))
