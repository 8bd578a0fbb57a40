"""The worktree layer: datasets in the working tree — scanning, snapshotting, comparing and restoring.

`scan` (what a dataset holds), `statwalk` and `unchanged` (the stat-data-only answers of a no-op
`status`/`add`), `snapshot` (`add`), `status`, `checkout` (restore a commit's data). It may import
gitrepro.util, gitrepro.formats, gitrepro.git and gitrepro.store.
"""
