"""Tests for gitrepro.repro.params and params dependencies by key: a real three-stage pipeline
(prepare -> featurize -> train) sharing one params.yaml, plus a TOML params file, in a real git
repository committed through the installed hook. A stage is stale exactly when a key it names
changes, and `repro --dry-run` says `key: old → new`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitrepro.formats import runrecord
from gitrepro.repro import params
from helpers_gitdata import NO_HOOKS, git
from helpers_pipeline import PY, commit, fixes, gitrepro, hook_verdict, make_pipeline, ran, repro, stage_all, \
    statuses, write

PARAMS_YAML = """\
prepare:
  split: 0.2
featurize:
  max_features: 200
  ngrams: 2
train:
  epochs: 3
unused: 1
"""

TRAIN_TOML = """\
[train]
lr = 0.1
[train.schedule]
warmup = 5
[other]
x = 1
"""

PREPARE = """\
import pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["prepare"]
out = pathlib.Path("data/features"); out.mkdir(parents=True, exist_ok=True)
(out / "f.txt").write_text(f"split={p['split']}\\n")
"""
FEATURIZE = """\
import pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["featurize"]
out = pathlib.Path("data/vectors"); out.mkdir(parents=True, exist_ok=True)
(out / "v.txt").write_text(pathlib.Path("data/features/f.txt").read_text() + f"max={p['max_features']}\\n")
"""
TRAIN = """\
import pathlib, tomllib
t = tomllib.loads(pathlib.Path("configs/train.toml").read_text())["train"]
out = pathlib.Path("models"); out.mkdir(exist_ok=True)
(out / "m.txt").write_text(pathlib.Path("data/vectors/v.txt").read_text() + f"lr={t['lr']}\\n")
"""

STAGES = f"""
[stages.prepare]
cmd = ["{PY}", "prepare.py"]
deps = ["prepare.py", "data/raw"]
outputs = ["data/features"]
params = ["prepare.split"]

[stages.featurize]
cmd = ["{PY}", "featurize.py"]
deps = ["featurize.py", "data/features"]
outputs = ["data/vectors"]
params = ["featurize"]

