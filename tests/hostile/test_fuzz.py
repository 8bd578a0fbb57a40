"""Issue 15, fuzzing: random and mutated pointers, manifests, run records, store configs, resolved
configs, gitrepro.toml files, pack footers and remote layout files fed to every parser (only the
parser's own GitreproError subclass may escape), and mutated pointers, run records and
gitrepro.toml committed into a real git repository and read back by checkout, verify, show, log,
policy and status through the CLI (exit 0, 1 with one line, or 2; never 3; nothing written
outside the dataset).

The number of examples per property is GITREPRO_FUZZ_EXAMPLES (default 150; the repository
properties run a tenth of it, at least 10). A long run: `GITREPRO_FUZZ_EXAMPLES=20000 pytest
tests/hostile/test_fuzz.py -k parser`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_git
from gitrepro.cli import app as cli
from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats import runrecord
from gitrepro.formats.chunker import BadChunkerParams
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.project import DEFAULT_PROJECT, ProjectError, parse_project
from gitrepro.git import tracking
from gitrepro.remote import layout
from gitrepro.remote import settings as remote_settings
from gitrepro.remote.base import RemoteError
from gitrepro.repro import config as configmod
from gitrepro.repro import policy
from gitrepro.store.store import StoreConfig, StoreError, parse_manifest_root
from helpers_runs import make_project, stage_run, train
from helpers_trees import tree_state

EXAMPLES = int(os.environ.get("GITREPRO_FUZZ_EXAMPLES", "150"))
REPO_EXAMPLES = max(10, EXAMPLES // 10)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])

# ---------------------------------------------------------------- valid samples

H = [hash_bytes(bytes([i])).hex() for i in range(4)]
T = datetime(2026, 11, 26, 8, 15, tzinfo=timezone.utc)


def sample_record() -> bytes:
    rec = runrecord.RunRecord(
        "20261126T081500Z-3f2a1c", ("python", "train.py", "--lr", "0.1"), runrecord.CodeState("a" * 40, True, ("x.py",)),
        runrecord.ConfigRef("configs/base.resolved.toml", H[0], "configs/base.toml", ("optim.lr=0.1",)), 7,
        {"data/train": H[1]}, {"models": H[2]},
        {"python": "3.11.7", "packages": {"numpy": "2.0"}, "variables": {"PYTHONHASHSEED": "7"}, "hash": H[3]},
        T, T, 1.5, 0, "src")
    return runrecord.dumps(rec)


def sample_manifest() -> bytes:
    one = hash_bytes(b"hello").hex()
    return manifestfmt.dumps(manifestfmt.Manifest((
        manifestfmt.Entry("a b/é.bin", manifestfmt.FILE, 0o755, 5, one, (one,)),
        manifestfmt.Entry("empty", manifestfmt.DIR),
        manifestfmt.Entry("link", manifestfmt.SYMLINK, target="a b/é.bin"),
        manifestfmt.Entry("z.bin", manifestfmt.FILE, 0o644, 0, manifestfmt.EMPTY_HASH))))


def sample_resolved() -> bytes:
    values = {"seed": 7, "optim": {"lr": 0.1, "steps": [1, 2]}, "data": {"train": "data/train"}}
    rc = configmod.ResolvedConfig(Path("configs/base.resolved.toml"), configmod.content_hash(values), 7, values,
                                  {"optim.lr": "configs/base.toml"}, {"data/train": H[1]},
                                  {"configs/base.toml": H[0]}, "configs/base.toml", ("optim.lr=0.1",))
    return configmod.render(rc)


def sample_pack() -> tuple[bytes, str]:
    out = io.BytesIO()
    writer = packfmt.PackWriter(out)
    for i in range(3):
        data = bytes([i]) * (10 + i)
        writer.add(hash_bytes(data), data, packfmt.FLAG_MANIFEST if i == 2 else 0, len(data))
    pack_id = writer.finish()
    return out.getvalue(), pack_id


PACK, PACK_ID = sample_pack()
IDX = layout.encode_idx(len(PACK), PACK[-(3 * packfmt.ENTRY.size + packfmt.TRAILER.size):])
PROJECT = (DEFAULT_PROJECT.replace("[policy]\ntraining = []", '[policy]\ntraining = ["models.gitrepro"]') +
           '\n[remote]\ndefault = "origin"\n\n[remote.origin]\nurl = "s3://bucket/prefix"\nregion = "eu-west-1"\n'
           'jobs = 4\n').encode()
SAMPLES = {
    "pointer": pointerfmt.dumps(pointerfmt.Pointer("data/train", H[0], "dir", 3, 60_000)),
    "manifest": sample_manifest(),
    "run record": sample_record(),
    "store config": StoreConfig().dumps(),
    "project": PROJECT,
    "resolved config": sample_resolved(),
    "idx": IDX,
    "remote config": layout.config_bytes(),
    "manifest root": b"gitrepro-manifest-parts 1\n" + "".join(h + "\n" for h in H).encode(),
    "pack footer": PACK,
}

# ---------------------------------------------------------------- mutations

TOKENS = [b"[", b"]", b"{", b"}", b'"', b"'", b'"""', b"\\", b"\\u0000", b"\n", b"=", b".", b",", b"#",
          b"..", b"/", b"../", b".git", b".GIT", b"\x00", b"\xff", b"\xc3", b"-1", b"0", b"1e400", b"nan",
          b"-inf", b"99999999999999999999999999", b"9223372036854775807", b"true", b"1979-05-27T07:32:00Z",
          b'"../pwned"', b'"/etc/passwd"', b'"~"', b"0" * 64, b"f" * 64, b"[" * 3000, b"{a=" * 500,
          b"a." * 3000, b"[[x]]\n", b"\x7f", "\u202e".encode(), b"\r\n", b"\t", b" " * 100]


