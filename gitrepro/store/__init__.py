"""The store layer: the local chunk store under `<git common dir>/gitrepro/`, its only owner.

`layout` names every file there; `store` (the Store: config, lock, verified reads, manifests),
`writer` (new blobs into packs), `index` (blob locations, a rebuildable hint), `stattable` and
`statcache` (the stat cache, a hint), `fsck` (verify and repair), and `repo` (the repository
context: worktree root, git dirs, project settings, the store). It may import gitrepro.util,
gitrepro.formats and gitrepro.git.
"""
