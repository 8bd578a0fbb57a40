"""Counted nouns say `1 file` and `2 files`, never `file(s)` (issue 20): a scan of every message the
package can print, and the summaries of real commands on a real repository through `cli.main`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gitrepro.util.words import plural, verb
from helpers_trees import make_tree

PACKAGE = Path(__file__).resolve().parents[2] / "gitrepro"
HEDGED = re.compile(r"[A-Za-z]\((?:s|es)\)")   # file(s), index(es)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (not messages)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            found.add(id(body[0].value))
    return found


def test_no_message_hedges_its_plural():
    hedged = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                    and HEDGED.search(node.value):
                hedged.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value.strip()[:70]}")
    assert not hedged, "\n".join(hedged)


def test_plural_and_verb_agree_with_the_count():
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "pack index", "pack indexes") == "1 pack index"
    assert plural(3, "pack index", "pack indexes") == "3 pack indexes"
    assert (verb(1, "is", "are"), verb(0, "is", "are"), verb(2, "is", "are")) == ("is", "are", "are")


def test_summaries_count_in_the_singular_and_the_plural(git_repo, run_cli, commit, tmp_path):
    make_tree(git_repo / "one", {"a": b"1"})
    assert run_cli("init").code == 0
    added = run_cli("add", "one").out
    assert added.startswith("one: 1 file, ") and "(0 files unchanged)" in added, added
    assert run_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default").code == 0
    commit("one")
    pushed = run_cli("push")
    assert pushed.code == 0 and "origin: 1 manifest, 0 already there; uploaded 1 pack, " in pushed.out, pushed.out
    make_tree(git_repo / "two", {"a": b"1", "b": b"2"})
    added = run_cli("add", "two").out
    assert added.startswith("two: 2 files, ") and "(0 files unchanged)" in added, added
    commit("two")
    pushed = run_cli("push")
    assert pushed.code == 0 and "origin: 2 manifests, 1 already there; uploaded 1 pack, " in pushed.out, pushed.out
    fsck = run_cli("fsck")
    assert fsck.code == 0 and fsck.out.rstrip().endswith("2 manifests: 0 problems"), fsck.out
    (git_repo / "one" / "a").unlink()
    restored = run_cli("checkout", "--force")
    assert restored.code == 0 and "one: wrote 1 file (1 B)" in restored.out, restored.out
    assert not HEDGED.search(added + pushed.out + fsck.out + restored.out)