@st.composite
def mutated(draw, sample: bytes) -> bytes:
    """The sample with 1-8 random edits: flips, token insertions, deletions, truncation, repeats."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "replace"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "truncate":
            del data[pos:]
        elif op == "repeat":
            end = pos + draw(st.integers(1, 200))
            data[pos:pos] = bytes(data[pos:end]) * draw(st.integers(1, 20))
        elif op == "replace":
            data[pos:pos + draw(st.integers(1, 20))] = draw(st.binary(max_size=20))
    return bytes(data)


TOML_SCALARS = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=30), st.booleans(),
                         st.datetimes(timezones=st.just(timezone.utc)), st.sampled_from(["", ".", "..", "/x",
                                                                                         "../x", ".git", "a" * 64]))
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)), max_leaves=12)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))


@st.composite
def retyped(draw, sample: bytes) -> bytes:
    """A TOML sample with one field (at any depth) replaced by, or given, a random TOML value, or deleted."""
    doc = tomllib.loads(sample.decode())
    path = draw(st.sampled_from(list(_paths(doc))[1:]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "delete", "add"]))
    if how == "delete":
        del parent[path[-1]]
    elif how == "add" and isinstance(parent[path[-1]], dict):
        parent[path[-1]][draw(st.text(min_size=1, max_size=8))] = draw(TOML_VALUES)
    else:
        parent[path[-1]] = draw(TOML_VALUES)
    try:
        return tomli_w.dumps(doc).encode()
    except (TypeError, ValueError):      # tomli_w cannot write a few values (e.g. mixed arrays on old versions)
        return sample


TOML_KINDS = {"pointer", "run record", "store config", "project", "resolved config", "remote config"}


def inputs(kind: str):
    sample = SAMPLES[kind]
    found = [st.binary(max_size=3000), mutated(sample), st.just(sample)]
    if kind in TOML_KINDS:
        found.append(retyped(sample))
    return st.one_of(*found)


# ---------------------------------------------------------------- parsers

def _project(data: bytes) -> None:
    project = parse_project(data)
    project.chunker()
    policy.training_paths({"models.gitrepro": "M"}, project)
    remote_settings.remotes(project)


def _default_remote(data: bytes) -> None:
    remote_settings.default_name(parse_project(data))


def _store_config(data: bytes) -> None:
    StoreConfig.parse(data, "config").chunker.check()


PARSERS = {
    "pointer": (lambda b: pointerfmt.parse(b, "data.gitrepro"), (pointerfmt.BadPointer,)),
    "pointer at a path": (lambda b: tracking.parse_at("data/train.gitrepro", b, "x"), (pointerfmt.BadPointer,)),
    "manifest": (lambda b: manifestfmt.check_restorable(manifestfmt.parse(b)), (manifestfmt.BadManifest,)),
    "run record": (lambda b: runrecord.parse(b, "runs/x.toml"), (runrecord.BadRunRecord,)),
    "store config": (_store_config, (StoreError, BadChunkerParams)),
    "project": (_project, (ProjectError, BadChunkerParams, policy.PolicyConfigError, RemoteError)),
    "project default remote": (_default_remote, (ProjectError, RemoteError)),
    "resolved config": (lambda b: configmod.parse_resolved(b, Path("c.resolved.toml")), (configmod.ConfigError,)),
    "idx": (lambda b: layout.parse_idx(b, PACK_ID, "index/x.idx"), (packfmt.CorruptPack,)),
    "remote config": (lambda b: layout.check_config(b, "s3://b/p"), (layout.UnsupportedRemote,)),
    "manifest root": (lambda b: parse_manifest_root(b, H[0]), (StoreError,)),
    "pack footer": (lambda b: packfmt.parse_footer(b, len(b)), (packfmt.CorruptPack,)),
}
SAMPLE_OF = {"pointer at a path": "pointer", "project default remote": "project"}


def test_every_valid_sample_parses():
    for name, (parse, _) in PARSERS.items():
        parse(SAMPLES[SAMPLE_OF.get(name, name)])


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_parser_fed_random_and_mutated_bytes_raises_only_its_own_error(name):
    parse, allowed = PARSERS[name]

    @FUZZ
    @given(data=inputs(SAMPLE_OF.get(name, name)))
    def check(data):
        try:
            parse(data)
        except allowed:
            pass
        except GitreproError as e:      # a GitreproError, but not this parser's own: say which
            raise AssertionError(f"{name}: {type(e).__name__} escaped: {e}") from None

    check()


def test_a_deeply_nested_json_manifest_is_a_bad_manifest():
    """formats/manifest.py reads JSON lines; json's C scanner raises RecursionError past ~1000 levels."""
    header = b'{"format":"gitrepro-manifest","version":1}\n'
    for data in (b"[" * 100_000 + b"\n", header + b'{"p":' * 100_000 + b"\n"):
        with pytest.raises(manifestfmt.BadManifest):
            manifestfmt.parse(data)


