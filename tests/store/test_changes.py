"""Tests for gitrepro.store.changes: an entry reads back as written, for its own key only; a
damaged, truncated, oversized or foreign file reads as no entry; a store it cannot write to
gets none; gc's prune keeps only the entries of manifests it keeps."""

from __future__ import annotations

import os

import pytest

from gitrepro.store import changes, layout
from gitrepro.store.changes import ChangeCache, ManifestChange

M, B, C = "ab" * 32, "cd" * 32, "ef" * 32
CHANGE = ManifestChange(frozenset({b"\x01" * 32, b"\x02" * 32}), (300, 4096, False))


def test_an_entry_reads_back_for_its_key_only(tmp_path):
    cache = ChangeCache(tmp_path)
    cache.put(M, B, CHANGE)
    cache.put(B, M, CHANGE._replace(summary=None))
    assert cache.get(M, B) == CHANGE and cache.get(B, M) == CHANGE._replace(summary=None)
    assert cache.get(M, C) is None and cache.get("../" + M[3:], B) is None
    os.replace(layout.change_file(tmp_path, M, B), layout.change_file(tmp_path, M, C))
    assert cache.get(M, C) is None    # names (M, B) inside


@pytest.mark.parametrize("damage", [lambda d: d[:-1], lambda d: d[:40] + b"X" + d[41:], lambda d: b"",
                                    lambda d: d.replace(b" 1\n", b" 2\n", 1)])
def test_a_damaged_entry_reads_as_none_and_is_written_again(tmp_path, damage):
    cache = ChangeCache(tmp_path)
    cache.put(M, B, CHANGE)
    path = layout.change_file(tmp_path, M, B)
    path.write_bytes(damage(path.read_bytes()))
    assert cache.get(M, B) is None
    cache.put(M, B, CHANGE)
    assert cache.get(M, B) == CHANGE


def test_an_oversized_file_is_not_read_and_a_huge_change_not_kept(tmp_path, monkeypatch):
    cache = ChangeCache(tmp_path)
    monkeypatch.setattr(changes, "MAX_ADDED", 1)
    cache.put(M, B, CHANGE)
    assert not layout.change_file(tmp_path, M, B).exists()
    monkeypatch.setattr(ChangeCache, "MAX_FILE", 100)
    monkeypatch.setattr(changes, "MAX_ADDED", 10)
    cache.put(M, B, CHANGE)
    assert layout.change_file(tmp_path, M, B).stat().st_size > 100 and cache.get(M, B) is None


def test_a_store_it_cannot_write_to_gets_no_entry_and_no_error(tmp_path):
    (tmp_path / layout.CHANGES_DIR).write_text("not a directory")
    ChangeCache(tmp_path).put(M, B, CHANGE)
    assert ChangeCache(tmp_path).get(M, B) is None


def test_prune_keeps_the_entries_of_kept_manifests(tmp_path):
    cache = ChangeCache(tmp_path)
    for m, base in ((M, B), (B, C), (C, M)):
        cache.put(m, base, CHANGE)
    assert cache.prune({M, B}) == 2
    assert cache.get(M, B) == CHANGE and cache.get(B, C) is None and cache.get(C, M) is None
