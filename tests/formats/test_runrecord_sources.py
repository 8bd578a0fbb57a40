"""Tests for the optional `[input_sources]` table of a version 2 run record (formats.runrecord):
where each input imported from another repository came from. It round trips, is validated on read
(bounded URL and rev, full commit, safe path, only for the run's inputs) with a one-line refusal,
and records without it (older ones, version 1) read as before."""

from __future__ import annotations

import dataclasses

import pytest

from gitrepro.formats import runrecord
from gitrepro.formats.runrecord import BadRunRecord, InputSource
from test_runrecord import sample

SOURCE = InputSource("https://example.com/registry.git", "f" * 40, "curated/train", "v1")


def with_source(**changes) -> bytes:
    return runrecord.dumps(sample(input_sources={"data/train": SOURCE._replace(**changes)}))


def test_input_sources_round_trip_and_are_written_only_when_an_input_is_imported():
    rec = sample(input_sources={"data/train": SOURCE})
    data = runrecord.dumps(rec)
    assert b'[input_sources."data/train"]\nurl = "https://example.com/registry.git"\n' in data
    assert runrecord.parse(data) == rec
    no_rev = sample(input_sources={"data/train": SOURCE._replace(rev="")})
    assert b"rev =" not in runrecord.dumps(no_rev) and runrecord.parse(runrecord.dumps(no_rev)) == no_rev
    plain = runrecord.dumps(sample())
    assert b"input_sources" not in plain and runrecord.parse(plain).input_sources == {}


def test_a_version_1_record_and_an_unknown_table_are_read_as_before():
    v1 = dataclasses.replace(sample(), version=1, code=runrecord.CodeState("a" * 40))
    text = runrecord.dumps(v1).decode()
    assert "[data]" in text
    assert runrecord.parse(text.encode()).input_sources == {}
    future = runrecord.dumps(sample()) + b'\n[some_later_table."data/train"]\nfield = "x"\n'
    assert runrecord.parse(future) == sample()      # as an older gitrepro reads [input_sources]


@pytest.mark.parametrize("data, message", [
    (with_source(url="ext::sh -c id"), "is not a repository URL gitrepro clones"),
    (with_source(url="https://x/" + "a" * 3000), "is not a repository URL gitrepro clones"),
    (with_source(commit="abc123"), "is not a full git commit id"),
    (with_source(rev="main..evil"), "is not a branch, tag or commit name"),
    (with_source(path="../outside"), "unsafe path"),
    (runrecord.dumps(sample()) + b'\n[input_sources."data/other"]\nurl = "/srv/r"\ncommit = "' + b"f" * 40
     + b'"\npath = "d"\n', "not one of the run's inputs"),
    (runrecord.dumps(sample()) + b'\n[input_sources]\n"data/train" = "https://x/y"\n', "must be a table of tables"),
    (with_source().replace(b'path = "curated/train"', b"path = 5"), "'path' missing or of the wrong type"),
])
def test_a_damaged_input_source_is_refused_in_one_line(data, message):
    with pytest.raises(BadRunRecord, match=message) as e:
        runrecord.parse(data, "runs/x.toml")
    assert "\n" not in str(e.value) and str(e.value).startswith("runs/x.toml: ")
