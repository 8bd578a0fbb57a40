"""The git layer: every git process gitrepro starts and every parser of git's output.

`plumbing` holds the thin commands (repository paths, revisions, trees, the index, blobs, a
streamed diff-tree, a long-lived cat-file) and their parsers; `history` walks history (commits
of a range with parents, log entries, changes against the first parent, blobs history writes,
ancestry); `tree` is the one view of a tree's files (the staged index or a commit, with an
optional memo shared by many trees); `tracking` finds the dataset pointers a commit, the index
or the working tree holds. It may import gitrepro.util and gitrepro.formats (and gitrepro.errors).
"""
