"""The reproducibility layer: what makes a commit reproducible, and the proof.

`config` (hierarchical TOML resolved, hashed, seeded; drift), `run` (`gitrepro run` and its record),
`envcapture`, `redact`, `seeding`, `policy` (the one rule set for hook, `policy check` and `verify`),
`availability` (is the named data readable), `verify`, `reproduce`, `provenance` (show, log, diff,
lineage) and `hooks` (git hook entry points and shims). It may import every layer below it:
util, formats, git, store, worktree and remote — never gitrepro.cli.
"""
