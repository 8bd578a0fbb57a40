"""Tests for gitrepro.store.manifests: manifests in a real store, by their parts. Streamed writes give
the id a whole write gives, streamed reads check what `manifest.parse` checks, edits and
comparisons read only what they touch, and a damaged part is an error, never a wrong answer.
Chunker settings small enough that a few hundred entries make dozens of parts."""

from __future__ import annotations

import pytest

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.chunker import ChunkerParams
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, BadManifest, Entry, Manifest
from gitrepro.store import layout, manifests
from gitrepro.store.changes import ChangeCache
from gitrepro.store.manifests import StoredManifest
from gitrepro.store.store import MissingBlob, Store, StoreConfig

H = "cd" * 32


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store", create_with=StoreConfig(ChunkerParams(min_size=64, avg_size=512,
                                                                           max_size=2048)))
    yield s
    s.close()


def tree(n: int, size_of=lambda i: i) -> list[Entry]:
    found = [Entry(f"d{i % 5}/f{i:04d}", FILE, 0o644, size_of(i), H, (H,) if size_of(i) else ()) for i in range(n)]
    found += [Entry("empty", DIR, 0o755), Entry("link", SYMLINK, target="d0/f0000")]
    return sorted(found, key=lambda e: manifestfmt.sort_key(e.path))


def write(store, entries) -> manifests.Written:
    with store.writer() as w:
        return manifests.write_entries(store, w, entries)


def test_a_streamed_write_is_the_manifest_a_whole_write_stores(store):
    entries = tree(400)
    written = write(store, iter(entries))
    with store.writer() as w:
        whole = store.write_manifest(w, manifestfmt.dumps(Manifest(tuple(entries))))
    assert written.manifest == whole and len(written.parts) > 20
    assert manifestfmt.parse(store.read_manifest(whole)).entries == tuple(entries)


def test_a_streamed_read_gives_every_entry_a_block_at_a_time(store, monkeypatch):
    monkeypatch.setattr(manifests, "BLOCK_PARTS", 3)
    entries = tree(400)
    m = StoredManifest.open(store, write(store, entries).manifest)
    blocks = list(m.entries())
    assert len(blocks) > 5 and [e for block in blocks for e in block] == entries


def test_the_part_map_worked_out_by_reading_is_the_one_written(store):
    written = write(store, tree(300))
    assert StoredManifest.open(store, written.manifest).with_map().parts == written.parts


def test_an_edited_manifest_is_the_one_written_whole_and_found_by_path(store):
    before = tree(300)
    written = write(store, before)
    base = StoredManifest.open(store, written.manifest, written.parts)
    new = Entry("d2/f0102", FILE, 0o755, 7, H, (H,))
    added = Entry("d9/new", FILE, 0o644, 0, manifestfmt.EMPTY_HASH, ())
    edits = sorted([(manifestfmt.sort_key(new.path), manifestfmt.entry_line(new)),
                    (manifestfmt.sort_key(added.path), manifestfmt.entry_line(added)),
                    (manifestfmt.sort_key("d4/f0004"), None)])
    with store.writer() as w:
        edited = manifests.write_edited(store, w, base, edits)
    after = sorted([e for e in before if e.path not in ("d2/f0102", "d4/f0004")] + [new, added],
                   key=lambda e: manifestfmt.sort_key(e.path))
    assert edited.manifest == write(store, after).manifest
    again = StoredManifest.open(store, edited.manifest, edited.parts)
    keys = [manifestfmt.sort_key(p) for p in ("d2/f0102", "d4/f0004", "d9/new", "nowhere")]
    assert manifests.find(again, keys) == {keys[0]: new, keys[2]: added}


def test_two_manifests_are_compared_by_the_parts_they_do_not_share(store):
    a_entries = tree(300)
    b_entries = sorted([e for e in a_entries if e.path != "d1/f0001"] + [Entry("d3/extra", DIR, 0o700)],
                       key=lambda e: manifestfmt.sort_key(e.path))
    a, b = (StoredManifest.open(store, write(store, es).manifest) for es in (a_entries, b_entries))
    got = list(manifests.changes(a.with_map(), b, check_order=True))
    gone = next(e for e in a_entries if e.path == "d1/f0001")
    assert got == [(b"d1/f0001", gone, None), (b"d3/extra", None, Entry("d3/extra", DIR, 0o700))]


