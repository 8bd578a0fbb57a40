"""Tests for gitrepro.repro.versions (through availability.LocalData): a dataset's next version judged
by its change from the last one gives the verdict and summary a full judgment gives, on random
versions with the defects a hostile or damaged manifest can have."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, Entry
from gitrepro.repro import availability

POOL = [b"chunk %d" % i for i in range(40)]
STORED = POOL[:30]                     # the last ten are nowhere


@pytest.fixture
def stocked(repo):
    """The repository's store, holding the first 30 chunks of the pool."""
    r = repo
    with r.store.writer() as w:
        for data in STORED:
            w.add(hash_bytes(data), data)
    return r


def file_entry(path: str, n: int) -> Entry:
    data = POOL[n]
    return Entry(path, FILE, 0o644, len(data), hash_bytes(data).hex(), (hash_bytes(data).hex(),))


paths = st.builds(lambda d, f: f"d{d}/f{f}" if d else f"f{f}", st.integers(0, 3), st.integers(0, 20))
tree = st.dictionaries(paths, st.integers(0, 29), min_size=1, max_size=25)
defects = st.sampled_from(["none", "none", "none", "missing-chunk", "unsorted", "duplicate", "beneath-a-file",
                           "file-over-a-dir", "unrestorable", "symlink", "empty-dir", "empty"])


def valid(spec: dict[str, int]) -> list[Entry]:
    found = []
    for path, n in sorted(spec.items(), key=lambda item: manifestfmt.sort_key(item[0])):
        if not any(other.startswith(path + "/") for other in spec):   # a file cannot hold files
            found.append(file_entry(path, n))
    return found


def with_defect(entries: list[Entry], defect: str) -> bytes:
    entries = list(entries)
    if defect == "missing-chunk":
        entries[0] = file_entry(entries[0].path, 35)
    elif defect == "beneath-a-file":
        entries.append(file_entry(entries[0].path + "/under", 1))
    elif defect == "file-over-a-dir":
        dirs = {e.path.rpartition("/")[0] for e in entries} - {""}
        if dirs:
            entries.append(file_entry(sorted(dirs)[0], 2))
    elif defect == "unrestorable":
        entries[0] = entries[0]._replace(size=10**9)
    elif defect == "symlink":
        entries.append(Entry("zlink", SYMLINK, target=entries[0].path))
    elif defect == "empty-dir":
        entries.append(Entry("zz-empty", DIR, 0o755))
    elif defect == "empty":
        entries = []
    entries.sort(key=lambda e: manifestfmt.sort_key(e.path))
    lines = [manifestfmt.entry_line(e) for e in entries]
    if defect == "unsorted" and len(lines) > 1:
        lines[0], lines[-1] = lines[-1], lines[0]
    if defect == "duplicate":
        lines.insert(1, lines[0])
    return manifestfmt.HEADER_LINE + b"".join(lines)


def store(repo, data: bytes) -> str:
    with repo.store.writer() as w:
        return repo.store.write_manifest(w, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=tree, changes=st.lists(st.tuples(tree, defects), min_size=1, max_size=3))
def test_a_version_judged_by_its_change_gets_the_full_verdict(stocked, first, changes):
    repo = stocked
    by_change = availability.LocalData(repo)
    spec = dict(first)
    base = store(repo, with_defect(valid(spec), "none"))
    by_change.lineage[base] = "data"
    assert by_change.judge([base]) == {base: None}
    for more, defect in changes:
        spec = {**{p: n for n, (p, _) in enumerate(spec.items()) if n % 2}, **more}
        m = store(repo, with_defect(valid(spec), defect))
        by_change.lineage[m] = "data"
        full = availability.LocalData(repo)
        want = full.judge([m])
        assert by_change.judge([m]) == want, defect
        assert by_change.summaries.get(m) == full.summaries.get(m), defect
        full.close()
    by_change.close()