def test_an_error_quoting_hostile_bytes_is_printed_as_one_line_without_control_characters(git_repo, run_cli):
    """Messages quote what a file says; the CLI prints them as one line, with line breaks and
    terminal escapes defused (a path that clears the screen or starts a second, fake line)."""
    evil = 'data\\u001b[2J\\r\\ngitrepro: all good\\u009b'
    (git_repo / "data.gitrepro").write_bytes(
        f'version = 1\npath = "{evil}"\nkind = "dir"\nmanifest = "{H[0]}"\nfiles = 1\nbytes = 1\n'.encode())
    run_git(git_repo, "add", "data.gitrepro")
    run_git(git_repo, "commit", "-q", "--no-verify", "-m", "hostile")
    for args in (["checkout"], ["status"], ["verify", "HEAD"], ["policy", "check", "HEAD"]):
        result = run_cli(*args)
        assert result.code in (1, 2), (args, result.err)
        text = result.err if result.code == 1 else result.out
        assert not any(c in text for c in "\x1b\r\x9b"), (args, text)
        if result.code == 1:
            result.error_line()
        assert not any(line.lstrip().startswith("gitrepro: all good") for line in text.splitlines()), (args, text)



def test_an_error_quoting_a_damaged_store_config_is_one_line(git_repo, run_cli):
    """Found by the parser fuzzing: a key with a line break in the store config came back inside
    the error message, which the CLI then printed as two lines."""
    assert run_cli("init").code == 0
    config = git_repo / ".git" / "gitrepro" / "config.toml"
    config.write_bytes(config.read_bytes().replace(b"[chunker]\n", b'[chunker]\n"\\u001b[2J\\nfake" = 0\n'))
    (git_repo / "data").mkdir()
    (git_repo / "data" / "f").write_bytes(b"x")
    for args in (["fsck"], ["add", "data"]):
        line = run_cli(*args).error_line()
        assert "\x1b" not in line and "store config is damaged" in line, line