def test_a_manifest_of_another_version_is_refused_when_compared(store):
    a = StoredManifest.open(store, write(store, tree(50)).manifest)
    with store.writer() as w:
        other = store.write_manifest(w, b'{"format":"gitrepro-manifest","version":2}\n')
    with pytest.raises(BadManifest, match="version"):
        list(manifests.changes(a, StoredManifest.open(store, other)))


def test_a_bad_line_is_one_error_naming_the_manifest(store):
    a = StoredManifest.open(store, write(store, tree(50)).manifest)
    bad = manifestfmt.dumps(Manifest(tuple(tree(50)))).replace(b'"p":"d0/f0005"', b'"p":"../f0005"')
    with store.writer() as w:
        other = store.write_manifest(w, bad)
    with pytest.raises(BadManifest, match=f"manifest {other}.*unsafe path"):
        list(manifests.changes(a.with_map(), StoredManifest.open(store, other)))
    with pytest.raises(BadManifest, match="unsafe path"):
        for _ in StoredManifest.open(store, other).entries():
            pass


def history(store, versions: int, seed: int) -> list[str]:
    """Manifests of one dataset, each rewriting a few files (new chunk ids) spread over it."""
    import random
    rng = random.Random(seed)
    files = {f"d{i % 5}/f{i:04d}": f"{i:064x}" for i in range(300)}
    ids = []
    for _ in range(versions):
        entries = [Entry(p, FILE, 0o644, 1, c, (c,)) for p, c in files.items()]
        ids.append(write(store, sorted(entries, key=lambda e: manifestfmt.sort_key(e.path))).manifest)
        for p in rng.sample(sorted(files), 6):
            files[p] = f"{rng.getrandbits(256):064x}"
    return ids


def every_blob(store, ids) -> set[bytes]:
    return set().union(*(manifests.blobs_of(store, [m]) for m in ids))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_lineage_read_by_its_changes_needs_every_blob_its_versions_need_cached_or_not(store, seed):
    """The second reading comes from the change cache; a damaged and a deleted entry are worked
    out again, and every reading gives each version's every blob."""
    ids = history(store, 8, seed)
    wanted = every_blob(store, ids)
    first = manifests.Lineages(store)
    assert set().union(*(first.blobs(m, "data.gitrepro") for m in ids)) == wanted
    entries = sorted(layout.changes_dir(store.path).rglob("*.*"))
    assert len(entries) == 7
    entries[2].write_bytes(entries[2].read_bytes()[:-1] + b"\0")
    entries[4].unlink()
    again = manifests.Lineages(store)
    read = []
    again.cache.get = lambda m, base: read.append(m) or ChangeCache.get(again.cache, m, base)
    assert set().union(*(again.blobs(m, "data.gitrepro") for m in ids)) == wanted
    assert read == ids[1:] and len(sorted(layout.changes_dir(store.path).rglob("*.*"))) == 7
    assert ChangeCache(store.path).get(ids[3], ids[2]) is not None


def test_a_cached_change_still_needs_the_version_s_parts_in_the_store(store):
    ids = history(store, 3, 5)
    for m in ids:
        manifests.Lineages(store).blobs(m, "p")
    reading = manifests.Lineages(store)
    reading.blobs(ids[0], "p")
    reading.blobs(ids[1], "p")
    part = next(p for p in StoredManifest.open(store, ids[2]).ids if p not in StoredManifest.open(store, ids[1]).ids)
    store.index._db.execute("DELETE FROM blobs WHERE id=?", (part,))
    with pytest.raises(MissingBlob):
        reading.blobs(ids[2], "p")


def test_an_edited_manifest_s_change_is_cached_as_comparing_the_bytes_finds_it(store):
    base = StoredManifest.open(store, write(store, tree(300)).manifest)
    new = Entry("d2/f0102", FILE, 0o755, 7, "ef" * 32, ("ef" * 32,))
    edits = sorted([(manifestfmt.sort_key(new.path), manifestfmt.entry_line(new)),
                    (manifestfmt.sort_key("d4/f0004"), None)])
    with store.writer() as w:
        edited = manifests.write_edited(store, w, base, edits).manifest
    cache = ChangeCache(store.path)
    assert cache.get(edited, base.manifest_id).added == {bytes.fromhex("ef" * 32)}
    layout.change_file(store.path, edited, base.manifest_id).unlink()
    found, _ = manifests.added_over(store, cache, StoredManifest.open(store, edited), base.manifest_id)
    assert found == {bytes.fromhex("ef" * 32)}
