"""Tests for gitrepro.repro.config: merge, deletion, overrides, interpolation, seed, resolved file, check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gitrepro
from gitrepro.repro import config
from gitrepro.repro.config import keys as config_keys
from gitrepro.git import plumbing
from gitrepro.formats import pointer
from gitrepro.repro.config import ConfigError, NotResolved, StaleConfig
from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.util import tomlcompat

MANIFEST_A = "a" * 64
MANIFEST_B = "b" * 64


# ---------------------------------------------------------------- helpers

def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


def write(repo: Path, rel: str, text: str) -> Path:
    p = repo / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def track(repo: Path, dataset: str, manifest: str = MANIFEST_A) -> None:
    """Write a real pointer file for `dataset` (no snapshot data is needed for config checks)."""
    ptr = pointer.Pointer(path=dataset, manifest=manifest, kind="dir", files=1, bytes=1)
    (repo / pointer.pointer_path_for(dataset)).parent.mkdir(parents=True, exist_ok=True)
    (repo / pointer.pointer_path_for(dataset)).write_bytes(pointer.dumps(ptr))


BASE = """\
seed = 1234
[data]
train = "data/train"
[optim]
lr = 0.001
batch_size = 64
momentum = 0.9
"""

BIG_LR = """\
extends = ["../base.toml"]
[optim]
lr = 0.01
"""


@pytest.fixture
def issue(repo) -> Path:
    """The layout from the issue: configs/base.toml, configs/exp/big_lr.toml, a tracked data/train."""
    write(repo, "configs/base.toml", BASE)
    write(repo, "configs/exp/big_lr.toml", BIG_LR)
    track(repo, "data/train")
    return repo / "configs/exp/big_lr.toml"


def resolve_text(repo: Path, text: str, overrides=(), **kw) -> config.ResolvedConfig:
    return config.resolve(write(repo, "c.toml", text), overrides, **kw)


# ---------------------------------------------------------------- merging

def test_the_issue_example_resolves_with_child_and_override_winning(issue):
    rc = config.resolve(issue, ["optim.batch_size=128"])
    assert rc.path == issue.with_name("big_lr.resolved.toml")
    assert rc.values == {"seed": 1234, "data": {"train": "data/train"},
                         "optim": {"lr": 0.01, "batch_size": 128, "momentum": 0.9}}
    assert rc.origins == {"seed": "configs/base.toml", "data.train": "configs/base.toml",
                          "optim.lr": "configs/exp/big_lr.toml", "optim.batch_size": "<override>",
                          "optim.momentum": "configs/base.toml"}
    assert rc.data_pointers == {"data/train": MANIFEST_A}
    assert set(rc.sources) == {"configs/base.toml", "configs/exp/big_lr.toml"}


def test_later_parents_win_and_the_child_wins_over_all_parents(repo):
    write(repo, "a.toml", "x = 'a'\ny = 'a'\nz = 'a'\n")
    write(repo, "b.toml", "y = 'b'\nz = 'b'\n")
    rc = resolve_text(repo, "seed = 1\nextends = ['a.toml', 'b.toml']\nz = 'c'\n")
    assert (rc.values["x"], rc.values["y"], rc.values["z"]) == ("a", "b", "c")
    assert rc.origins["y"] == "b.toml"


def test_parents_resolve_depth_first_with_relative_paths(repo):
    write(repo, "conf/root.toml", "seed = 1\n[t]\na = 1\nb = 1\nc = 1\n")
    write(repo, "conf/mid/mid.toml", "extends = '../root.toml'\n[t]\nb = 2\n")
    write(repo, "conf/mid/exp/leaf.toml", "extends = ['../mid.toml']\n[t]\nc = 3\n")
    rc = config.resolve(repo / "conf/mid/exp/leaf.toml")
    assert rc.values["t"] == {"a": 1, "b": 2, "c": 3}
    assert rc.origins["t.a"] == "conf/root.toml" and rc.origins["t.b"] == "conf/mid/mid.toml"


def test_a_diamond_reads_the_shared_grandparent_once(repo):
    write(repo, "d.toml", "seed = 1\nv = 'd'\n")
    write(repo, "b.toml", "extends = 'd.toml'\nb = 1\n")
    write(repo, "c.toml", "extends = 'd.toml'\nc = 1\n")
    rc = config.resolve(write(repo, "a.toml", "extends = ['b.toml', 'c.toml']\n"))
    assert rc.values == {"seed": 1, "v": "d", "b": 1, "c": 1}
    assert sorted(rc.sources) == ["a.toml", "b.toml", "c.toml", "d.toml"]


def test_tables_merge_deeply_but_arrays_and_scalars_replace(repo):
    write(repo, "p.toml", "seed = 1\nxs = [1, 2]\n[m.n]\na = 1\nb = 1\n[t]\nk = 1\n")
    rc = resolve_text(repo, "extends = 'p.toml'\nxs = [3]\nt = 5\n[m.n]\nb = 2\n")
    assert rc.values == {"seed": 1, "xs": [3], "t": 5, "m": {"n": {"a": 1, "b": 2}}}
    assert "t.k" not in rc.origins and rc.origins["t"] == "c.toml"


# ---------------------------------------------------------------- deletion

def test_delete_removes_an_inherited_key_and_its_origin(issue):
    text = 'extends = ["../base.toml"]\ndelete = ["optim.momentum"]\n'
    rc = config.resolve(write(issue.parents[2], "configs/exp/nomom.toml", text))
    assert "momentum" not in rc.values["optim"] and "optim.momentum" not in rc.origins


def test_delete_then_redefine_replaces_a_whole_table(repo):
    write(repo, "p.toml", "seed = 1\n[optim]\nlr = 1.0\nmomentum = 0.9\n")
    rc = resolve_text(repo, "extends = 'p.toml'\ndelete = ['optim']\n[optim]\nbetas = [0.9, 0.99]\n")
    assert rc.values["optim"] == {"betas": [0.9, 0.99]}


def test_deleting_a_key_no_parent_sets_names_the_file_and_key(repo):
    write(repo, "p.toml", "seed = 1\n")
    with pytest.raises(ConfigError, match=r"c\.toml: delete names optim\.momentum, which no parent sets"):
        resolve_text(repo, "extends = 'p.toml'\ndelete = ['optim.momentum']\n")


@pytest.mark.parametrize("text", ["extends = 3\n", "delete = 'a'\n", "extends = [1]\n"])
def test_malformed_directives_are_refused(repo, text):
    with pytest.raises(ConfigError, match=r"c\.toml: (extends|delete) must be a list of strings"):
        resolve_text(repo, "seed = 1\n" + text)


# ---------------------------------------------------------------- overrides

@pytest.mark.parametrize("raw, expected", [
    ("7", 7), ("2.5", 2.5), ("true", True), ("[1, 2]", [1, 2]), ('"7"', "7"), ("'x y'", "x y"),
    ("adam", "adam"), ("hello world", "hello world"), ("", ""), ("1\nevil = 2", "1\nevil = 2"),
])
def test_override_values_are_toml_and_a_bare_word_is_a_string(raw, expected):
    assert config.parse_value(raw) == expected and type(config.parse_value(raw)) is type(expected)


def test_override_sets_nested_keys_and_records_the_override(issue):
    rc = config.resolve(issue, ["optim.batch_size=128", "data.train=data/other"])
    assert rc.values["optim"]["batch_size"] == 128 and rc.values["data"]["train"] == "data/other"
    assert rc.overrides == ("data.train=data/other", "optim.batch_size=128")
    assert rc.origins["data.train"] == "<override>"


def test_an_inline_table_override_merges_into_the_table(issue):
    rc = config.resolve(issue, ["optim={lr = 0.5, batch_size = 8}"])
    assert rc.values["optim"] == {"lr": 0.5, "batch_size": 8, "momentum": 0.9}


def test_the_last_override_of_a_key_wins(issue):
    assert config.resolve(issue, ["optim.lr=0.1", "optim.lr=0.2"]).values["optim"]["lr"] == 0.2


def test_an_integer_override_of_a_float_stays_a_float(issue):
    value = config.resolve(issue, ["optim.lr=1"]).values["optim"]["lr"]
    assert value == 1.0 and isinstance(value, float)


def test_an_override_that_changes_a_type_names_the_key_and_file(issue):
    with pytest.raises(ConfigError, match=r"optim\.batch_size \(set in configs/base\.toml\) from integer to string"):
        config.resolve(issue, ["optim.batch_size=big"])


def test_force_allows_a_type_change(issue):
    assert config.resolve(issue, ["optim.batch_size=big"], force=True).values["optim"]["batch_size"] == "big"
    assert config.resolve(issue, ["optim=off"], force=True).values["optim"] == "off"


def test_an_unknown_override_key_is_refused_with_a_suggestion(issue):
    with pytest.raises(ConfigError, match=r"no key optim\.batchsize.*did you mean optim\.batch_size\?"):
        config.resolve(issue, ["optim.batchsize=128"])


def test_a_plus_prefix_adds_a_new_key(issue):
    rc = config.resolve(issue, ["+optim.warmup.steps=100"])
    assert rc.values["optim"]["warmup"] == {"steps": 100}
    assert rc.origins["optim.warmup.steps"] == "<override>"


def test_an_override_through_a_non_table_is_refused(issue):
    with pytest.raises(ConfigError, match=r"optim\.lr \(set in configs/exp/big_lr\.toml\) is a float, not a table"):
        config.resolve(issue, ["+optim.lr.x=1"])


def test_quoted_key_parts_may_contain_dots_and_equals(repo):
    rc = resolve_text(repo, 'seed = 1\n[m]\n"a.b=c" = 1\n', ['m."a.b=c"=2'])
    assert rc.values["m"] == {"a.b=c": 2}
    assert rc.origins['m."a.b=c"'] == "<override>"


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1", "+gitrepro.x=1", "+extends=x"])
def test_malformed_or_reserved_overrides_are_refused(issue, bad):
    with pytest.raises(ConfigError, match=r"override"):
        config.resolve(issue, [bad])


# ---------------------------------------------------------------- interpolation

def test_a_whole_string_reference_keeps_the_type(repo):
    rc = resolve_text(repo, "seed = 1\nn = 3\nxs = [1, 2]\ncopy_n = '${n}'\ncopy_xs = '${xs}'\n"
                            "[t]\na = 1\n[u]\nt = '${t}'\n")
    assert rc.values["copy_n"] == 3 and rc.values["copy_xs"] == [1, 2] and rc.values["u"]["t"] == {"a": 1}
    assert rc.origins["u.t.a"] == "c.toml"


def test_an_embedded_reference_is_stringified(repo):
    rc = resolve_text(repo, "seed = 1\nlr = 0.01\nok = true\nname = 'run-${lr}-${ok}-${ seed }'\n")
    assert rc.values["name"] == "run-0.01-true-1"


def test_references_chain_and_work_inside_arrays(repo):
    rc = resolve_text(repo, "seed = 1\na = '${b}'\nb = '${c}'\nc = 'x'\nxs = ['${a}/1', '${c}']\n")
    assert rc.values["a"] == "x" and rc.values["xs"] == ["x/1", "x"]


def test_a_double_dollar_is_a_literal(repo):
    assert resolve_text(repo, "seed = 1\ns = '$${HOME} and $${x}'\n").values["s"] == "${HOME} and ${x}"


def test_references_see_overrides_and_the_seed_argument(repo):
    rc = resolve_text(repo, "seed = 1\nlr = 0.1\nname = 'lr${lr}'\nsub_seed = '${seed}'\n", ["lr=0.5"], seed=9)
    assert rc.values["name"] == "lr0.5" and rc.values["sub_seed"] == 9


def test_an_unknown_interpolation_target_names_the_file_and_key(repo):
    write(repo, "p.toml", "seed = 1\n[out]\ndir = 'runs/${optim.lrr}'\n")
    with pytest.raises(ConfigError, match=r"p\.toml: out\.dir: unknown interpolation target \$\{optim\.lrr\}"):
        resolve_text(repo, "extends = 'p.toml'\n")


@pytest.mark.parametrize("text", ["a = '${b}'\nb = '${a}'\n", "a = 'x${a}'\n", "[t]\nx = '${t}'\n"])
def test_an_interpolation_cycle_is_refused(repo, text):
    with pytest.raises(ConfigError, match=r"c\.toml: .*interpolation cycle"):
        resolve_text(repo, "seed = 1\n" + text)


def test_a_table_cannot_be_embedded_in_a_string(repo):
    with pytest.raises(ConfigError, match=r"\$\{t\} is a table and cannot be embedded"):
        resolve_text(repo, "seed = 1\ns = 'x${t}'\n[t]\na = 1\n")


# ---------------------------------------------------------------- source errors

def test_an_extends_cycle_is_refused(repo):
    write(repo, "a.toml", "seed = 1\nextends = 'b.toml'\n")
    write(repo, "b.toml", "extends = 'a.toml'\n")
    with pytest.raises(ConfigError, match=r"a\.toml: extends cycle a\.toml -> b\.toml -> a\.toml"):
        config.resolve(repo / "a.toml")


def test_a_missing_parent_names_the_child_and_the_path(repo):
    with pytest.raises(ConfigError, match=r"c\.toml: extends 'nope\.toml', but nope\.toml does not exist"):
        resolve_text(repo, "seed = 1\nextends = 'nope.toml'\n")


@pytest.mark.parametrize("parent", ["../../outside.toml", "/etc/passwd"])
def test_a_parent_outside_the_repository_is_refused(repo, parent):
    with pytest.raises(ConfigError, match=r"c\.toml: extends"):
        resolve_text(repo, f"seed = 1\nextends = '{parent}'\n")


def test_invalid_toml_names_the_file(repo):
    write(repo, "p.toml", "seed = = 1\n")
    with pytest.raises(ConfigError, match=r"p\.toml: invalid TOML"):
        resolve_text(repo, "extends = 'p.toml'\n")


def test_a_missing_config_file_is_refused(repo):
    with pytest.raises(ConfigError, match="no such config file"):
        config.resolve(repo / "nope.toml")


def test_a_resolved_file_cannot_be_a_source(issue):
    rc = config.resolve(issue)
    with pytest.raises(ConfigError, match=r"the top-level key 'gitrepro' is reserved"):
        resolve_text(issue.parents[2], f"extends = '{rc.path.relative_to(issue.parents[2])}'\n")


def test_a_config_outside_a_git_repository_is_refused(tmp_path):
    write(tmp_path, "c.toml", "seed = 1\n")
    with pytest.raises(GitreproError, match="git init"):
        config.resolve(tmp_path / "c.toml")


def test_errors_are_gitrepro_errors():
    assert issubclass(ConfigError, GitreproError) and issubclass(StaleConfig, ConfigError)


# ---------------------------------------------------------------- seed

def test_a_config_without_a_seed_is_refused(repo):
    with pytest.raises(ConfigError, match=r"c\.toml: no seed.*--seed auto"):
        resolve_text(repo, "x = 1\n")


@pytest.mark.parametrize("seed", ["'7'", "-1", "4294967296", "true", "1.0"])
def test_a_seed_that_is_not_a_32_bit_integer_is_refused(repo, seed):
    with pytest.raises(ConfigError, match=r"seed \(set in c\.toml\) must be an integer"):
        resolve_text(repo, f"seed = {seed}\n")


def test_seed_auto_picks_and_records_a_seed(repo):
    rc = resolve_text(repo, "x = 1\n", seed="auto")
    assert 0 <= rc.seed < 2**31 and rc.seed_source == "auto" and rc.origins["seed"] == "<seed auto>"
    assert config.load(rc.path).seed == rc.seed and config.check(rc.path) == []


def test_seed_auto_keeps_a_seed_the_config_sets(repo):
    rc = resolve_text(repo, "seed = 5\n", seed="auto")
    assert (rc.seed, rc.seed_source) == (5, "config")


def test_a_seed_argument_replaces_the_config_seed(issue):
    rc = config.resolve(issue, seed=42)
    assert (rc.seed, rc.seed_source, rc.origins["seed"]) == (42, "argument", "<seed argument>")
    assert config.check(rc.path) == []


def test_a_seed_override_is_recorded_as_such(issue):
    assert config.resolve(issue, ["seed=3"]).seed_source == "override"


def test_a_bad_seed_argument_is_refused(issue):
    with pytest.raises(ConfigError, match="seed must be an integer or 'auto'"):
        config.resolve(issue, seed="random")


# ---------------------------------------------------------------- the resolved file

def test_the_resolved_file_is_concrete_canonical_and_carries_metadata(issue):
    rc = config.resolve(issue, ["optim.batch_size=128"])
    raw = rc.path.read_bytes()
    doc = tomlcompat.loads(raw.decode())
    meta = doc.pop("gitrepro")
    assert "extends" not in doc and b"${" not in raw
    assert meta["version"] == 1 and meta["source"] == "configs/exp/big_lr.toml"
    assert meta["hash"] == hash_bytes(tomli_w.dumps(config_keys.sorted_tree(doc)).encode()).hex() == rc.hash
    assert meta["sources"]["configs/base.toml"] == hash_bytes((issue.parents[1] / "base.toml").read_bytes()).hex()
    assert meta["overrides"] == ["optim.batch_size=128"] and meta["seed_source"] == "config"
    assert meta["data"] == {"data/train": MANIFEST_A} and meta["origins"] == rc.origins
    assert list(doc["optim"]) == sorted(doc["optim"])


def test_load_round_trips_what_resolve_returned(issue):
    rc = config.resolve(issue, ["optim.batch_size=128"], seed=7)
    assert config.load(rc.path) == rc


def test_output_may_be_chosen_but_must_stay_in_the_repository(issue, tmp_path):
    rc = config.resolve(issue, output=issue.parents[2] / "runs/1/config.toml")
    assert rc.path.is_file()
    with pytest.raises(ConfigError, match="outside the repository"):
        config.resolve(issue, output=tmp_path / "elsewhere.toml")
    with pytest.raises(ConfigError, match="overwrite the source"):
        config.resolve(issue, output=issue)


def test_a_failed_resolve_leaves_the_previous_resolved_file_alone(issue):
    before = config.resolve(issue).path.read_bytes()
    with pytest.raises(ConfigError):
        config.resolve(issue, ["optim.lr=fast"])
    assert issue.with_name("big_lr.resolved.toml").read_bytes() == before


def test_values_that_are_not_tracked_datasets_get_no_data_pointer(repo):
    track(repo, "data/val", MANIFEST_B)
    rc = resolve_text(repo, "seed = 1\na = 'data/val/'\nb = ['adam', '../x', '/abs', '']\nc = '" + "x" * 2000 + "'\n")
    assert rc.data_pointers == {"data/val": MANIFEST_B}


# ---------------------------------------------------------------- properties

keys = st.text(alphabet="abcxyz_-.", min_size=1, max_size=4)
scalars = st.one_of(st.integers(-2**63, 2**63 - 1), st.booleans(), st.text(max_size=8).filter(lambda s: "$" not in s),
                    st.floats(allow_nan=False))
trees = st.recursive(scalars | st.lists(scalars, max_size=3),
                     lambda children: st.dictionaries(keys, children, max_size=4), max_leaves=12)
configs = st.dictionaries(keys.filter(lambda k: k not in ("extends", "delete", "gitrepro", "seed")),
                          trees, max_size=5).map(lambda d: {**d, "seed": 1})
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def reversed_order(value):
    return {k: reversed_order(value[k]) for k in reversed(list(value))} if isinstance(value, dict) else value


@SETTINGS
@given(doc=configs)
def test_resolving_is_deterministic_and_independent_of_key_order(repo, doc):
    a = write(repo, "a.toml", tomli_w.dumps(doc))
    b = write(repo, "b.toml", tomli_w.dumps(reversed_order(doc)))
    first = config.resolve(a).path.read_bytes()
    assert config.resolve(a).path.read_bytes() == first
    ra, rb = config.load(repo / "a.resolved.toml"), config.resolve(b)
    assert ra.values == doc and ra.hash == rb.hash
    assert config.canonical_bytes(ra.values) == config.canonical_bytes(rb.values)
    assert {k: v.replace("a.toml", "b.toml") for k, v in ra.origins.items()} == rb.origins


@SETTINGS
@given(order=st.permutations(["optim.lr=0.5", "optim.batch_size=8", "data.train=x", "+extra={a = 1}"]))
def test_the_order_of_overrides_for_disjoint_keys_does_not_matter(issue, order):
    reference = config.resolve(issue, sorted(order), output=issue.with_name("ref.toml")).path.read_bytes()
    assert config.resolve(issue, order).path.read_bytes() == reference


def test_the_order_of_overlapping_overrides_is_kept(issue):
    assert config.resolve(issue, ["optim={lr = 0.5}", "optim.lr=0.2"]).values["optim"]["lr"] == 0.2
    assert config.resolve(issue, ["optim.lr=0.2", "optim={lr = 0.5}"]).values["optim"]["lr"] == 0.5


# ---------------------------------------------------------------- check

def codes(findings) -> list[str]:
    return [f.code for f in findings]


def test_check_passes_right_after_resolve(issue):
    assert config.check(config.resolve(issue, ["optim.batch_size=128"]).path) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["configs/base.toml", "configs/exp/big_lr.toml"]), data=st.data())
def test_check_fails_after_any_source_byte_changes(issue, which, data):
    rc = config.resolve(issue, ["optim.batch_size=128"])
    p = issue.parents[2] / which
    original = p.read_bytes()
    try:
        i = data.draw(st.integers(0, len(original) - 1))
        p.write_bytes(original[:i] + bytes([original[i] ^ data.draw(st.integers(1, 255))]) + original[i + 1:])
        findings = config.check(rc.path)
        assert ("source-changed", which) in [(f.code, f.path) for f in findings]
    finally:
        p.write_bytes(original)


def test_a_semantic_source_change_is_reported_as_stale_with_the_keys(issue):
    rc = config.resolve(issue)
    write(issue.parents[2], "configs/base.toml", BASE.replace("batch_size = 64", "batch_size = 32"))
    findings = config.check(rc.path)
    assert codes(findings) == ["source-changed", "stale"]
    assert "optim.batch_size" in findings[1].message
    assert "gitrepro config resolve configs/exp/big_lr.toml" in findings[1].message


def test_check_fails_after_the_dataset_pointer_changes(issue):
    rc = config.resolve(issue)
    track(issue.parents[2], "data/train", MANIFEST_B)
    findings = config.check(rc.path)
    assert [(f.code, f.path) for f in findings] == [("data-changed", "data/train")]
    assert "bbbbbbbbbbbb" in findings[0].message


def test_check_reports_an_untracked_and_a_newly_tracked_dataset(issue):
    rc = config.resolve(issue, ["+extra=data/val"])
    (issue.parents[2] / "data/train.gitrepro").unlink()
    track(issue.parents[2], "data/val")
    assert codes(config.check(rc.path)) == ["data-missing", "data-added"]


def test_check_detects_a_hand_edited_resolved_file(issue):
    rc = config.resolve(issue)
    rc.path.write_text(rc.path.read_text().replace("lr = 0.01", "lr = 0.02"))
    findings = config.check(rc.path)
    assert codes(findings) == ["edited"] and "edited by hand" in findings[0].message


def test_check_reports_a_deleted_source_and_a_source_that_no_longer_resolves(issue):
    rc = config.resolve(issue)
    (issue.parents[1] / "base.toml").unlink()
    findings = config.check(rc.path)
    assert codes(findings) == ["source-missing", "unresolvable"]
    assert "extends '../base.toml', but configs/base.toml does not exist" in findings[1].message


def test_check_replays_overrides_force_and_an_explicit_output(issue):
    out = issue.parents[2] / "runs/cfg.toml"
    rc = config.resolve(issue, ["optim.batch_size=big"], force=True, output=out)
    assert config.check(out) == []
    (issue.parents[1] / "base.toml").write_text(BASE + "# edited\n")
    msg = config.check(rc.path)[0].message
    assert "optim.batch_size=big --force -o runs/cfg.toml" in msg


def test_check_refuses_a_file_that_is_not_a_resolved_config(issue):
    with pytest.raises(NotResolved, match="not a resolved config"):
        config.check(issue)


def test_check_refuses_an_unknown_format_version(issue):
    rc = config.resolve(issue)
    rc.path.write_text(rc.path.read_text().replace("version = 1", "version = 99"))
    with pytest.raises(ConfigError, match="unsupported resolved-config version 99"):
        config.check(rc.path)


def commit_reader(repo: Path, rev: str):
    return lambda rel: plumbing.read_blob_at(rev, rel, cwd=repo)


def staged_reader(repo: Path):
    entries = {e.path: e.sha for e in plumbing.ls_staged(cwd=repo)}
    blobs = plumbing.read_blobs(list(entries.values()), cwd=repo)
    return lambda rel: blobs[entries[rel]] if rel in entries else None


def test_check_through_a_reader_judges_a_commit_not_the_worktree(issue):
    repo = issue.parents[2]
    config.resolve(issue)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "configs")
    write(repo, "configs/base.toml", BASE + "# worktree only\n")
    track(repo, "data/train", MANIFEST_B)
    rel = "configs/exp/big_lr.resolved.toml"
    assert config.check(rel, read_file=commit_reader(repo, "HEAD")) == []
    assert codes(config.check(repo / rel)) == ["source-changed", "data-changed"]


def test_check_through_a_staged_reader_sees_a_staged_pointer_change(issue):
    repo = issue.parents[2]
    config.resolve(issue)
    git(repo, "add", "-A")
    assert config.check("configs/exp/big_lr.resolved.toml", read_file=staged_reader(repo)) == []
    track(repo, "data/train", MANIFEST_B)
    git(repo, "add", "data/train.gitrepro")
    (repo / "data/train.gitrepro").unlink()   # the worktree no longer matters
    assert codes(config.check("configs/exp/big_lr.resolved.toml", read_file=staged_reader(repo))) == ["data-changed"]


def test_a_reader_serves_every_read_including_the_resolved_file(issue):
    repo = issue.parents[2]
    config.resolve(issue)
    seen = []

    def read(rel):
        seen.append(rel)
        return config.worktree_reader(repo)(rel)
    assert config.check("configs/exp/big_lr.resolved.toml", read_file=read) == []
    assert seen[0] == "configs/exp/big_lr.resolved.toml"
    assert {"configs/base.toml", "configs/exp/big_lr.toml", "data/train.gitrepro"} <= set(seen)
    with pytest.raises(ConfigError, match="no such resolved config"):
        config.check("missing.resolved.toml", read_file=read)


# ---------------------------------------------------------------- show, diff

def test_show_gives_every_key_with_its_origin_from_the_resolved_file_alone(issue):
    rc = config.resolve(issue, ["optim.batch_size=128"])
    for src in rc.sources:
        (issue.parents[2] / src).unlink()
    rows = {e.key: (e.value, e.origin) for e in config.show(rc.path)}
    assert rows["optim.batch_size"] == (128, "<override>")
    assert rows["optim.lr"] == (0.01, "configs/exp/big_lr.toml")
    assert list(rows) == sorted(rows)


def test_diff_reports_added_removed_changed_keys_and_data(issue):
    repo = issue.parents[2]
    a = config.resolve(issue, output=repo / "a.resolved.toml")
    track(repo, "data/train", MANIFEST_B)
    b = config.resolve(issue, ["optim.lr=0.5", "+extra=1"], output=repo / "b.resolved.toml")
    d = config.diff(a.path, b.path)
    assert d.added == {"extra": 1} and d.removed == {} and d.changed == {"optim.lr": (0.01, 0.5)}
    assert d.data == {"data/train": (MANIFEST_A, MANIFEST_B)}
    assert config.diff(a.path, a.path).empty


def test_diff_treats_a_type_change_as_a_change(repo):
    a = resolve_text(repo, "seed = 1\nx = 1\n", output=repo / "a.r.toml")
    b = resolve_text(repo, "seed = 1\nx = 1.0\n", output=repo / "b.r.toml")
    assert config.diff(a.path, b.path).changed == {"x": (1, 1.0)}


# ---------------------------------------------------------------- load_config

def test_load_config_returns_the_values_of_a_fresh_resolved_config(issue, monkeypatch):
    rc = config.resolve(issue)
    assert config.load_config(rc.path) == rc.values
    monkeypatch.setenv("GITREPRO_CONFIG", str(rc.path))
    assert gitrepro.load_config() == rc.values


def test_load_config_refuses_a_stale_config(issue):
    rc = config.resolve(issue)
    track(issue.parents[2], "data/train", MANIFEST_B)
    with pytest.raises(StaleConfig, match="is stale: dataset data/train now points at manifest") as e:
        config.load_config(rc.path)
    assert codes(e.value.findings) == ["data-changed"]


def test_load_config_refuses_an_unresolved_config(issue):
    with pytest.raises(NotResolved, match="gitrepro config resolve"):
        config.load_config(issue)


def test_load_config_without_a_path_or_environment_says_what_to_do(monkeypatch):
    monkeypatch.delenv("GITREPRO_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="set GITREPRO_CONFIG"):
        config.load_config()


def test_the_package_exports_resolve_config():
    assert gitrepro.resolve_config is config.resolve


def test_importing_config_does_not_import_the_cli():
    code = "import sys, gitrepro.config; assert 'gitrepro.cli.app' not in sys.modules and 'typer' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_key_text_round_trips_through_format_and_parse():
    for path in [("a",), ("a.b", "c"), ("", "x y", 'q"'), ("é",)]:
        assert config.parse_key(config.format_key(path)) == path