# ---------------------------------------------------------------- a real repository

@pytest.fixture(scope="module")
def fuzz_repo(tmp_path_factory):
    """A training project with one training commit; returns (root, base commit, valid files)."""
    top = tmp_path_factory.mktemp("fuzz")
    root = top / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    with open(root / ".git" / "config", "a") as f:
        f.write("[user]\n\tname = Test\n\temail = test@example.com\n[commit]\n\tgpgsign = false\n")
    old = os.getcwd()
    os.chdir(root)
    try:
        make_project(root)
        result = train(root)
        stage_run(root, result)
        run_git(root, "commit", "-q", "--no-verify", "-m", "train")
    finally:
        os.chdir(old)
    files = {p: (root / p).read_bytes() for p in ("data/train.gitrepro", "models.gitrepro", result.record.path,
                                                   "gitrepro.toml")}
    sentinel = top / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_bytes(b"precious\n")
    return root, run_git(root, "rev-parse", "HEAD").strip(), files, sentinel


COMMANDS = (["checkout", "--force"], ["checkout", "HEAD~1", "--force"], ["verify", "HEAD"], ["show", "HEAD"],
            ["show", "HEAD", "--json"], ["log"], ["lineage", "--json"], ["policy", "check", "HEAD"], ["status"],
            ["diff", "HEAD~1", "HEAD"])


def _cli(root: Path, args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(args)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def _outside_datasets(root: Path) -> dict[str, bytes]:
    """Every file and link in the worktree, except under .git and the datasets' directories."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel, d)) not in SKIP]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            found[os.path.normpath(os.path.join(rel, name))] = (
                os.readlink(path).encode() if os.path.islink(path) else Path(path).read_bytes())
    return found


SKIP = {".git", "data/train", "models"}


@st.composite
def hostile_files(draw, files: dict[str, bytes]) -> dict[str, bytes]:
    chosen = draw(st.lists(st.sampled_from(sorted(files)), min_size=1, max_size=2, unique=True))
    found = {}
    for path in chosen:
        sample = files[path]
        found[path] = draw(st.one_of(mutated(sample), retyped(sample), st.binary(max_size=400)))
    return found


def test_mutated_files_committed_to_a_repository_give_one_line_errors_and_write_nothing_outside(fuzz_repo):
    root, base, files, sentinel = fuzz_repo
    keep = tree_state(sentinel)

    @settings(FUZZ, max_examples=REPO_EXAMPLES)
    @given(changes=hostile_files(files))
    def check(changes):
        run_git(root, "reset", "-q", "--hard", base)
        for path, data in changes.items():
            (root / path).write_bytes(data)
            run_git(root, "add", "-f", path)
        run_git(root, "commit", "-q", "--no-verify", "--allow-empty", "-m", "hostile")
        before = _outside_datasets(root)
        for args in COMMANDS:
            code, out, err = _cli(root, args)
            assert code in (0, 1, 2), (args, code, err)
            assert "Traceback" not in out + err and "unexpected error" not in err, (args, err)
            if code == 1:
                lines = [line for line in err.splitlines() if line.strip()]
                assert len(lines) == 1 and lines[0].startswith("gitrepro: error:"), (args, err)
            assert _outside_datasets(root) == before, (args, "wrote outside the datasets")
        assert tree_state(sentinel) == keep
        assert not (root.parent / "pwned").exists()

    try:
        check()
    finally:
        run_git(root, "reset", "-q", "--hard", base)
        shutil.rmtree(root / ".git" / "gitrepro" / "log", ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
