"""Paths relative to the current directory, as git takes and prints them (issue 20): `merge-resolve`,
`stash` and `import` run from a subdirectory of a real repository (with gitrepro's hooks and merge
driver installed) name the dataset, its pointer and their hints as the user would type them there;
`run -i/--dep/-o` from a subdirectory records repository paths."""

from __future__ import annotations

from helpers_gitdata import (commit_data, data_repo, git, gitrepro, read_files, status_line,
                             switch_without_hooks, write_files)

A0, A_MAIN, A_FEAT, B0, B2 = b"a0" * 600, b"am" * 700, b"af" * 1000, b"b0" * 300, b"b2" * 300


def test_merge_resolve_from_a_subdirectory_names_paths_relative_to_it(git_repo):
    data_repo(git_repo, {"a.bin": A0, "b.bin": B0})
    git(git_repo, "branch", "feature")
    commit_data(git_repo, {"a.bin": A_MAIN}, "a on main")
    switch_without_hooks(git_repo, "feature", {"a.bin": A0})
    commit_data(git_repo, {"a.bin": A_FEAT, "b.bin": B2}, "a and b on feature")
    switch_without_hooks(git_repo, "main", {"a.bin": A_MAIN, "b.bin": B0})
    assert git(git_repo, "merge", "--no-edit", "feature", check=False).returncode == 1
    src = git_repo / "src"
    src.mkdir()
    done = gitrepro(src, "merge-resolve", "../data/", "--theirs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("../data: resolved: 1 conflicting file settled, 0 changes of ours and 1 of "
                                  "theirs -> ../data.gitrepro (staged)\n"), done.stdout
    assert "gitrepro: ../data: restored to ../data.gitrepro (2 files written, 0 removed)" in done.stderr
    assert done.stdout.splitlines()[-1] == "next: git commit"
    assert read_files(git_repo) == {"a.bin": A_FEAT, "b.bin": B2}
    assert "data.gitrepro" in git(git_repo, "diff", "--cached", "--name-only").stdout   # staged, as it said


def test_stash_and_pop_from_a_subdirectory_name_paths_relative_to_it(git_repo):
    start = {"a.bin": A0, "b.bin": B0}
    data_repo(git_repo, start)
    write_files(git_repo, {"a.bin": A_MAIN})
    src = git_repo / "src"
    src.mkdir()
    stashed = gitrepro(src, "stash")
    assert stashed.returncode == 0, stashed.stderr
    assert "../data: local changes snapshotted, its pointer stashed" in stashed.stdout, stashed.stdout
    assert "../data: checked out (1 file written, 0 removed)" in stashed.stdout, stashed.stdout
    assert read_files(git_repo) == start and status_line(git_repo) == "data: clean"
    popped = gitrepro(src, "stash", "pop")
    assert popped.returncode == 0, popped.stderr
    assert "modified:   ../data.gitrepro" in popped.stdout, popped.stdout   # git's own status, run here
    assert "../data: checked out (1 file written, 0 removed)" in popped.stdout, popped.stdout
    assert read_files(git_repo) == {**start, "a.bin": A_MAIN}


def test_run_from_a_subdirectory_records_its_inputs_deps_and_outputs_as_repository_paths(git_repo, run_cli):
    from conftest import run_git
    from gitrepro.formats import runrecord
    from gitrepro.git import plumbing
    from gitrepro.repro import codeid
    from helpers_runs import PY, make_project, write

    make_project(git_repo, datasets=("data/train", "data/extra"))
    write(git_repo, "src/fit.py", "import pathlib\npathlib.Path('../models').mkdir(exist_ok=True)\n"
                                  "pathlib.Path('../models/m.bin').write_text('m')\n"
                                  "pathlib.Path('out').mkdir(exist_ok=True)\npathlib.Path('out/x').write_text('x')\n")
    write(git_repo, "lib/util.py", "ONE = 1\n")
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-q", "--no-verify", "-m", "code")
    src = git_repo / "src"
    done = run_cli("run", "-i", "../data/train/", "--dep", ".", "--dep", "../lib/", "-o", "out/",
                   "--", PY, "fit.py", cwd=src)
    assert done.code == 0, done.err
    [path] = [p for p in (git_repo / "runs").iterdir()]
    rec = runrecord.parse(path.read_bytes(), f"runs/{path.name}")
    assert set(rec.inputs) == {"data/train"}                 # -i ../data/train/, not every dataset
    assert set(rec.outputs) == {"models", "src/out"}          # [run] outputs, and -o out/ from src
    head = run_git(git_repo, "rev-parse", "HEAD").strip()
    blobs = {e.path: e.sha for e in plumbing.ls_tree(head, cwd=git_repo) if e.type == "blob"}
    assert rec.code.ids == codeid.code_ids(blobs, ["src", "lib"]) and set(rec.code.ids) == {"src", "lib"}
    assert rec.code.ids["src"] != codeid.code_ids(blobs, ["."])["."]
    assert f"next: git add ../runs/{path.name} ../models.gitrepro out.gitrepro ../.gitignore && git commit" \
        in done.err, done.err


def test_import_from_a_subdirectory_names_the_dataset_and_its_pointer_relative_to_it(git_repo, tmp_path, run_cli):
    from conftest import run_git
    from gitrepro.remote import push as push_op
    from gitrepro.store.repo import Repo
    from helpers_runs import make_project, project_settings

    source = tmp_path / "source"
    source.mkdir()
    run_git(source, "init", "-q", "-b", "main")
    make_project(source, settings=project_settings(extra=f'\n[remote.origin]\nurl = "{tmp_path / "store"}"\n'))
    repo = Repo.find(source)
    try:
        push_op.push(repo, all_refs=True)
    finally:
        repo.close()
    assert run_cli("init").code == 0
    sub = git_repo / "sub"
    sub.mkdir()
    done = run_cli("import", str(source), "data/train", "-o", "mine/", cwd=sub)
    assert done.code == 0, done.err
    assert done.out.startswith(f"mine: imported data/train of {source} at "), done.out
    assert done.out.rstrip().endswith("; commit mine.gitrepro"), done.out
    assert (git_repo / "sub" / "mine.gitrepro").is_file() and len(list((sub / "mine").iterdir())) == 3