[stages.train]
cmd = ["{PY}", "train.py"]
deps = ["data/vectors"]     # no code deps: the whole tree is its code
outputs = ["models"]
params = {{ "params.yaml" = ["train.epochs"], "configs/train.toml" = ["train"] }}
"""
NAMES = ["prepare", "featurize", "train"]


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory) -> Path:
    """The project after one `repro`, committed through the hook."""
    base = tmp_path_factory.mktemp("params")
    root = make_pipeline(base / "repo", base / "remote", STAGES)
    for rel, text in {"params.yaml": PARAMS_YAML, "configs/train.toml": TRAIN_TOML, "prepare.py": PREPARE,
                      "featurize.py": FEATURIZE, "train.py": TRAIN}.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", "params pipeline")
    assert ran(repro(root)) == NAMES
    stage_all(root)
    done = commit(root, "train")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def trained(trained_template, tmp_path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(trained_template, root, symlinks=True)
    return root


def edit(root: Path, rel: str, old: str, new: str) -> None:
    text = (root / rel).read_text()
    assert old in text
    write(root, rel, text.replace(old, new))


def records(root: Path) -> dict[str, runrecord.RunRecord]:
    found = {}
    for name, s in repro(root, "--dry-run").items():
        found[name] = runrecord.parse((root / runrecord.record_path(s["run"])).read_bytes())
    return found


# ---------------------------------------------------------------- the record and the rule

def test_a_record_keeps_the_values_of_exactly_the_keys_its_stage_names(trained):
    recs = records(trained)
    assert recs["prepare"].params == {"params.yaml": {"prepare.split": 0.2}}
    assert recs["featurize"].params == {"params.yaml": {"featurize.max_features": 200, "featurize.ngrams": 2}}
    assert recs["train"].params == {"configs/train.toml": {"train.lr": 0.1, "train.schedule.warmup": 5},
                                    "params.yaml": {"train.epochs": 3}}


def test_changing_a_key_makes_exactly_the_stages_that_name_it_stale_and_says_old_to_new(trained):
    edit(trained, "params.yaml", "max_features: 200", "max_features: 100")
    dry = repro(trained, "--dry-run")
    assert statuses(dry) == {"prepare": "fresh", "featurize": "stale", "train": "stale"}
    assert dry["featurize"]["reasons"] == ["featurize.max_features: 200 → 100"]
    assert dry["train"]["reasons"] == ["upstream stage featurize is stale"]
    assert ran(repro(trained)) == ["featurize", "train"]
    assert "max=100" in (trained / "models/m.txt").read_text()
    stage_all(trained)
    done = commit(trained, "max_features 100")
    assert done.returncode == 0, done.stderr
    assert statuses(repro(trained, "--dry-run")) == dict.fromkeys(NAMES, "fresh")


def test_editing_a_key_no_stage_names_makes_nothing_stale_even_for_a_whole_tree_stage(trained):
    edit(trained, "params.yaml", "unused: 1", "unused: 2")
    edit(trained, "configs/train.toml", "x = 1", "x = 2")
    git(trained, "add", "-A")      # train depends on "." : its params files are not code for it
    assert statuses(repro(trained, "--dry-run")) == dict.fromkeys(NAMES, "fresh")
    done = commit(trained, "keys nobody reads")
    assert done.returncode == 0, done.stderr


def test_a_key_naming_a_table_covers_a_value_added_under_it_in_a_toml_file(trained):
    edit(trained, "configs/train.toml", "warmup = 5", "warmup = 5\ndecay = 0.5")
    dry = repro(trained, "--dry-run")
    assert statuses(dry) == {"prepare": "fresh", "featurize": "fresh", "train": "stale"}
    assert dry["train"]["reasons"] == ["configs/train.toml: train.schedule.decay: (none) → 0.5"]


def test_the_hook_refuses_a_params_change_without_its_run_and_names_the_fix(trained):
    edit(trained, "params.yaml", "split: 0.2", "split: 0.3")
    git(trained, "add", "params.yaml")
    refused = hook_verdict(commit(trained, "split alone"))
    assert fixes(refused) == {"gitrepro repro prepare"}
    assert any("prepare.split: 0.2 → 0.3" in v for v in refused), refused
    assert ran(repro(trained)) == NAMES
    stage_all(trained)
    assert commit(trained, "split with its runs").returncode == 0


def test_a_stage_naming_a_new_key_is_stale_until_it_runs(trained):
    edit(trained, "gitrepro.toml", 'params = ["prepare.split"]', 'params = ["prepare.split", "unused"]')
    dry = repro(trained, "--dry-run")
    assert dry["prepare"]["reasons"] == ["unused: (none) → 1"]


# ---------------------------------------------------------------- errors: one line

def test_a_key_missing_from_the_file_is_one_line_naming_stage_file_and_key(trained):
    edit(trained, "params.yaml", "  ngrams: 2\n", "")
    edit(trained, "gitrepro.toml", 'params = ["featurize"]', 'params = ["featurize.ngrams"]')
    for args in (("repro", "--dry-run"), ("repro",)):
        code, out, err = gitrepro(trained, *args)
        lines = err.strip().splitlines()
        assert code == 1 and lines == ["gitrepro: error: stage featurize: params file params.yaml has no key "
                                       "featurize.ngrams"], err
        assert "Traceback" not in out + err


def test_a_malformed_yaml_file_is_one_line_with_file_and_line_number(trained):
    write(trained, "params.yaml", "prepare:\n  split: 0.2\nfeaturize: [1, 2\nunused: 1\n")
    code, out, err = gitrepro(trained, "repro", "--dry-run")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith("gitrepro: error: params.yaml:4: not valid YAML ("), lines


def test_the_hook_reports_a_malformed_params_file_as_a_finding_not_a_crash(trained):
    write(trained, "params.yaml", "prepare: {split: 0.2\n")
    git(trained, "add", "params.yaml")
    refused = hook_verdict(commit(trained, "broken params"))
    assert any("params.yaml:2: not valid YAML" in v for v in refused), refused


# ---------------------------------------------------------------- the reader

def test_yaml_toml_and_json_files_give_the_same_flat_values():
    doc = {"a": {"b": 1, "c": [1, 2], "d": {"e": "x"}}, "f": True, "g": None}
    yaml = b"a:\n  b: 1\n  c: [1, 2]\n  d: {e: x}\nf: true\ng: null\n"
    toml = b'f = true\ng = "null"\n[a]\nb = 1\nc = [1, 2]\n[a.d]\ne = "x"\n'
    json = b'{"a": {"b": 1, "c": [1, 2], "d": {"e": "x"}}, "f": true, "g": null}'
    expected = {"a.b": 1, "a.c": "[1, 2]", "a.d.e": "x", "f": True, "g": "null"}
    assert params.flatten(doc) == expected
    for name, data in (("p.yaml", yaml), ("p.toml", toml), ("p.json", json)):
        assert params.parse_params(data, name) == expected, name


def test_select_takes_a_key_or_a_whole_table_and_refuses_a_missing_one():
    flat = {"a.b": 1, "a.c": 2, "ab": 3}
    assert params.select(flat, ["a"], stage="s", file="f.yaml") == {"a.b": 1, "a.c": 2}
    assert params.select(flat, ["ab"], stage="s", file="f.yaml") == {"ab": 3}
    with pytest.raises(params.ParamsError, match=r"^stage s: params file f.yaml has no key a.d$"):
        params.select(flat, ["a.d"], stage="s", file="f.yaml")
    with pytest.raises(params.ParamsError, match="params file f.yaml is missing"):
        params.select(None, ["a"], stage="s", file="f.yaml")


def test_a_yaml_alias_bomb_and_a_json_error_are_one_line_each():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join('*' + p for p in [prev] * 10)}]\n"
        for prev, c in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(params.ParamsError, match=r"^params file p.yaml: more than \d+ values$"):
        params.parse_params(bomb.encode(), "p.yaml")
    with pytest.raises(params.ParamsError, match=r"^p.json:2: not valid JSON"):
        params.parse_params(b'{"a": 1,\n "b": }', "p.json")
    with pytest.raises(params.ParamsError, match="unknown format"):
        params.parse_params(b"a=1", "p.ini")
